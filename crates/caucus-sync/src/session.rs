//! One sync exchange between two nodes of a group, as a sans-IO state machine.
//!
//! The driver (the network crate, or the simulator) owns the transport and the clock:
//!
//! ```text
//! let mut s = Session::new(Role::Initiator, config, Box::new(verifier), now);
//! loop {
//!     while let Some(bytes) = s.poll_transmit() { send one frame }
//!     while let Some(event) = s.poll_event() { Need / Have / Entry (check, then store) / Done }
//!     wait for a frame or s.poll_timeout();
//!     s.handle_message(now, &frame, &store)?  or  s.handle_timeout(now)?
//! }
//! ```
//!
//! # Phases
//!
//! 1. **Hello.** Each side's first message is a [`Hello`]: protocol version, group id and
//!    a membership proof. The initiator sends first; the responder answers only after the
//!    initiator's hello verified, and the initiator starts reconciling only after the
//!    responder's did. No fingerprint, id or entry goes to a peer whose proof has not
//!    been accepted.
//! 2. **Reconcile.** Alternating [`Reconcile`] rounds (see [`crate::reconcile`]), numbered
//!    from 2; a round that asks nothing ends this phase for both sides.
//! 3. **Fetch.** As soon as a side learns ids it lacks ([`Event::Need`]), even while
//!    reconciling, it asks for them with [`Get`]s of at most
//!    [`Config::max_ids_per_request`] ids, keeping at most
//!    [`Config::max_requests_in_flight`] unanswered (back-pressure: a slow peer slows the
//!    requester, nothing queues without bound). Answers hold at most
//!    [`MAX_RESPONSE_BYTES`] of envelopes; ids left out are asked for again. Every
//!    received entry is checked to hash to a requested id and handed out as
//!    [`Event::Entry`]: the driver verifies and stores it.
//! 4. **Finish.** A side that has reconciled and fetched everything sends `Finish`; the
//!    session is done ([`Event::Done`]) once both sides have.
//!
//! # Authentication (the decision)
//!
//! Membership is proven **inside** the session, by the hellos, and checked through the
//! [`Authenticator`] the driver passes in: the proof bytes are opaque here (the crypto
//! crate defines them; they should be bound to the transport session, e.g. a signature
//! by the epoch's membership key over the Noise handshake hash, so that they cannot be
//! replayed on another connection). A driver that has already authenticated the
//! connection some other way passes [`AcceptAll`] and an empty proof. The session never
//! answers a `Get` or a `Reconcile` before the peer's hello verified.
//!
//! # Loss, timers, retries
//!
//! Over a reliable stream the timer is an idle timeout: nothing heard for
//! [`Config::rto_ms`] doubling over [`Config::max_retries`] ends the session (the driver
//! calls [`Session::note_activity`] while a large frame trickles in). With
//! [`Config::retransmit`] on (the simulator, or any lossy datagram transport) the session
//! also survives message loss: every message that expects an answer (the last hello or
//! reconcile round sent, every unanswered `Get`, an unacknowledged `Finish`) is sent
//! again when [`Session::poll_timeout`] passes with nothing heard, with exponential
//! backoff. Duplicates are harmless: a repeated round is
//! answered with the same reply, a repeated `Get` is answered again, a late answer to a
//! settled request is ignored. After [`Config::max_retries`] silent timeouts the session
//! ends with [`SyncError::Timeout`], unless this side had finished all its own work (then
//! it is [`Event::Done`]: only the peer's acknowledgement was lost).
//!
//! # Bounds
//!
//! Rounds ([`MAX_ROUNDS`]), ids to fetch ([`MAX_NEEDED_IDS`] per session, the rest
//! deferred to the next), requests in flight either
//! way ([`MAX_REQUESTS_IN_FLIGHT`], answers queued for the peer
//! [`MAX_QUEUED_ANSWERS`]), and every message field (see [`crate::message`]). Any breach
//! ends the session with a [`SyncError`]; no peer input can panic it.

use crate::index::EntryIndex;
use crate::message::{
    Blob, Entries, Get, Hello, MAX_IDS_PER_REQUEST, MAX_RESPONSE_BYTES, Message, PROTOCOL_VERSION,
    Reconcile, SyncError,
};
use crate::reconcile::{self, Reply};
use caucus_proto::{EntryId, GroupId};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fmt;

/// Time in milliseconds on a monotonic clock of the driver's choosing.
pub type Millis = u64;

/// Most reconciliation rounds in one session (round numbers count hellos too).
pub const MAX_ROUNDS: u32 = 1024;

/// Most ids one session fetches. Ids learnt beyond it are not fetched in this session
/// ([`Stats::needs_deferred`] counts them): the driver syncs again, and the next session
/// goes on from where this one stopped. This bounds memory without ever making a large
/// first sync impossible.
pub const MAX_NEEDED_IDS: usize = 1 << 18;

/// Most of our own requests unanswered at once (the cap of
/// [`Config::max_requests_in_flight`]).
pub const MAX_REQUESTS_IN_FLIGHT: usize = 8;

/// Most answers to the peer's requests waiting in our outbox; more means the peer
/// ignores back-pressure.
pub const MAX_QUEUED_ANSWERS: usize = 2 * MAX_REQUESTS_IN_FLIGHT;

/// Largest backoff exponent: the retransmission timeout stops doubling after this.
const MAX_BACKOFF_SHIFT: u32 = 6;

/// Which side of the exchange this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Opened the stream; sends the first hello and the first reconciliation round.
    Initiator,
    /// Accepted the stream.
    Responder,
}

/// Settings of one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The group to sync.
    pub group: GroupId,
    /// Our membership proof, sent in our hello.
    pub proof: Vec<u8>,
    /// First retransmission timeout, in milliseconds; doubles with each silent timeout.
    pub rto_ms: Millis,
    /// Silent timeouts in a row before the session gives up.
    pub max_retries: u32,
    /// Whether to send unanswered messages again on a timeout. Off over a reliable
    /// stream (QUIC, yamux), where the timer is only an idle timeout and a repeat would
    /// just duplicate a slow answer; on in the simulator, which loses messages.
    pub retransmit: bool,
    /// Our requests unanswered at once (at most [`MAX_REQUESTS_IN_FLIGHT`]).
    pub max_requests_in_flight: usize,
    /// Ids per request (at most [`MAX_IDS_PER_REQUEST`]).
    pub max_ids_per_request: usize,
}

impl Config {
    /// Defaults for a real network over a reliable stream: no retransmission, an idle
    /// timeout of about a minute (2 s doubling over 4 retries: 62 s of silence), 4
    /// requests of 128 ids in flight.
    pub fn new(group: GroupId, proof: Vec<u8>) -> Config {
        Config {
            group,
            proof,
            rto_ms: 2_000,
            max_retries: 4,
            retransmit: false,
            max_requests_in_flight: 4,
            max_ids_per_request: 128,
        }
    }
}

/// Checks a peer's membership proof (see the module docs).
pub trait Authenticator {
    /// Whether `proof` shows the peer belongs to `group` (the session has already
    /// checked that `group` is ours).
    fn verify(&mut self, group: &GroupId, proof: &[u8]) -> bool;
}

impl<F: FnMut(&GroupId, &[u8]) -> bool> Authenticator for F {
    fn verify(&mut self, group: &GroupId, proof: &[u8]) -> bool {
        self(group, proof)
    }
}

/// Accepts every proof: for drivers that authenticated the connection before starting
/// the session, and for tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct AcceptAll;

impl Authenticator for AcceptAll {
    fn verify(&mut self, _group: &GroupId, _proof: &[u8]) -> bool {
        true
    }
}

/// Something the driver should know or do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The peer holds these entries and we do not; the session will fetch them.
    Need(Vec<EntryId>),
    /// We hold these entries and the peer does not; it has been told, it will ask.
    Have(Vec<EntryId>),
    /// A fetched envelope, whose BLAKE3 hash is `id`, an id we asked for. Not yet
    /// verified in any other way: decode it, check its membership proof, then store it.
    Entry {
        /// Its content id.
        id: EntryId,
        /// The encoded envelope.
        bytes: Vec<u8>,
    },
    /// Both sides have everything the other had; the driver may close the stream once
    /// [`Session::poll_transmit`] is drained.
    Done(Stats),
}

/// Counters of one session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes handed out by [`Session::poll_transmit`].
    pub bytes_sent: u64,
    /// Bytes passed to [`Session::handle_message`].
    pub bytes_received: u64,
    /// Of those sent, bytes of hellos, reconciliation rounds and `Finish`.
    pub reconcile_bytes_sent: u64,
    /// Of those received, bytes of hellos, reconciliation rounds and `Finish`.
    pub reconcile_bytes_received: u64,
    /// Messages sent.
    pub messages_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Highest reconciliation round seen.
    pub rounds: u32,
    /// Entries received (answers to our requests).
    pub entries_received: u64,
    /// Entries sent (answers to the peer's requests).
    pub entries_sent: u64,
    /// Ids we asked for that the peer did not have after all.
    pub entries_missing: u64,
    /// Ids learnt but left for a later session, past [`MAX_NEEDED_IDS`]: when non-zero
    /// at [`Event::Done`], sync again.
    pub needs_deferred: u64,
    /// Messages sent again after a timeout.
    pub retransmits: u64,
}

/// One queued message, with what it is for the counters.
#[derive(Debug)]
struct Outgoing {
    bytes: Vec<u8>,
    is_answer: bool,
    is_reconcile: bool,
}

#[derive(Debug)]
struct InFlight {
    ids: Vec<EntryId>,
    bytes: Vec<u8>,
}

/// One sync exchange (see the module docs).
pub struct Session {
    role: Role,
    config: Config,
    auth: Box<dyn Authenticator + Send>,
    /// The peer's hello has been verified.
    peer_verified: bool,
    /// The round number we expect next from the peer.
    next_round: u32,
    /// Our last hello or round, kept to send again: (round, encoded).
    last_round: Option<(u32, Vec<u8>)>,
    /// We wait for an answer to `last_round`.
    awaiting_round: bool,
    /// Reconciliation is over for this side.
    reconciled: bool,
    /// Every id ever queued for fetching (for repeats and the bound).
    needed: HashSet<EntryId>,
    /// Ids still to request.
    wanted: VecDeque<EntryId>,
    in_flight: BTreeMap<u32, InFlight>,
    next_req: u32,
    finish_sent: bool,
    peer_finished: bool,
    done: bool,
    failed: Option<SyncError>,
    outbox: VecDeque<Outgoing>,
    answers_queued: usize,
    events: VecDeque<Event>,
    timer_base: Millis,
    retries: u32,
    stats: Stats,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.role)
            .field("peer_verified", &self.peer_verified)
            .field("next_round", &self.next_round)
            .field("reconciled", &self.reconciled)
            .field("wanted", &self.wanted.len())
            .field("in_flight", &self.in_flight.len())
            .field("finish_sent", &self.finish_sent)
            .field("peer_finished", &self.peer_finished)
            .field("done", &self.done)
            .field("failed", &self.failed)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Starts a session at time `now`. An initiator queues its hello at once.
    pub fn new(
        role: Role,
        mut config: Config,
        auth: Box<dyn Authenticator + Send>,
        now: Millis,
    ) -> Session {
        config.max_requests_in_flight = config
            .max_requests_in_flight
            .clamp(1, MAX_REQUESTS_IN_FLIGHT);
        config.max_ids_per_request = config.max_ids_per_request.clamp(1, MAX_IDS_PER_REQUEST);
        config.rto_ms = config.rto_ms.max(1);
        let mut s = Session {
            role,
            config,
            auth,
            peer_verified: false,
            next_round: match role {
                Role::Initiator => 1,
                Role::Responder => 0,
            },
            last_round: None,
            awaiting_round: false,
            reconciled: false,
            needed: HashSet::new(),
            wanted: VecDeque::new(),
            in_flight: BTreeMap::new(),
            next_req: 0,
            finish_sent: false,
            peer_finished: false,
            done: false,
            failed: None,
            outbox: VecDeque::new(),
            answers_queued: 0,
            events: VecDeque::new(),
            timer_base: now,
            retries: 0,
            stats: Stats::default(),
        };
        if role == Role::Initiator
            && let Err(e) = s.send_hello(0)
        {
            s.fail(e);
        }
        s
    }

    /// Which side this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Whether both sides finished.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The error that ended the session, if one did.
    pub fn error(&self) -> Option<&SyncError> {
        self.failed.as_ref()
    }

    /// Whether the session is over (done or failed): the driver can drop it once
    /// [`Session::poll_transmit`] is drained.
    pub fn is_closed(&self) -> bool {
        self.done || self.failed.is_some()
    }

    /// The next message to send, if any: one transport frame.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        let out = self.outbox.pop_front()?;
        if out.is_answer {
            self.answers_queued = self.answers_queued.saturating_sub(1);
        }
        let len = out.bytes.len() as u64;
        self.stats.bytes_sent += len;
        self.stats.messages_sent += 1;
        if out.is_reconcile {
            self.stats.reconcile_bytes_sent += len;
        }
        Some(out.bytes)
    }

    /// The next event, if any. Drain after every call that feeds the session.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] should be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Millis> {
        if self.is_closed() {
            return None;
        }
        let shift = self.retries.min(MAX_BACKOFF_SHIFT);
        Some(
            self.timer_base
                .saturating_add(self.config.rto_ms.saturating_mul(1 << shift)),
        )
    }

    /// Lets time pass: sends again what is unanswered, or gives up (see the module docs).
    pub fn handle_timeout(&mut self, now: Millis) -> Result<(), SyncError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.poll_timeout() {
            Some(deadline) if now >= deadline => {}
            _ => return Ok(()),
        }
        self.retries += 1;
        self.timer_base = now;
        if self.retries > self.config.max_retries {
            if self.own_work_done() && self.finish_sent {
                // Only the peer's `Finish` (or its receipt of ours) is missing.
                self.done = true;
                self.events.push_back(Event::Done(self.stats));
                return Ok(());
            }
            return Err(self.fail(SyncError::Timeout));
        }
        if !self.config.retransmit || !self.outbox.is_empty() {
            // An idle timeout only; or the driver has not even sent what is queued.
            return Ok(());
        }
        if self.awaiting_round
            && let Some((_, bytes)) = &self.last_round
        {
            let bytes = bytes.clone();
            self.retransmit(bytes, true);
        }
        let again: Vec<Vec<u8>> = self.in_flight.values().map(|f| f.bytes.clone()).collect();
        for bytes in again {
            self.retransmit(bytes, false);
        }
        if self.finish_sent && !self.peer_finished {
            let bytes = Message::Finish.encode()?;
            self.retransmit(bytes, true);
        }
        Ok(())
    }

    /// Tells the session that bytes of a frame are arriving (a large answer on a slow
    /// link), so that it does not count the time as silence.
    pub fn note_activity(&mut self, now: Millis) {
        if !self.is_closed() {
            self.retries = 0;
            self.timer_base = self.timer_base.max(now);
        }
    }

    /// Feeds one received message (one transport frame). An error ends the session:
    /// the driver closes the stream.
    pub fn handle_message<S: EntryIndex + ?Sized>(
        &mut self,
        now: Millis,
        bytes: &[u8],
        store: &S,
    ) -> Result<(), SyncError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.stats.bytes_received += bytes.len() as u64;
        self.stats.messages_received += 1;
        match self.handle_inner(bytes, store) {
            Ok(()) => {
                self.retries = 0;
                self.timer_base = now;
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    fn fail(&mut self, e: SyncError) -> SyncError {
        self.outbox.clear();
        self.failed = Some(e.clone());
        e
    }

    fn own_work_done(&self) -> bool {
        self.reconciled && self.wanted.is_empty() && self.in_flight.is_empty()
    }

    /// Whether every entry this side wanted has arrived (reconciled, nothing wanted or
    /// requested any more): a driver buffering fetched entries can store them now.
    pub fn fetched_all(&self) -> bool {
        self.own_work_done()
    }

    fn push(&mut self, bytes: Vec<u8>, is_answer: bool, is_reconcile: bool) {
        if is_answer {
            self.answers_queued += 1;
        }
        self.outbox.push_back(Outgoing {
            bytes,
            is_answer,
            is_reconcile,
        });
    }

    fn retransmit(&mut self, bytes: Vec<u8>, is_reconcile: bool) {
        self.stats.retransmits += 1;
        self.push(bytes, false, is_reconcile);
    }

    fn send_round(&mut self, round: u32, msg: &Message) -> Result<(), SyncError> {
        let bytes = msg.encode()?;
        self.last_round = Some((round, bytes.clone()));
        self.push(bytes, false, true);
        Ok(())
    }

    fn send_hello(&mut self, round: u32) -> Result<(), SyncError> {
        let hello = Message::Hello(Hello {
            version: PROTOCOL_VERSION,
            group: self.config.group,
            proof: self.config.proof.clone(),
        });
        self.send_round(round, &hello)?;
        self.awaiting_round = true;
        self.next_round = round + 1;
        Ok(())
    }

    /// The round the peer's hello carries.
    fn peer_hello_round(&self) -> u32 {
        match self.role {
            Role::Initiator => 1,
            Role::Responder => 0,
        }
    }

    /// Sorts a received round: `Ok(true)` to process it, `Ok(false)` to drop it (after
    /// answering a repeat with our last round again).
    fn check_round(&mut self, round: u32) -> Result<bool, SyncError> {
        if round == self.next_round {
            return Ok(true);
        }
        if round < self.next_round {
            if round + 2 == self.next_round {
                // The peer did not get our answer: send it again.
                if let Some((r, bytes)) = &self.last_round
                    && *r == round + 1
                {
                    let bytes = bytes.clone();
                    self.retransmit(bytes, true);
                }
            }
            return Ok(false);
        }
        Err(SyncError::WrongRound {
            expected: self.next_round,
            found: round,
        })
    }

    fn handle_inner<S: EntryIndex + ?Sized>(
        &mut self,
        bytes: &[u8],
        store: &S,
    ) -> Result<(), SyncError> {
        let msg = Message::decode(bytes)?;
        let is_reconcile = matches!(
            msg,
            Message::Hello(_) | Message::Reconcile(_) | Message::Finish
        );
        if is_reconcile {
            self.stats.reconcile_bytes_received += bytes.len() as u64;
        }
        if !self.peer_verified && !matches!(msg, Message::Hello(_)) {
            return Err(SyncError::Unexpected { what: msg.kind() });
        }
        match msg {
            Message::Hello(hello) => self.on_hello(hello, store),
            Message::Reconcile(r) => self.on_reconcile(r, store),
            Message::Get(get) => self.on_get(get, store),
            Message::Entries(entries) => self.on_entries(entries, store),
            Message::Finish => {
                if self.done {
                    // Our `Finish` was lost: say it again.
                    let bytes = Message::Finish.encode()?;
                    self.retransmit(bytes, true);
                }
                self.peer_finished = true;
                self.check_finish()
            }
        }
    }

    fn on_hello<S: EntryIndex + ?Sized>(
        &mut self,
        hello: Hello,
        store: &S,
    ) -> Result<(), SyncError> {
        let round = self.peer_hello_round();
        if !self.check_round(round)? {
            return Ok(());
        }
        if hello.group != self.config.group {
            return Err(SyncError::WrongGroup);
        }
        if !self.auth.verify(&hello.group, &hello.proof) {
            return Err(SyncError::NotAMember);
        }
        self.peer_verified = true;
        match self.role {
            Role::Responder => self.send_hello(1),
            Role::Initiator => {
                let reply = reconcile::initiate(store);
                self.send_reply(2, reply, store)
            }
        }
    }

    /// Sends a reconciliation reply as round `round` and takes in what it taught us.
    fn send_reply<S: EntryIndex + ?Sized>(
        &mut self,
        round: u32,
        reply: Reply,
        store: &S,
    ) -> Result<(), SyncError> {
        if round >= MAX_ROUNDS {
            return Err(SyncError::TooManyRounds { limit: MAX_ROUNDS });
        }
        self.stats.rounds = self.stats.rounds.max(round);
        let asks = reply.asks;
        let msg = Message::Reconcile(Reconcile {
            round,
            ranges: reply.ranges,
        });
        self.send_round(round, &msg)?;
        self.next_round = round + 1;
        self.awaiting_round = asks;
        if !asks {
            self.reconciled = true;
        }
        self.learn(reply.need, reply.have, store)?;
        self.check_finish()
    }

    fn on_reconcile<S: EntryIndex + ?Sized>(
        &mut self,
        r: Reconcile,
        store: &S,
    ) -> Result<(), SyncError> {
        if self.next_round < 2 {
            return Err(SyncError::Unexpected { what: "reconcile" });
        }
        if !self.check_round(r.round)? {
            return Ok(());
        }
        if self.reconciled {
            // A new round after one that asked nothing.
            return Err(SyncError::Unexpected { what: "reconcile" });
        }
        if r.round >= MAX_ROUNDS {
            return Err(SyncError::TooManyRounds { limit: MAX_ROUNDS });
        }
        self.stats.rounds = self.stats.rounds.max(r.round);
        let round = r.round;
        let ranges = r.validate()?;
        let peer_asks = ranges.iter().any(|r| {
            matches!(
                r.mode,
                crate::message::Mode::Fingerprint(_) | crate::message::Mode::Ids(_)
            )
        });
        let reply = reconcile::respond(store, ranges);
        self.awaiting_round = false;
        if peer_asks {
            self.send_reply(round + 1, reply, store)
        } else {
            // The peer asked nothing: reconciliation is over; nothing to answer.
            self.next_round = round + 1;
            self.reconciled = true;
            self.learn(reply.need, reply.have, store)?;
            self.check_finish()
        }
    }

    /// Queues newly learnt needs for fetching and reports needs and haves.
    fn learn<S: EntryIndex + ?Sized>(
        &mut self,
        need: Vec<EntryId>,
        have: Vec<EntryId>,
        store: &S,
    ) -> Result<(), SyncError> {
        let mut fresh = Vec::new();
        for id in need {
            if self.needed.len() >= MAX_NEEDED_IDS {
                if !self.needed.contains(&id) {
                    self.stats.needs_deferred += 1;
                }
                continue;
            }
            if self.needed.insert(id) {
                self.wanted.push_back(id);
                fresh.push(id);
            }
        }
        if !fresh.is_empty() {
            self.events.push_back(Event::Need(fresh));
        }
        if !have.is_empty() {
            self.events.push_back(Event::Have(have));
        }
        self.pump_requests(store)
    }

    /// Sends requests while there is room in flight.
    fn pump_requests<S: EntryIndex + ?Sized>(&mut self, store: &S) -> Result<(), SyncError> {
        while self.in_flight.len() < self.config.max_requests_in_flight && !self.wanted.is_empty() {
            let mut ids = Vec::with_capacity(self.config.max_ids_per_request);
            while ids.len() < self.config.max_ids_per_request {
                let Some(id) = self.wanted.pop_front() else {
                    break;
                };
                // It may have arrived meanwhile (gossip, another session).
                if !store.contains(&id) {
                    ids.push(id);
                }
            }
            if ids.is_empty() {
                break;
            }
            let req = self.next_req;
            self.next_req = self.next_req.wrapping_add(1);
            let bytes = Message::Get(Get {
                req,
                ids: ids.clone(),
            })
            .encode()?;
            self.push(bytes.clone(), false, false);
            self.in_flight.insert(req, InFlight { ids, bytes });
        }
        Ok(())
    }

    fn on_get<S: EntryIndex + ?Sized>(&mut self, get: Get, store: &S) -> Result<(), SyncError> {
        if self.answers_queued >= MAX_QUEUED_ANSWERS {
            return Err(SyncError::Flood {
                limit: MAX_QUEUED_ANSWERS,
            });
        }
        let mut entries = Vec::new();
        let mut missing = Vec::new();
        let mut total = 0usize;
        for id in get.ids {
            match store.get(&id) {
                Some(bytes) => {
                    if !entries.is_empty() && total + bytes.len() > MAX_RESPONSE_BYTES {
                        // Left out: the requester asks again.
                        break;
                    }
                    total += bytes.len();
                    entries.push(Blob(bytes));
                }
                None => missing.push(id),
            }
        }
        self.stats.entries_sent += entries.len() as u64;
        let bytes = Message::Entries(Entries {
            req: get.req,
            entries,
            missing,
        })
        .encode()?;
        self.push(bytes, true, false);
        Ok(())
    }

    fn on_entries<S: EntryIndex + ?Sized>(
        &mut self,
        answer: Entries,
        store: &S,
    ) -> Result<(), SyncError> {
        let Some(flight) = self.in_flight.remove(&answer.req) else {
            if answer.req < self.next_req {
                // A late repeat of an answer we already have.
                return Ok(());
            }
            return Err(SyncError::UnknownRequest { req: answer.req });
        };
        if answer.entries.is_empty() && answer.missing.is_empty() {
            return Err(SyncError::NoProgress);
        }
        let mut open: HashSet<EntryId> = flight.ids.iter().copied().collect();
        for Blob(bytes) in answer.entries {
            let id = EntryId::of_encoded(&bytes);
            if !open.remove(&id) {
                return Err(SyncError::Unrequested);
            }
            self.stats.entries_received += 1;
            self.events.push_back(Event::Entry { id, bytes });
        }
        for id in answer.missing {
            if !open.remove(&id) {
                return Err(SyncError::Unrequested);
            }
            self.stats.entries_missing += 1;
        }
        // Left out for size: ask again first, in request order.
        for id in flight.ids.iter().rev() {
            if open.contains(id) {
                self.wanted.push_front(*id);
            }
        }
        self.pump_requests(store)?;
        self.check_finish()
    }

    /// Sends `Finish` once our work is done, and ends the session once both sides have.
    fn check_finish(&mut self) -> Result<(), SyncError> {
        if !self.finish_sent && self.own_work_done() {
            self.finish_sent = true;
            let bytes = Message::Finish.encode()?;
            self.push(bytes, false, true);
        }
        if self.finish_sent && self.peer_finished && !self.done {
            self.done = true;
            self.events.push_back(Event::Done(self.stats));
        }
        Ok(())
    }
}
