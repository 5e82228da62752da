//! `caucus group`, `caucus invite` and `caucus join`: founding a group, its campaign
//! figures, its relay grant, invites, and joining with one.

use super::*;

/// `caucus group …`.
pub(super) async fn group(ctx: &mut Ctx, cmd: GroupCmd) -> Result<()> {
    let json = ctx.json;
    match cmd {
        GroupCmd::Create { name } => {
            if ctx.running() {
                bail!("stop `caucus run` first: founding a group sets up keys on this device");
            }
            let g = ctx.session.node_mut().create_group(&name)?;
            if json {
                println!("{}", json!({"group": hex::encode(g.0), "name": name}));
            } else {
                println!(
                    "founded \"{name}\" ({}); you are its admin",
                    out::short(&g.0)
                );
            }
        }
        GroupCmd::List => {
            let groups = ctx.node().groups()?;
            if json {
                let v: Vec<_> = groups.iter().map(|g| json!({"group": hex::encode(g.id.0), "name": g.name, "members": g.members, "entries": g.entries, "epoch": g.epoch, "role": g.role.map(role_name)})).collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                let rows: Vec<Vec<String>> = groups
                    .iter()
                    .map(|g| {
                        vec![
                            out::short(&g.id.0),
                            g.name.clone(),
                            g.members.to_string(),
                            g.entries.to_string(),
                            g.epoch.to_string(),
                            g.role.map_or("-", role_name).to_string(),
                        ]
                    })
                    .collect();
                out::table(
                    &["id", "name", "members", "entries", "epoch", "your role"],
                    &rows,
                );
            }
        }
        GroupCmd::Campaign {
            headcount,
            target,
            group,
        } => {
            let g = ctx.group(&group)?;
            if target > 100 {
                bail!("--target is a percentage (0-100)");
            }
            ctx.write(
                &g,
                Operation::CampaignSet {
                    headcount,
                    target_percent: target,
                },
            )
            .await?;
            println!("campaign: {headcount} workers, target {target}% supportive");
        }
        GroupCmd::RelayGrant { group } => {
            let g = ctx.group(&group)?;
            let grant = ctx.node().relay_grant(&g)?;
            let text = grant.to_text()?;
            if json {
                println!("{}", json!({"group": hex::encode(g.0), "grant": &*text}));
            } else {
                println!(
                    "give this to the relay operator (`caucus relay --allow …`); it opens no entry:"
                );
                println!("{}", &*text);
            }
        }
    }
    Ok(())
}

/// `caucus invite …`.
pub(super) async fn invite(ctx: &mut Ctx, cmd: InviteCmd) -> Result<()> {
    let json = ctx.json;
    match cmd {
        InviteCmd::Create {
            group,
            hours,
            mut address,
        } => {
            let g = ctx.group(&group)?;
            let me = ctx.node().identity();
            let role = ctx.node().state(&g)?.member(&me).map(|m| m.role);
            if role != Some(Role::Admin) {
                bail!("only an admin can invite (ask an admin of this group)");
            }
            if address.is_empty()
                && let Some(s) = ctx.session.running_status().await?
            {
                address = s.addresses;
            }
            for a in &address {
                a.parse::<Multiaddr>()
                    .map_err(|_| anyhow!("--address {a} is not a multiaddr"))?;
            }
            let expires = now_ms() + hours * 3_600_000;
            let ticket = ctx
                .session
                .node_mut()
                .create_invite(&g, address.clone(), expires)?;
            let text = ticket.to_text()?;
            if json {
                println!(
                    "{}",
                    json!({"invite": hex::encode(ticket.id().0), "ticket": &*text, "expires_at_ms": expires, "addresses": address})
                );
            } else {
                println!(
                    "one-time invite {} (valid {hours} h):",
                    out::short(&ticket.id().0)
                );
                println!("{}", &*text);
                out::qr(&text);
                if address.is_empty() {
                    println!(
                        "note: no address in the ticket (start `caucus run` first, or pass --address); the joiner will need --peer"
                    );
                }
                println!("hand it over in person: anyone holding it can join");
            }
        }
        InviteCmd::Revoke { id } => {
            let id = ctx.session.node_mut().revoke_invite(&id)?;
            if json {
                println!("{}", json!({"revoked": hex::encode(id.0)}));
            } else {
                println!("invite {} revoked", out::short(&id.0));
            }
        }
        InviteCmd::List => {
            let invites = ctx.node().invites()?;
            if json {
                let v: Vec<_> = invites.iter().map(|i| json!({"invite": hex::encode(i.id.0), "group": hex::encode(i.group.0), "expires_at_ms": i.expires_at_ms, "revoked": i.revoked})).collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                let now = now_ms();
                let rows: Vec<Vec<String>> = invites
                    .iter()
                    .map(|i| {
                        let state = if i.revoked {
                            "used/revoked"
                        } else if i.expires_at_ms < now {
                            "expired"
                        } else {
                            "open"
                        };
                        vec![
                            hex::encode(i.id.0),
                            out::time(i.expires_at_ms),
                            state.into(),
                        ]
                    })
                    .collect();
                out::table(&["invite", "expires", "state"], &rows);
            }
        }
    }
    Ok(())
}

/// `caucus join`: runs the network until the first sync of the group joined.
pub(super) async fn join(
    ctx: &mut Ctx,
    ticket: &str,
    peers: Vec<Multiaddr>,
    net: &NetArgs,
) -> Result<()> {
    if ctx.running() {
        bail!("stop `caucus run` first: joining runs this device's network itself");
    }
    let ticket = InviteTicket::parse(ticket.trim())?;
    if !ticket.is_valid_at(now_ms()) {
        bail!("this invite has expired: ask for a new one");
    }
    ctx.session.release_lock();
    let lock = ctx
        .session
        .home()
        .try_lock()?
        .context("another process holds this home")?;
    let node = ctx.reopen()?;
    let running = Running::start(node, NodeConfig::with_net(&net_options(net, false))).await?;
    let mut rx = running.subscribe();
    let group = running.join(&ticket, &peers).await?;
    let synced = wait_synced(
        &mut rx,
        ctx.json,
        |e| matches!(e, NodeEvent::SyncFinished { group: g, .. } if *g == group),
    )
    .await;
    let name = running
        .with_node(|n| {
            n.state(&group)
                .ok()
                .and_then(|s| s.group_name().map(str::to_owned))
        })
        .unwrap_or_default();
    let entries = running.with_node(|n| n.entry_count(&group))?;
    running.shutdown().await?;
    drop(lock);
    if ctx.json {
        println!(
            "{}",
            json!({"group": hex::encode(group.0), "name": name, "entries": entries, "synced": synced})
        );
    } else {
        println!(
            "joined \"{name}\" ({}): {entries} entries synced{}",
            out::short(&group.0),
            if synced {
                ""
            } else {
                " so far (run `caucus run` to finish)"
            }
        );
    }
    Ok(())
}
