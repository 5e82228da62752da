//! The messages of `/caucus/sync/1`, their bounds, and their validation.
//!
//! Every message is one [`Message`] value encoded with `caucus_proto::codec` (bincode
//! 2.0.1 standard configuration: varint integers, enum variants as a varint index,
//! sequences as a varint length then the elements, fixed arrays as bare bytes), bounded by
//! [`MAX_MESSAGE_BYTES`]. The transport frames messages (one frame, one message); the
//! session never sees a partial message.
//!
//! ```text
//! Message   = 0 Hello     { version: u8 (=1), group: [u8;16], proof: bytes }
//!           | 1 Reconcile { round: varint, ranges: [Range] }          ≤ MAX_RECONCILE_BYTES
//!           | 2 Get       { req: varint, ids: [[u8;32]] }             1..=MAX_IDS_PER_REQUEST ids
//!           | 3 Entries   { req: varint, entries: [bytes], missing: [[u8;32]] }
//!           | 4 Finish
//! Range     = { upper: Bound, mode: Mode }            lower = previous range's upper (first: 0…0)
//! Bound     = 0 Prefix(bytes ≤ 32, zero-padded)  | 1 End
//! Mode      = 0 Skip | 1 Fingerprint([u8;16]) | 2 Ids([[u8;32]]) | 3 Lacking([[u8;32]])
//! bytes     = varint length, then the bytes
//! ```
//!
//! The ranges of one `Reconcile` tile the whole id space in order: upper bounds strictly
//! increase, no range is empty, and the last one ends at `End`. Ids inside `Ids` and
//! `Lacking` strictly increase and lie inside their range. Anything else is a
//! [`SyncError`] that ends the session.

use crate::fingerprint::{Bound, Fingerprint, IdRange};
use caucus_proto::codec::{self, DecodeError, EncodeError};
use caucus_proto::limits::MAX_ENVELOPE_BYTES;
use caucus_proto::{EntryId, GroupId};
use serde::{Deserialize, Serialize};

/// Version of the sync protocol carried in [`Hello`].
pub const PROTOCOL_VERSION: u8 = 1;

/// Largest envelope bytes one [`Entries`] response carries (the responder stops adding
/// entries before passing it; one entry always fits, since it is at least
/// [`MAX_ENVELOPE_BYTES`]).
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Largest encoded message of any kind: a full [`Entries`] response plus its ids.
pub const MAX_MESSAGE_BYTES: usize = MAX_RESPONSE_BYTES + 64 * 1024;

/// Largest encoded [`Reconcile`] message.
pub const MAX_RECONCILE_BYTES: usize = 128 * 1024;

/// Most ranges in one [`Reconcile`] message.
pub const MAX_RANGES_PER_MESSAGE: usize = 4096;

/// Most ids one [`Get`] asks for (and so most entries plus missing ids in the answer).
pub const MAX_IDS_PER_REQUEST: usize = 256;

/// Largest membership proof in a [`Hello`].
pub const MAX_PROOF_BYTES: usize = 4096;

/// Longest bound prefix: an id.
pub const MAX_BOUND_BYTES: usize = 32;

const _: () = assert!(MAX_RESPONSE_BYTES >= MAX_ENVELOPE_BYTES);

/// Why a sync session ended early. Every peer misbehaviour maps to one variant; none panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The bytes are not a message (bad encoding, oversized, truncated, trailing bytes).
    #[error("undecodable sync message: {0}")]
    Decode(#[from] DecodeError),
    /// A message of ours could not be encoded (a bug, never the peer's doing).
    #[error("could not encode a sync message: {0}")]
    Encode(#[from] EncodeError),
    /// The peer speaks another version of the protocol.
    #[error("unsupported sync protocol version {found} (this build speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion {
        /// The version the peer sent.
        found: u8,
    },
    /// The peer's hello names another group.
    #[error("peer is syncing another group")]
    WrongGroup,
    /// The peer's membership proof did not verify.
    #[error("peer's membership proof was rejected")]
    NotAMember,
    /// A message arrived that the session's state does not allow.
    #[error("unexpected {what} message")]
    Unexpected {
        /// Which message kind.
        what: &'static str,
    },
    /// A message field is larger than the protocol allows.
    #[error("{what} too large: {len}, limit is {limit}")]
    TooLarge {
        /// Which field or message.
        what: &'static str,
        /// Its size.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// Ranges are out of order, overlapping, empty, or do not end at the end of the id space.
    #[error("malformed ranges: {0}")]
    BadRanges(&'static str),
    /// Ids in a list are out of order, repeated, or outside their range.
    #[error("malformed id list: {0}")]
    BadIds(&'static str),
    /// A reconciliation message carries the wrong round number.
    #[error("reconciliation round {found} out of sequence (expected {expected})")]
    WrongRound {
        /// The round this side expected.
        expected: u32,
        /// The round the peer sent.
        found: u32,
    },
    /// Reconciliation went on for more rounds than any honest peer needs.
    #[error("reconciliation did not finish within {limit} rounds")]
    TooManyRounds {
        /// The limit.
        limit: u32,
    },
    /// The peer sent more requests than it may have in flight.
    #[error("peer exceeded {limit} requests in flight")]
    Flood {
        /// The limit.
        limit: usize,
    },
    /// An answer names a request this side never made.
    #[error("answer to unknown request {req}")]
    UnknownRequest {
        /// The request id.
        req: u32,
    },
    /// An answer carries an entry that was not asked for (or whose bytes do not hash to
    /// a requested id).
    #[error("peer sent an entry that was not requested")]
    Unrequested,
    /// An answer carries nothing for a non-empty request.
    #[error("peer answered a request with nothing")]
    NoProgress,
    /// The peer went silent for longer than the retransmission budget.
    #[error("peer timed out")]
    Timeout,
}

/// One message of the sync protocol (see the module docs for the layout).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Opens the session: protocol version, group, membership proof.
    Hello(Hello),
    /// One round of range-based reconciliation.
    Reconcile(Reconcile),
    /// A request for entries by id.
    Get(Get),
    /// The answer to a [`Get`].
    Entries(Entries),
    /// The sender has reconciled and fetched everything it needs; it will send no more
    /// requests (it still answers the peer's).
    Finish,
}

/// The first message of each side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`].
    pub version: u8,
    /// The group both sides sync.
    pub group: GroupId,
    /// Membership proof, opaque to this crate (see [`crate::session`] on authentication).
    #[serde(with = "caucus_proto::codec::bytes")]
    pub proof: Vec<u8>,
}

/// One reconciliation round: ranges tiling the id space.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconcile {
    /// Position in the exchange: the initiator's hello is round 0, the responder's 1, the
    /// first `Reconcile` 2, and so on, alternating sides.
    pub round: u32,
    /// The ranges, in order.
    pub ranges: Vec<WireRange>,
}

/// A range as sent: its upper bound (its lower bound is the previous range's upper) and
/// what the sender says about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRange {
    /// First position past the range.
    pub upper: WireBound,
    /// What the sender says about the range.
    pub mode: Mode,
}

/// A bound as sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireBound {
    /// A prefix of at most 32 bytes, zero-padded to a full bound.
    Prefix(#[serde(with = "caucus_proto::codec::bytes")] Vec<u8>),
    /// After every id.
    End,
}

/// What a range in a [`Reconcile`] says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Settled: nothing to do here.
    Skip,
    /// "My ids here have this fingerprint": answer with `Skip` when yours match, else with
    /// a finer split or your ids.
    Fingerprint(Fingerprint),
    /// "These are all my ids here": answer with `Lacking`, the ones I do not have.
    Ids(Vec<EntryId>),
    /// "You lack these ids here, which I have": fetch them; no answer.
    Lacking(Vec<EntryId>),
}

/// A request for entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Get {
    /// Request id, chosen by the requester, increasing.
    pub req: u32,
    /// The ids wanted, at most [`MAX_IDS_PER_REQUEST`], no repeats.
    pub ids: Vec<EntryId>,
}

/// An answer to a [`Get`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entries {
    /// The request answered.
    pub req: u32,
    /// Encoded envelopes, each named by its BLAKE3 hash; a prefix of the request that fits
    /// [`MAX_RESPONSE_BYTES`] (at least one entry unless all are missing).
    pub entries: Vec<Blob>,
    /// Requested ids the responder does not hold.
    pub missing: Vec<EntryId>,
}

/// An opaque byte string, sent as a varint length and the raw bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blob(#[serde(with = "caucus_proto::codec::bytes")] pub Vec<u8>);

/// A validated range of a received [`Reconcile`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Range {
    pub(crate) range: IdRange,
    pub(crate) mode: Mode,
}

impl Message {
    /// Encodes the message.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        codec::encode::<_, MAX_MESSAGE_BYTES>(self)
    }

    /// Decodes a message from untrusted bytes and checks every field bound (not yet the
    /// range structure of a `Reconcile`, which the session checks when it reads the round).
    pub fn decode(bytes: &[u8]) -> Result<Message, SyncError> {
        let msg: Message = codec::decode::<_, MAX_MESSAGE_BYTES>(bytes)?;
        match &msg {
            Message::Hello(h) => {
                if h.version != PROTOCOL_VERSION {
                    return Err(SyncError::UnsupportedVersion { found: h.version });
                }
                check_len("membership proof", h.proof.len(), MAX_PROOF_BYTES)?;
            }
            Message::Reconcile(r) => {
                check_len("reconcile message", bytes.len(), MAX_RECONCILE_BYTES)?;
                check_len("range list", r.ranges.len(), MAX_RANGES_PER_MESSAGE)?;
            }
            Message::Get(g) => {
                check_len("request", g.ids.len(), MAX_IDS_PER_REQUEST)?;
                if g.ids.is_empty() {
                    return Err(SyncError::BadIds("empty request"));
                }
                let mut sorted = g.ids.clone();
                sorted.sort_unstable();
                if sorted.windows(2).any(|w| w[0] == w[1]) {
                    return Err(SyncError::BadIds("repeated id in request"));
                }
            }
            Message::Entries(e) => {
                check_len(
                    "answer",
                    e.entries.len() + e.missing.len(),
                    MAX_IDS_PER_REQUEST,
                )?;
                for blob in &e.entries {
                    check_len("entry", blob.0.len(), MAX_ENVELOPE_BYTES)?;
                }
            }
            Message::Finish => {}
        }
        Ok(msg)
    }

    /// The message kind, for errors and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello(_) => "hello",
            Message::Reconcile(_) => "reconcile",
            Message::Get(_) => "get",
            Message::Entries(_) => "entries",
            Message::Finish => "finish",
        }
    }
}

fn check_len(what: &'static str, len: usize, limit: usize) -> Result<(), SyncError> {
    if len > limit {
        Err(SyncError::TooLarge { what, len, limit })
    } else {
        Ok(())
    }
}

impl Reconcile {
    /// Checks the range structure (tiling, order, ids inside their ranges) and returns the
    /// ranges with both bounds resolved.
    pub(crate) fn validate(self) -> Result<Vec<Range>, SyncError> {
        if self.ranges.is_empty() {
            return Err(SyncError::BadRanges("no ranges"));
        }
        let mut out = Vec::with_capacity(self.ranges.len());
        let mut lower = Bound::START;
        let last = self.ranges.len() - 1;
        for (i, wr) in self.ranges.into_iter().enumerate() {
            let upper = match &wr.upper {
                WireBound::End => Bound::End,
                WireBound::Prefix(p) => {
                    Bound::from_prefix(p).ok_or(SyncError::BadRanges("bound longer than an id"))?
                }
            };
            if upper <= lower {
                return Err(SyncError::BadRanges("ranges out of order or empty"));
            }
            if (i == last) != (upper == Bound::End) {
                return Err(SyncError::BadRanges("ranges must end exactly at the end"));
            }
            let range = IdRange::new(lower, upper);
            if let Mode::Ids(ids) | Mode::Lacking(ids) = &wr.mode {
                check_ids(&range, ids)?;
            }
            out.push(Range {
                range,
                mode: wr.mode,
            });
            lower = upper;
        }
        Ok(out)
    }
}

fn check_ids(range: &IdRange, ids: &[EntryId]) -> Result<(), SyncError> {
    if ids.windows(2).any(|w| w[0] >= w[1]) {
        return Err(SyncError::BadIds("ids out of order or repeated"));
    }
    if ids.iter().any(|id| !range.contains(id)) {
        return Err(SyncError::BadIds("id outside its range"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let msgs = vec![
            Message::Hello(Hello {
                version: PROTOCOL_VERSION,
                group: GroupId([7; 16]),
                proof: vec![1, 2, 3],
            }),
            Message::Reconcile(Reconcile {
                round: 2,
                ranges: vec![
                    WireRange {
                        upper: WireBound::Prefix(vec![0x80]),
                        mode: Mode::Fingerprint(Fingerprint([9; 16])),
                    },
                    WireRange {
                        upper: WireBound::End,
                        mode: Mode::Ids(vec![EntryId([0x90; 32])]),
                    },
                ],
            }),
            Message::Get(Get {
                req: 1,
                ids: vec![EntryId([1; 32])],
            }),
            Message::Entries(Entries {
                req: 1,
                entries: vec![Blob(vec![5; 300])],
                missing: vec![],
            }),
            Message::Finish,
        ];
        for m in msgs {
            let bytes = m.encode().unwrap();
            assert_eq!(Message::decode(&bytes).unwrap(), m);
        }
    }

    #[test]
    fn layout_is_as_documented() {
        let m = Message::Reconcile(Reconcile {
            round: 2,
            ranges: vec![
                WireRange {
                    upper: WireBound::Prefix(vec![0xab]),
                    mode: Mode::Skip,
                },
                WireRange {
                    upper: WireBound::End,
                    mode: Mode::Fingerprint(Fingerprint([0x11; 16])),
                },
            ],
        });
        let mut want = vec![1, 2, 2, 0, 1, 0xab, 0, 1, 1];
        want.extend([0x11; 16]);
        assert_eq!(m.encode().unwrap(), want);
        assert_eq!(Message::Finish.encode().unwrap(), vec![4]);
    }

    #[test]
    fn range_structure_is_checked() {
        let r = |ranges: Vec<WireRange>| Reconcile { round: 2, ranges }.validate();
        let p = |b: &[u8], mode| WireRange {
            upper: WireBound::Prefix(b.to_vec()),
            mode,
        };
        let end = |mode| WireRange {
            upper: WireBound::End,
            mode,
        };
        assert!(r(vec![end(Mode::Skip)]).is_ok());
        assert!(matches!(r(vec![]), Err(SyncError::BadRanges(_))));
        assert!(matches!(
            r(vec![p(&[0x80], Mode::Skip)]),
            Err(SyncError::BadRanges(_))
        ));
        assert!(matches!(
            r(vec![
                p(&[0x80], Mode::Skip),
                p(&[0x40], Mode::Skip),
                end(Mode::Skip)
            ]),
            Err(SyncError::BadRanges(_))
        ));
        assert!(matches!(
            r(vec![p(&[], Mode::Skip), end(Mode::Skip)]),
            Err(SyncError::BadRanges(_))
        ));
        assert!(matches!(
            r(vec![end(Mode::Skip), end(Mode::Skip)]),
            Err(SyncError::BadRanges(_))
        ));
        assert!(matches!(
            r(vec![p(&[1; 33], Mode::Skip), end(Mode::Skip)]),
            Err(SyncError::BadRanges(_))
        ));
        assert!(matches!(
            r(vec![
                p(&[0x80], Mode::Ids(vec![EntryId([0x90; 32])])),
                end(Mode::Skip)
            ]),
            Err(SyncError::BadIds(_))
        ));
        assert!(matches!(
            r(vec![end(Mode::Lacking(vec![
                EntryId([2; 32]),
                EntryId([1; 32])
            ]))]),
            Err(SyncError::BadIds(_))
        ));
    }
}
