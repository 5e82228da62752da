//! The swarm, its task, and the [`Network`] handle.
//!
//! One tokio task owns the swarm. It selects over swarm events, commands from the
//! handle, misbehaviour reports from sync tasks, and a one-second housekeeping tick
//! (expiring temporary bans). Inbound sync streams are accepted on a second task; every
//! sync session runs on its own task (see [`crate::sync`]). Nothing on the swarm task
//! waits on the node: events are offered with `try_send` and dropped when the node
//! lags (counted in the log), since the backend holds what was stored.

use crate::backend::Backend;
use crate::gossip::{self, Verdict};
use crate::handshake;
use crate::receipts::{self, Outgoing, Route, Routes};
use crate::sync::{self, Slots, SyncCtx, SyncLimits, SyncNote};
use crate::{COMMAND_QUEUE, EVENT_QUEUE, NetEvent, Origin};
use caucus_proto::{EntryId, GroupId, SealedReceipt};
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, PeerScoreThresholds, TopicHash};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, Swarm, allow_block_list, connection_limits, dcutr, identify, mdns, noise,
    ping, relay, tcp, yamux,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Syncs waiting for a session slot, at most.
const MAX_SYNC_RETRIES: usize = 4096;

/// How long one request for a handshake stream may wait before it is made again.
const STREAM_ATTEMPT: Duration = Duration::from_secs(5);

/// Misbehaviour reports queued from sync tasks to the swarm task.
const MISBEHAVIOUR_QUEUE: usize = 256;

/// Receipt batches read from peers, queued for the swarm task.
const RECEIPT_QUEUE: usize = 256;

/// Gossiped entries waiting for the store worker. When full, a verified entry is not
/// forwarded and not stored (gossipsub is told to ignore it, not to penalize anyone):
/// catch-up sync fetches it later. A bound, not a burst of blocking tasks.
pub const STORE_QUEUE: usize = 1_024;

/// Most gossiped entries the store worker hands the backend in one call (one
/// transaction, one batch signature verification).
pub const STORE_BATCH: usize = 256;

/// Identify protocol version string: the same for every caucus node.
const IDENTIFY_PROTOCOL: &str = "/caucus/id/1";

/// Limits of the relay server, when this node acts as one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayLimits {
    /// Reservations held at once.
    pub max_reservations: usize,
    /// Reservations one peer holds at once.
    pub max_reservations_per_peer: usize,
    /// Circuits relayed at once.
    pub max_circuits: usize,
    /// Circuits one peer has open through the relay at once.
    pub max_circuits_per_peer: usize,
    /// Longest a circuit lives.
    pub max_circuit_duration: Duration,
    /// Most bytes relayed per circuit (each way).
    pub max_circuit_bytes: u64,
    /// Reservations accepted per source IP address per minute. Every phone at the union
    /// office may come from one NAT address, so this is well above libp2p's default (60);
    /// each peer is still held to one reservation per two minutes.
    pub reservations_per_ip_per_minute: u32,
}

impl Default for RelayLimits {
    fn default() -> Self {
        RelayLimits {
            max_reservations: 128,
            max_reservations_per_peer: 4,
            max_circuits: 64,
            max_circuits_per_peer: 4,
            max_circuit_duration: Duration::from_secs(600),
            max_circuit_bytes: 64 * 1024 * 1024,
            reservations_per_ip_per_minute: 1200,
        }
    }
}

/// Network settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Addresses to listen on (TCP and/or QUIC multiaddrs; port 0 for any).
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start (explicit peers, bootstrap addresses from invites).
    pub bootstrap: Vec<Multiaddr>,
    /// LAN discovery with mDNS: on by default; off on a hostile network.
    pub mdns: bool,
    /// How often mDNS queries the LAN.
    pub mdns_query_interval: Duration,
    /// Act as a relay v2 server with these limits.
    pub relay_server: Option<RelayLimits>,
    /// Established connections, all peers.
    pub max_connections: u32,
    /// Established connections to one peer.
    pub max_connections_per_peer: u32,
    /// Connections being set up, inbound.
    pub max_pending_incoming: u32,
    /// A connection with no protocol using it closes after this long.
    pub idle_timeout: Duration,
    /// Gossipsub heartbeat.
    pub gossip_heartbeat: Duration,
    /// Invalid gossip messages from one peer before it is disconnected and banned.
    pub max_invalid_gossip: u32,
    /// How long a misbehaving peer stays banned.
    pub ban_duration: Duration,
    /// Anti-entropy: every group is synced again with its peers this often (whole
    /// seconds), catching anything gossip missed.
    pub resync_interval: Duration,
    /// Sync sessions: concurrency and timeouts.
    pub sync: SyncLimits,
    /// The transport key; a fresh one when `None` (the default).
    pub keypair: Option<libp2p::identity::Keypair>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![
                "/ip4/0.0.0.0/tcp/0"
                    .parse()
                    .unwrap_or_else(|_| Multiaddr::empty()),
                "/ip4/0.0.0.0/udp/0/quic-v1"
                    .parse()
                    .unwrap_or_else(|_| Multiaddr::empty()),
            ],
            bootstrap: Vec::new(),
            mdns: true,
            mdns_query_interval: Duration::from_secs(60),
            relay_server: None,
            max_connections: 256,
            max_connections_per_peer: 4,
            max_pending_incoming: 64,
            idle_timeout: Duration::from_secs(120),
            gossip_heartbeat: Duration::from_secs(1),
            max_invalid_gossip: 8,
            ban_duration: Duration::from_secs(600),
            resync_interval: Duration::from_secs(60),
            sync: SyncLimits::default(),
            keypair: None,
        }
    }
}

impl Config {
    /// Settings for in-process tests: TCP on 127.0.0.1 only, mDNS off.
    pub fn loopback() -> Config {
        Config {
            listen: vec![
                "/ip4/127.0.0.1/tcp/0"
                    .parse()
                    .unwrap_or_else(|_| Multiaddr::empty()),
            ],
            mdns: false,
            ..Config::default()
        }
    }
}

/// Why a network operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// Building the swarm failed.
    #[error("could not build the swarm: {0}")]
    Build(String),
    /// The network task has stopped.
    #[error("the network task has stopped")]
    Stopped,
    /// Listening failed.
    #[error("could not listen: {0}")]
    Listen(String),
    /// Dialing failed at once.
    #[error("could not dial: {0}")]
    Dial(String),
    /// The group has not been joined.
    #[error("group not joined")]
    UnknownGroup,
    /// Publishing failed.
    #[error("could not publish: {0}")]
    Publish(String),
    /// Subscribing failed.
    #[error("could not subscribe: {0}")]
    Subscribe(String),
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    relay_client: relay::client::Behaviour,
    relay_server: Toggle<relay::Behaviour>,
    dcutr: dcutr::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    gossipsub: gossipsub::Behaviour,
    mdns: Toggle<mdns::tokio::Behaviour>,
    stream: libp2p_stream::Behaviour,
    limits: connection_limits::Behaviour,
    blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
}

enum Command {
    Listen(Multiaddr, oneshot::Sender<Result<(), NetError>>),
    Dial(Multiaddr, oneshot::Sender<Result<(), NetError>>),
    /// Answers once a connection to the peer is up (at once if one is).
    Connect(PeerId, Multiaddr, oneshot::Sender<Result<(), NetError>>),
    Join {
        group: GroupId,
        topic: String,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    Leave(GroupId),
    Publish {
        group: GroupId,
        envelope: Vec<u8>,
        reply: oneshot::Sender<Result<EntryId, NetError>>,
    },
    SyncWith(PeerId, GroupId),
    Disconnect(PeerId),
    Ban(PeerId),
    Unban(PeerId),
    AddExternal(Multiaddr),
    Listeners(oneshot::Sender<Vec<Multiaddr>>),
    Connected(oneshot::Sender<Vec<PeerId>>),
    Score(PeerId, oneshot::Sender<Option<f64>>),
    /// A receipt of this node's, sent back the way `entry` came; answers whether there
    /// was a way.
    Receipt {
        group: GroupId,
        entry: EntryId,
        receipt: SealedReceipt,
        reply: oneshot::Sender<bool>,
    },
    Shutdown,
}

/// A handle to the running network. Cheap to clone; the swarm task stops when
/// [`Network::shutdown`] is called or every handle is dropped.
#[derive(Clone)]
pub struct Network {
    local: PeerId,
    commands: mpsc::Sender<Command>,
    control: libp2p_stream::Control,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

/// Waits for a reply, mapping a dropped sender to [`NetError::Stopped`].
async fn reply<T>(rx: oneshot::Receiver<T>) -> Result<T, NetError> {
    rx.await.map_err(|_| NetError::Stopped)
}

impl Network {
    /// Builds the swarm, starts listening and dialing per `config`, and spawns the swarm
    /// task on the current tokio runtime. Returns the handle and the event stream.
    pub fn spawn(
        config: Config,
        backend: Arc<dyn Backend>,
    ) -> Result<(Network, mpsc::Receiver<NetEvent>), NetError> {
        let mut swarm = build_swarm(&config)?;
        let local = *swarm.local_peer_id();
        let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
        let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
        let (bad_tx, bad_rx) = mpsc::channel(MISBEHAVIOUR_QUEUE);
        for addr in &config.listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| NetError::Listen(format!("{addr}: {}", error_chain(&e))))?;
        }
        for addr in &config.bootstrap {
            if let Err(e) = swarm.dial(addr.clone()) {
                tracing::debug!("bootstrap dial failed: {e}");
            }
        }
        let mut control = swarm.behaviour().stream.new_control();
        let incoming = control
            .accept(sync::SYNC_PROTOCOL)
            .map_err(|e| NetError::Build(e.to_string()))?;
        let ctx = SyncCtx {
            local,
            backend: backend.clone(),
            events: ev_tx.clone(),
            limits: config.sync,
            notes: bad_tx,
        };
        let slots = Arc::new(Slots::default());
        tokio::spawn(accept_loop(incoming, ctx.clone(), slots.clone()));
        let handshakes = control
            .accept(handshake::HANDSHAKE_PROTOCOL)
            .map_err(|e| NetError::Build(e.to_string()))?;
        tokio::spawn(handshake::accept_loop(handshakes, backend.clone()));
        let receipt_streams = control
            .accept(receipts::RECEIPT_PROTOCOL)
            .map_err(|e| NetError::Build(e.to_string()))?;
        let (receipts_tx, receipts_rx) = mpsc::channel(RECEIPT_QUEUE);
        tokio::spawn(receipts::accept_loop(receipt_streams, receipts_tx));
        let (store_tx, store_rx) = mpsc::channel(STORE_QUEUE);
        {
            let backend = backend.clone();
            let events = ev_tx.clone();
            tokio::task::spawn_blocking(move || store_worker(store_rx, backend, events));
        }
        let handle_control = control.clone();
        let driver = Driver {
            swarm,
            backend,
            events: ev_tx,
            ctx,
            slots,
            control,
            topics: HashMap::new(),
            groups: HashMap::new(),
            invalid: HashMap::new(),
            bans: HashMap::new(),
            config,
            announced: false,
            dropped_events: 0,
            retry_syncs: std::collections::HashSet::new(),
            dialed: HashMap::new(),
            connecting: HashMap::new(),
            reserving: std::collections::HashSet::new(),
            circuit_listeners: HashMap::new(),
            store: store_tx,
            store_full: 0,
            routes: Routes::default(),
            outgoing: Outgoing::default(),
            flush_armed: false,
        };
        tokio::spawn(driver.run(cmd_rx, bad_rx, receipts_rx));
        Ok((
            Network {
                local,
                commands: cmd_tx,
                control: handle_control,
            },
            ev_rx,
        ))
    }

    /// This node's transport identity.
    pub fn local_peer_id(&self) -> PeerId {
        self.local
    }

    async fn send(&self, c: Command) -> Result<(), NetError> {
        self.commands.send(c).await.map_err(|_| NetError::Stopped)
    }

    /// Runs one join or link handshake with the node at `addr` (which must end in
    /// `/p2p/<peer id>`): dials it, sends `request`, returns its reply.
    pub async fn handshake(
        &self,
        addr: Multiaddr,
        kind: handshake::HandshakeKind,
        request: &[u8],
    ) -> Result<Vec<u8>, handshake::HandshakeError> {
        use handshake::HandshakeError;
        let Some(Protocol::P2p(peer)) = addr.iter().last() else {
            return Err(HandshakeError::Unreachable(
                "address does not end in /p2p/<peer id>".into(),
            ));
        };
        let deadline = Instant::now() + handshake::HANDSHAKE_TIMEOUT;
        if peer != self.local {
            // Wait for the connection before asking for a stream. libp2p-stream only
            // learns of a connection when the swarm reports it established, a moment
            // after the connection's handler exists; a stream asked for in between is
            // parked for a dial that the swarm then skips (the peer is connected), and
            // the request waits forever.
            let (tx, rx) = oneshot::channel();
            self.send(Command::Connect(peer, addr, tx))
                .await
                .map_err(|e| HandshakeError::Unreachable(e.to_string()))?;
            match tokio::time::timeout_at(deadline, rx).await {
                Err(_) => {
                    return Err(HandshakeError::Unreachable(format!(
                        "no connection within {:?}",
                        handshake::HANDSHAKE_TIMEOUT
                    )));
                }
                Ok(Err(_)) => return Err(HandshakeError::Unreachable("network stopped".into())),
                Ok(Ok(Err(e))) => return Err(HandshakeError::Unreachable(e.to_string())),
                Ok(Ok(Ok(()))) => {}
            }
        }
        let mut control = self.control.clone();
        // Asked again if the first request went to a connection that closed under it.
        let stream = loop {
            let attempt = Instant::now() + STREAM_ATTEMPT;
            match tokio::time::timeout_at(
                attempt.min(deadline),
                control.open_stream(peer, handshake::HANDSHAKE_PROTOCOL),
            )
            .await
            {
                Ok(Ok(stream)) => break stream,
                Ok(Err(e)) if Instant::now() + STREAM_ATTEMPT > deadline => {
                    return Err(HandshakeError::Unreachable(e.to_string()));
                }
                Err(_) if Instant::now() >= deadline => {
                    return Err(HandshakeError::Timeout(handshake::HANDSHAKE_TIMEOUT));
                }
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "handshake stream not opened, asking again: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(_) => tracing::debug!(%peer, "handshake stream not opened yet, asking again"),
            }
        };
        handshake::request(stream, kind, request).await
    }

    /// Listens on another address.
    pub async fn listen(&self, addr: Multiaddr) -> Result<(), NetError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Listen(addr, tx)).await?;
        reply(rx).await?
    }

    /// Dials an explicit peer address (with or without `/p2p/<id>`, or a relay circuit
    /// address `<relay>/p2p-circuit/p2p/<id>`).
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NetError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Dial(addr, tx)).await?;
        reply(rx).await?
    }

    /// Joins a group: subscribes to its topic (named by the caller; opaque here) and
    /// syncs it with every peer found on that topic.
    pub async fn join(&self, group: GroupId, topic: String) -> Result<(), NetError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Join {
            group,
            topic,
            reply: tx,
        })
        .await?;
        reply(rx).await?
    }

    /// Leaves a group's topics.
    pub async fn leave(&self, group: GroupId) -> Result<(), NetError> {
        self.send(Command::Leave(group)).await
    }

    /// Publishes an encoded envelope (already stored by the caller) on the group's topic,
    /// flooded to every connected member peer (see [`crate::gossip`]). Returns its id.
    pub async fn publish(&self, group: GroupId, envelope: Vec<u8>) -> Result<EntryId, NetError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Publish {
            group,
            envelope,
            reply: tx,
        })
        .await?;
        reply(rx).await?
    }

    /// Starts a sync session with `peer` for `group` now (normally automatic).
    pub async fn sync_with(&self, peer: PeerId, group: GroupId) -> Result<(), NetError> {
        self.send(Command::SyncWith(peer, group)).await
    }

    /// Closes every connection to `peer`.
    pub async fn disconnect(&self, peer: PeerId) -> Result<(), NetError> {
        self.send(Command::Disconnect(peer)).await
    }

    /// Refuses `peer` until [`Network::unban`] (and closes its connections).
    pub async fn ban(&self, peer: PeerId) -> Result<(), NetError> {
        self.send(Command::Ban(peer)).await
    }

    /// Lifts a ban.
    pub async fn unban(&self, peer: PeerId) -> Result<(), NetError> {
        self.send(Command::Unban(peer)).await
    }

    /// Declares an address at which this node is reachable (a relay server needs one to
    /// hand out reservations).
    pub async fn add_external_address(&self, addr: Multiaddr) -> Result<(), NetError> {
        self.send(Command::AddExternal(addr)).await
    }

    /// The addresses this node listens on now.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Listeners(tx)).await?;
        reply(rx).await
    }

    /// The peers connected now.
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, NetError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Connected(tx)).await?;
        reply(rx).await
    }

    /// `peer`'s gossipsub score, if it has one.
    pub async fn peer_score(&self, peer: PeerId) -> Result<Option<f64>, NetError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Score(peer, tx)).await?;
        reply(rx).await
    }

    /// Sends this node's receipt for `entry` back the way the entry came (see
    /// [`crate::receipts`]). `Ok(false)`: there is no way (the entry came by sync, or long
    /// ago); the caller falls back to something durable.
    pub async fn send_receipt(
        &self,
        group: GroupId,
        entry: EntryId,
        receipt: SealedReceipt,
    ) -> Result<bool, NetError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Receipt {
            group,
            entry,
            receipt,
            reply: tx,
        })
        .await?;
        reply(rx).await
    }

    /// Stops the swarm task (running sync sessions end when their connections close).
    pub async fn shutdown(&self) -> Result<(), NetError> {
        self.send(Command::Shutdown).await
    }
}

/// An error and its sources, as one line (libp2p's transport errors often say nothing
/// themselves and carry the I/O error as their source).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.retain(|p| !p.is_empty());
    parts.dedup();
    parts.join(": ")
}

fn build_swarm(config: &Config) -> Result<Swarm<Behaviour>, NetError> {
    let keypair = config
        .keypair
        .clone()
        .unwrap_or_else(libp2p::identity::Keypair::generate_ed25519);
    let b = |e: &dyn std::fmt::Display| NetError::Build(e.to_string());
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| b(&e))?
        .with_quic()
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| b(&e))?
        .with_behaviour(|key, relay_client| {
            let local = key.public().to_peer_id();
            let relay_server = config.relay_server.map(|l| {
                relay::Behaviour::new(local, {
                    let mut c = relay::Config {
                        max_reservations: l.max_reservations,
                        max_reservations_per_peer: l.max_reservations_per_peer,
                        max_circuits: l.max_circuits,
                        max_circuits_per_peer: l.max_circuits_per_peer,
                        max_circuit_duration: l.max_circuit_duration,
                        max_circuit_bytes: l.max_circuit_bytes,
                        reservation_rate_limiters: Vec::new(),
                        ..relay::Config::default()
                    };
                    let per_ip = std::num::NonZeroU32::new(l.reservations_per_ip_per_minute)
                        .unwrap_or(std::num::NonZeroU32::MIN);
                    let per_peer =
                        std::num::NonZeroU32::new(30).unwrap_or(std::num::NonZeroU32::MIN);
                    c = c
                        .reservation_rate_per_peer(per_peer, Duration::from_secs(120))
                        .reservation_rate_per_ip(per_ip, Duration::from_secs(60));
                    c
                })
            });
            let mdns = if config.mdns {
                let mc = mdns::Config {
                    query_interval: config.mdns_query_interval,
                    ..mdns::Config::default()
                };
                Some(mdns::tokio::Behaviour::new(mc, local)?)
            } else {
                None
            };
            let limits = connection_limits::ConnectionLimits::default()
                .with_max_established(Some(config.max_connections))
                .with_max_established_per_peer(Some(config.max_connections_per_peer))
                .with_max_pending_incoming(Some(config.max_pending_incoming));
            Ok(Behaviour {
                relay_client,
                relay_server: relay_server.into(),
                dcutr: dcutr::Behaviour::new(local),
                identify: identify::Behaviour::new(
                    identify::Config::new(IDENTIFY_PROTOCOL.to_string(), key.public())
                        .with_agent_version(format!("caucus/{}", env!("CARGO_PKG_VERSION"))),
                ),
                ping: ping::Behaviour::default(),
                gossipsub: gossip::behaviour(config.gossip_heartbeat)?,
                mdns: mdns.into(),
                stream: libp2p_stream::Behaviour::new(),
                limits: connection_limits::Behaviour::new(limits),
                blocked: allow_block_list::Behaviour::default(),
            })
        })
        .map_err(|e| b(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
        .build();
    Ok(swarm)
}

async fn accept_loop(
    mut incoming: libp2p_stream::IncomingStreams,
    ctx: SyncCtx,
    slots: Arc<Slots>,
) {
    while let Some((peer, stream)) = incoming.next().await {
        match slots.acquire(peer, None, &ctx.limits) {
            Some(slot) => {
                tokio::spawn(sync::run_inbound(ctx.clone(), peer, stream, slot));
            }
            None => {
                tracing::debug!(%peer, "sync session refused: too many sessions");
                drop(stream);
            }
        }
    }
}

struct Driver {
    swarm: Swarm<Behaviour>,
    backend: Arc<dyn Backend>,
    events: mpsc::Sender<NetEvent>,
    ctx: SyncCtx,
    slots: Arc<Slots>,
    control: libp2p_stream::Control,
    topics: HashMap<TopicHash, GroupId>,
    groups: HashMap<GroupId, Vec<IdentTopic>>,
    invalid: HashMap<PeerId, u32>,
    bans: HashMap<PeerId, Instant>,
    config: Config,
    announced: bool,
    dropped_events: u64,
    /// Syncs refused for want of a session slot, tried again each tick.
    retry_syncs: std::collections::HashSet<(PeerId, GroupId)>,
    /// The address each peer was reached at when this node dialed it.
    dialed: HashMap<PeerId, Multiaddr>,
    /// Who waits for a connection to each peer ([`Command::Connect`]).
    connecting: HashMap<PeerId, Vec<oneshot::Sender<Result<(), NetError>>>>,
    /// Relays this node holds (or is asking for) a circuit reservation on.
    reserving: std::collections::HashSet<PeerId>,
    /// The relay behind each circuit listener this node opened.
    circuit_listeners: HashMap<libp2p::core::transport::ListenerId, PeerId>,
    /// Verified gossip waiting for the store worker.
    store: mpsc::Sender<ToStore>,
    /// Verified gossip left to sync because the store queue was full.
    store_full: u64,
    /// Which peer delivered each recent entry, for receipts.
    routes: Routes,
    /// Receipts gathering before they move on.
    outgoing: Outgoing,
    /// Whether a flush of `outgoing` is due.
    flush_armed: bool,
}

/// One verified gossiped entry for the store worker.
struct ToStore {
    group: GroupId,
    entry: EntryId,
    bytes: Vec<u8>,
    source: PeerId,
}

/// Stores gossiped entries as they come, many per backend call: takes what is queued
/// (up to [`STORE_BATCH`]), hands each group's share to the backend at once, reports
/// what was stored. Runs on one blocking thread until the swarm task ends.
fn store_worker(
    mut queue: mpsc::Receiver<ToStore>,
    backend: Arc<dyn Backend>,
    events: mpsc::Sender<NetEvent>,
) {
    while let Some(first) = queue.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < STORE_BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let mut by_group: HashMap<GroupId, Vec<ToStore>> = HashMap::new();
        for item in batch {
            by_group.entry(item.group).or_default().push(item);
        }
        for (group, items) in by_group {
            let reported: Vec<(EntryId, PeerId)> =
                items.iter().map(|i| (i.entry, i.source)).collect();
            let result = backend.store(
                &group,
                items.into_iter().map(|i| (i.entry, i.bytes)).collect(),
            );
            match result {
                // Refused entries failed the backend's own checks; the rest are stored.
                Ok(_) | Err(crate::BackendError::Refused(_)) => {
                    for (id, source) in reported {
                        let _ = events.try_send(NetEvent::EntryReceived {
                            group,
                            id,
                            origin: Origin::Gossip(source),
                        });
                    }
                }
                Err(e) => tracing::warn!(
                    count = reported.len(),
                    "storing gossiped entries failed: {e}"
                ),
            }
        }
    }
}

impl Driver {
    fn emit(&mut self, ev: NetEvent) {
        if self.events.try_send(ev).is_err() {
            self.dropped_events += 1;
            if self.dropped_events.is_power_of_two() {
                tracing::warn!(
                    dropped = self.dropped_events,
                    "event queue full; events dropped"
                );
            }
        }
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut bad: mpsc::Receiver<SyncNote>,
        mut receipts_in: mpsc::Receiver<receipts::Inbound>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut ticks: u64 = 0;
        let flush = tokio::time::sleep(receipts::RECEIPT_FLUSH);
        tokio::pin!(flush);
        loop {
            if self.flush_armed && flush.is_elapsed() {
                flush
                    .as_mut()
                    .reset(Instant::now() + receipts::RECEIPT_FLUSH);
            }
            tokio::select! {
                () = &mut flush, if self.flush_armed => self.flush_receipts(),
                Some(inbound) = receipts_in.recv() => {
                    let batch = inbound.batch;
                    self.on_receipts(Some(inbound.from), batch.group, batch.entry, batch.receipts);
                }
                ev = self.swarm.select_next_some() => self.on_swarm(ev),
                cmd = commands.recv() => match cmd {
                    None | Some(Command::Shutdown) => break,
                    Some(c) => self.on_command(c),
                },
                Some(note) = bad.recv() => match note {
                    SyncNote::Misbehaved(peer) => self.penalize(peer, "sync protocol violation"),
                    SyncNote::NewEntries(from, group) => {
                        for peer in self.group_peers(&group) {
                            if peer != from {
                                self.start_sync(peer, group);
                            }
                        }
                    }
                },
                _ = tick.tick() => {
                    self.housekeeping();
                    ticks += 1;
                    if ticks.is_multiple_of(self.config.resync_interval.as_secs().max(1)) {
                        self.resync_all();
                    }
                }
            }
        }
        tracing::debug!("network task stopped");
    }

    /// Connected peers subscribed to one of `group`'s topics.
    fn group_peers(&self, group: &GroupId) -> Vec<PeerId> {
        let Some(topics) = self.groups.get(group) else {
            return Vec::new();
        };
        let hashes: Vec<TopicHash> = topics.iter().map(|t| t.hash()).collect();
        self.swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .filter(|(_, ts)| ts.iter().any(|t| hashes.contains(t)))
            .map(|(p, _)| *p)
            .collect()
    }

    /// Anti-entropy: sync every group with every group peer this side initiates with.
    fn resync_all(&mut self) {
        let groups: Vec<GroupId> = self.groups.keys().copied().collect();
        for g in groups {
            for p in self.group_peers(&g) {
                if self.initiates_with(&p) {
                    self.start_sync(p, g);
                }
            }
        }
    }

    fn housekeeping(&mut self) {
        let retry: Vec<(PeerId, GroupId)> = self.retry_syncs.drain().collect();
        for (peer, group) in retry {
            if self.swarm.is_connected(&peer) && self.groups.contains_key(&group) {
                self.start_sync(peer, group);
            }
        }
        let now = Instant::now();
        let expired: Vec<PeerId> = self
            .bans
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(p, _)| *p)
            .collect();
        for p in expired {
            self.bans.remove(&p);
            self.swarm.behaviour_mut().blocked.unblock_peer(p);
        }
    }

    /// Routes receipts for `entry`, from `from` (`None`: this node's own): to the
    /// backend if this node published it, else queued for the peer that delivered it.
    /// False if there is no way.
    fn on_receipts(
        &mut self,
        from: Option<PeerId>,
        group: GroupId,
        entry: EntryId,
        receipts: Vec<SealedReceipt>,
    ) -> bool {
        let count = u32::try_from(receipts.len()).unwrap_or(u32::MAX);
        match self.routes.route(&entry, from, count) {
            Route::Here => {
                let backend = self.backend.clone();
                tokio::task::spawn_blocking(move || backend.receipts(&group, &entry, receipts));
                true
            }
            Route::Peer(peer) => {
                if self.outgoing.push(peer, group, entry, receipts) {
                    self.flush_armed = true;
                }
                true
            }
            Route::None => {
                tracing::debug!(%entry, count, "receipts with no way back dropped");
                false
            }
        }
    }

    /// Sends every gathered receipt batch on to its next hop.
    fn flush_receipts(&mut self) {
        self.flush_armed = false;
        for (peer, batch) in self.outgoing.take() {
            tokio::spawn(receipts::send(self.control.clone(), peer, batch));
        }
    }

    fn penalize(&mut self, peer: PeerId, reason: &'static str) {
        tracing::info!(%peer, reason, "peer penalized: disconnected and banned");
        self.bans
            .insert(peer, Instant::now() + self.config.ban_duration);
        self.swarm.behaviour_mut().blocked.block_peer(peer);
        self.emit(NetEvent::PeerPenalized { peer, reason });
    }

    fn start_sync(&mut self, peer: PeerId, group: GroupId) {
        if let Some(slot) = self.slots.acquire(peer, Some(group), &self.config.sync) {
            tokio::spawn(sync::run_outbound(
                self.ctx.clone(),
                self.control.clone(),
                peer,
                group,
                slot,
            ));
        } else {
            // Tried again on the next tick (a relay with hundreds of peers hits the session
            // limit; waiting for the next anti-entropy sweep would leave peers behind).
            if self.retry_syncs.len() < MAX_SYNC_RETRIES {
                self.retry_syncs.insert((peer, group));
            }
            tracing::debug!(%peer, "sync not started: already running or at the session limit");
        }
    }

    fn on_command(&mut self, c: Command) {
        match c {
            Command::Listen(addr, tx) => {
                let r = self
                    .swarm
                    .listen_on(addr)
                    .map(|_| ())
                    .map_err(|e| NetError::Listen(error_chain(&e)));
                let _ = tx.send(r);
            }
            Command::Dial(addr, tx) => {
                let r = self
                    .swarm
                    .dial(addr)
                    .map_err(|e| NetError::Dial(e.to_string()));
                let _ = tx.send(r);
            }
            Command::Connect(peer, addr, tx) => self.connect(peer, addr, tx),
            Command::Join {
                group,
                topic,
                reply,
            } => {
                let topic = IdentTopic::new(topic);
                let hash = topic.hash();
                let gs = &mut self.swarm.behaviour_mut().gossipsub;
                let r = gs
                    .subscribe(&topic)
                    .map(|_| ())
                    .map_err(|e| NetError::Subscribe(e.to_string()));
                if r.is_ok() {
                    if let Err(e) = gs.set_topic_params(topic.clone(), gossip::topic_params()) {
                        tracing::warn!("topic score params refused: {e}");
                    }
                    self.topics.insert(hash.clone(), group);
                    let joined = self.groups.entry(group).or_default();
                    if !joined.iter().any(|t| t.hash() == hash) {
                        joined.push(topic);
                    }
                    // Peers already on the topic: sync with them now.
                    let peers: Vec<PeerId> = self
                        .swarm
                        .behaviour()
                        .gossipsub
                        .all_peers()
                        .filter(|(_, topics)| topics.contains(&&hash))
                        .map(|(p, _)| *p)
                        .collect();
                    for p in peers {
                        self.emit(NetEvent::GroupPeer { peer: p, group });
                        if self.initiates_with(&p) {
                            self.start_sync(p, group);
                        }
                    }
                }
                let _ = reply.send(r);
            }
            Command::Leave(group) => {
                if let Some(topics) = self.groups.remove(&group) {
                    for t in topics {
                        self.topics.remove(&t.hash());
                        self.swarm.behaviour_mut().gossipsub.unsubscribe(&t);
                    }
                }
            }
            Command::Publish {
                group,
                envelope,
                reply,
            } => {
                let r = match self
                    .groups
                    .get(&group)
                    .and_then(|t| t.last().map(|t| t.hash()))
                {
                    None => Err(NetError::UnknownGroup),
                    Some(hash) => {
                        let id = EntryId::of_encoded(&envelope);
                        self.routes.published(id);
                        match self.swarm.behaviour_mut().gossipsub.publish(hash, envelope) {
                            Ok(_) => Ok(id),
                            // Nobody to tell yet: sync will carry it when peers come.
                            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => Ok(id),
                            Err(gossipsub::PublishError::Duplicate) => Ok(id),
                            Err(e) => Err(NetError::Publish(e.to_string())),
                        }
                    }
                };
                let _ = reply.send(r);
            }
            Command::SyncWith(peer, group) => self.start_sync(peer, group),
            Command::Disconnect(peer) => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::Ban(peer) => {
                self.swarm.behaviour_mut().blocked.block_peer(peer);
            }
            Command::Unban(peer) => {
                self.bans.remove(&peer);
                self.swarm.behaviour_mut().blocked.unblock_peer(peer);
            }
            Command::AddExternal(addr) => self.swarm.add_external_address(addr),
            Command::Listeners(tx) => {
                let _ = tx.send(self.swarm.listeners().cloned().collect());
            }
            Command::Connected(tx) => {
                let _ = tx.send(self.swarm.connected_peers().copied().collect());
            }
            Command::Score(peer, tx) => {
                let _ = tx.send(self.swarm.behaviour().gossipsub.peer_score(&peer));
            }
            Command::Receipt {
                group,
                entry,
                receipt,
                reply,
            } => {
                let routed = self.on_receipts(None, group, entry, vec![receipt]);
                let _ = reply.send(routed);
            }
            Command::Shutdown => {}
        }
    }

    /// A node that dialed an office relay (one offering circuit relay v2) reserves a
    /// circuit slot on it, once, so peers that cannot dial this node reach it through the
    /// relay. A relay itself never does.
    fn reserve_on(&mut self, relay_peer: PeerId, protocols: &[libp2p::StreamProtocol]) {
        if self.config.relay_server.is_some()
            || self.reserving.contains(&relay_peer)
            || !protocols.contains(&relay::HOP_PROTOCOL_NAME)
        {
            return;
        }
        let Some(addr) = self.dialed.get(&relay_peer).cloned() else {
            return;
        };
        let circuit = addr
            .with_p2p(relay_peer)
            .unwrap_or_else(|a| a)
            .with(Protocol::P2pCircuit);
        match self.swarm.listen_on(circuit) {
            Ok(id) => {
                self.reserving.insert(relay_peer);
                self.circuit_listeners.insert(id, relay_peer);
                tracing::debug!(relay = %relay_peer, "asking the relay for a circuit reservation");
            }
            Err(e) => tracing::debug!(relay = %relay_peer, "no circuit reservation: {e}"),
        }
    }

    /// Dials `peer` at `addr` unless connected; `tx` hears when a connection is up or
    /// the dial failed.
    fn connect(
        &mut self,
        peer: PeerId,
        addr: Multiaddr,
        tx: oneshot::Sender<Result<(), NetError>>,
    ) {
        if self.swarm.is_connected(&peer) {
            let _ = tx.send(Ok(()));
            return;
        }
        let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
            .addresses(vec![addr])
            .build();
        match self.swarm.dial(opts) {
            // A dial already under way answers the same waiters.
            Ok(()) | Err(libp2p::swarm::DialError::DialPeerConditionFalse(_)) => {
                let waiting = self.connecting.entry(peer).or_default();
                waiting.retain(|w| !w.is_closed());
                waiting.push(tx);
            }
            Err(e) => {
                let _ = tx.send(Err(NetError::Dial(e.to_string())));
            }
        }
    }

    /// Of two peers sharing a group, the one with the smaller id opens the sync stream,
    /// so one session serves both directions.
    fn initiates_with(&self, peer: &PeerId) -> bool {
        self.swarm.local_peer_id().to_bytes() < peer.to_bytes()
    }

    fn on_swarm(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match &ev {
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                for w in self.connecting.remove(peer_id).unwrap_or_default() {
                    let _ = w.send(Ok(()));
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } if !self.swarm.is_connected(peer) => {
                for w in self.connecting.remove(peer).unwrap_or_default() {
                    let _ = w.send(Err(NetError::Dial(error.to_string())));
                }
            }
            _ => {}
        }
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                if self.config.mdns && !self.announced {
                    self.announced = true;
                    self.emit(NetEvent::LanAnnouncing);
                }
                self.emit(NetEvent::Listening { address });
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } if num_established.get() == 1 || endpoint.is_relayed() => {
                let address = endpoint.get_remote_address().clone();
                if endpoint.is_dialer() && !endpoint.is_relayed() {
                    self.dialed.insert(peer_id, address.clone());
                }
                let relayed = endpoint.is_relayed()
                    || address.iter().any(|p| matches!(p, Protocol::P2pCircuit));
                self.emit(NetEvent::PeerConnected {
                    peer: peer_id,
                    address,
                    relayed,
                });
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                // Reconnecting reserves again (identify runs on every new connection).
                self.reserving.remove(&peer_id);
                self.dialed.remove(&peer_id);
                self.emit(NetEvent::PeerDisconnected { peer: peer_id });
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                if let Some(relay_peer) = self.circuit_listeners.remove(&listener_id) {
                    // The reservation is gone; the next identify asks again.
                    self.reserving.remove(&relay_peer);
                    tracing::debug!(relay = %relay_peer, "circuit reservation ended: {reason:?}");
                }
            }
            SwarmEvent::Behaviour(ev) => self.on_behaviour(ev),
            _ => {}
        }
    }

    fn on_behaviour(&mut self, ev: BehaviourEvent) {
        match ev {
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => self.on_gossip(propagation_source, message_id, message),
            BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { peer_id, topic, .. }) => {
                if let Some(group) = self.topics.get(&topic).copied() {
                    self.emit(NetEvent::GroupPeer {
                        peer: peer_id,
                        group,
                    });
                    if self.initiates_with(&peer_id) {
                        self.start_sync(peer_id, group);
                    }
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, address) in found {
                    self.emit(NetEvent::PeerDiscovered {
                        peer,
                        address: address.clone(),
                    });
                    if !self.swarm.is_connected(&peer) {
                        let addr = address.with_p2p(peer).unwrap_or_else(|a| a);
                        // Both ends learn of each other from the same multicast exchange
                        // and dial at once. From their listen ports (TCP port reuse) the
                        // two SYNs cross into one simultaneously opened connection on
                        // which both act as dialer and the upgrade fails, and mDNS does
                        // not report the peer again before its record expires. A fresh
                        // source port keeps the two dials apart.
                        let opts = libp2p::swarm::dial_opts::DialOpts::unknown_peer_id()
                            .address(addr)
                            .allocate_new_port()
                            .build();
                        if let Err(e) = self.swarm.dial(opts) {
                            tracing::debug!(%peer, "mdns dial failed: {e}");
                        }
                    }
                }
            }
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                self.reserve_on(peer_id, &info.protocols);
            }
            BehaviourEvent::RelayClient(relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                ..
            }) => self.emit(NetEvent::RelayReservation {
                relay: relay_peer_id,
            }),
            BehaviourEvent::RelayServer(ev) => self.on_relay_server(ev),
            _ => {}
        }
    }

    /// What the relay server's limits did, logged with peer ids and status codes only.
    fn on_relay_server(&mut self, ev: relay::Event) {
        match ev {
            relay::Event::ReservationReqAccepted {
                src_peer_id,
                renewed,
            } => tracing::debug!(peer = %src_peer_id, renewed, "relay: reservation accepted"),
            relay::Event::ReservationReqDenied {
                src_peer_id,
                status,
            } => {
                tracing::info!(peer = %src_peer_id, ?status, "relay: reservation refused by the limits");
                self.emit(NetEvent::RelayLimited {
                    peer: src_peer_id,
                    what: "reservation refused",
                });
            }
            relay::Event::CircuitReqAccepted {
                src_peer_id,
                dst_peer_id,
            } => tracing::debug!(src = %src_peer_id, dst = %dst_peer_id, "relay: circuit opened"),
            relay::Event::CircuitReqDenied {
                src_peer_id,
                dst_peer_id,
                status,
            } => {
                tracing::info!(src = %src_peer_id, dst = %dst_peer_id, ?status, "relay: circuit refused by the limits");
                self.emit(NetEvent::RelayLimited {
                    peer: src_peer_id,
                    what: "circuit refused",
                });
            }
            relay::Event::CircuitClosed {
                src_peer_id,
                dst_peer_id,
                error,
            } => match error {
                // libp2p ends a circuit that reached its byte or duration limit with an
                // error (as it does one whose far side failed); one its ends closed, with none.
                Some(e) => {
                    tracing::info!(src = %src_peer_id, dst = %dst_peer_id, kind = ?e.kind(), "relay: circuit cut");
                    self.emit(NetEvent::RelayLimited {
                        peer: src_peer_id,
                        what: "circuit cut",
                    });
                }
                None => {
                    tracing::debug!(src = %src_peer_id, dst = %dst_peer_id, "relay: circuit closed")
                }
            },
            other => tracing::debug!("relay: {other:?}"),
        }
    }

    fn on_gossip(&mut self, source: PeerId, id: gossipsub::MessageId, message: gossipsub::Message) {
        let verdict = match self.topics.get(&message.topic) {
            None => Verdict::Ignore,
            Some(group) => gossip::check(&*self.backend, group, &message.data),
        };
        let group = self.topics.get(&message.topic).copied();
        let acceptance = match (&verdict, group) {
            (Verdict::Accept(entry), Some(group)) => {
                // The membership proof verified: forward now, store off the swarm task.
                // Storing (open, verify, fold, one transaction) takes a fraction of a
                // millisecond per entry in batches; doing it before forwarding would add
                // it to every hop.
                let entry = *entry;
                let item = ToStore {
                    group,
                    entry,
                    bytes: message.data,
                    source,
                };
                match self.store.try_send(item) {
                    Ok(()) => {
                        self.routes.delivered(entry, source);
                        self.emit(NetEvent::GossipVerified { group, id: entry });
                        MessageAcceptance::Accept
                    }
                    Err(_) => {
                        // Not forwarded either: a node that cannot keep up should not
                        // pass on what it has not stored. Sync brings it later.
                        self.store_full += 1;
                        if self.store_full.is_power_of_two() {
                            tracing::warn!(
                                left_to_sync = self.store_full,
                                "store queue full; gossiped entries left to sync"
                            );
                        }
                        MessageAcceptance::Ignore
                    }
                }
            }
            (Verdict::Reject(reason), _) => {
                let reason = *reason;
                tracing::debug!(peer = %source, reason, "gossip rejected");
                self.emit(NetEvent::GossipRejected {
                    peer: source,
                    reason,
                });
                *self.invalid.entry(source).or_insert(0) += 1;
                MessageAcceptance::Reject
            }
            _ => MessageAcceptance::Ignore,
        };
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&id, &source, acceptance);
        if matches!(acceptance, MessageAcceptance::Reject) {
            let n = self.invalid.get(&source).copied().unwrap_or(0);
            // Below the graylist threshold gossipsub stops handing us the peer's
            // messages; cut it off then too, so the counter cannot stall.
            let graylisted = self
                .swarm
                .behaviour()
                .gossipsub
                .peer_score(&source)
                .is_some_and(|s| s < PeerScoreThresholds::default().graylist_threshold);
            if n >= self.config.max_invalid_gossip || graylisted {
                self.invalid.remove(&source);
                self.penalize(source, "invalid gossip");
            }
        }
    }
}
