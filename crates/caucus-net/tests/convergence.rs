//! Many nodes on loopback: partition and heal, and one flooded message to 20 nodes.
#![allow(clippy::unwrap_used, clippy::needless_range_loop)]

mod common;

use caucus_net::NetEvent;
use caucus_proto::{EntryId, GroupId};
use common::{Fixture, Node, config, drain, node, wait_event};
use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

/// Waits until each node in `nodes` has seen `want` distinct group peers.
async fn wait_group_peers(nodes: &mut [Node], want: &[usize]) {
    for (n, &w) in nodes.iter_mut().zip(want) {
        let mut seen = HashSet::new();
        if w == 0 {
            continue;
        }
        let ok = wait_event(&mut n.events, Duration::from_secs(20), |e| match e {
            NetEvent::GroupPeer { peer, .. } => {
                seen.insert(*peer);
                (seen.len() >= w).then_some(())
            }
            _ => None,
        })
        .await;
        assert!(ok.is_some(), "node saw {} of {w} group peers", seen.len());
    }
}

async fn write(fx: &mut Fixture, n: &Node, count: usize) -> Vec<EntryId> {
    let mut ids = Vec::new();
    for _ in 0..count {
        let e = fx.entry();
        ids.push(EntryId::of_encoded(&e));
        n.backend.insert_local(&fx.group, [e.clone()]);
        n.net.publish(fx.group, e).await.unwrap();
    }
    ids
}

async fn converge(nodes: &[&Node], group: &GroupId, want: &BTreeSet<EntryId>, timeout: Duration) {
    for (i, n) in nodes.iter().enumerate() {
        let ok = n
            .backend
            .wait_until(group, timeout, |ids| {
                ids.iter().copied().collect::<BTreeSet<_>>() == *want
            })
            .await;
        assert!(
            ok,
            "node {i} holds {} of {} entries",
            n.backend.ids(group).len(),
            want.len()
        );
    }
}

/// 5 nodes: writes, a partition {0,1} | {2,3,4} with writes on both sides, heal: all
/// converge to the same set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_converge_after_partition() {
    let mut fx = Fixture::new(5);
    let mut nodes = Vec::new();
    for _ in 0..5 {
        nodes.push(node(&fx, config()).await);
    }
    // A ring: 0-1-2-3-4-0.
    for i in 0..5 {
        let next = nodes[(i + 1) % 5].addr.clone().unwrap();
        nodes[i].net.dial(next).await.unwrap();
    }
    wait_group_peers(&mut nodes, &[2, 2, 2, 2, 2]).await;
    let mut all = BTreeSet::new();
    for i in 0..5 {
        all.extend(write(&mut fx, &nodes[i], 4).await);
    }
    let refs: Vec<&Node> = nodes.iter().collect();
    converge(&refs, &fx.group, &all, Duration::from_secs(30)).await;

    // Partition: every node bans the other side.
    let (left, right) = ([0usize, 1], [2usize, 3, 4]);
    for &l in &left {
        for &r in &right {
            let (lid, rid) = (nodes[l].id, nodes[r].id);
            nodes[l].net.ban(rid).await.unwrap();
            nodes[r].net.ban(lid).await.unwrap();
        }
    }
    for &l in &left {
        for &r in &right {
            let rid = nodes[r].id;
            let gone = async {
                for _ in 0..200 {
                    if !nodes[l].net.connected_peers().await.unwrap().contains(&rid) {
                        return true;
                    }
                    tokio::task::yield_now().await;
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                false
            };
            assert!(gone.await, "partition did not close {l}-{r}");
        }
    }
    let mut left_set = all.clone();
    let mut right_set = all.clone();
    for &l in &left {
        left_set.extend(write(&mut fx, &nodes[l], 3).await);
    }
    for &r in &right {
        right_set.extend(write(&mut fx, &nodes[r], 3).await);
    }
    let lrefs: Vec<&Node> = left.iter().map(|&i| &nodes[i]).collect();
    let rrefs: Vec<&Node> = right.iter().map(|&i| &nodes[i]).collect();
    converge(&lrefs, &fx.group, &left_set, Duration::from_secs(30)).await;
    converge(&rrefs, &fx.group, &right_set, Duration::from_secs(30)).await;
    // Nothing crossed the partition.
    assert!(
        !nodes[0]
            .backend
            .ids(&fx.group)
            .iter()
            .any(|id| right_set.contains(id) && !all.contains(id))
    );

    // Heal: lift the bans, redial across.
    for &l in &left {
        for &r in &right {
            let (lid, rid) = (nodes[l].id, nodes[r].id);
            nodes[l].net.unban(rid).await.unwrap();
            nodes[r].net.unban(lid).await.unwrap();
        }
    }
    let started = Instant::now();
    let a2 = nodes[2].addr.clone().unwrap();
    let a0 = nodes[0].addr.clone().unwrap();
    nodes[1].net.dial(a2).await.unwrap();
    nodes[4].net.dial(a0).await.unwrap();
    let mut everything = left_set.clone();
    everything.extend(right_set);
    converge(&refs, &fx.group, &everything, Duration::from_secs(30)).await;
    eprintln!(
        "healed and converged on {} entries in {:?}",
        everything.len(),
        started.elapsed()
    );
    for n in nodes {
        drain(n.events);
    }
}

/// 20 nodes: one message published (flood publishing) reaches all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_flooded_message_reaches_twenty_nodes() {
    const N: usize = 20;
    let mut fx = Fixture::new(20);
    let mut nodes = Vec::new();
    for _ in 0..N {
        nodes.push(node(&fx, config()).await);
    }
    // Each node dials the two before it: a connected graph with few links.
    let mut want = vec![0usize; N];
    for i in 1..N {
        for back in 1..=2 {
            if i >= back {
                let a = nodes[i - back].addr.clone().unwrap();
                nodes[i].net.dial(a).await.unwrap();
                want[i] += 1;
                want[i - back] += 1;
            }
        }
    }
    wait_group_peers(&mut nodes, &want).await;
    let publisher = N / 2;
    let e = fx.entry();
    let id = EntryId::of_encoded(&e);
    // Published without being stored first: gossip is the only way it can spread (a node
    // that has it may pass it on by sync too, when the gossip mesh is still forming).
    let started = Instant::now();
    nodes[publisher].net.publish(fx.group, e).await.unwrap();
    let mut by_gossip = 0;
    for (i, n) in nodes.iter_mut().enumerate() {
        if i == publisher {
            continue;
        }
        let got = wait_event(&mut n.events, Duration::from_secs(20), |e| match e {
            NetEvent::EntryReceived {
                id: got, origin, ..
            } if *got == id => Some(*origin),
            _ => None,
        })
        .await;
        assert!(got.is_some(), "node {i} did not receive the message");
        if matches!(got, Some(caucus_net::Origin::Gossip(_))) {
            by_gossip += 1;
        }
        // Flood publishing sends to every direct peer of the publisher: they get it by
        // gossip (first from whichever copy their swarm handled first).
        if i.abs_diff(publisher) <= 2 {
            assert!(
                matches!(got, Some(caucus_net::Origin::Gossip(_))),
                "node {i}, a direct peer of the publisher, got it by {got:?}"
            );
        }
    }
    eprintln!(
        "reached {} nodes ({by_gossip} by gossip) in {:?}",
        N - 1,
        started.elapsed()
    );
    for n in nodes {
        drain(n.events);
    }
}
