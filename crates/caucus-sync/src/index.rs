//! How sync sees the entry store: the [`EntryIndex`] trait, and [`MemoryIndex`] for tests.
//!
//! The session only reads through this trait, on the caller's thread, inside
//! [`crate::Session::handle_message`]: it never writes. Entries it fetches come out as
//! [`crate::Event::Entry`] for the driver to check (decode, membership proof) and store.
//! The store may change between calls (gossip keeps inserting); reconciliation stays
//! correct, a change mid-session can only cost an extra round.
//!
//! The SQLite store implements the trait with indexed queries on the id column
//! (`WHERE id >= ? AND id < ? ORDER BY id LIMIT ? OFFSET ?`), and may keep running
//! [`Accumulator`]s to answer [`EntryIndex::summary`] for large ranges quickly.

use crate::fingerprint::{Accumulator, Bound, IdRange};
use caucus_proto::EntryId;
use std::collections::HashMap;

/// Read access to a set of entries, ordered by id.
pub trait EntryIndex {
    /// Count and sum of the ids in `range` (see [`Accumulator`]).
    fn summary(&self, range: &IdRange) -> Accumulator;

    /// The `n`-th id (from 0) in `range`, in id order, if the range holds more than `n`.
    fn nth_id(&self, range: &IdRange, n: u64) -> Option<EntryId>;

    /// The first `limit` ids in `range`, in id order.
    fn ids_in_range(&self, range: &IdRange, limit: usize) -> Vec<EntryId>;

    /// For each position `p` in `positions` (increasing, each in `1..count`), the ids at
    /// positions `p - 1` and `p` of `range`: where to cut it into sub-ranges. `None`
    /// where the range has changed and holds no such ids.
    ///
    /// The default asks [`EntryIndex::nth_id`] twice per position; a store that can walk
    /// the range once in id order (SQLite) should override it.
    fn cut_points(&self, range: &IdRange, positions: &[u64]) -> Vec<Option<(EntryId, EntryId)>> {
        positions
            .iter()
            .map(|&p| {
                let before = self.nth_id(range, p.checked_sub(1)?)?;
                let at = self.nth_id(range, p)?;
                Some((before, at))
            })
            .collect()
    }

    /// Whether the entry is held.
    fn contains(&self, id: &EntryId) -> bool;

    /// The encoded envelope of an entry, if held.
    fn get(&self, id: &EntryId) -> Option<Vec<u8>>;
}

impl<T: EntryIndex + ?Sized> EntryIndex for &T {
    fn summary(&self, range: &IdRange) -> Accumulator {
        (**self).summary(range)
    }
    fn nth_id(&self, range: &IdRange, n: u64) -> Option<EntryId> {
        (**self).nth_id(range, n)
    }
    fn ids_in_range(&self, range: &IdRange, limit: usize) -> Vec<EntryId> {
        (**self).ids_in_range(range, limit)
    }
    fn cut_points(&self, range: &IdRange, positions: &[u64]) -> Vec<Option<(EntryId, EntryId)>> {
        (**self).cut_points(range, positions)
    }
    fn contains(&self, id: &EntryId) -> bool {
        (**self).contains(id)
    }
    fn get(&self, id: &EntryId) -> Option<Vec<u8>> {
        (**self).get(id)
    }
}

/// An in-memory [`EntryIndex`]: a sorted vector of ids and a map to their bytes.
///
/// Inserting is O(n) (a vector shift); fine for tests, the simulator and benches.
#[derive(Clone, Debug, Default)]
pub struct MemoryIndex {
    ids: Vec<EntryId>,
    bytes: HashMap<EntryId, Vec<u8>>,
}

impl MemoryIndex {
    /// An empty index.
    pub fn new() -> MemoryIndex {
        MemoryIndex::default()
    }

    /// An index of bare ids (no bytes: [`EntryIndex::get`] answers `None`), for
    /// reconciliation tests.
    pub fn from_ids(ids: impl IntoIterator<Item = EntryId>) -> MemoryIndex {
        let mut v: Vec<EntryId> = ids.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        MemoryIndex {
            ids: v,
            bytes: HashMap::new(),
        }
    }

    /// An index of opaque entries, each named by the BLAKE3 hash of its bytes.
    pub fn from_entries(entries: impl IntoIterator<Item = Vec<u8>>) -> MemoryIndex {
        let mut index = MemoryIndex::new();
        for e in entries {
            let id = EntryId::of_encoded(&e);
            index.ids.push(id);
            index.bytes.insert(id, e);
        }
        index.ids.sort_unstable();
        index.ids.dedup();
        index
    }

    /// Inserts an opaque entry named by the BLAKE3 hash of its bytes; returns its id and
    /// whether it was new.
    pub fn insert(&mut self, bytes: Vec<u8>) -> (EntryId, bool) {
        let id = EntryId::of_encoded(&bytes);
        let new = self.insert_with_id(id, Some(bytes));
        (id, new)
    }

    /// Inserts an id, with its bytes if known; returns whether the id was new.
    pub fn insert_with_id(&mut self, id: EntryId, bytes: Option<Vec<u8>>) -> bool {
        if let Some(b) = bytes {
            self.bytes.insert(id, b);
        }
        match self.ids.binary_search(&id) {
            Ok(_) => false,
            Err(pos) => {
                self.ids.insert(pos, id);
                true
            }
        }
    }

    /// Inserts many ids at once (one sort instead of a shift per id).
    pub fn extend_ids(&mut self, ids: impl IntoIterator<Item = EntryId>) {
        let before = self.ids.len();
        self.ids.extend(ids);
        if self.ids.len() - before == 1 {
            // One id: a shift is cheaper than a sort.
            if let Some(id) = self.ids.pop()
                && let Err(pos) = self.ids.binary_search(&id)
            {
                self.ids.insert(pos, id);
            }
            return;
        }
        self.ids.sort_unstable();
        self.ids.dedup();
    }

    /// Number of ids held.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no id is held.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Every id, in order.
    pub fn ids(&self) -> &[EntryId] {
        &self.ids
    }

    /// The fingerprint accumulator of the whole set.
    pub fn total(&self) -> Accumulator {
        Accumulator::of(&self.ids)
    }

    fn slice(&self, range: &IdRange) -> &[EntryId] {
        let start = self.ids.partition_point(|id| !range.lower.le_id(id));
        let end = match range.upper {
            Bound::End => self.ids.len(),
            Bound::At(_) => self.ids.partition_point(|id| !range.upper.le_id(id)),
        };
        self.ids.get(start..end.max(start)).unwrap_or(&[])
    }
}

impl EntryIndex for MemoryIndex {
    fn summary(&self, range: &IdRange) -> Accumulator {
        Accumulator::of(self.slice(range))
    }

    fn nth_id(&self, range: &IdRange, n: u64) -> Option<EntryId> {
        let i = usize::try_from(n).ok()?;
        self.slice(range).get(i).copied()
    }

    fn ids_in_range(&self, range: &IdRange, limit: usize) -> Vec<EntryId> {
        let s = self.slice(range);
        s[..s.len().min(limit)].to_vec()
    }

    fn contains(&self, id: &EntryId) -> bool {
        self.ids.binary_search(id).is_ok()
    }

    fn get(&self, id: &EntryId) -> Option<Vec<u8>> {
        self.bytes.get(id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_slice_the_sorted_ids() {
        let index = MemoryIndex::from_entries((0u32..100).map(|i| i.to_le_bytes().to_vec()));
        assert_eq!(index.len(), 100);
        assert_eq!(index.summary(&IdRange::ALL), index.total());
        let mid = index.ids()[40];
        let lo = IdRange::new(Bound::START, Bound::at(&mid));
        let hi = IdRange::new(Bound::at(&mid), Bound::End);
        assert_eq!(index.summary(&lo).count, 40);
        assert_eq!(index.summary(&hi).count, 60);
        assert_eq!(index.nth_id(&hi, 0), Some(mid));
        assert_eq!(index.nth_id(&hi, 60), None);
        assert_eq!(index.ids_in_range(&lo, 5), index.ids()[..5].to_vec());
        let mut both = index.summary(&lo);
        both.add_acc(&index.summary(&hi));
        assert_eq!(both, index.total());
        // An inverted range is empty, not a panic.
        assert_eq!(
            index
                .summary(&IdRange::new(Bound::at(&mid), Bound::START))
                .count,
            0
        );
    }

    #[test]
    fn extend_ids_keeps_them_sorted_and_unique() {
        let mut index = MemoryIndex::from_ids((0u8..50).map(|i| EntryId([i * 2; 32])));
        index.extend_ids([EntryId([7; 32])]);
        index.extend_ids((0u8..60).map(|i| EntryId([i; 32])));
        index.extend_ids([EntryId([4; 32])]);
        let want: Vec<EntryId> = (0u8..60)
            .chain((30u8..50).map(|i| i * 2))
            .collect::<std::collections::BTreeSet<u8>>()
            .into_iter()
            .map(|i| EntryId([i; 32]))
            .collect();
        assert_eq!(index.ids(), want.as_slice());
    }

    #[test]
    fn insert_dedups() {
        let mut index = MemoryIndex::new();
        let (id, new) = index.insert(b"a".to_vec());
        assert!(new);
        assert!(!index.insert(b"a".to_vec()).1);
        assert!(index.contains(&id));
        assert_eq!(index.get(&id), Some(b"a".to_vec()));
        assert_eq!(index.len(), 1);
    }
}
