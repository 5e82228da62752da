//! `caucus device`: linking a new device (both ends), listing and revoking devices.

use super::*;

/// `caucus device …` on an opened home (`device add` sets up a new one: [`device_add`]).
pub(super) async fn device(ctx: &mut Ctx, cmd: DeviceCmd) -> Result<()> {
    let json = ctx.json;
    match cmd {
        DeviceCmd::Link { net } => device_link(ctx, &net).await?,
        DeviceCmd::List { group } => {
            let g = ctx.group(&group)?;
            let devices = ctx.node().devices(&g)?;
            let members = ctx.node().members(&g)?;
            let name = |id: &IdentityKey| {
                members
                    .iter()
                    .find(|m| m.identity == *id)
                    .map_or_else(String::new, |m| m.name.clone())
            };
            if json {
                let v: Vec<_> = devices.iter().map(|d| json!({"device": hex::encode(d.device.0), "member": hex::encode(d.identity.0), "member_name": name(&d.identity), "label": d.label, "revoked": d.revoked})).collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                let rows: Vec<Vec<String>> = devices
                    .iter()
                    .map(|d| {
                        vec![
                            out::short(&d.device.0),
                            name(&d.identity),
                            d.label.clone(),
                            if d.revoked { "revoked" } else { "" }.into(),
                        ]
                    })
                    .collect();
                out::table(&["device", "member", "label", ""], &rows);
            }
        }
        DeviceCmd::Revoke { device, group } => {
            let g = ctx.group(&group)?;
            let d = ctx.node().find_device(&g, &device)?;
            let revocation = ctx.node().device_revocation(&g, &d)?;
            ctx.write(&g, revocation.operation).await?;
            let epoch = rotate(ctx, &g).await?;
            println!(
                "device {} revoked; group moved to epoch {epoch}",
                out::short(&d.0)
            );
            if let Some(name) = revocation.compromised {
                println!(
                    "warning: that device holds {name}'s identity key; treat the identity as compromised: `caucus member remove` them and invite them again under a new identity (`caucus init` on a fresh home)"
                );
            }
        }
        DeviceCmd::Add { .. } => unreachable_command()?,
    }
    Ok(())
}

async fn device_link(ctx: &mut Ctx, net: &NetArgs) -> Result<()> {
    if !ctx.node().holds_identity() {
        bail!("only the device that ran `caucus init` can link new devices");
    }
    if ctx.running() {
        let mut c = Client::connect(&ctx.session.home().socket()).await?;
        c.send(&Request::Link).await?;
        match c.reply().await? {
            Reply::LinkCode { code, addresses } => print_link(&code, &addresses, ctx.json),
            Reply::Error(e) => bail!(e),
            other => bail!("unexpected reply: {other:?}"),
        }
        match c.reply().await? {
            Reply::Linked { label } => {
                println!("device \"{label}\" linked; it syncs from the running node")
            }
            Reply::Error(e) => bail!(e),
            other => bail!("unexpected reply: {other:?}"),
        }
        return Ok(());
    }
    let lock = ctx.session.release_lock().context("home is locked")?;
    let node = ctx.reopen()?;
    let running = Running::start(node, NodeConfig::with_net(&net_options(net, false))).await?;
    let mut rx = running.subscribe();
    let addrs = running.wait_listening(Duration::from_secs(10)).await?;
    let (code, done) = running.host_link()?;
    print_link(
        &code.reveal(),
        &addrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ctx.json,
    );
    let cert = tokio::time::timeout(caucus_node::LINK_WINDOW, done)
        .await
        .map_err(|_| anyhow!("no device linked with the code in time"))?
        .map_err(|_| anyhow!("link abandoned"))?;
    println!("device \"{}\" linked; waiting for it to sync…", cert.label);
    wait_for(&mut rx, Duration::from_secs(60), |e| {
        matches!(e, NodeEvent::SyncFinished { .. })
    })
    .await;
    running.shutdown().await?;
    drop(lock);
    Ok(())
}

fn print_link(code: &str, addresses: &[String], json: bool) {
    if json {
        println!("{}", json!({"code": code, "addresses": addresses}));
        return;
    }
    println!("pairing code: {code}");
    println!("on the new device, with a fresh --home:");
    let addr = addresses
        .iter()
        .find(|a| !a.contains("/127.0.0.1/") && !a.contains("/::1/"))
        .or(addresses.first())
        .cloned()
        .unwrap_or_default();
    println!("  caucus device add {code} --peer {addr}");
    out::qr(&format!("{code} {addr}"));
}

/// `caucus device add`: a fresh home linked as a new device, then synced.
pub(super) async fn device_add(
    home: &Path,
    code: &str,
    peers: &[Multiaddr],
    label: &str,
    params: KdfParams,
    net: &NetArgs,
    json: bool,
) -> Result<()> {
    let h = Home::new(home);
    if h.is_initialized() {
        bail!(
            "{} already holds a caucus home: `device add` sets up a new one",
            home.display()
        );
    }
    let code = PairingCode::parse(code)?;
    let pass = passphrase(true)?;
    let mut options = net_options(net, false);
    options.peers = peers.to_vec();
    let node =
        caucus_node::link_device(home, pass.as_bytes(), params, &code, label, &options).await?;
    let lock = h.try_lock()?.context("home is locked")?;
    // The first device is dialed twice over: given with --peer, and as the one linked with.
    let mut options = net_options(net, false);
    options.peers.extend(peers.iter().cloned());
    let running = Running::start(node, NodeConfig::with_net(&options)).await?;
    let mut rx = running.subscribe();
    let synced = wait_synced(&mut rx, json, |e| {
        matches!(e, NodeEvent::SyncFinished { .. })
    })
    .await;
    let groups = running.with_node(|n| n.groups())?;
    running.shutdown().await?;
    drop(lock);
    if json {
        println!(
            "{}",
            json!({"home": home, "groups": groups.iter().map(|g| hex::encode(g.id.0)).collect::<Vec<_>>(), "synced": synced})
        );
    } else {
        println!(
            "this device is linked ({} groups){}",
            groups.len(),
            if synced {
                ", history synced"
            } else {
                "; run `caucus run` to sync"
            }
        );
    }
    Ok(())
}
