//! The office relay sees ciphertext only. Members write contacts, notes, follow-ups and a
//! notice carrying a marker string; every byte the relay sends or receives goes through
//! a recording proxy on loopback; the reader fetches everything from the relay alone.
//! Then the marker is searched in the capture, in every file under the relay's home
//! (database, WAL, its log) and in the relay's store opened with its own key: zero hits.
//!
//! One test in this binary: it installs the process-wide log subscriber that writes the
//! relay's log file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use caucus_crypto::at_rest::KdfParams;
use caucus_net::{Config, Multiaddr};
use caucus_node::relay::{Quota, Relay, RelayNode, RelayOptions};
use caucus_node::{Node, NodeConfig, Running};
use caucus_proto::{
    ContactField, ContactId, Day, FollowupId, GroupId, Note, NoticeContent, NoticeId, Operation,
};
use caucus_store::{DbKey, Store};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(60);
const MARKER: &str = "Qz9-marker-7Vw";

/// Every byte both ways through a loopback TCP proxy in front of the relay.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    cap: Capture,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                cap.0.lock().unwrap().extend_from_slice(&buf[..n]);
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

/// Listens on a loopback port and forwards every connection to `port`, recording it.
async fn proxy(port: u16, cap: Capture) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(("127.0.0.1", port)).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pump(cr, sw, cap.clone()));
            tokio::spawn(pump(sr, cw, cap.clone()));
        }
    });
    local
}

fn kdf() -> KdfParams {
    KdfParams::new(19 * 1024, 2, 1).unwrap()
}

async fn start(node: Node, peer: &Multiaddr) -> Running {
    let mut net = Config::loopback();
    net.bootstrap = vec![peer.clone()];
    net.resync_interval = Duration::from_secs(1);
    let r = Running::start(
        node,
        NodeConfig {
            net,
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap();
    r.wait_listening(WAIT).await.unwrap();
    r
}

fn state_hash(r: &Running, g: &GroupId) -> [u8; 32] {
    r.with_node(|n| n.state(g).map(|s| s.state_hash())).unwrap()
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// (files, hits) of `needle` in every file under `dir`.
fn scan(dir: &Path, needle: &[u8]) -> (usize, usize) {
    let (mut files, mut hits) = (0, 0);
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let (f, h) = scan(&path, needle);
            files += f;
            hits += h;
        } else {
            files += 1;
            hits += count(&std::fs::read(&path).unwrap(), needle);
        }
    }
    (files, hits)
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

fn marked_writes(contact: ContactId) -> Vec<Operation> {
    vec![
        Operation::ContactSet {
            contact,
            fields: vec![
                ContactField::Name(format!("Rosa {MARKER}")),
                ContactField::Department(format!("Pick {MARKER}")),
                ContactField::Job(format!("stower {MARKER}")),
            ],
        },
        Operation::NoteAdded {
            contact,
            note: Note {
                text: format!("worried about the night shift {MARKER}"),
                date: None,
                by: None,
            },
        },
        Operation::FollowupSet {
            followup: FollowupId([7; 16]),
            contact,
            due: Day(20_500),
            assignee: format!("Dana {MARKER}"),
            task: format!("bring the petition {MARKER}"),
        },
        Operation::NoticePosted {
            notice: NoticeId([9; 16]),
            content: NoticeContent {
                title: format!("Meeting {MARKER}"),
                starts_at_ms: 1_800_000_000_000,
                place: format!("the diner on 5th {MARKER}"),
                body: format!("bring a friend {MARKER}"),
                urgent: true,
                expires_at_ms: None,
            },
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_never_sees_a_marker_on_the_wire_on_disk_or_in_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let relay_home = dir.path().join("relay");
    std::fs::create_dir_all(&relay_home).unwrap();
    // Everything this process logs, at debug (libp2p at info), goes to the relay's log.
    let log = std::fs::File::create(relay_home.join("relay.log")).unwrap();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("debug,libp2p=info"))
        .with_ansi(false)
        .with_writer(Mutex::new(log))
        .init();

    let (relay, mut events) = RelayNode::start(
        Relay::open(&relay_home, Quota::default()).unwrap(),
        RelayOptions::loopback(),
    )
    .await
    .unwrap();
    let port = relay
        .wait_listening(&mut events, WAIT)
        .await
        .unwrap()
        .iter()
        .find_map(|p| match p {
            libp2p::multiaddr::Protocol::Tcp(p) => Some(p),
            _ => None,
        })
        .unwrap();
    drop(events);
    let capture = Capture::default();
    let front = proxy(port, capture.clone()).await;
    let relay_addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{front}/p2p/{}", relay.peer_id())
        .parse()
        .unwrap();

    // Dana founds the group, gives the relay a grant, and invites Maria.
    let dana = start(
        Node::init(&dir.path().join("dana"), b"pass", "Dana", "laptop", kdf()).unwrap(),
        &relay_addr,
    )
    .await;
    let g = dana.create_group("committee").await.unwrap();
    let grant = dana.with_node(|n| n.relay_grant(&g)).unwrap();
    relay.allow(grant).await.unwrap();
    let dana_addrs: Vec<String> = dana
        .listen_addrs()
        .await
        .unwrap()
        .iter()
        .map(|a| format!("{a}/p2p/{}", dana.peer_id()))
        .collect();
    let ticket = dana
        .with_node(|n| n.create_invite(&g, dana_addrs, u64::MAX / 2))
        .unwrap();
    let maria_home = dir.path().join("maria");
    let maria = start(
        Node::init(&maria_home, b"pass", "Maria", "laptop", kdf()).unwrap(),
        &relay_addr,
    )
    .await;
    assert_eq!(maria.join(&ticket, &[]).await.unwrap(), g);
    until("Maria to catch up with Dana", || {
        state_hash(&maria, &g) == state_hash(&dana, &g)
    })
    .await;
    maria.shutdown().await.unwrap();

    // Maria is offline: Dana writes the marked entries, the relay takes them, Dana leaves.
    for op in marked_writes(ContactId([5; 16])) {
        dana.write(&g, op).await.unwrap();
    }
    until("the relay to hold all of Dana's entries", || {
        let ids = dana.with_node(|n| n.store().entry_ids(&g)).unwrap();
        ids.len() > 6 && ids.iter().all(|id| relay.relay().holds(&g, id))
    })
    .await;
    let dana_ids = dana.with_node(|n| n.store().entry_ids(&g)).unwrap();
    dana.shutdown().await.unwrap();

    // Maria comes back with only the relay to talk to, and gets everything from it (and
    // acknowledges the urgent notice, through the relay too).
    let maria = start(Node::open(&maria_home, b"pass").unwrap(), &relay_addr).await;
    until("Maria to sync from the relay", || {
        maria
            .with_node(|n| n.store().entry_ids(&g))
            .is_ok_and(|ids| dana_ids.iter().all(|id| ids.contains(id)))
    })
    .await;
    let notes = maria.with_node(|n| n.store().all_notes(&g)).unwrap();
    assert!(
        notes.iter().any(|n| n.text.contains(MARKER)),
        "the marked note did not reach Maria"
    );
    maria.shutdown().await.unwrap();
    // Stopping the relay flushes its store to the database file.
    relay.shutdown().await.unwrap();

    // The relay's traffic, both ways.
    let wire = capture.bytes();
    assert!(
        wire.len() > 10_000,
        "the proxy saw only {} bytes",
        wire.len()
    );
    assert_eq!(
        count(&wire, MARKER.as_bytes()),
        0,
        "marker on the relay's wire"
    );

    // The relay's store opened with its own key: envelopes and grants only.
    let key: [u8; 32] = std::fs::read(relay_home.join("relay.key"))
        .unwrap()
        .try_into()
        .unwrap();
    let store =
        Store::open_existing(&relay_home.join("relay.db"), &DbKey::from_bytes(key)).unwrap();
    let held = store.entries(&g).unwrap();
    assert!(held.len() >= dana_ids.len());
    for e in &held {
        assert_eq!(
            count(&e.envelope, MARKER.as_bytes()),
            0,
            "marker in a held envelope"
        );
    }
    let settings = store.settings_with_prefix("").unwrap();
    for (name, value) in &settings {
        assert_eq!(
            count(value, MARKER.as_bytes()),
            0,
            "marker in relay setting {name}"
        );
    }
    drop(store);

    // Every file under the relay's home: database, WAL, key, log.
    let (files, hits) = scan(&relay_home, MARKER.as_bytes());
    let log_len = std::fs::metadata(relay_home.join("relay.log"))
        .unwrap()
        .len();
    assert!(
        log_len > 0,
        "the log is empty: the scan would prove nothing"
    );
    assert!(files >= 3, "only {files} files under the relay's home");
    assert_eq!(hits, 0, "marker found under the relay's home");
    println!(
        "relay blind: {} wire bytes, {files} files, {log_len} log bytes, {} entries held: 0 markers",
        wire.len(),
        held.len()
    );
}
