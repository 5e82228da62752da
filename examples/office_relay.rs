//! The office relay as store and forward: Dana writes while Luis is away, then goes
//! offline herself; Luis comes online, reaches only the relay, and gets everything.
//! The relay holds a grant (relay tokens, no content key) and never opens an entry.
//!
//! `cargo run --example office_relay`

use anyhow::{Result, ensure};
use caucus::node::relay::{Quota, Relay, RelayNode, RelayOptions};
use caucus::node::{NetOptions, Node, NodeConfig, Running, now_ms};
use caucus::proto::{ContactField, ContactId, Operation};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let kdf = caucus::crypto::at_rest::KdfParams::new(19 * 1024, 2, 1)?;
    // The relay: circuit relay v2 server + blind store.
    let (relay, mut events) = RelayNode::start(
        Relay::open(&dir.path().join("relay"), Quota::default())?,
        RelayOptions::loopback(),
    )
    .await?;
    let relay_addr = relay
        .wait_listening(&mut events, Duration::from_secs(10))
        .await?;
    let via_relay =
        || NodeConfig::with_net(&NetOptions::loopback(std::slice::from_ref(&relay_addr)));

    // Dana founds the group, gives the relay its grant, and invites Luis.
    let dana = Running::start(
        Node::init(&dir.path().join("dana"), b"pass", "Dana", "laptop", kdf)?,
        via_relay(),
    )
    .await?;
    let dana_addrs = dana.wait_listening(Duration::from_secs(10)).await?;
    let group = dana.create_group("JFK8 committee").await?;
    let grant = dana.with_node(|n| n.relay_grant(&group))?;
    relay.allow(grant).await?;
    let text: Vec<String> = dana_addrs.iter().map(ToString::to_string).collect();
    let ticket = dana.with_node(|n| n.create_invite(&group, text, now_ms() + 600_000))?;
    let luis_home = dir.path().join("luis");
    let luis = Running::start(
        Node::init(&luis_home, b"pass", "Luis", "laptop", kdf)?,
        via_relay(),
    )
    .await?;
    luis.join(&ticket, &[]).await?;
    luis.shutdown().await?;
    println!("Luis joined and went offline");

    // Dana writes 50 contacts; the relay takes them; Dana leaves.
    for i in 0..50u8 {
        let fields = vec![
            ContactField::Name(format!("worker {i}")),
            ContactField::Department("Outbound".into()),
        ];
        dana.write(
            &group,
            Operation::ContactSet {
                contact: ContactId([i; 16]),
                fields,
            },
        )
        .await?;
    }
    let want = dana.with_node(|n| n.store().entry_count(&group))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while relay
        .relay()
        .usage()
        .iter()
        .map(|(_, u)| u.entries)
        .sum::<u64>()
        < want
    {
        ensure!(
            Instant::now() < deadline,
            "the relay did not take Dana's entries"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dana_state = dana.with_node(|n| n.state(&group).map(|s| s.state_hash()))?;
    dana.shutdown().await?;
    println!("Dana wrote 50 contacts ({want} entries at the relay) and went offline");

    // Luis comes back; only the relay is there.
    let started = Instant::now();
    let luis = Running::start(Node::open(&luis_home, b"pass")?, via_relay()).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while luis.with_node(|n| n.state(&group).map(|s| s.state_hash()))? != dana_state {
        ensure!(
            Instant::now() < deadline,
            "Luis did not catch up from the relay"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let contacts = luis.with_node(|n| n.state(&group).map(|s| s.contacts().count()))?;
    println!(
        "Luis came back to the relay alone: {contacts} contacts, same state as Dana's, in {} ms",
        started.elapsed().as_millis()
    );
    luis.shutdown().await?;
    relay.shutdown().await?;
    Ok(())
}
