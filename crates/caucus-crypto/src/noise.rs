//! Glue between `snow` and this crate's rules: randomness comes from the caller.
//!
//! snow asks its resolver for an RNG when a handshake is built. [`InjectedResolver`]
//! answers with [`DrawnRandom`], a buffer of bytes drawn beforehand from the caller's
//! `CryptoRng` (exactly what the handshake needs: one ephemeral key), so the handshakes
//! stay deterministic under a seeded RNG in tests and never touch the OS. Everything
//! else (X25519, ChaChaPoly, BLAKE2s) is snow's default resolver.

use crate::secret::random_array;
use rand_core::CryptoRng;
use snow::params::{CipherChoice, DHChoice, HashChoice, NoiseParams};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use zeroize::Zeroizing;

/// Bytes of randomness one handshake party draws (one X25519 ephemeral key).
const DRAW: usize = 32;

/// Pre-drawn randomness handed to snow.
struct DrawnRandom {
    buf: Zeroizing<Vec<u8>>,
    used: usize,
}

impl Random for DrawnRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        let end = self.used.checked_add(dest.len()).ok_or(snow::Error::Rng)?;
        let src = self.buf.get(self.used..end).ok_or(snow::Error::Rng)?;
        dest.copy_from_slice(src);
        self.used = end;
        Ok(())
    }
}

/// snow's default primitives with the caller's randomness.
pub(crate) struct InjectedResolver {
    seed: Zeroizing<Vec<u8>>,
}

impl InjectedResolver {
    pub(crate) fn new<R: CryptoRng + ?Sized>(rng: &mut R) -> Box<Self> {
        let drawn = Zeroizing::new(random_array::<DRAW, _>(rng));
        Box::new(Self {
            seed: Zeroizing::new(drawn.to_vec()),
        })
    }

    /// For roles that must draw nothing (the responder of `N`): any draw fails.
    pub(crate) fn without_randomness() -> Box<Self> {
        Box::new(Self {
            seed: Zeroizing::new(Vec::new()),
        })
    }
}

impl CryptoResolver for InjectedResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(DrawnRandom {
            buf: self.seed.clone(),
            used: 0,
        }))
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

/// Parses one of this crate's fixed Noise protocol names.
pub(crate) fn params(name: &str) -> Result<NoiseParams, snow::Error> {
    name.parse()
}

/// Largest Noise message (the Noise limit).
pub(crate) const MAX_NOISE_MSG: usize = 65_535;

/// Noise protocol of device linking and joining: one round trip, PSK mixed first.
pub(crate) const PSK_PROTOCOL: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";

/// Why a PSK handshake step failed (mapped to each module's own error).
#[derive(Debug)]
pub(crate) enum StepError {
    /// The message is longer than a Noise message may be.
    TooLarge,
    /// snow refused: wrong PSK, altered or truncated message, bad key.
    Noise,
}

/// Builds one side of an `NNpsk0` handshake.
pub(crate) fn psk_handshake<R: CryptoRng + ?Sized>(
    psk: &[u8; 32],
    prologue: &[u8],
    initiator: bool,
    rng: &mut R,
) -> Result<snow::HandshakeState, StepError> {
    let params = params(PSK_PROTOCOL).map_err(|_| StepError::Noise)?;
    let b = snow::Builder::with_resolver(params, InjectedResolver::new(rng))
        .psk(0, psk)
        .and_then(|b| b.prologue(prologue))
        .map_err(|_| StepError::Noise)?;
    if initiator {
        b.build_initiator()
    } else {
        b.build_responder()
    }
    .map_err(|_| StepError::Noise)
}

/// Writes one handshake message carrying `payload`.
pub(crate) fn write(hs: &mut snow::HandshakeState, payload: &[u8]) -> Result<Vec<u8>, StepError> {
    if payload.len() + 64 > MAX_NOISE_MSG {
        return Err(StepError::TooLarge);
    }
    let mut out = vec![0u8; payload.len() + 64];
    let n = hs
        .write_message(payload, &mut out)
        .map_err(|_| StepError::Noise)?;
    out.truncate(n);
    Ok(out)
}

/// Reads one handshake message, returning its payload.
pub(crate) fn read(
    hs: &mut snow::HandshakeState,
    message: &[u8],
) -> Result<Zeroizing<Vec<u8>>, StepError> {
    if message.len() > MAX_NOISE_MSG {
        return Err(StepError::TooLarge);
    }
    let mut out = Zeroizing::new(vec![0u8; message.len()]);
    let n = hs
        .read_message(message, &mut out)
        .map_err(|_| StepError::Noise)?;
    out.truncate(n);
    Ok(out)
}
