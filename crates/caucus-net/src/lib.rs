//! caucus networking on libp2p 0.57: the I/O driver under the node.
//!
//! # Shape
//!
//! [`Network::spawn`] builds a libp2p swarm and runs it on its own tokio task. The node
//! talks to it through a [`Network`] handle (a bounded command channel,
//! [`COMMAND_QUEUE`]) and hears from it through a bounded event stream
//! ([`EVENT_QUEUE`], [`NetEvent`]). Everything the network needs from the store and the
//! keyring comes through one small trait, [`Backend`]; this crate depends on neither.
//!
//! # What runs on the swarm
//!
//! - **Transports**: TCP and QUIC, Noise, Yamux; relay v2 client transport and DCUtR for
//!   NAT traversal; optionally a relay v2 server ([`Config::relay_server`]).
//! - **Identity**: a fresh Ed25519 transport key per node, unrelated to organizer or
//!   device keys; identify announces only `caucus/<version>`.
//! - **Discovery**: mDNS when [`Config::mdns`] is on (the default), with
//!   [`NetEvent::LanAnnouncing`] so the CLI can say so; explicit dials otherwise.
//! - **Live gossip** ([`gossip`]): one gossipsub topic per group, named by the caller
//!   (derived from the group secret by crypto, opaque here); anonymous messages (no
//!   author, no sequence number, no transport signature: the entry carries its own
//!   membership proof); message id = BLAKE3 of the envelope = its entry id; every
//!   message decoded and checked through the backend before it is forwarded.
//! - **Catch-up** ([`sync`]): `/caucus/sync/1` over `libp2p-stream`, driving a
//!   `caucus_sync::Session`, started when a peer subscribes to one of our topics.
//! - **Receipts** ([`receipts`]): `/caucus/receipt/1` carries sealed receipts for
//!   urgent notices back along the path each notice came by, batched per hop.
//! - **Storing gossip**: verified entries go through one bounded queue
//!   ([`STORE_QUEUE`]) to one worker that hands the backend up to [`STORE_BATCH`] at
//!   a time.
//! - **Bounds**: connection limits, idle timeout, per-peer and total sync sessions,
//!   frame limits, penalties (disconnect and a temporary ban) for misbehaving peers.
//!
//! Logs (`tracing`) carry peer ids, entry ids and counts, never entry bytes.

pub mod backend;
pub mod framing;
pub mod gossip;
pub mod handshake;
mod network;
pub mod receipts;
pub mod sync;

pub use backend::{
    Backend, BackendError, GroupKeys, MemoryBackend, Validation, validate_with_tokens,
};
pub use handshake::{HandshakeError, HandshakeKind};
pub use network::{Config, NetError, Network, RelayLimits, STORE_BATCH, STORE_QUEUE};
pub use sync::{SYNC_PROTOCOL, SyncLimits};

pub use libp2p::multiaddr::Protocol;
pub use libp2p::{Multiaddr, PeerId};

use caucus_proto::{EntryId, GroupId};

/// Commands queued to the swarm task before senders wait.
pub const COMMAND_QUEUE: usize = 64;

/// Events queued for the node; when full, further events are dropped (and counted): the
/// backend, not the event stream, is the record of what was stored.
pub const EVENT_QUEUE: usize = 4096;

/// Which side opened a sync session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncRole {
    /// This node opened the stream.
    Initiator,
    /// The peer opened the stream.
    Responder,
}

/// How an entry arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Live, on the group's gossip topic, forwarded by this peer.
    Gossip(PeerId),
    /// Fetched by catch-up sync.
    Sync,
}

/// Counters of one finished sync session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncSummary {
    /// Entries fetched, verified and newly stored here.
    pub entries_stored: u64,
    /// Entries received from the peer.
    pub entries_received: u64,
    /// Entries sent to the peer.
    pub entries_sent: u64,
    /// Reconciliation rounds.
    pub rounds: u32,
    /// Ids left for another session (the driver syncs again by itself).
    pub needs_deferred: u64,
    /// Bytes written on the stream, length prefixes included.
    pub wire_bytes_sent: u64,
    /// Bytes read from the stream, length prefixes included.
    pub wire_bytes_received: u64,
}

/// Something the node should know. No event carries entry content.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetEvent {
    /// Listening on this address.
    Listening {
        /// The address.
        address: Multiaddr,
    },
    /// mDNS is on: this node answers LAN queries with its addresses, so anyone on the
    /// local network can see that a caucus node runs here.
    LanAnnouncing,
    /// mDNS found a peer on the LAN (it will be dialed).
    PeerDiscovered {
        /// The peer.
        peer: PeerId,
        /// Where.
        address: Multiaddr,
    },
    /// A connection to a peer was established.
    PeerConnected {
        /// The peer.
        peer: PeerId,
        /// The remote address of the connection.
        address: Multiaddr,
        /// Whether the connection runs through a relay circuit.
        relayed: bool,
    },
    /// The last connection to a peer closed.
    PeerDisconnected {
        /// The peer.
        peer: PeerId,
    },
    /// A connected peer subscribed to one of our group topics: it is online for the group.
    GroupPeer {
        /// The peer.
        peer: PeerId,
        /// The group.
        group: GroupId,
    },
    /// A relay accepted our reservation: peers can reach us through it.
    RelayReservation {
        /// The relay.
        relay: PeerId,
    },
    /// (Relay) a limit refused a peer's reservation or circuit, or cut a circuit short.
    RelayLimited {
        /// The peer asking (for a circuit: the one that opened it).
        peer: PeerId,
        /// What was refused or cut: `"reservation refused"`, `"circuit refused"` or `"circuit cut"`.
        what: &'static str,
    },
    /// An entry arrived by gossip and its membership proof verified: it was passed on
    /// to the mesh and is being opened and stored (an [`NetEvent::EntryReceived`]
    /// follows once stored). The moment a bare gossipsub node would hand it up.
    GossipVerified {
        /// Its group.
        group: GroupId,
        /// Its content id.
        id: EntryId,
    },
    /// An entry was verified and stored.
    EntryReceived {
        /// Its group.
        group: GroupId,
        /// Its content id.
        id: EntryId,
        /// How it came.
        origin: Origin,
    },
    /// A gossip message failed validation; its forwarder was penalized.
    GossipRejected {
        /// The forwarder.
        peer: PeerId,
        /// Why (no content).
        reason: &'static str,
    },
    /// A peer was disconnected and banned for a while for misbehaving.
    PeerPenalized {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: &'static str,
    },
    /// A sync session started.
    SyncStarted {
        /// The peer.
        peer: PeerId,
        /// The group.
        group: GroupId,
        /// Our side.
        role: SyncRole,
    },
    /// A sync session stored a batch of entries.
    SyncProgress {
        /// The peer.
        peer: PeerId,
        /// The group.
        group: GroupId,
        /// Entries stored so far in this session.
        entries_stored: u64,
        /// Session bytes received so far.
        bytes_received: u64,
    },
    /// A sync session finished: both sides have what the other had.
    SyncFinished {
        /// The peer.
        peer: PeerId,
        /// The group.
        group: GroupId,
        /// Counters.
        summary: SyncSummary,
    },
    /// A sync session ended early.
    SyncFailed {
        /// The peer.
        peer: PeerId,
        /// The group.
        group: GroupId,
        /// Why (no content).
        reason: String,
    },
    /// Something failed that is not tied to a peer (no content).
    Error {
        /// What.
        what: String,
    },
}
