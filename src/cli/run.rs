//! `caucus run` and `caucus status`: the node on the network, and what it reports.

use super::*;

/// `caucus run`: takes the node `Ctx::open` unlocked and folded (opening it a second
/// time would pay the passphrase's key derivation and the fold twice).
pub(super) async fn run(ctx: Ctx, net: &NetArgs) -> Result<()> {
    let (home, node, lock) = ctx.session.into_parts();
    let Some(lock) = lock else {
        bail!("another `caucus run` already holds this home");
    };
    let running =
        Arc::new(Running::start(node, NodeConfig::with_net(&net_options(net, true))).await?);
    caucus_node::control::serve(running.clone(), &home.socket())?;
    let mut rx = running.subscribe();
    let addrs = running.wait_listening(Duration::from_secs(10)).await?;
    println!("caucus node {} running", running.peer_id());
    for a in &addrs {
        println!("  listening on {a}");
    }
    if net.no_mdns {
        println!("  LAN discovery off (--no-mdns): reach peers with --peer");
    } else {
        println!(
            "  announcing itself on the local network (mDNS): anyone on this network can see a caucus node runs here; use --no-mdns on the employer's Wi-Fi"
        );
    }
    let _lock = lock;
    // Peers reached before this loop listened (the --peer dials start with the node):
    // shown now, and their connection events, if still queued, not shown twice.
    let mut early: std::collections::HashSet<_> =
        running.connected_peers().await?.into_iter().collect();
    for peer in &early {
        println!("peer {peer} connected");
    }
    loop {
        tokio::select! {
            _ = shutdown_signal() => break,
            ev = rx.recv() => match ev {
                Ok(NodeEvent::PeerConnected { peer, .. }) if early.remove(&peer) => {}
                Ok(NodeEvent::PeerDisconnected { peer }) => {
                    early.remove(&peer);
                }
                Ok(NodeEvent::PeerConnected { peer, relayed }) => println!("peer {peer} connected{}", if relayed { " (through a relay)" } else { "" }),
                Ok(NodeEvent::SyncFinished { entries_stored, wire_bytes, .. }) if entries_stored > 0 => println!("synced: {entries_stored} new entries ({wire_bytes} bytes)"),
                Ok(NodeEvent::NoticeReceived { urgent: true, notice, .. }) => println!("URGENT notice {} received and acknowledged: `caucus notice show {}`", out::short(&notice.0), out::short(&notice.0)),
                Ok(NodeEvent::AckReceived { notice, acked, total, .. }) => println!("notice {}: delivered to {acked} of {total} members", out::short(&notice.0)),
                Ok(NodeEvent::DeviceLinked { label }) => println!("device \"{label}\" linked"),
                Ok(NodeEvent::MemberJoined { .. }) => println!("a new member joined"),
                Ok(NodeEvent::PeerPenalized { peer, reason }) => println!("peer {peer} cut off: {reason}"),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                _ => {}
            }
        }
    }
    let _ = std::fs::remove_file(home.socket());
    println!("stopping");
    Ok(())
}

/// `caucus status`: the running node's view if one runs, else the home's.
pub(super) async fn status(ctx: &mut Ctx) -> Result<()> {
    let groups = ctx.node().groups()?;
    let running = ctx.session.running_status().await?;
    // The running node's counts; with none running, what opening the home just refused.
    let refused: Vec<(String, u64)> = match &running {
        Some(s) => s.refused.clone(),
        None => (ctx.node().refused_counts().iter())
            .map(|(reason, count)| ((*reason).to_owned(), *count))
            .collect(),
    };
    if ctx.json {
        println!(
            "{}",
            json!({
                "running": running.is_some(),
                "refused": refused.iter().map(|(r, n)| (r.clone(), json!(n))).collect::<serde_json::Map<String, serde_json::Value>>(),
                "peer_id": running.as_ref().map(|s| s.peer_id.clone()),
                "addresses": running.as_ref().map(|s| s.addresses.clone()).unwrap_or_default(),
                "peers": running.as_ref().map(|s| s.peers.clone()).unwrap_or_default(),
                "relays": running.as_ref().map(|s| s.relays.iter().map(|r| json!({"relay": r.0, "group": hex::encode(r.1.0), "entries": r.2, "bytes": r.3, "refused": r.4})).collect::<Vec<_>>()).unwrap_or_default(),
                "groups": groups.iter().map(|g| json!({"group": hex::encode(g.id.0), "name": g.name, "entries": g.entries, "members": g.members, "last_sync_ms": running.as_ref().and_then(|s| s.groups.iter().find(|x| x.0 == g.id).and_then(|x| x.1))})).collect::<Vec<_>>(),
            })
        );
    } else {
        match &running {
            Some(s) => {
                println!(
                    "node running as {}, {} peers connected",
                    s.peer_id,
                    s.peers.len()
                );
                for a in &s.addresses {
                    println!("  {a}");
                }
                for (relay, g, entries, bytes, refused) in &s.relays {
                    println!(
                        "  relay {relay} holds {entries} entries ({bytes} bytes) of group {}{}",
                        out::short(&g.0),
                        if *refused > 0 {
                            format!(", {refused} refused by its quota")
                        } else {
                            String::new()
                        }
                    );
                }
            }
            None => println!("node not running (`caucus run`)"),
        }
        if !refused.is_empty() {
            let each: Vec<String> = (refused.iter())
                .map(|(reason, count)| format!("{count} {reason}"))
                .collect();
            println!(
                "entries refused since the node started: {}",
                each.join(", ")
            );
        }
        for g in &groups {
            let last = running
                .as_ref()
                .and_then(|s| s.groups.iter().find(|x| x.0 == g.id).and_then(|x| x.1));
            println!(
                "group \"{}\" ({}): {} entries, {} members, epoch {}, last sync {}",
                g.name,
                out::short(&g.id.0),
                g.entries,
                g.members,
                g.epoch,
                last.map_or("never (this run)".into(), out::time)
            );
            // Equivocation: shown to the group's admins, who may remove the member.
            for e in ctx.node().equivocations(&g.id)? {
                println!(
                    "  warning: a device of {} ({}) wrote two different entries at place {} of its chain; its entries from there on are refused",
                    e.who,
                    out::short(&e.device.0),
                    e.seq
                );
            }
        }
    }
    Ok(())
}
