//! Urgent-notice fan-out: one organizer's urgent notice until all N nodes hold it (each
//! node's `EntryStored` event), next to bare libp2p gossipsub (same transport, same
//! gossipsub settings, no validation, no storage) publishing the same envelope bytes on
//! the same topology: node i dials node 0 and node i − 1.

use crate::procs::{Busy, own_cpu};
use crate::{WAIT, ms};
use anyhow::{Context, Result, bail};
use caucus_crypto::at_rest::KdfParams;
use caucus_net::{Multiaddr, gossip};
use caucus_node::{Node, NodeConfig, NodeEvent, Running, now_ms};
use caucus_proto::{GroupId, NoticeContent, NoticeId, Operation};
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic};
use libp2p::swarm::SwarmEvent;
use std::io::Write;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Commands queued to one bare gossipsub node.
const BARE_COMMANDS: usize = 64;
/// Deliveries queued from all bare nodes to the measuring loop.
const BARE_DELIVERIES: usize = 1 << 16;

// ---- caucus ------------------------------------------------------------------------

fn config(peers: Vec<Multiaddr>, auto_ack: bool) -> NodeConfig {
    let mut net = caucus_net::Config::loopback();
    net.bootstrap = peers;
    // Node 0 is dialed by every other node: at N = 200 the default 256 connections (and
    // 64 pending handshakes) are too few.
    net.max_connections = 1024;
    net.max_pending_incoming = 256;
    NodeConfig {
        net,
        auto_ack_urgent: auto_ack,
    }
}

/// `n` real nodes in one group: node 0 founds it, every other joins with an invite and
/// dials node 0 and its predecessor.
async fn caucus_committee(
    dir: &std::path::Path,
    n: usize,
    auto_ack: bool,
) -> Result<(GroupId, Vec<Running>)> {
    let kdf = KdfParams::insecure_for_tests();
    let first = Node::init(&dir.join("n0"), b"bench", "organizer 0", "laptop", kdf)?;
    let first = Running::start(first, config(Vec::new(), auto_ack)).await?;
    let addr0 = first.wait_listening(WAIT).await?;
    let g = first.create_group("bench committee").await?;
    let mut nodes = vec![first];
    let mut prev = addr0.clone();
    for i in 1..n {
        let text: Vec<String> = addr0.iter().map(ToString::to_string).collect();
        let ticket =
            nodes[0].with_node(|node| node.create_invite(&g, text, now_ms() + 3_600_000))?;
        let node = Node::init(
            &dir.join(format!("n{i}")),
            b"bench",
            &format!("organizer {i}"),
            "laptop",
            kdf,
        )?;
        let mut peers = addr0.clone();
        peers.extend(prev.iter().cloned());
        let r = Running::start(node, config(peers, auto_ack)).await?;
        prev = r.wait_listening(WAIT).await?;
        r.join(&ticket, &[]).await?;
        nodes.push(r);
    }
    let deadline = Instant::now() + WAIT;
    while !nodes.iter().all(|r| {
        r.with_node(|node| {
            node.state(&g)
                .map(|s| s.current_members().count())
                .unwrap_or(0)
        }) == n
    }) {
        if Instant::now() > deadline {
            bail!("the committee of {n} did not settle");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((g, nodes))
}

/// What a node's listener reports in a round.
enum Arrival {
    /// Node `.0` verified the notice's proof at `.1` and stored it at `.2`.
    Held(usize, Instant, Instant),
    /// Node `.0`'s listener lost events (it fell behind its queue) or was told of many
    /// entries at once: its store must be looked into.
    Unsure(usize),
}

/// What one fan-out run measured.
pub(crate) struct Fanout {
    /// Per (node, round): from the write until the node stored the notice (ms).
    pub(crate) stored: Vec<f64>,
    /// Per (node, round): until the notice reached the node by gossip with its proof
    /// verified, and was passed on (ms).
    pub(crate) verified: Vec<f64>,
    /// One envelope's bytes.
    pub(crate) sample: Vec<u8>,
    /// The process's CPU over each round, from the write until the last node stored.
    pub(crate) busy: Busy,
}

/// Per-node latencies of `rounds` urgent notices from node 0.
pub(crate) async fn caucus_fanout(n: usize, rounds: usize, auto_ack: bool) -> Result<Fanout> {
    let dir = tempfile::tempdir()?;
    let (g, nodes) = caucus_committee(dir.path(), n, auto_ack).await?;
    // Let the gossip mesh form (a few heartbeats) before timing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut lat = Vec::new();
    let mut lat_verified = Vec::new();
    let mut sample = Vec::new();
    let mut busy = Busy::default();
    for round in 0..rounds {
        let notice = round_notice(round);
        // One listener per node, stamping the moments its node reports the entry's proof
        // verified on arrival (and passed on) and the entry stored.
        let (tx, mut arrivals) = mpsc::channel(n);
        let (id_tx, _) = tokio::sync::broadcast::channel::<caucus_proto::EntryId>(1);
        for (index, r) in nodes.iter().enumerate().skip(1) {
            let mut rx = r.subscribe();
            let tx = tx.clone();
            let mut want = id_tx.subscribe();
            tokio::spawn(async move {
                let mut verified: Vec<(caucus_proto::EntryId, Instant)> = Vec::new();
                let mut stored: Vec<(caucus_proto::EntryId, Instant)> = Vec::new();
                let mut target = None;
                loop {
                    if let Some(id) = target
                        && let Some((_, at)) = stored.iter().find(|(s, _)| *s == id)
                    {
                        let first = verified.iter().find(|(s, _)| *s == id).map(|(_, v)| *v);
                        let _ = tx
                            .send(Arrival::Held(index, first.unwrap_or(*at), *at))
                            .await;
                        return;
                    }
                    tokio::select! {
                        // The round is over (seen in the store, or given up).
                        _ = tx.closed() => return,
                        id = want.recv(), if target.is_none() => match id {
                            Ok(id) => target = Some(id),
                            Err(_) => return,
                        },
                        ev = rx.recv() => match ev {
                            Ok(NodeEvent::GossipVerified { id, .. }) => {
                                verified.push((id, Instant::now()));
                            }
                            Ok(NodeEvent::EntryStored { id, .. }) => {
                                stored.push((id, Instant::now()));
                            }
                            // Events lost, or many entries reported as one batch (a
                            // sync that brought the notice with many acknowledgements).
                            Ok(NodeEvent::EntriesStored { .. })
                            | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                                let _ = tx.send(Arrival::Unsure(index)).await;
                            }
                            Ok(_) => {}
                            Err(_) => return,
                        },
                    }
                }
            });
        }
        drop(tx);
        let started = Instant::now();
        let cpu0 = own_cpu();
        let id = nodes[0].write(&g, urgent_notice(round)).await?;
        let _ = id_tx.send(id);
        if sample.is_empty() {
            sample = nodes[0]
                .with_node(|node| node.store().entry(&id))?
                .context("own entry not stored")?;
        }
        // Each node's (verified, stored) moments. A node whose listener lagged behind its
        // event queue (200 nodes acknowledging at once), or that stored the notice in a
        // batch reported as one event (by sync, with many acknowledgements), may never
        // report it by id: its store is looked into every 50 ms, and both moments are
        // when it was seen holding the notice.
        let mut got: Vec<Option<(Instant, Instant)>> = vec![None; n];
        let mut lagged = vec![false; n];
        let mut listening = true;
        let deadline = Instant::now() + WAIT;
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        while got.iter().skip(1).any(Option::is_none) {
            if Instant::now() > deadline {
                let held = got.iter().skip(1).filter(|g| g.is_some()).count();
                bail!("only {held} of {} nodes got the notice", n - 1);
            }
            tokio::select! {
                arrival = arrivals.recv(), if listening => match arrival {
                    Some(Arrival::Held(i, verified, stored)) => {
                        got[i].get_or_insert((verified, stored));
                    }
                    Some(Arrival::Unsure(i)) => lagged[i] = true,
                    None => listening = false,
                },
                _ = tick.tick() => {
                    for (i, r) in nodes.iter().enumerate().skip(1) {
                        if got[i].is_none()
                            && lagged[i]
                            && r.with_node(|node| node.store().has_entry(&id)).unwrap_or(false)
                        {
                            let seen = Instant::now();
                            got[i] = Some((seen, seen));
                        }
                    }
                }
            }
        }
        busy.add(started, cpu0);
        for (verified, stored) in got.into_iter().flatten() {
            lat.push(ms(stored.duration_since(started)));
            lat_verified.push(ms(verified.duration_since(started)));
        }
        // Let the acknowledgements of this round settle before the next.
        let settle = Instant::now() + WAIT;
        while auto_ack
            && Instant::now() < settle
            && nodes[0].with_node(|node| {
                node.delivery(&g, &notice)
                    .is_some_and(|d| d.acked < d.total)
            })
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for r in nodes {
        r.shutdown().await?;
    }
    Ok(Fanout {
        stored: lat,
        verified: lat_verified,
        sample,
        busy,
    })
}

// ---- bare gossipsub ------------------------------------------------------------------

#[derive(libp2p::swarm::NetworkBehaviour)]
struct Bare {
    gossipsub: gossipsub::Behaviour,
}

/// A bare node: tcp + noise + yamux + gossipsub, nothing else.
async fn bare_node(
    index: usize,
    topic: IdentTopic,
    got: mpsc::Sender<(usize, Vec<u8>, Instant)>,
) -> Result<(mpsc::Sender<BareCmd>, Multiaddr)> {
    let config = gossipsub::ConfigBuilder::default()
        .max_transmit_size(gossip::MAX_TRANSMIT_BYTES)
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .message_id_fn(|m: &gossipsub::Message| gossipsub::MessageId::from(blake3_id(&m.data)))
        .flood_publish(true)
        .heartbeat_initial_delay(Duration::from_millis(100))
        .heartbeat_interval(Duration::from_secs(1))
        .build()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )?
        .with_behaviour(|_| {
            Ok(Bare {
                gossipsub: gossipsub::Behaviour::new(
                    gossipsub::MessageAuthenticity::Anonymous,
                    config,
                )
                .map_err(|e| std::io::Error::other(e.to_string()))?,
            })
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    swarm.behaviour_mut().gossipsub.subscribe(&topic)?;
    swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address
                .with_p2p(*swarm.local_peer_id())
                .unwrap_or_else(|a| a);
        }
    };
    let (tx, mut rx) = mpsc::channel(BARE_COMMANDS);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                ev = swarm.select_next_some() => {
                    if let SwarmEvent::Behaviour(BareEvent::Gossipsub(gossipsub::Event::Message { message, .. })) = ev {
                        let _ = got.try_send((index, message.data, Instant::now()));
                    }
                }
                cmd = rx.recv() => match cmd {
                    Some(BareCmd::Dial(a)) => { let _ = swarm.dial(a); }
                    Some(BareCmd::Publish(bytes)) => { let _ = swarm.behaviour_mut().gossipsub.publish(topic.clone(), bytes); }
                    Some(BareCmd::Peers(reply)) => { let _ = reply.send(swarm.behaviour().gossipsub.all_peers().count()); }
                    None => break,
                }
            }
        }
    });
    Ok((tx, addr))
}

enum BareCmd {
    Dial(Multiaddr),
    Publish(Vec<u8>),
    Peers(tokio::sync::oneshot::Sender<usize>),
}

/// The bytes bare gossipsub publishes in `round`: the size of `sample`, a fresh message
/// each round (gossipsub deduplicates by content).
fn round_message(sample: &[u8], round: usize) -> Vec<u8> {
    let mut bytes = sample.to_vec();
    let len = bytes.len();
    let tail = len.saturating_sub(8);
    bytes[tail..].copy_from_slice(&(round as u64 + 1).to_le_bytes()[..len - tail]);
    bytes
}

fn blake3_id(data: &[u8]) -> Vec<u8> {
    caucus_proto::EntryId::of_encoded(data).as_bytes().to_vec()
}

/// Per-node latencies (ms) of `rounds` publishes of `sample`-sized messages from node 0,
/// and the process's CPU over each round until the last node got the message.
pub(crate) async fn bare_fanout(
    n: usize,
    rounds: usize,
    sample: &[u8],
) -> Result<(Vec<f64>, Busy)> {
    let topic = IdentTopic::new("bench");
    let (got_tx, mut got) = mpsc::channel(BARE_DELIVERIES);
    let mut nodes = Vec::new();
    let mut addrs: Vec<Multiaddr> = Vec::new();
    for i in 0..n {
        let (tx, addr) = bare_node(i, topic.clone(), got_tx.clone()).await?;
        for a in dials(&addrs) {
            tx.send(BareCmd::Dial(a.clone())).await?;
        }
        nodes.push(tx);
        addrs.push(addr);
    }
    let deadline = Instant::now() + WAIT;
    for tx in &nodes {
        loop {
            let (reply, rx) = tokio::sync::oneshot::channel();
            tx.send(BareCmd::Peers(reply)).await?;
            if rx.await? > 0 {
                break;
            }
            if Instant::now() > deadline {
                bail!("bare gossipsub mesh did not form");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut lat = Vec::new();
    let mut busy = Busy::default();
    for round in 0..rounds {
        let bytes = round_message(sample, round);
        let started = Instant::now();
        let cpu0 = own_cpu();
        nodes[0].send(BareCmd::Publish(bytes.clone())).await?;
        let mut seen = std::collections::BTreeSet::new();
        while seen.len() < n - 1 {
            let (i, data, at) = tokio::time::timeout(WAIT, got.recv())
                .await
                .context("bare gossipsub: a node never got the message")?
                .context("bare nodes stopped")?;
            if data == bytes && seen.insert(i) {
                lat.push(ms(at.duration_since(started)));
            }
        }
        busy.add(started, cpu0);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok((lat, busy))
}

// ---- separate processes ----------------------------------------------------------------

/// The urgent notice of fan-out round `round` (distinct ids, the same content).
fn urgent_notice(round: usize) -> Operation {
    Operation::NoticePosted {
        notice: round_notice(round),
        content: NoticeContent {
            title: "Emergency committee meeting".into(),
            starts_at_ms: now_ms() + 3_600_000,
            place: "Union hall, room 2".into(),
            body: "Bring the petition sheets.".into(),
            urgent: true,
            expires_at_ms: None,
        },
    }
}

/// A distinct notice id per round (its first four bytes, as `caucus run` prints them,
/// differ for any number of rounds the harness takes).
fn round_notice(round: usize) -> NoticeId {
    let mut id = [0xa5; 16];
    id[..8].copy_from_slice(&(round as u64).to_le_bytes());
    NoticeId(id)
}

/// `caucus-bench --bare-node`: one bare gossipsub node in its own process, driven over
/// stdin (`dial ADDR`, `publish HEX`, `peers`) and reporting on stdout (`listening on
/// ADDR`, `peers N`, `got ID` for each message delivered, ID the hex of its first 8
/// id bytes).
pub(crate) async fn bare_node_process() -> Result<()> {
    let (got_tx, mut got) = mpsc::channel(BARE_DELIVERIES);
    let (node, addr) = bare_node(0, IdentTopic::new("bench"), got_tx).await?;
    println!("listening on {addr}");
    let (line_tx, mut lines) = mpsc::channel(BARE_COMMANDS);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if line_tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    loop {
        tokio::select! {
            delivered = got.recv() => match delivered {
                Some((_, data, _)) => println!("got {}", hex::encode(&blake3_id(&data)[..8])),
                None => return Ok(()),
            },
            line = lines.recv() => {
                // stdin closed: the harness is done with this node.
                let Some(line) = line else { return Ok(()) };
                let (verb, arg) = line.split_once(' ').unwrap_or((line.as_str(), ""));
                match verb {
                    "dial" => node.send(BareCmd::Dial(arg.parse()?)).await?,
                    "publish" => node.send(BareCmd::Publish(hex::decode(arg)?)).await?,
                    "peers" => {
                        let (reply, rx) = tokio::sync::oneshot::channel();
                        node.send(BareCmd::Peers(reply)).await?;
                        println!("peers {}", rx.await?);
                    }
                    other => bail!("bare node: unknown command {other}"),
                }
            }
        }
    }
}

/// Fan-out with every node its own process, in the same run: N `caucus run` processes
/// (urgent notices acknowledged, as in use) and N bare gossipsub processes.
pub(crate) struct ProcessFanout {
    /// Per (node, round): from handing the notice to node 0's control socket until the
    /// node printed that it received it (ms).
    pub(crate) caucus: Vec<f64>,
    /// Per (node, round): from handing the bytes to bare node 0 until the node printed
    /// that it got them (ms).
    pub(crate) bare: Vec<f64>,
    /// CPU time (user + system) all caucus processes used per round: the notice, its
    /// acknowledgements, and the idle work of the round's pause.
    pub(crate) caucus_cpu: Duration,
    /// CPU time all bare processes used per round, measured the same way.
    pub(crate) bare_cpu: Duration,
    /// One envelope's bytes (the size bare gossipsub publishes).
    pub(crate) message_bytes: usize,
}

/// CPU time (user + system) the processes have used so far.
fn cpu_of(procs: &[crate::procs::Proc]) -> Result<Duration> {
    procs.iter().map(|p| crate::procs::cpu_time(p.pid())).sum()
}

/// Waits until `lines` of `processes` say what `done` looks for, for every process in
/// `of`; returns the moment each one did.
async fn wait_lines(
    lines: &mut mpsc::Receiver<(usize, String, Instant)>,
    of: std::ops::Range<usize>,
    what: &str,
    mut done: impl FnMut(&str) -> bool,
) -> Result<Vec<(usize, Instant)>> {
    let mut seen: Vec<(usize, Instant)> = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while seen.len() < of.len() {
        let (i, line, at) = tokio::time::timeout_at(deadline, lines.recv())
            .await
            .with_context(|| format!("only {} of {} processes {what}", seen.len(), of.len()))?
            .context("the processes stopped")?;
        if of.contains(&i) && !seen.iter().any(|(j, _)| *j == i) && done(&line) {
            seen.push((i, at));
        }
    }
    Ok(seen)
}

/// Merges the stamped stdout lines of many processes into one channel, tagged by index.
fn merge_lines(
    each: Vec<tokio::sync::mpsc::Receiver<crate::procs::Line>>,
) -> mpsc::Receiver<(usize, String, Instant)> {
    let (tx, rx) = mpsc::channel(BARE_DELIVERIES);
    for (i, mut lines) in each.into_iter().enumerate() {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some((line, at)) = lines.recv().await {
                if tx.send((i, line, at)).await.is_err() {
                    return;
                }
            }
        });
    }
    rx
}

/// Whom the next node dials, given the addresses of those started before it: node 0 and
/// its predecessor (the fan-out topology).
fn dials(started: &[Multiaddr]) -> impl Iterator<Item = &Multiaddr> {
    started
        .first()
        .into_iter()
        .chain(started.last().filter(|_| started.len() > 1))
}

/// Runs the fan-out with `n` separate processes of each kind, `rounds` notices each.
pub(crate) async fn process_fanout(
    bin: &std::path::Path,
    n: usize,
    rounds: usize,
) -> Result<ProcessFanout> {
    use crate::procs::{caucus_command, listening_on, spawn_lines};
    use caucus_node::control::{Client, Reply, Request};
    let dir = tempfile::tempdir()?;
    // The committee is founded and joined in this process (invites need a running
    // inviter), then every home is handed to its own `caucus run`.
    let (g, nodes) = caucus_committee(dir.path(), n, true).await?;
    // A round number no timed round uses.
    let warm_up = nodes[0].write(&g, urgent_notice(u32::MAX as usize)).await?;
    let sample = nodes[0]
        .with_node(|node| node.store().entry(&warm_up))?
        .context("own entry not stored")?;
    for r in nodes {
        r.shutdown().await?;
    }
    let mut procs = Vec::new();
    let mut each = Vec::new();
    let mut addrs: Vec<Multiaddr> = Vec::new();
    for i in 0..n {
        let home = dir.path().join(format!("n{i}"));
        let mut args = vec![
            "run".to_string(),
            "--no-mdns".into(),
            "--listen".into(),
            "/ip4/127.0.0.1/tcp/0".into(),
        ];
        for a in dials(&addrs) {
            args.extend(["--peer".to_string(), a.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (proc, mut lines) = spawn_lines(caucus_command(bin, &home, &args), false)?;
        addrs.push(listening_on(&mut lines).await?);
        procs.push(proc);
        each.push(lines);
    }
    let mut lines = merge_lines(each);
    // Each node is connected once its status lists a peer (its "peer connected" lines
    // may come before `caucus run` listens to its own events).
    let deadline = Instant::now() + WAIT;
    for i in 0..n {
        let socket = caucus_node::Home::new(dir.path().join(format!("n{i}"))).socket();
        loop {
            match Client::call(&socket, &Request::Status).await? {
                Reply::Status(s) if !s.peers.is_empty() => break,
                Reply::Status(_) => {}
                other => bail!("node {i} status: {other:?}"),
            }
            if Instant::now() > deadline {
                bail!("caucus node {i} of {n} never connected to a peer");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Let the gossip mesh form (a few heartbeats) before timing, as in process.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let socket = caucus_node::Home::new(dir.path().join("n0")).socket();
    let mut caucus = Vec::new();
    let cpu0 = cpu_of(&procs)?;
    for round in 0..rounds {
        let short = hex::encode(&round_notice(round).0[..4]);
        let started = Instant::now();
        match Client::call(
            &socket,
            &Request::Write {
                group: g,
                op: urgent_notice(round),
            },
        )
        .await?
        {
            Reply::Written { .. } => {}
            other => bail!("node 0 refused the notice: {other:?}"),
        }
        let received = format!("URGENT notice {short} received");
        for (_, at) in wait_lines(&mut lines, 1..n, "received the notice", |l| {
            l.starts_with(&received)
        })
        .await?
        {
            caucus.push(ms(at.duration_since(started)));
        }
        // Let the acknowledgements of this round settle before the next.
        let everyone = format!("notice {short}: delivered to {n} of {n} members");
        let _ = tokio::time::timeout(
            Duration::from_secs(30),
            wait_lines(&mut lines, 0..1, "saw every acknowledgement", |l| {
                l == everyone
            }),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let caucus_cpu = (cpu_of(&procs)? - cpu0) / rounds as u32;
    drop(procs);
    let (bare, bare_cpu) = bare_processes(n, rounds, &sample).await?;
    Ok(ProcessFanout {
        caucus,
        bare,
        caucus_cpu,
        bare_cpu,
        message_bytes: sample.len(),
    })
}

/// Bare gossipsub, one process per node on the same topology (node i dials node 0 and
/// node i − 1): per (node, round) latencies publishing `sample`-sized messages from node
/// 0, and the CPU all N used per round.
async fn bare_processes(n: usize, rounds: usize, sample: &[u8]) -> Result<(Vec<f64>, Duration)> {
    use crate::procs::{listening_on, spawn_lines};
    let exe = std::env::current_exe()?;
    let mut bare = Vec::new();
    let mut inputs = Vec::new();
    let mut each = Vec::new();
    let mut addrs: Vec<Multiaddr> = Vec::new();
    for _ in 0..n {
        let mut cmd = std::process::Command::new(&exe);
        cmd.arg("--bare-node");
        let (mut proc, mut out) = spawn_lines(cmd, true)?;
        let mut input = proc.take_stdin().context("no stdin")?;
        let addr = listening_on(&mut out).await?;
        for a in dials(&addrs) {
            writeln!(input, "dial {a}")?;
        }
        addrs.push(addr);
        bare.push(proc);
        inputs.push(input);
        each.push(out);
    }
    let mut lines = merge_lines(each);
    let deadline = Instant::now() + WAIT;
    for (i, input) in inputs.iter_mut().enumerate() {
        loop {
            writeln!(input, "peers")?;
            let mut peers = 0usize;
            wait_lines(&mut lines, i..i + 1, "answered", |l| {
                l.strip_prefix("peers ")
                    .map(|c| peers = c.parse().unwrap_or(0))
                    .is_some()
            })
            .await?;
            if peers > 0 {
                break;
            }
            if Instant::now() > deadline {
                bail!("bare gossipsub mesh did not form");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut times = Vec::new();
    let cpu0 = cpu_of(&bare)?;
    for round in 0..rounds {
        let bytes = round_message(sample, round);
        let want = format!("got {}", hex::encode(&blake3_id(&bytes)[..8]));
        let line = format!("publish {}", hex::encode(&bytes));
        let started = Instant::now();
        writeln!(inputs[0], "{line}")?;
        for (_, at) in wait_lines(&mut lines, 1..n, "got the message", |l| l == want).await? {
            times.push(ms(at.duration_since(started)));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let bare_cpu = (cpu_of(&bare)? - cpu0) / rounds as u32;
    drop(inputs);
    drop(bare);
    Ok((times, bare_cpu))
}
