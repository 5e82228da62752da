//! Sealing and opening receipts: a device's signed "I hold this urgent notice", sealed
//! under the notice's epoch so that whoever carries it toward the sender learns nothing
//! but that some member confirmed some entry.
//!
//! ```text
//! signed     = codec(("caucus receipt signature v1", group, entry, notice))
//! plaintext  = ReceiptBody { device, notice, signature: Ed25519(device key, signed) }
//! ad         = codec(("caucus receipt v1", group, epoch, entry))
//! ciphertext = XChaCha20-Poly1305(receipt key(epoch), random 24-byte nonce, ad, plaintext)
//! ```
//!
//! The receipt key is derived from the epoch secret with its own context string, so a
//! receipt can never be taken for an entry body or the other way round. Opening checks
//! the tag and the device's signature; whether the device belongs to a current member
//! is the model's question, asked by the caller.

use crate::epoch::{EpochKeys, Keyring};
use crate::keys::DeviceKeys;
use caucus_proto::codec;
use caucus_proto::{
    DeviceKey, EntryId, GroupId, NoticeId, ReceiptBody, SealedReceipt, receipt_signed_bytes,
};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use ed25519_dalek::VerifyingKey;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

/// Why a receipt did not open. Carries no content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// No key of the receipt's epoch is held.
    #[error("no key for the receipt's epoch")]
    UnknownEpoch,
    /// The tag did not verify under any key of its epoch (forged, altered, or for
    /// another entry).
    #[error("receipt does not open")]
    Sealed,
    /// The plaintext is not a receipt.
    #[error("malformed receipt")]
    Malformed,
    /// The device's signature does not verify.
    #[error("bad receipt signature")]
    BadSignature,
    /// Sealing failed (never expected).
    #[error("sealing a receipt failed")]
    Seal,
}

fn associated_data(group: &GroupId, epoch: u64, entry: &EntryId) -> Vec<u8> {
    // Fixed-size fields and a varint: always encodes.
    codec::encode::<_, 128>(&("caucus receipt v1", group, epoch, entry)).unwrap_or_default()
}

/// Seals `device`'s receipt for `notice`, carried by `entry`, under `keys` (the epoch the
/// notice was sealed in).
pub fn seal_receipt<R: CryptoRng + ?Sized>(
    keys: &EpochKeys,
    device: &DeviceKeys,
    entry: &EntryId,
    notice: &NoticeId,
    rng: &mut R,
) -> Result<SealedReceipt, ReceiptError> {
    let group = keys.group();
    let body = ReceiptBody {
        device: device.device_key(),
        notice: *notice,
        signature: device.sign(&receipt_signed_bytes(&group, entry, notice)),
    };
    let plaintext = Zeroizing::new(body.encode().map_err(|_| ReceiptError::Seal)?);
    let mut nonce = [0u8; 24];
    rng.fill_bytes(&mut nonce);
    let ad = associated_data(&group, keys.epoch(), entry);
    let ciphertext = XChaCha20Poly1305::new(&(*keys.receipt_key()).into())
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &plaintext,
                aad: &ad,
            },
        )
        .map_err(|_| ReceiptError::Seal)?;
    Ok(SealedReceipt {
        epoch: keys.epoch(),
        nonce,
        ciphertext,
    })
}

/// An opened receipt: `device` confirms it holds `notice`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenedReceipt {
    /// The device that sent it (its signature verified).
    pub device: DeviceKey,
    /// The notice it confirms.
    pub notice: NoticeId,
}

/// Opens a receipt for `entry` with the keys of its epoch in `keyring`, and checks the
/// device's signature.
pub fn open_receipt(
    keyring: &Keyring,
    entry: &EntryId,
    receipt: &SealedReceipt,
) -> Result<OpenedReceipt, ReceiptError> {
    let candidates = keyring.candidates(receipt.epoch);
    if candidates.is_empty() {
        return Err(ReceiptError::UnknownEpoch);
    }
    let ad = associated_data(&keyring.group(), receipt.epoch, entry);
    let plaintext = candidates
        .iter()
        .find_map(|keys| {
            XChaCha20Poly1305::new(&(*keys.receipt_key()).into())
                .decrypt(
                    &XNonce::from(receipt.nonce),
                    Payload {
                        msg: &receipt.ciphertext,
                        aad: &ad,
                    },
                )
                .ok()
        })
        .map(Zeroizing::new)
        .ok_or(ReceiptError::Sealed)?;
    let body = ReceiptBody::decode(&plaintext).map_err(|_| ReceiptError::Malformed)?;
    let key = VerifyingKey::from_bytes(&body.device.0).map_err(|_| ReceiptError::BadSignature)?;
    key.verify_strict(
        &receipt_signed_bytes(&keyring.group(), entry, &body.notice),
        &ed25519_dalek::Signature::from_bytes(&body.signature.0),
    )
    .map_err(|_| ReceiptError::BadSignature)?;
    Ok(OpenedReceipt {
        device: body.device,
        notice: body.notice,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::epoch::EpochSecret;
    use caucus_proto::IdentityKey;

    fn setup() -> (Keyring, DeviceKeys, EntryId, NoticeId) {
        let mut rng = crate::tests::rng(1);
        let group = GroupId([3; 16]);
        let mut keyring = Keyring::new(group);
        keyring.insert(1, EpochSecret::generate(&mut rng)).unwrap();
        let device = DeviceKeys::generate(IdentityKey([1; 32]), &mut rng);
        (keyring, device, EntryId([5; 32]), NoticeId([6; 16]))
    }

    #[test]
    fn a_receipt_opens_for_its_entry_only() {
        let (keyring, device, entry, notice) = setup();
        let keys = keyring.get(1).unwrap();
        let sealed =
            seal_receipt(keys, &device, &entry, &notice, &mut crate::tests::rng(2)).unwrap();
        assert!(sealed.ciphertext.len() <= caucus_proto::limits::MAX_RECEIPT_CIPHERTEXT);
        let opened = open_receipt(&keyring, &entry, &sealed).unwrap();
        assert_eq!(opened.device, device.device_key());
        assert_eq!(opened.notice, notice);
        // Moved to another entry, it does not open.
        assert_eq!(
            open_receipt(&keyring, &EntryId([9; 32]), &sealed),
            Err(ReceiptError::Sealed)
        );
        // Altered, it does not open.
        let mut bent = sealed.clone();
        bent.ciphertext[0] ^= 1;
        assert_eq!(
            open_receipt(&keyring, &entry, &bent),
            Err(ReceiptError::Sealed)
        );
        // Another epoch's keys do not open it.
        let mut later = sealed;
        later.epoch = 2;
        assert_eq!(
            open_receipt(&keyring, &entry, &later),
            Err(ReceiptError::UnknownEpoch)
        );
    }

    #[test]
    fn a_stranger_with_other_keys_cannot_make_one() {
        let (keyring, device, entry, notice) = setup();
        let mut other = Keyring::new(keyring.group());
        other
            .insert(1, EpochSecret::generate(&mut crate::tests::rng(2)))
            .unwrap();
        let forged = seal_receipt(
            other.get(1).unwrap(),
            &device,
            &entry,
            &notice,
            &mut crate::tests::rng(2),
        )
        .unwrap();
        assert_eq!(
            open_receipt(&keyring, &entry, &forged),
            Err(ReceiptError::Sealed)
        );
    }
}
