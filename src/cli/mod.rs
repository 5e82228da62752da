//! The command line: argument definitions (clap) and dispatch. Each command family is
//! its own module, which parses what clap left as text, calls the node and prints;
//! what a command decides lives in `caucus-node`.

mod common;
mod contact;
mod device;
mod followup;
mod group;
mod import_export;
mod member;
mod notice;
mod relay;
mod run;

use common::*;

use crate::out;
use anyhow::{Context, Result, anyhow, bail};
use caucus_crypto::at_rest::KdfParams;
use caucus_crypto::invite::InviteTicket;
use caucus_crypto::link::PairingCode;
use caucus_model::{ContactFilter, RatingFilter};
use caucus_node::control::{Client, Reply, Request};
use caucus_node::relay::{RelayEvent, RelayNode, RelayOptions};
use caucus_node::{
    Home, Multiaddr, NetOptions, Node, NodeConfig, NodeEvent, Running, Session, now_ms,
};
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
            let opts = relay::RelayOpts {
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
            relay::relay(&home_dir, opts, json).await
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
            device::device_add(
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
        Command::Run { net } => run::run(Ctx::open(&home_dir, json)?, &net).await,
        other => {
            let mut ctx = Ctx::open(&home_dir, json)?;
            command(&mut ctx, other).await
        }
    }
}

async fn command(ctx: &mut Ctx, command: Command) -> Result<()> {
    match command {
        Command::Group(c) => group::group(ctx, c).await?,
        Command::Invite(c) => group::invite(ctx, c).await?,
        Command::Join { ticket, net } => group::join(ctx, &ticket, net.peer.clone(), &net).await?,
        Command::Device(c) => device::device(ctx, c).await?,
        Command::Member(c) => member::member(ctx, c).await?,
        Command::Contact(c) => contact::contact(ctx, c).await?,
        Command::Followup(f) => followup::followup(ctx, f).await?,
        Command::Notice(n) => notice::notice(ctx, n).await?,
        Command::Map { group } => contact::map(ctx, &group)?,
        Command::Import {
            contacts,
            notes,
            group,
        } => import_export::import(ctx, &contacts, notes.as_deref(), &group).await?,
        Command::Export {
            contacts,
            notes,
            group,
        } => import_export::export(ctx, &contacts, &notes, &group)?,
        Command::Status => run::status(ctx).await?,
        Command::Init { .. }
        | Command::Completions { .. }
        | Command::Demo { .. }
        | Command::Relay { .. }
        | Command::Run { .. } => unreachable_command()?,
    }
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
