//! The SQLite `EntryIndex` answers exactly as `caucus_sync::MemoryIndex` on the same ids,
//! and sees only its own group.

#![allow(clippy::unwrap_used)]

use caucus_proto::{EntryId, GroupId};
use caucus_store::{DbKey, Store, StoredEntry};
use caucus_sync::{Bound, EntryIndex, IdRange, MemoryIndex};
use proptest::prelude::*;

const GROUP: GroupId = GroupId([1; 16]);

fn stored(group: GroupId, n: u32) -> StoredEntry {
    let mut envelope = group.0.to_vec();
    envelope.extend_from_slice(&n.to_le_bytes());
    StoredEntry {
        id: EntryId::of_encoded(&envelope),
        group,
        epoch: 1,
        envelope,
    }
}

fn bound(ids: &[EntryId], pick: Option<(usize, u8)>) -> Bound {
    match pick {
        None => Bound::End,
        Some((_, _)) if ids.is_empty() => Bound::START,
        // An existing id, or a value just beside it (ranges cut between ids too).
        Some((i, tweak)) => {
            let mut b = ids[i % ids.len()].0;
            b[31] = b[31].wrapping_add(tweak % 3).wrapping_sub(1);
            Bound::At(b)
        }
    }
}

proptest! {
    // 24 cases of up to 300 entries each against 40 random ranges: every query path
    // (bounded and open ranges, offsets past the end, empty and inverted ranges).
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_the_memory_index(
        n in 0u32..300,
        ranges in proptest::collection::vec(
            (proptest::option::of((any::<usize>(), any::<u8>())),
             proptest::option::of((any::<usize>(), any::<u8>())),
             0u64..320, 0usize..50),
            40),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db"), &DbKey::from_bytes([3; 32])).unwrap();
        let mine: Vec<StoredEntry> = (0..n).map(|i| stored(GROUP, i)).collect();
        let other: Vec<StoredEntry> = (0..50).map(|i| stored(GroupId([2; 16]), i)).collect();
        store.insert_entries(&mine, 1).unwrap();
        store.insert_entries(&other, 1).unwrap();
        let memory = MemoryIndex::from_entries(mine.iter().map(|e| e.envelope.clone()));
        let index = store.index(GROUP);
        let ids = memory.ids().to_vec();
        prop_assert_eq!(index.summary(&IdRange::ALL), memory.total());
        for (lo, hi, nth, limit) in ranges {
            let lower = match lo { None => Bound::START, some => bound(&ids, some) };
            let range = IdRange::new(lower, bound(&ids, hi));
            prop_assert_eq!(index.summary(&range), memory.summary(&range));
            prop_assert_eq!(index.nth_id(&range, nth), memory.nth_id(&range, nth));
            prop_assert_eq!(index.ids_in_range(&range, limit), memory.ids_in_range(&range, limit));
            let count = memory.summary(&range).count;
            let positions: Vec<u64> = (1..count).step_by(7).collect();
            prop_assert_eq!(index.cut_points(&range, &positions), memory.cut_points(&range, &positions));
        }
        for e in mine.iter().take(5) {
            prop_assert!(index.contains(&e.id));
            prop_assert_eq!(index.get(&e.id), Some(e.envelope.clone()));
        }
        for e in other.iter().take(5) {
            prop_assert!(!index.contains(&e.id));
            prop_assert_eq!(index.get(&e.id), None);
        }
        prop_assert!(index.take_error().is_none());
    }
}
