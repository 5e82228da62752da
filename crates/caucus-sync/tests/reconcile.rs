//! Reconciliation through real sessions: exactly the symmetric difference, for random set
//! pairs of every shape, and with bytes that follow the difference, not the sets.

// Test code: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use caucus_proto::{EntryId, GroupId};
use caucus_sync::{AcceptAll, Config, Event, MemoryIndex, Role, Session, Stats};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use std::collections::BTreeSet;

fn id(n: u32) -> EntryId {
    EntryId(*blake3::hash(&n.to_le_bytes()).as_bytes())
}

fn entry(n: u32) -> Vec<u8> {
    format!("entry {n}").into_bytes()
}

/// What one side learnt in a session.
#[derive(Debug, Default)]
struct Side {
    need: BTreeSet<EntryId>,
    have: BTreeSet<EntryId>,
    fetched: BTreeSet<EntryId>,
    stats: Stats,
}

/// Runs one session over a perfect link, storing nothing; returns what each side learnt.
fn sync(a: &MemoryIndex, b: &MemoryIndex) -> (Side, Side) {
    let group = GroupId([1; 16]);
    let config = Config::new(group, vec![]);
    let mut s = [
        Session::new(Role::Initiator, config.clone(), Box::new(AcceptAll), 0),
        Session::new(Role::Responder, config, Box::new(AcceptAll), 0),
    ];
    let stores = [a, b];
    let mut sides = [Side::default(), Side::default()];
    let mut steps = 0;
    loop {
        let mut moved = false;
        for from in 0..2 {
            while let Some(bytes) = s[from].poll_transmit() {
                moved = true;
                s[1 - from]
                    .handle_message(0, &bytes, stores[1 - from])
                    .unwrap();
            }
        }
        for (side, sess) in sides.iter_mut().zip(s.iter_mut()) {
            while let Some(e) = sess.poll_event() {
                match e {
                    Event::Need(ids) => side.need.extend(ids),
                    Event::Have(ids) => side.have.extend(ids),
                    Event::Entry { id, .. } => {
                        side.fetched.insert(id);
                    }
                    Event::Done(_) => {}
                }
            }
        }
        if !moved {
            break;
        }
        steps += 1;
        assert!(steps < 10_000, "session does not end");
    }
    assert!(s[0].is_done() && s[1].is_done(), "{:?}", s);
    sides[0].stats = s[0].stats();
    sides[1].stats = s[1].stats();
    let [x, y] = sides;
    (x, y)
}

fn diff(x: &MemoryIndex, y: &MemoryIndex) -> BTreeSet<EntryId> {
    let y: BTreeSet<_> = y.ids().iter().copied().collect();
    x.ids().iter().copied().filter(|i| !y.contains(i)).collect()
}

fn check(a: &MemoryIndex, b: &MemoryIndex) -> (Stats, Stats) {
    let (sa, sb) = sync(a, b);
    assert_eq!(sa.need, diff(b, a), "initiator's needs");
    assert_eq!(sb.need, diff(a, b), "responder's needs");
    // Whoever sent `Lacking` knows what the peer lacks; those are real.
    assert!(sa.have.is_subset(&diff(a, b)));
    assert!(sb.have.is_subset(&diff(b, a)));
    (sa.stats, sb.stats)
}

/// `common` shared ids, then `only_a` and `only_b` ids of each side's own.
fn pair(common: u32, only_a: u32, only_b: u32) -> (MemoryIndex, MemoryIndex) {
    let a = MemoryIndex::from_ids((0..common).chain(1_000_000..1_000_000 + only_a).map(id));
    let b = MemoryIndex::from_ids((0..common).chain(2_000_000..2_000_000 + only_b).map(id));
    (a, b)
}

#[test]
fn edge_shapes() {
    for (c, x, y) in [
        (0, 0, 0),
        (0, 1, 0),
        (0, 0, 1),
        (1, 0, 0),
        (100, 0, 0),
        (0, 100, 100),
        (0, 5000, 0),
        (0, 0, 5000),
        (33, 1, 1),
        (10_000, 0, 0),
        (10_000, 1, 0),
        (10_000, 0, 1),
        (10_000, 3, 5),
        (10_000, 300, 0),
        (0, 10_000, 10_000),
    ] {
        let (a, b) = pair(c, x, y);
        check(&a, &b);
    }
}

#[test]
fn ten_thousand_differing_by_one_costs_about_a_kibibyte() {
    // Real entries, so the one missing entry is fetched too.
    let mut a = MemoryIndex::from_entries((0..10_000).map(entry));
    let b = a.clone();
    a.insert(entry(10_000));
    let (sa, sb) = sync(&a, &b);
    assert_eq!(sb.fetched.len(), 1);
    let total = sa.stats.bytes_sent + sb.stats.bytes_sent;
    let reconcile = sa.stats.reconcile_bytes_sent + sb.stats.reconcile_bytes_sent;
    println!(
        "10,001 vs 10,000 entries: {total} bytes in all ({reconcile} reconciling), \
         {} messages, {} rounds",
        sa.stats.messages_sent + sb.stats.messages_sent,
        sa.stats.rounds.max(sb.stats.rounds)
    );
    assert!(total < 4 * 1024, "{total} bytes");
    // Either side initiating.
    let (sa, sb) = sync(&b, &a);
    assert_eq!(sa.fetched.len(), 1);
    let total = sa.stats.bytes_sent + sb.stats.bytes_sent;
    println!("10,000 vs 10,001 entries: {total} bytes in all");
    assert!(total < 4 * 1024, "{total} bytes");
}

#[test]
fn identical_sets_cost_one_round_trip() {
    let (a, b) = pair(10_000, 0, 0);
    let (sa, sb) = check(&a, &b);
    let total = sa.bytes_sent + sb.bytes_sent;
    println!("10,000 identical: {total} bytes");
    assert!(total < 1024, "{total}");
    assert_eq!(sa.rounds.max(sb.rounds), 3);
}

#[test]
fn initial_sync_fetches_everything_in_batches() {
    let a = MemoryIndex::from_entries((0..3000).map(entry));
    let b = MemoryIndex::new();
    let (sa, sb) = sync(&a, &b);
    assert_eq!(sb.fetched.len(), 3000);
    assert_eq!(sb.stats.entries_received, 3000);
    assert_eq!(sa.stats.entries_sent, 3000);
    assert!(sa.fetched.is_empty());
}

fn shape() -> impl Strategy<Value = (u32, u32, u32)> {
    prop_oneof![
        // tiny differences on sets of any size
        (0u32..3000, 0u32..4, 0u32..4),
        // moderate differences
        (0u32..2000, 0u32..200, 0u32..200),
        // identical
        (0u32..3000).prop_map(|c| (c, 0, 0)),
        // disjoint
        (Just(0u32), 0u32..500, 0u32..500),
        // one side empty
        (Just(0u32), 0u32..1000, Just(0u32)),
        // about 10,000 shared, small differences
        (9_000u32..11_000, 0u32..6, 0u32..6),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 200,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/reconcile.txt",
        ))),
        ..ProptestConfig::default()
    })]

    /// Reconciliation yields exactly the symmetric difference.
    #[test]
    fn exactly_the_symmetric_difference((c, x, y) in shape(), salt in any::<u32>()) {
        // Salt the ids so every case draws a fresh sample of the id space.
        let ids = |r: std::ops::Range<u32>| r.map(move |n| {
            let mut h = blake3::Hasher::new();
            h.update(&salt.to_le_bytes());
            h.update(&n.to_le_bytes());
            EntryId(*h.finalize().as_bytes())
        });
        let a = MemoryIndex::from_ids(ids(0..c).chain(ids(1_000_000..1_000_000 + x)));
        let b = MemoryIndex::from_ids(ids(0..c).chain(ids(2_000_000..2_000_000 + y)));
        check(&a, &b);
    }
}
