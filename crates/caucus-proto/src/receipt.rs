//! Receipts: how a device tells the sender of an urgent notice that it holds the notice,
//! without writing an entry every member would store.
//!
//! A receipt is sealed under the notice's epoch (see `caucus-crypto`'s `receipt` module),
//! so the nodes and relays that carry it toward the sender learn only that some member
//! confirmed some entry. Receipts for one notice travel together in a [`ReceiptBatch`],
//! hop by hop back along the path the notice came by (`proto/PROTOCOL.md`, "Receipts").

use crate::codec::{self, DecodeError, EncodeError};
use crate::ids::{DeviceKey, EntryId, GroupId, NoticeId, Signature};
use crate::limits::{MAX_RECEIPT_BATCH_BYTES, MAX_RECEIPT_CIPHERTEXT, MAX_RECEIPTS_PER_BATCH};
use serde::{Deserialize, Serialize};

/// What a receipt says, inside its ciphertext: which device holds which notice, signed
/// by that device over [`receipt_signed_bytes`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptBody {
    /// The device that holds the notice.
    pub device: DeviceKey,
    /// The notice it holds.
    pub notice: NoticeId,
    /// The device's signature.
    pub signature: Signature,
}

impl ReceiptBody {
    /// Encodes the plaintext of a receipt (always about 120 bytes).
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        codec::encode::<_, MAX_RECEIPT_CIPHERTEXT>(self)
    }

    /// Decodes the plaintext of a receipt.
    pub fn decode(bytes: &[u8]) -> Result<ReceiptBody, DecodeError> {
        codec::decode::<_, MAX_RECEIPT_CIPHERTEXT>(bytes)
    }
}

/// The bytes a device signs in a receipt: domain, group, the entry that carried the
/// notice, and the notice.
pub fn receipt_signed_bytes(group: &GroupId, entry: &EntryId, notice: &NoticeId) -> Vec<u8> {
    // Fixed-size fields: always encodes.
    codec::encode::<_, 128>(&("caucus receipt signature v1", group, entry, notice))
        .unwrap_or_default()
}

/// A receipt as it travels: the epoch it is sealed under, a nonce and the ciphertext of
/// its [`ReceiptBody`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SealedReceipt {
    /// The epoch whose content key sealed it (the notice's epoch).
    pub epoch: u64,
    /// XChaCha20-Poly1305 nonce.
    #[serde(with = "crate::codec::fixed")]
    pub nonce: [u8; 24],
    /// The sealed [`ReceiptBody`], tag included.
    #[serde(with = "crate::codec::bytes")]
    pub ciphertext: Vec<u8>,
}

/// Receipts for one entry of one group, sent toward the entry's sender in one frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptBatch {
    /// The group.
    pub group: GroupId,
    /// The entry that carried the notice.
    pub entry: EntryId,
    /// 1 to [`MAX_RECEIPTS_PER_BATCH`] sealed receipts.
    pub receipts: Vec<SealedReceipt>,
}

impl ReceiptBatch {
    fn validate(&self) -> Result<(), EncodeError> {
        if self.receipts.is_empty() || self.receipts.len() > MAX_RECEIPTS_PER_BATCH {
            return Err(EncodeError::Invalid(
                "a receipt batch carries 1 to 256 receipts",
            ));
        }
        if self
            .receipts
            .iter()
            .any(|r| r.ciphertext.len() > MAX_RECEIPT_CIPHERTEXT)
        {
            return Err(EncodeError::Invalid("receipt too long"));
        }
        Ok(())
    }

    /// Encodes the batch, refusing one that breaks its limits.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        self.validate()?;
        codec::encode::<_, MAX_RECEIPT_BATCH_BYTES>(self)
    }

    /// Decodes a batch from untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<ReceiptBatch, DecodeError> {
        let batch: ReceiptBatch = codec::decode::<_, MAX_RECEIPT_BATCH_BYTES>(bytes)?;
        batch.validate().map_err(|e| match e {
            EncodeError::Invalid(why) => DecodeError::Invalid(why),
            other => DecodeError::Malformed(other.to_string()),
        })?;
        Ok(batch)
    }
}
