//! Epoch secrets and the keys derived from them; a group's keyring.
//!
//! A group's content is sealed under an **epoch secret**: 32 random bytes, replaced by a
//! fresh one whenever a member is removed or a device revoked (see [`crate::delivery`]).
//! From the secret, the group id and the epoch number, BLAKE3 (`derive_key`, one context
//! string per use) derives:
//!
//! | context | what |
//! |---|---|
//! | `caucus v1 epoch content key` | the XChaCha20-Poly1305 key sealing entry bodies |
//! | `caucus v1 epoch receipt key` | the XChaCha20-Poly1305 key sealing receipts ([`crate::receipt`]) |
//! | `caucus v1 epoch membership key` | the seed of the Ed25519 **membership key** signing every envelope's proof |
//! | `caucus v1 epoch key id` | a public fingerprint telling two secrets of one epoch apart |
//! | `caucus v1 epoch gossip topic` | a topic name that tells an observer nothing |
//!
//! The membership key's public half is the **relay token** ([`RelayToken`]): a relay
//! holding it can check that an envelope was made by someone holding the epoch secret,
//! and learns nothing else (not the author: every member derives the same key).
//!
//! Two admins changing the epoch at once can give one epoch number two secrets (see
//! [`crate::delivery::resolve_epoch`]); the keyring therefore keeps a short list of
//! candidates per epoch, and opening picks the one whose membership key verifies.

use crate::secret::Secret32;
use caucus_proto::{GroupId, IdentityKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use zeroize::Zeroizing;

/// Most secrets one epoch number may have (concurrent epoch changes); more are refused.
pub const MAX_CANDIDATES_PER_EPOCH: usize = 8;

/// The secret of one epoch of one group: 32 random bytes.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EpochSecret(pub(crate) Secret32);

impl EpochSecret {
    /// A fresh epoch secret.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self(Secret32::random(rng))
    }

    /// Wraps stored bytes (unwrapped from disk or received in a handshake).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Secret32::from_bytes(bytes))
    }

    /// The secret bytes, for wrapping at rest. Never log them.
    pub fn expose(&self) -> &[u8; 32] {
        self.0.expose()
    }
}

/// Public fingerprint of an epoch secret (16 bytes of a one-way derivation).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct KeyId(pub [u8; 16]);

/// What a relay holds for one epoch of one group: the public membership key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct RelayToken {
    /// The group.
    pub group: GroupId,
    /// The epoch.
    pub epoch: u64,
    /// The Ed25519 public membership key of that epoch.
    pub key: [u8; 32],
}

/// One epoch secret and everything derived from it, computed once.
pub struct EpochKeys {
    group: GroupId,
    epoch: u64,
    secret: EpochSecret,
    content_key: Zeroizing<[u8; 32]>,
    receipt_key: Zeroizing<[u8; 32]>,
    membership: SigningKey,
    membership_public: VerifyingKey,
    key_id: KeyId,
    topic: [u8; 32],
}

fn material(secret: &EpochSecret, group: &GroupId, epoch: u64) -> Zeroizing<[u8; 56]> {
    let mut m = Zeroizing::new([0u8; 56]);
    m[..32].copy_from_slice(secret.expose());
    m[32..48].copy_from_slice(group.as_bytes());
    m[48..].copy_from_slice(&epoch.to_le_bytes());
    m
}

impl EpochKeys {
    /// Derives the keys of `epoch` of `group` from `secret`.
    pub fn derive(group: GroupId, epoch: u64, secret: EpochSecret) -> Self {
        let m = material(&secret, &group, epoch);
        let content_key = Zeroizing::new(blake3::derive_key("caucus v1 epoch content key", &*m));
        let receipt_key = Zeroizing::new(blake3::derive_key("caucus v1 epoch receipt key", &*m));
        let seed = Zeroizing::new(blake3::derive_key("caucus v1 epoch membership key", &*m));
        let membership = SigningKey::from_bytes(&seed);
        let id = blake3::derive_key("caucus v1 epoch key id", &*m);
        let mut key_id = [0u8; 16];
        key_id.copy_from_slice(&id[..16]);
        let topic = blake3::derive_key("caucus v1 epoch gossip topic", &*m);
        Self {
            group,
            epoch,
            membership_public: membership.verifying_key(),
            secret,
            content_key,
            receipt_key,
            membership,
            key_id: KeyId(key_id),
            topic,
        }
    }

    /// The group.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// The epoch number.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The public fingerprint of the secret.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The relay token of this epoch (public).
    pub fn relay_token(&self) -> RelayToken {
        RelayToken {
            group: self.group,
            epoch: self.epoch,
            key: self.membership_public.to_bytes(),
        }
    }

    /// The gossip topic of this epoch: opaque to anyone without the secret.
    pub fn topic(&self) -> [u8; 32] {
        self.topic
    }

    /// The epoch secret itself (to deliver or wrap at rest).
    pub fn secret(&self) -> &EpochSecret {
        &self.secret
    }

    /// Proves membership for one sync session: the epoch number (8 bytes, little
    /// endian) then an Ed25519 signature by this epoch's membership key over
    /// `"caucus v1 sync session" ‖ binding`. The network layer builds `binding` from the
    /// group and both transport peer ids, so a proof cannot be replayed on another
    /// connection. Anyone holding the epoch's relay token can check it
    /// ([`RelayToken::verify_session`]); it says "a holder of this epoch's secret", never who.
    pub fn sign_session(&self, binding: &[u8]) -> Vec<u8> {
        use ed25519_dalek::Signer;
        let mut proof = self.epoch.to_le_bytes().to_vec();
        proof.extend_from_slice(&self.membership.sign(&session_message(binding)).to_bytes());
        proof
    }

    /// The relay credential of this epoch: a signing key, derived from the epoch secret
    /// (`caucus v1 epoch relay credential`), that members hand to the office relay so
    /// it can take part in catch-up sync. It signs session proofs only: it opens no
    /// entry and makes no envelope proof, so a seized relay yields no content and no
    /// way to write.
    pub fn relay_credential(&self) -> RelayCredential {
        let m = material(&self.secret, &self.group, self.epoch);
        let seed = Zeroizing::new(blake3::derive_key("caucus v1 epoch relay credential", &*m));
        RelayCredential {
            epoch: self.epoch,
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// Whether `proof` is a relay's session proof over `binding` for this epoch.
    pub fn verify_relay_session(&self, binding: &[u8], proof: &[u8]) -> bool {
        let public = self.relay_credential().key.verifying_key();
        verify_session_with(&public, self.epoch, binding, proof)
    }

    pub(crate) fn content_key(&self) -> &[u8; 32] {
        &self.content_key
    }

    pub(crate) fn receipt_key(&self) -> &[u8; 32] {
        &self.receipt_key
    }

    pub(crate) fn membership(&self) -> &SigningKey {
        &self.membership
    }

    pub(crate) fn membership_public(&self) -> &VerifyingKey {
        &self.membership_public
    }
}

const SESSION_DOMAIN: &[u8] = b"caucus v1 sync session";

fn session_message(binding: &[u8]) -> Vec<u8> {
    let mut m = SESSION_DOMAIN.to_vec();
    m.extend_from_slice(binding);
    m
}

/// The epoch a session proof ([`EpochKeys::sign_session`]) claims, if it is well formed.
pub fn session_proof_epoch(proof: &[u8]) -> Option<u64> {
    if proof.len() != 8 + 64 {
        return None;
    }
    let mut e = [0u8; 8];
    e.copy_from_slice(&proof[..8]);
    Some(u64::from_le_bytes(e))
}

fn verify_session_with(key: &VerifyingKey, epoch: u64, binding: &[u8], proof: &[u8]) -> bool {
    if session_proof_epoch(proof) != Some(epoch) {
        return false;
    }
    let mut sig = [0u8; 64];
    sig.copy_from_slice(&proof[8..]);
    key.verify_strict(
        &session_message(binding),
        &ed25519_dalek::Signature::from_bytes(&sig),
    )
    .is_ok()
}

impl RelayToken {
    /// Whether `proof` is [`EpochKeys::sign_session`] over `binding` by this token's epoch.
    pub fn verify_session(&self, binding: &[u8], proof: &[u8]) -> bool {
        match VerifyingKey::from_bytes(&self.key) {
            Ok(key) => verify_session_with(&key, self.epoch, binding, proof),
            Err(_) => false,
        }
    }
}

/// A relay's credential for one epoch of one group (see [`EpochKeys::relay_credential`]).
/// Secret: zeroized on drop, redacted in `Debug`.
pub struct RelayCredential {
    epoch: u64,
    key: SigningKey,
}

impl RelayCredential {
    /// The epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// A session proof over `binding`, in the format of [`EpochKeys::sign_session`].
    pub fn sign_session(&self, binding: &[u8]) -> Vec<u8> {
        use ed25519_dalek::Signer;
        let mut proof = self.epoch.to_le_bytes().to_vec();
        proof.extend_from_slice(&self.key.sign(&session_message(binding)).to_bytes());
        proof
    }

    /// The epoch (8 bytes, little endian) and the 32-byte seed. Secret.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; 40]> {
        let mut b = Zeroizing::new([0u8; 40]);
        b[..8].copy_from_slice(&self.epoch.to_le_bytes());
        b[8..].copy_from_slice(&self.key.to_bytes());
        b
    }

    /// Rebuilds a credential from [`RelayCredential::to_secret_bytes`].
    pub fn from_secret_bytes(bytes: &[u8; 40]) -> Self {
        let mut e = [0u8; 8];
        e.copy_from_slice(&bytes[..8]);
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&bytes[8..]);
        Self {
            epoch: u64::from_le_bytes(e),
            key: SigningKey::from_bytes(&seed),
        }
    }
}

impl fmt::Debug for RelayCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayCredential")
            .field("epoch", &self.epoch)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl fmt::Debug for EpochKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EpochKeys")
            .field("group", &self.group)
            .field("epoch", &self.epoch)
            .field("key_id", &self.key_id)
            .field("secrets", &"<redacted>")
            .finish()
    }
}

/// Why a secret was not added to a keyring.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// The epoch already has [`MAX_CANDIDATES_PER_EPOCH`] secrets.
    #[error("epoch {0} already has the most candidate secrets allowed")]
    TooManyCandidates(u64),
    /// Stored keyring bytes are malformed.
    #[error("stored keyring is malformed: {0}")]
    Malformed(String),
}

/// A group's epoch secrets: `epoch -> candidates` (normally one). Zeroized on drop.
///
/// The first candidate of an epoch is the **preferred** one, used for sealing; the node
/// moves the winner of a concurrent epoch change to the front with
/// [`Keyring::prefer`] (see [`crate::delivery::resolve_epoch`]).
pub struct Keyring {
    group: GroupId,
    founder: Option<IdentityKey>,
    epochs: BTreeMap<u64, Vec<EpochKeys>>,
}

#[derive(Serialize, Deserialize)]
struct StoredKeyring {
    version: u8,
    group: GroupId,
    founder: Option<IdentityKey>,
    epochs: Vec<(u64, Secret32)>,
}

/// Largest stored keyring, in bytes.
const MAX_KEYRING_BYTES: usize = 1 << 20;

impl Keyring {
    /// An empty keyring for `group`.
    pub fn new(group: GroupId) -> Self {
        Self {
            group,
            founder: None,
            epochs: BTreeMap::new(),
        }
    }

    /// The group.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// The group's founder (the model's root of trust), if this keyring knows it. It
    /// travels with the secrets inside the join welcome and the device-link grant, so a
    /// new device learns it from the same authenticated handshake as the keys.
    pub fn founder(&self) -> Option<IdentityKey> {
        self.founder
    }

    /// Records the group's founder (the founding device does this once).
    pub fn set_founder(&mut self, founder: IdentityKey) {
        self.founder = Some(founder);
    }

    /// Adds `secret` as a candidate of `epoch` (idempotent); returns its key id.
    pub fn insert(&mut self, epoch: u64, secret: EpochSecret) -> Result<KeyId, KeyringError> {
        let keys = EpochKeys::derive(self.group, epoch, secret);
        let id = keys.key_id();
        let list = self.epochs.entry(epoch).or_default();
        if list.iter().any(|k| k.key_id() == id) {
            return Ok(id);
        }
        if list.len() >= MAX_CANDIDATES_PER_EPOCH {
            return Err(KeyringError::TooManyCandidates(epoch));
        }
        list.push(keys);
        Ok(id)
    }

    /// The candidates of `epoch`, preferred first (empty if unknown).
    pub fn candidates(&self, epoch: u64) -> &[EpochKeys] {
        self.epochs.get(&epoch).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The preferred keys of `epoch`.
    pub fn get(&self, epoch: u64) -> Option<&EpochKeys> {
        self.candidates(epoch).first()
    }

    /// The preferred keys of the highest epoch: what new entries are sealed with.
    pub fn current(&self) -> Option<&EpochKeys> {
        self.epochs.values().next_back().and_then(|v| v.first())
    }

    /// Makes `key_id` the preferred candidate of `epoch`; false if it is not held.
    pub fn prefer(&mut self, epoch: u64, key_id: KeyId) -> bool {
        let Some(list) = self.epochs.get_mut(&epoch) else {
            return false;
        };
        match list.iter().position(|k| k.key_id() == key_id) {
            Some(i) => {
                list[..=i].rotate_right(1);
                true
            }
            None => false,
        }
    }

    /// The epochs held, lowest first.
    pub fn epochs(&self) -> impl Iterator<Item = u64> + '_ {
        self.epochs.keys().copied()
    }

    /// Every relay token (one per candidate of every epoch).
    pub fn relay_tokens(&self) -> Vec<RelayToken> {
        self.epochs
            .values()
            .flatten()
            .map(EpochKeys::relay_token)
            .collect()
    }

    /// All secrets with their epochs, preferred first within an epoch.
    pub fn secrets(&self) -> impl Iterator<Item = (u64, &EpochSecret)> + '_ {
        self.epochs
            .iter()
            .flat_map(|(e, v)| v.iter().map(move |k| (*e, k.secret())))
    }

    /// The keyring as bytes, to wrap at rest with [`crate::at_rest`]. Secret: never log.
    pub fn to_secret_bytes(&self) -> Result<Zeroizing<Vec<u8>>, KeyringError> {
        let stored = StoredKeyring {
            version: 1,
            group: self.group,
            founder: self.founder,
            epochs: self.secrets().map(|(e, s)| (e, s.0.clone())).collect(),
        };
        caucus_proto::codec::encode::<_, MAX_KEYRING_BYTES>(&stored)
            .map(Zeroizing::new)
            .map_err(|e| KeyringError::Malformed(e.to_string()))
    }

    /// Rebuilds a keyring from [`Keyring::to_secret_bytes`].
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, KeyringError> {
        let stored: StoredKeyring = caucus_proto::codec::decode::<_, MAX_KEYRING_BYTES>(bytes)
            .map_err(|e| KeyringError::Malformed(e.to_string()))?;
        if stored.version != 1 {
            return Err(KeyringError::Malformed("unknown keyring version".into()));
        }
        let mut ring = Keyring::new(stored.group);
        ring.founder = stored.founder;
        for (e, s) in &stored.epochs {
            ring.insert(*e, EpochSecret(s.clone()))?;
        }
        Ok(ring)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("group", &self.group)
            .field("epochs", &self.epochs.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Most epochs shared in one handshake (device link or join).
pub const MAX_SHARED_EPOCHS: usize = 256;

/// A group's epoch secrets as they travel inside an encrypted handshake payload.
#[derive(Serialize, Deserialize)]
pub(crate) struct SharedEpochs {
    pub(crate) group: GroupId,
    pub(crate) founder: Option<IdentityKey>,
    pub(crate) epochs: Vec<(u64, Secret32)>,
}

impl SharedEpochs {
    /// The newest `MAX_SHARED_EPOCHS` secrets of `ring` (or only the current epoch's).
    pub(crate) fn from_keyring(ring: &Keyring, current_only: bool) -> Self {
        let mut epochs: Vec<(u64, Secret32)> =
            ring.secrets().map(|(e, s)| (e, s.0.clone())).collect();
        if current_only {
            let top = epochs.last().map(|(e, _)| *e);
            epochs.retain(|(e, _)| Some(*e) == top);
        }
        let excess = epochs.len().saturating_sub(MAX_SHARED_EPOCHS);
        epochs.drain(..excess);
        Self {
            group: ring.group(),
            founder: ring.founder(),
            epochs,
        }
    }

    /// A keyring holding these secrets.
    pub(crate) fn into_keyring(self) -> Result<Keyring, KeyringError> {
        if self.epochs.len() > MAX_SHARED_EPOCHS {
            return Err(KeyringError::Malformed("too many epochs".into()));
        }
        let mut ring = Keyring::new(self.group);
        ring.founder = self.founder;
        for (e, s) in &self.epochs {
            ring.insert(*e, EpochSecret(s.clone()))?;
        }
        Ok(ring)
    }
}

/// Tells a relay the token of a new epoch, vouched for by the previous epoch's
/// membership key (which the relay already trusts).
///
/// The relay holds the token of the epoch it was given; each epoch change, a member
/// sends it one of these (the node does it alongside the `EpochKeyDelivered` entry), and
/// the relay adds the new token after [`RelayTokenUpdate::verify`]. Limitation: anyone
/// who held the previous epoch's secret (including the member just removed) can vouch
/// for a token, so a relay may accept a token the group does not use; with it a removed
/// member can make envelopes the relay stores (spam, bounded by
/// [`MAX_CANDIDATES_PER_EPOCH`] tokens per epoch) but never read one. See
/// `proto/THREATS.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayTokenUpdate {
    /// The new epoch's token.
    pub token: RelayToken,
    /// The epoch whose membership key signed this update.
    pub parent_epoch: u64,
    /// Signature by the parent epoch's membership key.
    pub signature: caucus_proto::Signature,
}

/// Why a relay token update was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenUpdateError {
    /// The update is for another group or epoch than the token given to check it.
    #[error("token update does not follow the given token")]
    NotAChild,
    /// The signature does not verify.
    #[error("token update signature does not verify")]
    BadSignature,
    /// The bytes are malformed.
    #[error("malformed token update: {0}")]
    Malformed(String),
}

const TOKEN_UPDATE_DOMAIN: &[u8] = b"caucus v1 relay token update";

fn token_update_message(token: &RelayToken, parent_epoch: u64) -> Vec<u8> {
    let mut m = TOKEN_UPDATE_DOMAIN.to_vec();
    m.extend_from_slice(token.group.as_bytes());
    m.extend_from_slice(&token.epoch.to_le_bytes());
    m.extend_from_slice(&token.key);
    m.extend_from_slice(&parent_epoch.to_le_bytes());
    m
}

impl RelayTokenUpdate {
    /// An update announcing `new`'s token, signed with `parent`'s membership key.
    pub fn new(parent: &EpochKeys, new: &EpochKeys) -> Self {
        use ed25519_dalek::Signer;
        let token = new.relay_token();
        let msg = token_update_message(&token, parent.epoch());
        Self {
            token,
            parent_epoch: parent.epoch(),
            signature: caucus_proto::Signature(parent.membership().sign(&msg).to_bytes()),
        }
    }

    /// Checks the update against a token the relay holds; returns the new token.
    pub fn verify(&self, parent: &RelayToken) -> Result<RelayToken, TokenUpdateError> {
        if parent.group != self.token.group
            || parent.epoch != self.parent_epoch
            || self.token.epoch <= parent.epoch
        {
            return Err(TokenUpdateError::NotAChild);
        }
        let key =
            VerifyingKey::from_bytes(&parent.key).map_err(|_| TokenUpdateError::BadSignature)?;
        key.verify_strict(
            &token_update_message(&self.token, self.parent_epoch),
            &ed25519_dalek::Signature::from_bytes(&self.signature.0),
        )
        .map_err(|_| TokenUpdateError::BadSignature)?;
        Ok(self.token)
    }

    /// Bytes for the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        caucus_proto::codec::encode::<_, 256>(self).unwrap_or_default()
    }

    /// Parses bytes from the wire (bounded).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TokenUpdateError> {
        caucus_proto::codec::decode::<_, 256>(bytes)
            .map_err(|e| TokenUpdateError::Malformed(e.to_string()))
    }
}
