//! `caucus relay`: the office relay, started by `caucus-node` ([`RelayNode`]); this
//! applies grants and revocations, prints its status, and reports its events.

use super::*;

/// What `caucus relay` was asked to do.
pub(super) struct RelayOpts {
    pub(super) listen: Vec<Multiaddr>,
    pub(super) allow: Vec<String>,
    pub(super) revoke: Vec<String>,
    pub(super) status_only: bool,
    pub(super) external: Vec<Multiaddr>,
    pub(super) max_peers: u32,
    pub(super) limits: caucus_node::netopts::RelayLimits,
    pub(super) quota: caucus_node::relay::Quota,
}

/// `caucus relay`: grants, revocations, `--status`, or the relay run until stopped.
pub(super) async fn relay(home: &Path, opts: RelayOpts, json: bool) -> Result<()> {
    let RelayOpts {
        listen,
        allow,
        revoke,
        status_only,
        external,
        max_peers,
        limits,
        quota,
    } = opts;
    use caucus_node::relay::{Relay, RelayGrant};
    let relay = Relay::open(home, quota)?;
    for g in &allow {
        let grant = RelayGrant::parse(g)?;
        let id = relay.allow(grant)?;
        println!("serving group {}", out::short(&id.0));
    }
    for g in &revoke {
        let id =
            GroupId::from_hex(g).ok_or_else(|| anyhow!("--revoke takes a group's full hex id"))?;
        relay.revoke(&id)?;
        println!("no longer serving group {}", out::short(&id.0));
    }
    if status_only {
        relay.checkpoint()?;
        let usage = relay.usage();
        if json {
            println!(
                "{}",
                json!({"groups": usage.iter().map(|(g, u)| json!({"group": hex::encode(g.0), "entries": u.entries, "bytes": u.bytes, "refused": u.refused})).collect::<Vec<_>>()})
            );
        } else {
            for (g, u) in usage {
                println!(
                    "group {}: {} entries, {} bytes",
                    hex::encode(g.0),
                    u.entries,
                    u.bytes
                );
            }
        }
        return Ok(());
    }
    let limits_line = format!(
        "  limits: {max_peers} peers and reservations, {} circuits (4 per peer), {} MiB and {} min per circuit; per group {} entries, {} MiB",
        limits.max_circuits,
        limits.max_circuit_bytes >> 20,
        limits.max_circuit_duration.as_secs() / 60,
        quota.max_entries,
        quota.max_bytes >> 20,
    );
    let options = RelayOptions {
        listen,
        external,
        limits,
        max_peers: Some(max_peers),
        ..RelayOptions::office()
    };
    let (node, mut events) = RelayNode::start(relay, options).await?;
    println!(
        "caucus relay {} serving {} groups (ciphertext only)",
        node.peer_id(),
        node.relay().groups().len()
    );
    println!("{limits_line}");
    loop {
        tokio::select! {
            _ = shutdown_signal() => break,
            ev = events.recv() => match ev {
                Ok(RelayEvent::Listening { address }) => println!("  listening on {address}"),
                Ok(RelayEvent::PeerPenalized { peer, reason }) => println!("peer {peer} cut off: {reason}"),
                Ok(RelayEvent::Limited { peer, what }) => println!("peer {peer}: {what} by the relay limits"),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    }
    node.shutdown().await?;
    Ok(())
}
