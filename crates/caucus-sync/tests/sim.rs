//! Many replicas on the simulated network: convergence after any partition, under loss,
//! and sync cost that follows the difference.

// Test code: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use caucus_proto::EntryId;
use caucus_sync::sim::{Sim, SimConfig};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestRunner};
use std::cell::Cell;

/// Virtual time one batch of sessions may take (sessions that lose every retransmission
/// give up well within it).
const ROUND_LIMIT_MS: u64 = 10 * 60 * 1000;

/// Sync rounds after healing before convergence must have happened.
const MAX_HEAL_ROUNDS: usize = 60;

#[derive(Clone, Debug)]
enum Op {
    /// `n` new entries written at a replica.
    Insert { at: usize, n: usize },
    /// Every replica on a side (`sides[i] % 3`).
    Partition(Vec<usize>),
    /// All sides joined.
    Heal,
    /// Every replica syncs with one reachable peer.
    Round,
    /// Loss probability in percent.
    Loss(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..8, 1usize..8).prop_map(|(at, n)| Op::Insert { at, n }),
        // Now and then a bulk write: several reconciliation levels, many fetch batches.
        1 => (0usize..8, 20usize..150).prop_map(|(at, n)| Op::Insert { at, n }),
        1 => proptest::collection::vec(0usize..3, 8).prop_map(Op::Partition),
        1 => Just(Op::Heal),
        3 => Just(Op::Round),
        1 => (0u8..=30).prop_map(Op::Loss),
    ]
}

/// Runs the operations, heals, syncs until converged; returns the simulator.
fn run(seed: u64, replicas: usize, ops: &[Op]) -> (Sim, Vec<EntryId>, usize) {
    let mut sim = Sim::new(
        seed,
        SimConfig {
            replicas,
            ..SimConfig::default()
        },
    );
    let mut written = Vec::new();
    for op in ops {
        match op {
            Op::Insert { at, n } => {
                for _ in 0..*n {
                    written.push(sim.insert_random(at % replicas));
                }
            }
            Op::Partition(sides) => sim.partition(sides),
            Op::Heal => sim.heal(),
            Op::Round => {
                sim.sync_round();
                assert!(sim.run_until_idle(ROUND_LIMIT_MS), "sessions never end");
            }
            Op::Loss(p) => sim.set_loss(f64::from(*p) / 100.0),
        }
    }
    sim.heal();
    let mut rounds = 0;
    while !sim.converged() && rounds < MAX_HEAL_ROUNDS {
        sim.sync_round();
        assert!(sim.run_until_idle(ROUND_LIMIT_MS), "sessions never end");
        rounds += 1;
    }
    (sim, written, rounds)
}

/// Many replicas over random writes, partitions, loss and heals all converge to the same
/// set, and no entry written anywhere is lost (1,000 cases).
#[test]
fn replicas_converge_after_any_partition() {
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 1000,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/sim-convergence.txt",
        ))),
        ..ProptestConfig::default()
    });
    // (cases, sessions done, sessions failed, messages dropped, entries written)
    let totals = Cell::new((0u64, 0u64, 0u64, 0u64, 0u64));
    let strategy = (
        any::<u64>(),
        2usize..=8,
        proptest::collection::vec(op(), 1..40),
    );
    runner
        .run(&strategy, |(seed, replicas, ops)| {
            let (sim, written, rounds) = run(seed, replicas, &ops);
            prop_assert!(
                sim.converged(),
                "not converged after {} rounds: {:?}",
                rounds,
                sim
            );
            prop_assert!(sim.everyone_has(&written));
            prop_assert_eq!(sim.replica(0).len(), written.len());
            let st = sim.stats();
            prop_assert_eq!(st.sessions_started, st.sessions_done + st.sessions_failed);
            let t = totals.get();
            totals.set((
                t.0 + 1,
                t.1 + st.sessions_done,
                t.2 + st.sessions_failed,
                t.3 + st.messages_dropped,
                t.4 + written.len() as u64,
            ));
            Ok(())
        })
        .unwrap();
    let (cases, done, failed, dropped, written) = totals.get();
    println!(
        "{cases} cases: {done} sessions done, {failed} failed (retried later), \
         {dropped} messages dropped, {written} entries written"
    );
    assert!(cases >= 1000 && done > 0 && failed > 0 && dropped > 0);
}

#[test]
fn eight_replicas_three_sides_heavy_loss() {
    let mut sim = Sim::new(
        42,
        SimConfig {
            replicas: 8,
            loss: 0.25,
            ..SimConfig::default()
        },
    );
    let mut written = Vec::new();
    sim.partition(&[0, 0, 0, 1, 1, 1, 2, 2]);
    for round in 0..10 {
        for r in 0..8 {
            if (r + round) % 3 == 0 {
                written.push(sim.insert_random(r));
            }
        }
        sim.sync_round();
        assert!(sim.run_until_idle(ROUND_LIMIT_MS));
    }
    // Each side has converged on its own writes, and no further.
    assert_eq!(sim.replica(0).ids(), sim.replica(2).ids());
    assert_eq!(sim.replica(3).ids(), sim.replica(5).ids());
    assert_ne!(sim.replica(0).ids(), sim.replica(3).ids());
    sim.heal();
    let mut rounds = 0;
    while !sim.converged() {
        sim.sync_round();
        assert!(sim.run_until_idle(ROUND_LIMIT_MS));
        rounds += 1;
        assert!(rounds < MAX_HEAL_ROUNDS);
    }
    assert!(sim.everyone_has(&written));
    let stats = sim.stats();
    println!(
        "8 replicas, 25% loss: converged {rounds} rounds after healing; {stats:?}, {} ms virtual",
        sim.now()
    );
    assert!(stats.messages_dropped > 0);
}

/// Two replicas sharing `common` entries, one holding `d` more; bytes spent reconciling.
fn incremental(seed: u64, common: usize, d: usize) -> u64 {
    let mut sim = Sim::new(
        seed,
        SimConfig {
            replicas: 2,
            ..SimConfig::default()
        },
    );
    for _ in 0..common {
        let id = sim.insert_random(0);
        let bytes = caucus_sync::EntryIndex::get(sim.replica(0), &id).unwrap();
        sim.insert(1, bytes);
    }
    for i in 0..d {
        sim.insert_random(i % 2);
    }
    let out = sim.sync_pair(0, 1);
    assert!(out.done);
    assert!(sim.converged());
    out.initiator.reconcile_bytes_sent + out.responder.reconcile_bytes_sent
}

#[test]
fn bytes_grow_with_the_difference_not_the_set() {
    let mut rows = Vec::new();
    for common in [1_000, 10_000] {
        for d in [0, 1, 2, 10, 100] {
            let bytes = incremental(common as u64 + d as u64, common, d);
            println!("{common:>6} shared, {d:>3} different: {bytes:>6} bytes reconciling");
            rows.push((common, d, bytes));
        }
    }
    for &(common, d, bytes) in &rows {
        // Per differing id: at most a split per level of the range tree, plus the id.
        assert!(bytes <= 600 + 1_200 * d as u64, "{common}/{d}: {bytes}");
    }
    // Ten times the set, same difference: about the same bytes (one more level at most).
    for d in [1, 10] {
        let small = rows.iter().find(|r| r.0 == 1_000 && r.1 == d).unwrap().2;
        let big = rows.iter().find(|r| r.0 == 10_000 && r.1 == d).unwrap().2;
        assert!(big < 2 * small + 400, "d={d}: {small} → {big}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/sim-bytes.txt",
        ))),
        ..ProptestConfig::default()
    })]

    /// Reconciliation bytes of an incremental sync are bounded by the difference alone.
    #[test]
    fn incremental_bytes_follow_the_difference(
        seed in any::<u64>(),
        common in 0usize..2_000,
        d in 0usize..24,
    ) {
        let bytes = incremental(seed, common, d);
        prop_assert!(bytes <= 600 + 1_200 * d as u64, "{}/{}: {}", common, d, bytes);
    }
}

#[test]
fn a_seed_replays_the_same_run() {
    let ops = vec![
        Op::Insert { at: 0, n: 5 },
        Op::Loss(20),
        Op::Partition(vec![0, 1, 1, 0]),
        Op::Round,
        Op::Insert { at: 2, n: 3 },
        Op::Round,
        Op::Heal,
        Op::Round,
    ];
    let (a, _, ra) = run(9, 4, &ops);
    let (b, _, rb) = run(9, 4, &ops);
    assert_eq!((a.stats(), a.now(), ra), (b.stats(), b.now(), rb));
    assert_eq!(a.replica(3).ids(), b.replica(3).ids());
    let (c, _, _) = run(10, 4, &ops);
    assert_ne!(
        a.replica(0).ids(),
        c.replica(0).ids(),
        "another seed, other entries"
    );
}
