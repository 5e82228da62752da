//! The office relay's blind store with real nodes on loopback: a grant for one group
//! gives nothing for another and a revoked grant stops service; a non-member stores
//! nothing; two hundred peers reserve a circuit and sync through one relay at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use caucus_crypto::at_rest::KdfParams;
use caucus_crypto::{DeviceKeys, EpochKeys, EpochSecret, seal};
use caucus_net::{Config, GroupKeys, MemoryBackend, Multiaddr, NetEvent, Network, RelayLimits};
use caucus_node::relay::{Quota, Relay, RelayNode, RelayOptions};
use caucus_node::{Node, NodeConfig, NodeEvent, Running};
use caucus_proto::{ContactField, ContactId, GroupId, Hlc, Operation};
use std::path::Path;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

async fn relay(dir: &Path, limits: RelayLimits) -> (RelayNode, Multiaddr) {
    let (relay, mut events) = RelayNode::start(
        Relay::open(dir, Quota::default()).unwrap(),
        RelayOptions {
            limits,
            max_peers: Some(1024),
            // A relay hands out its external addresses in reservations.
            announce_listen_addresses: true,
            ..RelayOptions::loopback()
        },
    )
    .await
    .unwrap();
    let addr = relay.wait_listening(&mut events, WAIT).await.unwrap();
    (relay, addr)
}

async fn member(home: &Path, name: &str, relay: &Multiaddr, kdf: KdfParams) -> Running {
    let node = if home.join("keys.wrapped").exists() {
        Node::open(home, b"pass").unwrap()
    } else {
        Node::init(home, b"pass", name, "laptop", kdf).unwrap()
    };
    let mut net = Config::loopback();
    net.bootstrap = vec![relay.clone()];
    net.resync_interval = Duration::from_secs(1);
    Running::start(
        node,
        NodeConfig {
            net,
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap()
}

fn kdf() -> KdfParams {
    KdfParams::new(19 * 1024, 2, 1).unwrap()
}

fn contact(i: u8) -> Operation {
    Operation::ContactSet {
        contact: ContactId([i; 16]),
        fields: vec![ContactField::Name(format!("worker {i}"))],
    }
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn held(relay: &Relay, g: &GroupId) -> u64 {
    relay.group_usage(g).map_or(0, |u| u.entries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_serves_its_group_only_and_a_revoked_grant_stops() {
    let dir = tempfile::tempdir().unwrap();
    let (relay, addr) = relay(&dir.path().join("relay"), RelayLimits::default()).await;
    let a = member(&dir.path().join("a"), "Dana", &addr, kdf()).await;
    let b = member(&dir.path().join("b"), "Bo", &addr, kdf()).await;
    let ga = a.create_group("A").await.unwrap();
    let gb = b.create_group("B").await.unwrap();
    let grant = a.with_node(|n| n.relay_grant(&ga)).unwrap();
    // Allowed first, then joined: the relay's first sync needs the grant's proof.
    relay.allow(grant).await.unwrap();
    a.write(&ga, contact(1)).await.unwrap();
    b.write(&gb, contact(2)).await.unwrap();
    let want = a.with_node(|n| n.store().entry_count(&ga)).unwrap();
    until("the relay to hold group A", || {
        held(relay.relay(), &ga) == want
    })
    .await;
    // Group B's member is connected to the relay all along: nothing of B is kept.
    let b_ids = b.with_node(|n| n.store().entry_ids(&gb)).unwrap();
    assert!(b_ids.iter().all(|id| !relay.relay().holds(&gb, id)));
    assert_eq!(relay.relay().usage().len(), 1);
    // Revoked: A's new entries are no longer taken.
    assert!(relay.revoke(&ga).await.unwrap());
    let after = a.write(&ga, contact(3)).await.unwrap();
    // Give the relay the chance to misbehave: wait for one more sync round from A.
    let mut rx = a.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Ok(ev)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        if matches!(
            ev,
            NodeEvent::SyncFailed { .. } | NodeEvent::SyncFinished { .. }
        ) {
            break;
        }
    }
    assert!(!relay.relay().holds(&ga, &after));
    // And it stays revoked across a restart of the relay.
    drop(relay);
    let reopened = Relay::open(&dir.path().join("relay"), Quota::default()).unwrap();
    assert!(reopened.groups().is_empty());
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_member_stores_nothing_on_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let (relay, addr) = relay(&dir.path().join("relay"), RelayLimits::default()).await;
    let a = member(&dir.path().join("a"), "Dana", &addr, kdf()).await;
    let g = a.create_group("A").await.unwrap();
    let grant = a.with_node(|n| n.relay_grant(&g)).unwrap();
    let topic = grant.topic.clone();
    relay.allow(grant).await.unwrap();
    let want = a.with_node(|n| n.store().entry_count(&g)).unwrap();
    until("the relay to hold the group", || {
        held(relay.relay(), &g) == want
    })
    .await;

    // An outsider who knows the group id and even the topic, but no epoch secret.
    let mut rng = rand::rng();
    let fake = EpochKeys::derive(g, 1, EpochSecret::generate(&mut rng));
    let device = DeviceKeys::generate_unlinked(&mut rng);
    let backend = MemoryBackend::new();
    backend.add_group(
        g,
        GroupKeys {
            tokens: vec![fake.relay_token()],
            session_key: libp2p::identity::ed25519::Keypair::generate(),
        },
    );
    let mut cfg = Config::loopback();
    cfg.bootstrap = vec![addr.clone()];
    let (outsider, mut events) = Network::spawn(cfg, backend.clone()).unwrap();
    outsider.join(g, topic).await.unwrap();
    let mut forged = Vec::new();
    let mut forged_bytes = Vec::new();
    for i in 0..5u8 {
        let hlc = Hlc {
            wall_ms: 1 + u64::from(i),
            counter: 0,
        };
        let chain = caucus_proto::Chain {
            seq: u64::from(i) + 1,
            prev: (i > 0).then_some(caucus_proto::EventId([i; 32])),
            heads: Vec::new(),
        };
        let env = seal(&g, &fake, &device, chain, hlc, contact(i), &mut rng).unwrap();
        let bytes = env.encode().unwrap();
        backend.insert_local(&g, [bytes.clone()]);
        forged.push(caucus_proto::EntryId::of_encoded(&bytes));
        forged_bytes.push(bytes);
    }
    // Its sync attempts with the relay fail the membership check. (Asked before any
    // gossip: the relay bans a peer for its invalid gossip, which would end the sync.)
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut refused = false;
    while !refused {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(NetEvent::SyncFailed { .. })) => refused = true,
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    assert!(refused, "the relay never refused the outsider's sync");
    // Its gossip is rejected, and enough of it gets it disconnected.
    for bytes in &forged_bytes {
        let _ = outsider.publish(g, bytes.clone()).await;
    }
    let mut dropped = false;
    while !dropped {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(NetEvent::PeerDisconnected { peer })) => {
                dropped = peer == relay.peer_id();
            }
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    assert!(dropped, "the relay kept the outsider connected");
    assert!(forged.iter().all(|id| !relay.relay().holds(&g, id)));
    assert_eq!(
        held(relay.relay(), &g),
        want,
        "the relay stored an outsider's entry"
    );
    let _ = outsider.shutdown().await;
    a.shutdown().await.unwrap();
}

/// RSS of this process in KiB (Linux).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Two hundred peers (copies of one member device, each its own home, transport key and
/// swarm) reserve a circuit on one relay and sync the group's newest entries from it,
/// all at once. The relay's share of memory is printed (this process holds all 201 nodes,
/// so the figure is an upper bound); the 500-peer figure belongs to the bench harness.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_peers_reserve_and_sync_through_one_relay() {
    const PEERS: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let limits = RelayLimits {
        max_reservations: 512,
        max_circuits: 512,
        ..RelayLimits::default()
    };
    let (relay, addr) = relay(&dir.path().join("relay"), limits).await;
    let fast = KdfParams::insecure_for_tests();
    let founder_home = dir.path().join("founder");
    let founder = member(&founder_home, "Dana", &addr, fast).await;
    let g = founder.create_group("A").await.unwrap();
    let grant = founder.with_node(|n| n.relay_grant(&g)).unwrap();
    relay.allow(grant).await.unwrap();
    founder.shutdown().await.unwrap();
    for i in 0..PEERS {
        copy_dir(&founder_home, &dir.path().join(format!("p{i}")));
    }
    // New entries the copies do not have: only the relay can give them.
    let founder = member(&founder_home, "Dana", &addr, fast).await;
    for i in 0..20 {
        founder.write(&g, contact(i)).await.unwrap();
    }
    let want = founder.with_node(|n| n.store().entry_count(&g)).unwrap();
    until("the relay to hold the newest entries", || {
        held(relay.relay(), &g) == want
    })
    .await;
    let target = founder.with_node(|n| n.state(&g).unwrap().state_hash());
    founder.shutdown().await.unwrap();
    let before = rss_kib();
    let started = Instant::now();
    let circuit = addr.clone().with(caucus_net::Protocol::P2pCircuit);
    let mut peers = Vec::new();
    let mut events = Vec::new();
    for i in 0..PEERS {
        let r = member(&dir.path().join(format!("p{i}")), "Dana", &addr, fast).await;
        events.push(r.subscribe());
        peers.push(r);
    }
    // Reserve over the connection each peer has opened to the relay (a second dial from
    // the same port to the same relay would collide with the first).
    let relay_id = relay.peer_id();
    for (i, r) in peers.iter().enumerate() {
        let deadline = Instant::now() + WAIT;
        while !r.connected_peers().await.unwrap().contains(&relay_id) {
            assert!(
                Instant::now() < deadline,
                "peer {i} never connected to the relay"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        r.network().listen(circuit.clone()).await.unwrap();
    }
    for (i, rx) in events.iter_mut().enumerate() {
        let reserved = {
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Ok(NodeEvent::RelayReservation { .. })) => break true,
                    Ok(Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                    _ => break false,
                }
            }
        };
        assert!(reserved, "peer {i} got no reservation");
    }
    for (i, p) in peers.iter().enumerate() {
        until(&format!("peer {i} to sync from the relay"), || {
            p.with_node(|n| n.state(&g).unwrap().state_hash()) == target
        })
        .await;
    }
    let after = rss_kib();
    println!(
        "{PEERS} peers reserved and synced {} new entries each through one relay in {:.1} s; process RSS {} MiB -> {} MiB ({} KiB per peer, relay and peers together)",
        20,
        started.elapsed().as_secs_f64(),
        before / 1024,
        after / 1024,
        after.saturating_sub(before) / PEERS as u64
    );
    for p in peers {
        p.shutdown().await.unwrap();
    }
    relay.shutdown().await.unwrap();
}
