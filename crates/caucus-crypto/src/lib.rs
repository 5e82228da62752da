//! caucus cryptography: identities, devices, epoch keys, sealing, handshakes, keys at rest.
//!
//! Pure: no I/O, no clock, no OS randomness. Every function that needs randomness takes a
//! `rand_core::CryptoRng`, every check that needs the time takes `now_ms`; handshakes are
//! state machines fed bytes and returning bytes (sans-IO), so the node moves the bytes
//! and the tests run in microseconds with a seeded RNG.
//!
//! | module | what |
//! |---|---|
//! | [`keys`] | identity (Ed25519), device keys (Ed25519 + X25519), device certificates |
//! | [`epoch`] | epoch secrets, derived keys (content, membership, topic), a group's [`Keyring`] |
//! | [`mod@seal`] | [`seal()`](seal::seal) / [`open()`](seal::open) envelopes, membership proofs, relay check, replay guard |
//! | [`delivery`] | sealing a new epoch to each remaining device (Noise `N`), resolving concurrent epoch changes |
//! | [`link`] | linking a second device: pairing code, QR payload, Noise `NNpsk0` handshake |
//! | [`invite`] | invite tickets and the join handshake (Noise `NNpsk0`, PSK = invite secret) |
//! | [`at_rest`] | wrapping secrets under a passphrase (Argon2id + XChaCha20-Poly1305) |
//!
//! Primitives come from well-kept crates and are never reimplemented here: ed25519-dalek,
//! x25519-dalek, chacha20poly1305 (XChaCha20-Poly1305), BLAKE3 for key derivation,
//! argon2, and snow for every Noise handshake. All bytes this crate defines are encoded
//! by `caucus_proto::codec` with a size limit.
//!
//! Secrets zeroize on drop and print as `<redacted>` in `Debug`; none implements
//! `Display`. The threat model is `proto/THREATS.md`.

// Named only to turn on its precomputed tables for snow (see Cargo.toml).
use curve25519_dalek_snow as _;

pub mod at_rest;
pub mod delivery;
pub mod epoch;
pub mod invite;
pub mod keys;
pub mod link;
mod noise;
pub mod receipt;
pub mod seal;
pub mod secret;

pub use epoch::{
    EpochKeys, EpochSecret, KeyId, Keyring, RelayCredential, RelayToken, RelayTokenUpdate,
    session_proof_epoch,
};
pub use keys::{DeviceKeys, DevicePublic, IdentityKeypair, verify_cert};
pub use seal::{
    BodyId, OpenError, OpenedBody, ReplayGuard, SealError, open, open_batch, seal, seal_event,
    verify_proof,
};

#[cfg(test)]
mod tests;
