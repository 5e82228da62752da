//! Wire types of caucus and the one module that turns them into bytes.
//!
//! Everything an organizer shares is an **entry**: created once, never edited, named by
//! the BLAKE3 hash of its encoded [`Envelope`] (its [`EntryId`]) and idempotent to receive
//! twice. The envelope is what a relay sees: a version, the opaque group id, the epoch,
//! a nonce, the ciphertext and a membership proof. Inside the ciphertext sits a [`Body`]:
//! the author, its place in causal order (a [`Chain`]: the author device's sequence
//! number and previous entry, and for an authority entry the authority heads it was made
//! on), a hybrid logical clock timestamp, one [`Operation`] and the author device's
//! signature. Everything but the signature is the event, named by its [`EventId`].
//!
//! This crate does no I/O and no cryptography. It fixes the shapes and the bytes:
//! all encoding goes through [`codec`], which bounds every decode (see [`limits`]) so
//! hostile bytes can never make a node allocate more than the limit, and never panic.
//! The byte-level layout is specified in `proto/PROTOCOL.md` at the repository root.

pub mod codec;
mod entry;
mod ids;
pub mod limits;
mod op;
mod receipt;

pub use codec::{DecodeError, EncodeError};
pub use entry::{Author, BODY_VERSION, Body, Chain, ENVELOPE_VERSION, Envelope, EnvelopeHeader};
pub use ids::{
    ContactId, Day, DeviceKey, EntryId, EventId, FollowupId, GroupId, Hlc, IdentityKey, NoticeId,
    Signature,
};
pub use op::{
    ContactField, Cut, DeviceCert, KeyDelivery, Note, NoticeContent, Operation, Rating,
    RatingError, Role,
};
pub use receipt::{ReceiptBatch, ReceiptBody, SealedReceipt, receipt_signed_bytes};
