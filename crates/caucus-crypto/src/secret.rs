//! Secret byte strings: zeroized on drop, redacted in `Debug`, never `Display`.
//!
//! Every secret the crate holds (epoch secrets, invite secrets, pairing codes, wrapped
//! key material in transit through a handshake) lives in one of these types, so that no
//! log line, panic message or `{:?}` can print it and no copy outlives its owner.

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// 32 secret bytes, zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop, Serialize, Deserialize)]
pub struct Secret32([u8; 32]);

impl Secret32 {
    /// Wraps bytes the caller already has (for example after unwrapping them from disk).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// 32 fresh bytes from `rng`.
    pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        Self(b)
    }

    /// The secret bytes. Keep the borrow short; never log them.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for Secret32 {
    fn eq(&self, other: &Self) -> bool {
        // Not constant time on purpose-free paths only: used by tests and dedup of
        // already-held keys, never on attacker-timed comparisons of guesses.
        self.0 == other.0
    }
}
impl Eq for Secret32 {}

impl fmt::Debug for Secret32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret32(<redacted>)")
    }
}

/// Fills a fresh array from `rng`.
pub(crate) fn random_array<const N: usize, R: CryptoRng + ?Sized>(rng: &mut R) -> [u8; N] {
    let mut b = [0u8; N];
    rng.fill_bytes(&mut b);
    b
}
