//! Sealing entries into envelopes and opening them again.
//!
//! ```text
//! body      = { version, author, chain, hlc, op, signature = device_sign(Body::signed_bytes(group, epoch)) }
//! header    = { version, group, epoch, nonce (24 random bytes) }
//! ciphertext= XChaCha20-Poly1305(content_key(epoch), nonce, ad = header.encode(), body.encode())
//! proof     = Ed25519(membership_key(epoch), "caucus v1 membership proof" ‖ header.encode() ‖ ciphertext)
//! ```
//!
//! The body signature is bound to group and epoch (by `caucus-proto`), so a member cannot
//! move a signed body into another group or epoch. The header is the AEAD's associated
//! data, so it cannot be changed either. The proof is made with a key every member of the
//! epoch derives, so it proves membership to a relay ([`verify_proof`]) without naming
//! the author.
//!
//! [`open`] checks, in order, and fails with its own [`OpenError`] at the first problem:
//! group, epoch known, membership proof, AEAD, body decoding, device signature, the
//! certificate a `DeviceLinked` entry carries (every one, whoever carries it), and the
//! device ↔ identity binding (from a [`DeviceDirectory`] the model maintains).
//!
//! **Which Ed25519 check.** Proofs and body signatures are checked with ed25519-dalek's
//! `verify` (canonical `s`, cofactorless), the same equation [`open_batch`] checks for
//! many signatures at once, so that a node opening singly and one opening in batches
//! accept the same entries, and relays ([`verify_proof`]) accept the same proofs as
//! members. Keys with small-order or torsion components are refused at certificate
//! verification, and membership keys are derived, never chosen; see `proto/THREATS.md`
//! for the one remaining corner (a signer-crafted torsion component in `R`).
//!
//! **Replays.** An identical envelope is the same entry (same [`caucus_proto::EntryId`]) and
//! is simply a duplicate. A member can, however, take a body they opened and seal it again
//! with a new nonce: the result has a new entry id but the same signed body. [`BodyId`]
//! (the body's [`EventId`], BLAKE3 of its event bytes) names the body. Both envelopes
//! stay stored and synced (a store that refused one copy would leave two nodes holding
//! different copies and offering them to each other forever); the model folds every copy
//! of one event as one, keeping the copy with the smallest entry id, so a replay changes
//! no state.
//! [`ReplayGuard`] reports a re-sealed copy for callers that want to log or score it.

use crate::epoch::{EpochKeys, KeyId, Keyring, RelayToken};
use crate::keys::{DeviceKeys, verify_cert};
use caucus_proto::{
    BODY_VERSION, Body, Chain, DecodeError, DeviceKey, ENVELOPE_VERSION, EncodeError, EntryId,
    Envelope, EnvelopeHeader, EventId, GroupId, Hlc, IdentityKey, Operation, Signature,
};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signer, Verifier, VerifyingKey};
use rand_core::CryptoRng;
use std::collections::{BTreeMap, HashMap};
use zeroize::Zeroizing;

/// Domain separation prefix of membership proofs.
const PROOF_DOMAIN: &[u8] = b"caucus v1 membership proof";

/// Why an entry could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The keys belong to another group.
    #[error("epoch keys belong to another group")]
    WrongGroup,
    /// The body breaks a protocol limit.
    #[error("entry cannot be encoded: {0}")]
    Encode(#[from] EncodeError),
    /// The AEAD refused (never expected).
    #[error("encryption failed")]
    Aead,
}

/// Why an envelope was rejected. Each cause has its own variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The envelope version is not one this build speaks.
    #[error("unsupported envelope version {0}")]
    UnsupportedVersion(u8),
    /// The envelope is for another group.
    #[error("envelope belongs to another group")]
    WrongGroup,
    /// No key for this epoch is held: an epoch this device was never given (a removed
    /// member's view of later epochs) or one not yet received.
    #[error("no key for epoch {epoch}")]
    UnknownEpoch {
        /// The envelope's epoch.
        epoch: u64,
    },
    /// The membership proof does not verify under any key of the epoch.
    #[error("membership proof does not verify")]
    BadProof,
    /// The ciphertext does not authenticate: truncated, altered, or its header (the
    /// associated data) changed.
    #[error("ciphertext does not authenticate (truncated, altered or moved)")]
    Aead,
    /// The plaintext is not a well-formed body.
    #[error("malformed body: {0}")]
    MalformedBody(DecodeError),
    /// The device signature on the body does not verify (forged or moved to another
    /// group or epoch).
    #[error("body signature does not verify")]
    BadSignature,
    /// The signing device is certified to another identity than the body claims.
    #[error("device is certified to another identity than the entry claims")]
    AuthorMismatch,
    /// The signing device is not (yet) known; keep the entry pending until its
    /// `DeviceLinked` entry arrives.
    #[error("unknown device")]
    UnknownDevice,
    /// A `DeviceLinked` entry carries a certificate its identity did not sign (or one
    /// with unusable keys): no one may bind a device to an identity but that identity.
    #[error("device certificate does not verify")]
    BadCertificate,
    /// The same signed body was already stored under another entry id (a re-sealed copy).
    #[error("replayed body: already stored as entry {original}")]
    Replayed {
        /// The entry id the body was first stored under.
        original: EntryId,
    },
}

/// Name of a signed body: its [`EventId`] (BLAKE3 of [`Body::event_bytes`]), shared by
/// every re-sealed copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BodyId(pub [u8; 32]);

impl BodyId {
    /// The body id as the event id the model and the chains use.
    pub fn event_id(&self) -> EventId {
        EventId(self.0)
    }
}

/// A successfully opened and verified entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedBody {
    /// The body.
    pub body: Body,
    /// Its name, shared by every re-sealed copy.
    pub body_id: BodyId,
    /// The epoch it was sealed in.
    pub epoch: u64,
    /// Which secret of that epoch opened it.
    pub key_id: KeyId,
}

/// Which identity each device is certified to, as the model knows it.
pub trait DeviceDirectory {
    /// The identity `device` is certified to, if the device is known.
    fn identity_of(&self, device: &DeviceKey) -> Option<IdentityKey>;
}

impl DeviceDirectory for BTreeMap<DeviceKey, IdentityKey> {
    fn identity_of(&self, device: &DeviceKey) -> Option<IdentityKey> {
        self.get(device).copied()
    }
}

impl DeviceDirectory for HashMap<DeviceKey, IdentityKey> {
    fn identity_of(&self, device: &DeviceKey) -> Option<IdentityKey> {
        self.get(device).copied()
    }
}

fn proof_message(header_ad: &[u8], ciphertext: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(PROOF_DOMAIN.len() + header_ad.len() + ciphertext.len());
    m.extend_from_slice(PROOF_DOMAIN);
    m.extend_from_slice(header_ad);
    m.extend_from_slice(ciphertext);
    m
}

#[cfg(test)]
pub(crate) fn tests_proof_message(header_ad: &[u8], ciphertext: &[u8]) -> Vec<u8> {
    proof_message(header_ad, ciphertext)
}

/// Seals one operation as an entry of `keys`' group and epoch, signed by `device`, at
/// `chain`'s place in the device's chain.
pub fn seal<R: CryptoRng + ?Sized>(
    group: &GroupId,
    keys: &EpochKeys,
    device: &DeviceKeys,
    chain: Chain,
    hlc: Hlc,
    op: Operation,
    rng: &mut R,
) -> Result<Envelope, SealError> {
    Ok(seal_event(group, keys, device, chain, hlc, op, rng)?.0)
}

/// [`seal`], also returning the event id of the sealed body (what the device's next
/// entry names as its `prev`).
pub fn seal_event<R: CryptoRng + ?Sized>(
    group: &GroupId,
    keys: &EpochKeys,
    device: &DeviceKeys,
    chain: Chain,
    hlc: Hlc,
    op: Operation,
    rng: &mut R,
) -> Result<(Envelope, EventId), SealError> {
    if keys.group() != *group {
        return Err(SealError::WrongGroup);
    }
    let epoch = keys.epoch();
    let author = device.author();
    let event_bytes = Body::event_bytes_for(&author, &chain, &hlc, &op)?;
    let event = EventId::of_event_bytes(&event_bytes);
    let signature = device.sign(&Body::signed_bytes_of(group, epoch, &event_bytes));
    let body = Body {
        version: BODY_VERSION,
        author,
        chain,
        hlc,
        op,
        signature,
    };
    let plaintext = Zeroizing::new(body.encode()?);
    let mut nonce = [0u8; 24];
    rng.fill_bytes(&mut nonce);
    let header = EnvelopeHeader {
        version: ENVELOPE_VERSION,
        group: *group,
        epoch,
        nonce,
    };
    let ad = header.encode();
    let cipher = XChaCha20Poly1305::new(&(*keys.content_key()).into());
    let ciphertext = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &plaintext,
                aad: &ad,
            },
        )
        .map_err(|_| SealError::Aead)?;
    let proof = Signature(
        keys.membership()
            .sign(&proof_message(&ad, &ciphertext))
            .to_bytes(),
    );
    Ok((
        Envelope {
            header,
            ciphertext,
            proof,
        },
        event,
    ))
}

/// The relay-side check: was this envelope made by someone holding the epoch secret of
/// `token`? Needs no content key and learns nothing about the author.
pub fn verify_proof(envelope: &Envelope, token: &RelayToken) -> Result<(), OpenError> {
    if envelope.header.group != token.group {
        return Err(OpenError::WrongGroup);
    }
    if envelope.header.epoch != token.epoch {
        return Err(OpenError::UnknownEpoch {
            epoch: envelope.header.epoch,
        });
    }
    let key = VerifyingKey::from_bytes(&token.key).map_err(|_| OpenError::BadProof)?;
    check_proof(envelope, &envelope.header.encode(), &key)
}

fn check_proof(envelope: &Envelope, ad: &[u8], key: &VerifyingKey) -> Result<(), OpenError> {
    let sig = ed25519_dalek::Signature::from_bytes(&envelope.proof.0);
    key.verify(&proof_message(ad, &envelope.ciphertext), &sig)
        .map_err(|_| OpenError::BadProof)
}

/// Decrypted but not yet signature-checked.
struct Decrypted<'k> {
    body: Body,
    signed: Vec<u8>,
    event: EventId,
    keys: &'k EpochKeys,
}

fn precheck<'k>(envelope: &Envelope, keyring: &'k Keyring) -> Result<&'k [EpochKeys], OpenError> {
    if envelope.header.version != ENVELOPE_VERSION {
        return Err(OpenError::UnsupportedVersion(envelope.header.version));
    }
    if envelope.header.group != keyring.group() {
        return Err(OpenError::WrongGroup);
    }
    let candidates = keyring.candidates(envelope.header.epoch);
    if candidates.is_empty() {
        return Err(OpenError::UnknownEpoch {
            epoch: envelope.header.epoch,
        });
    }
    Ok(candidates)
}

fn decrypt<'k>(
    envelope: &Envelope,
    ad: &[u8],
    keys: &'k EpochKeys,
) -> Result<Decrypted<'k>, OpenError> {
    let cipher = XChaCha20Poly1305::new(&(*keys.content_key()).into());
    let plaintext = Zeroizing::new(
        cipher
            .decrypt(
                &XNonce::from(envelope.header.nonce),
                Payload {
                    msg: &envelope.ciphertext,
                    aad: ad,
                },
            )
            .map_err(|_| OpenError::Aead)?,
    );
    let body = Body::decode(&plaintext).map_err(OpenError::MalformedBody)?;
    let event_bytes = body
        .event_bytes()
        .map_err(|e| OpenError::MalformedBody(DecodeError::Malformed(e.to_string())))?;
    let event = EventId::of_event_bytes(&event_bytes);
    let signed = Body::signed_bytes_of(&envelope.header.group, envelope.header.epoch, &event_bytes);
    Ok(Decrypted {
        body,
        signed,
        event,
        keys,
    })
}

fn check_author(body: &Body, directory: &dyn DeviceDirectory) -> Result<(), OpenError> {
    // Every certificate is checked, whoever carries it: an admin linking a device to
    // another member cannot bind a key that member's identity did not sign.
    if let Operation::DeviceLinked { cert } = &body.op {
        verify_cert(cert).map_err(|_| OpenError::BadCertificate)?;
    }
    match directory.identity_of(&body.author.device) {
        Some(identity) if identity == body.author.identity => Ok(()),
        Some(_) => Err(OpenError::AuthorMismatch),
        None => match &body.op {
            // A device introducing itself: its certificate, carried in the entry, binds it.
            Operation::DeviceLinked { cert } if cert.device == body.author.device => {
                if cert.identity == body.author.identity {
                    Ok(())
                } else {
                    Err(OpenError::AuthorMismatch)
                }
            }
            _ => Err(OpenError::UnknownDevice),
        },
    }
}

fn finish(d: Decrypted<'_>, envelope: &Envelope) -> OpenedBody {
    OpenedBody {
        body_id: BodyId(d.event.0),
        body: d.body,
        epoch: envelope.header.epoch,
        key_id: d.keys.key_id(),
    }
}

/// Opens and fully verifies one envelope. See the module docs for the order of checks.
pub fn open(
    envelope: &Envelope,
    keyring: &Keyring,
    directory: &dyn DeviceDirectory,
) -> Result<OpenedBody, OpenError> {
    let candidates = precheck(envelope, keyring)?;
    let ad = envelope.header.encode();
    let keys = candidates
        .iter()
        .find(|k| check_proof(envelope, &ad, k.membership_public()).is_ok())
        .ok_or(OpenError::BadProof)?;
    let d = decrypt(envelope, &ad, keys)?;
    verify_body_signature(&d.body, &d.signed)?;
    check_author(&d.body, directory)?;
    Ok(finish(d, envelope))
}

fn verify_body_signature(body: &Body, signed: &[u8]) -> Result<(), OpenError> {
    let key =
        VerifyingKey::from_bytes(&body.author.device.0).map_err(|_| OpenError::BadSignature)?;
    key.verify(
        signed,
        &ed25519_dalek::Signature::from_bytes(&body.signature.0),
    )
    .map_err(|_| OpenError::BadSignature)
}

/// Opens many envelopes at once (catch-up sync), checking every membership proof and
/// body signature in one Ed25519 batch verification. If the batch fails, each envelope
/// is checked alone so that exactly the bad ones get their error. Results are in input
/// order.
pub fn open_batch(
    envelopes: &[Envelope],
    keyring: &Keyring,
    directory: &dyn DeviceDirectory,
) -> Vec<Result<OpenedBody, OpenError>> {
    // Stage 1: everything but signatures.
    let mut staged: Vec<Result<(Vec<u8>, Decrypted<'_>), OpenError>> = envelopes
        .iter()
        .map(|env| {
            let candidates = precheck(env, keyring)?;
            let ad = env.header.encode();
            // With concurrent epoch candidates, find the key by its proof right away.
            let keys = if candidates.len() == 1 {
                &candidates[0]
            } else {
                candidates
                    .iter()
                    .find(|k| check_proof(env, &ad, k.membership_public()).is_ok())
                    .ok_or(OpenError::BadProof)?
            };
            let proof_msg = proof_message(&ad, &env.ciphertext);
            // On failure, report what `open` would: a bad proof before a bad ciphertext.
            let d = decrypt(env, &ad, keys).map_err(|e| {
                check_proof(env, &ad, keys.membership_public())
                    .err()
                    .unwrap_or(e)
            })?;
            Ok((proof_msg, d))
        })
        .collect();

    // Stage 2: one batch over every proof and body signature.
    let mut msgs: Vec<&[u8]> = Vec::new();
    let mut sigs = Vec::new();
    let mut vks = Vec::new();
    let mut batchable = true;
    // Entries of a batch come from few devices: decompress each key once.
    let mut author_keys: HashMap<DeviceKey, Option<VerifyingKey>> = HashMap::new();
    for (env, s) in envelopes.iter().zip(&staged) {
        if let Ok((proof_msg, d)) = s {
            let device = d.body.author.device;
            let Some(author_key) = *author_keys
                .entry(device)
                .or_insert_with(|| VerifyingKey::from_bytes(&device.0).ok())
            else {
                batchable = false;
                continue;
            };
            msgs.push(proof_msg);
            sigs.push(ed25519_dalek::Signature::from_bytes(&env.proof.0));
            vks.push(*d.keys.membership_public());
            msgs.push(&d.signed);
            sigs.push(ed25519_dalek::Signature::from_bytes(&d.body.signature.0));
            vks.push(author_key);
        }
    }
    let all_good =
        batchable && (msgs.is_empty() || ed25519_dalek::verify_batch(&msgs, &sigs, &vks).is_ok());
    drop((msgs, sigs, vks));

    envelopes
        .iter()
        .zip(staged.drain(..))
        .map(|(env, s)| {
            let (_, d) = s?;
            if !all_good {
                check_proof(env, &env.header.encode(), d.keys.membership_public())?;
                verify_body_signature(&d.body, &d.signed)?;
            }
            check_author(&d.body, directory)?;
            Ok(finish(d, env))
        })
        .collect()
}

/// Whether an opened entry is new or a duplicate of one already held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// First time this body is seen.
    New,
    /// The identical entry (same entry id) was seen before: idempotent, not an error.
    Duplicate,
}

/// Most body ids a [`ReplayGuard`] remembers before refusing to grow.
pub const MAX_REPLAY_GUARD_ENTRIES: usize = 1 << 22;

/// In-memory replay check: one entry id per body id. Reports a re-sealed copy of a body
/// already seen under another entry id (the model folds such copies as one event, so
/// this is for diagnostics and peer scoring, not for correctness).
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: HashMap<BodyId, EntryId>,
}

impl ReplayGuard {
    /// An empty guard.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `opened` as entry `entry`: new, an identical duplicate, or a re-sealed
    /// replay of a body already stored under another entry id ([`OpenError::Replayed`]).
    pub fn check(&mut self, opened: &OpenedBody, entry: EntryId) -> Result<Seen, OpenError> {
        match self.seen.get(&opened.body_id) {
            Some(original) if *original == entry => Ok(Seen::Duplicate),
            Some(original) => Err(OpenError::Replayed {
                original: *original,
            }),
            None => {
                if self.seen.len() < MAX_REPLAY_GUARD_ENTRIES {
                    self.seen.insert(opened.body_id, entry);
                }
                Ok(Seen::New)
            }
        }
    }

    /// Bodies remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True if nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}
