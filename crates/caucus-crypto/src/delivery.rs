//! New epochs: sealing an epoch secret to each remaining device, and resolving
//! concurrent epoch changes.
//!
//! ## Sealing to one device
//!
//! Each delivery is a one-way Noise message, `Noise_N_25519_ChaChaPoly_BLAKE2s`
//! (`<- s ... -> e, es`), to the recipient device's X25519 key from its certificate, with
//! the epoch secret as payload: 32 (ephemeral) + 32 + 16 (sealed secret and tag) = 80
//! bytes. The prologue binds `group ‖ new epoch ‖ author device ‖ recipient device`, so a
//! delivery copied into another group, epoch, author's entry or recipient's slot does not
//! open. The sender is authenticated by the entry itself: the `EpochKeyDelivered`
//! operation sits in a body signed by the author device, and the prologue ties each
//! delivery to that author. We use `N` rather than `X` (which would also transmit and
//! authenticate the sender's static key) because the entry signature already does that,
//! and `N` costs one Diffie-Hellman and 48 bytes less per device. The cost per device is
//! then one X25519 key generation (basepoint tables) and one X25519 DH (a Montgomery
//! ladder, the floor): about 0.1 ms, so about 100 ms and 111 KiB for 1,000 devices.
//!
//! The `EpochKeyDelivered` entry itself is sealed under the **old** epoch, so a removed
//! member can open that entry, but finds no delivery addressed to any of their devices:
//! they never learn the new secret.
//!
//! ## Concurrent epoch changes
//!
//! Two admins may each remove someone while at epoch `e`, producing two candidates for
//! `e + 1`. [`resolve_epoch`] is the rule every member applies to the same set of
//! candidates (all `EpochKeyDelivered` entries for `e + 1` sealed under `e`):
//!
//! 1. **Winner**: the candidate with the smallest [`BodyId`] (a hash of the
//!    signed body, so it cannot be changed by re-sealing, and no author can aim for it
//!    without grinding signatures). Nodes seal new entries with the winner's secret
//!    ([`crate::epoch::Keyring::prefer`]); every candidate's secret stays in the keyring
//!    so entries already sealed with a losing one still open.
//! 2. **Both removals take effect**: removals and revocations are a set in the model
//!    (a union over every admin's entries, order-independent). If the winner still
//!    delivers to a device that set has removed, the resolution says so
//!    ([`EpochResolution::must_exclude`]) and names the authors of the losing
//!    candidates as the ones to start epoch `e + 2` without them. Anyone else who sees
//!    the fork unresolved after a grace period does it too; if several do, that is again
//!    a fork, resolved by the same rule, and it stops there: every `e + 2` candidate
//!    excludes the same removed devices, so the winner needs no follow-up.
//! 3. Current devices the winner left out (linked concurrently) are listed in
//!    [`EpochResolution::missing`]: any member holding the winning secret delivers it to
//!    them in another `EpochKeyDelivered` for the same epoch (same secret, same key id).
//!
//! Until `e + 2` exists, a device excluded only by the losing candidate can read entries
//! sealed with the winning `e + 1` secret; nodes should not seal new content in an epoch
//! whose resolution asks for a follow-up, except the follow-up itself.

use crate::epoch::EpochSecret;
use crate::keys::DeviceKeys;
use crate::noise::{InjectedResolver, params};
use crate::seal::BodyId;
use caucus_proto::limits::{MAX_KEY_DELIVERIES, MAX_SEALED_KEY_BYTES};
use caucus_proto::{DeviceKey, GroupId, KeyDelivery, Operation};
use rand_core::CryptoRng;
use std::collections::BTreeSet;
use zeroize::Zeroizing;

/// The Noise protocol of epoch deliveries.
pub const DELIVERY_PROTOCOL: &str = "Noise_N_25519_ChaChaPoly_BLAKE2s";

/// Size of one sealed delivery: ephemeral key, secret, tag.
pub const SEALED_DELIVERY_BYTES: usize = 32 + 32 + 16;

/// Why an epoch delivery could not be made or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// More recipients than one entry may carry.
    #[error("too many recipient devices: {0}")]
    TooManyRecipients(usize),
    /// The operation is not an `EpochKeyDelivered`, or its epoch differs.
    #[error("not an epoch key delivery for this epoch")]
    NotADelivery,
    /// No delivery in the operation is addressed to this device.
    #[error("no delivery addressed to this device")]
    NotARecipient,
    /// The sealed key is malformed or does not open (wrong recipient, moved, altered).
    #[error("sealed epoch key does not open")]
    Sealed,
}

fn prologue(group: &GroupId, epoch: u64, author: &DeviceKey, recipient: &DeviceKey) -> Vec<u8> {
    let mut p = Vec::with_capacity(24 + 16 + 8 + 64);
    p.extend_from_slice(b"caucus v1 epoch delivery");
    p.extend_from_slice(group.as_bytes());
    p.extend_from_slice(&epoch.to_le_bytes());
    p.extend_from_slice(author.as_bytes());
    p.extend_from_slice(recipient.as_bytes());
    p
}

/// A recipient of a new epoch: a device and its certified X25519 key. Take both from a
/// certificate that passed [`crate::verify_cert`] (which refuses low-order DH keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recipient {
    /// The device.
    pub device: DeviceKey,
    /// Its X25519 key, from its certificate.
    pub dh: [u8; 32],
}

/// Seals `secret` for `new_epoch` to each recipient, as the operation the author device
/// then seals (under the *old* epoch) with [`crate::seal::seal`]. Recipients are sorted
/// and deduplicated by device key.
pub fn deliver_epoch<R: CryptoRng + ?Sized>(
    group: &GroupId,
    new_epoch: u64,
    secret: &EpochSecret,
    author: &DeviceKey,
    recipients: &[Recipient],
    rng: &mut R,
) -> Result<Operation, DeliveryError> {
    let mut sorted: Vec<&Recipient> = recipients.iter().collect();
    sorted.sort_by_key(|r| r.device);
    sorted.dedup_by_key(|r| r.device);
    if sorted.len() > MAX_KEY_DELIVERIES {
        return Err(DeliveryError::TooManyRecipients(sorted.len()));
    }
    let params = params(DELIVERY_PROTOCOL).map_err(|_| DeliveryError::Sealed)?;
    let mut deliveries = Vec::with_capacity(sorted.len());
    for r in sorted {
        let prologue = prologue(group, new_epoch, author, &r.device);
        let mut hs = snow::Builder::with_resolver(params.clone(), InjectedResolver::new(rng))
            .remote_public_key(&r.dh)
            .and_then(|b| b.prologue(&prologue))
            .and_then(|b| b.build_initiator())
            .map_err(|_| DeliveryError::Sealed)?;
        let mut out = vec![0u8; SEALED_DELIVERY_BYTES];
        let n = hs
            .write_message(secret.expose(), &mut out)
            .map_err(|_| DeliveryError::Sealed)?;
        out.truncate(n);
        deliveries.push(KeyDelivery {
            device: r.device,
            sealed: out,
        });
    }
    Ok(Operation::EpochKeyDelivered {
        epoch: new_epoch,
        deliveries,
    })
}

/// Opens this device's delivery in an `EpochKeyDelivered` operation written by
/// `author` (the entry's author device) in `group`.
pub fn open_delivery(
    group: &GroupId,
    author: &DeviceKey,
    op: &Operation,
    me: &DeviceKeys,
) -> Result<(u64, EpochSecret), DeliveryError> {
    let Operation::EpochKeyDelivered { epoch, deliveries } = op else {
        return Err(DeliveryError::NotADelivery);
    };
    let mine = me.device_key();
    let delivery = deliveries
        .iter()
        .find(|d| d.device == mine)
        .ok_or(DeliveryError::NotARecipient)?;
    if delivery.sealed.len() != SEALED_DELIVERY_BYTES
        || delivery.sealed.len() > MAX_SEALED_KEY_BYTES
    {
        return Err(DeliveryError::Sealed);
    }
    let params = params(DELIVERY_PROTOCOL).map_err(|_| DeliveryError::Sealed)?;
    let prologue = prologue(group, *epoch, author, &mine);
    let dh = me.dh_secret_bytes();
    // The responder of N draws no randomness.
    let mut hs = snow::Builder::with_resolver(params, InjectedResolver::without_randomness())
        .local_private_key(&*dh)
        .and_then(|b| b.prologue(&prologue))
        .and_then(|b| b.build_responder())
        .map_err(|_| DeliveryError::Sealed)?;
    let mut out = Zeroizing::new([0u8; SEALED_DELIVERY_BYTES]);
    let n = hs
        .read_message(&delivery.sealed, &mut *out)
        .map_err(|_| DeliveryError::Sealed)?;
    if n != 32 {
        return Err(DeliveryError::Sealed);
    }
    let mut secret = [0u8; 32];
    secret.copy_from_slice(&out[..32]);
    Ok((*epoch, EpochSecret::from_bytes(secret)))
}

/// One candidate for a new epoch: an opened `EpochKeyDelivered` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochCandidate {
    /// The signed body's id ([`crate::seal::OpenedBody::body_id`]).
    pub body_id: BodyId,
    /// The author device.
    pub author: DeviceKey,
    /// The epoch the entry was sealed under (the parent).
    pub parent_epoch: u64,
    /// The new epoch number.
    pub epoch: u64,
    /// The devices it delivers to.
    pub recipients: BTreeSet<DeviceKey>,
}

impl EpochCandidate {
    /// Builds a candidate from an opened entry; `None` if it is not a delivery.
    pub fn from_opened(opened: &crate::seal::OpenedBody) -> Option<Self> {
        Self::from_op(
            opened.body_id,
            opened.body.author.device,
            opened.epoch,
            &opened.body.op,
        )
    }

    /// Builds a candidate from an opened entry's parts; `None` if `op` is not a delivery.
    pub fn from_op(
        body_id: BodyId,
        author: DeviceKey,
        parent_epoch: u64,
        op: &Operation,
    ) -> Option<Self> {
        let Operation::EpochKeyDelivered { epoch, deliveries } = op else {
            return None;
        };
        Some(Self {
            body_id,
            author,
            parent_epoch,
            epoch: *epoch,
            recipients: deliveries.iter().map(|d| d.device).collect(),
        })
    }
}

/// The outcome of [`resolve_epoch`] for one epoch number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochResolution {
    /// The epoch.
    pub epoch: u64,
    /// Body id of the winning candidate: seal with its secret.
    pub winner: BodyId,
    /// Author device of the winning candidate.
    pub winner_author: DeviceKey,
    /// Devices the winner delivered to that are no longer members' devices (removed or
    /// revoked by a concurrent change that lost). Non-empty means a follow-up epoch
    /// excluding them is needed, and nothing else should be sealed in this epoch.
    pub must_exclude: BTreeSet<DeviceKey>,
    /// Current devices the winner did not deliver to (linked concurrently, or left out
    /// by the winner's author): send them the winning secret in another delivery for
    /// the same epoch.
    pub missing: BTreeSet<DeviceKey>,
    /// Who should start the follow-up epoch first: the authors of the losing
    /// candidates (anyone may, after a grace period). Empty when none is needed.
    pub follow_up_by: BTreeSet<DeviceKey>,
}

impl EpochResolution {
    /// True when the epoch is settled: no device outside the group holds its key.
    pub fn is_settled(&self) -> bool {
        self.must_exclude.is_empty()
    }
}

/// Resolves the candidates for one new epoch number.
///
/// Pure and order-independent: every member computes the same result from the same set
/// of candidates and the same membership. `current_devices` is the model's set of
/// devices of current members **after every removal and revocation seen**, from any
/// admin (a set union, so concurrent removals all count). Returns `None` if
/// `candidates` holds none for `epoch`.
pub fn resolve_epoch(
    epoch: u64,
    candidates: &[EpochCandidate],
    current_devices: &BTreeSet<DeviceKey>,
) -> Option<EpochResolution> {
    let mine: Vec<&EpochCandidate> = candidates.iter().filter(|c| c.epoch == epoch).collect();
    let winner = mine
        .iter()
        .min_by_key(|c| (c.body_id, c.author, c.parent_epoch))?;
    let must_exclude: BTreeSet<DeviceKey> = winner
        .recipients
        .difference(current_devices)
        .copied()
        .collect();
    let missing: BTreeSet<DeviceKey> = current_devices
        .difference(&winner.recipients)
        .copied()
        .collect();
    let follow_up_by = if must_exclude.is_empty() {
        BTreeSet::new()
    } else {
        let losers: BTreeSet<DeviceKey> = mine
            .iter()
            .filter(|c| c.body_id != winner.body_id)
            .map(|c| c.author)
            .filter(|a| current_devices.contains(a))
            .collect();
        if losers.is_empty() {
            // No loser is around (or the winner itself is stale): the winner's author.
            std::iter::once(winner.author).collect()
        } else {
            losers
        }
    };
    Some(EpochResolution {
        epoch,
        winner: winner.body_id,
        winner_author: winner.author,
        must_exclude,
        missing,
        follow_up_by,
    })
}
