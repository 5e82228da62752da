//! Tests of the whole crate. Unit tests (not `tests/`) so that insider attacks can use
//! crate-private keys a member really has (the membership signing key).

mod at_rest;
mod epochs;
mod fuzz;
mod invite;
mod link;
mod sealing;

use crate::delivery::Recipient;
use crate::{DeviceKeys, EpochSecret, IdentityKeypair, Keyring};
use caucus_proto::{
    Chain, ContactId, DeviceKey, EventId, GroupId, Hlc, IdentityKey, Note, Operation,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::collections::BTreeMap;

pub(crate) fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// An organizer with one device.
pub(crate) struct Member {
    pub(crate) identity: IdentityKeypair,
    pub(crate) device: DeviceKeys,
    pub(crate) cert: caucus_proto::DeviceCert,
}

impl Member {
    pub(crate) fn new(r: &mut ChaCha20Rng) -> Self {
        let identity = IdentityKeypair::generate(r);
        let device = DeviceKeys::generate(identity.public(), r);
        let cert = identity.certify(&device.public(), "phone").unwrap();
        Self {
            identity,
            device,
            cert,
        }
    }

    pub(crate) fn second_device(
        &self,
        r: &mut ChaCha20Rng,
    ) -> (DeviceKeys, caucus_proto::DeviceCert) {
        let d = DeviceKeys::generate(self.identity.public(), r);
        let c = self.identity.certify(&d.public(), "laptop").unwrap();
        (d, c)
    }

    pub(crate) fn recipient(&self) -> Recipient {
        Recipient {
            device: self.device.device_key(),
            dh: self.device.public().dh,
        }
    }
}

pub(crate) fn group() -> GroupId {
    GroupId([7; 16])
}

pub(crate) fn ring_with(epoch: u64, secret: &EpochSecret) -> Keyring {
    let mut k = Keyring::new(group());
    k.insert(epoch, secret.clone()).unwrap();
    k
}

pub(crate) fn directory(members: &[&Member]) -> BTreeMap<DeviceKey, IdentityKey> {
    members
        .iter()
        .map(|m| (m.device.device_key(), m.identity.public()))
        .collect()
}

pub(crate) fn note(text: &str) -> Operation {
    Operation::NoteAdded {
        contact: ContactId([1; 16]),
        note: Note {
            text: text.into(),
            date: None,
            by: None,
        },
    }
}

pub(crate) fn hlc(ms: u64) -> Hlc {
    Hlc {
        wall_ms: ms,
        counter: 0,
    }
}

/// The chain of a device's first entry in the group, made on no authority heads.
pub(crate) fn first() -> Chain {
    Chain::first(vec![])
}

/// The chain of the entry after `prev` (the event id of the device's entry `seq - 1`),
/// made on `heads` (authority entries only).
pub(crate) fn after(seq: u64, prev: EventId, heads: Vec<EventId>) -> Chain {
    Chain {
        seq,
        prev: Some(prev),
        heads,
    }
}
