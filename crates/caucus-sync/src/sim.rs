//! A deterministic network of replicas running sync sessions (feature `test-utils`).
//!
//! Modelled on `iroh-gossip`'s `proto::sim` and quinn's test `Pair`: everything runs in
//! one thread on a virtual clock, and every choice (latency, loss, which peer to sync
//! with, entry contents) comes from one seeded ChaCha RNG, so a seed replays a run
//! exactly.
//!
//! - **Replicas** each hold a [`MemoryIndex`] of opaque entries (id = BLAKE3 of bytes).
//! - **Links**: every ordered pair of replicas gets a fixed base latency drawn from
//!   [`SimConfig::latency_ms`], plus per-message jitter; each message is dropped with
//!   probability [`Sim::set_loss`]. Delivery on one link is not ordered when jitter or
//!   retransmissions reorder it (a harsher model than a real stream).
//! - **Partitions**: [`Sim::partition`] gives each replica a side; messages between
//!   sides are dropped (at send and at delivery). [`Sim::heal`] joins all sides.
//! - **Sessions**: [`Sim::start_sync`] opens a [`Session`] pair; the simulator moves
//!   frames, fires timers in deadline order, stores fetched entries in the fetching
//!   replica at once (as a node would after checking them), and drops the pair once both
//!   sides are closed. [`Sim::sync_round`] starts one session per replica with a random
//!   reachable peer, and [`Sim::run_until_idle`] runs the clock until nothing is left.

use crate::index::{EntryIndex, MemoryIndex};
use crate::session::{AcceptAll, Config, Event, Millis, Role, Session, Stats};
use caucus_proto::{EntryId, GroupId};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// Knobs of a simulated network.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Number of replicas.
    pub replicas: usize,
    /// Range of base link latencies in milliseconds (each ordered pair draws one).
    pub latency_ms: (Millis, Millis),
    /// Extra per-message delay, uniformly in `0..=jitter_ms`.
    pub jitter_ms: Millis,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Session settings (group and proof are set by the simulator).
    pub rto_ms: Millis,
    /// Silent timeouts before a session gives up.
    pub max_retries: u32,
    /// Ids per request.
    pub max_ids_per_request: usize,
    /// Requests in flight.
    pub max_requests_in_flight: usize,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            replicas: 4,
            latency_ms: (5, 80),
            jitter_ms: 10,
            loss: 0.0,
            rto_ms: 400,
            max_retries: 4,
            max_ids_per_request: 64,
            max_requests_in_flight: 4,
        }
    }
}

/// Counters of a whole simulation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Sessions started.
    pub sessions_started: u64,
    /// Sessions in which both sides reached `Done`.
    pub sessions_done: u64,
    /// Sessions in which a side failed (timeouts, mostly).
    pub sessions_failed: u64,
    /// Messages handed to the network.
    pub messages_sent: u64,
    /// Messages lost or cut off by a partition.
    pub messages_dropped: u64,
    /// Bytes handed to the network.
    pub bytes_sent: u64,
}

/// How one session ended, for [`Sim::sync_pair`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Counters of the initiator's side.
    pub initiator: Stats,
    /// Counters of the responder's side.
    pub responder: Stats,
    /// Whether both sides reached `Done`.
    pub done: bool,
}

struct Pair {
    nodes: [usize; 2],
    sides: [Session; 2],
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Delivery {
    at: Millis,
    seq: u64,
    session: u64,
    to_side: usize,
    bytes: Vec<u8>,
}

/// The simulated network (see the module docs).
pub struct Sim {
    config: SimConfig,
    rng: ChaCha8Rng,
    now: Millis,
    replicas: Vec<MemoryIndex>,
    latency: Vec<Vec<Millis>>,
    side_of: Vec<usize>,
    pairs: BTreeMap<u64, Pair>,
    finished: BTreeMap<u64, Outcome>,
    queue: BinaryHeap<Reverse<Delivery>>,
    next_session: u64,
    next_seq: u64,
    stats: SimStats,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("now", &self.now)
            .field("replicas", &self.replicas.len())
            .field("sessions", &self.pairs.len())
            .field("queued", &self.queue.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

const GROUP: GroupId = GroupId([0x5a; 16]);

impl Sim {
    /// A network of empty replicas, every choice drawn from `seed`.
    pub fn new(seed: u64, config: SimConfig) -> Sim {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = config.replicas;
        let (lo, hi) = config.latency_ms;
        let latency = (0..n)
            .map(|_| {
                (0..n)
                    .map(|_| lo + below(&mut rng, hi.saturating_sub(lo) + 1))
                    .collect()
            })
            .collect();
        Sim {
            rng,
            now: 0,
            replicas: vec![MemoryIndex::new(); n],
            latency,
            side_of: vec![0; n],
            pairs: BTreeMap::new(),
            finished: BTreeMap::new(),
            queue: BinaryHeap::new(),
            next_session: 0,
            next_seq: 0,
            stats: SimStats::default(),
            config,
        }
    }

    /// The virtual time, in milliseconds.
    pub fn now(&self) -> Millis {
        self.now
    }

    /// The counters so far.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Number of replicas.
    pub fn len(&self) -> usize {
        self.replicas.len()
    }

    /// Whether there are no replicas.
    pub fn is_empty(&self) -> bool {
        self.replicas.is_empty()
    }

    /// The store of replica `i`.
    pub fn replica(&self, i: usize) -> &MemoryIndex {
        &self.replicas[i]
    }

    /// The RNG, for tests that draw their own choices from the same seed.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// Stores an entry at replica `i` (a local write); returns its id.
    pub fn insert(&mut self, i: usize, bytes: Vec<u8>) -> EntryId {
        self.replicas[i].insert(bytes).0
    }

    /// Stores a fresh random entry of 16..80 bytes at replica `i`; returns its id.
    pub fn insert_random(&mut self, i: usize) -> EntryId {
        let len = 16 + below(&mut self.rng, 64) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| self.rng.next_u64() as u8).collect();
        self.insert(i, bytes)
    }

    /// Sets the probability that a message is lost.
    pub fn set_loss(&mut self, loss: f64) {
        self.config.loss = loss;
    }

    /// Splits the network: replica `i` is on side `sides[i]` (missing entries: side 0).
    pub fn partition(&mut self, sides: &[usize]) {
        for (i, side) in self.side_of.iter_mut().enumerate() {
            *side = sides.get(i).copied().unwrap_or(0);
        }
    }

    /// Joins every side again.
    pub fn heal(&mut self) {
        self.side_of.iter_mut().for_each(|s| *s = 0);
    }

    /// Whether `a` and `b` can reach each other.
    pub fn connected(&self, a: usize, b: usize) -> bool {
        self.side_of[a] == self.side_of[b]
    }

    /// Whether every replica holds the same set.
    pub fn converged(&self) -> bool {
        self.replicas
            .windows(2)
            .all(|w| w[0].ids() == w[1].ids() && w[0].total() == w[1].total())
    }

    /// Opens a session with `a` as initiator and `b` as responder; returns its number.
    pub fn start_sync(&mut self, a: usize, b: usize) -> u64 {
        let config = Config {
            rto_ms: self.config.rto_ms,
            max_retries: self.config.max_retries,
            retransmit: true,
            max_ids_per_request: self.config.max_ids_per_request,
            max_requests_in_flight: self.config.max_requests_in_flight,
            ..Config::new(GROUP, b"member".to_vec())
        };
        let sides = [
            Session::new(
                Role::Initiator,
                config.clone(),
                Box::new(AcceptAll),
                self.now,
            ),
            Session::new(Role::Responder, config, Box::new(AcceptAll), self.now),
        ];
        let id = self.next_session;
        self.next_session += 1;
        self.stats.sessions_started += 1;
        self.pairs.insert(
            id,
            Pair {
                nodes: [a, b],
                sides,
            },
        );
        self.flush(id);
        id
    }

    /// Starts one session per replica, each with a random other replica it can reach
    /// (skipping pairs already syncing).
    pub fn sync_round(&mut self) {
        let n = self.replicas.len();
        for a in 0..n {
            let peers: Vec<usize> = (0..n).filter(|&b| b != a && self.connected(a, b)).collect();
            if peers.is_empty() {
                continue;
            }
            let b = peers[below(&mut self.rng, peers.len() as u64) as usize];
            let busy = self
                .pairs
                .values()
                .any(|p| p.nodes == [a, b] || p.nodes == [b, a]);
            if !busy {
                self.start_sync(a, b);
            }
        }
    }

    /// Syncs `a` (initiator) with `b` and runs until that session ends; returns how.
    pub fn sync_pair(&mut self, a: usize, b: usize) -> Outcome {
        let id = self.start_sync(a, b);
        while !self.finished.contains_key(&id) && self.step() {}
        self.finished.remove(&id).unwrap_or(Outcome {
            initiator: Stats::default(),
            responder: Stats::default(),
            done: false,
        })
    }

    /// Runs until no session and no message is left, or `limit_ms` of virtual time have
    /// passed; returns whether it went idle.
    pub fn run_until_idle(&mut self, limit_ms: Millis) -> bool {
        let until = self.now.saturating_add(limit_ms);
        while self.now <= until {
            if !self.step() {
                self.finished.clear();
                return true;
            }
        }
        false
    }

    /// Processes the next delivery or timer; returns false when there is nothing left.
    pub fn step(&mut self) -> bool {
        let next_delivery = self.queue.peek().map(|Reverse(d)| d.at);
        let next_timer = self
            .pairs
            .iter()
            .flat_map(|(id, p)| {
                p.sides
                    .iter()
                    .enumerate()
                    .filter_map(move |(s, sess)| sess.poll_timeout().map(|t| (t, *id, s)))
            })
            .min();
        let deliver_first = match (next_delivery, next_timer) {
            (None, None) => return false,
            (Some(at), Some((t, _, _))) => at <= t,
            (Some(_), None) => true,
            (None, Some(_)) => false,
        };
        if deliver_first {
            if let Some(Reverse(d)) = self.queue.pop() {
                self.now = self.now.max(d.at);
                self.deliver(d);
            }
        } else if let Some((t, id, side)) = next_timer {
            self.now = self.now.max(t);
            if let Some(p) = self.pairs.get_mut(&id) {
                // A failure is recorded in the session; `flush` reaps it.
                let _ = p.sides[side].handle_timeout(self.now);
            }
            self.flush(id);
        }
        true
    }

    fn deliver(&mut self, d: Delivery) {
        let Some(p) = self.pairs.get_mut(&d.session) else {
            return;
        };
        let to = p.nodes[d.to_side];
        let from = p.nodes[1 - d.to_side];
        if self.side_of[to] != self.side_of[from] {
            self.stats.messages_dropped += 1;
            return;
        }
        let store = &self.replicas[to];
        // Errors are recorded in the session; `flush` reaps it.
        let _ = p.sides[d.to_side].handle_message(self.now, &d.bytes, store);
        self.flush(d.session);
    }

    /// Moves frames and events out of both sides of a session; reaps it when closed.
    fn flush(&mut self, id: u64) {
        let Some(p) = self.pairs.get_mut(&id) else {
            return;
        };
        for side in 0..2 {
            let node = p.nodes[side];
            while let Some(event) = p.sides[side].poll_event() {
                if let Event::Entry {
                    id: entry_id,
                    bytes,
                } = event
                {
                    self.replicas[node].insert_with_id(entry_id, Some(bytes));
                }
            }
            let from = p.nodes[side];
            let to = p.nodes[1 - side];
            while let Some(bytes) = p.sides[side].poll_transmit() {
                self.stats.messages_sent += 1;
                self.stats.bytes_sent += bytes.len() as u64;
                let lost = unit(&mut self.rng) < self.config.loss;
                if lost || self.side_of[from] != self.side_of[to] {
                    self.stats.messages_dropped += 1;
                    continue;
                }
                let jitter = below(&mut self.rng, self.config.jitter_ms + 1);
                let at = self.now + self.latency[from][to] + jitter;
                let seq = self.next_seq;
                self.next_seq += 1;
                self.queue.push(Reverse(Delivery {
                    at,
                    seq,
                    session: id,
                    to_side: 1 - side,
                    bytes,
                }));
            }
        }
        if p.sides.iter().all(Session::is_closed) {
            let done = p.sides.iter().all(Session::is_done);
            if done {
                self.stats.sessions_done += 1;
            } else {
                self.stats.sessions_failed += 1;
            }
            let outcome = Outcome {
                initiator: p.sides[0].stats(),
                responder: p.sides[1].stats(),
                done,
            };
            self.pairs.remove(&id);
            self.finished.insert(id, outcome);
        }
    }

    /// Whether every entry in `ids` is held by every replica.
    pub fn everyone_has(&self, ids: &[EntryId]) -> bool {
        self.replicas
            .iter()
            .all(|r| ids.iter().all(|id| r.contains(id)))
    }
}

/// Uniform in `0..n` (0 when `n` is 0); the modulo bias is irrelevant for a simulator.
fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    if n == 0 { 0 } else { rng.next_u64() % n }
}

/// Uniform in `[0, 1)`.
fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// What [`sync_direct`] saw on each side (index 0: initiator, 1: responder).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirectOutcome {
    /// Each side's counters.
    pub stats: [Stats; 2],
    /// Ids each side learnt it lacks.
    pub needs: [Vec<EntryId>; 2],
    /// Entries each side fetched.
    pub fetched: [Vec<EntryId>; 2],
    /// Whether both sides reached `Done`.
    pub done: bool,
}

/// Runs one session between two stores over a perfect, instant link (no clock, no
/// loss), without storing what is fetched: the fastest way to measure reconciliation.
pub fn sync_direct<A: EntryIndex + ?Sized, B: EntryIndex + ?Sized>(
    a: &A,
    b: &B,
) -> Result<DirectOutcome, crate::SyncError> {
    let config = Config::new(GROUP, Vec::new());
    let mut sides = [
        Session::new(Role::Initiator, config.clone(), Box::new(AcceptAll), 0),
        Session::new(Role::Responder, config, Box::new(AcceptAll), 0),
    ];
    let mut out = DirectOutcome::default();
    loop {
        let mut moved = false;
        while let Some(bytes) = sides[0].poll_transmit() {
            moved = true;
            sides[1].handle_message(0, &bytes, b)?;
        }
        while let Some(bytes) = sides[1].poll_transmit() {
            moved = true;
            sides[0].handle_message(0, &bytes, a)?;
        }
        for (i, s) in sides.iter_mut().enumerate() {
            while let Some(e) = s.poll_event() {
                match e {
                    Event::Need(ids) => out.needs[i].extend(ids),
                    Event::Entry { id, .. } => out.fetched[i].push(id),
                    Event::Have(_) | Event::Done(_) => {}
                }
            }
        }
        if !moved {
            break;
        }
    }
    out.stats = [sides[0].stats(), sides[1].stats()];
    out.done = sides.iter().all(Session::is_done);
    Ok(out)
}
