//! The entry: an [`Envelope`] a relay can see, sealing a [`Body`] only members can read.

use crate::codec::{self, DecodeError, EncodeError};
use crate::ids::{DeviceKey, EntryId, EventId, GroupId, Hlc, IdentityKey, Signature};
use crate::limits::{MAX_BODY_BYTES, MAX_ENVELOPE_BYTES, MAX_HEADS};
use crate::op::Operation;
use serde::{Deserialize, Serialize};

/// The envelope version this build writes and reads.
pub const ENVELOPE_VERSION: u8 = 1;
/// The body version this build writes and reads. Version 2 added [`Chain`].
pub const BODY_VERSION: u8 = 2;

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

/// Where an entry sits in causal order: its place in its device's own chain of entries
/// in the group, and, for an authority entry, the authority entries it was made on.
///
/// The chain makes a device's history tamper-evident: two entries with one `seq` (or an
/// entry whose `prev` is not the entry before it) are an equivocation, and a removal can
/// cut a device at an exact entry. The heads order authority by causality rather than by
/// the author's clock.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Chain {
    /// 1 for a device's first entry in the group, then one more per entry.
    pub seq: u64,
    /// The event id of the device's entry `seq - 1`; `None` exactly when `seq` is 1.
    pub prev: Option<EventId>,
    /// For an authority entry ([`Operation::is_authority`]): the event ids of the
    /// authority entries it was made on, none of which precedes another, sorted, at most
    /// [`MAX_HEADS`]. Empty for every other entry.
    pub heads: Vec<EventId>,
}

impl Chain {
    /// The first entry of a device in a group, made on `heads`.
    pub fn first(heads: Vec<EventId>) -> Chain {
        Chain {
            seq: 1,
            prev: None,
            heads,
        }
    }

    /// Checks the rules above for an entry carrying `op`.
    pub fn validate(&self, op: &Operation) -> Result<(), EncodeError> {
        if self.seq == 0 {
            return Err(EncodeError::Invalid("sequence numbers start at 1"));
        }
        if (self.seq == 1) != self.prev.is_none() {
            return Err(EncodeError::Invalid(
                "an entry names its predecessor exactly when it is not its device's first",
            ));
        }
        if self.heads.len() > MAX_HEADS {
            return Err(EncodeError::Invalid("too many authority heads"));
        }
        if self.heads.windows(2).any(|w| w[0] >= w[1]) {
            return Err(EncodeError::Invalid(
                "authority heads must be sorted, without repeats",
            ));
        }
        if !self.heads.is_empty() && !op.is_authority() {
            return Err(EncodeError::Invalid(
                "only authority entries name authority heads",
            ));
        }
        Ok(())
    }
}

/// The plaintext of an entry, readable only by members holding the epoch key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Body {
    /// [`BODY_VERSION`]; always the first byte of a body.
    pub version: u8,
    /// Who wrote it.
    pub author: Author,
    /// Its place in causal order.
    pub chain: Chain,
    /// When, on the author's hybrid logical clock.
    pub hlc: Hlc,
    /// What it says.
    pub op: Operation,
    /// The author device's signature over [`Body::signed_bytes`].
    pub signature: Signature,
}

/// What a body says, without its signature: the bytes its [`EventId`] names.
#[derive(Serialize)]
struct EventBytes<'a> {
    version: u8,
    author: &'a Author,
    chain: &'a Chain,
    hlc: &'a Hlc,
    op: &'a Operation,
}

/// The prefix of the bytes a device signs: binds the event to the group and epoch it is
/// sealed for, so a signed body cannot be replayed into another group or epoch.
#[derive(Serialize)]
struct SignedPrefix<'a> {
    domain: &'a str,
    group: &'a GroupId,
    epoch: u64,
}

/// Domain separation string of body signatures.
const BODY_SIGNATURE_DOMAIN: &str = "caucus body signature v2";

impl Body {
    /// The body's encoding without its signature (version, author, chain, clock,
    /// operation): what its [`EventId`] is the hash of.
    pub fn event_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        Self::event_bytes_for(&self.author, &self.chain, &self.hlc, &self.op)
    }

    /// [`Body::event_bytes`] for a body that has not been built yet. Checks the
    /// operation's limits and the chain's rules.
    pub fn event_bytes_for(
        author: &Author,
        chain: &Chain,
        hlc: &Hlc,
        op: &Operation,
    ) -> Result<Vec<u8>, EncodeError> {
        op.validate()?;
        chain.validate(op)?;
        codec::encode::<_, MAX_BODY_BYTES>(&EventBytes {
            version: BODY_VERSION,
            author,
            chain,
            hlc,
            op,
        })
    }

    /// The body's event id.
    pub fn event_id(&self) -> Result<EventId, EncodeError> {
        Ok(EventId::of_event_bytes(&self.event_bytes()?))
    }

    /// The bytes the author device signs for `event_bytes` sealed in `group` and
    /// `epoch`: a domain string, the group, the epoch, then the event bytes (together,
    /// the codec encoding of those fields in that order).
    pub fn signed_bytes_of(group: &GroupId, epoch: u64, event_bytes: &[u8]) -> Vec<u8> {
        // Three fixed-size fields and a short string: always encodes.
        let mut out = codec::encode::<_, 128>(&SignedPrefix {
            domain: BODY_SIGNATURE_DOMAIN,
            group,
            epoch,
        })
        .unwrap_or_default();
        out.extend_from_slice(event_bytes);
        out
    }

    /// The bytes the author device signs: [`Body::signed_bytes_of`] its event bytes.
    pub fn signed_bytes(&self, group: &GroupId, epoch: u64) -> Result<Vec<u8>, EncodeError> {
        Ok(Self::signed_bytes_of(group, epoch, &self.event_bytes()?))
    }

    /// Encodes the body, refusing one that breaks a field limit, the chain's rules or
    /// [`MAX_BODY_BYTES`].
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        self.op.validate()?;
        self.chain.validate(&self.op)?;
        codec::encode::<_, MAX_BODY_BYTES>(self)
    }

    /// Decodes a body from opened (but not yet verified) plaintext.
    pub fn decode(bytes: &[u8]) -> Result<Body, DecodeError> {
        check_version(bytes, "body", BODY_VERSION)?;
        let body: Body = codec::decode::<_, MAX_BODY_BYTES>(bytes)?;
        (body.op.validate())
            .and_then(|()| body.chain.validate(&body.op))
            .map_err(|e| match e {
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
