//! The one codec module: every byte caucus puts on the wire or on disk is made here.
//!
//! The format is bincode 2.0.1 (pinned) in its `standard` configuration: little-endian,
//! variable-length integers, enum variants as a varint index, strings and byte strings
//! as a varint length followed by the bytes. `proto/PROTOCOL.md` spells it out byte by
//! byte. Swapping the codec means changing this file and the vectors, nothing else.
//!
//! Every decode is bounded: the input is refused outright when it is longer than the
//! type's limit, bincode is configured with the same limit so no length prefix can make
//! it allocate more, trailing bytes are refused, and the value is re-encoded and compared
//! so that exactly one byte string decodes to each value (content ids stay stable).

use serde::{Serialize, de::DeserializeOwned};

/// Why bytes could not be turned into a caucus value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input, or a length inside it, is larger than the limit for this type.
    #[error("message too large: {len} bytes, limit is {limit}")]
    TooLarge {
        /// Bytes offered or claimed.
        len: usize,
        /// The limit for this type.
        limit: usize,
    },
    /// The input ended before the value was complete.
    #[error("message truncated")]
    Truncated,
    /// The value was complete before the input ended.
    #[error("{extra} unexpected bytes after the message")]
    TrailingBytes {
        /// How many bytes were left over.
        extra: usize,
    },
    /// The version byte names a version this build does not speak.
    #[error("unsupported {what} version {found} (this build speaks {supported})")]
    UnsupportedVersion {
        /// Which message kind.
        what: &'static str,
        /// Version found in the input.
        found: u8,
        /// Version this build speaks.
        supported: u8,
    },
    /// The bytes decode, but not in their one canonical encoding (for example a
    /// non-minimal integer); accepting them would give one value two content ids.
    #[error("non-canonical encoding")]
    NonCanonical,
    /// The bytes are not a well-formed message of this type.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The message is well formed but a field breaks a protocol rule.
    #[error("invalid message: {0}")]
    Invalid(&'static str),
}

/// Why a value could not be turned into bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The encoded value would be larger than the limit for its type.
    #[error("message too large: {len} bytes, limit is {limit}")]
    TooLarge {
        /// Encoded size.
        len: usize,
        /// The limit for this type.
        limit: usize,
    },
    /// A field breaks a protocol rule (for example a text longer than its limit).
    #[error("invalid message: {0}")]
    Invalid(&'static str),
    /// The serializer failed (never expected for caucus types).
    #[error("encoding failed: {0}")]
    Serializer(String),
}

/// The bincode configuration of every caucus message, bounded by `LIMIT` bytes.
const fn config<const LIMIT: usize>() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<LIMIT>,
> {
    bincode::config::standard().with_limit::<LIMIT>()
}

/// Encodes `value`, refusing results longer than `LIMIT`.
pub fn encode<T: Serialize, const LIMIT: usize>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let bytes = bincode::serde::encode_to_vec(value, config::<LIMIT>())
        .map_err(|e| EncodeError::Serializer(e.to_string()))?;
    if bytes.len() > LIMIT {
        return Err(EncodeError::TooLarge {
            len: bytes.len(),
            limit: LIMIT,
        });
    }
    Ok(bytes)
}

/// Decodes exactly one `T` from `bytes`, bounded by `LIMIT`, in canonical form only.
pub fn decode<T: Serialize + DeserializeOwned, const LIMIT: usize>(
    bytes: &[u8],
) -> Result<T, DecodeError> {
    if bytes.len() > LIMIT {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            limit: LIMIT,
        });
    }
    let (value, read): (T, usize) = bincode::serde::decode_from_slice(bytes, config::<LIMIT>())
        .map_err(|e| map_decode_error(e, LIMIT))?;
    if read != bytes.len() {
        return Err(DecodeError::TrailingBytes {
            extra: bytes.len() - read,
        });
    }
    // Canonical form: the one encoding of this value must be the input itself.
    match bincode::serde::encode_to_vec(&value, config::<LIMIT>()) {
        Ok(again) if again == bytes => Ok(value),
        _ => Err(DecodeError::NonCanonical),
    }
}

fn map_decode_error(e: bincode::error::DecodeError, limit: usize) -> DecodeError {
    use bincode::error::DecodeError as B;
    match e {
        B::UnexpectedEnd { .. } => DecodeError::Truncated,
        B::LimitExceeded => DecodeError::TooLarge {
            len: limit + 1,
            limit,
        },
        // Messages from bincode name types and positions, never the content of the input.
        other => DecodeError::Malformed(other.to_string()),
    }
}

/// Serde glue for fixed-size byte arrays of any length: written as the bare bytes, no
/// length prefix (serde's own array support stops at 32). Use as
/// `#[serde(with = "caucus_proto::codec::fixed")]`.
pub mod fixed {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::ser::SerializeTuple;
    use serde::{Deserializer, Serializer};
    use std::fmt;

    /// Writes the array as `N` bare bytes.
    pub fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(N)?;
        for b in bytes {
            t.serialize_element(b)?;
        }
        t.end()
    }

    /// Reads exactly `N` bytes.
    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        struct ArrayVisitor<const N: usize>;
        impl<'de, const N: usize> Visitor<'de> for ArrayVisitor<N> {
            type Value = [u8; N];
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{N} bytes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; N], A::Error> {
                let mut out = [0u8; N];
                for (i, slot) in out.iter_mut().enumerate() {
                    *slot = seq
                        .next_element()?
                        .ok_or_else(|| A::Error::invalid_length(i, &self))?;
                }
                Ok(out)
            }
        }
        d.deserialize_tuple(N, ArrayVisitor::<N>)
    }
}

/// Serde glue for variable-length byte strings: a varint length and the raw bytes,
/// decoded in one read instead of byte by byte. Use as
/// `#[serde(with = "caucus_proto::codec::bytes")]` on a `Vec<u8>`.
pub mod bytes {
    use serde::de::{SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    /// Writes a varint length and the bytes.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    /// Reads a varint length and that many bytes (bounded by the codec's limit).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct BytesVisitor;
        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_byte_buf(BytesVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_oversized_input_before_reading() {
        let big = vec![0u8; 17];
        assert_eq!(
            decode::<u8, 16>(&big),
            Err(DecodeError::TooLarge { len: 17, limit: 16 })
        );
    }

    #[test]
    fn refuses_length_prefix_beyond_limit() {
        // A string claiming 2^32 bytes in a 9-byte message.
        let hostile = [253u8, 0, 0, 0, 0, 1, 0, 0, 0];
        assert!(matches!(
            decode::<String, 1024>(&hostile),
            Err(DecodeError::TooLarge { .. }) | Err(DecodeError::Truncated)
        ));
    }

    #[test]
    fn refuses_trailing_bytes() {
        assert_eq!(
            decode::<u8, 16>(&[1, 2]),
            Err(DecodeError::TrailingBytes { extra: 1 })
        );
    }

    #[test]
    fn refuses_non_minimal_varint() {
        // 5 as a u16 varint (marker 251) instead of the single byte 5.
        assert_eq!(
            decode::<u32, 16>(&[251, 5, 0]),
            Err(DecodeError::NonCanonical)
        );
    }

    #[test]
    fn encode_refuses_over_limit() {
        let s = "x".repeat(20);
        assert!(matches!(
            encode::<String, 16>(&s),
            Err(EncodeError::TooLarge { .. })
        ));
    }
}
