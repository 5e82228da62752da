//! The `/caucus/sync/1` driver: one [`caucus_sync::Session`] over one libp2p stream.
//!
//! # Wire
//!
//! Every session message is one frame of [`crate::framing`] (4-byte length, then the
//! message), at most [`MAX_FRAME_BYTES`]; the length is checked before any allocation.
//! The initiator (the side that opened the stream) speaks first.
//!
//! # Membership proof
//!
//! The session's `Hello` carries a proof made by [`Backend::session_proof`] over a
//! binding of the group and both transport identities:
//!
//! ```text
//! "caucus sync proof v1" ‖ group (16 bytes) ‖ prover PeerId bytes ‖ verifier PeerId bytes
//! ```
//!
//! Noise has authenticated both PeerIds, so a proof cannot be replayed on a connection
//! between any other pair of nodes, nor reflected back to its maker. The responder learns
//! the group from the initiator's hello, checks that it syncs that group, and only then
//! starts its session: a node syncs no group it has not joined.
//!
//! # Tasks
//!
//! Three cooperating parts per stream, so neither side can deadlock the other by writing:
//! a reader task (frames into a bounded channel, with progress notes for large frames),
//! a writer task (frames from a bounded channel), and the session loop, which never
//! blocks on writing while frames arrive. Every read, write and the whole session have
//! timeouts ([`SyncLimits`]). Fetched envelopes are decoded, checked through
//! [`Backend::precheck_fetched`] and stored in batches; a single invalid one ends the session
//! and is reported as misbehaviour.

use crate::backend::{Backend, Validation};
use crate::framing::{FrameError, PREFIX_BYTES, read_frame, write_frame};
use crate::{NetEvent, SyncRole, SyncSummary};
use caucus_proto::{EntryId, Envelope, GroupId};
use caucus_sync::message::MAX_MESSAGE_BYTES;
use caucus_sync::{Config as SessionConfig, Event as SessionEvent, Message, Role, Session};
use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::{PeerId, Stream, StreamProtocol};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The protocol name.
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/caucus/sync/1");

/// Largest frame accepted on a sync stream: the largest sync message.
pub const MAX_FRAME_BYTES: usize = MAX_MESSAGE_BYTES;

/// Frames buffered between the reader task and the session loop.
pub const READER_QUEUE: usize = 4;

/// Frames buffered between the session loop and the writer task.
pub const WRITER_QUEUE: usize = 4;

/// Fetched entries stored in one call to [`Backend::store`] at most (one transaction
/// on a node: fewer, larger batches make an initial sync much cheaper).
pub const STORE_BATCH: usize = 4096;

/// Bytes of fetched envelopes buffered before they are stored.
pub const STORE_BATCH_BYTES: usize = 4 << 20;

/// Longest fetched entries wait for more before they are stored (none once the session
/// has fetched everything it wanted).
pub const STORE_DELAY: Duration = Duration::from_millis(50);

/// Domain string of the session binding (see the module docs).
pub const BINDING_DOMAIN: &[u8] = b"caucus sync proof v1";

/// Timeouts and concurrency bounds of sync sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncLimits {
    /// Sessions at once, all peers together (inbound and outbound).
    pub max_sessions: usize,
    /// Sessions at once with one peer.
    pub max_sessions_per_peer: usize,
    /// Longest a whole session may take.
    pub session_timeout: Duration,
    /// Longest the responder waits for the initiator's hello.
    pub hello_timeout: Duration,
    /// Longest one frame may take to arrive once its prefix has, and one write may take.
    pub frame_timeout: Duration,
    /// Sessions run again in a row while the previous one deferred needs.
    pub max_resyncs: u32,
}

impl Default for SyncLimits {
    fn default() -> Self {
        SyncLimits {
            max_sessions: 32,
            max_sessions_per_peer: 2,
            session_timeout: Duration::from_secs(600),
            hello_timeout: Duration::from_secs(10),
            frame_timeout: Duration::from_secs(30),
            max_resyncs: 8,
        }
    }
}

/// The binding a prover signs (see the module docs).
pub fn binding(group: &GroupId, prover: &PeerId, verifier: &PeerId) -> Vec<u8> {
    let mut b = Vec::with_capacity(BINDING_DOMAIN.len() + 16 + 2 * 40);
    b.extend_from_slice(BINDING_DOMAIN);
    b.extend_from_slice(group.as_bytes());
    b.extend_from_slice(&prover.to_bytes());
    b.extend_from_slice(&verifier.to_bytes());
    b
}

/// Session slots: the total and per-peer bounds, shared by every sync task.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    inner: Mutex<SlotsInner>,
}

#[derive(Debug, Default)]
struct SlotsInner {
    total: usize,
    per_peer: HashMap<PeerId, usize>,
    /// (peer, group) pairs with a session this side initiated, running.
    outbound: HashSet<(PeerId, GroupId)>,
}

/// A held slot, released on drop.
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<Slots>,
    peer: PeerId,
    outbound: Option<GroupId>,
}

impl Slots {
    /// Takes a slot for `peer` if the bounds allow; for an outbound session of `group`,
    /// also refuses a second concurrent one.
    pub(crate) fn acquire(
        self: &Arc<Self>,
        peer: PeerId,
        outbound: Option<GroupId>,
        limits: &SyncLimits,
    ) -> Option<Slot> {
        let mut s = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = s.per_peer.get(&peer).copied().unwrap_or(0);
        if s.total >= limits.max_sessions || n >= limits.max_sessions_per_peer {
            return None;
        }
        if let Some(g) = outbound
            && !s.outbound.insert((peer, g))
        {
            return None;
        }
        s.total += 1;
        s.per_peer.insert(peer, n + 1);
        Some(Slot {
            slots: self.clone(),
            peer,
            outbound,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = self
            .slots
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.per_peer.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                s.per_peer.remove(&self.peer);
            }
        }
        if let Some(g) = self.outbound {
            s.outbound.remove(&(self.peer, g));
        }
    }
}

/// Why a session ended without finishing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncFailure {
    /// The peer broke the sync protocol (the session's own error).
    #[error("protocol: {0}")]
    Protocol(#[from] caucus_sync::SyncError),
    /// A frame was malformed or the stream failed.
    #[error("frame: {0}")]
    Frame(#[from] FrameError),
    /// The peer sent an envelope that failed validation.
    #[error("peer sent an invalid entry")]
    InvalidEntry,
    /// The responder does not sync the group the initiator named.
    #[error("group not synced here")]
    UnknownGroup,
    /// This node cannot prove membership of the group.
    #[error("no membership proof for this group")]
    NoProof,
    /// A timeout passed (hello, frame, write or whole session).
    #[error("timed out")]
    Timeout,
    /// The stream could not be opened.
    #[error("could not open stream: {0}")]
    Open(String),
    /// The backend failed to store fetched entries.
    #[error("store: {0}")]
    Store(String),
}

impl SyncFailure {
    /// Whether the failure is the peer's fault (worth a penalty).
    pub fn is_misbehaviour(&self) -> bool {
        match self {
            // A failed proof may be an honest ex-member or a peer on an older epoch.
            SyncFailure::Protocol(e) => !matches!(
                e,
                caucus_sync::SyncError::Timeout
                    | caucus_sync::SyncError::NotAMember
                    | caucus_sync::SyncError::WrongGroup
            ),
            SyncFailure::Frame(FrameError::TooLarge { .. } | FrameError::Empty) => true,
            SyncFailure::InvalidEntry => true,
            _ => false,
        }
    }
}

/// What sync tasks tell the swarm task.
#[derive(Debug)]
pub(crate) enum SyncNote {
    /// The peer broke the protocol: penalize it.
    Misbehaved(PeerId),
    /// A session with the peer stored new entries of the group: pass them on to the
    /// group's other peers (entries fetched by sync are not gossiped).
    NewEntries(PeerId, GroupId),
}

/// Everything a sync task needs.
#[derive(Clone)]
pub(crate) struct SyncCtx {
    pub(crate) local: PeerId,
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) events: mpsc::Sender<NetEvent>,
    pub(crate) limits: SyncLimits,
    /// Tells the swarm task about misbehaving peers and new entries.
    pub(crate) notes: mpsc::Sender<SyncNote>,
}

enum Inbound {
    Progress,
    Frame(Vec<u8>),
    End(Result<(), FrameError>),
}

fn emit(ctx: &SyncCtx, ev: NetEvent) {
    if ctx.events.try_send(ev).is_err() {
        tracing::debug!("event queue full; sync event dropped");
    }
}

/// Runs one session over `stream`. For a responder, `first` is the initiator's hello
/// frame, already read and decoded to find the group.
async fn drive(
    ctx: &SyncCtx,
    peer: PeerId,
    group: GroupId,
    role: Role,
    stream: Stream,
    first: Option<Vec<u8>>,
) -> Result<SyncSummary, SyncFailure> {
    let proof = ctx
        .backend
        .session_proof(&group, &binding(&group, &ctx.local, &peer))
        .ok_or(SyncFailure::NoProof)?;
    // The peer's hello is checked by the driver, outside `Backend::with_index` (the
    // session would otherwise call back into the backend while it holds its index); the
    // session's authenticator only reads the verdict.
    let verdict = Arc::new(AtomicBool::new(false));
    let seen = verdict.clone();
    let auth = move |_: &GroupId, _: &[u8]| seen.load(Ordering::SeqCst);
    let hello = HelloCheck {
        binding: binding(&group, &peer, &ctx.local),
        verdict,
        done: false,
    };
    let start = Instant::now();
    let now_ms = move || start.elapsed().as_millis() as u64;
    let mut session = Session::new(role, SessionConfig::new(group, proof), Box::new(auth), 0);

    let (mut rd, mut wr) = stream.split();
    let (in_tx, mut in_rx) = mpsc::channel::<Inbound>(READER_QUEUE);
    let frame_timeout = ctx.limits.frame_timeout;
    let reader = tokio::spawn(async move {
        loop {
            let progress_tx = in_tx.clone();
            let r = read_frame(&mut rd, MAX_FRAME_BYTES, |_| {
                let _ = progress_tx.try_send(Inbound::Progress);
            })
            .await;
            match r {
                Ok(f) => {
                    if in_tx.send(Inbound::Frame(f)).await.is_err() {
                        return;
                    }
                }
                Err(FrameError::Closed) => {
                    let _ = in_tx.send(Inbound::End(Ok(()))).await;
                    return;
                }
                Err(e) => {
                    let _ = in_tx.send(Inbound::End(Err(e))).await;
                    return;
                }
            }
        }
    });
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(WRITER_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(frame) = out_rx.recv().await {
            match tokio::time::timeout(frame_timeout, write_frame(&mut wr, &frame)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(SyncFailure::Frame(e)),
                Err(_) => return Err(SyncFailure::Timeout),
            }
        }
        let _ = tokio::time::timeout(frame_timeout, wr.close()).await;
        Ok(())
    });
    let _abort = AbortOnDrop(reader.abort_handle());

    let mut hello = hello;
    let result = session_loop(
        ctx,
        peer,
        group,
        &mut session,
        &mut hello,
        first,
        &mut in_rx,
        &out_tx,
        now_ms,
    )
    .await;
    drop(out_tx);
    // Let the writer flush what the session queued last (its `Finish`), bounded.
    let flushed = tokio::time::timeout(frame_timeout, writer).await;
    let stats = session.stats();
    let summary = result?;
    if let Ok(Ok(Err(e))) = flushed {
        tracing::debug!(%peer, "sync writer failed after done: {e}");
    }
    Ok(SyncSummary {
        wire_bytes_sent: stats.bytes_sent + PREFIX_BYTES as u64 * stats.messages_sent,
        wire_bytes_received: stats.bytes_received + PREFIX_BYTES as u64 * stats.messages_received,
        ..summary
    })
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[allow(clippy::too_many_arguments)]
async fn session_loop(
    ctx: &SyncCtx,
    peer: PeerId,
    group: GroupId,
    session: &mut Session,
    hello: &mut HelloCheck,
    first: Option<Vec<u8>>,
    in_rx: &mut mpsc::Receiver<Inbound>,
    out_tx: &mpsc::Sender<Vec<u8>>,
    now_ms: impl Fn() -> u64,
) -> Result<SyncSummary, SyncFailure> {
    let deadline = Instant::now() + ctx.limits.session_timeout;
    let mut pending: Option<Vec<u8>> = None;
    let mut batch: Vec<(EntryId, Vec<u8>)> = Vec::new();
    let mut batch_since: Option<Instant> = None;
    let mut batch_bytes = 0usize;
    let mut stored: u64 = 0;
    let mut finished = None;
    if let Some(frame) = first {
        handle_frame(ctx, group, session, hello, &frame, now_ms())?;
    }
    tracing::trace!(%peer, "session loop");
    // At most one batch is checked and stored off this task while fetching goes on.
    let mut storing: Option<tokio::task::JoinHandle<Result<u64, SyncFailure>>> = None;
    loop {
        // Events first: they may carry entries to check and store.
        while let Some(ev) = session.poll_event() {
            match ev {
                SessionEvent::Entry { id, bytes } => {
                    batch_since.get_or_insert_with(Instant::now);
                    batch_bytes += bytes.len();
                    batch.push((id, bytes));
                }
                SessionEvent::Done(stats) => finished = Some(stats),
                SessionEvent::Need(_) | SessionEvent::Have(_) => {}
            }
        }
        if pending.is_none() {
            pending = session.poll_transmit();
        }
        if finished.is_some() && pending.is_none() {
            break;
        }
        if let Some(e) = session.error() {
            return Err(SyncFailure::Protocol(e.clone()));
        }
        // A partial batch waits a little for more (one transaction for many frames).
        let ready = !batch.is_empty()
            && (batch.len() >= STORE_BATCH
                || batch_bytes >= STORE_BATCH_BYTES
                || session.fetched_all()
                || batch_since.is_some_and(|t| Instant::now() >= t + STORE_DELAY));
        if ready
            && storing.is_some()
            && (batch.len() >= 2 * STORE_BATCH || batch_bytes >= 2 * STORE_BATCH_BYTES)
        {
            // Back-pressure: checking and storing is the slower side.
            if let Some(h) = storing.take() {
                stored += joined(h.await)?;
                progress(ctx, peer, group, stored, session);
            }
        }
        if ready && storing.is_none() {
            storing = Some(spawn_store(ctx, group, std::mem::take(&mut batch)));
            (batch_since, batch_bytes) = (None, 0);
        }
        let timer = session
            .poll_timeout()
            .map(|ms| {
                let due = ms.saturating_sub(now_ms());
                Instant::now() + Duration::from_millis(due)
            })
            .unwrap_or(deadline)
            .min(deadline);
        let timer = match batch_since {
            Some(t) if storing.is_none() => timer.min(t + STORE_DELAY),
            _ => timer,
        };
        tokio::select! {
            permit = out_tx.reserve(), if pending.is_some() => {
                match permit {
                    Ok(p) => {
                        if let Some(frame) = pending.take() {
                            tracing::trace!(%peer, len = frame.len(), "frame out");
                            p.send(frame);
                        }
                    }
                    Err(_) => return Err(SyncFailure::Frame(FrameError::Closed)),
                }
            }
            msg = in_rx.recv() => match msg {
                Some(Inbound::Frame(ref f)) if tracing::enabled!(tracing::Level::TRACE) => {
                    tracing::trace!(%peer, len = f.len(), "frame in");
                    if let Some(Inbound::Frame(frame)) = msg {
                        handle_frame(ctx, group, session, hello, &frame, now_ms())?;
                    }
                }
                Some(Inbound::Frame(frame)) => handle_frame(ctx, group, session, hello, &frame, now_ms())?,
                Some(Inbound::Progress) => session.note_activity(now_ms()),
                Some(Inbound::End(Ok(()))) | None => {
                    return Err(SyncFailure::Frame(FrameError::Closed));
                }
                Some(Inbound::End(Err(e))) => return Err(SyncFailure::Frame(e)),
            },
            done = async {
                match storing.as_mut() {
                    Some(h) => h.await,
                    None => std::future::pending().await,
                }
            }, if storing.is_some() => {
                storing = None;
                stored += joined(done)?;
                progress(ctx, peer, group, stored, session);
            }
            () = tokio::time::sleep_until(timer) => {
                if Instant::now() >= deadline {
                    return Err(SyncFailure::Timeout);
                }
                session.handle_timeout(now_ms())?;
            }
        }
    }
    if let Some(h) = storing.take() {
        stored += joined(h.await)?;
    }
    if !batch.is_empty() {
        stored += joined(spawn_store(ctx, group, batch).await)?;
    }
    let stats = finished.unwrap_or_default();
    Ok(SyncSummary {
        entries_stored: stored,
        entries_sent: stats.entries_sent,
        entries_received: stats.entries_received,
        rounds: stats.rounds,
        needs_deferred: stats.needs_deferred,
        wire_bytes_sent: 0,
        wire_bytes_received: 0,
    })
}

/// The driver's check of the peer's hello (see [`drive`]).
struct HelloCheck {
    binding: Vec<u8>,
    verdict: Arc<AtomicBool>,
    done: bool,
}

fn handle_frame(
    ctx: &SyncCtx,
    group: GroupId,
    session: &mut Session,
    hello: &mut HelloCheck,
    frame: &[u8],
    now: u64,
) -> Result<(), SyncFailure> {
    if !hello.done
        && let Ok(Message::Hello(h)) = Message::decode(frame)
    {
        hello.done = true;
        let ok = h.group == group
            && ctx
                .backend
                .verify_session_proof(&group, &hello.binding, &h.proof);
        hello.verdict.store(ok, Ordering::SeqCst);
    }
    let mut result = Ok(());
    let known = ctx.backend.with_index(&group, &mut |idx| {
        result = session.handle_message(now, frame, idx);
    });
    if !known {
        return Err(SyncFailure::UnknownGroup);
    }
    result.map_err(SyncFailure::Protocol)
}

/// Checks (decode, group, [`Backend::precheck_fetched`]) and stores one batch of fetched
/// entries on a blocking thread: a single invalid entry fails the session.
fn spawn_store(
    ctx: &SyncCtx,
    group: GroupId,
    batch: Vec<(EntryId, Vec<u8>)>,
) -> tokio::task::JoinHandle<Result<u64, SyncFailure>> {
    let ctx = ctx.clone();
    tokio::task::spawn_blocking(move || {
        let mut accepted = Vec::with_capacity(batch.len());
        for (id, bytes) in batch {
            let env = Envelope::decode(&bytes).map_err(|_| SyncFailure::InvalidEntry)?;
            if env.header.group != group {
                return Err(SyncFailure::InvalidEntry);
            }
            match ctx.backend.precheck_fetched(&group, &env) {
                Validation::Accept => accepted.push((id, bytes)),
                Validation::Ignore => {}
                Validation::Reject => return Err(SyncFailure::InvalidEntry),
            }
        }
        if accepted.is_empty() {
            return Ok(0);
        }
        store(&ctx, group, accepted)
    })
}

fn joined(r: Result<Result<u64, SyncFailure>, tokio::task::JoinError>) -> Result<u64, SyncFailure> {
    r.map_err(|e| SyncFailure::Store(format!("store task: {e}")))?
}

fn progress(ctx: &SyncCtx, peer: PeerId, group: GroupId, stored: u64, session: &Session) {
    emit(
        ctx,
        NetEvent::SyncProgress {
            peer,
            group,
            entries_stored: stored,
            bytes_received: session.stats().bytes_received,
        },
    );
}

fn store(
    ctx: &SyncCtx,
    group: GroupId,
    entries: Vec<(EntryId, Vec<u8>)>,
) -> Result<u64, SyncFailure> {
    let ids: Vec<EntryId> = entries.iter().map(|(id, _)| *id).collect();
    let n = ctx.backend.store(&group, entries).map_err(|e| match e {
        crate::BackendError::Refused(_) => SyncFailure::InvalidEntry,
        e => SyncFailure::Store(e.to_string()),
    })?;
    for id in ids {
        emit(
            ctx,
            NetEvent::EntryReceived {
                group,
                id,
                origin: crate::Origin::Sync,
            },
        );
    }
    Ok(n as u64)
}

fn report(ctx: &SyncCtx, peer: PeerId, group: GroupId, result: &Result<SyncSummary, SyncFailure>) {
    match result {
        Ok(summary) => {
            if summary.entries_stored > 0 {
                let _ = ctx.notes.try_send(SyncNote::NewEntries(peer, group));
            }
            tracing::debug!(%peer, entries = summary.entries_stored, sent = summary.wire_bytes_sent, "sync finished");
            emit(
                ctx,
                NetEvent::SyncFinished {
                    peer,
                    group,
                    summary: *summary,
                },
            );
        }
        Err(e) => {
            tracing::debug!(%peer, "sync failed: {e}");
            if e.is_misbehaviour() {
                let _ = ctx.notes.try_send(SyncNote::Misbehaved(peer));
            }
            emit(
                ctx,
                NetEvent::SyncFailed {
                    peer,
                    group,
                    reason: e.to_string(),
                },
            );
        }
    }
}

/// Runs outbound sessions with `peer` for `group`, again while the last one deferred
/// needs (at most [`SyncLimits::max_resyncs`] times).
pub(crate) async fn run_outbound(
    ctx: SyncCtx,
    mut control: libp2p_stream::Control,
    peer: PeerId,
    group: GroupId,
    slot: Slot,
) {
    let _slot = slot;
    for _ in 0..=ctx.limits.max_resyncs {
        emit(
            &ctx,
            NetEvent::SyncStarted {
                peer,
                group,
                role: SyncRole::Initiator,
            },
        );
        tracing::debug!(%peer, "opening sync stream");
        let open = tokio::time::timeout(
            ctx.limits.frame_timeout,
            control.open_stream(peer, SYNC_PROTOCOL),
        )
        .await;
        let result = match open {
            Err(_) => Err(SyncFailure::Timeout),
            Ok(Err(e)) => Err(SyncFailure::Open(e.to_string())),
            Ok(Ok(stream)) => drive(&ctx, peer, group, Role::Initiator, stream, None).await,
        };
        report(&ctx, peer, group, &result);
        match result {
            Ok(s) if s.needs_deferred > 0 => continue,
            _ => return,
        }
    }
}

/// Serves one inbound stream: reads the hello to learn the group, then runs the session.
pub(crate) async fn run_inbound(ctx: SyncCtx, peer: PeerId, mut stream: Stream, slot: Slot) {
    let _slot = slot;
    tracing::debug!(%peer, "inbound sync stream");
    let first = tokio::time::timeout(
        ctx.limits.hello_timeout,
        read_frame(&mut stream, MAX_FRAME_BYTES, |_| {}),
    )
    .await;
    let frame = match first {
        Err(_) => {
            tracing::debug!(%peer, "sync hello timed out");
            return;
        }
        Ok(Err(e)) => {
            tracing::debug!(%peer, "sync hello unreadable: {e}");
            if SyncFailure::Frame(e).is_misbehaviour() {
                let _ = ctx.notes.try_send(SyncNote::Misbehaved(peer));
            }
            return;
        }
        Ok(Ok(f)) => f,
    };
    let group = match Message::decode(&frame) {
        Ok(Message::Hello(h)) => h.group,
        _ => {
            tracing::debug!(%peer, "sync stream did not start with a hello");
            let _ = ctx.notes.try_send(SyncNote::Misbehaved(peer));
            return;
        }
    };
    let mut known = false;
    ctx.backend.with_index(&group, &mut |_| known = true);
    if !known {
        // Not a group of ours: say nothing about which groups we do sync.
        tracing::debug!(%peer, "sync for a group not joined here");
        let _ = stream.close().await;
        return;
    }
    emit(
        &ctx,
        NetEvent::SyncStarted {
            peer,
            group,
            role: SyncRole::Responder,
        },
    );
    let result = drive(&ctx, peer, group, Role::Responder, stream, Some(frame)).await;
    report(&ctx, peer, group, &result);
}
