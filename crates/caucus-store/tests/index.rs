//! The store's `EntryIndex`, from its ids in memory and from its SQL queries, answers
//! exactly as `caucus_sync::MemoryIndex` on the same ids, sees only its own group, and
//! a reader sees what the writer commits.

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
        for index in [store.index(GROUP), store.index_on_disk(GROUP)] {
            let ids = memory.ids().to_vec();
            prop_assert_eq!(index.summary(&IdRange::ALL), memory.total());
            for &(lo, hi, nth, limit) in &ranges {
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
}

#[test]
fn a_reader_sees_what_the_writer_commits() {
    let dir = tempfile::tempdir().unwrap();
    let key = DbKey::from_bytes([3; 32]);
    let mut store = Store::open(&dir.path().join("db"), &key).unwrap();
    let first: Vec<StoredEntry> = (0..40).map(|i| stored(GROUP, i)).collect();
    store.insert_entries(&first, 1).unwrap();
    let reader = store.reader(&key).unwrap();
    assert_eq!(reader.index(GROUP).summary(&IdRange::ALL).count, 40);
    // Committed after the reader loaded its ids: one at a time and as a batch.
    store.insert_entries(&[stored(GROUP, 40)], 2).unwrap();
    let batch: Vec<StoredEntry> = (41..100).map(|i| stored(GROUP, i)).collect();
    store.insert_entries(&batch, 3).unwrap();
    let index = reader.index(GROUP);
    let on_disk = reader.index_on_disk(GROUP);
    assert_eq!(index.summary(&IdRange::ALL).count, 100);
    assert_eq!(index.summary(&IdRange::ALL), on_disk.summary(&IdRange::ALL));
    assert!(index.contains(&batch[0].id));
    assert_eq!(index.get(&batch[0].id), Some(batch[0].envelope.clone()));
    // Another group's entries stay out.
    store
        .insert_entries(&[stored(GroupId([2; 16]), 1)], 4)
        .unwrap();
    assert_eq!(reader.index(GROUP).summary(&IdRange::ALL).count, 100);
}
