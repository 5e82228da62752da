//! Invites and joining a group.
//!
//! A member creates an [`InviteTicket`]: group id, bootstrap addresses (opaque strings for
//! the net layer), an expiry, and a one-time 32-byte secret. Its text form is
//! `caucus1-` followed by unpadded lowercase base32 of the ticket's bytes (also the
//! QR payload: [`InviteTicket::to_bytes`]). Anyone holding the ticket can join, so it is
//! handed over like a key: in person or over a channel already trusted.
//!
//! Joining is `Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s` between the joiner and any online
//! member holding the invite, with PSK = `derive_key("caucus v1 invite psk", secret)`:
//!
//! ```text
//! joiner -> member : JoinHello { invite id, Noise(psk, e; JoinRequest { device cert, name }) }
//! member -> joiner : Noise(e, ee; JoinWelcome { group, epoch secrets })
//! ```
//!
//! The invite id (`derive_key("caucus v1 invite id", secret)`, 16 bytes, in clear) only
//! lets the member pick the right PSK. The member side ([`accept_join`]) refuses an
//! expired (`now_ms` passed in) or revoked invite before reading the request, and a
//! request whose device certificate does not verify. On success the node records the
//! join with the entries of [`JoinAccepted::operations`] (sealed with
//! [`crate::seal::seal`]) and adds the invite id to its used/revoked set: tickets are
//! one-time.
//!
//! The 256-bit secret makes an offline dictionary attack on the PSK hopeless (see the
//! pairing-code discussion in [`crate::link`]).

use crate::epoch::{Keyring, SharedEpochs};
use crate::keys::{CertError, verify_cert};
use crate::noise::{self, StepError};
use crate::secret::Secret32;
use caucus_proto::{DeviceCert, GroupId, IdentityKey, Operation, Role, codec, limits};
use data_encoding::BASE32_NOPAD;
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use zeroize::Zeroizing;

/// Prefix of a ticket's text form.
pub const TICKET_PREFIX: &str = "caucus1-";
/// Largest ticket, in bytes.
pub const MAX_TICKET_BYTES: usize = 2048;
/// Longest ticket text accepted by [`InviteTicket::parse`].
pub const MAX_TICKET_TEXT: usize = TICKET_PREFIX.len() + (MAX_TICKET_BYTES * 8).div_ceil(5);
/// Most bootstrap addresses in a ticket.
pub const MAX_TICKET_ADDRESSES: usize = 8;
/// Longest bootstrap address.
pub const MAX_ADDRESS_LEN: usize = 200;
/// Largest join hello (invite id + first Noise message).
pub const MAX_HELLO: usize = 2048;
/// Largest join request payload.
const MAX_REQUEST: usize = 1024;
/// Largest welcome payload.
pub const MAX_WELCOME: usize = 65_000;

/// Public id of an invite: lets the member pick the PSK; reveals nothing of the secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InviteId(pub [u8; 16]);

/// Why a ticket could not be parsed or made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketError {
    /// The text does not start with `caucus1-`.
    #[error("not a caucus invite (expected it to start with caucus1-)")]
    Prefix,
    /// The text is longer than any ticket.
    #[error("invite is too long")]
    TooLong,
    /// The text is not base32.
    #[error("invite is not valid base32 (mistyped or cut off?)")]
    Encoding,
    /// The bytes are not a ticket of this version.
    #[error("invite is malformed: {0}")]
    Malformed(String),
    /// Too many or too long addresses.
    #[error("too many or too long bootstrap addresses")]
    Addresses,
}

/// Why a join failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The invite has expired.
    #[error("invite expired")]
    Expired,
    /// The invite was revoked or already used.
    #[error("invite revoked or already used")]
    Revoked,
    /// The hello names another invite than the one given.
    #[error("hello is for another invite")]
    WrongInvite,
    /// The handshake failed: wrong secret, or an altered, truncated or foreign message.
    #[error("join handshake failed")]
    Handshake,
    /// A message is larger than allowed.
    #[error("join message too large")]
    TooLarge,
    /// A message or payload is malformed.
    #[error("malformed join message: {0}")]
    Malformed(String),
    /// The joiner's device certificate does not verify.
    #[error("joiner's device certificate refused: {0}")]
    Cert(#[from] CertError),
    /// The welcome is for another group than the ticket's.
    #[error("welcome is for another group")]
    WrongGroup,
    /// The member has no key for the group yet.
    #[error("no epoch key to share")]
    NoKeys,
}

impl From<StepError> for JoinError {
    fn from(e: StepError) -> Self {
        match e {
            StepError::TooLarge => JoinError::TooLarge,
            StepError::Noise => JoinError::Handshake,
        }
    }
}

/// An invite to a group. Holds a secret: treat the whole ticket as one.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteTicket {
    version: u8,
    group: GroupId,
    addresses: Vec<String>,
    expires_at_ms: u64,
    secret: Secret32,
}

impl fmt::Debug for InviteTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InviteTicket")
            .field("id", &self.id())
            .field("group", &self.group)
            .field("expires_at_ms", &self.expires_at_ms)
            .field("secret", &"<redacted>")
            .finish()
    }
}

fn check_addresses(addresses: &[String]) -> Result<(), TicketError> {
    if addresses.len() > MAX_TICKET_ADDRESSES || addresses.iter().any(|a| a.len() > MAX_ADDRESS_LEN)
    {
        return Err(TicketError::Addresses);
    }
    Ok(())
}

impl InviteTicket {
    /// A fresh invite to `group`, valid until `expires_at_ms`.
    pub fn create<R: CryptoRng + ?Sized>(
        group: GroupId,
        addresses: Vec<String>,
        expires_at_ms: u64,
        rng: &mut R,
    ) -> Result<Self, TicketError> {
        check_addresses(&addresses)?;
        Ok(Self {
            version: 1,
            group,
            addresses,
            expires_at_ms,
            secret: Secret32::random(rng),
        })
    }

    /// The invite's public id.
    pub fn id(&self) -> InviteId {
        let d = blake3::derive_key("caucus v1 invite id", self.secret.expose());
        let mut id = [0u8; 16];
        id.copy_from_slice(&d[..16]);
        InviteId(id)
    }

    /// The group.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// Bootstrap addresses (opaque).
    pub fn addresses(&self) -> &[String] {
        &self.addresses
    }

    /// Expiry, in Unix milliseconds.
    pub fn expires_at_ms(&self) -> u64 {
        self.expires_at_ms
    }

    /// True if the invite is still valid at `now_ms`.
    pub fn is_valid_at(&self, now_ms: u64) -> bool {
        now_ms < self.expires_at_ms
    }

    fn psk(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(blake3::derive_key(
            "caucus v1 invite psk",
            self.secret.expose(),
        ))
    }

    /// The QR payload bytes. Secret.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, TicketError> {
        codec::encode::<_, MAX_TICKET_BYTES>(self)
            .map(Zeroizing::new)
            .map_err(|e| TicketError::Malformed(e.to_string()))
    }

    /// Parses QR payload bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TicketError> {
        let t: InviteTicket = codec::decode::<_, MAX_TICKET_BYTES>(bytes)
            .map_err(|e| TicketError::Malformed(e.to_string()))?;
        if t.version != 1 {
            return Err(TicketError::Malformed(format!(
                "unsupported ticket version {}",
                t.version
            )));
        }
        check_addresses(&t.addresses)?;
        Ok(t)
    }

    /// The text form, `caucus1-…`. Secret.
    pub fn to_text(&self) -> Result<Zeroizing<String>, TicketError> {
        let bytes = self.to_bytes()?;
        let mut s = Zeroizing::new(String::from(TICKET_PREFIX));
        s.push_str(&BASE32_NOPAD.encode(&bytes).to_ascii_lowercase());
        Ok(s)
    }

    /// Parses the text form (case-insensitive, surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, TicketError> {
        let text = text.trim();
        if text.len() > MAX_TICKET_TEXT {
            return Err(TicketError::TooLong);
        }
        let prefix = text.get(..TICKET_PREFIX.len()).ok_or(TicketError::Prefix)?;
        if !prefix.eq_ignore_ascii_case(TICKET_PREFIX) {
            return Err(TicketError::Prefix);
        }
        let rest = Zeroizing::new(text[TICKET_PREFIX.len()..].to_ascii_uppercase());
        let bytes = Zeroizing::new(
            BASE32_NOPAD
                .decode(rest.as_bytes())
                .map_err(|_| TicketError::Encoding)?,
        );
        Self::from_bytes(&bytes)
    }
}

#[derive(Serialize, Deserialize)]
struct JoinHello {
    version: u8,
    invite: InviteId,
    noise: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct JoinRequest {
    version: u8,
    cert: DeviceCert,
    name: String,
}

#[derive(Serialize, Deserialize)]
struct JoinWelcome {
    version: u8,
    keys: SharedEpochs,
}

/// The joiner's side, waiting for the member's welcome.
pub struct Joiner {
    hs: snow::HandshakeState,
    group: GroupId,
}

impl fmt::Debug for Joiner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Joiner")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

fn prologue(invite: &InviteId) -> Vec<u8> {
    let mut p = b"caucus v1 join".to_vec();
    p.extend_from_slice(&invite.0);
    p
}

impl Joiner {
    /// Starts joining with `ticket`, presenting the joiner's self-issued device
    /// certificate and display name. Returns the state and the hello to send.
    pub fn start<R: CryptoRng + ?Sized>(
        ticket: &InviteTicket,
        cert: &DeviceCert,
        name: &str,
        now_ms: u64,
        rng: &mut R,
    ) -> Result<(Self, Vec<u8>), JoinError> {
        if !ticket.is_valid_at(now_ms) {
            return Err(JoinError::Expired);
        }
        if name.len() > limits::MAX_SHORT_TEXT {
            return Err(JoinError::TooLarge);
        }
        verify_cert(cert)?;
        let id = ticket.id();
        let mut hs = noise::psk_handshake(&ticket.psk(), &prologue(&id), true, rng)?;
        let payload = codec::encode::<_, MAX_REQUEST>(&JoinRequest {
            version: 1,
            cert: cert.clone(),
            name: name.to_owned(),
        })
        .map_err(|_| JoinError::TooLarge)?;
        let noise = noise::write(&mut hs, &payload)?;
        let hello = codec::encode::<_, MAX_HELLO>(&JoinHello {
            version: 1,
            invite: id,
            noise,
        })
        .map_err(|_| JoinError::TooLarge)?;
        Ok((
            Self {
                hs,
                group: ticket.group,
            },
            hello,
        ))
    }

    /// Reads the welcome and returns the group's keyring.
    pub fn finish(mut self, message: &[u8]) -> Result<Keyring, JoinError> {
        let payload = noise::read(&mut self.hs, message)?;
        let welcome: JoinWelcome = codec::decode::<_, MAX_WELCOME>(&payload)
            .map_err(|e| JoinError::Malformed(e.to_string()))?;
        if welcome.version != 1 {
            return Err(JoinError::Malformed("unknown version".into()));
        }
        if welcome.keys.group != self.group {
            return Err(JoinError::WrongGroup);
        }
        let ring = welcome
            .keys
            .into_keyring()
            .map_err(|e| JoinError::Malformed(e.to_string()))?;
        if ring.current().is_none() {
            return Err(JoinError::NoKeys);
        }
        Ok(ring)
    }
}

/// Reads the invite id from a hello, so the member can find the invite it names.
pub fn hello_invite_id(hello: &[u8]) -> Result<InviteId, JoinError> {
    let h: JoinHello =
        codec::decode::<_, MAX_HELLO>(hello).map_err(|e| JoinError::Malformed(e.to_string()))?;
    if h.version != 1 {
        return Err(JoinError::Malformed("unknown version".into()));
    }
    Ok(h.invite)
}

/// A join the member accepted: what to record in the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinAccepted {
    /// The invite used (add it to the used/revoked set).
    pub invite: InviteId,
    /// The new member's identity.
    pub member: IdentityKey,
    /// Their display name.
    pub name: String,
    /// Their device's certificate.
    pub cert: DeviceCert,
}

impl JoinAccepted {
    /// The entries that record the join: `MemberAdded` then `DeviceLinked`. The node
    /// seals each with [`crate::seal::seal`] as the accepting member's device.
    pub fn operations(&self, role: Role) -> [Operation; 2] {
        [
            Operation::MemberAdded {
                member: self.member,
                name: self.name.clone(),
                role,
            },
            Operation::DeviceLinked {
                cert: self.cert.clone(),
            },
        ]
    }
}

/// Which epoch secrets a welcome carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// Only the current epoch: the new member reads what is written from now on.
    CurrentOnly,
    /// Every epoch held (up to [`crate::epoch::MAX_SHARED_EPOCHS`]): the new member can
    /// read the campaign's history.
    Full,
}

/// The member's side of a join: checks the invite (not expired at `now_ms`, not in
/// `revoked`), runs the handshake, checks the joiner's certificate, and returns what
/// to record and the welcome to send. Any failure ends the join; nothing is sent.
#[allow(clippy::too_many_arguments)]
pub fn accept_join<R: CryptoRng + ?Sized>(
    hello: &[u8],
    invite: &InviteTicket,
    now_ms: u64,
    revoked: &BTreeSet<InviteId>,
    keyring: &Keyring,
    history: History,
    rng: &mut R,
) -> Result<(JoinAccepted, Vec<u8>), JoinError> {
    let h: JoinHello =
        codec::decode::<_, MAX_HELLO>(hello).map_err(|e| JoinError::Malformed(e.to_string()))?;
    let id = invite.id();
    if h.version != 1 {
        return Err(JoinError::Malformed("unknown version".into()));
    }
    if h.invite != id {
        return Err(JoinError::WrongInvite);
    }
    if revoked.contains(&id) {
        return Err(JoinError::Revoked);
    }
    if !invite.is_valid_at(now_ms) {
        return Err(JoinError::Expired);
    }
    if keyring.group() != invite.group {
        return Err(JoinError::WrongGroup);
    }
    if keyring.current().is_none() {
        return Err(JoinError::NoKeys);
    }
    let mut hs = noise::psk_handshake(&invite.psk(), &prologue(&id), false, rng)?;
    let payload = noise::read(&mut hs, &h.noise)?;
    let req: JoinRequest = codec::decode::<_, MAX_REQUEST>(&payload)
        .map_err(|e| JoinError::Malformed(e.to_string()))?;
    if req.version != 1 {
        return Err(JoinError::Malformed("unknown version".into()));
    }
    if req.name.len() > limits::MAX_SHORT_TEXT {
        return Err(JoinError::TooLarge);
    }
    verify_cert(&req.cert)?;
    let welcome = JoinWelcome {
        version: 1,
        keys: SharedEpochs::from_keyring(keyring, history == History::CurrentOnly),
    };
    let bytes =
        Zeroizing::new(codec::encode::<_, MAX_WELCOME>(&welcome).map_err(|_| JoinError::TooLarge)?);
    let msg = noise::write(&mut hs, &bytes)?;
    Ok((
        JoinAccepted {
            invite: id,
            member: req.cert.identity,
            name: req.name,
            cert: req.cert,
        },
        msg,
    ))
}
