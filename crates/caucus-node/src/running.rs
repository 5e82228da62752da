//! A [`Node`] on the network: the [`Running`] handle, its [`NodeEvent`] stream, and the
//! `caucus-net` backend that connects the swarm to the store.
//!
//! The node sits behind one mutex. The swarm task calls the backend to validate and store
//! gossiped envelopes, sync tasks call it to read the id index and store fetched
//! batches, and the handle's methods call it to write. Each call is one short critical
//! section (one SQLite transaction at most); nothing awaits while holding it.
//!
//! Urgent notices: every node that opens an urgent `NoticePosted` by someone else
//! writes a `NoticeAcked` at once and publishes it, so the sender sees "delivered to k
//! of n" fill up as acknowledgements arrive.

use crate::core::Received;
use crate::{Node, NodeError, now_ms};
use caucus_crypto::RelayToken;
use caucus_crypto::invite::InviteTicket;
use caucus_crypto::link::{LinkHost, PairingCode};
use caucus_net::{
    Backend, BackendError, HandshakeKind, Multiaddr, NetEvent, Network, PeerId, Validation,
};
use caucus_proto::{DeviceCert, EntryId, Envelope, GroupId, NoticeId, Operation, SealedReceipt};
use caucus_sync::EntryIndex;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, oneshot};

/// Events buffered per subscriber; a subscriber that lags loses the oldest.
pub const NODE_EVENT_QUEUE: usize = 1024;

/// Largest stored batch reported entry by entry ([`NodeEvent::EntryStored`]); a larger
/// one is reported as one [`NodeEvent::EntriesStored`].
pub const ENTRY_EVENTS_AT_MOST: usize = 64;

/// How long a pairing code shown by `device link` stays usable.
pub const LINK_WINDOW: Duration = Duration::from_secs(600);

/// Settings of a running node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The network settings (listen addresses, peers, mDNS, relay server).
    pub net: caucus_net::Config,
    /// Acknowledge urgent notices from others as soon as they are opened.
    pub auto_ack_urgent: bool,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            net: caucus_net::Config::default(),
            auto_ack_urgent: true,
        }
    }
}

/// Something a running node reports. No event carries names, notes or notice text.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// Listening on this address.
    Listening {
        /// The address.
        address: Multiaddr,
    },
    /// mDNS is on: anyone on the LAN can see that a caucus node runs here.
    LanAnnouncing,
    /// A peer was found on the LAN.
    PeerFound {
        /// The peer.
        peer: PeerId,
    },
    /// A connection to a peer opened.
    PeerConnected {
        /// The peer.
        peer: PeerId,
        /// Through a relay circuit.
        relayed: bool,
    },
    /// The last connection to a peer closed.
    PeerDisconnected {
        /// The peer.
        peer: PeerId,
    },
    /// Many entries were opened, verified, stored and folded in one batch (a catch-up
    /// sync or an import): one event for the batch instead of one per entry, which would
    /// overflow the event queue and push out the events that follow.
    EntriesStored {
        /// Their group.
        group: GroupId,
        /// How many.
        count: usize,
        /// Written on this device.
        local: bool,
    },
    /// An entry arrived by gossip with a valid membership proof and was passed on to the
    /// mesh; it is being opened and stored ([`NodeEvent::EntryStored`] follows unless its
    /// body fails to open). Nothing of its content is known yet.
    GossipVerified {
        /// Its group.
        group: GroupId,
        /// Its content id.
        id: EntryId,
    },
    /// An entry was opened, verified, stored and folded (one per entry of a batch of at
    /// most [`ENTRY_EVENTS_AT_MOST`]; see [`NodeEvent::EntriesStored`]).
    EntryStored {
        /// Its group.
        group: GroupId,
        /// Its id.
        id: EntryId,
        /// Its operation's short name.
        kind: &'static str,
        /// Written on this device.
        local: bool,
    },
    /// A notice arrived from someone else.
    NoticeReceived {
        /// Its group.
        group: GroupId,
        /// The notice.
        notice: NoticeId,
        /// Whether it is urgent (this node acknowledges those at once).
        urgent: bool,
    },
    /// An acknowledgement of a notice was stored.
    AckReceived {
        /// Its group.
        group: GroupId,
        /// The notice.
        notice: NoticeId,
        /// Current members who have acknowledged it.
        acked: u32,
        /// Current members.
        total: u32,
    },
    /// A catch-up sync session with a peer finished.
    SyncFinished {
        /// The peer.
        peer: PeerId,
        /// The group.
        group: GroupId,
        /// Entries fetched and newly stored here.
        entries_stored: u64,
        /// Bytes both ways on the stream.
        wire_bytes: u64,
    },
    /// A catch-up sync session ended early.
    SyncFailed {
        /// The peer.
        peer: PeerId,
        /// The group.
        group: GroupId,
    },
    /// A sync session stored a batch.
    SyncProgress {
        /// The group.
        group: GroupId,
        /// Entries stored so far in this session.
        entries_stored: u64,
    },
    /// A new device of this organizer was linked through this node.
    DeviceLinked {
        /// Its label.
        label: String,
    },
    /// A member joined a group with an invite answered by this node.
    MemberJoined {
        /// The group.
        group: GroupId,
    },
    /// A relay accepted this node's reservation.
    RelayReservation {
        /// The relay.
        relay: PeerId,
    },
    /// A peer was penalized for misbehaving.
    PeerPenalized {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: &'static str,
    },
}

/// The last sync of a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncStatus {
    /// When it finished (Unix ms).
    pub at_ms: u64,
    /// Entries it stored.
    pub entries_stored: u64,
}

struct PendingLink {
    host: Option<LinkHost>,
    until: Instant,
    done: Option<oneshot::Sender<DeviceCert>>,
}

/// The `caucus-net` backend of a node.
struct NodeBackend {
    node: Arc<Mutex<Node>>,
    events: broadcast::Sender<NodeEvent>,
    net: OnceLock<Network>,
    auto_ack: bool,
    links: Mutex<Vec<PendingLink>>,
    /// A second connection that serves sync's index reads while `node` stores a batch
    /// (none if it could not be opened: then reads wait for the node).
    reader: Option<Mutex<caucus_store::Store>>,
    /// The relay tokens (public membership keys) of each group's epochs, as last read
    /// from the node's keyrings, so that checking a gossiped envelope's proof on the
    /// swarm task does not wait for the node lock (held through a whole commit, or a
    /// stored sync batch: the swarm, its pings and every forward would wait too). A
    /// token of an epoch never changes; an envelope the cache cannot accept is checked
    /// again under the lock, which refreshes the cache.
    tokens: Mutex<HashMap<GroupId, Vec<RelayToken>>>,
    /// Cleared by [`Running::shutdown`]: acknowledgements still waiting are not written
    /// (the home may be opened again as soon as the node stops).
    open: Arc<std::sync::atomic::AtomicBool>,
    /// Groups whose receipts are due to be recorded ([`NodeBackend::record_soon`]).
    recording: Arc<Mutex<std::collections::HashSet<GroupId>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update under the lock is one call that leaves the data consistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl NodeBackend {
    fn emit(&self, ev: NodeEvent) {
        let _ = self.events.send(ev);
    }

    /// Reports what a receive stored, and confirms urgent notices from others with a
    /// receipt sent back to their sender (see `receipts.rs`).
    fn after_receive(&self, node: &mut Node, group: &GroupId, received: &Received, local: bool) {
        let me = node.identity();
        let mut to_confirm = Vec::new();
        let each = received.opened.len() <= ENTRY_EVENTS_AT_MOST;
        if !each {
            self.emit(NodeEvent::EntriesStored {
                group: *group,
                count: received.opened.len(),
                local,
            });
        }
        for e in &received.opened {
            if each {
                self.emit(NodeEvent::EntryStored {
                    group: *group,
                    id: e.id,
                    kind: e.kind,
                    local,
                });
            }
            if let Some((notice, urgent)) = e.notice {
                if e.author != me {
                    self.emit(NodeEvent::NoticeReceived {
                        group: *group,
                        notice,
                        urgent,
                    });
                }
                if urgent && local {
                    // The sender's own device holds it too: it counts among the delivered.
                    node.count_own_receipt(group, &notice);
                    self.emit_delivery(node, group, notice);
                    self.record_soon(*group);
                } else if urgent && self.auto_ack && e.author != me {
                    to_confirm.push((e.id, notice));
                }
            }
            if let Some(notice) = e.ack {
                self.emit_delivery(node, group, notice);
            }
        }
        if to_confirm.is_empty() {
            return;
        }
        let sealed: Vec<_> = to_confirm
            .into_iter()
            .filter_map(
                |(entry, notice)| match node.seal_receipt(group, &entry, &notice) {
                    Ok(r) => Some((entry, notice, r)),
                    Err(e) => {
                        tracing::warn!(%entry, "could not seal a receipt: {e}");
                        None
                    }
                },
            )
            .collect();
        match (tokio::runtime::Handle::try_current(), self.net.get()) {
            (Ok(runtime), Some(net)) => {
                let (shared, net, group) = (self.node.clone(), net.clone(), *group);
                let open = self.open.clone();
                runtime.spawn(async move {
                    let (mut sent, mut no_way) = (Vec::new(), Vec::new());
                    for (entry, notice, receipt) in sealed {
                        match net.send_receipt(group, entry, receipt).await {
                            Ok(true) => sent.push(notice),
                            _ => no_way.push(notice),
                        }
                    }
                    let acknowledge_later = |notices: Vec<NoticeId>| {
                        let (shared, net, open) = (shared.clone(), net.clone(), open.clone());
                        tokio::task::spawn_blocking(move || {
                            let mut node = lock(&shared);
                            if !open.load(std::sync::atomic::Ordering::SeqCst) {
                                return;
                            }
                            acknowledge(&mut node, &group, notices);
                            flush(Some(&net), &shared, &mut node);
                        })
                    };
                    if !no_way.is_empty() {
                        // No way back to the sender (the notice came by sync): acknowledge
                        // with an entry, a moment later, spread out, so that many of them
                        // do not compete with the notice while it still reaches the group.
                        let delay = ACK_DELAY + ACK_SPREAD.mul_f64(rand::random::<f64>());
                        tokio::time::sleep(delay).await;
                        let _ = acknowledge_later(no_way).await;
                    }
                    if !sent.is_empty() {
                        // A receipt can be lost on the way (a connection closing under
                        // it, a hop restarting). The sender's delivery record says
                        // whether it arrived; if none names this member in time, an
                        // entry says it instead (`acknowledge` skips what is recorded).
                        tokio::time::sleep(RECEIPT_CONFIRM_WITHIN).await;
                        let _ = acknowledge_later(sent).await;
                    }
                });
            }
            _ => {
                let notices = sealed.into_iter().map(|(_, n, _)| n).collect();
                acknowledge(node, group, notices);
            }
        }
    }

    /// Tells subscribers the delivery of `notice` as this node now counts it.
    fn emit_delivery(&self, node: &Node, group: &GroupId, notice: NoticeId) {
        if let Some(d) = node.delivery(group, &notice) {
            self.emit(NodeEvent::AckReceived {
                group: *group,
                notice,
                acked: d.acked,
                total: d.total,
            });
        }
    }

    /// Records the receipts of `group` in a `NoticeDelivered` entry after
    /// [`RECORD_RECEIPTS_AFTER`] (once per wait: later receipts join the same entry).
    fn record_soon(&self, group: GroupId) {
        if !lock(&self.recording).insert(group) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (shared, net, open) = (
            self.node.clone(),
            self.net.get().cloned(),
            self.open.clone(),
        );
        let recording = self.recording.clone();
        runtime.spawn(async move {
            tokio::time::sleep(RECORD_RECEIPTS_AFTER).await;
            let _ = tokio::task::spawn_blocking(move || {
                let mut node = lock(&shared);
                lock(&recording).remove(&group);
                if !open.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                match node.record_deliveries(&group) {
                    Ok(n) if n > 0 => tracing::info!(entries = n, "receipts recorded"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("could not record receipts: {e}"),
                }
                flush(net.as_ref(), &shared, &mut node);
            })
            .await;
        });
    }

    /// Publishes whatever this device wrote during the last operation.
    fn flush(&self, node: &mut Node) {
        flush(self.net.get(), &self.node, node);
    }
}

/// How long the sender of an urgent notice gathers receipts before recording them in one
/// `NoticeDelivered` entry (receipts arriving later go in the next one).
pub const RECORD_RECEIPTS_AFTER: Duration = Duration::from_secs(2);

/// How long a device that sent a receipt waits for the sender's delivery record to name
/// its member before it acknowledges with an entry instead.
pub const RECEIPT_CONFIRM_WITHIN: Duration = Duration::from_secs(15);

/// The shortest wait before a device with no way back to the sender acknowledges an
/// urgent notice with an entry.
const ACK_DELAY: Duration = Duration::from_millis(50);
/// How much longer, at most, chosen at random per device (see `after_receive`).
const ACK_SPREAD: Duration = Duration::from_millis(200);

/// Writes this device's acknowledgement of each urgent notice it has not acknowledged.
fn acknowledge(node: &mut Node, group: &GroupId, notices: Vec<NoticeId>) {
    let me = node.identity();
    for notice in notices {
        let already = node
            .state(group)
            .ok()
            .and_then(|s| s.notice(&notice))
            .is_some_and(|n| n.acks.contains(&me));
        if already {
            continue;
        }
        match node.write_sealed(group, Operation::NoticeAcked { notice }) {
            Ok((id, _)) => tracing::info!(entry = %id, "urgent notice acknowledged"),
            Err(e) => tracing::warn!("could not acknowledge an urgent notice: {e}"),
        }
    }
}

/// Publishes whatever `node` (the one `shared` guards) wrote during the last operation.
fn flush(net: Option<&Network>, shared: &Arc<Mutex<Node>>, node: &mut Node) {
    let out = node.take_outbox();
    let rotated = node.take_rotated();
    if out.is_empty() && !rotated {
        return;
    }
    if let Some(net) = net.cloned() {
        let node = shared.clone();
        tokio::spawn(async move {
            for (group, bytes) in out {
                if let Err(e) = net.publish(group, bytes).await {
                    tracing::warn!("publish failed: {e}");
                }
            }
            if rotated && let Ok(peers) = net.connected_peers().await {
                send_token_updates(&node, &net, peers);
            }
        });
    }
}

impl Backend for NodeBackend {
    fn receipts(&self, group: &GroupId, entry: &EntryId, receipts: Vec<SealedReceipt>) {
        let mut node = lock(&self.node);
        if let Some((notice, d)) = node.take_receipts(group, entry, &receipts) {
            if d.acked >= d.total {
                // Everyone confirmed: nothing more to wait for. Recorded before it is
                // told, so whoever sees "n of n" finds the record written.
                match node.record_deliveries(group) {
                    Ok(_) => self.flush(&mut node),
                    Err(e) => tracing::warn!("could not record receipts: {e}"),
                }
            } else {
                self.record_soon(*group);
            }
            self.emit_delivery(&node, group, notice);
        }
    }

    fn with_index(&self, group: &GroupId, f: &mut dyn FnMut(&dyn EntryIndex)) -> bool {
        if let Some(reader) = &self.reader {
            let reader = lock(reader);
            match reader.groups() {
                Ok(groups) if groups.iter().any(|(g, _)| g == group) => {
                    let index = reader.index(*group);
                    f(&index);
                    if let Some(e) = index.take_error() {
                        tracing::warn!("store error while serving sync: {e}");
                    }
                    return true;
                }
                Ok(_) => return false,
                // Read through the node below.
                Err(e) => tracing::warn!("reader connection failed: {e}"),
            }
        }
        let node = lock(&self.node);
        if !node.groups.contains_key(group) {
            return false;
        }
        let index = node.store.index(*group);
        f(&index);
        if let Some(e) = index.take_error() {
            tracing::warn!("store error while serving sync: {e}");
        }
        true
    }

    fn validate(&self, group: &GroupId, envelope: &Envelope) -> Validation {
        let cached = lock(&self.tokens).get(group).cloned();
        if let Some(tokens) = cached
            && caucus_net::validate_with_tokens(envelope, tokens) == Validation::Accept
        {
            return Validation::Accept;
        }
        let tokens = {
            let node = lock(&self.node);
            match node.groups.get(group) {
                Some(core) => core.keyring.relay_tokens(),
                None => return Validation::Ignore,
            }
        };
        lock(&self.tokens).insert(*group, tokens.clone());
        caucus_net::validate_with_tokens(envelope, tokens)
    }

    fn store(
        &self,
        group: &GroupId,
        entries: Vec<(EntryId, Vec<u8>)>,
    ) -> Result<usize, BackendError> {
        let mut node = lock(&self.node);
        if !node.groups.contains_key(group) {
            return Err(BackendError::UnknownGroup);
        }
        let received = node
            .receive_from_peer(group, entries.into_iter().map(|(_, b)| b).collect())
            .map_err(|e| BackendError::Store(e.to_string()))?;
        self.after_receive(&mut node, group, &received, false);
        self.flush(&mut node);
        if received.refused > 0 {
            // Opening verified every proof and signature: what failed is reported (the
            // rest is stored), so that sync can end the session with its sender.
            return Err(BackendError::Refused(received.refused));
        }
        Ok(received.new)
    }

    fn precheck_fetched(&self, group: &GroupId, envelope: &Envelope) -> Validation {
        // `store` opens every entry, verifying its membership proof and signature, and
        // refuses what fails: here only whether its epoch is one this node can open.
        let node = lock(&self.node);
        match node.groups.get(group) {
            Some(core) if !core.keyring.candidates(envelope.header.epoch).is_empty() => {
                Validation::Accept
            }
            _ => Validation::Ignore,
        }
    }

    fn session_proof(&self, group: &GroupId, binding: &[u8]) -> Option<Vec<u8>> {
        lock(&self.node).session_proof(group, binding)
    }

    fn verify_session_proof(&self, group: &GroupId, binding: &[u8], proof: &[u8]) -> bool {
        lock(&self.node).verify_session_proof(group, binding, proof)
    }

    fn handshake(&self, kind: HandshakeKind, request: &[u8]) -> Result<Vec<u8>, String> {
        match kind {
            HandshakeKind::Tokens | HandshakeKind::Usage => Err("not a relay".into()),
            HandshakeKind::Join => {
                let (group, welcome) = {
                    let mut node = lock(&self.node);
                    let r = node.accept_join(request).map_err(|e| e.to_string());
                    self.flush(&mut node);
                    r?
                };
                self.emit(NodeEvent::MemberJoined { group });
                Ok(welcome)
            }
            HandshakeKind::Link => {
                let host = {
                    let mut links = lock(&self.links);
                    let now = Instant::now();
                    links.retain(|l| l.until > now && l.host.is_some());
                    links
                        .first_mut()
                        .and_then(|l| l.host.take().map(|h| (h, l.done.take())))
                };
                let Some((host, done)) = host else {
                    return Err("no pairing code is waiting on this device".into());
                };
                let (cert, grant) = {
                    let mut node = lock(&self.node);
                    let r = node.accept_link(host, request).map_err(|e| e.to_string());
                    self.flush(&mut node);
                    r?
                };
                self.emit(NodeEvent::DeviceLinked {
                    label: cert.label.clone(),
                });
                if let Some(done) = done {
                    let _ = done.send(cert);
                }
                Ok(grant)
            }
        }
    }
}

/// A node on the network. Dropping it without [`Running::shutdown`] leaves the network
/// task to stop when its last handle goes.
pub struct Running {
    node: Arc<Mutex<Node>>,
    net: Network,
    backend: Arc<NodeBackend>,
    events: broadcast::Sender<NodeEvent>,
    last_sync: Arc<Mutex<HashMap<GroupId, SyncStatus>>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("peer", &self.net.local_peer_id())
            .finish_non_exhaustive()
    }
}

/// How often a running node looks for held entries whose time has come.
const RETRY_DUE_EVERY: Duration = Duration::from_secs(30);

impl Running {
    /// Starts the network for `node` on the current tokio runtime and joins every
    /// group's topic.
    pub async fn start(node: Node, config: NodeConfig) -> Result<Running, NodeError> {
        let (events, _) = broadcast::channel(NODE_EVENT_QUEUE);
        let node = Arc::new(Mutex::new(node));
        let reader = match lock(&node).open_reader() {
            Ok(r) => Some(Mutex::new(r)),
            Err(e) => {
                tracing::warn!("no reader connection, sync reads wait for writes: {e}");
                None
            }
        };
        let backend = Arc::new(NodeBackend {
            node: node.clone(),
            events: events.clone(),
            net: OnceLock::new(),
            auto_ack: config.auto_ack_urgent,
            links: Mutex::new(Vec::new()),
            reader,
            tokens: Mutex::default(),
            open: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            recording: Arc::default(),
        });
        let (net, mut net_events) = Network::spawn(config.net.clone(), backend.clone())
            .map_err(|e| NodeError::Net(e.to_string()))?;
        let _ = backend.net.set(net.clone());
        let last_sync: Arc<Mutex<HashMap<GroupId, SyncStatus>>> = Arc::default();
        {
            let events = events.clone();
            let last_sync = last_sync.clone();
            let node = node.clone();
            let net = net.clone();
            tokio::spawn(async move {
                while let Some(ev) = net_events.recv().await {
                    if let NetEvent::PeerConnected { peer, .. } = &ev {
                        send_token_updates(&node, &net, vec![*peer]);
                    }
                    if let Some(ev) = translate(ev, &last_sync) {
                        let _ = events.send(ev);
                    }
                }
            });
        }
        {
            // Entries held for stamping a clock too far ahead are applied once their time
            // comes, whether or not anything else arrives.
            let node = Arc::downgrade(&node);
            let open = backend.open.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(RETRY_DUE_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(node) = node.upgrade() else { break };
                    if !open.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let retried = tokio::task::spawn_blocking(move || lock(&node).retry_due());
                    if let Ok(Err(e)) = retried.await {
                        tracing::warn!("retrying held entries failed: {e}");
                    }
                }
            });
        }
        let running = Running {
            node,
            net,
            backend,
            events,
            last_sync,
        };
        let groups = running.with_node(|n| n.group_ids());
        for group in groups {
            running.join_topic(group).await?;
        }
        Ok(running)
    }

    async fn join_topic(&self, group: GroupId) -> Result<(), NodeError> {
        let topic = self.with_node(|n| n.topic(&group))?;
        self.net
            .join(group, topic)
            .await
            .map_err(|e| NodeError::Net(e.to_string()))
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    /// Runs `f` on the node (under its lock: keep it short, no awaiting inside). Entries
    /// `f` writes are published right after.
    pub fn with_node<R>(&self, f: impl FnOnce(&mut Node) -> R) -> R {
        let mut node = lock(&self.node);
        let r = f(&mut node);
        self.backend.flush(&mut node);
        r
    }

    /// The transport identity (unrelated to the organizer's keys).
    pub fn peer_id(&self) -> PeerId {
        self.net.local_peer_id()
    }

    /// The network handle.
    pub fn network(&self) -> &Network {
        &self.net
    }

    /// Addresses this node listens on, each ending in `/p2p/<peer id>`.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NodeError> {
        let peer = self.peer_id();
        let addrs = self
            .net
            .listen_addrs()
            .await
            .map_err(|e| NodeError::Net(e.to_string()))?;
        Ok(addrs
            .into_iter()
            .map(|a| a.with_p2p(peer).unwrap_or_else(|a| a))
            .collect())
    }

    /// Waits until the node listens on at least one address (bounded).
    pub async fn wait_listening(&self, timeout: Duration) -> Result<Vec<Multiaddr>, NodeError> {
        let deadline = Instant::now() + timeout;
        loop {
            let addrs = self.listen_addrs().await?;
            if !addrs.is_empty() {
                return Ok(addrs);
            }
            if Instant::now() >= deadline {
                return Err(NodeError::Net("not listening on any address".into()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Dials a peer.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NodeError> {
        self.net
            .dial(addr)
            .await
            .map_err(|e| NodeError::Net(e.to_string()))
    }

    /// Peers connected now.
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, NodeError> {
        self.net
            .connected_peers()
            .await
            .map_err(|e| NodeError::Net(e.to_string()))
    }

    /// The last finished sync of each group.
    pub fn last_sync(&self) -> HashMap<GroupId, SyncStatus> {
        lock(&self.last_sync).clone()
    }

    /// Writes an operation on this device and publishes it at once.
    pub async fn write(&self, group: &GroupId, op: Operation) -> Result<EntryId, NodeError> {
        let (net, group) = (self.net.clone(), *group);
        self.blocking(move |node, backend| {
            // Out before the commit waits for the disk (see `Node::write_publishing`).
            let mut publish = |group: &GroupId, bytes: &[u8]| {
                let (net, group, bytes) = (net.clone(), *group, bytes.to_vec());
                tokio::spawn(async move {
                    if let Err(e) = net.publish(group, bytes).await {
                        tracing::warn!("publish failed: {e}");
                    }
                });
            };
            let (id, _, received) = node.write_publishing(&group, op, Some(&mut publish))?;
            backend.after_receive(node, &group, &received, true);
            backend.flush(node);
            Ok(id)
        })
        .await
    }

    /// Runs `f` on the node on a blocking thread, under the node lock. Sealing, storing
    /// and waiting for the disk must not hold an async worker: the tasks queued behind
    /// them on that worker (the swarm, the publish of the very entry being written) would
    /// wait out the fsync.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Node, &NodeBackend) -> Result<T, NodeError> + Send + 'static,
    ) -> Result<T, NodeError> {
        let (node, backend) = (self.node.clone(), self.backend.clone());
        if tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::MultiThread
        {
            // On this thread, without a hop: the worker's queued tasks move to another.
            tokio::task::block_in_place(move || f(&mut lock(&node), &backend))
        } else {
            tokio::task::spawn_blocking(move || f(&mut lock(&node), &backend))
                .await
                .map_err(|e| NodeError::Refused(format!("the node's work was interrupted: {e}")))?
        }
    }

    /// Writes many operations in one transaction ([`Node::write_many`]). A large batch
    /// is not gossiped entry by entry: connected peers are asked to sync instead.
    pub async fn write_many(
        &self,
        group: &GroupId,
        ops: Vec<Operation>,
    ) -> Result<Vec<EntryId>, NodeError> {
        const GOSSIP_AT_MOST: usize = 64;
        // Counted in records: a packed import entry may carry a thousand.
        let n: usize = ops.iter().map(|op| op.each().len()).sum();
        let g = *group;
        let ids = self
            .blocking(move |node, backend| {
                let ids = node.write_many(&g, ops, &mut |_, _| {})?;
                if n > GOSSIP_AT_MOST {
                    node.take_outbox();
                } else {
                    backend.flush(node);
                }
                Ok(ids)
            })
            .await?;
        if n > GOSSIP_AT_MOST {
            for peer in self.connected_peers().await? {
                let _ = self.net.sync_with(peer, *group).await;
            }
        }
        Ok(ids)
    }

    /// Founds a group and joins its topic.
    pub async fn create_group(&self, name: &str) -> Result<GroupId, NodeError> {
        let group = self.with_node(|n| n.create_group(name))?;
        self.join_topic(group).await?;
        Ok(group)
    }

    /// Joins a group with an invite: runs the handshake with the first address in the
    /// ticket that answers, registers the group and joins its topic (catch-up sync with
    /// the member starts by itself).
    pub async fn join(
        &self,
        ticket: &InviteTicket,
        extra: &[Multiaddr],
    ) -> Result<GroupId, NodeError> {
        let (joiner, hello) = self.with_node(|n| n.start_join(ticket))?;
        let mut last = NodeError::Usage(
            "the invite names no address to reach a member: pass --peer ADDRESS".into(),
        );
        let texts: Vec<String> = extra
            .iter()
            .map(ToString::to_string)
            .chain(ticket.addresses().iter().cloned())
            .collect();
        for text in &texts {
            let addr: Multiaddr = match text.parse() {
                Ok(a) => a,
                Err(_) => {
                    last = NodeError::Usage(format!("invite address {text} is not a multiaddr"));
                    continue;
                }
            };
            match self.net.handshake(addr, HandshakeKind::Join, &hello).await {
                Ok(welcome) => {
                    let group = self.with_node(|n| n.finish_join(joiner, &welcome))?;
                    self.join_topic(group).await?;
                    return Ok(group);
                }
                Err(caucus_net::HandshakeError::Refused(reason)) => {
                    return Err(NodeError::Refused(format!("join refused: {reason}")));
                }
                Err(e) => last = NodeError::Net(e.to_string()),
            }
        }
        Err(last)
    }

    /// Shows a pairing code for a new device of this organizer: the returned receiver
    /// fires with the new device's certificate once it has linked (within
    /// [`LINK_WINDOW`]).
    pub fn host_link(&self) -> Result<(PairingCode, oneshot::Receiver<DeviceCert>), NodeError> {
        let (code, host) = self.with_node(|n| n.start_link_host())?;
        let (tx, rx) = oneshot::channel();
        lock(&self.backend.links).push(PendingLink {
            host: Some(host),
            until: Instant::now() + LINK_WINDOW,
            done: Some(tx),
        });
        Ok((code, rx))
    }

    /// Asks every connected peer for its relay usage of `group`; the relays answer
    /// (members refuse at once). `(relay, usage)` pairs.
    pub async fn relay_usage(&self, group: &GroupId) -> Vec<(PeerId, crate::relay::Usage)> {
        let mut out = Vec::new();
        for peer in self.connected_peers().await.unwrap_or_default() {
            let addr = Multiaddr::empty().with(caucus_net::Protocol::P2p(peer));
            let asked = tokio::time::timeout(
                Duration::from_secs(2),
                self.net
                    .handshake(addr, HandshakeKind::Usage, group.as_bytes()),
            )
            .await;
            if let Ok(Ok(bytes)) = asked
                && let Ok(u) = crate::relay::decode_usage(&bytes)
            {
                out.push((peer, u));
            }
        }
        out
    }

    /// Asks for a catch-up sync of `group` with `peer` now.
    pub async fn sync_with(&self, peer: PeerId, group: GroupId) -> Result<(), NodeError> {
        self.net
            .sync_with(peer, group)
            .await
            .map_err(|e| NodeError::Net(e.to_string()))
    }

    /// Stops the network and hands the node back (for a clean close).
    pub async fn shutdown(self) -> Result<(), NodeError> {
        // Receipts not yet recorded are recorded now, and published while the network
        // still runs (peers that miss it get it by sync).
        let out = {
            let mut node = lock(&self.node);
            for group in node.group_ids() {
                if node.has_unrecorded_receipts(&group)
                    && let Err(e) = node.record_deliveries(&group)
                {
                    tracing::warn!("could not record receipts: {e}");
                }
            }
            node.take_outbox()
        };
        for (group, bytes) in out {
            let _ = self.net.publish(group, bytes).await;
        }
        let _ = self.net.shutdown().await;
        let node = lock(&self.node);
        // Under the node lock: a waiting acknowledgement either wrote already or never will.
        self.backend
            .open
            .store(false, std::sync::atomic::Ordering::SeqCst);
        node.checkpoint()
    }
}

/// Sends every group's relay token updates to `peers` (relays take them; members
/// refuse them), so a relay follows the group into epochs started while it was away.
fn send_token_updates(node: &Arc<Mutex<Node>>, net: &Network, peers: Vec<PeerId>) {
    let requests: Vec<Vec<u8>> = {
        let node = lock(node);
        node.group_ids()
            .iter()
            .filter_map(|g| {
                let updates = node.token_updates(g);
                if updates.is_empty() {
                    None
                } else {
                    crate::relay::encode_token_updates(g, &updates).ok()
                }
            })
            .collect()
    };
    if requests.is_empty() {
        return;
    }
    let net = net.clone();
    tokio::spawn(async move {
        for peer in peers {
            let addr = Multiaddr::empty().with(caucus_net::Protocol::P2p(peer));
            for r in &requests {
                match net.handshake(addr.clone(), HandshakeKind::Tokens, r).await {
                    Ok(_) => tracing::debug!(%peer, "relay took token updates"),
                    Err(_) => break, // a member, or gone: nothing to do
                }
            }
        }
    });
}

/// Sets up a fresh home as a new device of an organizer: runs the link handshake with
/// the first of `peers` that answers (the organizer's first device, showing `code`),
/// over a throwaway transport, then creates the home from the grant. Start the returned
/// node with [`Running::start`] to sync its history.
pub async fn link_new_device(
    home: &std::path::Path,
    passphrase: &[u8],
    params: caucus_crypto::at_rest::KdfParams,
    code: &PairingCode,
    label: &str,
    peers: &[Multiaddr],
    net: caucus_net::Config,
) -> Result<Node, NodeError> {
    use caucus_crypto::DeviceKeys;
    use caucus_crypto::link::LinkNewDevice;
    if crate::Home::new(home).is_initialized() {
        return Err(NodeError::AlreadyInitialized(home.to_path_buf()));
    }
    let device = DeviceKeys::generate_unlinked(&mut rand::rng());
    let (waiting, request) = LinkNewDevice::start(code, &device, label, &mut rand::rng())
        .map_err(|e| NodeError::Usage(e.to_string()))?;
    let (tmp, _events) = Network::spawn(net, caucus_net::MemoryBackend::new())
        .map_err(|e| NodeError::Net(e.to_string()))?;
    let mut grant = Err(NodeError::Usage("no peer given to link with".into()));
    for p in peers {
        match tmp
            .handshake(p.clone(), HandshakeKind::Link, &request)
            .await
        {
            Ok(g) => {
                grant = Ok(g);
                break;
            }
            Err(caucus_net::HandshakeError::Refused(r)) => {
                grant = Err(NodeError::Refused(format!("link refused: {r}")));
                break;
            }
            Err(e) => grant = Err(NodeError::Net(e.to_string())),
        }
    }
    let _ = tmp.shutdown().await;
    Node::create_linked(home, passphrase, params, device, waiting, &grant?)
}

/// Network events the node reports, and the sync bookkeeping.
fn translate(ev: NetEvent, last_sync: &Mutex<HashMap<GroupId, SyncStatus>>) -> Option<NodeEvent> {
    Some(match ev {
        NetEvent::Listening { address } => NodeEvent::Listening { address },
        NetEvent::LanAnnouncing => NodeEvent::LanAnnouncing,
        NetEvent::PeerDiscovered { peer, .. } => NodeEvent::PeerFound { peer },
        NetEvent::PeerConnected { peer, relayed, .. } => NodeEvent::PeerConnected { peer, relayed },
        NetEvent::PeerDisconnected { peer } => NodeEvent::PeerDisconnected { peer },
        NetEvent::RelayReservation { relay } => NodeEvent::RelayReservation { relay },
        NetEvent::PeerPenalized { peer, reason } => NodeEvent::PeerPenalized { peer, reason },
        NetEvent::SyncProgress {
            group,
            entries_stored,
            ..
        } => NodeEvent::SyncProgress {
            group,
            entries_stored,
        },
        NetEvent::SyncFinished {
            peer,
            group,
            summary,
        } => {
            lock(last_sync).insert(
                group,
                SyncStatus {
                    at_ms: now_ms(),
                    entries_stored: summary.entries_stored,
                },
            );
            NodeEvent::SyncFinished {
                peer,
                group,
                entries_stored: summary.entries_stored,
                wire_bytes: summary.wire_bytes_sent + summary.wire_bytes_received,
            }
        }
        NetEvent::SyncFailed { peer, group, .. } => NodeEvent::SyncFailed { peer, group },
        NetEvent::GossipVerified { group, id } => NodeEvent::GossipVerified { group, id },
        // Entries are reported by the backend once opened and stored (`EntryStored`).
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use caucus_crypto::at_rest::KdfParams;
    use caucus_proto::{ContactField, ContactId};

    /// A node in `dir` that founded a group and wrote `contacts` contacts offline, with
    /// the last of them as sealed.
    fn node_with_contacts(dir: &std::path::Path, contacts: u8) -> (Node, GroupId, Vec<u8>) {
        let mut node = Node::init(
            dir,
            b"pass",
            "Dana",
            "laptop",
            KdfParams::insecure_for_tests(),
        )
        .unwrap();
        let g = node.create_group("committee").unwrap();
        for i in 0..contacts {
            node.write(
                &g,
                Operation::ContactSet {
                    contact: ContactId([i; 16]),
                    fields: vec![ContactField::Name(format!("worker {i}"))],
                },
            )
            .unwrap();
        }
        let last = node
            .take_outbox()
            .into_iter()
            .rev()
            .find(|(gr, _)| *gr == g)
            .map(|(_, b)| b)
            .unwrap();
        (node, g, last)
    }

    /// The backend of `node`, with no network and no reader connection.
    fn offline_backend(node: Node) -> NodeBackend {
        NodeBackend {
            node: Arc::new(Mutex::new(node)),
            events: broadcast::channel(16).0,
            net: OnceLock::new(),
            auto_ack: false,
            links: Mutex::new(Vec::new()),
            reader: None,
            tokens: Mutex::default(),
            open: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            recording: Arc::default(),
        }
    }

    /// A member node's sync store verifies each proof itself: the precheck only asks
    /// for a known epoch, and a forged entry comes back as `Refused` (so sync ends the
    /// session) and is not stored.
    #[test]
    fn a_member_store_refuses_what_fails_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let (node, g, good) = node_with_contacts(dir.path(), 2);
        let mut env = Envelope::decode(&good).unwrap();
        env.ciphertext[0] ^= 1;
        let forged = env.encode().unwrap();
        let mut future = Envelope::decode(&good).unwrap();
        future.header.epoch = 99;

        let backend = offline_backend(node);
        assert!(matches!(
            backend.precheck_fetched(&g, &env),
            Validation::Accept
        ));
        assert!(matches!(
            backend.precheck_fetched(&g, &future),
            Validation::Ignore
        ));
        let forged_id = EntryId::of_encoded(&forged);
        let r = backend.store(
            &g,
            vec![
                (forged_id, forged),
                (EntryId::of_encoded(&good), good.clone()),
            ],
        );
        assert!(matches!(r, Err(BackendError::Refused(1))), "{r:?}");
        assert!(!lock(&backend.node).store().has_entry(&forged_id).unwrap());
        // Its own entries again: nothing refused, nothing new.
        assert_eq!(
            backend
                .store(&g, vec![(EntryId::of_encoded(&good), good)])
                .unwrap(),
            0
        );
    }

    /// Checking a gossiped proof does not wait for the node lock once the group's
    /// tokens are cached, and a forged proof is still refused (checked under the lock).
    #[test]
    fn gossip_checks_do_not_wait_for_the_node() {
        let dir = tempfile::tempdir().unwrap();
        let (node, g, good) = node_with_contacts(dir.path(), 1);
        let good = Envelope::decode(&good).unwrap();
        let mut forged = good.clone();
        forged.proof.0[0] ^= 1;
        let backend = Arc::new(offline_backend(node));
        // The first check reads the keyring (and fills the cache).
        assert_eq!(backend.validate(&g, &good), Validation::Accept);
        assert_eq!(backend.validate(&g, &forged), Validation::Reject);
        // With the node held (as through a long commit), the check still answers.
        let held = lock(&backend.node);
        let (tx, rx) = std::sync::mpsc::channel();
        let checker = backend.clone();
        let probe = good.clone();
        std::thread::spawn(move || {
            let _ = tx.send(checker.validate(&g, &probe));
        });
        let verdict = rx.recv_timeout(Duration::from_secs(10));
        drop(held);
        assert_eq!(verdict, Ok(Validation::Accept));
    }
}
