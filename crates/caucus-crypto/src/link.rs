//! Linking a second device (phone + laptop of one organizer).
//!
//! The device that holds the identity (the **host**) shows a [`PairingCode`], and a QR
//! code of [`LinkQr`] (the same secret plus the host's addresses). The **new device**
//! enters the code or scans the QR and runs `Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s` with
//! it, the PSK being `BLAKE3-derive_key("caucus v1 pairing psk", code)`:
//!
//! ```text
//! new device -> host : psk, e        payload: LinkRequest { device keys (public), label }
//! host -> new device : e, ee         payload: LinkGrant { DeviceCert, group keyrings }
//! ```
//!
//! A network attacker who does not know the code cannot complete either side: the first
//! message is encrypted under a key mixed from the PSK, so the host rejects a wrong code
//! before it sends anything, and nothing secret leaves it. The grant travels after `ee`,
//! so it is also forward secret.
//!
//! **Code entropy.** A PSK handshake lets an *active* party that answers (or initiates)
//! once try PSK guesses offline against the transcript: the code must therefore be a
//! key, not a PIN. The code is 20 symbols of Crockford base32 (100 bits), shown as
//! `K7QF-2MZX-9PLD-H3RT-8WNC`; at 2^40 guesses per second an offline search takes
//! about 2^59 seconds. Each host session accepts one attempt and is then spent.
//!
//! Both sides are sans-IO state machines: `start`/`new` give a state (and the first
//! message), each step consumes the state and the peer's bytes and returns the result
//! and the bytes to send. Every message is bounded, every payload decoded through the
//! bounded codec; any malformed input ends the handshake with a [`LinkError`].

use crate::epoch::{Keyring, SharedEpochs};
use crate::keys::{CertError, DeviceKeys, DevicePublic, IdentityKeypair, verify_cert};
use crate::noise::{self, StepError};
use crate::secret::random_array;
use caucus_proto::{DeviceCert, IdentityKey, codec, limits};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::{Zeroize, Zeroizing};

/// Crockford base32 alphabet (no I, L, O, U).
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Symbols in a pairing code (5 bits each: 100 bits).
pub const CODE_SYMBOLS: usize = 20;
/// Prologue of the link handshake.
const PROLOGUE: &[u8] = b"caucus v1 device link";
/// Largest link request payload.
const MAX_REQUEST: usize = 1024;
/// Largest link grant payload (fits one Noise message).
pub const MAX_GRANT: usize = 65_000;
/// Most groups in one grant.
pub const MAX_GRANT_GROUPS: usize = 64;

/// Why linking failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The pairing code is not 20 symbols of Crockford base32.
    #[error("pairing code must be 20 letters and digits, like K7QF-2MZX-9PLD-H3RT-8WNC")]
    BadCode,
    /// The QR payload is malformed.
    #[error("malformed link QR payload: {0}")]
    BadQr(String),
    /// The handshake failed: wrong code, or an altered, truncated or foreign message.
    #[error("link handshake failed (wrong code or altered message)")]
    Handshake,
    /// A message or payload is larger than allowed.
    #[error("link message too large")]
    TooLarge,
    /// The payload inside the handshake is malformed.
    #[error("malformed link payload: {0}")]
    Malformed(String),
    /// The certificate is invalid or does not match the keys offered.
    #[error("device certificate refused: {0}")]
    Cert(#[from] CertError),
    /// The certificate is for other keys than this device offered.
    #[error("the host certified other keys than this device's")]
    WrongCert,
}

impl From<StepError> for LinkError {
    fn from(e: StepError) -> Self {
        match e {
            StepError::TooLarge => LinkError::TooLarge,
            StepError::Noise => LinkError::Handshake,
        }
    }
}

/// A one-time pairing code: 100 random bits as 20 Crockford base32 symbols.
#[derive(Clone, Zeroize, zeroize::ZeroizeOnDrop, PartialEq, Eq)]
pub struct PairingCode {
    symbols: [u8; CODE_SYMBOLS],
}

impl PairingCode {
    /// A fresh code.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut symbols: [u8; CODE_SYMBOLS] = random_array(rng);
        // 256 is a multiple of 32: the low five bits are uniform.
        for s in &mut symbols {
            *s &= 31;
        }
        Self { symbols }
    }

    /// Parses what a person typed: case-insensitive, `-` and spaces ignored, `O` read as
    /// `0` and `I`/`L` as `1`.
    pub fn parse(text: &str) -> Result<Self, LinkError> {
        if text.len() > 64 {
            return Err(LinkError::BadCode);
        }
        let mut symbols = [0u8; CODE_SYMBOLS];
        let mut n = 0;
        for c in text.chars() {
            if c == '-' || c.is_whitespace() {
                continue;
            }
            let c = match c.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                other => other,
            };
            let v = ALPHABET
                .iter()
                .position(|&a| char::from(a) == c)
                .ok_or(LinkError::BadCode)?;
            let slot = symbols.get_mut(n).ok_or(LinkError::BadCode)?;
            *slot = v as u8;
            n += 1;
        }
        if n != CODE_SYMBOLS {
            symbols.zeroize();
            return Err(LinkError::BadCode);
        }
        Ok(Self { symbols })
    }

    /// The code to show the organizer, grouped by four: `K7QF-2MZX-9PLD-H3RT-8WNC`.
    /// Secret until used: show it, never log it.
    pub fn reveal(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(24));
        for (i, v) in self.symbols.iter().enumerate() {
            if i > 0 && i % 4 == 0 {
                s.push('-');
            }
            s.push(char::from(ALPHABET[usize::from(*v & 31)]));
        }
        s
    }

    fn psk(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(blake3::derive_key("caucus v1 pairing psk", &self.symbols))
    }
}

impl fmt::Debug for PairingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PairingCode(<redacted>)")
    }
}

/// The QR payload for linking: the pairing code and where to reach the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkQr {
    /// The code.
    pub code: PairingCode,
    /// Opaque addresses of the host (multiaddrs for the net layer).
    pub addresses: Vec<String>,
}

#[derive(Serialize, Deserialize, Zeroize)]
struct LinkQrWire {
    version: u8,
    symbols: [u8; CODE_SYMBOLS],
    addresses: Vec<String>,
}

/// Largest QR payload.
const MAX_QR: usize = 2048;

impl LinkQr {
    /// The QR bytes (byte mode). Secret: they carry the code.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, LinkError> {
        if self.addresses.len() > 8 || self.addresses.iter().any(|a| a.len() > 200) {
            return Err(LinkError::TooLarge);
        }
        let mut wire = LinkQrWire {
            version: 1,
            symbols: self.code.symbols,
            addresses: self.addresses.clone(),
        };
        let out = codec::encode::<_, MAX_QR>(&wire).map_err(|_| LinkError::TooLarge);
        wire.zeroize();
        out.map(Zeroizing::new)
    }

    /// Parses QR bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LinkError> {
        let mut wire: LinkQrWire =
            codec::decode::<_, MAX_QR>(bytes).map_err(|e| LinkError::BadQr(e.to_string()))?;
        if wire.version != 1 {
            return Err(LinkError::BadQr("unknown version".into()));
        }
        if wire.symbols.iter().any(|s| *s >= 32) || wire.addresses.len() > 8 {
            return Err(LinkError::BadQr("out of range".into()));
        }
        let qr = LinkQr {
            code: PairingCode {
                symbols: wire.symbols,
            },
            addresses: std::mem::take(&mut wire.addresses),
        };
        wire.zeroize();
        Ok(qr)
    }
}

#[derive(Serialize, Deserialize)]
struct LinkRequest {
    version: u8,
    device: DevicePublic,
    label: String,
}

#[derive(Serialize, Deserialize)]
struct LinkGrant {
    version: u8,
    cert: DeviceCert,
    groups: Vec<SharedEpochs>,
}

/// The new device's side, waiting for the host's answer.
pub struct LinkNewDevice {
    hs: snow::HandshakeState,
    offered: DevicePublic,
}

impl fmt::Debug for LinkNewDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkNewDevice").finish_non_exhaustive()
    }
}

/// What the new device receives: its certificate and the groups' keyrings.
#[derive(Debug)]
pub struct Linked {
    /// The identity's certificate for this device (publish it as `DeviceLinked`).
    pub cert: DeviceCert,
    /// The identity this device now belongs to.
    pub identity: IdentityKey,
    /// One keyring per group the identity is a member of.
    pub keyrings: Vec<Keyring>,
}

impl LinkNewDevice {
    /// Starts linking `device` (made with [`DeviceKeys::generate_unlinked`]) with the
    /// code shown on the host; returns the state and the first message to send.
    pub fn start<R: CryptoRng + ?Sized>(
        code: &PairingCode,
        device: &DeviceKeys,
        label: &str,
        rng: &mut R,
    ) -> Result<(Self, Vec<u8>), LinkError> {
        if label.len() > limits::MAX_SHORT_TEXT {
            return Err(LinkError::TooLarge);
        }
        let mut hs = noise::psk_handshake(&code.psk(), PROLOGUE, true, rng)?;
        let offered = device.public();
        let payload = codec::encode::<_, MAX_REQUEST>(&LinkRequest {
            version: 1,
            device: offered,
            label: label.to_owned(),
        })
        .map_err(|_| LinkError::TooLarge)?;
        let msg = noise::write(&mut hs, &payload)?;
        Ok((Self { hs, offered }, msg))
    }

    /// Reads the host's answer and ends the handshake.
    pub fn finish(mut self, message: &[u8]) -> Result<Linked, LinkError> {
        let payload = noise::read(&mut self.hs, message)?;
        let grant: LinkGrant = codec::decode::<_, MAX_GRANT>(&payload)
            .map_err(|e| LinkError::Malformed(e.to_string()))?;
        if grant.version != 1 || grant.groups.len() > MAX_GRANT_GROUPS {
            return Err(LinkError::Malformed(
                "unknown version or too many groups".into(),
            ));
        }
        verify_cert(&grant.cert)?;
        if grant.cert.device != self.offered.device || grant.cert.dh != self.offered.dh {
            return Err(LinkError::WrongCert);
        }
        let keyrings = grant
            .groups
            .into_iter()
            .map(SharedEpochs::into_keyring)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| LinkError::Malformed(e.to_string()))?;
        Ok(Linked {
            identity: grant.cert.identity,
            cert: grant.cert,
            keyrings,
        })
    }
}

/// The host's side: holds the identity, waits for the new device's first message.
pub struct LinkHost {
    hs: snow::HandshakeState,
}

impl fmt::Debug for LinkHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkHost").finish_non_exhaustive()
    }
}

/// What the host learns: the certificate it issued (publish it as `DeviceLinked`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkIssued {
    /// The new device's certificate.
    pub cert: DeviceCert,
}

impl LinkHost {
    /// Prepares to accept one new device with `code`.
    pub fn new<R: CryptoRng + ?Sized>(code: &PairingCode, rng: &mut R) -> Result<Self, LinkError> {
        Ok(Self {
            hs: noise::psk_handshake(&code.psk(), PROLOGUE, false, rng)?,
        })
    }

    /// Reads the new device's first message; if the code matched, certifies the device
    /// and answers with the certificate and the keyrings. A wrong code fails here, before
    /// anything is sent. The state is consumed either way: one attempt per code.
    pub fn respond(
        mut self,
        message: &[u8],
        identity: &IdentityKeypair,
        keyrings: &[&Keyring],
    ) -> Result<(LinkIssued, Vec<u8>), LinkError> {
        let payload = noise::read(&mut self.hs, message)?;
        let req: LinkRequest = codec::decode::<_, MAX_REQUEST>(&payload)
            .map_err(|e| LinkError::Malformed(e.to_string()))?;
        if req.version != 1 {
            return Err(LinkError::Malformed("unknown version".into()));
        }
        if keyrings.len() > MAX_GRANT_GROUPS {
            return Err(LinkError::TooLarge);
        }
        let cert = identity.certify(&req.device, &req.label)?;
        verify_cert(&cert)?;
        let grant = LinkGrant {
            version: 1,
            cert: cert.clone(),
            groups: keyrings
                .iter()
                .map(|k| SharedEpochs::from_keyring(k, false))
                .collect(),
        };
        let bytes =
            Zeroizing::new(codec::encode::<_, MAX_GRANT>(&grant).map_err(|_| LinkError::TooLarge)?);
        let msg = noise::write(&mut self.hs, &bytes)?;
        Ok((LinkIssued { cert }, msg))
    }
}
