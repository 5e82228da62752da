//! The store's promises: nothing readable at rest, idempotent batches, migrations from
//! every earlier schema, and a clear error for a wrong key, a damaged file or a newer schema.

#![allow(clippy::unwrap_used)]

use caucus_proto::{EntryId, GroupId};
use caucus_store::{DbKey, SCHEMA_VERSION, Store, StoreError, StoredEntry};
use std::path::Path;

fn key(b: u8) -> DbKey {
    DbKey::from_bytes([b; 32])
}

fn entry(group: GroupId, n: u32, payload: &[u8]) -> StoredEntry {
    let mut envelope = n.to_le_bytes().to_vec();
    envelope.extend_from_slice(payload);
    StoredEntry {
        id: EntryId::of_encoded(&envelope),
        group,
        epoch: 1,
        envelope,
    }
}

/// Every byte of every file under `dir`, recursively.
fn all_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(all_bytes(&p));
        } else {
            out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn nothing_readable_at_rest_in_database_or_live_wal() {
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("caucus.db");
    let marker = b"MARKER-Carmen-Yilmaz-7f3a";
    let group = GroupId([7; 16]);
    {
        let mut store = Store::open(&db, &key(1)).unwrap();
        store.put_setting("display-name", marker).unwrap();
        store.put_wrapped_key("identity", marker).unwrap();
        let batch: Vec<_> = (0..200).map(|n| entry(group, n, marker)).collect();
        store.insert_entries(&batch, 1).unwrap();
        store.checkpoint().unwrap();
        // More writes after the checkpoint stay in a live WAL while we look.
        let batch: Vec<_> = (200..400).map(|n| entry(group, n, marker)).collect();
        store.insert_entries(&batch, 2).unwrap();
        let files = all_bytes(home.path());
        assert!(
            files.iter().any(|(name, _)| name.ends_with("-wal")),
            "expected a live WAL"
        );
        for (name, bytes) in &files {
            assert!(!contains(bytes, marker), "marker found in {name}");
            assert!(
                !contains(bytes, b"SQLite format 3"),
                "plain SQLite header in {name}"
            );
        }
    }
    // And after close.
    for (name, bytes) in all_bytes(home.path()) {
        assert!(
            !contains(&bytes, marker),
            "marker found in {name} after close"
        );
    }
    let store = Store::open(&db, &key(1)).unwrap();
    assert_eq!(store.entry_count(&group).unwrap(), 400);
    assert_eq!(
        store.setting("display-name").unwrap().as_deref(),
        Some(&marker[..])
    );
}

#[test]
fn batches_are_idempotent() {
    let home = tempfile::tempdir().unwrap();
    let mut store = Store::open(&home.path().join("db"), &key(2)).unwrap();
    let group = GroupId([1; 16]);
    let batch: Vec<_> = (0..10).map(|n| entry(group, n, b"x")).collect();
    let first = store.insert_entries(&batch, 1).unwrap();
    assert_eq!(first.new.len(), 10);
    let again = store.insert_entries(&batch[3..], 2).unwrap();
    assert!(again.new.is_empty());
    assert_eq!(again.duplicates, 7);
    let mut ids: Vec<_> = batch.iter().map(|e| e.id).collect();
    ids.sort();
    assert_eq!(store.entry_ids(&group).unwrap(), ids);
    assert_eq!(
        store.entry(&batch[4].id).unwrap(),
        Some(batch[4].envelope.clone())
    );
    assert!(store.entry_ids(&GroupId([2; 16])).unwrap().is_empty());
}

#[test]
fn wrong_key_is_a_clear_error_and_harms_nothing() {
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("db");
    let group = GroupId([3; 16]);
    Store::open(&db, &key(1))
        .unwrap()
        .insert_entries(&[entry(group, 1, b"a")], 1)
        .unwrap();
    let before = std::fs::read(&db).unwrap();
    let err = Store::open(&db, &key(9)).unwrap_err();
    assert!(matches!(err, StoreError::Unreadable { .. }), "{err}");
    assert!(err.to_string().contains("wrong passphrase"), "{err}");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "a wrong key changed the file"
    );
    assert_eq!(
        Store::open(&db, &key(1))
            .unwrap()
            .entry_count(&group)
            .unwrap(),
        1
    );
}

#[test]
fn damaged_and_truncated_files_are_refused() {
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("db");
    let group = GroupId([4; 16]);
    {
        let mut s = Store::open(&db, &key(1)).unwrap();
        let batch: Vec<_> = (0..500).map(|n| entry(group, n, &[0xab; 300])).collect();
        s.insert_entries(&batch, 1).unwrap();
        s.checkpoint().unwrap();
    }
    let good = std::fs::read(&db).unwrap();
    // Truncated to half a page.
    std::fs::write(&db, &good[..2048]).unwrap();
    let _ = std::fs::remove_file(home.path().join("db-wal"));
    let err = Store::open(&db, &key(1)).and_then(|s| s.check_integrity().map(|_| s));
    assert!(err.is_err(), "a truncated database opened cleanly");
    // Garbage instead of the first page.
    let mut bad = good.clone();
    bad[..4096].fill(0x5a);
    std::fs::write(&db, &bad).unwrap();
    let err = Store::open(&db, &key(1)).unwrap_err();
    assert!(matches!(err, StoreError::Unreadable { .. }), "{err}");
    // A damaged page in the middle: refused by the page HMAC when read.
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid..mid + 64].fill(0);
    std::fs::write(&db, &bad).unwrap();
    let outcome = Store::open(&db, &key(1)).and_then(|s| {
        s.check_integrity()?;
        s.entries(&group)
    });
    assert!(outcome.is_err(), "a damaged page went unnoticed");
}

#[test]
fn newer_schema_is_refused_untouched() {
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("db");
    {
        let s = Store::open(&db, &key(1)).unwrap();
        drop(s);
        // Pretend a future caucus wrote it.
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", "01".repeat(32)))
            .unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    let err = Store::open(&db, &key(1)).unwrap_err();
    assert!(
        matches!(err, StoreError::NewerSchema { found, supported, .. } if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{err}"
    );
}

#[test]
fn migrates_from_every_earlier_schema_version() {
    let group = GroupId([5; 16]);
    for from in 1..=SCHEMA_VERSION {
        let home = tempfile::tempdir().unwrap();
        let db = home.path().join("db");
        {
            let mut old = Store::open_at_version(&db, &key(1), from).unwrap();
            assert_eq!(old.schema_version().unwrap(), from);
            // Every schema has had the entries table since version 1.
            old.insert_entries(&[entry(group, from, b"kept")], 1)
                .unwrap();
        }
        let store = Store::open(&db, &key(1)).unwrap();
        assert_eq!(
            store.schema_version().unwrap(),
            SCHEMA_VERSION,
            "from {from}"
        );
        assert_eq!(store.entry_count(&group).unwrap(), 1, "from {from}");
        store.check_integrity().unwrap();
    }
    // And from nothing at all.
    let home = tempfile::tempdir().unwrap();
    let store = Store::open_at_version(&home.path().join("db"), &key(1), 0).unwrap();
    assert_eq!(store.schema_version().unwrap(), 0);
}

/// A database at schema 3 holding one opened entry whose body is in format `version`.
fn schema_3_with_body(db: &Path, version: u8) -> GroupId {
    use caucus_proto::{Author, Body, Chain, DeviceKey, Hlc, IdentityKey, Operation, Signature};
    use caucus_store::{Incoming, VerifiedBody};
    let group = GroupId([8; 16]);
    let founder = IdentityKey([1; 32]);
    let mut old = Store::open_at_version(db, &key(1), 3).unwrap();
    old.add_group(group, founder).unwrap();
    let mut state = old.load_group(&group).unwrap();
    let stored = entry(group, 1, b"with a body");
    let body = Body {
        version,
        author: Author {
            identity: founder,
            device: DeviceKey([2; 32]),
        },
        chain: Chain::first(Vec::new()),
        hlc: Hlc {
            wall_ms: 1_780_000_000_000,
            counter: 0,
        },
        op: Operation::GroupNamed {
            name: "committee".into(),
        },
        signature: Signature([0; 64]),
    };
    let incoming = Incoming {
        entry: stored,
        body: Some(VerifiedBody {
            body_id: [3; 32],
            body,
        }),
    };
    old.apply(&mut state, vec![incoming], 1).unwrap();
    group
}

#[test]
fn a_database_with_format_1_entries_is_refused_with_one_line() {
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("db");
    schema_3_with_body(&db, 1);
    let err = Store::open(&db, &key(1)).err().unwrap();
    assert!(matches!(err, StoreError::OldEntryFormat), "{err:?}");
    let message = err.to_string();
    assert!(!message.contains('\n'), "{message}");
    assert!(message.contains("old format 1"), "{message}");
    assert!(message.contains("`caucus export`"), "{message}");
    assert!(message.contains("`caucus import`"), "{message}");
    // Refused every time, and the database is left as it was (schema 3).
    assert!(matches!(
        Store::open(&db, &key(1)).err().unwrap(),
        StoreError::OldEntryFormat
    ));
    let at_3 = Store::open_at_version(&db, &key(1), 3).unwrap();
    assert_eq!(at_3.schema_version().unwrap(), 3);
}

#[test]
fn a_database_with_format_2_bodies_or_bare_envelopes_migrates() {
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("db");
    let group = schema_3_with_body(&db, caucus_proto::BODY_VERSION);
    {
        // And an envelope stored without a body (not opened yet, or a relay's).
        let mut old = Store::open_at_version(&db, &key(1), 3).unwrap();
        old.insert_entries(&[entry(group, 2, b"bare")], 1).unwrap();
    }
    let store = Store::open(&db, &key(1)).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(store.entry_count(&group).unwrap(), 2);
    store.check_integrity().unwrap();
}

#[test]
fn a_reader_and_a_writer_at_once() {
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("db");
    let group = GroupId([6; 16]);
    let mut writer = Store::open(&db, &key(1)).unwrap();
    let reader = Store::open(&db, &key(1)).unwrap();
    for round in 0..20u32 {
        let batch: Vec<_> = (0..50)
            .map(|n| entry(group, round * 50 + n, b"r"))
            .collect();
        writer.insert_entries(&batch, 1).unwrap();
        // The reader sees every committed batch, never a partial one.
        assert_eq!(
            reader.entry_count(&group).unwrap(),
            u64::from(round + 1) * 50
        );
    }
}

/// A batch received from a peer is committed without waiting for the disk, and the
/// connection waits for the disk again for whatever it writes next.
#[test]
fn received_batches_leave_the_store_waiting_for_the_disk_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("caucus.db");
    let group = GroupId([3; 16]);
    let mut store = Store::open(&path, &key(1)).unwrap();
    store
        .add_group(group, caucus_proto::IdentityKey([1; 32]))
        .unwrap();
    let mut state = store.load_group(&group).unwrap();
    assert_eq!(store.synchronous().unwrap(), 2, "FULL from the start");
    let batch = (0..5)
        .map(|n| caucus_store::Incoming {
            entry: entry(group, n, b"from a peer"),
            body: None,
        })
        .collect();
    let applied = store.apply_received(&mut state, batch, 1).unwrap();
    assert_eq!(applied.new.len(), 5);
    assert_eq!(
        store.synchronous().unwrap(),
        2,
        "FULL again after the batch"
    );
    drop(store);
    let store = Store::open(&path, &key(1)).unwrap();
    assert_eq!(store.entry_ids(&group).unwrap().len(), 5);
}
