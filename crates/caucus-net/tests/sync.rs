//! Catch-up sync between real swarms on loopback.
#![allow(clippy::unwrap_used)]

mod common;

use caucus_net::{NetEvent, SyncSummary};
use caucus_proto::EntryId;
use common::{Fixture, config, node, wait_event};
use rand_core::{Rng, SeedableRng};
use std::time::Duration;

/// Two nodes share 10,000 entries and differ by one: sync moves it with a few KiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_sync_of_one_entry_among_10k_costs_few_bytes() {
    let mut fx = Fixture::new(1);
    let mut a = node(&fx, config()).await;
    let mut b = node(&fx, config()).await;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(99);
    let shared: Vec<EntryId> = (0..10_000)
        .map(|_| {
            let mut id = [0u8; 32];
            rng.fill_bytes(&mut id);
            EntryId(id)
        })
        .collect();
    a.backend.insert_ids(&fx.group, shared.clone());
    b.backend.insert_ids(&fx.group, shared);
    let extra = fx.entry();
    let extra_id = EntryId::of_encoded(&extra);
    a.backend.insert_local(&fx.group, [extra]);

    b.net.dial(a.addr.clone().unwrap()).await.unwrap();
    let finished = |e: &NetEvent| match e {
        NetEvent::SyncFinished { summary, .. } => Some(*summary),
        _ => None,
    };
    // Exactly one side initiates; both report the session when it finishes.
    let (sa, sb) = tokio::join!(
        wait_event(&mut a.events, Duration::from_secs(30), finished),
        wait_event(&mut b.events, Duration::from_secs(30), finished),
    );
    let (sa, sb): (SyncSummary, SyncSummary) = (sa.unwrap(), sb.unwrap());
    assert!(b.backend.contains(&fx.group, &extra_id));
    assert_eq!(a.backend.ids(&fx.group), b.backend.ids(&fx.group));
    assert_eq!(sb.entries_stored, 1);
    let total = sa.wire_bytes_sent + sa.wire_bytes_received;
    assert_eq!(total, sb.wire_bytes_sent + sb.wire_bytes_received);
    eprintln!(
        "incremental sync: {total} bytes on the stream, {} rounds",
        sa.rounds.max(sb.rounds)
    );
    assert!(total < 4 * 1024, "incremental sync took {total} bytes");
}
