//! Argument definitions and the commands.

use crate::out;
use anyhow::{Context, Result, anyhow, bail};
use caucus_crypto::at_rest::KdfParams;
use caucus_crypto::invite::InviteTicket;
use caucus_crypto::link::PairingCode;
use caucus_model::{ContactFilter, RatingFilter};
use caucus_node::control::{Client, Reply, Request};
use caucus_node::relay::{RelayEvent, RelayNode, RelayOptions};
use caucus_node::{Home, Multiaddr, NetOptions, Node, NodeConfig, NodeEvent, Running, now_ms};
use caucus_proto::{
    ContactField, ContactId, Day, FollowupId, GroupId, IdentityKey, Note, NoticeContent, NoticeId,
    Operation, Rating, Role,
};
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// End-to-end encrypted, peer-to-peer contact log and meeting notices for union organizers.
#[derive(Parser, Debug)]
#[command(name = "caucus", version, about)]
pub(crate) struct Cli {
    /// This device's home directory (default: $CAUCUS_HOME, else the platform data dir).
    #[arg(long, global = true, env = "CAUCUS_HOME")]
    home: Option<PathBuf>,
    /// Machine-readable output (stable field names).
    #[arg(long, global = true)]
    json: bool,
    /// More log lines on stderr (ids and counts only; RUST_LOG also works).
    #[arg(long, short, global = true)]
    pub(crate) verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Set up this device: an organizer identity and this device's keys.
    Init {
        /// Your name as the committee knows you.
        #[arg(long)]
        name: String,
        /// What this device is ("laptop", "phone").
        #[arg(long, default_value = "laptop")]
        device: String,
        /// Argon2id memory in MiB for the passphrase (at least 19, the OWASP minimum).
        #[arg(long, default_value_t = 64, hide = true)]
        kdf_memory_mib: u32,
    },
    /// Groups (campaign committees).
    #[command(subcommand)]
    Group(GroupCmd),
    /// Invites to a group.
    #[command(subcommand)]
    Invite(InviteCmd),
    /// Join a group with an invite ticket (runs the network until the first sync;
    /// --peer addresses are tried before the ticket's).
    Join {
        /// The ticket (caucus1-…).
        ticket: String,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Devices of an organizer (phone + laptop).
    #[command(subcommand)]
    Device(DeviceCmd),
    /// Members of a group.
    #[command(subcommand)]
    Member(MemberCmd),
    /// The contact log.
    #[command(subcommand)]
    Contact(ContactCmd),
    /// Follow-ups.
    #[command(subcommand)]
    Followup(FollowupCmd),
    /// Support by department and shift.
    Map {
        #[command(flatten)]
        group: GroupArg,
    },
    /// Meeting notices.
    #[command(subcommand)]
    Notice(NoticeCmd),
    /// Import contacts (and notes) from CSV spreadsheets.
    Import {
        /// contacts CSV (name, department, shift, job, phone, rating, tags, assigned_to).
        #[arg(long)]
        contacts: PathBuf,
        /// notes CSV (contact_phone, author, date, text).
        #[arg(long)]
        notes: Option<PathBuf>,
        #[command(flatten)]
        group: GroupArg,
    },
    /// Export contacts and notes as CSV.
    Export {
        /// Where to write contacts.
        #[arg(long)]
        contacts: PathBuf,
        /// Where to write notes.
        #[arg(long)]
        notes: PathBuf,
        #[command(flatten)]
        group: GroupArg,
    },
    /// Run the node: LAN discovery, gossip, catch-up sync.
    Run {
        #[command(flatten)]
        net: NetArgs,
    },
    /// Run the office relay: circuit relay for NAT traversal and a blind store.
    Relay {
        /// Listen here (default /ip4/0.0.0.0/tcp/4001 and /ip4/0.0.0.0/udp/4001/quic-v1).
        #[arg(long)]
        listen: Vec<Multiaddr>,
        /// Serve this group from now on (a grant from `caucus group relay-grant`).
        #[arg(long)]
        allow: Vec<String>,
        /// Stop serving a group (hex id).
        #[arg(long)]
        revoke: Vec<String>,
        /// Print status and exit instead of running.
        #[arg(long)]
        status: bool,
        /// The address phones reach this relay at, if not a listen address (NAT, DNS).
        #[arg(long)]
        external: Vec<Multiaddr>,
        /// Most peers connected at once; also the most circuit reservations held.
        #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65_536))]
        max_peers: u32,
        /// Most circuits relayed at once (each peer: at most 4).
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=65_536))]
        max_circuits: u32,
        /// Most MiB one circuit carries each way before it is cut.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=65_536))]
        circuit_mib: u64,
        /// Longest a circuit stays open, in minutes.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1440))]
        circuit_minutes: u64,
        /// Most entries kept per group.
        #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
        quota_entries: u64,
        /// Most MiB of envelopes kept per group.
        #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u64).range(1..=16_777_216))]
        quota_mib: u64,
    },
    /// Peers, groups, last sync.
    Status,
    /// Several local nodes and a relay telling the whole story on loopback.
    Demo {
        /// Keep the temporary homes (and print where they are).
        #[arg(long)]
        keep: bool,
    },
    /// Shell completions.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Args, Debug, Clone)]
struct GroupArg {
    /// Which group (name, or hex id prefix); needed only when in several.
    #[arg(long, short)]
    group: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct NetArgs {
    /// Listen address (default: any address, a random port; TCP and QUIC).
    #[arg(long)]
    listen: Vec<Multiaddr>,
    /// A peer to dial (repeatable): another organizer's node or the office relay.
    #[arg(long)]
    peer: Vec<Multiaddr>,
    /// Do not announce this node on the local network (for the employer's Wi-Fi).
    #[arg(long)]
    no_mdns: bool,
}

#[derive(Subcommand, Debug)]
enum GroupCmd {
    /// Found a group; you are its admin.
    Create {
        /// Its name ("JFK8 committee").
        name: String,
    },
    /// The groups this device is in.
    List,
    /// Set the campaign's headcount and support target (admins).
    Campaign {
        /// Workers in the unit.
        #[arg(long)]
        headcount: u32,
        /// Target share of supporters, in percent.
        #[arg(long, default_value_t = 70)]
        target: u8,
        #[command(flatten)]
        group: GroupArg,
    },
    /// Print the grant that lets the office relay serve this group (ciphertext only).
    RelayGrant {
        #[command(flatten)]
        group: GroupArg,
    },
}

#[derive(Subcommand, Debug)]
enum InviteCmd {
    /// Create a one-time invite (admins).
    Create {
        #[command(flatten)]
        group: GroupArg,
        /// Valid for this many hours.
        #[arg(long, default_value_t = 48)]
        hours: u64,
        /// Address where the joiner reaches a member (default: the running node's).
        #[arg(long)]
        address: Vec<String>,
    },
    /// Revoke an invite (id or prefix).
    Revoke {
        /// The invite id.
        id: String,
    },
    /// Invites made on this device.
    List,
}

#[derive(Subcommand, Debug)]
enum DeviceCmd {
    /// On your first device: show a pairing code and wait for the new device.
    Link {
        #[command(flatten)]
        net: NetArgs,
    },
    /// On the new device (a fresh home): link it with the code shown by `device link`.
    /// (--peer: the first device's address, as `device link` printed it.)
    Add {
        /// The pairing code.
        code: String,
        /// What this device is.
        #[arg(long, default_value = "phone")]
        label: String,
        /// Argon2id memory in MiB (at least 19).
        #[arg(long, default_value_t = 64, hide = true)]
        kdf_memory_mib: u32,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Devices in the group.
    List {
        #[command(flatten)]
        group: GroupArg,
    },
    /// Revoke a lost device (hex prefix); starts a new epoch it does not get.
    Revoke {
        /// The device id.
        device: String,
        #[command(flatten)]
        group: GroupArg,
    },
}

#[derive(Subcommand, Debug)]
enum MemberCmd {
    /// Members of the group.
    List {
        #[command(flatten)]
        group: GroupArg,
    },
    /// Remove a member (admins); starts a new epoch they do not get.
    Remove {
        /// Name or hex id prefix.
        member: String,
        #[command(flatten)]
        group: GroupArg,
    },
    /// Change a member's role (admins).
    Role {
        /// Name or hex id prefix.
        member: String,
        /// admin or organizer.
        role: String,
        #[command(flatten)]
        group: GroupArg,
    },
}

#[derive(Args, Debug, Clone, Default)]
struct ContactFields {
    /// Name.
    #[arg(long)]
    name: Option<String>,
    /// Department.
    #[arg(long)]
    dept: Option<String>,
    /// Shift.
    #[arg(long)]
    shift: Option<String>,
    /// Job or area.
    #[arg(long)]
    job: Option<String>,
    /// Phone or other contact handle.
    #[arg(long)]
    phone: Option<String>,
    /// Support rating 1 (leader) .. 5 (opposed).
    #[arg(long)]
    rating: Option<u8>,
    /// Tag to set (repeatable).
    #[arg(long)]
    tag: Vec<String>,
    /// Assigned organizer.
    #[arg(long)]
    assign: Option<String>,
}

#[derive(Subcommand, Debug)]
enum ContactCmd {
    /// Log a new contact.
    Add {
        #[command(flatten)]
        fields: ContactFields,
        #[command(flatten)]
        group: GroupArg,
    },
    /// Change fields of a contact.
    Edit {
        /// Contact id (prefix).
        id: String,
        #[command(flatten)]
        fields: ContactFields,
        #[command(flatten)]
        group: GroupArg,
    },
    /// Set a support rating (1 leader .. 5 opposed).
    Rate {
        /// Contact id (prefix).
        id: String,
        /// The rating.
        rating: u8,
        #[command(flatten)]
        group: GroupArg,
    },
    /// Set (or with --off clear) a tag.
    Tag {
        /// Contact id (prefix).
        id: String,
        /// The tag ("signed card").
        tag: String,
        /// Clear the tag instead.
        #[arg(long)]
        off: bool,
        #[command(flatten)]
        group: GroupArg,
    },
    /// Add a conversation note.
    Note {
        /// Contact id (prefix).
        id: String,
        /// What was said.
        text: String,
        /// The day of the conversation (YYYY-MM-DD), if not today.
        #[arg(long)]
        date: Option<String>,
        #[command(flatten)]
        group: GroupArg,
    },
    /// A contact with its notes.
    Show {
        /// Contact id (prefix).
        id: String,
        #[command(flatten)]
        group: GroupArg,
    },
    /// List contacts.
    List {
        /// Only this department.
        #[arg(long)]
        dept: Option<String>,
        /// Only this shift.
        #[arg(long)]
        shift: Option<String>,
        /// Only this rating (1-5), "unrated" or "supportive".
        #[arg(long)]
        rating: Option<String>,
        /// Only with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Only assigned to this organizer.
        #[arg(long)]
        assignee: Option<String>,
        /// Only matching this text.
        #[arg(long)]
        text: Option<String>,
        #[command(flatten)]
        group: GroupArg,
    },
    /// Remove a contact from the log.
    Remove {
        /// Contact id (prefix).
        id: String,
        #[command(flatten)]
        group: GroupArg,
    },
}

#[derive(Subcommand, Debug)]
enum FollowupCmd {
    /// Plan a follow-up.
    Add {
        /// Contact id (prefix).
        contact: String,
        /// Due date (YYYY-MM-DD).
        #[arg(long)]
        due: String,
        /// What to do.
        #[arg(long)]
        task: String,
        /// Who does it (default: you).
        #[arg(long)]
        assignee: Option<String>,
        #[command(flatten)]
        group: GroupArg,
    },
    /// Mark a follow-up done.
    Done {
        /// Follow-up id (prefix).
        id: String,
        #[command(flatten)]
        group: GroupArg,
    },
    /// Follow-ups due, overdue first.
    List {
        /// Due within this many days.
        #[arg(long, default_value_t = 7)]
        days: u32,
        #[command(flatten)]
        group: GroupArg,
    },
}

#[derive(Subcommand, Debug)]
enum NoticeCmd {
    /// Send a meeting notice (--urgent: admins; delivered at once to everyone online).
    Send {
        /// Title.
        #[arg(long)]
        title: String,
        /// When: "YYYY-MM-DD HH:MM" (UTC) or "+2h" / "+30m".
        #[arg(long)]
        at: String,
        /// Where.
        #[arg(long)]
        place: String,
        /// Details.
        #[arg(long, default_value = "")]
        body: String,
        /// Urgent.
        #[arg(long)]
        urgent: bool,
        /// Expires after this many hours past the start.
        #[arg(long, default_value_t = 6)]
        expires_hours: u64,
        #[command(flatten)]
        group: GroupArg,
    },
    /// Current notices.
    List {
        #[command(flatten)]
        group: GroupArg,
    },
    /// One notice, with who acknowledged it.
    Show {
        /// Notice id (prefix).
        id: String,
        #[command(flatten)]
        group: GroupArg,
    },
    /// Acknowledge a notice.
    Ack {
        /// Notice id (prefix).
        id: String,
        #[command(flatten)]
        group: GroupArg,
    },
    /// Cancel a notice.
    Cancel {
        /// Notice id (prefix).
        id: String,
        #[command(flatten)]
        group: GroupArg,
    },
}

/// The platform data dir, as caucus uses it.
fn default_home() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return Ok(PathBuf::from(d).join("caucus"));
    }
    let home = std::env::var_os("HOME").context("no --home given and $HOME is not set")?;
    Ok(PathBuf::from(home).join(".local/share/caucus"))
}

/// The passphrase: `CAUCUS_PASSPHRASE`, else a prompt (twice when `confirm`).
fn passphrase(confirm: bool) -> Result<Zeroizing<String>> {
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

fn kdf(mib: u32) -> Result<KdfParams> {
    let t = if mib >= 64 { 3 } else { 2 };
    KdfParams::new(mib.saturating_mul(1024), t, 1)
        .map_err(|_| anyhow!("--kdf-memory-mib must be at least 19 (the OWASP minimum)"))
}

/// A home opened for a command: the node, and how to write.
struct Ctx {
    home: Home,
    node: Node,
    /// Held while no `caucus run` owns the home: this process writes directly.
    lock: Option<std::fs::File>,
    json: bool,
    /// Asked once per command (a command that starts the network reopens the home).
    pass: Zeroizing<String>,
}

impl Ctx {
    fn open(home: &Path, json: bool) -> Result<Ctx> {
        let home = Home::new(home);
        if !home.is_initialized() {
            bail!(
                "no caucus home at {} (run `caucus init --name NAME` first, or pass --home)",
                home.dir().display()
            );
        }
        let lock = home.try_lock()?;
        let pass = passphrase(false)?;
        let node = Node::open(home.dir(), pass.as_bytes())?;
        Ok(Ctx {
            home,
            node,
            lock,
            json,
            pass,
        })
    }

    fn running(&self) -> bool {
        self.lock.is_none()
    }

    fn group(&self, g: &GroupArg) -> Result<GroupId> {
        Ok(self.node.select_group(g.group.as_deref())?)
    }

    /// Writes through the running node if there is one, else directly.
    async fn write(&mut self, group: &GroupId, op: Operation) -> Result<caucus_proto::EntryId> {
        if self.running() {
            match Client::call(&self.home.socket(), &Request::Write { group: *group, op }).await? {
                Reply::Written { ids } => ids.first().copied().context("no id in the reply"),
                other => bail!("unexpected reply from the running node: {other:?}"),
            }
        } else {
            Ok(self.node.write(group, op)?)
        }
    }

    /// Many operations in one transaction (an import), through the running node if any.
    async fn write_many(
        &mut self,
        group: &GroupId,
        ops: Vec<Operation>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<()> {
        if self.running() {
            Client::call(
                &self.home.socket(),
                &Request::WriteMany { group: *group, ops },
            )
            .await?;
        } else {
            self.node.write_many(group, ops, progress)?;
        }
        Ok(())
    }

    /// Opens the home again (after the running node let go of it, or to hand the node
    /// to the network), with the passphrase already given.
    fn reopen(&self) -> Result<Node> {
        Ok(Node::open(self.home.dir(), self.pass.as_bytes())?)
    }

    fn contact(&self, group: &GroupId, prefix: &str) -> Result<ContactId> {
        let rows = self.node.all_contacts(group)?;
        let live = rows.iter().filter(|c| !c.removed).map(|c| (c.id.0, c.id));
        by_prefix(live, prefix, "contact", "caucus contact list")
    }

    fn notice(&self, group: &GroupId, prefix: &str) -> Result<NoticeId> {
        let notices = self.node.state(group)?.notices().map(|n| (n.id.0, n.id));
        by_prefix(notices, prefix, "notice", "caucus notice list")
    }

    fn member(&self, group: &GroupId, who: &str) -> Result<IdentityKey> {
        let lower = who.to_lowercase();
        let members = self.node.members(group)?;
        let hits: Vec<IdentityKey> = members
            .iter()
            .filter(|m| {
                m.current
                    && (m.name.to_lowercase() == lower
                        || (lower.len() >= 4 && hex::encode(m.identity.0).starts_with(&lower)))
            })
            .map(|m| m.identity)
            .collect();
        match hits.as_slice() {
            [one] => Ok(*one),
            [] => bail!("no current member \"{who}\" (see `caucus member list`)"),
            _ => bail!("\"{who}\" matches several members: use the id"),
        }
    }
}

/// The one item whose id, in hex, starts with `prefix` (ids are shown as their first 8
/// hex digits), or a one-line reason naming the list to look at.
fn by_prefix<const N: usize, T: Copy>(
    items: impl Iterator<Item = ([u8; N], T)>,
    prefix: &str,
    what: &str,
    list: &str,
) -> Result<T> {
    let lower = prefix.trim().to_lowercase();
    let hits: Vec<T> = items
        .filter(|(id, _)| !lower.is_empty() && hex::encode(id).starts_with(&lower))
        .map(|(_, t)| t)
        .collect();
    match hits.as_slice() {
        [one] => Ok(*one),
        [] => bail!("no {what} with id {prefix}: it matches 0 (see `{list}`)"),
        _ => bail!(
            "{prefix} matches {} {what}s: give more of the id",
            hits.len()
        ),
    }
}

fn random16() -> [u8; 16] {
    use rand::Rng;
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b
}

fn rating(n: u8) -> Result<Rating> {
    Rating::new(n).map_err(|_| {
        anyhow!("rating must be 1 (leader), 2 (supporter), 3 (undecided), 4 (leaning against) or 5 (opposed), not {n}")
    })
}

fn parse_day(s: &str) -> Result<Day> {
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
fn parse_time(s: &str) -> Result<u64> {
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

fn fields(f: &ContactFields) -> Result<Vec<ContactField>> {
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

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Admin => "admin",
        Role::Organizer => "organizer",
    }
}

/// The node's network options from the flags; `default_listen` keeps the node's
/// default listen addresses (TCP and QUIC) when none is given, else TCP only.
fn net_options(net: &NetArgs, default_listen: bool) -> NetOptions {
    NetOptions {
        listen: net.listen.clone(),
        peers: net.peer.clone(),
        no_mdns: net.no_mdns,
        tcp_only: !default_listen,
        ..NetOptions::default()
    }
}

/// Waits for an event matching `f`, at most `timeout`.
pub(crate) async fn wait_for(
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
async fn wait_synced(
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

pub(crate) async fn dispatch(cli: Cli) -> Result<()> {
    let home_dir = match &cli.home {
        Some(h) => h.clone(),
        None => default_home()?,
    };
    let json = cli.json;
    match cli.command {
        Command::Init {
            name,
            device,
            kdf_memory_mib,
        } => {
            let params = kdf(kdf_memory_mib)?;
            if Home::new(&home_dir).is_initialized() {
                bail!("{} already holds a caucus home", home_dir.display());
            }
            let pass = passphrase(true)?;
            let node = Node::init(&home_dir, pass.as_bytes(), &name, &device, params)?;
            if json {
                println!(
                    "{}",
                    json!({"home": home_dir, "identity": hex::encode(node.identity().0), "device": hex::encode(node.device_key().0)})
                );
            } else {
                println!(
                    "caucus home ready at {} for {name} (identity {}, this device \"{device}\")",
                    home_dir.display(),
                    out::short(&node.identity().0)
                );
                println!("next: `caucus group create NAME` or `caucus join TICKET`");
            }
            Ok(())
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "caucus", &mut std::io::stdout());
            Ok(())
        }
        Command::Demo { keep } => crate::demo::run(keep).await,
        Command::Relay {
            listen,
            allow,
            revoke,
            status,
            external,
            max_peers,
            max_circuits,
            circuit_mib,
            circuit_minutes,
            quota_entries,
            quota_mib,
        } => {
            let opts = RelayOpts {
                listen,
                allow,
                revoke,
                status_only: status,
                external,
                max_peers,
                limits: caucus_node::netopts::RelayLimits {
                    max_reservations: max_peers as usize,
                    max_circuits: max_circuits as usize,
                    max_circuit_bytes: circuit_mib << 20,
                    max_circuit_duration: std::time::Duration::from_secs(circuit_minutes * 60),
                    ..caucus_node::netopts::RelayLimits::default()
                },
                quota: caucus_node::relay::Quota {
                    max_entries: quota_entries,
                    max_bytes: quota_mib << 20,
                },
            };
            relay(&home_dir, opts, json).await
        }
        Command::Device(DeviceCmd::Add {
            code,
            label,
            kdf_memory_mib,
            net,
        }) => {
            if net.peer.is_empty() {
                bail!(
                    "say where the first device is: --peer ADDRESS (as `caucus device link` printed it)"
                );
            }
            device_add(
                &home_dir,
                &code,
                &net.peer.clone(),
                &label,
                kdf(kdf_memory_mib)?,
                &net,
                json,
            )
            .await
        }
        Command::Run { net } => run(Ctx::open(&home_dir, json)?, &net).await,
        other => {
            let mut ctx = Ctx::open(&home_dir, json)?;
            command(&mut ctx, other).await
        }
    }
}

async fn command(ctx: &mut Ctx, command: Command) -> Result<()> {
    let json = ctx.json;
    match command {
        Command::Group(GroupCmd::Create { name }) => {
            if ctx.running() {
                bail!("stop `caucus run` first: founding a group sets up keys on this device");
            }
            let g = ctx.node.create_group(&name)?;
            if json {
                println!("{}", json!({"group": hex::encode(g.0), "name": name}));
            } else {
                println!(
                    "founded \"{name}\" ({}); you are its admin",
                    out::short(&g.0)
                );
            }
        }
        Command::Group(GroupCmd::List) => {
            let groups = ctx.node.groups()?;
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
        Command::Group(GroupCmd::Campaign {
            headcount,
            target,
            group,
        }) => {
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
        Command::Group(GroupCmd::RelayGrant { group }) => {
            let g = ctx.group(&group)?;
            let grant = ctx.node.relay_grant(&g)?;
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
        Command::Invite(InviteCmd::Create {
            group,
            hours,
            mut address,
        }) => {
            let g = ctx.group(&group)?;
            let me = ctx.node.identity();
            let role = ctx.node.state(&g)?.member(&me).map(|m| m.role);
            if role != Some(Role::Admin) {
                bail!("only an admin can invite (ask an admin of this group)");
            }
            if address.is_empty()
                && ctx.running()
                && let Reply::Status(s) = Client::call(&ctx.home.socket(), &Request::Status).await?
            {
                address = s.addresses;
            }
            for a in &address {
                a.parse::<Multiaddr>()
                    .map_err(|_| anyhow!("--address {a} is not a multiaddr"))?;
            }
            let expires = now_ms() + hours * 3_600_000;
            let ticket = ctx.node.create_invite(&g, address.clone(), expires)?;
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
        Command::Invite(InviteCmd::Revoke { id }) => {
            let id = ctx.node.revoke_invite(&id)?;
            if json {
                println!("{}", json!({"revoked": hex::encode(id.0)}));
            } else {
                println!("invite {} revoked", out::short(&id.0));
            }
        }
        Command::Invite(InviteCmd::List) => {
            let invites = ctx.node.invites()?;
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
        Command::Join { ticket, net } => join(ctx, &ticket, net.peer.clone(), &net).await?,
        Command::Device(DeviceCmd::Link { net }) => device_link(ctx, &net).await?,
        Command::Device(DeviceCmd::List { group }) => {
            let g = ctx.group(&group)?;
            let devices = ctx.node.devices(&g)?;
            let members = ctx.node.members(&g)?;
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
        Command::Device(DeviceCmd::Revoke { device, group }) => {
            let g = ctx.group(&group)?;
            let devices = ctx.node.devices(&g)?;
            let live = devices
                .iter()
                .filter(|d| !d.revoked)
                .map(|d| (d.device.0, d.device));
            let d = by_prefix(live, &device, "device", "caucus device list")?;
            let state = ctx.node.state(&g)?;
            // The identity's first device holds its identity key: it can certify more.
            let compromised = state.device(&d).filter(|x| x.first).map(|x| {
                state
                    .member(&x.cert.identity)
                    .map(|m| m.name.clone())
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| out::short(&x.cert.identity.0))
            });
            let cut = state.cut_of(&d);
            ctx.write(&g, Operation::DeviceRevoked { cut }).await?;
            let epoch = rotate(ctx, &g).await?;
            println!(
                "device {} revoked; group moved to epoch {epoch}",
                out::short(&d.0)
            );
            if let Some(name) = compromised {
                println!(
                    "warning: that device holds {name}'s identity key; treat the identity as compromised: `caucus member remove` them and invite them again under a new identity (`caucus init` on a fresh home)"
                );
            }
        }
        Command::Member(MemberCmd::List { group }) => {
            let g = ctx.group(&group)?;
            let members = ctx.node.members(&g)?;
            if json {
                let v: Vec<_> = members.iter().map(|m| json!({"member": hex::encode(m.identity.0), "name": m.name, "role": role_name(m.role), "current": m.current})).collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                let rows: Vec<Vec<String>> = members
                    .iter()
                    .filter(|m| m.current)
                    .map(|m| {
                        vec![
                            out::short(&m.identity.0),
                            m.name.clone(),
                            role_name(m.role).into(),
                        ]
                    })
                    .collect();
                out::table(&["member", "name", "role"], &rows);
            }
        }
        Command::Member(MemberCmd::Remove { member, group }) => {
            let g = ctx.group(&group)?;
            let m = ctx.member(&g, &member)?;
            let cuts = ctx.node.state(&g)?.cuts_of(&m);
            ctx.write(&g, Operation::MemberRemoved { member: m, cuts })
                .await?;
            let epoch = rotate(ctx, &g).await?;
            if json {
                println!("{}", json!({"removed": hex::encode(m.0), "epoch": epoch}));
            } else {
                println!(
                    "removed {member}; group moved to epoch {epoch}: they cannot read anything written from now on"
                );
            }
        }
        Command::Member(MemberCmd::Role {
            member,
            role,
            group,
        }) => {
            let g = ctx.group(&group)?;
            let m = ctx.member(&g, &member)?;
            let role = match role.to_lowercase().as_str() {
                "admin" => Role::Admin,
                "organizer" => Role::Organizer,
                _ => bail!("role must be admin or organizer"),
            };
            let cuts = ctx.node.state(&g)?.cuts_of(&m);
            ctx.write(
                &g,
                Operation::RoleChanged {
                    member: m,
                    role,
                    cuts,
                },
            )
            .await?;
            println!("{member} is now {}", role_name(role));
        }
        Command::Contact(c) => contact(ctx, c).await?,
        Command::Followup(f) => followup(ctx, f).await?,
        Command::Notice(n) => notice(ctx, n).await?,
        Command::Map { group } => {
            let g = ctx.group(&group)?;
            let map = ctx.node.workplace_map(&g)?;
            let share = ctx.node.support_share(&g)?;
            if json {
                let cells: Vec<_> = map.cells.iter().flat_map(|(d, row)| row.iter().map(move |(s, c)| json!({"department": d, "shift": s, "by_rating": c.by_rating, "unrated": c.unrated}))).collect();
                println!(
                    "{}",
                    json!({"cells": cells, "supportive": share.supportive, "base": share.base.count(), "percent": share.percent(), "target_percent": share.target_percent, "still_needed": share.still_needed()})
                );
            } else {
                out::map(&map);
                print!(
                    "support: {} of {} = {:.1}%",
                    share.supportive,
                    share.base.count(),
                    share.percent()
                );
                match (share.target_percent, share.still_needed()) {
                    (Some(t), Some(0)) => println!(", target {t}% met"),
                    (Some(t), Some(n)) => println!(", target {t}%: {n} more supporters needed"),
                    _ => println!(" (set a headcount and target with `caucus group campaign`)"),
                }
            }
        }
        Command::Import {
            contacts,
            notes,
            group,
        } => import(ctx, &contacts, notes.as_deref(), &group).await?,
        Command::Export {
            contacts,
            notes,
            group,
        } => {
            let g = ctx.group(&group)?;
            let export = ctx.node.export_spreadsheets(&g)?;
            write_new(&contacts, &export.contacts_csv)?;
            write_new(&notes, &export.notes_csv)?;
            if json {
                println!(
                    "{}",
                    json!({"contacts": export.contacts, "notes": export.notes})
                );
            } else {
                println!(
                    "exported {} contacts to {} and {} notes to {} (plain text: keep these files safe)",
                    export.contacts,
                    contacts.display(),
                    export.notes,
                    notes.display()
                );
            }
        }
        Command::Status => status(ctx).await?,
        Command::Init { .. }
        | Command::Completions { .. }
        | Command::Demo { .. }
        | Command::Relay { .. }
        | Command::Run { .. }
        | Command::Device(DeviceCmd::Add { .. }) => unreachable_command()?,
    }
    Ok(())
}

/// Ctrl-C, or SIGTERM (systemd's stop).
async fn shutdown_signal() {
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

fn unreachable_command() -> Result<()> {
    bail!("internal: command dispatched twice")
}

/// Writes a file that must not exist yet (an export never overwrites).
fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("{} (an export never overwrites a file)", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

async fn rotate(ctx: &mut Ctx, g: &GroupId) -> Result<u64> {
    if ctx.running() {
        match Client::call(&ctx.home.socket(), &Request::Rotate { group: *g }).await? {
            Reply::Rotated { epoch } => Ok(epoch),
            other => bail!("unexpected reply: {other:?}"),
        }
    } else {
        Ok(ctx.node.rotate_epoch(g)?)
    }
}

async fn contact(ctx: &mut Ctx, c: ContactCmd) -> Result<()> {
    let json = ctx.json;
    match c {
        ContactCmd::Add { fields: f, group } => {
            let g = ctx.group(&group)?;
            if f.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
                bail!("a contact needs --name");
            }
            let id = ContactId(random16());
            let fs = fields(&f)?;
            ctx.write(
                &g,
                Operation::ContactSet {
                    contact: id,
                    fields: fs,
                },
            )
            .await?;
            if json {
                println!("{}", json!({"contact": hex::encode(id.0)}));
            } else {
                println!("contact {} logged", hex::encode(&id.0[..4]));
            }
        }
        ContactCmd::Edit {
            id,
            fields: f,
            group,
        } => {
            let g = ctx.group(&group)?;
            let cid = ctx.contact(&g, &id)?;
            let fs = fields(&f)?;
            if fs.is_empty() {
                bail!("nothing to change: give at least one field (--name, --dept, --rating …)");
            }
            ctx.write(
                &g,
                Operation::ContactSet {
                    contact: cid,
                    fields: fs,
                },
            )
            .await?;
            println!("contact {} updated", out::short(&cid.0));
        }
        ContactCmd::Rate {
            id,
            rating: r,
            group,
        } => {
            let g = ctx.group(&group)?;
            let r = rating(r)?;
            let cid = ctx.contact(&g, &id)?;
            ctx.write(
                &g,
                Operation::ContactSet {
                    contact: cid,
                    fields: vec![ContactField::Rating(r)],
                },
            )
            .await?;
            println!("contact {} rated {}", out::short(&cid.0), r.get());
        }
        ContactCmd::Tag {
            id,
            tag,
            off,
            group,
        } => {
            let g = ctx.group(&group)?;
            let cid = ctx.contact(&g, &id)?;
            ctx.write(
                &g,
                Operation::ContactSet {
                    contact: cid,
                    fields: vec![ContactField::Tag { tag, on: !off }],
                },
            )
            .await?;
            println!("contact {} tagged", out::short(&cid.0));
        }
        ContactCmd::Note {
            id,
            text,
            date,
            group,
        } => {
            let g = ctx.group(&group)?;
            let date = date.as_deref().map(parse_day).transpose()?;
            let cid = ctx.contact(&g, &id)?;
            if text.trim().is_empty() {
                bail!("the note is empty");
            }
            let e = ctx
                .write(
                    &g,
                    Operation::NoteAdded {
                        contact: cid,
                        note: Note {
                            text,
                            date,
                            by: None,
                        },
                    },
                )
                .await?;
            if json {
                println!("{}", json!({"note": hex::encode(e.0)}));
            } else {
                println!("note added to {}", out::short(&cid.0));
            }
        }
        ContactCmd::Show { id, group } => {
            let g = ctx.group(&group)?;
            let cid = ctx.contact(&g, &id)?;
            let d = ctx
                .node
                .contact_detail(&g, &cid)?
                .context("contact not found")?;
            let c = &d.contact;
            if json {
                println!(
                    "{}",
                    json!({"contact": contact_json(c), "notes": d.notes.iter().map(|n| json!({"note": hex::encode(n.entry.0), "day": out::day(n.day), "by": n.by, "text": n.text})).collect::<Vec<_>>()})
                );
            } else {
                println!("{} ({})", c.name, hex::encode(c.id.0));
                println!(
                    "  department {}  shift {}  job {}",
                    c.department, c.shift, c.job
                );
                println!(
                    "  phone {}  rating {}  assigned {}",
                    c.handle,
                    c.rating.map_or("-".into(), |r| r.get().to_string()),
                    c.assigned_to
                );
                let tags: Vec<&str> = c.tags_on().collect();
                println!("  tags {}", tags.join(", "));
                for n in &d.notes {
                    println!("  {}  {}", out::day(n.day), n.text);
                }
            }
        }
        ContactCmd::List {
            dept,
            shift,
            rating: r,
            tag,
            assignee,
            text,
            group,
        } => {
            let g = ctx.group(&group)?;
            let mut f = ContactFilter::all();
            if let Some(x) = dept {
                f = f.department(x);
            }
            if let Some(x) = shift {
                f = f.shift(x);
            }
            if let Some(x) = r {
                f = f.rating(match x.as_str() {
                    "unrated" => RatingFilter::Unrated,
                    "supportive" => RatingFilter::Supportive,
                    n => RatingFilter::Is(rating(
                        n.parse()
                            .map_err(|_| anyhow!("--rating takes 1-5, unrated or supportive"))?,
                    )?),
                });
            }
            if let Some(x) = tag {
                f = f.tag(x);
            }
            if let Some(x) = assignee {
                f = f.assignee(x);
            }
            if let Some(x) = text {
                f = f.text(x);
            }
            let rows = ctx.node.contacts(&g, &f)?;
            if json {
                println!(
                    "{}",
                    serde_json::Value::Array(rows.iter().map(contact_json).collect())
                );
            } else {
                let t: Vec<Vec<String>> = rows
                    .iter()
                    .map(|c| {
                        vec![
                            out::short(&c.id.0),
                            c.name.clone(),
                            c.department.clone(),
                            c.shift.clone(),
                            c.rating.map_or("-".into(), |r| r.get().to_string()),
                            c.tags_on().collect::<Vec<_>>().join(","),
                            c.assigned_to.clone(),
                        ]
                    })
                    .collect();
                out::table(
                    &["id", "name", "dept", "shift", "rating", "tags", "assigned"],
                    &t,
                );
                println!("{} contacts", rows.len());
            }
        }
        ContactCmd::Remove { id, group } => {
            let g = ctx.group(&group)?;
            let cid = ctx.contact(&g, &id)?;
            ctx.write(&g, Operation::ContactRemoved { contact: cid })
                .await?;
            println!("contact {} removed", out::short(&cid.0));
        }
    }
    Ok(())
}

/// The stable JSON form of a contact (field names pinned by a test).
fn contact_json(c: &caucus_node::views::ContactRow) -> serde_json::Value {
    json!({
        "id": hex::encode(c.id.0),
        "name": c.name,
        "department": c.department,
        "shift": c.shift,
        "job": c.job,
        "phone": c.handle,
        "rating": c.rating.map(Rating::get),
        "tags": c.tags_on().collect::<Vec<_>>(),
        "assigned_to": c.assigned_to,
    })
}

async fn followup(ctx: &mut Ctx, f: FollowupCmd) -> Result<()> {
    let json = ctx.json;
    match f {
        FollowupCmd::Add {
            contact,
            due,
            task,
            assignee,
            group,
        } => {
            let g = ctx.group(&group)?;
            let due = parse_day(&due)?;
            let cid = ctx.contact(&g, &contact)?;
            let id = FollowupId(random16());
            let assignee = assignee.unwrap_or_else(|| ctx.node.name().to_owned());
            ctx.write(
                &g,
                Operation::FollowupSet {
                    followup: id,
                    contact: cid,
                    due,
                    assignee,
                    task,
                },
            )
            .await?;
            if json {
                println!("{}", json!({"followup": hex::encode(id.0)}));
            } else {
                println!("follow-up {} due {}", out::short(&id.0), out::day(due));
            }
        }
        FollowupCmd::Done { id, group } => {
            let g = ctx.group(&group)?;
            let followups = ctx.node.followups(&g)?;
            let ids = followups.iter().map(|f| (f.id.0, f.id));
            let fid = &by_prefix(ids, &id, "follow-up", "caucus followup list")?;
            ctx.write(
                &g,
                Operation::FollowupDone {
                    followup: *fid,
                    done: true,
                },
            )
            .await?;
            println!("follow-up {} done", out::short(&fid.0));
        }
        FollowupCmd::List { days, group } => {
            let g = ctx.group(&group)?;
            let rows = ctx.node.followups_due(&g, days)?;
            if json {
                let v: Vec<_> = rows.iter().map(|r| json!({"followup": hex::encode(r.followup.id.0), "contact": hex::encode(r.followup.contact.0), "contact_name": r.contact_name, "due": out::day(r.followup.due), "assignee": r.followup.assignee, "task": r.followup.task, "overdue": r.overdue})).collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                let t: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            out::short(&r.followup.id.0),
                            out::day(r.followup.due),
                            if r.overdue { "OVERDUE" } else { "" }.into(),
                            r.contact_name.clone(),
                            r.followup.assignee.clone(),
                            r.followup.task.clone(),
                        ]
                    })
                    .collect();
                out::table(&["id", "due", "", "contact", "who", "task"], &t);
            }
        }
    }
    Ok(())
}

async fn notice(ctx: &mut Ctx, n: NoticeCmd) -> Result<()> {
    let json = ctx.json;
    match n {
        NoticeCmd::Send {
            title,
            at,
            place,
            body,
            urgent,
            expires_hours,
            group,
        } => {
            let g = ctx.group(&group)?;
            let starts = parse_time(&at)?;
            let id = NoticeId(random16());
            let content = NoticeContent {
                title,
                starts_at_ms: starts,
                place,
                body,
                urgent,
                expires_at_ms: Some(starts + expires_hours * 3_600_000),
            };
            let sent = Instant::now();
            ctx.write(
                &g,
                Operation::NoticePosted {
                    notice: id,
                    content,
                },
            )
            .await?;
            // With the node running, acknowledgements come back within moments: watch
            // the store for up to three seconds.
            let mut delivered = ctx.node.state(&g)?.current_members().count();
            let mut acked = 1;
            if ctx.running() && urgent {
                let deadline = Instant::now() + Duration::from_secs(3);
                loop {
                    let asked = Request::Delivery {
                        group: g,
                        notice: id,
                    };
                    if let Reply::Delivery { acked: a, total } =
                        Client::call(&ctx.home.socket(), &asked).await?
                    {
                        acked = a as usize;
                        delivered = total as usize;
                        if a >= total {
                            break;
                        }
                    }
                    if Instant::now() >= deadline {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            if json {
                println!(
                    "{}",
                    json!({"notice": hex::encode(id.0), "acked": acked, "members": delivered})
                );
            } else if ctx.running() {
                println!(
                    "notice {} sent{}: delivered to {acked} of {delivered} members ({} ms)",
                    out::short(&id.0),
                    if urgent { " (urgent)" } else { "" },
                    sent.elapsed().as_millis()
                );
            } else {
                println!(
                    "notice {} saved; it goes out when `caucus run` runs",
                    out::short(&id.0)
                );
            }
        }
        NoticeCmd::List { group } => {
            let g = ctx.group(&group)?;
            let rows = ctx.node.current_notices(&g)?;
            if json {
                let v: Vec<_> = rows.iter().map(|r| json!({"notice": hex::encode(r.notice.id.0), "title": r.notice.title, "starts_at_ms": r.notice.starts_at_ms, "place": r.notice.place, "urgent": r.notice.urgent, "acked": r.delivery.acked, "members": r.delivery.total})).collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                let t: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            out::short(&r.notice.id.0),
                            if r.notice.urgent { "URGENT" } else { "" }.into(),
                            out::time(r.notice.starts_at_ms),
                            r.notice.place.clone(),
                            r.notice.title.clone(),
                            format!("{}/{}", r.delivery.acked, r.delivery.total),
                        ]
                    })
                    .collect();
                out::table(&["id", "", "when", "where", "title", "acked"], &t);
            }
        }
        NoticeCmd::Show { id, group } => {
            let g = ctx.group(&group)?;
            let nid = ctx.notice(&g, &id)?;
            let state = ctx.node.state(&g)?;
            let n = state.notice(&nid).context("notice not found")?;
            let d = state
                .delivered(&nid)
                .unwrap_or(caucus_model::Delivery { acked: 0, total: 0 });
            if json {
                println!(
                    "{}",
                    json!({"notice": hex::encode(nid.0), "title": n.content.title, "starts_at_ms": n.content.starts_at_ms, "place": n.content.place, "body": n.content.body, "urgent": n.content.urgent, "cancelled": n.cancelled.is_some(), "acked": d.acked, "members": d.total})
                );
            } else {
                println!(
                    "{}{}",
                    n.content.title,
                    if n.content.urgent { "  [URGENT]" } else { "" }
                );
                println!("  when  {}", out::time(n.content.starts_at_ms));
                println!("  where {}", n.content.place);
                if !n.content.body.is_empty() {
                    println!("  {}", n.content.body);
                }
                println!("  acknowledged by {} of {} members", d.acked, d.total);
            }
        }
        NoticeCmd::Ack { id, group } => {
            let g = ctx.group(&group)?;
            let nid = ctx.notice(&g, &id)?;
            ctx.write(&g, Operation::NoticeAcked { notice: nid })
                .await?;
            println!("notice {} acknowledged", out::short(&nid.0));
        }
        NoticeCmd::Cancel { id, group } => {
            let g = ctx.group(&group)?;
            let nid = ctx.notice(&g, &id)?;
            ctx.write(&g, Operation::NoticeCancelled { notice: nid })
                .await?;
            println!("notice {} cancelled", out::short(&nid.0));
        }
    }
    Ok(())
}

async fn import(
    ctx: &mut Ctx,
    contacts: &Path,
    notes: Option<&Path>,
    group: &GroupArg,
) -> Result<()> {
    let g = ctx.group(group)?;
    let mut cf = std::fs::File::open(contacts).with_context(|| contacts.display().to_string())?;
    let mut nf = match notes {
        Some(p) => Some(std::fs::File::open(p).with_context(|| p.display().to_string())?),
        None => None,
    };
    let bar = indicatif::ProgressBar::new(0);
    if ctx.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:40} {pos}/{len}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message("reading");
    let import = ctx.node.prepare_import(
        &g,
        &mut cf,
        nf.as_mut().map(|f| f as &mut dyn std::io::Read),
        &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )?;
    let (nc, nn) = (import.contacts, import.notes);
    let ops = import.operations;
    bar.set_message("sealing and storing");
    bar.set_length(ops.len() as u64);
    bar.set_position(0);
    let total = ops.len();
    // All-or-nothing: checked in full above, then sealed and stored in one transaction.
    ctx.write_many(&g, ops, &mut |done, of| {
        bar.set_length(of);
        bar.set_position(done);
    })
    .await?;
    bar.finish_and_clear();
    if ctx.json {
        println!("{}", json!({"contacts": nc, "notes": nn, "entries": total}));
    } else {
        println!("imported {nc} contacts and {nn} notes ({total} entries)");
    }
    Ok(())
}

/// `caucus run`: takes the node `Ctx::open` unlocked and folded (opening it a second
/// time would pay the passphrase's key derivation and the fold twice).
async fn run(ctx: Ctx, net: &NetArgs) -> Result<()> {
    let Ctx {
        home, node, lock, ..
    } = ctx;
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

async fn status(ctx: &mut Ctx) -> Result<()> {
    let groups = ctx.node.groups()?;
    let running = if ctx.running() {
        match Client::call(&ctx.home.socket(), &Request::Status).await? {
            Reply::Status(s) => Some(s),
            _ => None,
        }
    } else {
        None
    };
    // The running node's counts; with none running, what opening the home just refused.
    let refused: Vec<(String, u64)> = match &running {
        Some(s) => s.refused.clone(),
        None => (ctx.node.refused_counts().iter())
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
            let state = ctx.node.state(&g.id)?;
            let me_admin = state
                .member(&ctx.node.identity())
                .is_some_and(|m| m.is_current() && m.role == Role::Admin);
            for (device, seq) in state.forks().filter(|_| me_admin) {
                let who = state
                    .identity_of(&device)
                    .and_then(|i| state.member(&i))
                    .map(|m| m.name.clone())
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| out::short(&device.0));
                println!(
                    "  warning: a device of {who} ({}) wrote two different entries at place {seq} of its chain; its entries from there on are refused",
                    out::short(&device.0)
                );
            }
        }
    }
    Ok(())
}

async fn join(ctx: &mut Ctx, ticket: &str, peers: Vec<Multiaddr>, net: &NetArgs) -> Result<()> {
    if ctx.running() {
        bail!("stop `caucus run` first: joining runs this device's network itself");
    }
    let ticket = InviteTicket::parse(ticket.trim())?;
    if !ticket.is_valid_at(now_ms()) {
        bail!("this invite has expired: ask for a new one");
    }
    ctx.lock.take();
    let lock = ctx
        .home
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

async fn device_link(ctx: &mut Ctx, net: &NetArgs) -> Result<()> {
    if !ctx.node.holds_identity() {
        bail!("only the device that ran `caucus init` can link new devices");
    }
    if ctx.running() {
        let mut c = Client::connect(&ctx.home.socket()).await?;
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
    let lock = ctx.lock.take().context("home is locked")?;
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

async fn device_add(
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

/// What `caucus relay` was asked to do.
struct RelayOpts {
    listen: Vec<Multiaddr>,
    allow: Vec<String>,
    revoke: Vec<String>,
    status_only: bool,
    external: Vec<Multiaddr>,
    max_peers: u32,
    limits: caucus_node::netopts::RelayLimits,
    quota: caucus_node::relay::Quota,
}

async fn relay(home: &Path, opts: RelayOpts, json: bool) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn dates_and_times_parse_or_are_refused() {
        assert_eq!(out::day(parse_day("2026-03-01").unwrap()), "2026-03-01");
        assert!(parse_day("2026-02-30").is_err());
        assert!(parse_day("01/03/2026").is_err());
        assert_eq!(
            parse_time("1970-01-02 01:30").unwrap(),
            86_400_000 + 5_400_000
        );
        assert!(parse_time("+2h").unwrap() > now_ms());
        assert!(parse_time("tomorrow").is_err());
        assert!(parse_time("2026-01-01 25:00").is_err());
    }
}
