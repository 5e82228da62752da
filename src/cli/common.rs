//! What every command shares: the home opened with its passphrase ([`Ctx`]), writing
//! through the running node or directly, finding things by id prefix, and parsing dates,
//! times, ratings and contact fields.

use super::*;

/// The platform data dir, as caucus uses it.
pub(super) fn default_home() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return Ok(PathBuf::from(d).join("caucus"));
    }
    let home = std::env::var_os("HOME").context("no --home given and $HOME is not set")?;
    Ok(PathBuf::from(home).join(".local/share/caucus"))
}

/// The passphrase: `CAUCUS_PASSPHRASE`, else a prompt (twice when `confirm`).
pub(super) fn passphrase(confirm: bool) -> Result<Zeroizing<String>> {
    if let Ok(p) = std::env::var("CAUCUS_PASSPHRASE") {
        if p.is_empty() {
            bail!("CAUCUS_PASSPHRASE is empty");
        }
        return Ok(Zeroizing::new(p));
    }
    let p = Zeroizing::new(
        rpassword::prompt_password("passphrase: ")
            .context("no passphrase: set CAUCUS_PASSPHRASE or run in a terminal")?,
    );
    if p.is_empty() {
        bail!("the passphrase must not be empty");
    }
    if confirm {
        let again = Zeroizing::new(rpassword::prompt_password("again: ")?);
        if *again != *p {
            bail!("the two passphrases differ");
        }
    }
    Ok(p)
}

pub(super) fn kdf(mib: u32) -> Result<KdfParams> {
    let t = if mib >= 64 { 3 } else { 2 };
    KdfParams::new(mib.saturating_mul(1024), t, 1)
        .map_err(|_| anyhow!("--kdf-memory-mib must be at least 19 (the OWASP minimum)"))
}

/// A home opened for a command: the node's [`Session`] (which writes directly or through
/// the running node), and how to print.
pub(super) struct Ctx {
    pub(super) session: Session,
    pub(super) json: bool,
    /// Asked once per command (a command that starts the network reopens the home).
    pub(super) pass: Zeroizing<String>,
}

impl Ctx {
    pub(super) fn open(home: &Path, json: bool) -> Result<Ctx> {
        if !Home::new(home).is_initialized() {
            bail!(
                "no caucus home at {} (run `caucus init --name NAME` first, or pass --home)",
                home.display()
            );
        }
        let pass = passphrase(false)?;
        let session = Session::open(home, pass.as_bytes())?;
        Ok(Ctx {
            session,
            json,
            pass,
        })
    }

    /// The node.
    pub(super) fn node(&self) -> &Node {
        self.session.node()
    }

    pub(super) fn running(&self) -> bool {
        self.session.running()
    }

    pub(super) fn group(&self, g: &GroupArg) -> Result<GroupId> {
        Ok(self.node().select_group(g.group.as_deref())?)
    }

    /// Writes through the running node if there is one, else directly.
    pub(super) async fn write(
        &mut self,
        group: &GroupId,
        op: Operation,
    ) -> Result<caucus_proto::EntryId> {
        Ok(self.session.write(group, op).await?)
    }

    /// Many operations in one transaction (an import), through the running node if any.
    pub(super) async fn write_many(
        &mut self,
        group: &GroupId,
        ops: Vec<Operation>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<()> {
        Ok(self.session.write_many(group, ops, progress).await?)
    }

    /// Opens the home again (after the running node let go of it, or to hand the node
    /// to the network), with the passphrase already given.
    pub(super) fn reopen(&self) -> Result<Node> {
        Ok(Node::open(self.session.home().dir(), self.pass.as_bytes())?)
    }
}

pub(super) fn random16() -> [u8; 16] {
    use rand::Rng;
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b
}

pub(super) fn rating(n: u8) -> Result<Rating> {
    Rating::new(n).map_err(|_| {
        anyhow!("rating must be 1 (leader), 2 (supporter), 3 (undecided), 4 (leaning against) or 5 (opposed), not {n}")
    })
}

pub(super) fn parse_day(s: &str) -> Result<Day> {
    let bad = || anyhow!("bad date \"{s}\": use YYYY-MM-DD");
    let mut parts = s.trim().split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let y: i32 = y.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    let d: u32 = d.parse().map_err(|_| bad())?;
    Day::from_ymd(y, m, d).ok_or_else(bad)
}

/// "YYYY-MM-DD HH:MM" (UTC), "YYYY-MM-DD", or "+2h" / "+30m" / "+1d".
pub(super) fn parse_time(s: &str) -> Result<u64> {
    let s = s.trim();
    let bad = || anyhow!("bad time \"{s}\": use \"YYYY-MM-DD HH:MM\" (UTC) or \"+2h\"");
    if let Some(rel) = s.strip_prefix('+') {
        let (num, unit) = rel.split_at(rel.len().saturating_sub(1));
        let n: u64 = num.parse().map_err(|_| bad())?;
        let ms = match unit {
            "m" => n * 60_000,
            "h" => n * 3_600_000,
            "d" => n * 86_400_000,
            _ => return Err(bad()),
        };
        return Ok(now_ms() + ms);
    }
    let (date, clock) = s.split_once([' ', 'T']).unwrap_or((s, "00:00"));
    let day = parse_day(date).map_err(|_| bad())?;
    let (h, m) = clock.split_once(':').ok_or_else(bad)?;
    let h: u64 = h.parse().map_err(|_| bad())?;
    let m: u64 = m.parse().map_err(|_| bad())?;
    if h > 23 || m > 59 || day.0 < 0 {
        return Err(bad());
    }
    Ok(u64::try_from(day.0).map_err(|_| bad())? * 86_400_000 + h * 3_600_000 + m * 60_000)
}

pub(super) fn fields(f: &ContactFields) -> Result<Vec<ContactField>> {
    let mut v = Vec::new();
    if let Some(x) = &f.name {
        v.push(ContactField::Name(x.clone()));
    }
    if let Some(x) = &f.dept {
        v.push(ContactField::Department(x.clone()));
    }
    if let Some(x) = &f.shift {
        v.push(ContactField::Shift(x.clone()));
    }
    if let Some(x) = &f.job {
        v.push(ContactField::Job(x.clone()));
    }
    if let Some(x) = &f.phone {
        v.push(ContactField::Handle(x.clone()));
    }
    if let Some(r) = f.rating {
        v.push(ContactField::Rating(rating(r)?));
    }
    for t in &f.tag {
        v.push(ContactField::Tag {
            tag: t.clone(),
            on: true,
        });
    }
    if let Some(x) = &f.assign {
        v.push(ContactField::AssignedTo(x.clone()));
    }
    Ok(v)
}

pub(super) fn role_name(r: Role) -> &'static str {
    match r {
        Role::Admin => "admin",
        Role::Organizer => "organizer",
    }
}

/// The node's network options from the flags; `default_listen` keeps the node's
/// default listen addresses (TCP and QUIC) when none is given, else TCP only.
pub(super) fn net_options(net: &NetArgs, default_listen: bool) -> NetOptions {
    NetOptions {
        listen: net.listen.clone(),
        peers: net.peer.clone(),
        no_mdns: net.no_mdns,
        tcp_only: !default_listen,
        ..NetOptions::default()
    }
}

/// Waits for an event matching `f`, at most `timeout`.
pub(super) async fn wait_for(
    rx: &mut tokio::sync::broadcast::Receiver<NodeEvent>,
    timeout: Duration,
    mut f: impl FnMut(&NodeEvent) -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(ev)) if f(&ev) => return true,
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(_)) | Err(_) => return false,
        }
    }
}

/// Waits (at most a minute) for the first sync matching `done`, with a progress
/// spinner counting the entries stored.
pub(super) async fn wait_synced(
    rx: &mut tokio::sync::broadcast::Receiver<NodeEvent>,
    json: bool,
    mut done: impl FnMut(&NodeEvent) -> bool,
) -> bool {
    let bar = indicatif::ProgressBar::new_spinner();
    if json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_message("syncing");
    bar.enable_steady_tick(Duration::from_millis(120));
    let ok = wait_for(rx, Duration::from_secs(60), |e| {
        if let NodeEvent::SyncProgress { entries_stored, .. } = e {
            bar.set_message(format!("syncing: {entries_stored} entries stored"));
        }
        done(e)
    })
    .await;
    bar.finish_and_clear();
    ok
}

/// Ctrl-C, or SIGTERM (systemd's stop).
pub(super) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub(super) fn unreachable_command() -> Result<()> {
    bail!("internal: command dispatched twice")
}

pub(super) async fn rotate(ctx: &mut Ctx, g: &GroupId) -> Result<u64> {
    Ok(ctx.session.rotate(g).await?)
}
