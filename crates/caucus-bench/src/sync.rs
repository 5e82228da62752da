//! Sync scenarios on the campaign dataset: an organizer's laptop writes it, hands it to
//! the office relay and goes on; a fresh device then syncs everything from the relay
//! alone (initial sync), and later one and 100 new entries after a reconnect
//! (incremental sync). Next to it: a raw loopback TCP transfer of the same ciphertext
//! bytes (the machine's limit). Also measured on the way: the write path (the import's
//! one-transaction batch, and single writes as `caucus contact note` makes them) and the
//! cold start of a node holding the dataset.

use crate::WAIT;
use crate::campaign::{Campaign, extra_note};
use anyhow::{Context, Result, bail};
use caucus_crypto::at_rest::KdfParams;
use caucus_net::Multiaddr;
use caucus_node::relay::{Quota, Relay, RelayNode, RelayOptions};
use caucus_node::{Node, NodeConfig, NodeEvent, Running, now_ms};
use caucus_proto::limits::{MAX_RECORDS_PER_ENTRY, PACK_TEXT_BYTES};
use caucus_proto::{GroupId, Operation};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One caucus sync: time from the dial until everything is stored, bytes on the sync
/// streams both ways, entries stored.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Synced {
    /// From the dial to the last entry stored (connect, prove, reconcile, fetch, verify,
    /// store).
    pub(crate) time: Duration,
    /// Sync stream bytes, both ways.
    pub(crate) wire_bytes: u64,
    /// Entries fetched and stored.
    pub(crate) entries: u64,
}

/// Everything this scenario measures.
pub(crate) struct Figures {
    /// Entries in the dataset as stored (contacts, notes, notices and the group's own).
    pub(crate) entries: u64,
    /// Ciphertext bytes the relay holds for the group.
    pub(crate) ciphertext_bytes: u64,
    /// The import: sealed, verified and stored in one transaction, entries per second.
    pub(crate) import_per_sec: f64,
    /// Single writes (seal, store, publish, one transaction each), entries per second.
    pub(crate) single_writes_per_sec: f64,
    /// Initial sync of a fresh device from the relay.
    pub(crate) initial: Synced,
    /// The same bytes over one raw loopback TCP connection.
    pub(crate) raw_tcp: Duration,
    /// One new entry after a reconnect.
    pub(crate) one_new: Synced,
    /// 100 new entries after a reconnect.
    pub(crate) hundred_new: Synced,
    /// Opening the synced device's home (passphrase, keys, fold of every entry).
    pub(crate) open: Duration,
    /// From `Node::open` until the swarm listens.
    pub(crate) cold_start: Duration,
}

fn kdf() -> KdfParams {
    KdfParams::insecure_for_tests()
}

fn config(peers: Vec<Multiaddr>) -> NodeConfig {
    let mut net = caucus_net::Config::loopback();
    net.bootstrap = peers;
    NodeConfig {
        net,
        auto_ack_urgent: true,
    }
}

async fn until(what: &str, mut f: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    while !f() {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

fn held(relay: &Relay, g: &GroupId) -> u64 {
    relay.group_usage(g).map_or(0, |u| u.entries)
}

/// The office relay, in this process, announcing its listen address.
async fn relay(dir: &Path) -> Result<(RelayNode, Multiaddr)> {
    let (relay, mut events) = RelayNode::start(
        Relay::open(dir, Quota::default())?,
        RelayOptions {
            announce_listen_addresses: true,
            ..RelayOptions::loopback()
        },
    )
    .await?;
    let addr = relay.wait_listening(&mut events, WAIT).await?;
    Ok((relay, addr))
}

/// Starts the device at `home` with no peer, dials the relay and waits until the group
/// holds `want` entries.
async fn sync_from_relay(home: &Path, g: &GroupId, relay: &Multiaddr, want: u64) -> Result<Synced> {
    let node = Node::open(home, b"bench")?;
    let before = node.store().entry_count(g)?;
    let r = Running::start(node, config(Vec::new())).await?;
    r.wait_listening(WAIT).await?;
    let mut rx = r.subscribe();
    let started = Instant::now();
    r.dial(relay.clone()).await?;
    let mut wire_bytes = 0u64;
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut lagged = false;
    let time = loop {
        // The count is checked after each session and, should the event queue have
        // overflowed (a big sync reports every entry stored), every 20 ms.
        let check = match tokio::time::timeout(Duration::from_millis(20), rx.recv()).await {
            Ok(Ok(NodeEvent::SyncFinished { wire_bytes: b, .. })) => {
                wire_bytes += b;
                true
            }
            Ok(Ok(_)) => false,
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                lagged = true;
                lagged
            }
            Ok(Err(_)) => bail!("the device stopped"),
            Err(_) => lagged,
        };
        if check && r.with_node(|n| n.store().entry_count(g))? >= want {
            break started.elapsed();
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the device did not get all {want} entries from the relay");
        }
    };
    // A session the relay started at the same time may still be winding down: its bytes
    // count too (not its time).
    let tail = tokio::time::Instant::now() + Duration::from_millis(300);
    loop {
        match tokio::time::timeout_at(tail, rx.recv()).await {
            Ok(Ok(NodeEvent::SyncFinished { wire_bytes: b, .. })) => wire_bytes += b,
            Ok(Ok(_)) => {}
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => lagged = true,
            Ok(Err(_)) | Err(_) => break,
        }
    }
    if lagged {
        eprintln!(
            "note: the device's event queue overflowed during this sync; a session's byte \
             count may be missing from the figure"
        );
    }
    let after = r.with_node(|n| n.store().entry_count(g))?;
    r.shutdown().await?;
    Ok(Synced {
        time,
        wire_bytes,
        entries: after - before,
    })
}

/// `bytes` bytes over one loopback TCP connection, 64 KiB writes, until all are read.
async fn raw_tcp(bytes: u64) -> Result<Duration> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let reader = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await?;
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0u64;
        while got < bytes {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            got += n as u64;
        }
        anyhow::Ok(got)
    });
    let started = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let chunk = vec![0x5au8; 1 << 16];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        s.write_all(&chunk[..n]).await?;
        left -= n as u64;
    }
    s.flush().await?;
    let got = reader.await??;
    let took = started.elapsed();
    if got != bytes {
        bail!("raw tcp: {got} of {bytes} bytes arrived");
    }
    Ok(took)
}

/// Runs the scenario on `campaign`.
/// Runs the scenario on `campaign` in `dir`; the synced device's home is left at
/// `dir/b` (for the process scenarios).
pub(crate) async fn run(campaign: &Campaign, dir: &Path) -> Result<Figures> {
    let ops = campaign.operations()?;
    let (relay, relay_addr) = relay(&dir.join("relay")).await?;

    // The organizer's laptop founds the group; the new device joins while it is small.
    let a = Node::init(&dir.join("a"), b"bench", "Dana R.", "laptop", kdf())?;
    let a = Running::start(a, config(vec![relay_addr.clone()])).await?;
    let a_addr = a.wait_listening(WAIT).await?;
    let g = a.create_group("campaign").await?;
    let grant = a.with_node(|n| n.relay_grant(&g))?;
    // Allowed first, then joined (as `RelayNode::allow` does): the relay's first sync
    // needs the grant's proof.
    relay.allow(grant).await?;
    let b_home = dir.join("b");
    {
        let text: Vec<String> = a_addr.iter().map(ToString::to_string).collect();
        let ticket = a.with_node(|n| n.create_invite(&g, text, now_ms() + 3_600_000))?;
        let b = Node::init(&b_home, b"bench", "Priya S.", "phone", kdf())?;
        let b = Running::start(b, config(Vec::new())).await?;
        b.wait_listening(WAIT).await?;
        b.join(&ticket, &[]).await?;
        let want = a.with_node(|n| n.store().entry_count(&g))?;
        until("the new device to join", || {
            b.with_node(|n| n.store().entry_count(&g)).unwrap_or(0) >= want
        })
        .await?;
        b.shutdown().await?;
    }

    // Write path: the import in one transaction, packed as `caucus import` packs it
    // (up to 1,024 rows per entry), then single writes. Counted in records.
    let n_ops = ops.len();
    let started = Instant::now();
    let packed = Operation::pack(ops.clone(), MAX_RECORDS_PER_ENTRY, PACK_TEXT_BYTES);
    a.write_many(&g, packed).await?;
    let import_per_sec = n_ops as f64 / started.elapsed().as_secs_f64();
    let singles = 200.min(n_ops.max(10));
    let started = Instant::now();
    for i in 0..singles {
        a.write(&g, extra_note(&ops, 10_000 + i)).await?;
    }
    let single_writes_per_sec = singles as f64 / started.elapsed().as_secs_f64();
    let entries = a.with_node(|n| n.store().entry_count(&g))?;
    until("the relay to hold the dataset", || {
        held(relay.relay(), &g) >= entries
    })
    .await?;
    let ciphertext_bytes = relay.relay().group_usage(&g).map_or(0, |u| u.bytes);

    // Initial sync: the device comes online and meets only the relay.
    let initial = sync_from_relay(&b_home, &g, &relay_addr, entries).await?;
    let raw = raw_tcp(ciphertext_bytes).await?;

    // Cold start of the device that now holds the dataset.
    let started = Instant::now();
    let node = Node::open(&b_home, b"bench")?;
    let open = started.elapsed();
    let r = Running::start(node, config(Vec::new())).await?;
    r.wait_listening(WAIT).await?;
    let cold_start = started.elapsed();
    r.shutdown().await?;

    // Incremental: the laptop writes while the device is away; the device reconnects.
    let mut incremental = Vec::new();
    for (k, count) in [(0usize, 1usize), (1, 100)] {
        let new: Vec<Operation> = (0..count)
            .map(|i| extra_note(&ops, 20_000 + k * 1_000 + i))
            .collect();
        if count == 1 {
            a.write(&g, new.into_iter().next().context("one note")?)
                .await?;
        } else {
            a.write_many(&g, new).await?;
        }
        let want = a.with_node(|n| n.store().entry_count(&g))?;
        until("the relay to hold the new entries", || {
            held(relay.relay(), &g) >= want
        })
        .await?;
        incremental.push(sync_from_relay(&b_home, &g, &relay_addr, want).await?);
    }
    a.shutdown().await?;
    relay.shutdown().await?;
    Ok(Figures {
        entries,
        ciphertext_bytes,
        import_per_sec,
        single_writes_per_sec,
        initial,
        raw_tcp: raw,
        one_new: incremental[0],
        hundred_new: incremental[1],
        open,
        cold_start,
    })
}
