//! An urgent meeting notice reaching a committee of six organizers, each a real node
//! (own encrypted home, own libp2p swarm) on 127.0.0.1, and the sender watching
//! "delivered to k of n" fill up as every node acknowledges it.
//!
//! `cargo run --example urgent_notice`

use anyhow::{Context, Result, bail};
use caucus::node::{Node, NodeConfig, NodeEvent, Running, now_ms};
use caucus::proto::{NoticeContent, NoticeId, Operation};
use std::time::{Duration, Instant};

const MEMBERS: usize = 6;

#[tokio::main]
async fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let kdf = caucus::crypto::at_rest::KdfParams::new(19 * 1024, 2, 1)?;
    let config = |peers: Vec<caucus::net::Multiaddr>| {
        let mut net = caucus::net::Config::loopback();
        net.bootstrap = peers;
        NodeConfig {
            net,
            ..NodeConfig::default()
        }
    };
    // The admin founds the committee; the others join with one-time invites.
    let admin = Node::init(&dir.path().join("admin"), b"pass", "Dana", "laptop", kdf)?;
    let admin = Running::start(admin, config(Vec::new())).await?;
    let addrs = admin.wait_listening(Duration::from_secs(10)).await?;
    let group = admin.create_group("JFK8 committee").await?;
    let mut others = Vec::new();
    for i in 1..MEMBERS {
        let text: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        let ticket = admin.with_node(|n| n.create_invite(&group, text, now_ms() + 600_000))?;
        let node = Node::init(
            &dir.path().join(format!("m{i}")),
            b"pass",
            &format!("organizer {i}"),
            "phone",
            kdf,
        )?;
        let r = Running::start(node, config(addrs.clone())).await?;
        r.join(&ticket, &[]).await?;
        others.push(r);
    }
    println!("{MEMBERS} organizers online; Dana sends an urgent notice");
    let mut events = admin.subscribe();
    let notice = NoticeId([1; 16]);
    let sent = Instant::now();
    admin
        .write(
            &group,
            Operation::NoticePosted {
                notice,
                content: NoticeContent {
                    title: "Emergency meeting".into(),
                    starts_at_ms: now_ms() + 3_600_000,
                    place: "Union hall".into(),
                    body: "Bring the petition sheets.".into(),
                    urgent: true,
                    expires_at_ms: None,
                },
            },
        )
        .await?;
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(30), events.recv())
            .await
            .context("acknowledgements stopped coming")?;
        if let Ok(NodeEvent::AckReceived {
            notice: n,
            acked,
            total,
            ..
        }) = ev
        {
            if n != notice {
                continue;
            }
            println!(
                "{:>6.1} ms  delivered to {acked} of {total} members",
                sent.elapsed().as_secs_f64() * 1e3
            );
            if acked == total {
                break;
            }
        }
    }
    if others.len() + 1 != MEMBERS {
        bail!("lost a member");
    }
    for r in others {
        r.shutdown().await?;
    }
    admin.shutdown().await?;
    Ok(())
}
