//! Two nodes with no direct route exchange entries through a relay circuit; a node given
//! a relay reserves a circuit on it by itself.
#![allow(clippy::unwrap_used)]

mod common;

use caucus_net::{NetEvent, RelayLimits};
use caucus_proto::EntryId;
use common::{Fixture, config, drain, node, relay_node, wait_event};
use libp2p::multiaddr::Protocol;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_cross_a_relay_circuit() {
    let mut fx = Fixture::new(11);
    // The relay: a member-less swarm that only relays (it joins no group).
    let relay_fx = Fixture::new(12);
    let relay = relay_node(&relay_fx, RelayLimits::default()).await;
    let relay_addr = relay.addr.clone().unwrap();

    // A and B listen on nothing but the relay: no direct address exists for either.
    let mut hidden = config();
    hidden.listen = Vec::new();
    let mut a = node(&fx, hidden.clone()).await;
    let mut b = node(&fx, hidden).await;
    let circuit = relay_addr.clone().with(Protocol::P2pCircuit);
    a.net.listen(circuit.clone()).await.unwrap();
    let reserved = wait_event(&mut a.events, Duration::from_secs(20), |e| {
        matches!(e, NetEvent::RelayReservation { .. }).then_some(())
    })
    .await;
    assert!(reserved.is_some(), "no reservation at the relay");

    let e1 = fx.entry();
    let id1 = EntryId::of_encoded(&e1);
    a.backend.insert_local(&fx.group, [e1]);
    b.net.dial(circuit.with(Protocol::P2p(a.id))).await.unwrap();
    let via = wait_event(&mut b.events, Duration::from_secs(20), |e| match e {
        NetEvent::PeerConnected {
            peer,
            relayed,
            address,
        } if *peer == a.id => Some((*relayed, address.clone())),
        _ => None,
    })
    .await
    .unwrap();
    assert!(via.0, "B reached A directly: {}", via.1);
    // Sync over the circuit brings A's entry to B.
    assert!(
        b.backend
            .wait_until(&fx.group, Duration::from_secs(20), |ids| ids.contains(&id1))
            .await
    );
    // Live gossip over the circuit brings B's entry to A.
    let joined = wait_event(&mut b.events, Duration::from_secs(20), |e| {
        matches!(e, NetEvent::GroupPeer { peer, .. } if *peer == a.id).then_some(())
    });
    let _ = joined.await;
    let e2 = fx.entry();
    let id2 = EntryId::of_encoded(&e2);
    b.backend.insert_local(&fx.group, [e2.clone()]);
    b.net.publish(fx.group, e2).await.unwrap();
    assert!(
        a.backend
            .wait_until(&fx.group, Duration::from_secs(20), |ids| ids.contains(&id2))
            .await
    );
    // Every connection between A and B was relayed.
    let direct = wait_event(&mut a.events, Duration::from_millis(1), |e| match e {
        NetEvent::PeerConnected {
            peer,
            relayed: false,
            ..
        } if *peer == b.id => Some(()),
        _ => None,
    })
    .await;
    assert!(direct.is_none(), "A got a direct connection from B");
    drain(relay.events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_given_a_relay_reserves_a_circuit_by_itself() {
    let fx = Fixture::new(13);
    let relay_fx = Fixture::new(14);
    let relay = relay_node(&relay_fx, RelayLimits::default()).await;
    let relay_addr = relay.addr.clone().unwrap();

    // A listens on nothing and is only told where the relay is, as `caucus run --peer`.
    let mut hidden = config();
    hidden.listen = Vec::new();
    hidden.bootstrap = vec![relay_addr.clone()];
    let mut a = node(&fx, hidden).await;
    let reserved = wait_event(&mut a.events, Duration::from_secs(20), |e| match e {
        NetEvent::RelayReservation { relay: r } => Some(*r),
        _ => None,
    })
    .await;
    assert_eq!(reserved, Some(relay.id), "A never reserved a circuit");

    // And B reaches A through it.
    let mut b = node(&fx, config()).await;
    let circuit = relay_addr
        .with(Protocol::P2pCircuit)
        .with(Protocol::P2p(a.id));
    b.net.dial(circuit).await.unwrap();
    let relayed = wait_event(&mut b.events, Duration::from_secs(20), |e| match e {
        NetEvent::PeerConnected { peer, relayed, .. } if *peer == a.id => Some(*relayed),
        _ => None,
    })
    .await;
    assert_eq!(relayed, Some(true), "B did not reach A through the relay");
    drain(relay.events);
}
