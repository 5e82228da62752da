//! Real nodes on loopback (each its own SQLCipher home and libp2p swarm, in this
//! process): an urgent notice reaches twenty members, nineteen receipts come back to
//! the sender, and each node stores and opens two entries for it, not one per member; a join and a device link run over `/caucus/handshake/1`; a removed member's
//! node never opens what is written after the removal. Waits are on node events or on
//! state, with bounds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use caucus_net::Multiaddr;
use caucus_node::{NodeEvent, Running, link_new_device, now_ms};
use caucus_proto::{ContactField, ContactId, GroupId, NoticeContent, NoticeId, Operation};
use common::{PASS, WAIT, config, kdf, start, until};
use std::path::Path;

/// Founder plus `n - 1` members who joined with invites answered by the founder.
async fn committee(dir: &Path, n: usize) -> (GroupId, Vec<Running>, Vec<Multiaddr>) {
    let (founder, addrs) = start(&dir.join("m0"), "member 0", &[]).await;
    let g = founder.create_group("committee").await.unwrap();
    let mut nodes = vec![founder];
    for i in 1..n {
        let texts: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        let ticket = nodes[0]
            .with_node(|node| node.create_invite(&g, texts, now_ms() + 600_000))
            .unwrap();
        let (r, _) = start(&dir.join(format!("m{i}")), &format!("member {i}"), &addrs).await;
        assert_eq!(r.join(&ticket, &[]).await.unwrap(), g);
        nodes.push(r);
    }
    (g, nodes, addrs)
}

fn members(r: &Running, g: &GroupId) -> usize {
    r.with_node(|n| n.state(g).unwrap().current_members().count())
}

/// What a node has stored and opened so far, all groups.
fn costs(r: &Running, g: &GroupId) -> (u64, u64) {
    r.with_node(|n| (n.entry_count(g).unwrap(), n.opened_count()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_urgent_notice_reaches_twenty_and_costs_each_of_them_two_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (g, nodes, _) = committee(dir.path(), 20).await;
    until("every node to know all 20 members", || {
        nodes.iter().all(|r| members(r, &g) == 20)
    })
    .await;
    let settled = nodes[0].with_node(|n| n.entry_count(&g).unwrap());
    until("every node to hold every entry", || {
        nodes
            .iter()
            .all(|r| r.with_node(|n| n.entry_count(&g).unwrap()) == settled)
    })
    .await;
    let before: Vec<(u64, u64)> = nodes.iter().map(|r| costs(r, &g)).collect();
    let mut rx = nodes[0].subscribe();
    let notice = NoticeId([7; 16]);
    nodes[0]
        .write(
            &g,
            Operation::NoticePosted {
                notice,
                content: NoticeContent {
                    title: "walkout vote".into(),
                    starts_at_ms: now_ms() + 3_600_000,
                    place: "hall".into(),
                    body: String::new(),
                    urgent: true,
                    expires_at_ms: None,
                },
            },
        )
        .await
        .unwrap();
    // The sender counts receipts as they come back: 20 of 20, itself included.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(NodeEvent::AckReceived {
                notice: n,
                acked,
                total,
                ..
            })) if n == notice => {
                assert_eq!(total, 20);
                if acked == 20 {
                    break;
                }
            }
            Ok(Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            other => panic!("not every receipt came back: {other:?}"),
        }
    }
    // Then it records them in one entry, which every node folds.
    until("every node to hold the delivery record", || {
        nodes.iter().all(|r| {
            r.with_node(|n| n.state(&g).unwrap().notice(&notice).map(|x| x.acks.len())) == Some(20)
        })
    })
    .await;
    for r in &nodes {
        let d = r.with_node(|n| n.delivery(&g, &notice).unwrap());
        assert_eq!((d.acked, d.total), (20, 20));
    }
    // What one urgent notice cost each node: the notice and the delivery record,
    // stored and opened once each. Acknowledgement entries would make it one per member.
    for (i, (r, (stored, opened))) in nodes.iter().zip(&before).enumerate() {
        let (stored_now, opened_now) = costs(r, &g);
        assert_eq!(
            (stored_now - stored, opened_now - opened),
            (2, 2),
            "node {i} stored and opened more than the notice and its delivery record"
        );
    }
    for r in nodes {
        r.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_phone_reads_history_and_a_removed_member_reads_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    let (g, mut nodes, addrs) = committee(dir.path(), 3).await;
    // The founder links a phone; it gets the history by sync.
    let (code, linked) = nodes[0].host_link().unwrap();
    let phone = link_new_device(
        &dir.path().join("phone"),
        PASS,
        kdf(),
        &code,
        "phone",
        &addrs,
        caucus_net::Config::loopback(),
    )
    .await
    .unwrap();
    let phone = Running::start(phone, config(&addrs)).await.unwrap();
    tokio::time::timeout(WAIT, linked).await.unwrap().unwrap();
    let target = nodes[0].with_node(|n| n.state(&g).unwrap().state_hash());
    until("the phone to hold the history", || {
        phone.with_node(|n| n.state(&g).unwrap().state_hash()) == target
    })
    .await;
    assert_eq!(
        phone.with_node(|n| n.identity()),
        nodes[0].with_node(|n| n.identity())
    );
    // A wrong pairing code is refused and makes no home.
    let (_other_code, _) = nodes[0].host_link().unwrap();
    let wrong = caucus_crypto::link::PairingCode::generate(&mut rand::rng());
    let err = link_new_device(
        &dir.path().join("intruder"),
        PASS,
        kdf(),
        &wrong,
        "intruder",
        &addrs,
        caucus_net::Config::loopback(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("refused"), "{err}");
    assert!(!dir.path().join("intruder").join("keys.wrapped").exists());

    // The founder removes member 2; what is written after never opens there.
    let removed = nodes.pop().unwrap();
    let who = removed.with_node(|n| n.identity());
    nodes[0].with_node(|n| n.remove_member(&g, who)).unwrap();
    let contact = ContactId([9; 16]);
    let after = nodes[0]
        .write(
            &g,
            Operation::ContactSet {
                contact,
                fields: vec![ContactField::Name("after removal".into())],
            },
        )
        .await
        .unwrap();
    until("member 1 and the phone to read the new entry", || {
        [&nodes[1], &phone]
            .iter()
            .all(|r| r.with_node(|n| n.state(&g).unwrap().contains(&after)))
    })
    .await;
    until("the removed member to see its removal", || {
        removed.with_node(|n| !n.state(&g).unwrap().is_member(&who))
    })
    .await;
    assert!(!removed.with_node(|n| n.state(&g).unwrap().contains(&after)));
    assert!(removed.with_node(|n| n.state(&g).unwrap().contact(&contact).is_none()));
    // An invite is one-time: the second use is refused.
    let texts: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    let ticket = nodes[0]
        .with_node(|n| n.create_invite(&g, texts, now_ms() + 600_000))
        .unwrap();
    let (first, _) = start(&dir.path().join("first"), "first", &addrs).await;
    first.join(&ticket, &[]).await.unwrap();
    let (second, _) = start(&dir.path().join("second"), "second", &addrs).await;
    let err = second.join(&ticket, &[]).await.unwrap_err();
    assert!(err.to_string().contains("already used"), "{err}");
    assert!(second.with_node(|n| n.group_ids().is_empty()));
    first.shutdown().await.unwrap();
    second.shutdown().await.unwrap();
    phone.shutdown().await.unwrap();
    removed.shutdown().await.unwrap();
    for r in nodes {
        r.shutdown().await.unwrap();
    }
}
