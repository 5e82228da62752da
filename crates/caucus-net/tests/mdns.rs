//! mDNS discovery between two network namespaces joined by a veth pair.
//!
//! The test (root only) creates two namespaces and a veth pair with link-local addresses,
//! then runs this binary again inside each namespace (`ip netns exec`) as a child that
//! starts a node with mDNS on and waits to be connected to the other child, whose
//! transport key both derive from a seed. Namespaces are deleted on drop.
//!
//! Both children learn of each other from the same multicast exchange and dial at once;
//! the node dials mDNS peers from a fresh port so that the two dials cannot merge into
//! one TCP simultaneous open, which libp2p cannot negotiate (see the mDNS arm of
//! `Driver::on_behaviour` in `src/network.rs`).
#![allow(clippy::unwrap_used)]

mod common;

use caucus_net::{Config, NetEvent};
use common::{Fixture, node, wait_event};
use libp2p::identity::{Keypair, ed25519};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "CAUCUS_NET_MDNS_CHILD";

fn keypair(seed: u8) -> Keypair {
    let secret = ed25519::SecretKey::try_from_bytes([seed; 32]).unwrap();
    Keypair::from(ed25519::Keypair::from(secret))
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Namespaces and veth ends to delete on drop (a veth end still in the root namespace
/// is left there only if setup failed half way).
struct Namespaces {
    namespaces: Vec<String>,
    links: Vec<String>,
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            ip(&["netns", "del", ns]);
        }
        for link in &self.links {
            ip(&["link", "del", link]);
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mdns_discovers_a_peer_in_another_namespace() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    if !is_root() {
        eprintln!("SKIPPED mdns_discovers_a_peer_in_another_namespace: needs root for `ip netns`");
        return;
    }
    let tag = std::process::id();
    let (na, nb) = (
        format!("caucus-mdns-a-{tag}"),
        format!("caucus-mdns-b-{tag}"),
    );
    let (va, vb) = (
        format!("cma{}", tag % 100_000),
        format!("cmb{}", tag % 100_000),
    );
    let _guard = Namespaces {
        namespaces: vec![na.clone(), nb.clone()],
        links: vec![va.clone(), vb.clone()],
    };
    for step in [
        vec!["netns", "add", &na],
        vec!["netns", "add", &nb],
        vec!["link", "add", &va, "type", "veth", "peer", "name", &vb],
        vec!["link", "set", &va, "netns", &na],
        vec!["link", "set", &vb, "netns", &nb],
        vec!["-n", &na, "addr", "add", "169.254.77.1/24", "dev", &va],
        vec!["-n", &nb, "addr", "add", "169.254.77.2/24", "dev", &vb],
        vec!["-n", &na, "link", "set", "lo", "up"],
        vec!["-n", &nb, "link", "set", "lo", "up"],
        vec!["-n", &na, "link", "set", &va, "up"],
        vec!["-n", &nb, "link", "set", &vb, "up"],
        vec!["-n", &na, "route", "add", "224.0.0.0/4", "dev", &va],
        vec!["-n", &nb, "route", "add", "224.0.0.0/4", "dev", &vb],
    ] {
        assert!(ip(&step), "ip {} failed", step.join(" "));
    }
    // Both ends must have carrier before the nodes bind their mDNS sockets.
    let up = |ns: &str, dev: &str| {
        Command::new("ip")
            .args(["-n", ns, "-o", "link", "show", "dev", dev])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("LOWER_UP"))
            .unwrap_or(false)
    };
    let ready_by = Instant::now() + Duration::from_secs(10);
    while !(up(&na, &va) && up(&nb, &vb)) {
        assert!(Instant::now() < ready_by, "veth pair never came up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let exe = std::env::current_exe().unwrap();
    let spawn = |ns: &str, me: u8, other: u8| {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(&exe)
            .args(["--exact", "mdns_child", "--nocapture"])
            .env(CHILD_ENV, format!("{me},{other}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut children = [spawn(&na, 1, 2), spawn(&nb, 2, 1)];
    // Each child prints READY once the other is connected and in the group, then stays
    // up (so neither leaves while the other is still connecting) until killed here.
    let (tx, rx) = std::sync::mpsc::sync_channel::<usize>(2);
    let mut readers = Vec::new();
    for (i, c) in children.iter_mut().enumerate() {
        let out = c.stdout.take().unwrap();
        let err = c.stderr.take().unwrap();
        let tx = tx.clone();
        // The child's panic message, if any, goes to its stderr.
        let errors = std::thread::spawn(move || std::io::read_to_string(err).unwrap_or_default());
        readers.push(std::thread::spawn(move || {
            use std::io::BufRead;
            let mut log = String::new();
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if line.contains("CHILD READY") {
                    let _ = tx.send(i);
                }
                log.push_str(&line);
                log.push('\n');
            }
            log.push_str(&errors.join().unwrap_or_default());
            log
        }));
    }
    drop(tx);
    // Discovery takes well under a second; the child gives up after 15 s.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut ready = [false, false];
    while !(ready[0] && ready[1]) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(i) => ready[i] = true,
            Err(_) => break,
        }
    }
    for c in children.iter_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }
    let logs: Vec<String> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    assert_eq!(
        ready,
        [true, true],
        "children did not find each other:\n--- a ---\n{}\n--- b ---\n{}",
        logs[0],
        logs[1]
    );
}

/// The child role (does nothing unless run by the test above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mdns_child() {
    let Some(spec) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let spec = spec.to_string_lossy().to_string();
    let (me, other) = spec.split_once(',').unwrap();
    let (me, other): (u8, u8) = (me.parse().unwrap(), other.parse().unwrap());
    let other_id = keypair(other).public().to_peer_id();
    let fx = Fixture::new(3);
    let config = Config {
        listen: vec!["/ip4/0.0.0.0/tcp/0".parse().unwrap()],
        mdns: true,
        mdns_query_interval: Duration::from_secs(1),
        keypair: Some(keypair(me)),
        ..Config::default()
    };
    let mut n = node(&fx, config).await;
    let mut announced = false;
    let connected = wait_event(&mut n.events, Duration::from_secs(15), |e| match e {
        NetEvent::LanAnnouncing => {
            announced = true;
            None
        }
        // The peer's subscription arrives only once its side of the connection is up,
        // so neither child exits while the other is still connecting.
        NetEvent::GroupPeer { peer, .. } if *peer == other_id => Some(()),
        _ => None,
    })
    .await;
    assert!(connected.is_some(), "no mDNS connection to {other_id}");
    println!("CHILD READY: connected to {other_id} (announced: {announced})");
    // Stay up until the parent ends this process (bounded in case it never does).
    let _ = wait_event(&mut n.events, Duration::from_secs(60), |_| None::<()>).await;
}
