//! Shared fixtures: a group with real epoch keys, nodes on loopback, bounded waits.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    dead_code,
    unreachable_pub,
    missing_docs
)]

use caucus_crypto::{DeviceKeys, EpochKeys, EpochSecret, seal_event};
use caucus_net::{Config, GroupKeys, MemoryBackend, NetEvent, Network, RelayLimits};
use caucus_proto::{Chain, EventId, FollowupId, GroupId, Hlc, Operation};
use libp2p::identity::ed25519;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// A group as its members see it: epoch keys, a device, and the session key stand-in.
pub struct Fixture {
    pub group: GroupId,
    pub keys: EpochKeys,
    pub device: DeviceKeys,
    pub session: ed25519::Keypair,
    pub rng: ChaCha20Rng,
    pub clock: u64,
    /// The device's last entry: its place in the chain and event id.
    pub last: Option<(u64, EventId)>,
}

impl Fixture {
    pub fn new(seed: u64) -> Fixture {
        Fixture::with_group(seed, GroupId([seed as u8; 16]))
    }

    /// Same group id, keys from `seed`: with another seed, a non-member of the same group id.
    pub fn with_group(seed: u64, group: GroupId) -> Fixture {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let keys = EpochKeys::derive(group, 0, EpochSecret::generate(&mut rng));
        let device = DeviceKeys::generate_unlinked(&mut rng);
        let mut seed_bytes = [0u8; 32];
        rng.fill_bytes(&mut seed_bytes);
        let session =
            ed25519::Keypair::from(ed25519::SecretKey::try_from_bytes(seed_bytes).unwrap());
        Fixture {
            group,
            keys,
            device,
            session,
            rng,
            clock: 1,
            last: None,
        }
    }

    pub fn group_keys(&self) -> GroupKeys {
        GroupKeys {
            tokens: vec![self.keys.relay_token()],
            session_key: self.session.clone(),
        }
    }

    /// The group topic: the one crypto derives from the group secret, in hex.
    pub fn topic(&self) -> String {
        self.keys
            .topic()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// A fresh, validly sealed entry of the group, encoded.
    pub fn entry(&mut self) -> Vec<u8> {
        self.clock += 1;
        let mut f = [0u8; 16];
        self.rng.fill_bytes(&mut f);
        let chain = match self.last {
            Some((seq, prev)) => Chain {
                seq: seq + 1,
                prev: Some(prev),
                heads: Vec::new(),
            },
            None => Chain::first(Vec::new()),
        };
        let seq = chain.seq;
        let (env, event) = seal_event(
            &self.group,
            &self.keys,
            &self.device,
            chain,
            Hlc {
                wall_ms: self.clock,
                counter: 0,
            },
            Operation::FollowupDone {
                followup: FollowupId(f),
                done: true,
            },
            &mut self.rng,
        )
        .unwrap();
        self.last = Some((seq, event));
        env.encode().unwrap()
    }
}

pub struct Node {
    pub net: Network,
    pub backend: Arc<MemoryBackend>,
    pub events: mpsc::Receiver<NetEvent>,
    pub id: PeerId,
    /// The first listen address, with `/p2p/<id>`.
    pub addr: Option<Multiaddr>,
}

/// Waits for an event matching `pred`, at most `timeout`.
pub async fn wait_event<T>(
    rx: &mut mpsc::Receiver<NetEvent>,
    timeout: Duration,
    mut pred: impl FnMut(&NetEvent) -> Option<T>,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(ev)) => {
                if let Some(t) = pred(&ev) {
                    return Some(t);
                }
            }
            _ => return None,
        }
    }
}

/// Logs to stderr when `RUST_LOG` is set.
pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Spawns a node with `config`, a backend holding `fx`'s group, joined to the topic.
pub async fn node(fx: &Fixture, config: Config) -> Node {
    logs();
    let backend = MemoryBackend::new();
    backend.add_group(fx.group, fx.group_keys());
    let listens = !config.listen.is_empty();
    let (net, mut events) = Network::spawn(config, backend.clone()).unwrap();
    let id = net.local_peer_id();
    let addr = if listens {
        let a = wait_event(&mut events, Duration::from_secs(10), |e| match e {
            NetEvent::Listening { address } => Some(address.clone()),
            _ => None,
        })
        .await
        .expect("listening");
        Some(a.with(Protocol::P2p(id)))
    } else {
        None
    };
    net.join(fx.group, fx.topic()).await.unwrap();
    Node {
        net,
        backend,
        events,
        id,
        addr,
    }
}

/// Test config: loopback TCP, no mDNS, quick heartbeat.
pub fn config() -> Config {
    Config {
        gossip_heartbeat: Duration::from_millis(300),
        ..Config::loopback()
    }
}

/// Drains events in the background so queues never fill (keeps them for nobody).
pub fn drain(mut rx: mpsc::Receiver<NetEvent>) {
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
}

/// A node that is also a circuit relay v2 server with `limits`, holding `fx`'s group,
/// and announcing its listen address as external (reservations hand it out).
pub async fn relay_node(fx: &Fixture, limits: RelayLimits) -> Node {
    let mut cfg = config();
    cfg.relay_server = Some(limits);
    let relay = node(fx, cfg).await;
    let addr = relay.addr.clone().expect("relay listening");
    relay.net.add_external_address(addr).await.unwrap();
    relay
}

/// The TCP port of a `/ip4/…/tcp/<port>/…` address.
pub fn tcp_port(addr: &Multiaddr) -> u16 {
    addr.iter()
        .find_map(|p| match p {
            Protocol::Tcp(p) => Some(p),
            _ => None,
        })
        .expect("a TCP address")
}

/// Sends `len` bytes of garbage (varied by `seed`) on a raw TCP connection to `port`;
/// whether the node closed the connection within `timeout`.
pub async fn garbage_is_cut_off(port: u16, len: u32, seed: u32, timeout: Duration) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let garbage: Vec<u8> = (0..len)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let _ = raw.write_all(&garbage).await;
    let mut buf = [0u8; 4096];
    tokio::time::timeout(timeout, async {
        loop {
            match raw.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}
