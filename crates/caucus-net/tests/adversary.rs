//! Hostile peers: non-members, garbage, oversized frames, invalid gossip floods. In each
//! test an honest peer keeps being served.
#![allow(clippy::unwrap_used)]

mod common;

use caucus_net::{NetEvent, sync::SYNC_PROTOCOL};
use caucus_proto::EntryId;
use common::{Fixture, config, drain, node, wait_event};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux};
use std::time::Duration;

/// A non-member (same group id, other keys) can neither reconcile nor fetch, and its
/// gossip is rejected, scored down and finally cut off, while a member is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_member_cannot_sync_and_its_gossip_is_rejected() {
    let mut fx = Fixture::new(7);
    let mut outsider_fx = Fixture::with_group(8, fx.group);
    let mut cfg = config();
    cfg.max_invalid_gossip = 4;
    let mut a = node(&fx, cfg).await;
    let mut b = node(&fx, config()).await;
    // The outsider knows the group id and (leaked) topic name, not the keys.
    let m = {
        let backend = caucus_net::MemoryBackend::new();
        backend.add_group(fx.group, outsider_fx.group_keys());
        let (net, mut events) = caucus_net::Network::spawn(config(), backend.clone()).unwrap();
        wait_event(&mut events, Duration::from_secs(10), |e| {
            matches!(e, NetEvent::Listening { .. }).then_some(())
        })
        .await
        .unwrap();
        net.join(fx.group, fx.topic()).await.unwrap();
        let id = net.local_peer_id();
        common::Node {
            net,
            backend,
            events,
            id,
            addr: None,
        }
    };
    let secret = fx.entry();
    a.backend.insert_local(&fx.group, [secret]);
    let mine = outsider_fx.entry();
    m.backend.insert_local(&fx.group, [mine.clone()]);

    m.net.dial(a.addr.clone().unwrap()).await.unwrap();
    let failed = wait_event(&mut a.events, Duration::from_secs(20), |e| match e {
        NetEvent::SyncFailed { peer, reason, .. } if *peer == m.id => Some(reason.clone()),
        NetEvent::SyncFinished { peer, .. } if *peer == m.id => panic!("outsider synced"),
        _ => None,
    })
    .await;
    assert!(failed.is_some(), "no failed sync with the outsider");
    assert_eq!(
        m.backend.ids(&fx.group).len(),
        1,
        "outsider fetched something"
    );
    assert_eq!(
        a.backend.ids(&fx.group).len(),
        1,
        "member stored outsider entries"
    );

    // Its gossip: rejected, score drops, then it is cut off.
    m.net.publish(fx.group, mine).await.unwrap();
    let rejected = wait_event(&mut a.events, Duration::from_secs(10), |e| match e {
        NetEvent::GossipRejected { peer, .. } if *peer == m.id => Some(()),
        _ => None,
    })
    .await;
    assert!(rejected.is_some());
    let score = a.net.peer_score(m.id).await.unwrap().unwrap();
    assert!(score < 0.0, "outsider score {score}");
    for _ in 0..8 {
        let e = outsider_fx.entry();
        let _ = m.net.publish(fx.group, e).await;
    }
    let cut = wait_event(&mut a.events, Duration::from_secs(10), |e| match e {
        NetEvent::PeerPenalized { peer, .. } if *peer == m.id => Some(()),
        _ => None,
    })
    .await;
    assert!(cut.is_some(), "outsider not cut off");
    assert_eq!(a.backend.ids(&fx.group).len(), 1);

    // The member is still served.
    b.net.dial(a.addr.clone().unwrap()).await.unwrap();
    let synced = wait_event(&mut b.events, Duration::from_secs(20), |e| {
        matches!(e, NetEvent::SyncFinished { .. }).then_some(())
    })
    .await;
    assert!(synced.is_some());
    assert_eq!(b.backend.ids(&fx.group), a.backend.ids(&fx.group));
    drain(m.events);
}

/// Garbage on the listening port and an oversized sync frame cost only that connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_frames_cost_only_that_connection() {
    let mut fx = Fixture::new(9);
    let mut a = node(&fx, config()).await;
    let mut b = node(&fx, config()).await;

    // 1. Raw garbage on the TCP port: the connection is closed.
    let addr = a.addr.clone().unwrap();
    assert!(
        common::garbage_is_cut_off(
            common::tcp_port(&addr),
            64 * 1024,
            0,
            Duration::from_secs(20)
        )
        .await,
        "garbage connection left open"
    );

    // 2. A libp2p peer opening /caucus/sync/1 and announcing a 4 GiB frame.
    let mut attacker = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| libp2p_stream::Behaviour::new())
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
        .build();
    let attacker_id = *attacker.local_peer_id();
    let mut control = attacker.behaviour().new_control();
    attacker.dial(addr.clone()).unwrap();
    let swarm_task = tokio::spawn(async move {
        loop {
            if let SwarmEvent::ConnectionClosed { .. } = attacker.select_next_some().await {}
        }
    });
    let mut stream = tokio::time::timeout(
        Duration::from_secs(10),
        control.open_stream(a.id, SYNC_PROTOCOL),
    )
    .await
    .unwrap()
    .unwrap();
    stream.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    let mut one = [0u8; 1];
    let r = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut one)).await;
    assert!(
        matches!(r, Ok(Ok(0)) | Ok(Err(_))),
        "oversized frame not refused: {r:?}"
    );
    let penalized = wait_event(&mut a.events, Duration::from_secs(10), |e| match e {
        NetEvent::PeerPenalized { peer, .. } if *peer == attacker_id => Some(()),
        _ => None,
    })
    .await;
    assert!(penalized.is_some(), "oversized frame not penalized");
    swarm_task.abort();

    // 3. The honest peer is served: sync, then live gossip.
    let e1 = fx.entry();
    a.backend.insert_local(&fx.group, [e1]);
    b.net.dial(addr).await.unwrap();
    let joined = wait_event(&mut b.events, Duration::from_secs(20), |e| {
        matches!(e, NetEvent::GroupPeer { .. }).then_some(())
    })
    .await;
    assert!(joined.is_some());
    let synced = wait_event(&mut b.events, Duration::from_secs(20), |e| {
        matches!(e, NetEvent::SyncFinished { .. }).then_some(())
    })
    .await;
    assert!(synced.is_some());
    let e2 = fx.entry();
    let id2 = EntryId::of_encoded(&e2);
    b.backend.insert_local(&fx.group, [e2.clone()]);
    b.net.publish(fx.group, e2).await.unwrap();
    assert!(
        a.backend
            .wait_until(&fx.group, Duration::from_secs(10), |ids| ids.contains(&id2))
            .await
    );
    assert_eq!(a.backend.ids(&fx.group), b.backend.ids(&fx.group));
}
