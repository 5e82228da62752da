//! [`caucus_sync::EntryIndex`] on the database: sync reads ids, range fingerprints and
//! envelopes of one group straight from the `entries_by_group (group_id, id)` index.
//!
//! Ids are BLOBs compared by `memcmp`, which is the order of [`EntryId`]'s bytes, so a
//! range `[lower, upper)` is `id >= lower AND id < upper`. Summaries add the ids of the
//! range up in Rust (one index scan, 32 bytes per id); cut points take one walk.
//!
//! The trait's methods cannot fail, so an SQLite error answers as an empty range (sync
//! then costs a round, never correctness: the peer asks again) and is kept for the
//! driver to check with [`GroupIndex::take_error`].
//!
//! **Ids in memory.** Reading 60,000 ids through SQLCipher decrypts every page of the
//! index (about 25 ms on a cold cache, on every first round after a start), so each
//! group's ids are also kept sorted in memory ([`IdCache`], 32 bytes per entry), shared
//! by a store and the readers it opens ([`Store::reader`]). A group's ids are loaded
//! when [`Store::load_group`] folds it or at its first [`Store::index`], under the
//! cache's lock, and the writer adds what each transaction stored after it commits, so
//! the cache never holds an id the database does not. Envelopes are always read from
//! the database. Another process writing the same database is not seen (one writer per
//! home; see `group.rs`).

use crate::{Store, StoreError};
use caucus_proto::{EntryId, GroupId};
use caucus_sync::{Accumulator, Bound, EntryIndex, IdRange, MemoryIndex};
use rusqlite::{OptionalExtension, params};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Each group's entry ids, sorted, shared by a store and its readers (see the module
/// docs).
#[derive(Clone, Debug, Default)]
pub(crate) struct IdCache(Arc<Mutex<HashMap<GroupId, MemoryIndex>>>);

impl IdCache {
    fn lock(&self) -> MutexGuard<'_, HashMap<GroupId, MemoryIndex>> {
        // Every update under the lock leaves a sorted vector.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds ids just committed, to the groups loaded already.
    pub(crate) fn add(&self, group: &GroupId, ids: impl IntoIterator<Item = EntryId>) {
        if let Some(index) = self.lock().get_mut(group) {
            index.extend_ids(ids);
        }
    }

    /// Sets a group's ids (read by the caller under no lock: only while nothing else
    /// writes, as when the writer loads its groups).
    pub(crate) fn put(&self, group: GroupId, ids: Vec<EntryId>) {
        self.lock().insert(group, MemoryIndex::from_ids(ids));
    }

    fn with<T>(&self, group: &GroupId, f: impl FnOnce(&MemoryIndex) -> T) -> Option<T> {
        self.lock().get(group).map(f)
    }
}

/// One group's entries as sync sees them. Made by [`Store::index`].
#[derive(Debug)]
pub struct GroupIndex<'a> {
    store: &'a Store,
    group: GroupId,
    error: RefCell<Option<StoreError>>,
    /// Whether ids are answered from memory when loaded (always, but in tests of the
    /// SQL queries).
    memory: bool,
}

impl Store {
    /// The [`EntryIndex`] of a group's entries in this store. The first call for a group
    /// reads its ids into memory (see the module docs).
    pub fn index(&self, group: GroupId) -> GroupIndex<'_> {
        let index = GroupIndex {
            store: self,
            group,
            error: RefCell::new(None),
            memory: true,
        };
        let mut cache = self.ids.lock();
        if let std::collections::hash_map::Entry::Vacant(slot) = cache.entry(group) {
            // Under the lock: a commit racing this read adds its ids after it.
            let mut ids = Vec::new();
            match index.walk(&IdRange::ALL, 0, None, &mut |id| ids.push(id)) {
                Ok(()) => {
                    slot.insert(MemoryIndex::from_ids(ids));
                }
                Err(e) => {
                    index.error.borrow_mut().get_or_insert(e);
                }
            }
        }
        drop(cache);
        index
    }

    /// [`Store::index`] answering every query with SQL (for tests of those queries).
    #[doc(hidden)]
    pub fn index_on_disk(&self, group: GroupId) -> GroupIndex<'_> {
        GroupIndex {
            store: self,
            group,
            error: RefCell::new(None),
            memory: false,
        }
    }
}

impl GroupIndex<'_> {
    /// The first database error met since the last call, if any.
    pub fn take_error(&self) -> Option<StoreError> {
        self.error.borrow_mut().take()
    }

    /// `f` on the ids in memory, if this index answers from there and they are loaded.
    fn cached<T>(&self, f: impl FnOnce(&MemoryIndex) -> T) -> Option<T> {
        if self.memory {
            self.store.ids.with(&self.group, f)
        } else {
            None
        }
    }

    fn keep<T>(&self, r: Result<T, StoreError>, fallback: T) -> T {
        match r {
            Ok(v) => v,
            Err(e) => {
                self.error.borrow_mut().get_or_insert(e);
                fallback
            }
        }
    }

    /// Walks the ids of `range` in order, at most `limit` from position `offset`.
    fn walk(
        &self,
        range: &IdRange,
        offset: u64,
        limit: Option<u64>,
        f: &mut dyn FnMut(EntryId),
    ) -> Result<(), StoreError> {
        let Bound::At(lower) = range.lower else {
            return Ok(());
        };
        if range.is_empty() {
            return Ok(());
        }
        let limit = limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let g = self.group.as_bytes().as_slice();
        let conn = &self.store.conn;
        let mut stmt;
        let mut rows = match range.upper {
            Bound::At(upper) => {
                stmt = conn.prepare_cached(
                    "SELECT id FROM entries WHERE group_id = ?1 AND id >= ?2 AND id < ?3
                     ORDER BY id LIMIT ?4 OFFSET ?5",
                )?;
                stmt.query(params![
                    g,
                    lower.as_slice(),
                    upper.as_slice(),
                    limit,
                    offset
                ])?
            }
            Bound::End => {
                stmt = conn.prepare_cached(
                    "SELECT id FROM entries WHERE group_id = ?1 AND id >= ?2
                     ORDER BY id LIMIT ?3 OFFSET ?4",
                )?;
                stmt.query(params![g, lower.as_slice(), limit, offset])?
            }
        };
        while let Some(r) = rows.next()? {
            let bytes = r
                .get_ref(0)?
                .as_blob()
                .map_err(|_| StoreError::Malformed("entry id is not a blob"))?;
            f(crate::store::entry_id(bytes)?);
        }
        Ok(())
    }
}

impl EntryIndex for GroupIndex<'_> {
    fn summary(&self, range: &IdRange) -> Accumulator {
        if let Some(acc) = self.cached(|m| m.summary(range)) {
            return acc;
        }
        let mut acc = Accumulator::EMPTY;
        let r = self.walk(range, 0, None, &mut |id| acc.add(&id));
        self.keep(r.map(|()| acc), Accumulator::EMPTY)
    }

    fn nth_id(&self, range: &IdRange, n: u64) -> Option<EntryId> {
        if let Some(id) = self.cached(|m| m.nth_id(range, n)) {
            return id;
        }
        let mut out = None;
        let r = self.walk(range, n, Some(1), &mut |id| out = Some(id));
        self.keep(r.map(|()| out), None)
    }

    fn ids_in_range(&self, range: &IdRange, limit: usize) -> Vec<EntryId> {
        if let Some(ids) = self.cached(|m| m.ids_in_range(range, limit)) {
            return ids;
        }
        let mut out = Vec::new();
        let r = self.walk(range, 0, Some(limit as u64), &mut |id| out.push(id));
        self.keep(r.map(|()| out), Vec::new())
    }

    fn cut_points(&self, range: &IdRange, positions: &[u64]) -> Vec<Option<(EntryId, EntryId)>> {
        if let Some(cuts) = self.cached(|m| m.cut_points(range, positions)) {
            return cuts;
        }
        let Some(&last) = positions.last() else {
            return Vec::new();
        };
        // One walk up to the last position asked.
        let mut ids = Vec::new();
        let r = self.walk(range, 0, Some(last.saturating_add(1)), &mut |id| {
            ids.push(id)
        });
        let ids = self.keep(r.map(|()| ids), Vec::new());
        positions
            .iter()
            .map(|&p| {
                let at = usize::try_from(p).ok()?;
                Some((*ids.get(at.checked_sub(1)?)?, *ids.get(at)?))
            })
            .collect()
    }

    fn contains(&self, id: &EntryId) -> bool {
        if let Some(held) = self.cached(|m| m.contains(id)) {
            return held;
        }
        let r = self
            .store
            .conn
            .prepare_cached("SELECT 1 FROM entries WHERE id = ?1 AND group_id = ?2")
            .and_then(|mut s| {
                s.exists(params![
                    id.as_bytes().as_slice(),
                    self.group.as_bytes().as_slice()
                ])
            })
            .map_err(StoreError::from);
        self.keep(r, false)
    }

    fn get(&self, id: &EntryId) -> Option<Vec<u8>> {
        let r = self
            .store
            .conn
            .prepare_cached("SELECT envelope FROM entries WHERE id = ?1 AND group_id = ?2")
            .and_then(|mut s| {
                s.query_row(
                    params![id.as_bytes().as_slice(), self.group.as_bytes().as_slice()],
                    |r| r.get(0),
                )
                .optional()
            })
            .map_err(StoreError::from);
        self.keep(r, None)
    }
}
