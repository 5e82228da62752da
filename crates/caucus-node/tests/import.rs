//! The reference campaign (`shared/data/campaign-10k`: 10,000 contacts, 50,000 notes)
//! imported on a running node as `caucus import` does it (rows checked by the store's
//! spreadsheet reader, packed up to a thousand records an entry, sealed and stored in
//! one `write_many`), and a member's node on 127.0.0.1 catching up by sync alone (a
//! large import is not gossiped) to the same state; both homes reopen to it, and a
//! fresh crypto pass over the member's store agrees.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use caucus_node::{Node, NodeEvent, now_ms};
use caucus_proto::limits::{MAX_RECORDS_PER_ENTRY, PACK_TEXT_BYTES};
use caucus_proto::{ContactId, Operation};
use caucus_store::spreadsheet::{self, KnownPhones};
use common::{PASS, converge, event, start};
use std::path::{Path, PathBuf};

fn data(set: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data")).join(set)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_campaign_imports_on_one_node_and_syncs_to_another() {
    let dir = tempfile::tempdir().unwrap();
    let (dana, addrs) = start(&dir.path().join("dana"), "Dana", &[]).await;
    let g = dana.create_group("JFK8 committee").await.unwrap();
    let texts: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    let ticket = dana
        .with_node(|n| n.create_invite(&g, texts, now_ms() + 600_000))
        .unwrap();
    let (luis, _) = start(&dir.path().join("luis"), "Luis", &addrs).await;
    assert_eq!(luis.join(&ticket, &[]).await.unwrap(), g);
    converge(&[&dana, &luis], &g).await;

    let set = data("campaign-10k");
    let mut contacts = std::fs::File::open(set.join("contacts.csv")).unwrap();
    let mut notes = std::fs::File::open(set.join("notes.csv")).unwrap();
    let known = dana.with_node(|n| KnownPhones::from_state(n.state(&g).unwrap()));
    let import = spreadsheet::import(
        Some(&mut contacts),
        Some(&mut notes),
        &known,
        &mut || ContactId(rand::random()),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!((import.contacts, import.notes), (10_000, 50_000));
    let ops = Operation::pack(import.operations, MAX_RECORDS_PER_ENTRY, PACK_TEXT_BYTES);
    let packed = ops.len();
    assert!(packed < 200, "{packed} entries for 60,000 records");

    let mut events = luis.subscribe();
    let ids = dana.write_many(&g, ops).await.unwrap();
    assert_eq!(ids.len(), packed);
    let hash = converge(&[&dana, &luis], &g).await;
    let (people, held) = luis.with_node(|n| {
        let state = n.state(&g).unwrap();
        (state.contacts().count(), state.all_notes().count())
    });
    assert_eq!((people, held), (10_000, 50_000));
    // Every imported entry reached Luis by sync, none by gossip.
    let mut synced = 0;
    while synced < packed as u64 {
        synced += event(&mut events, "the import's sync sessions", |ev| match ev {
            NodeEvent::SyncFinished { entries_stored, .. } => Some(*entries_stored),
            NodeEvent::GossipVerified { id, .. } => {
                assert!(!ids.contains(id), "an imported entry was gossiped");
                None
            }
            _ => None,
        })
        .await;
    }
    assert_eq!(synced, packed as u64);
    let count = dana.with_node(|n| n.store().entry_count(&g).unwrap());
    assert_eq!(
        luis.with_node(|n| n.store().entry_count(&g).unwrap()),
        count
    );

    dana.shutdown().await.unwrap();
    luis.shutdown().await.unwrap();
    for home in ["dana", "luis"] {
        let node = Node::open(&dir.path().join(home), PASS).unwrap();
        assert_eq!(node.state(&g).unwrap().state_hash(), hash, "{home}");
        assert_eq!(node.store().all_contacts(&g).unwrap().len(), 10_000);
    }
    let luis = Node::open(&dir.path().join("luis"), PASS).unwrap();
    let check = luis.reverify(&g).unwrap();
    assert_eq!((check.state_hash, check.unreadable), (hash, 0));
    assert_eq!(check.opened as u64, count);
}
