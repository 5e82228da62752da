//! Checking a home against its own envelopes: [`Node::reverify`] opens every stored
//! envelope of a group again with the crypto layer and folds what opens into a fresh
//! state, apart from the bodies the store kept and the fold it maintains.
//!
//! [`Node::open`] folds the stored bodies without any cryptography (they were verified
//! before they were stored). This pass is the slow, independent check of that shortcut:
//! a body altered in the database, or a fold that drifted from its entries, shows as a
//! failed entry or a different state hash.

use crate::{Node, NodeError};
use caucus_crypto::seal::DeviceDirectory;
use caucus_crypto::{OpenError, open_batch};
use caucus_model::{OpenedEntry, State};
use caucus_proto::{DeviceKey, EntryId, Envelope, GroupId, IdentityKey};

/// The crypto layer's device directory, answered by the fresh fold.
struct Fresh<'a>(&'a State);

impl DeviceDirectory for Fresh<'_> {
    fn identity_of(&self, device: &DeviceKey) -> Option<IdentityKey> {
        self.0.identity_of(device)
    }
}

/// What [`Node::reverify`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reverified {
    /// Envelopes opened, verified and folded.
    pub opened: usize,
    /// Envelopes this device cannot open (an epoch it was never given, a device never
    /// linked): left out, as they were when they arrived.
    pub unreadable: usize,
    /// The canonical hash of the fresh fold; equal to [`State::state_hash`] of
    /// [`Node::state`] when the store is sound.
    pub state_hash: [u8; 32],
}

impl Node {
    /// Opens every envelope stored for `group` again (membership proof, decryption,
    /// signature, certificate) with this device's keyring, in rounds while devices and
    /// epochs become known, and folds the bodies into a fresh [`State`]. An envelope
    /// that fails for any other reason than a missing key or device is an error: the
    /// store holds something that was never valid.
    pub fn reverify(&self, group: &GroupId) -> Result<Reverified, NodeError> {
        let keyring = self.keyring(group)?;
        let mut state = State::new(self.state(group)?.founder());
        let mut left: Vec<(EntryId, Envelope)> = Vec::new();
        for e in self.store().entries(group)? {
            let envelope = Envelope::decode(&e.envelope).map_err(|_| {
                NodeError::Corrupt(format!("stored entry {} does not decode", e.id))
            })?;
            left.push((e.id, envelope));
        }
        let mut opened = 0;
        loop {
            let envelopes: Vec<Envelope> = left.iter().map(|(_, e)| e.clone()).collect();
            let results = open_batch(&envelopes, keyring, &Fresh(&state));
            let mut batch = Vec::new();
            let mut rest = Vec::new();
            for ((id, envelope), result) in left.into_iter().zip(results) {
                match result {
                    Ok(body) => batch.push(OpenedEntry::with_event(
                        id,
                        body.epoch,
                        body.body_id.event_id(),
                        body.body,
                    )),
                    Err(OpenError::UnknownDevice | OpenError::UnknownEpoch { .. }) => {
                        rest.push((id, envelope));
                    }
                    Err(e) => {
                        return Err(NodeError::Corrupt(format!(
                            "stored entry {id} does not verify: {e}"
                        )));
                    }
                }
            }
            left = rest;
            if batch.is_empty() {
                break;
            }
            opened += batch.len();
            state.extend(batch);
        }
        Ok(Reverified {
            opened,
            unreadable: left.len(),
            state_hash: state.state_hash(),
        })
    }
}
