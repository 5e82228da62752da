//! Abuse of an office relay: a flood of reservations, a circuit that would carry bytes
//! without end or stay open forever, garbage on the port, and a sync for a group the
//! relay does not serve. Each is refused by the relay's limits or cut off, and an honest
//! member is served afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use caucus_net::{NetEvent, RelayLimits};
use caucus_proto::{EntryId, GroupId};
use common::{Fixture, config, node, wait_event};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, relay};
use std::time::Duration;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(30);
const BLAST: StreamProtocol = StreamProtocol::new("/test/blast/1");

#[derive(libp2p::swarm::NetworkBehaviour)]
struct Client {
    relay: relay::client::Behaviour,
    stream: libp2p_stream::Behaviour,
}

/// A bare libp2p peer: TCP, Noise, Yamux, a relay client and raw streams.
fn client() -> Swarm<Client> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .unwrap()
        .with_relay_client(libp2p::noise::Config::new, libp2p::yamux::Config::default)
        .unwrap()
        .with_behaviour(|_, relay| Client {
            relay,
            stream: libp2p_stream::Behaviour::new(),
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build()
}

/// Whether a reservation asked of the relay was accepted (`true`) or refused.
async fn ask_reservation(mut swarm: Swarm<Client>, relay: Multiaddr, told: mpsc::Sender<bool>) {
    swarm.listen_on(relay.with(Protocol::P2pCircuit)).unwrap();
    let mut told_once = false;
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::Behaviour(ClientEvent::Relay(
                relay::client::Event::ReservationReqAccepted { .. },
            )) if !told_once => {
                told_once = true;
                let _ = told.send(true).await;
            }
            SwarmEvent::ListenerClosed { .. } if !told_once => {
                told_once = true;
                let _ = told.send(false).await;
            }
            _ => {}
        }
    }
}

/// Counts relay events of one kind until `n` are seen (bounded).
async fn limited(rx: &mut mpsc::Receiver<NetEvent>, what: &str, n: usize) -> usize {
    let mut seen = 0;
    while seen < n {
        let got = wait_event(rx, WAIT, |e| match e {
            NetEvent::RelayLimited { what: w, .. } if *w == what => Some(()),
            _ => None,
        })
        .await;
        if got.is_none() {
            break;
        }
        seen += 1;
    }
    seen
}

/// A relay node (relay server on, serving `fx`'s group like the office relay's blind
/// store) with one entry, and its address.
async fn relay_with_entry(
    fx: &mut Fixture,
    limits: RelayLimits,
) -> (common::Node, Multiaddr, EntryId) {
    let relay = common::relay_node(fx, limits).await;
    let addr = relay.addr.clone().unwrap();
    let e = fx.entry();
    let id = EntryId::of_encoded(&e);
    relay.backend.insert_local(&fx.group, [e]);
    (relay, addr, id)
}

/// An honest member dials the relay and gets its entry by sync.
async fn honest_member_is_served(fx: &Fixture, relay: &Multiaddr, id: EntryId) {
    let mut cfg = config();
    cfg.bootstrap = vec![relay.clone()];
    let m = node(fx, cfg).await;
    assert!(
        m.backend
            .wait_until(&fx.group, WAIT, |ids| ids.contains(&id))
            .await,
        "an honest member was not served after the abuse"
    );
    common::drain(m.events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_flood_is_refused_and_members_are_still_served() {
    const SLOTS: usize = 4;
    const FLOOD: usize = 24;
    let mut fx = Fixture::new(31);
    let limits = RelayLimits {
        max_reservations: SLOTS,
        ..RelayLimits::default()
    };
    let (mut relay, addr, id) = relay_with_entry(&mut fx, limits).await;

    let (tx, mut rx) = mpsc::channel(FLOOD);
    let tasks: Vec<_> = (0..FLOOD)
        .map(|_| tokio::spawn(ask_reservation(client(), addr.clone(), tx.clone())))
        .collect();
    let mut accepted = 0;
    for _ in 0..FLOOD {
        let ok = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("a reservation request got no answer")
            .unwrap();
        accepted += usize::from(ok);
    }
    assert_eq!(
        accepted, SLOTS,
        "the relay held more reservations than its limit"
    );
    let refused = limited(&mut relay.events, "reservation refused", FLOOD - SLOTS).await;
    assert_eq!(refused, FLOOD - SLOTS, "refusals not reported");

    honest_member_is_served(&fx, &addr, id).await;
    for t in tasks {
        t.abort();
    }
    common::drain(relay.events);
}

/// `dst` holds a reservation on the relay; `src` reaches it through a circuit and opens a
/// raw stream. Returns both swarms' controls and the stream's two ends.
async fn circuit_pair(
    relay: &Multiaddr,
) -> (
    libp2p::Stream,
    libp2p::Stream,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let mut dst = client();
    let dst_id = *dst.local_peer_id();
    let mut dst_control = dst.behaviour().stream.new_control();
    let mut incoming = dst_control.accept(BLAST).unwrap();
    dst.listen_on(relay.clone().with(Protocol::P2pCircuit))
        .unwrap();
    let (ready_tx, mut ready) = mpsc::channel(1);
    let dst_task = tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(ClientEvent::Relay(
                relay::client::Event::ReservationReqAccepted { .. },
            )) = dst.select_next_some().await
            {
                let _ = ready_tx.try_send(());
            }
        }
    });
    tokio::time::timeout(WAIT, ready.recv())
        .await
        .expect("no reservation for the circuit's far end");

    let mut src = client();
    let mut src_control = src.behaviour().stream.new_control();
    src.dial(
        relay
            .clone()
            .with(Protocol::P2pCircuit)
            .with(Protocol::P2p(dst_id)),
    )
    .unwrap();
    let src_task = tokio::spawn(async move {
        loop {
            let _ = src.select_next_some().await;
        }
    });
    let out = tokio::time::timeout(WAIT, src_control.open_stream(dst_id, BLAST))
        .await
        .expect("no stream over the circuit")
        .unwrap();
    let (_, inn) = tokio::time::timeout(WAIT, incoming.next())
        .await
        .expect("the far end got no stream")
        .unwrap();
    (out, inn, vec![dst_task, src_task])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_circuit_is_cut_at_its_byte_and_time_limits() {
    const BYTES: u64 = 256 * 1024;
    let mut fx = Fixture::new(32);
    let limits = RelayLimits {
        max_circuit_bytes: BYTES,
        max_circuit_duration: Duration::from_secs(3),
        ..RelayLimits::default()
    };
    let (mut relay, addr, id) = relay_with_entry(&mut fx, limits).await;

    // 1. Bytes without end: the far end gets no more than the limit (plus what was in
    //    flight in one buffer), and the relay reports the cut.
    let (mut out, mut inn, tasks) = circuit_pair(&addr).await;
    let writer = tokio::spawn(async move {
        let chunk = vec![0x5a; 16 * 1024];
        let mut sent: u64 = 0;
        while out.write_all(&chunk).await.is_ok() {
            sent += chunk.len() as u64;
            if sent > 64 * BYTES {
                break;
            }
        }
        sent
    });
    let mut got: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let read = tokio::time::timeout(WAIT, async {
        loop {
            match inn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got += n as u64,
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the circuit was never cut");
    assert!(
        got <= 2 * BYTES,
        "{got} bytes crossed a {BYTES}-byte circuit"
    );
    assert!(got >= BYTES / 2, "only {got} bytes crossed before the cut");
    println!("circuit cut after {got} bytes (limit {BYTES})");
    let sent = tokio::time::timeout(WAIT, writer).await.unwrap().unwrap();
    assert!(sent < 64 * BYTES, "the writer was never stopped");
    assert_eq!(limited(&mut relay.events, "circuit cut", 1).await, 1);
    for t in tasks {
        t.abort();
    }

    // 2. A circuit held open and idle: cut at the duration limit.
    // Timed from before the circuit exists, so the bound below holds on a slow machine.
    let started = std::time::Instant::now();
    let (_out, mut inn, tasks) = circuit_pair(&addr).await;
    let mut one = [0u8; 1];
    let r = tokio::time::timeout(WAIT, inn.read(&mut one)).await;
    assert!(
        matches!(r, Ok(Ok(0)) | Ok(Err(_))),
        "an idle circuit was not cut: {r:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(2_900),
        "cut before its time limit"
    );
    println!("idle circuit cut after {:?} (limit 3 s)", started.elapsed());
    assert_eq!(limited(&mut relay.events, "circuit cut", 1).await, 1);
    for t in tasks {
        t.abort();
    }

    honest_member_is_served(&fx, &addr, id).await;
    common::drain(relay.events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_an_unknown_group_get_nothing_from_the_relay() {
    let mut fx = Fixture::new(33);
    let (relay, addr, id) = relay_with_entry(&mut fx, RelayLimits::default()).await;

    // 1. Garbage on the TCP port: the connection is closed.
    let port = common::tcp_port(&addr);
    for round in 0..8u32 {
        assert!(
            common::garbage_is_cut_off(port, 16 * 1024, round, WAIT).await,
            "garbage connection {round} left open"
        );
    }

    // 2. A well-formed sync hello for a group the relay does not serve: the stream is
    //    closed and nothing comes back (not even which groups it does serve).
    let mut peer = client();
    let mut control = peer.behaviour().stream.new_control();
    let relay_id: PeerId = relay.id;
    peer.dial(addr.clone()).unwrap();
    let task = tokio::spawn(async move {
        loop {
            let _ = peer.select_next_some().await;
        }
    });
    let mut stream = tokio::time::timeout(
        WAIT,
        control.open_stream(relay_id, caucus_net::sync::SYNC_PROTOCOL),
    )
    .await
    .unwrap()
    .unwrap();
    let hello = caucus_sync::Message::Hello(caucus_sync::message::Hello {
        version: caucus_sync::message::PROTOCOL_VERSION,
        group: GroupId([0xee; 16]),
        proof: vec![0; 96],
    })
    .encode()
    .unwrap();
    let mut frame = (hello.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&hello);
    stream.write_all(&frame).await.unwrap();
    stream.flush().await.unwrap();
    let mut back = Vec::new();
    let r = tokio::time::timeout(WAIT, stream.read_to_end(&mut back)).await;
    assert!(
        r.is_ok(),
        "the relay kept a stream for an unknown group open"
    );
    assert!(
        back.is_empty(),
        "the relay answered a hello for an unknown group"
    );
    task.abort();

    honest_member_is_served(&fx, &addr, id).await;
    common::drain(relay.events);
}
