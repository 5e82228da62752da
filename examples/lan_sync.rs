//! Two devices on the same network: Dana's laptop and her phone. The phone links with
//! a pairing code, goes offline, both write, and when they meet again they reconcile
//! (catch-up sync over `/caucus/sync/1`), then new entries flow live over gossip.
//!
//! On a real LAN the two find each other with mDNS; this example dials on 127.0.0.1
//! (pass `--mdns` to switch mDNS on as well).
//!
//! `cargo run --example lan_sync`

use anyhow::{Context, Result, ensure};
use caucus::net::Multiaddr;
use caucus::node::{Node, NodeConfig, Running, link_new_device};
use caucus::proto::{ContactField, ContactId, GroupId, Operation};
use std::time::{Duration, Instant};

async fn same_state(a: &Running, b: &Running, g: &GroupId) -> Result<Duration> {
    let started = Instant::now();
    loop {
        let ha = a.with_node(|n| n.state(g).map(|s| s.state_hash()))?;
        let hb = b.with_node(|n| n.state(g).map(|s| s.state_hash()))?;
        if ha == hb {
            return Ok(started.elapsed());
        }
        ensure!(
            started.elapsed() < Duration::from_secs(30),
            "did not converge"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn contact(i: u8, name: &str) -> Operation {
    Operation::ContactSet {
        contact: ContactId([i; 16]),
        fields: vec![ContactField::Name(name.into())],
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let mdns = std::env::args().any(|a| a == "--mdns");
    let dir = tempfile::tempdir()?;
    let kdf = caucus::crypto::at_rest::KdfParams::new(19 * 1024, 2, 1)?;
    let config = |peers: &[Multiaddr]| {
        let mut net = caucus::net::Config::loopback();
        net.mdns = mdns;
        net.bootstrap = peers.to_vec();
        NodeConfig {
            net,
            ..NodeConfig::default()
        }
    };
    let laptop = Running::start(
        Node::init(&dir.path().join("laptop"), b"pass", "Dana", "laptop", kdf)?,
        config(&[]),
    )
    .await?;
    let addrs = laptop.wait_listening(Duration::from_secs(10)).await?;
    let group = laptop.create_group("JFK8 committee").await?;
    laptop.write(&group, contact(1, "Ana Ortiz")).await?;

    let (code, done) = laptop.host_link()?;
    println!("laptop shows pairing code {}", &*code.reveal());
    let phone_home = dir.path().join("phone");
    let phone = link_new_device(
        &phone_home,
        b"pass",
        kdf,
        &code,
        "phone",
        &addrs,
        caucus::net::Config::loopback(),
    )
    .await?;
    let phone = Running::start(phone, config(&addrs)).await?;
    done.await.context("link did not finish")?;
    println!(
        "phone linked; history synced in {:?}",
        same_state(&laptop, &phone, &group).await?
    );

    phone.shutdown().await?;
    laptop.write(&group, contact(2, "Ben Cole")).await?;
    let mut offline = Node::open(&phone_home, b"pass")?;
    offline.write(&group, contact(3, "Kim Tran"))?;
    drop(offline);
    println!("apart: the laptop logs Ben, the phone (offline) logs Kim");

    let phone = Running::start(Node::open(&phone_home, b"pass")?, config(&addrs)).await?;
    println!(
        "together again: reconciled in {:?}",
        same_state(&laptop, &phone, &group).await?
    );
    laptop.write(&group, contact(4, "Omar Haddad")).await?;
    println!(
        "a new contact on the laptop reached the phone live in {:?}",
        same_state(&laptop, &phone, &group).await?
    );
    let n = phone.with_node(|n| n.state(&group).map(|s| s.contacts().count()))?;
    ensure!(n == 4, "the phone holds {n} contacts");
    phone.shutdown().await?;
    laptop.shutdown().await?;
    Ok(())
}
