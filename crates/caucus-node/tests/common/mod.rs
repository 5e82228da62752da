//! Setup shared by the caucus-node integration tests, and by the root package's
//! `tests/layers.rs`, which includes this file with `#[path]`: homes, real nodes on
//! 127.0.0.1, entries handed between offline nodes, and bounded waits.
//!
//! Two kinds of wait, both bounded by [`WAIT`]: [`Watch::until`] wakes on the nodes'
//! [`NodeEvent`]s (every stored entry emits one after its commit, so a condition on the
//! state is checked again exactly when it may have changed), and [`until`] checks a
//! condition every 20 ms, for conditions that no event announces.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use caucus_crypto::DeviceKeys;
use caucus_crypto::at_rest::KdfParams;
use caucus_crypto::link::LinkNewDevice;
use caucus_net::Multiaddr;
use caucus_node::{Node, NodeConfig, NodeEvent, Running, now_ms};
use caucus_proto::{ContactField, ContactId, GroupId, Note, Operation};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};

/// Every home's passphrase.
pub(crate) const PASS: &[u8] = b"test";
/// The longest any one wait may take.
pub(crate) const WAIT: Duration = Duration::from_secs(60);

/// Argon2id at the OWASP minimum (19 MiB, t = 2): real wrapping, in milliseconds.
pub(crate) fn kdf() -> KdfParams {
    KdfParams::new(19 * 1024, 2, 1).unwrap()
}

/// A node on 127.0.0.1 only (no mDNS) that dials `peers` and resyncs every 2 s.
pub(crate) fn config(peers: &[Multiaddr]) -> NodeConfig {
    let mut net = caucus_net::Config::loopback();
    net.bootstrap = peers.to_vec();
    net.resync_interval = Duration::from_secs(2);
    NodeConfig {
        net,
        ..NodeConfig::default()
    }
}

/// A new organizer `name` in `dir/name`, offline.
pub(crate) fn init(dir: &Path, name: &str) -> Node {
    Node::init(&dir.join(name), PASS, name, "laptop", kdf()).unwrap()
}

/// Puts `node` on the network ([`config`]) and waits until it listens.
pub(crate) async fn online(node: Node, peers: &[Multiaddr]) -> (Running, Vec<Multiaddr>) {
    let r = Running::start(node, config(peers)).await.unwrap();
    let addrs = r.wait_listening(Duration::from_secs(10)).await.unwrap();
    (r, addrs)
}

/// A new organizer `name` in `home`, on the network.
pub(crate) async fn start(
    home: &Path,
    name: &str,
    peers: &[Multiaddr],
) -> (Running, Vec<Multiaddr>) {
    let node = Node::init(home, PASS, name, "laptop", kdf()).unwrap();
    online(node, peers).await
}

/// Takes a running node off the network and opens its home again, offline.
pub(crate) async fn offline(r: Running, home: &Path) -> Node {
    r.shutdown().await.unwrap();
    Node::open(home, PASS).unwrap()
}

/// Waits until `f` holds, checking every 20 ms (bounded by [`WAIT`]).
pub(crate) async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The events of several running nodes, merged: a wake-up for each.
pub(crate) struct Watch {
    woken: mpsc::Receiver<()>,
    forwarders: Vec<tokio::task::JoinHandle<()>>,
}

impl Watch {
    /// Subscribes to every node in `nodes` (before the action whose effect is awaited,
    /// or at least before the condition is first checked: nothing is missed either way).
    pub(crate) fn new(nodes: &[&Running]) -> Watch {
        // One pending wake-up is as good as many: a full channel drops the rest.
        let (tx, woken) = mpsc::channel(16);
        let forwarders = nodes
            .iter()
            .map(|r| {
                let mut rx = r.subscribe();
                let tx = tx.clone();
                tokio::spawn(async move {
                    // A lagging subscriber lost events: a wake-up all the same.
                    while let Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) = rx.recv().await
                    {
                        if let Err(mpsc::error::TrySendError::Closed(())) = tx.try_send(()) {
                            break;
                        }
                    }
                })
            })
            .collect();
        Watch { woken, forwarders }
    }

    /// Waits until `f` holds, checking it again after every event (bounded by [`WAIT`]).
    pub(crate) async fn until(&mut self, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !f() {
            match tokio::time::timeout_at(deadline, self.woken.recv()).await {
                Ok(Some(())) => {}
                Ok(None) => panic!("every node stopped while waiting for {what}"),
                Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        for f in &self.forwarders {
            f.abort();
        }
    }
}

/// Waits until the next event that `f` picks from one node's stream.
pub(crate) async fn event<T>(
    rx: &mut broadcast::Receiver<NodeEvent>,
    what: &str,
    mut f: impl FnMut(&NodeEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(ev)) => {
                if let Some(t) = f(&ev) {
                    return t;
                }
            }
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) => {
                panic!("the node stopped while waiting for {what}")
            }
            Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
        }
    }
}

/// The state hash of a running node's group.
pub(crate) fn hash(r: &Running, g: &GroupId) -> [u8; 32] {
    r.with_node(|n| n.state(g).unwrap().state_hash())
}

/// Waits, on events, until every node in `nodes` is at one state of `g`; returns it.
pub(crate) async fn converge(nodes: &[&Running], g: &GroupId) -> [u8; 32] {
    let mut watch = Watch::new(nodes);
    watch
        .until("the nodes to reach one state", || {
            let first = hash(nodes[0], g);
            nodes[1..].iter().all(|r| hash(r, g) == first)
        })
        .await;
    hash(nodes[0], g)
}

/// Every envelope `from` holds in `group`, in id order.
pub(crate) fn envelopes(from: &Node, group: &GroupId) -> Vec<Vec<u8>> {
    let entries = from.store().entries(group).unwrap();
    entries.into_iter().map(|e| e.envelope).collect()
}

/// Hands everything `from` holds to `to` (offline: no network).
pub(crate) fn sync(from: &Node, to: &mut Node, group: &GroupId) {
    to.receive(group, envelopes(from, group)).unwrap();
}

/// `joiner` joins `group` with an invite `host` answers, offline, and catches up.
pub(crate) fn join(host: &mut Node, joiner: &mut Node, group: &GroupId) {
    let ticket = host
        .create_invite(group, Vec::new(), now_ms() + 600_000)
        .unwrap();
    let (waiting, hello) = joiner.start_join(&ticket).unwrap();
    let (g, welcome) = host.accept_join(&hello).unwrap();
    assert_eq!(g, *group);
    assert_eq!(joiner.finish_join(waiting, &welcome).unwrap(), *group);
    sync(host, joiner, group);
    assert!(joiner.state(group).unwrap().is_member(&joiner.identity()));
}

/// Links a new device `label` of `host`'s organizer in `dir/label`, offline: `host`
/// shows a pairing code, certifies the device and records it; the new home holds
/// only what the grant gave it (every group's keyring, no entries).
pub(crate) fn link(host: &mut Node, dir: &Path, label: &str) -> Node {
    let (code, waiting_host) = host.start_link_host().unwrap();
    let keys = DeviceKeys::generate_unlinked(&mut rand::rng());
    let (waiting, request) = LinkNewDevice::start(&code, &keys, label, &mut rand::rng()).unwrap();
    let (cert, grant) = host.accept_link(waiting_host, &request).unwrap();
    let node = Node::create_linked(&dir.join(label), PASS, kdf(), keys, waiting, &grant).unwrap();
    assert_eq!(node.device_key(), cert.device);
    assert_eq!(node.identity(), host.identity());
    node
}

/// A note on `contact`.
pub(crate) fn note(contact: ContactId, text: &str) -> Operation {
    Operation::NoteAdded {
        contact,
        note: Note {
            text: text.into(),
            date: None,
            by: None,
        },
    }
}

/// Fields set on `contact`.
pub(crate) fn set(contact: ContactId, fields: Vec<ContactField>) -> Operation {
    Operation::ContactSet { contact, fields }
}

/// A contact named `name`, id `[n; 16]`.
pub(crate) fn contact(n: u8, name: &str) -> Operation {
    Operation::ContactSet {
        contact: ContactId([n; 16]),
        fields: vec![ContactField::Name(name.into())],
    }
}

/// Copies every file of a closed home (`from`) to a new home `to`.
pub(crate) fn copy_home(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

/// Scans every file under `dir` for `marker`: (files, bytes scanned, hits).
pub(crate) fn scan(dir: &Path, marker: &[u8]) -> (usize, u64, usize) {
    let (mut files, mut bytes, mut hits) = (0, 0, 0);
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let (f, b, h) = scan(&path, marker);
            files += f;
            bytes += b;
            hits += h;
        } else {
            let data = std::fs::read(&path).unwrap();
            files += 1;
            bytes += data.len() as u64;
            hits += data.windows(marker.len()).filter(|w| *w == marker).count();
        }
    }
    (files, bytes, hits)
}
