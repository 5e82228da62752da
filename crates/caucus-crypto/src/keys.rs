//! Identity and device keys, and device certificates.
//!
//! An organizer has one **identity** (an Ed25519 key pair): its public half is the
//! member id inside every group. Each of their devices (phone, laptop) has its own
//! Ed25519 **signing key** (it signs entry bodies) and its own X25519 **DH key** (new
//! epoch secrets are sealed to it). The identity vouches for a device with a
//! [`DeviceCert`]: an identity signature over a domain-separated encoding of
//! `(identity, device, dh, label)`. A device's keys never leave the device; linking a
//! new device only moves the certificate and group keys (see [`crate::link`]).
//!
//! Secret keys are built from 32 random bytes drawn from the caller's RNG, zeroize on
//! drop (ed25519-dalek and x25519-dalek do it for their own types) and print as
//! `<redacted>`.

use crate::secret::random_array;
use caucus_proto::{Author, DeviceCert, DeviceKey, IdentityKey, Signature, codec, limits};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand_core::CryptoRng;
use serde::Serialize;
use std::fmt;
use x25519_dalek::{PublicKey as DhPublic, StaticSecret};
use zeroize::Zeroizing;

/// Domain separation string of device certificates.
const CERT_DOMAIN: &str = "caucus device certificate v1";

/// Why a device certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The identity key is not a valid Ed25519 point.
    #[error("certificate identity key is not a valid public key")]
    BadIdentityKey,
    /// The device key is not a valid Ed25519 point.
    #[error("certificate device key is not a valid public key")]
    BadDeviceKey,
    /// The X25519 key is a low-order point: anything sealed to it would be readable by all.
    #[error("certificate DH key is a low-order point")]
    BadDhKey,
    /// The label is longer than the protocol allows.
    #[error("device label too long")]
    LabelTooLong,
    /// The identity's signature does not verify.
    #[error("certificate signature does not verify")]
    BadSignature,
}

/// Why stored key bytes could not be turned back into keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyBytesError {
    /// Wrong length or version for this key type.
    #[error("stored key bytes are malformed")]
    Malformed,
}

/// An organizer's identity: the Ed25519 key whose public half is their member id.
pub struct IdentityKeypair {
    signing: SigningKey,
}

impl IdentityKeypair {
    /// A fresh identity from `rng`.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let seed = Zeroizing::new(random_array::<32, _>(rng));
        Self {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    /// The public identity key (the member id).
    pub fn public(&self) -> IdentityKey {
        IdentityKey(self.signing.verifying_key().to_bytes())
    }

    /// Certifies a device's keys under this identity.
    pub fn certify(&self, device: &DevicePublic, label: &str) -> Result<DeviceCert, CertError> {
        if label.len() > limits::MAX_SHORT_TEXT {
            return Err(CertError::LabelTooLong);
        }
        let identity = self.public();
        let msg = cert_signed_bytes(&identity, &device.device, &device.dh, label)?;
        let signature = Signature(self.signing.sign(&msg).to_bytes());
        Ok(DeviceCert {
            identity,
            device: device.device,
            dh: device.dh,
            label: label.to_owned(),
            signature,
        })
    }

    /// The 32-byte seed, for wrapping at rest ([`crate::at_rest`]). Never log it.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// Rebuilds the identity from [`IdentityKeypair::to_secret_bytes`].
    pub fn from_secret_bytes(bytes: &[u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(bytes),
        }
    }
}

impl fmt::Debug for IdentityKeypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKeypair")
            .field("public", &self.public())
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The public keys of one device, as offered for certification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DevicePublic {
    /// Ed25519 signing key.
    pub device: DeviceKey,
    /// X25519 key that new epoch secrets are sealed to.
    pub dh: [u8; 32],
}

/// One device's secret keys, and the identity it belongs to.
pub struct DeviceKeys {
    identity: IdentityKey,
    signing: SigningKey,
    dh: StaticSecret,
}

impl DeviceKeys {
    /// Fresh device keys for `identity`, from `rng`.
    pub fn generate<R: CryptoRng + ?Sized>(identity: IdentityKey, rng: &mut R) -> Self {
        let seed = Zeroizing::new(random_array::<32, _>(rng));
        let dh = Zeroizing::new(random_array::<32, _>(rng));
        Self {
            identity,
            signing: SigningKey::from_bytes(&seed),
            dh: StaticSecret::from(*dh),
        }
    }

    /// Fresh keys for a device not yet linked to an identity (the new device in
    /// [`crate::link`]); bind it with [`DeviceKeys::with_identity`] once linked.
    pub fn generate_unlinked<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self::generate(IdentityKey([0; 32]), rng)
    }

    /// The same keys, belonging to `identity` (after linking).
    pub fn with_identity(mut self, identity: IdentityKey) -> Self {
        self.identity = identity;
        self
    }

    /// The identity this device belongs to.
    pub fn identity(&self) -> IdentityKey {
        self.identity
    }

    /// The device's public keys.
    pub fn public(&self) -> DevicePublic {
        DevicePublic {
            device: DeviceKey(self.signing.verifying_key().to_bytes()),
            dh: DhPublic::from(&self.dh).to_bytes(),
        }
    }

    /// The device's public signing key.
    pub fn device_key(&self) -> DeviceKey {
        DeviceKey(self.signing.verifying_key().to_bytes())
    }

    /// The author this device writes entries as.
    pub fn author(&self) -> Author {
        Author {
            identity: self.identity,
            device: self.device_key(),
        }
    }

    /// Signs `msg` with the device key (entry bodies; see [`crate::seal`]).
    pub(crate) fn sign(&self, msg: &[u8]) -> Signature {
        Signature(self.signing.sign(msg).to_bytes())
    }

    /// The X25519 secret, for opening sealed epoch deliveries.
    pub(crate) fn dh_secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.dh.to_bytes())
    }

    /// `version ‖ identity ‖ signing seed ‖ dh secret` (97 bytes), for wrapping at rest.
    pub fn to_secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(97));
        out.push(1);
        out.extend_from_slice(self.identity.as_bytes());
        out.extend_from_slice(self.signing.as_bytes());
        out.extend_from_slice(self.dh.as_bytes());
        out
    }

    /// Rebuilds device keys from [`DeviceKeys::to_secret_bytes`].
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, KeyBytesError> {
        if bytes.len() != 97 || bytes.first() != Some(&1) {
            return Err(KeyBytesError::Malformed);
        }
        let mut id = [0u8; 32];
        let mut seed = Zeroizing::new([0u8; 32]);
        let mut dh = Zeroizing::new([0u8; 32]);
        id.copy_from_slice(&bytes[1..33]);
        seed.copy_from_slice(&bytes[33..65]);
        dh.copy_from_slice(&bytes[65..97]);
        Ok(Self {
            identity: IdentityKey(id),
            signing: SigningKey::from_bytes(&seed),
            dh: StaticSecret::from(*dh),
        })
    }
}

impl fmt::Debug for DeviceKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceKeys")
            .field("identity", &self.identity)
            .field("device", &self.device_key())
            .field("secrets", &"<redacted>")
            .finish()
    }
}

#[derive(Serialize)]
struct CertSigned<'a> {
    domain: &'a str,
    identity: &'a IdentityKey,
    device: &'a DeviceKey,
    dh: &'a [u8; 32],
    label: &'a str,
}

fn cert_signed_bytes(
    identity: &IdentityKey,
    device: &DeviceKey,
    dh: &[u8; 32],
    label: &str,
) -> Result<Vec<u8>, CertError> {
    codec::encode::<_, 1024>(&CertSigned {
        domain: CERT_DOMAIN,
        identity,
        device,
        dh,
        label,
    })
    .map_err(|_| CertError::LabelTooLong)
}

/// Checks a device certificate: valid keys, label within limits, identity signature.
pub fn verify_cert(cert: &DeviceCert) -> Result<(), CertError> {
    if cert.label.len() > limits::MAX_SHORT_TEXT {
        return Err(CertError::LabelTooLong);
    }
    let identity =
        VerifyingKey::from_bytes(&cert.identity.0).map_err(|_| CertError::BadIdentityKey)?;
    let device = VerifyingKey::from_bytes(&cert.device.0).map_err(|_| CertError::BadDeviceKey)?;
    // Keys with a torsion component are never made honestly; refusing them keeps single
    // and batch verification of this device's signatures from disagreeing.
    if identity.is_weak() || !identity.to_edwards().is_torsion_free() {
        return Err(CertError::BadIdentityKey);
    }
    if device.is_weak() || !device.to_edwards().is_torsion_free() {
        return Err(CertError::BadDeviceKey);
    }
    // Sealing a new epoch to a low-order X25519 key would give an all-zero shared secret:
    // anyone holding the delivery entry could open it.
    let probe = StaticSecret::from([0x42; 32]);
    if !probe
        .diffie_hellman(&DhPublic::from(cert.dh))
        .was_contributory()
    {
        return Err(CertError::BadDhKey);
    }
    let msg = cert_signed_bytes(&cert.identity, &cert.device, &cert.dh, &cert.label)?;
    let sig = ed25519_dalek::Signature::from_bytes(&cert.signature.0);
    identity
        .verify_strict(&msg, &sig)
        .map_err(|_| CertError::BadSignature)
}
