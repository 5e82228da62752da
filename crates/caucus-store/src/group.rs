//! A node's groups: opened bodies beside their envelopes, the fold held in memory, and
//! the materialized views written in the same transaction as the entries.
//!
//! The node (the one writer) calls:
//!
//! 1. [`Store::add_group`] once, when it creates or joins a group (the founder comes
//!    from the group's creation record);
//! 2. [`Store::load_group`] at start: reads every stored body of the group, decodes it
//!    and folds with [`caucus_model::State`]; no cryptography, the bodies were verified
//!    before they were stored and the database is encrypted;
//! 3. [`Store::apply`] for every batch it receives or writes: each [`Incoming`] is an
//!    envelope with, when the node could open and verify it, its [`VerifiedBody`]. One
//!    transaction stores the envelopes and bodies, folds the new bodies into the
//!    [`GroupState`] and brings the views up to date (see `views.rs`). An envelope
//!    stored earlier without a body (the node could not open it yet: unknown epoch or
//!    device) gets its body when applied again with one; [`Store::unopened`] lists such
//!    envelopes.
//!
//! **One writer per group** (the daemon, or a CLI command while the daemon is down):
//! the [`GroupState`] is that writer's. The views are written in the same transaction
//! as the entries they show, so they can differ from a fresh fold only if another fold
//! wrote them: the group row records [`VIEWS_VERSION`], and a writer whose version
//! differs (a database from an older build, or from schema 1 or 2) rewrites every view
//! at its first [`Store::apply`], so a view can never silently lag the entries. If a
//! batch fails, its transaction rolls back and the writer's fold is reloaded from the
//! database.
//!
//! Readers (CLI commands) never fold: they query the views ([`Store::contacts`],
//! [`Store::workplace_map`], …).
//!
//! **Re-sealed copies.** A member can seal a body again under a new nonce: a new entry
//! with the same body id. The store keeps every copy with its body (the body-id index
//! answers [`Store::entry_with_body`] for the crypto layer's replay check); the model
//! holds one event per copy set, the smallest id, so every replica folds alike whatever
//! copy arrived first.

use crate::store::{entry_id, from_sql_u64, to_sql_u64};
use crate::views::{Prints, Touched, Writer};
use crate::{Store, StoreError, StoredEntry};
use caucus_model::{OpenedEntry, State};
use caucus_proto::{Body, EntryId, EventId, GroupId, IdentityKey};
use rusqlite::{OptionalExtension, params};

/// The version of the views a build writes: the model's [`caucus_model::FOLD_VERSION`]
/// and the layout of the view rows (`views.rs`; the second factor changes with it).
pub const VIEWS_VERSION: i64 = caucus_model::FOLD_VERSION as i64 * 1000 + 1;

/// A body the node has opened and verified (envelope AEAD, membership proof, device
/// signature, device-identity binding), with its body id (`caucus_crypto::BodyId`: the
/// body's event id, which the fold uses as given).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedBody {
    /// BLAKE3 name of the signed body, shared by re-sealed copies.
    pub body_id: [u8; 32],
    /// The body.
    pub body: Body,
}

/// One entry of a batch for [`Store::apply`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// The envelope, as it travels.
    pub entry: StoredEntry,
    /// Its body, when the node could open and verify it; `None` keeps the envelope
    /// for sync and for opening later.
    pub body: Option<VerifiedBody>,
}

/// What [`Store::apply`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Applied {
    /// Entries stored for the first time, in batch order.
    pub new: Vec<EntryId>,
    /// Bodies folded in: of new entries, and of envelopes stored before without one.
    pub opened: usize,
    /// Entries already stored (with their body, when one was given).
    pub duplicates: usize,
    /// Whether the fold had to fold every entry again.
    pub refolded: bool,
    /// Whether every view was rewritten (the first write to views of another version).
    pub rewrote_views: bool,
}

/// One group's folded state, held by the writer between batches.
#[derive(Debug)]
pub struct GroupState {
    group: GroupId,
    state: State,
    /// Row fingerprints of the stored views; `None` when they were written by another
    /// [`VIEWS_VERSION`] (the first [`Store::apply`] rewrites them).
    prints: Option<Prints>,
}

impl GroupState {
    /// The group.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// The folded state.
    pub fn state(&self) -> &State {
        &self.state
    }
}

impl Store {
    /// Registers a group this node folds, with its founder, and writes its initial
    /// views. Doing it again for a registered group changes nothing.
    pub fn add_group(&mut self, group: GroupId, founder: IdentityKey) -> Result<(), StoreError> {
        if let Some(known) = self.founder(&group)? {
            return if known == founder {
                Ok(())
            } else {
                Err(StoreError::Malformed(
                    "group registered with another founder",
                ))
            };
        }
        let state = State::new(founder);
        let tx = self.conn.transaction()?;
        {
            let w = Writer::new(&tx, &group);
            w.members_and_devices(&state)?;
            w.group_row(&state)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The groups this node folds, with their founders.
    pub fn groups(&self) -> Result<Vec<(GroupId, IdentityKey)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT group_id, founder FROM groups ORDER BY group_id")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (g, f) = row?;
            out.push((group_id(&g)?, identity(&f)?));
        }
        Ok(out)
    }

    fn founder(&self, group: &GroupId) -> Result<Option<IdentityKey>, StoreError> {
        let f: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT founder FROM groups WHERE group_id = ?1")?
            .query_row([group.as_bytes().as_slice()], |r| r.get(0))
            .optional()?;
        f.map(|f| identity(&f)).transpose()
    }

    /// Folds every stored body of a registered group (see the module docs).
    pub fn load_group(&self, group: &GroupId) -> Result<GroupState, StoreError> {
        let founder = self.founder(group)?.ok_or(StoreError::UnknownGroup)?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, epoch, body, body_id FROM entries WHERE group_id = ?1 AND body IS NOT NULL",
        )?;
        let mut rows = stmt.query([group.as_bytes().as_slice()])?;
        let mut entries = Vec::new();
        let mut ids = Vec::new();
        while let Some(row) = rows.next()? {
            let id = entry_id(crate::query::blob(row, 0)?)?;
            ids.push(id);
            let epoch = from_sql_u64(row.get(1)?);
            let body = Body::decode(crate::query::blob(row, 2)?)
                .map_err(|_| StoreError::Malformed("stored body does not decode"))?;
            // The body id kept beside it is its event id (computed when it was
            // verified): no need to encode the body again.
            let event: Option<[u8; 32]> = row
                .get::<_, Option<Vec<u8>>>(3)?
                .and_then(|b| b.try_into().ok());
            entries.push(match event {
                Some(event) => OpenedEntry::with_event(id, epoch, EventId(event), body),
                None => OpenedEntry::new(id, epoch, body),
            });
        }
        drop(rows);
        let mut unopened = self
            .conn
            .prepare_cached("SELECT id FROM entries WHERE group_id = ?1 AND body IS NULL")?;
        let mut rows = unopened.query([group.as_bytes().as_slice()])?;
        while let Some(row) = rows.next()? {
            ids.push(entry_id(crate::query::blob(row, 0)?)?);
        }
        drop(rows);
        // The writer loads its groups before anything writes: sync's index starts warm.
        self.ids.put(*group, ids);
        let state = State::from_entries(founder, entries);
        let version: i64 = self
            .conn
            .prepare_cached("SELECT views_version FROM groups WHERE group_id = ?1")?
            .query_row([group.as_bytes().as_slice()], |r| r.get(0))?;
        let prints = (version == VIEWS_VERSION).then(|| Prints::of(&state));
        Ok(GroupState {
            group: *group,
            state,
            prints,
        })
    }

    /// Stored envelopes of a group that have no body yet (not opened), by id.
    pub fn unopened(&self, group: &GroupId) -> Result<Vec<StoredEntry>, StoreError> {
        self.select_entries(
            "SELECT id, epoch, envelope FROM entries WHERE group_id = ?1 AND body IS NULL
             ORDER BY id",
            group,
        )
    }

    /// The id of a stored entry carrying this body, if any (the replay check).
    pub fn entry_with_body(&self, body_id: &[u8; 32]) -> Result<Option<EntryId>, StoreError> {
        let id: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT id FROM entries WHERE body_id = ?1 ORDER BY id LIMIT 1")?
            .query_row([body_id.as_slice()], |r| r.get(0))
            .optional()?;
        id.map(|id| entry_id(&id)).transpose()
    }

    /// The stored body of an entry, if it was opened.
    pub fn body(&self, id: &EntryId) -> Result<Option<Body>, StoreError> {
        let bytes: Option<Option<Vec<u8>>> = self
            .conn
            .prepare_cached("SELECT body FROM entries WHERE id = ?1")?
            .query_row([id.as_bytes().as_slice()], |r| r.get(0))
            .optional()?;
        bytes
            .flatten()
            .map(|b| {
                Body::decode(&b).map_err(|_| StoreError::Malformed("stored body does not decode"))
            })
            .transpose()
    }

    /// Stores a batch and folds its bodies into `group`, views and state hash in the
    /// same durable transaction (see the module docs). All-or-nothing: on error nothing
    /// of the batch is stored and `group` is reloaded from the database.
    pub fn apply(
        &mut self,
        group: &mut GroupState,
        batch: Vec<Incoming>,
        received_ms: u64,
    ) -> Result<Applied, StoreError> {
        self.apply_with_progress(group, batch, received_ms, Durability::Full, &mut |_, _| {})
    }

    /// [`Store::apply`] for entries received from peers ([`Durability::Received`]): the
    /// batch survives a kill of the process at any instant, but not necessarily a power
    /// cut (no fsync), after which the peers that sent it sync it back.
    pub fn apply_received(
        &mut self,
        group: &mut GroupState,
        batch: Vec<Incoming>,
        received_ms: u64,
    ) -> Result<Applied, StoreError> {
        self.apply_with_progress(
            group,
            batch,
            received_ms,
            Durability::Received,
            &mut |_, _| {},
        )
    }

    /// [`Store::apply`] with the given durability, calling `progress(done, total)` as
    /// entries are stored (for a progress bar over a large import).
    pub fn apply_with_progress(
        &mut self,
        group: &mut GroupState,
        batch: Vec<Incoming>,
        received_ms: u64,
        durability: Durability,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Applied, StoreError> {
        self.apply_with(group, batch, received_ms, durability, progress, &mut |_| {})
    }

    /// [`Store::apply_with_progress`], calling `before_commit(state)` once the batch is
    /// folded and its views written, before the commit (and its wait for the disk): a
    /// node publishes its own new entry there, so its peers do not wait for its fsync.
    /// If the commit then fails, what `before_commit` sent out is out; the node's own
    /// copy comes back by sync.
    pub fn apply_with(
        &mut self,
        group: &mut GroupState,
        batch: Vec<Incoming>,
        received_ms: u64,
        durability: Durability,
        progress: &mut dyn FnMut(u64, u64),
        before_commit: &mut dyn FnMut(&State),
    ) -> Result<Applied, StoreError> {
        let mut touched_state = false;
        if durability == Durability::Received {
            self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        }
        let result = self.apply_inner(
            group,
            batch,
            received_ms,
            progress,
            before_commit,
            &mut touched_state,
        );
        if durability == Durability::Received {
            // Everything else this connection writes (own entries, keys) waits for the disk.
            self.conn.pragma_update(None, "synchronous", "FULL")?;
        }
        if result.is_err() && touched_state {
            // The transaction rolled back: fold again what the database holds.
            match self.load_group(&group.group) {
                Ok(fresh) => *group = fresh,
                // Leave it checking everything on the next batch.
                Err(_) => group.prints = None,
            }
        }
        result
    }

    fn apply_inner(
        &mut self,
        gs: &mut GroupState,
        batch: Vec<Incoming>,
        received_ms: u64,
        progress: &mut dyn FnMut(u64, u64),
        before_commit: &mut dyn FnMut(&State),
        touched_state: &mut bool,
    ) -> Result<Applied, StoreError> {
        let total = batch.len() as u64;
        let group_bytes = gs.group;
        let tx = self.conn.transaction()?;
        let mut out = Applied::default();
        let (prints, fresh_views) = match gs.prints.take() {
            Some(p) => (p, false),
            None => {
                Writer::new(&tx, &group_bytes).clear()?;
                (Prints::default(), true)
            }
        };
        let mut prints = prints;
        let mut to_fold = Vec::new();
        let mut touched = Touched::default();
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO entries (id, group_id, epoch, envelope, received_ms, body,
                 body_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            let mut open = tx.prepare_cached(
                "UPDATE entries SET body = ?2, body_id = ?3 WHERE id = ?1 AND body IS NULL",
            )?;
            for (i, item) in batch.into_iter().enumerate() {
                let e = &item.entry;
                if e.group != gs.group {
                    return Err(StoreError::WrongGroup);
                }
                let encoded = match &item.body {
                    Some(b) => Some((
                        b.body
                            .encode()
                            .map_err(|_| StoreError::Malformed("body does not encode"))?,
                        b.body_id,
                    )),
                    None => None,
                };
                let (body, body_id) = match &encoded {
                    Some((bytes, id)) => (Some(bytes.as_slice()), Some(id.as_slice())),
                    None => (None, None),
                };
                let n = insert.execute(params![
                    e.id.as_bytes().as_slice(),
                    e.group.as_bytes().as_slice(),
                    to_sql_u64(e.epoch),
                    e.envelope,
                    to_sql_u64(received_ms),
                    body,
                    body_id,
                ])?;
                let fold = if n == 1 {
                    out.new.push(e.id);
                    item.body.is_some()
                } else if item.body.is_some()
                    && open.execute(params![e.id.as_bytes().as_slice(), body, body_id])? == 1
                {
                    true
                } else {
                    out.duplicates += 1;
                    false
                };
                if fold && let Some(b) = item.body {
                    touched.add(&b.body.op);
                    to_fold.push(OpenedEntry::with_event(
                        item.entry.id,
                        item.entry.epoch,
                        EventId(b.body_id),
                        b.body,
                    ));
                    out.opened += 1;
                }
                if i % 1024 == 1023 {
                    progress(i as u64 + 1, total);
                }
            }
        }
        let refolds = gs.state.refolds();
        if !to_fold.is_empty() {
            *touched_state = true;
            gs.state.extend(to_fold);
        }
        out.refolded = gs.state.refolds() != refolds;
        let w = Writer::new(&tx, &group_bytes);
        if out.refolded || fresh_views {
            w.all(&gs.state, &mut prints)?;
        } else {
            w.touched(&gs.state, &touched, &mut prints)?;
        }
        if out.refolded || fresh_views || touched.group {
            w.members_and_devices(&gs.state)?;
        }
        if out.opened > 0 || fresh_views {
            w.group_row(&gs.state)?;
        }
        out.rewrote_views = fresh_views;
        before_commit(&gs.state);
        tx.commit()?;
        self.ids.add(&group_bytes, out.new.iter().copied());
        gs.prints = Some(prints);
        progress(total, total);
        Ok(out)
    }
}

fn group_id(bytes: &[u8]) -> Result<GroupId, StoreError> {
    <[u8; 16]>::try_from(bytes)
        .map(GroupId)
        .map_err(|_| StoreError::Malformed("group id is not 16 bytes"))
}

pub(crate) fn identity(bytes: &[u8]) -> Result<IdentityKey, StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map(IdentityKey)
        .map_err(|_| StoreError::Malformed("identity key is not 32 bytes"))
}

/// How durable a batch is when [`Store::apply_with_progress`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// On disk (the WAL synced): survives a kill and a power cut. This device's own
    /// writes, which exist nowhere else yet.
    Full,
    /// Committed to the WAL without waiting for the disk: survives a kill of the process
    /// at any instant (the operating system holds the pages), while a power cut or a
    /// kernel crash may roll back the last batches. For entries received from peers, who
    /// hold them and sync them back; the database stays consistent either way.
    Received,
}
