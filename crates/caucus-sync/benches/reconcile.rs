//! Reconciliation cost: two in-memory sets of 10,000 or 60,000 ids differing by 1 or 100,
//! synced over a perfect in-process link (hellos, rounds, requests for the missing ids);
//! and a first sync of 10,000 or 60,000 ids against an empty store.

// Test code: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use caucus_proto::EntryId;
use caucus_sync::MemoryIndex;
use caucus_sync::sim::sync_direct;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;

fn id(n: u32) -> EntryId {
    EntryId(*blake3::hash(&n.to_le_bytes()).as_bytes())
}

/// `size` shared ids; `diff` more split between the two sides.
fn pair(size: u32, diff: u32) -> (MemoryIndex, MemoryIndex) {
    let a = MemoryIndex::from_ids(
        (0..size)
            .chain((0..diff).filter(|i| i % 2 == 0).map(|i| size + i))
            .map(id),
    );
    let b = MemoryIndex::from_ids(
        (0..size)
            .chain((0..diff).filter(|i| i % 2 == 1).map(|i| size + i))
            .map(id),
    );
    (a, b)
}

fn reconcile(c: &mut Criterion) {
    let mut g = c.benchmark_group("reconcile");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    for size in [10_000u32, 60_000] {
        for diff in [1u32, 100] {
            let (a, b) = pair(size, diff);
            let once = sync_direct(&a, &b).expect("honest sync");
            assert!(once.done);
            assert_eq!(once.needs[0].len() + once.needs[1].len(), diff as usize);
            let bytes = once.stats[0].bytes_sent + once.stats[1].bytes_sent;
            println!(
                "reconcile/{size}/{diff}: {bytes} bytes, {} messages, {} rounds",
                once.stats[0].messages_sent + once.stats[1].messages_sent,
                once.stats[0].rounds.max(once.stats[1].rounds)
            );
            g.bench_with_input(
                BenchmarkId::new(format!("{size}"), diff),
                &(a, b),
                |bench, (a, b)| bench.iter(|| black_box(sync_direct(a, b))),
            );
        }
    }
    // First sync of a new device: everything against nothing (ids only: the fetch
    // requests are answered "missing", so this is reconciliation plus request traffic).
    for size in [10_000u32, 60_000] {
        let (a, _) = pair(size, 0);
        let b = MemoryIndex::new();
        let once = sync_direct(&b, &a).expect("honest sync");
        assert!(once.done);
        assert_eq!(once.needs[0].len(), size as usize);
        println!(
            "initial/{size}: {} bytes reconciling, {} rounds",
            once.stats[0].reconcile_bytes_sent + once.stats[1].reconcile_bytes_sent,
            once.stats[0].rounds.max(once.stats[1].rounds)
        );
        g.bench_with_input(
            BenchmarkId::new("initial", size),
            &(b, a),
            |bench, (b, a)| bench.iter(|| black_box(sync_direct(b, a))),
        );
    }
    g.finish();
}

criterion_group!(benches, reconcile);
criterion_main!(benches);
