//! What the network needs from the rest of the node, as one small trait.
//!
//! `caucus-net` does not know the store or the keyring. The node hands it a [`Backend`]:
//!
//! - a read-only [`EntryIndex`] view of a group's entries, for reconciliation;
//! - a validity check of one envelope for a group (its membership proof, through the
//!   epoch's relay token), used before gossip is forwarded and before a fetched entry is
//!   stored;
//! - "store these verified envelopes";
//! - the session membership proof for `/caucus/sync/1` and its check (see
//!   [`crate::sync`] for what is signed).
//!
//! [`MemoryBackend`] implements it in memory with the real envelope check of
//! `caucus-crypto`; the tests of this crate and of the node use it.
//!
//! Calls come from the swarm task (gossip validation) and from sync tasks, so they should
//! be quick: a SQLite implementation answers from indexed queries.

use caucus_crypto::{RelayToken, verify_proof};
use caucus_proto::{EntryId, Envelope, GroupId, SealedReceipt};
use caucus_sync::{EntryIndex, MemoryIndex};
use libp2p::identity::ed25519;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The verdict on one envelope received for a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validation {
    /// Valid: store it, forward it.
    Accept,
    /// Invalid (bad proof, wrong group): drop it and penalize the peer that sent it.
    Reject,
    /// Not checkable now (an epoch this node does not know yet): drop it, no penalty.
    Ignore,
}

/// Why the backend could not store entries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The group is not one this node belongs to.
    #[error("unknown group")]
    UnknownGroup,
    /// The store failed (message without entry content).
    #[error("store failed: {0}")]
    Store(String),
    /// Some envelopes failed the store's own checks (membership proof, signature,
    /// ciphertext) and were refused; the others were stored.
    #[error("{0} entries refused")]
    Refused(usize),
}

/// The node's side of the network (see the module docs). Object-safe: the network holds
/// an `Arc<dyn Backend>`.
pub trait Backend: Send + Sync + 'static {
    /// Runs `f` on a read-only index of `group`'s entries; `false` if the group is unknown.
    fn with_index(&self, group: &GroupId, f: &mut dyn FnMut(&dyn EntryIndex)) -> bool;

    /// Checks an envelope received for `group` (already decoded; the network has checked
    /// that its header names `group`).
    fn validate(&self, group: &GroupId, envelope: &Envelope) -> Validation;

    /// Checks an envelope fetched by catch-up sync, before [`Backend::store`]. By default
    /// [`Backend::validate`]. A backend whose `store` verifies every membership proof
    /// itself, and answers [`BackendError::Refused`] for what fails, may check here only
    /// that the epoch is one it knows (the proof is then verified once, not twice).
    fn precheck_fetched(&self, group: &GroupId, envelope: &Envelope) -> Validation {
        self.validate(group, envelope)
    }

    /// Stores envelopes that passed [`Backend::validate`] (or, from sync,
    /// [`Backend::precheck_fetched`]); `(id, encoded envelope)` pairs. Returns how many
    /// were new. Idempotent.
    fn store(
        &self,
        group: &GroupId,
        entries: Vec<(EntryId, Vec<u8>)>,
    ) -> Result<usize, BackendError>;

    /// This node's membership proof over `binding` for `group`, or `None` if it cannot
    /// make one (not a member).
    fn session_proof(&self, group: &GroupId, binding: &[u8]) -> Option<Vec<u8>>;

    /// Whether `proof` is a valid membership proof over `binding` for `group`.
    fn verify_session_proof(&self, group: &GroupId, binding: &[u8], proof: &[u8]) -> bool;

    /// Receipts for `entry`, an entry this node published, arrived (see
    /// [`crate::receipts`]): still sealed, unchecked. By default ignored (relays, tests).
    fn receipts(&self, group: &GroupId, entry: &EntryId, receipts: Vec<SealedReceipt>) {
        let _ = (group, entry, receipts);
    }

    /// Answers a join or link request arriving on `/caucus/handshake/1` (see
    /// [`crate::handshake`]): the reply, or a short reason without secrets. The default
    /// serves none (relays, tests).
    fn handshake(
        &self,
        kind: crate::handshake::HandshakeKind,
        request: &[u8],
    ) -> Result<Vec<u8>, String> {
        let _ = (kind, request);
        Err("this node does not accept joins or device links".into())
    }
}

/// The relay-side verdict on an envelope, from the relay tokens held for its group:
/// [`Validation::Ignore`] when none is for its epoch (not checkable yet),
/// [`Validation::Accept`] when one verifies its membership proof, else
/// [`Validation::Reject`]. Shared by every backend.
pub fn validate_with_tokens(
    envelope: &Envelope,
    tokens: impl IntoIterator<Item = RelayToken>,
) -> Validation {
    let mut any = false;
    for t in tokens {
        if t.epoch != envelope.header.epoch {
            continue;
        }
        any = true;
        if verify_proof(envelope, &t).is_ok() {
            return Validation::Accept;
        }
    }
    if any {
        Validation::Reject
    } else {
        Validation::Ignore
    }
}

/// What [`MemoryBackend`] knows of one group.
///
/// `session_key` stands in for the epoch membership key until `caucus-crypto` can sign a
/// session binding with it: every member holds the same key, a non-member does not.
pub struct GroupKeys {
    /// Relay tokens of the epochs whose envelopes are accepted.
    pub tokens: Vec<RelayToken>,
    /// The shared key that signs sync-session bindings (see above).
    pub session_key: ed25519::Keypair,
}

impl fmt::Debug for GroupKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupKeys")
            .field("tokens", &self.tokens.len())
            .field("session_key", &"<redacted>")
            .finish()
    }
}

impl Clone for GroupKeys {
    fn clone(&self) -> Self {
        GroupKeys {
            tokens: self.tokens.clone(),
            session_key: self.session_key.clone(),
        }
    }
}

#[derive(Debug)]
struct MemGroup {
    keys: GroupKeys,
    index: MemoryIndex,
}

/// An in-memory [`Backend`]: a [`MemoryIndex`] per group, envelopes checked with
/// [`verify_proof`] against the group's relay tokens.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    groups: Mutex<HashMap<GroupId, MemGroup>>,
    changed: tokio::sync::Notify,
}

impl MemoryBackend {
    /// An empty backend, shared.
    pub fn new() -> Arc<MemoryBackend> {
        Arc::new(MemoryBackend::default())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<GroupId, MemGroup>> {
        // A panic while holding the lock leaves the maps consistent (every update is one call).
        self.groups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Joins `group` with these keys (keeps entries already held).
    pub fn add_group(&self, group: GroupId, keys: GroupKeys) {
        let mut g = self.lock();
        match g.get_mut(&group) {
            Some(existing) => existing.keys = keys,
            None => {
                g.insert(
                    group,
                    MemGroup {
                        keys,
                        index: MemoryIndex::new(),
                    },
                );
            }
        }
    }

    /// Inserts entries directly (this node's own writes, or a test's seed), without checks.
    /// Returns how many were new.
    pub fn insert_local(
        &self,
        group: &GroupId,
        entries: impl IntoIterator<Item = Vec<u8>>,
    ) -> usize {
        let mut n = 0;
        if let Some(g) = self.lock().get_mut(group) {
            for bytes in entries {
                if g.index.insert(bytes).1 {
                    n += 1;
                }
            }
        }
        self.changed.notify_waiters();
        n
    }

    /// Inserts bare ids with no envelope behind them (for reconciliation benchmarks and
    /// tests: such ids can be reconciled but not fetched).
    pub fn insert_ids(&self, group: &GroupId, ids: impl IntoIterator<Item = EntryId>) {
        if let Some(g) = self.lock().get_mut(group) {
            for id in ids {
                g.index.insert_with_id(id, None);
            }
        }
        self.changed.notify_waiters();
    }

    /// The ids held for `group`, in order.
    pub fn ids(&self, group: &GroupId) -> Vec<EntryId> {
        self.lock()
            .get(group)
            .map(|g| g.index.ids().to_vec())
            .unwrap_or_default()
    }

    /// Whether `id` is held for `group`.
    pub fn contains(&self, group: &GroupId, id: &EntryId) -> bool {
        self.lock().get(group).is_some_and(|g| g.index.contains(id))
    }

    /// Waits until `pred` holds for the ids of `group`, or `timeout` passes; returns
    /// whether it held.
    pub async fn wait_until(
        &self,
        group: &GroupId,
        timeout: Duration,
        mut pred: impl FnMut(&[EntryId]) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if pred(&self.ids(group)) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return pred(&self.ids(group));
            }
        }
    }
}

impl Backend for MemoryBackend {
    fn with_index(&self, group: &GroupId, f: &mut dyn FnMut(&dyn EntryIndex)) -> bool {
        match self.lock().get(group) {
            Some(g) => {
                f(&g.index);
                true
            }
            None => false,
        }
    }

    fn validate(&self, group: &GroupId, envelope: &Envelope) -> Validation {
        let groups = self.lock();
        let Some(g) = groups.get(group) else {
            return Validation::Ignore;
        };
        if envelope.header.group != *group {
            return Validation::Reject;
        }
        validate_with_tokens(envelope, g.keys.tokens.iter().copied())
    }

    fn store(
        &self,
        group: &GroupId,
        entries: Vec<(EntryId, Vec<u8>)>,
    ) -> Result<usize, BackendError> {
        let n = {
            let mut groups = self.lock();
            let g = groups.get_mut(group).ok_or(BackendError::UnknownGroup)?;
            entries
                .into_iter()
                .filter(|(id, bytes)| g.index.insert_with_id(*id, Some(bytes.clone())))
                .count()
        };
        self.changed.notify_waiters();
        Ok(n)
    }

    fn session_proof(&self, group: &GroupId, binding: &[u8]) -> Option<Vec<u8>> {
        self.lock()
            .get(group)
            .map(|g| g.keys.session_key.sign(binding))
    }

    fn verify_session_proof(&self, group: &GroupId, binding: &[u8], proof: &[u8]) -> bool {
        self.lock()
            .get(group)
            .is_some_and(|g| g.keys.session_key.public().verify(binding, proof))
    }
}
