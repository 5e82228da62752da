//! Size limits every decoder enforces. A second implementation must use the same numbers.
//!
//! The codec refuses any input longer than the limit of the type being decoded before
//! reading it, and bincode's allocation accounting refuses any length prefix that would
//! claim more than the limit, so a decode never allocates more than its limit.

/// Largest encoded [`crate::Envelope`] accepted from anyone (header, ciphertext and proof).
///
/// Sized for the largest legitimate entry: an epoch change in a 1,000-device group
/// carries one sealed key per remaining device (about 130 bytes each).
pub const MAX_ENVELOPE_BYTES: usize = 256 * 1024;

/// Largest encoded [`crate::Body`] (the plaintext inside an envelope).
pub const MAX_BODY_BYTES: usize = MAX_ENVELOPE_BYTES - 256;

/// Longest short text field: names, departments, shifts, jobs, handles, tags, titles, places.
pub const MAX_SHORT_TEXT: usize = 256;

/// Longest long text field: the text of a note, a follow-up task or a notice body.
pub const MAX_LONG_TEXT: usize = 16 * 1024;

/// Most field assignments in one [`crate::Operation::ContactSet`].
pub const MAX_FIELDS_PER_SET: usize = 64;

/// Most sealed keys in one [`crate::Operation::EpochKeyDelivered`] (one per device).
pub const MAX_KEY_DELIVERIES: usize = 1_500;

/// Largest single sealed key for one device, in bytes.
pub const MAX_SEALED_KEY_BYTES: usize = 160;

/// Most records in one [`crate::Operation::Records`] entry (a spreadsheet import packs
/// rows this many at a time, fewer when their text is long).
pub const MAX_RECORDS_PER_ENTRY: usize = 1_024;

/// About how many bytes of text [`crate::Operation::pack`] puts in one `Records` entry
/// when packing an import: well under [`MAX_BODY_BYTES`] with the records' own framing.
pub const PACK_TEXT_BYTES: usize = 128 * 1024;

/// Most device [`crate::Cut`]s in one removal or role change (one per device of the member).
pub const MAX_CUTS: usize = 64;

/// Most authority heads an entry names ([`crate::Chain::heads`]).
pub const MAX_HEADS: usize = 16;

/// Most members one [`crate::Operation::NoticeDelivered`] names.
pub const MAX_DELIVERED_MEMBERS: usize = 4_096;

/// Largest encoded [`crate::ReceiptBatch`] (receipts for one notice, sent toward its
/// sender in one frame).
pub const MAX_RECEIPT_BATCH_BYTES: usize = 64 * 1024;

/// Most receipts in one [`crate::ReceiptBatch`].
pub const MAX_RECEIPTS_PER_BATCH: usize = 256;

/// Largest sealed receipt ciphertext (device key, notice id and signature, plus the tag).
pub const MAX_RECEIPT_CIPHERTEXT: usize = 160;
