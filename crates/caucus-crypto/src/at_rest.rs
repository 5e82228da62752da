//! Keys at rest: secrets wrapped under a key derived from the organizer's passphrase.
//!
//! `wrapping key = Argon2id(passphrase, salt, params)`, 32 bytes; the secret is sealed
//! with XChaCha20-Poly1305 under it, with a random 24-byte nonce and, as associated
//! data, the blob's version, purpose, Argon2 parameters and salt, so none of them can be
//! changed without the unwrap failing. The parameters are stored beside the blob, so
//! they can be raised later without breaking old blobs.
//!
//! **Parameters.** [`KdfParams::recommended`] is Argon2id with m = 64 MiB, t = 3, p = 1:
//! above the OWASP minimum (m = 19 MiB, t = 2, p = 1) and RFC 9106's second recommended
//! option for memory-constrained settings (64 MiB), while staying near half a second on
//! a mid-range phone. [`KdfParams::new`] refuses anything below the OWASP minimum; the
//! only way to cheaper parameters is the explicitly named
//! [`KdfParams::insecure_for_tests`]. Unwrapping accepts whatever the blob says within
//! hard bounds (at most 1 GiB, t ≤ 16), so a tampered blob cannot make a node allocate
//! without bound; lowering the parameters in a stolen blob gains an attacker nothing
//! (they still face the passphrase), and changing them fails the AEAD.
//!
//! A wrong passphrase fails the AEAD: [`UnwrapError::WrongPassphrase`].

use crate::secret::random_array;
use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Largest wrapped blob, in bytes (a keyring of many epochs fits).
pub const MAX_WRAPPED_BYTES: usize = (1 << 20) + 1024;

/// Version of the wrapped-blob format.
const WRAP_VERSION: u8 = 1;

/// Argon2id cost parameters, stored beside each wrapped blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    m_kib: u32,
    t: u32,
    p: u32,
}

/// OWASP minimum for Argon2id: 19 MiB, 2 passes, 1 lane.
const OWASP_MIN: KdfParams = KdfParams {
    m_kib: 19 * 1024,
    t: 2,
    p: 1,
};

impl KdfParams {
    /// The parameters new blobs are wrapped with: Argon2id, 64 MiB, t = 3, p = 1.
    pub const fn recommended() -> Self {
        Self {
            m_kib: 64 * 1024,
            t: 3,
            p: 1,
        }
    }

    /// Custom parameters, refused below the OWASP minimum (19 MiB, t = 2, p = 1).
    pub fn new(m_kib: u32, t: u32, p: u32) -> Result<Self, WrapError> {
        let k = Self { m_kib, t, p };
        if m_kib < OWASP_MIN.m_kib || t < OWASP_MIN.t || p < OWASP_MIN.p || !k.within_bounds() {
            return Err(WrapError::WeakParams);
        }
        Ok(k)
    }

    /// Cheap parameters (64 KiB, t = 1) for tests only. Never use outside tests: a
    /// passphrase wrapped with these falls to a dictionary attack in moments.
    pub const fn insecure_for_tests() -> Self {
        Self {
            m_kib: 64,
            t: 1,
            p: 1,
        }
    }

    /// Memory in KiB.
    pub fn m_kib(&self) -> u32 {
        self.m_kib
    }

    /// Passes.
    pub fn t(&self) -> u32 {
        self.t
    }

    /// Lanes.
    pub fn p(&self) -> u32 {
        self.p
    }

    fn within_bounds(&self) -> bool {
        (8..=1024 * 1024).contains(&self.m_kib)
            && (1..=16).contains(&self.t)
            && (1..=8).contains(&self.p)
    }

    fn derive(
        &self,
        passphrase: &[u8],
        salt: &[u8; 16],
    ) -> Result<Zeroizing<[u8; 32]>, UnwrapError> {
        if !self.within_bounds() {
            return Err(UnwrapError::BadParams);
        }
        let params = Params::new(self.m_kib, self.t, self.p, Some(32))
            .map_err(|_| UnwrapError::BadParams)?;
        let mut key = Zeroizing::new([0u8; 32]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(passphrase, salt, &mut *key)
            .map_err(|_| UnwrapError::BadParams)?;
        Ok(key)
    }
}

/// Why a secret could not be wrapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WrapError {
    /// Parameters below the OWASP minimum, or out of bounds.
    #[error("key derivation parameters below the minimum")]
    WeakParams,
    /// The secret is too large to wrap.
    #[error("secret too large to wrap")]
    TooLarge,
    /// Key derivation or encryption failed.
    #[error("wrapping failed")]
    Failed,
}

/// Why a wrapped secret could not be unwrapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnwrapError {
    /// The blob is not a well-formed wrapped secret.
    #[error("wrapped key is malformed: {0}")]
    Malformed(String),
    /// The stored parameters are out of bounds.
    #[error("wrapped key has unusable key derivation parameters")]
    BadParams,
    /// The blob was wrapped for another purpose.
    #[error("wrapped key is for another purpose")]
    WrongPurpose,
    /// Wrong passphrase (or a tampered blob: the two cannot be told apart).
    #[error("wrong passphrase")]
    WrongPassphrase,
}

/// A secret wrapped under a passphrase, with everything needed to unwrap it but the
/// passphrase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedSecret {
    version: u8,
    purpose: String,
    params: KdfParams,
    salt: [u8; 16],
    nonce: [u8; 24],
    ciphertext: Vec<u8>,
}

#[derive(Serialize)]
struct WrapAd<'a> {
    domain: &'a str,
    version: u8,
    purpose: &'a str,
    params: &'a KdfParams,
    salt: &'a [u8; 16],
}

fn ad(version: u8, purpose: &str, params: &KdfParams, salt: &[u8; 16]) -> Vec<u8> {
    caucus_proto::codec::encode::<_, 1024>(&WrapAd {
        domain: "caucus v1 key at rest",
        version,
        purpose,
        params,
        salt,
    })
    .unwrap_or_default()
}

impl WrappedSecret {
    /// Wraps `secret` under `passphrase`. `purpose` names what it is ("device keys",
    /// "keyring of group …") and must match on unwrap.
    pub fn wrap<R: CryptoRng + ?Sized>(
        passphrase: &[u8],
        purpose: &str,
        secret: &[u8],
        params: KdfParams,
        rng: &mut R,
    ) -> Result<Self, WrapError> {
        if secret.len() > (1 << 20) {
            return Err(WrapError::TooLarge);
        }
        if purpose.len() > 256 {
            return Err(WrapError::TooLarge);
        }
        let salt: [u8; 16] = random_array(rng);
        let nonce: [u8; 24] = random_array(rng);
        let key = params
            .derive(passphrase, &salt)
            .map_err(|_| WrapError::WeakParams)?;
        let ciphertext = XChaCha20Poly1305::new(&(*key).into())
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: secret,
                    aad: &ad(WRAP_VERSION, purpose, &params, &salt),
                },
            )
            .map_err(|_| WrapError::Failed)?;
        Ok(Self {
            version: WRAP_VERSION,
            purpose: purpose.to_owned(),
            params,
            salt,
            nonce,
            ciphertext,
        })
    }

    /// Unwraps with `passphrase`; `purpose` must be the one it was wrapped for.
    pub fn unwrap(
        &self,
        passphrase: &[u8],
        purpose: &str,
    ) -> Result<Zeroizing<Vec<u8>>, UnwrapError> {
        if self.version != WRAP_VERSION {
            return Err(UnwrapError::Malformed("unknown version".into()));
        }
        if self.purpose != purpose {
            return Err(UnwrapError::WrongPurpose);
        }
        let key = self.params.derive(passphrase, &self.salt)?;
        XChaCha20Poly1305::new(&(*key).into())
            .decrypt(
                &XNonce::from(self.nonce),
                Payload {
                    msg: &self.ciphertext,
                    aad: &ad(self.version, &self.purpose, &self.params, &self.salt),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| UnwrapError::WrongPassphrase)
    }

    /// The parameters the blob was wrapped with.
    pub fn params(&self) -> KdfParams {
        self.params
    }

    /// The blob's bytes, for the store.
    pub fn to_bytes(&self) -> Result<Vec<u8>, WrapError> {
        caucus_proto::codec::encode::<_, MAX_WRAPPED_BYTES>(self).map_err(|_| WrapError::TooLarge)
    }

    /// Parses stored bytes (bounded).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, UnwrapError> {
        caucus_proto::codec::decode::<_, MAX_WRAPPED_BYTES>(bytes)
            .map_err(|e| UnwrapError::Malformed(e.to_string()))
    }
}
