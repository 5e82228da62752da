//! Crash safety: a child process writes batches (alternately as its own, waited onto the
//! disk, and as received from a peer, only committed) and reports each one after it commits;
//! the parent kills it with SIGKILL at random moments, 60 times, and after every kill
//! the database opens, passes `PRAGMA integrity_check`, and holds every reported batch.
//!
//! The child is this same test binary, re-run with `CAUCUS_CRASH_CHILD` set.

#![allow(clippy::unwrap_used)]

use caucus_proto::{EntryId, GroupId, IdentityKey};
use caucus_store::{DbKey, Incoming, Store, StoredEntry};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

const GROUP: GroupId = GroupId([9; 16]);
const BATCH: u32 = 20;
const KILLS: u32 = 60;

fn key() -> DbKey {
    DbKey::from_bytes([0x42; 32])
}

fn entry(n: u32) -> StoredEntry {
    let mut envelope = n.to_le_bytes().to_vec();
    envelope.extend_from_slice(&[0xcd; 200]);
    StoredEntry {
        id: EntryId::of_encoded(&envelope),
        group: GROUP,
        epoch: 1,
        envelope,
    }
}

/// The child: appends batches forever from `start`, printing "committed <last n>" after
/// each durable commit.
#[test]
fn crash_child() {
    let Some(path) = std::env::var_os("CAUCUS_CRASH_CHILD") else {
        return;
    };
    let start: u32 = std::env::var("CAUCUS_CRASH_START")
        .unwrap()
        .parse()
        .unwrap();
    let mut store = Store::open(std::path::Path::new(&path), &key()).unwrap();
    store.add_group(GROUP, IdentityKey([1; 32])).unwrap();
    let mut group = store.load_group(&GROUP).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    let mut next = start;
    loop {
        let batch: Vec<_> = (next..next + BATCH).map(entry).collect();
        // Every other batch as entries received from a peer: committed without waiting
        // for the disk, which must survive a kill of the process all the same.
        if (next / BATCH).is_multiple_of(2) {
            store.insert_entries(&batch, 1).unwrap();
        } else {
            let incoming = batch
                .into_iter()
                .map(|entry| Incoming { entry, body: None })
                .collect();
            store.apply_received(&mut group, incoming, 1).unwrap();
        }
        next += BATCH;
        writeln!(out, "committed {}", next - 1).unwrap();
        out.flush().unwrap();
    }
}

/// A small seeded generator (SplitMix64): the kill points are random but reproducible.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[test]
fn every_reported_batch_survives_sigkill() {
    if std::env::var_os("CAUCUS_CRASH_CHILD").is_some() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("caucus.db");
    let exe = std::env::current_exe().unwrap();
    let mut rng = 0x00c0_ffee_u64;
    let mut reported_up_to: Option<u32> = None;
    for kill in 0..KILLS {
        let start = reported_up_to.map_or(0, |n| n + 1);
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("CAUCUS_CRASH_CHILD", &db)
            .env("CAUCUS_CRASH_START", start.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Wait for the child to open the database, then let it commit a random number of
        // batches (0 to 7) and kill it mid-flight: between commits, or inside one.
        loop {
            let line = lines.next().expect("child exited early").unwrap();
            // libtest prints "test crash_child ... " before the child's own first line.
            if line.ends_with("ready") {
                break;
            }
        }
        let commits = splitmix(&mut rng) % 8;
        for _ in 0..commits {
            let line = lines.next().expect("child exited early").unwrap();
            if let Some((_, n)) = line.split_once("committed ") {
                reported_up_to = Some(n.parse().unwrap());
            }
        }
        // Sometimes give it a few microseconds into its next transaction.
        if splitmix(&mut rng).is_multiple_of(2) {
            std::thread::sleep(Duration::from_micros(splitmix(&mut rng) % 3000));
        }
        child.kill().unwrap(); // SIGKILL on Unix
        // Lines the child printed before dying were reports too.
        for line in lines.map_while(Result::ok) {
            if let Some((_, n)) = line.split_once("committed ") {
                reported_up_to = Some(n.parse().unwrap());
            }
        }
        child.wait().unwrap();

        let store = Store::open(&db, &key()).unwrap();
        store.check_integrity().unwrap();
        if let Some(last) = reported_up_to {
            let stored: std::collections::HashSet<EntryId> =
                store.entry_ids(&GROUP).unwrap().into_iter().collect();
            for n in 0..=last {
                assert!(
                    stored.contains(&entry(n).id),
                    "kill {kill}: reported entry {n} lost"
                );
            }
        }
    }
    assert!(
        reported_up_to.unwrap_or(0) > 0,
        "the child never committed anything"
    );
}
