//! The entry: an [`Envelope`] a relay can see, sealing a [`Body`] only members can read.

use crate::codec::{self, DecodeError, EncodeError};
use crate::ids::{DeviceKey, EntryId, GroupId, Hlc, IdentityKey, Signature};
use crate::limits::{MAX_BODY_BYTES, MAX_ENVELOPE_BYTES};
use crate::op::Operation;
use serde::{Deserialize, Serialize};

/// The envelope version this build writes and reads.
pub const ENVELOPE_VERSION: u8 = 1;
/// The body version this build writes and reads.
pub const BODY_VERSION: u8 = 1;

/// The clear part of an envelope. Its encoding is the associated data of the AEAD, so
/// moving a ciphertext to another group, epoch or nonce makes it fail to open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EnvelopeHeader {
    /// [`ENVELOPE_VERSION`]; always the first byte of an envelope.
    pub version: u8,
    /// The group the entry belongs to.
    pub group: GroupId,
    /// The epoch whose key sealed the body.
    pub epoch: u64,
    /// The AEAD nonce (XChaCha20-Poly1305: 24 random bytes).
    #[serde(with = "crate::codec::fixed")]
    pub nonce: [u8; 24],
}

impl EnvelopeHeader {
    /// The header's encoding: the AEAD's associated data.
    pub fn encode(&self) -> Vec<u8> {
        // A header is fixed-size apart from the epoch varint: at most 50 bytes, always encodes.
        codec::encode::<_, 64>(self).unwrap_or_default()
    }
}

/// What travels between nodes and sits on every disk: the header, the sealed body and a
/// membership proof that a relay can check without any content key and without learning
/// which member wrote the entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Envelope {
    /// Version, group, epoch, nonce.
    pub header: EnvelopeHeader,
    /// The sealed [`Body`] (AEAD output, tag included).
    #[serde(with = "crate::codec::bytes")]
    pub ciphertext: Vec<u8>,
    /// Signature over header and ciphertext by the epoch's membership key (see
    /// `caucus-crypto`); every member of the epoch can make it, a relay can check it.
    pub proof: Signature,
}

impl Envelope {
    /// Encodes the envelope, refusing one larger than [`MAX_ENVELOPE_BYTES`].
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        codec::encode::<_, MAX_ENVELOPE_BYTES>(self)
    }

    /// Decodes an envelope from untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, DecodeError> {
        check_version(bytes, "envelope", ENVELOPE_VERSION)?;
        codec::decode::<_, MAX_ENVELOPE_BYTES>(bytes)
    }

    /// The entry's content id: BLAKE3 of its encoding.
    pub fn id(&self) -> Result<EntryId, EncodeError> {
        Ok(EntryId::of_encoded(&self.encode()?))
    }
}

/// Who wrote an entry: the organizer's identity and the device that signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Author {
    /// The organizer.
    pub identity: IdentityKey,
    /// The device, certified by the identity.
    pub device: DeviceKey,
}

/// The plaintext of an entry, readable only by members holding the epoch key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Body {
    /// [`BODY_VERSION`]; always the first byte of a body.
    pub version: u8,
    /// Who wrote it.
    pub author: Author,
    /// When, on the author's hybrid logical clock.
    pub hlc: Hlc,
    /// What it says.
    pub op: Operation,
    /// The author device's signature over [`Body::signed_bytes`].
    pub signature: Signature,
}

/// The part of a body the device signs, bound to the group and epoch it is sealed for,
/// so a signed body cannot be replayed into another group or epoch.
#[derive(Serialize)]
struct SignedBody<'a> {
    domain: &'a str,
    group: &'a GroupId,
    epoch: u64,
    version: u8,
    author: &'a Author,
    hlc: &'a Hlc,
    op: &'a Operation,
}

/// Domain separation string of body signatures.
const BODY_SIGNATURE_DOMAIN: &str = "caucus body signature v1";

impl Body {
    /// The bytes the author device signs: a domain string, the group, the epoch, and the
    /// body without its signature.
    pub fn signed_bytes(&self, group: &GroupId, epoch: u64) -> Result<Vec<u8>, EncodeError> {
        Self::signed_bytes_for(group, epoch, &self.author, &self.hlc, &self.op)
    }

    /// [`Body::signed_bytes`] for a body that has not been built yet.
    pub fn signed_bytes_for(
        group: &GroupId,
        epoch: u64,
        author: &Author,
        hlc: &Hlc,
        op: &Operation,
    ) -> Result<Vec<u8>, EncodeError> {
        op.validate()?;
        codec::encode::<_, MAX_BODY_BYTES>(&SignedBody {
            domain: BODY_SIGNATURE_DOMAIN,
            group,
            epoch,
            version: BODY_VERSION,
            author,
            hlc,
            op,
        })
    }

    /// Encodes the body, refusing one that breaks a field limit or [`MAX_BODY_BYTES`].
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        self.op.validate()?;
        codec::encode::<_, MAX_BODY_BYTES>(self)
    }

    /// Decodes a body from opened (but not yet verified) plaintext.
    pub fn decode(bytes: &[u8]) -> Result<Body, DecodeError> {
        check_version(bytes, "body", BODY_VERSION)?;
        let body: Body = codec::decode::<_, MAX_BODY_BYTES>(bytes)?;
        body.op.validate().map_err(|e| match e {
            EncodeError::Invalid(why) => DecodeError::Invalid(why),
            other => DecodeError::Malformed(other.to_string()),
        })?;
        Ok(body)
    }
}

fn check_version(bytes: &[u8], what: &'static str, supported: u8) -> Result<(), DecodeError> {
    match bytes.first() {
        None => Err(DecodeError::Truncated),
        Some(&v) if v != supported => Err(DecodeError::UnsupportedVersion {
            what,
            found: v,
            supported,
        }),
        Some(_) => Ok(()),
    }
}
