//! The campaign so far, told by real nodes: `cargo run --example campaign_tour`.
//!
//! **Three nodes on 127.0.0.1, in one process.** Dana's laptop, Dana's phone and Luis's
//! laptop are each a `caucus::node` node with its own encrypted home (SQLCipher, keys
//! wrapped under the passphrase) in a temporary directory and its own libp2p swarm on
//! loopback. Linking the phone and Luis's join run their Noise handshakes over
//! `/caucus/handshake/1`; entries travel by gossip and by catch-up sync
//! (`/caucus/sync/1`); every received entry is opened and verified by `caucus-crypto`
//! before the store folds it. A partition is two nodes taken off the network, writing
//! offline, and brought back.
//!
//! Each step prints one line with its wall time; any failed check ends the process with
//! a one-line reason and a non-zero exit status. Every wait is on the nodes' events,
//! bounded by [`STEP_TIMEOUT`]. (`caucus demo` tells a longer story, with an office
//! relay.)

use anyhow::{Context, Result, bail, ensure};
use caucus::crypto::at_rest::KdfParams;
use caucus::crypto::invite::InviteTicket;
use caucus::model::{Outcome, RatingCounts, Reason, WorkplaceMap};
use caucus::net::Multiaddr;
use caucus::node::{Node, NodeConfig, NodeEvent, Running, link_new_device, now_ms};
use caucus::proto::{
    ContactField, ContactId, EntryId, GroupId, Note, NoticeContent, NoticeId, Operation, Rating,
};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};

/// Planted in a contact name, a note and the notice; must never be found on disk.
const MARKER: &str = "CANARY-QX7";
/// One hour in milliseconds.
const HOUR: u64 = 3_600_000;
/// The longest any step may wait for the network.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// The tour's passphrase (every home's).
const PASS: &[u8] = b"correct horse battery staple";

/// Contacts logged before the partition: name, department, shift, rating, who logs it
/// (0 = Dana's laptop, 1 = Dana's phone, 2 = Luis).
const CONTACTS: [(&str, &str, &str, u8, usize); 12] = [
    ("Ana Ortiz", "Outbound", "nights", 1, 0),
    ("Ben Cole", "Outbound", "nights", 2, 0),
    ("Rosa CANARY-QX7 Diaz", "Outbound", "days", 3, 0),
    ("Kim Tran", "Outbound", "days", 2, 0),
    ("Omar Haddad", "Inbound", "nights", 4, 0),
    ("Lena Park", "Inbound", "days", 1, 0),
    ("Joe Marsh", "Inbound", "days", 3, 1),
    ("Ivy Chen", "ICQA", "nights", 2, 1),
    ("Sam Reyes", "ICQA", "days", 5, 1),
    ("Tara Webb", "ICQA", "days", 3, 2),
    ("Raj Patel", "Inbound", "nights", 2, 2),
    ("Nia Brooks", "Outbound", "nights", 3, 2),
];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("campaign_tour: check failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints numbered lines, each with the wall time since the previous one.
struct Steps(Instant);

impl Steps {
    fn line(&mut self, text: impl std::fmt::Display) {
        let ms = self.0.elapsed().as_secs_f64() * 1e3;
        println!("{ms:>7.1} ms  {text}");
        self.0 = Instant::now();
    }
}

/// Argon2id at the OWASP minimum (19 MiB, t = 2), so the whole story runs in seconds;
/// `caucus init` uses the recommended cost.
fn kdf() -> Result<KdfParams> {
    Ok(KdfParams::new(19 * 1024, 2, 1)?)
}

/// A node on 127.0.0.1 only (no mDNS) that dials `peers`.
fn loopback(peers: &[Multiaddr]) -> NodeConfig {
    let mut net = caucus::net::Config::loopback();
    net.bootstrap = peers.to_vec();
    net.resync_interval = Duration::from_secs(2);
    NodeConfig {
        net,
        ..NodeConfig::default()
    }
}

async fn online(node: Node, peers: &[Multiaddr]) -> Result<(Running, Vec<Multiaddr>)> {
    let r = Running::start(node, loopback(peers)).await?;
    let addrs = r.wait_listening(Duration::from_secs(10)).await?;
    Ok((r, addrs))
}

/// Takes a node off the network and opens its home again, offline.
async fn offline(r: Running, home: &Path) -> Result<Node> {
    r.shutdown().await?;
    Ok(Node::open(home, PASS)?)
}

fn contact(name: &str, dept: &str, shift: &str, rating: u8) -> Result<Vec<ContactField>> {
    Ok(vec![
        ContactField::Name(name.into()),
        ContactField::Department(dept.into()),
        ContactField::Shift(shift.into()),
        ContactField::Rating(Rating::new(rating)?),
    ])
}

fn note(contact: ContactId, text: String) -> Operation {
    Operation::NoteAdded {
        contact,
        note: Note {
            text,
            date: None,
            by: None,
        },
    }
}

fn state_hash(r: &Running, g: &GroupId) -> Result<[u8; 32]> {
    Ok(r.with_node(|n| n.state(g).map(|s| s.state_hash()))?)
}

/// The events of several nodes, merged, and what their catch-up syncs moved.
struct Watch {
    /// Every event of the watched nodes (`None`: a wake-up only, as when a node's
    /// stream lagged and lost some).
    events: mpsc::Receiver<Option<NodeEvent>>,
    tx: mpsc::Sender<Option<NodeEvent>>,
    forwarders: Vec<tokio::task::JoinHandle<()>>,
    /// Entries stored and bytes on the wire by the sync sessions seen so far.
    synced: (u64, u64),
}

impl Watch {
    /// Subscribes to `nodes` (before the action whose effect is awaited).
    fn new(nodes: &[&Running]) -> Watch {
        let (tx, events) = mpsc::channel(4 * caucus::node::NODE_EVENT_QUEUE);
        let mut watch = Watch {
            events,
            tx,
            forwarders: Vec::new(),
            synced: (0, 0),
        };
        for r in nodes {
            watch.add(r);
        }
        watch
    }

    /// Subscribes to one more node. Only the first node's sync sessions are counted
    /// in [`Watch::take_synced`] (each session ends on both sides).
    fn add(&mut self, r: &Running) {
        let first = self.forwarders.is_empty();
        let (mut rx, tx) = (r.subscribe(), self.tx.clone());
        self.forwarders.push(tokio::spawn(async move {
            loop {
                let ev = match rx.recv().await {
                    Ok(NodeEvent::SyncFinished { .. }) if !first => None,
                    Ok(ev) => Some(ev),
                    Err(broadcast::error::RecvError::Lagged(_)) => None,
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                if tx.send(ev).await.is_err() {
                    break;
                }
            }
        }));
    }

    /// Waits until `done` holds, checking it again after every event of any watched
    /// node (bounded by [`STEP_TIMEOUT`]).
    async fn until(&mut self, what: &str, mut done: impl FnMut() -> Result<bool>) -> Result<()> {
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        while !done()? {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(Some(NodeEvent::SyncFinished {
                    entries_stored,
                    wire_bytes,
                    ..
                }))) => {
                    self.synced.0 += entries_stored;
                    self.synced.1 += wire_bytes;
                }
                Ok(Some(_)) => {}
                // `self.tx` keeps the channel open: never closed while watching.
                Ok(None) => bail!("the nodes stopped while waiting for {what}"),
                Err(_) => bail!("no {what} within {STEP_TIMEOUT:?}"),
            }
        }
        Ok(())
    }

    /// Waits until every node in `nodes` is at one state; its hash, shortened.
    async fn converge(&mut self, nodes: &[&Running], g: &GroupId) -> Result<String> {
        self.until("common state", || {
            let first = state_hash(nodes[0], g)?;
            for r in &nodes[1..] {
                if state_hash(r, g)? != first {
                    return Ok(false);
                }
            }
            Ok(true)
        })
        .await?;
        Ok(hex::encode(&state_hash(nodes[0], g)?[..4]))
    }

    /// What the syncs seen since the last call moved: (entries, bytes).
    fn take_synced(&mut self) -> (u64, u64) {
        std::mem::take(&mut self.synced)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        for f in &self.forwarders {
            f.abort();
        }
    }
}

/// Scans every file under `dir` for `marker`: (files, bytes scanned, hits).
fn scan_for(dir: &Path, marker: &[u8]) -> Result<(usize, u64, usize)> {
    let (mut files, mut bytes, mut hits) = (0, 0, 0);
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            let (f, b, h) = scan_for(&path, marker)?;
            files += f;
            bytes += b;
            hits += h;
        } else {
            let data = std::fs::read(&path)?;
            files += 1;
            bytes += data.len() as u64;
            hits += data.windows(marker.len()).filter(|w| *w == marker).count();
        }
    }
    Ok((files, bytes, hits))
}

fn notes_held(r: &Running, g: &GroupId, notes: &[EntryId]) -> Result<bool> {
    Ok(r.with_node(|n| {
        n.state(g).map(|s| {
            let held: BTreeSet<EntryId> = s.all_notes().map(|x| x.entry).collect();
            notes.iter().all(|id| held.contains(id))
        })
    })?)
}

async fn run() -> Result<()> {
    let homes = tempfile::Builder::new().prefix("caucus-tour-").tempdir()?;
    let home = |name: &str| homes.path().join(name);
    println!(
        "caucus campaign tour: three real nodes on 127.0.0.1, in this process, each its own encrypted home"
    );
    println!(
        "(entries gossiped and caught up by sync over libp2p; a partition is two nodes taken offline)\n"
    );
    let mut steps = Steps(Instant::now());

    // 1. Dana founds the group.
    let node = Node::init(&home("dana-laptop"), PASS, "Dana", "laptop", kdf()?)?;
    let (laptop, laptop_addrs) = online(node, &[]).await?;
    let name = "JFK8 committee";
    let g = laptop.create_group(name).await?;
    let campaign = Operation::CampaignSet {
        headcount: 8000,
        target_percent: 70,
    };
    laptop.write(&g, campaign).await?;
    let named = laptop.with_node(|n| n.state(&g).map(|s| s.group_name() == Some(name)))?;
    ensure!(named, "group name not folded");
    steps.line(format!(
        "1. Dana founds \"{name}\": identity + laptop, epoch 1 key, campaign 8000 workers / target 70%; listening on {}",
        laptop_addrs.first().map(ToString::to_string).unwrap_or_default()
    ));

    // 2. Dana links her phone with a pairing code.
    let mut watch = Watch::new(&[&laptop]);
    let (code, linked) = laptop.host_link()?;
    let phone = link_new_device(
        &home("dana-phone"),
        PASS,
        kdf()?,
        &code,
        "phone",
        &laptop_addrs,
        caucus::net::Config::loopback(),
    )
    .await?;
    let cert = tokio::time::timeout(STEP_TIMEOUT, linked)
        .await
        .context("the link did not complete")??;
    ensure!(
        cert.device == phone.device_key(),
        "the laptop certified another device"
    );
    let (phone, _) = online(phone, &laptop_addrs).await?;
    let h = watch.converge(&[&laptop, &phone], &g).await?;
    let entries = phone.with_node(|n| n.store().entry_count(&g))?;
    steps.line(format!(
        "2. Dana's laptop shows pairing code {}; the phone types it, Noise NNpsk0 over /caucus/handshake/1 hands over cert + keyring; the laptop's DeviceLinked for the phone and the history reach the phone ({entries} entries): both at state {h}…",
        &*code.reveal()
    ));

    // 3. Dana invites Luis.
    let addrs: Vec<String> = laptop_addrs.iter().map(ToString::to_string).collect();
    let ticket = laptop.with_node(|n| n.create_invite(&g, addrs, now_ms() + 48 * HOUR))?;
    let text = ticket.to_text()?;
    let node = Node::init(&home("luis-laptop"), PASS, "Luis", "laptop", kdf()?)?;
    let (luis, _) = online(node, &laptop_addrs).await?;
    let mut watch = Watch::new(&[&laptop, &phone, &luis]);
    let joined = luis.join(&InviteTicket::parse(&text)?, &[]).await?;
    ensure!(joined == g, "Luis joined another group");
    let luis_id = luis.with_node(|n| n.identity());
    let h = watch.converge(&[&laptop, &phone, &luis], &g).await?;
    let member = luis.with_node(|n| n.state(&g).map(|s| s.is_member(&luis_id)))?;
    ensure!(member, "Luis is not a member on his own device");
    let entries = luis.with_node(|n| n.store().entry_count(&g))?;
    steps.line(format!(
        "3. Dana invites Luis (organizer); join handshake over /caucus/handshake/1; MemberAdded + DeviceLinked and the history reach Luis ({entries} entries): all 3 at state {h}…"
    ));
    println!("            ticket: {}", &*text);

    // 4. Contacts and notes on three devices, then a partition.
    let mut ids = Vec::new();
    let mut notes = Vec::new();
    for (i, (name, dept, shift, rating, by)) in CONTACTS.iter().enumerate() {
        let id = ContactId(rand::random());
        ids.push(id);
        let writer = [&laptop, &phone, &luis][*by];
        let fields = contact(name, dept, shift, *rating)?;
        writer
            .write(
                &g,
                Operation::ContactSet {
                    contact: id,
                    fields,
                },
            )
            .await?;
        if i % 3 == 0 {
            let text = format!("talked at the break room, follow up #{i}");
            notes.push(writer.write(&g, note(id, text)).await?);
        }
    }
    let h = watch.converge(&[&laptop, &phone, &luis], &g).await?;
    steps.line(format!(
        "4. {} contacts and {} notes written on 3 devices, gossiped live: all 3 at state {h}…",
        CONTACTS.len(),
        notes.len(),
    ));

    let rosa = ids[2];
    let rate = |r: u8, tag: &str| -> Result<Operation> {
        let fields = vec![
            ContactField::Rating(Rating::new(r)?),
            ContactField::Tag {
                tag: tag.into(),
                on: true,
            },
        ];
        Ok(Operation::ContactSet {
            contact: rosa,
            fields,
        })
    };
    drop(watch);
    let mut phone_off = offline(phone, &home("dana-phone")).await?;
    let mut luis_off = offline(luis, &home("luis-laptop")).await?;
    phone_off.write(&g, rate(2, "committee")?)?;
    luis_off.write(&g, rate(4, "petition")?)?;
    let text = format!("{MARKER}: will sign, wants a shift meeting");
    notes.push(phone_off.write(&g, note(rosa, text))?);
    notes.push(luis_off.write(&g, note(rosa, "worried about retaliation".into()))?);
    ensure!(
        phone_off.state(&g)?.state_hash() != luis_off.state(&g)?.state_hash(),
        "partitioned replicas should differ"
    );
    steps.line(
        "   partition: Dana's phone and Luis go offline; both rate one contact, tag it and add a note",
    );
    let mut watch = Watch::new(&[&laptop]);
    let (luis, _) = online(luis_off, &laptop_addrs).await?;
    watch.add(&luis);
    let (phone, _) = online(phone_off, &laptop_addrs).await?;
    watch.add(&phone);
    let h = watch.converge(&[&laptop, &phone, &luis], &g).await?;
    for (label, r) in [("laptop", &laptop), ("phone", &phone), ("Luis", &luis)] {
        ensure!(notes_held(r, &g, &notes)?, "{label} lost a note");
    }
    let (tags, rating) = laptop.with_node(|n| -> Result<(bool, u8)> {
        let c = n.state(&g)?.contact(&rosa).context("contact missing")?;
        let tags = c.has_tag("committee") && c.has_tag("petition");
        Ok((tags, c.rating.map_or(0, Rating::get)))
    })?;
    ensure!(tags, "a concurrent tag was lost");
    let (entries, bytes) = watch.take_synced();
    steps.line(format!(
        "   back online, catch-up sync with the laptop (it stored {entries} entries; {bytes} bytes on the wire): all 3 at state {h}…, {} notes kept, both tags, rating {rating} (last writer)",
        notes.len()
    ));

    // 5. An urgent notice, acknowledged.
    let notice = NoticeId(rand::random());
    let content = NoticeContent {
        title: "Emergency committee meeting".into(),
        starts_at_ms: now_ms() + 2 * HOUR,
        place: "Union hall, room 2".into(),
        body: format!("Bring the petition sheets. {MARKER}"),
        urgent: true,
        expires_at_ms: Some(now_ms() + 6 * HOUR),
    };
    let sent = Instant::now();
    laptop
        .write(&g, Operation::NoticePosted { notice, content })
        .await?;
    let delivered = || -> Result<(u32, u32)> {
        laptop.with_node(|n| {
            let d = n.delivery(&g, &notice).context("notice unknown")?;
            Ok((d.acked, d.total))
        })
    };
    let first = delivered()?;
    watch
        .until("acknowledgement from every member", || {
            delivered().map(|(a, t)| a == t)
        })
        .await?;
    let then = delivered()?;
    watch.converge(&[&laptop, &phone, &luis], &g).await?;
    steps.line(format!(
        "5. Dana (admin) posts an urgent notice: her own device counts at once, delivered to {} of {} members; Luis's node acknowledges on opening it: {} of {} after {} ms",
        first.0,
        first.1,
        then.0,
        then.1,
        sent.elapsed().as_millis()
    ));

    // 6. Luis is away when Dana removes him and moves the group to epoch 2.
    drop(watch);
    let mut luis_off = offline(luis, &home("luis-laptop")).await?;
    let epoch = laptop.with_node(|n| n.remove_member(&g, luis_id))?;
    ensure!(epoch == 2, "the removal moved the group to epoch {epoch}");
    let recipients = laptop.with_node(|n| -> Result<usize> {
        let winner = n.state(&g)?.epoch_winner().context("no epoch 2")?;
        Ok(winner.devices().count())
    })?;
    let after = laptop
        .write(&g, note(rosa, "organizing committee meets Thursday".into()))
        .await?;
    let late = luis_off.write(&g, note(rosa, "Luis, after his removal".into()))?;
    let (luis, _) = online(luis_off, &laptop_addrs).await?;
    let mut watch = Watch::new(&[&laptop, &phone, &luis]);
    let beyond_cut = Some(Outcome::Rejected(Reason::BeyondCut));
    watch
        .until("the removal and Luis's late note everywhere", || {
            let status = |r: &Running| r.with_node(|n| n.state(&g).map(|s| s.status(&late)));
            let removed = luis.with_node(|n| n.state(&g).map(|s| !s.is_member(&luis_id)))?;
            let read = phone.with_node(|n| n.state(&g).map(|s| s.contains(&after)))?;
            Ok(removed && read && status(&laptop)? == beyond_cut && status(&phone)? == beyond_cut)
        })
        .await?;
    watch.converge(&[&laptop, &phone], &g).await?;
    // Luis's node does not even fetch what it has no key for; handed the ciphertext
    // (as a relay or a copied disk would hand it), it stores it and cannot open it.
    let sealed = laptop.with_node(|n| -> Result<Vec<u8>> {
        let entries = n.store().entries(&g)?;
        let e = entries.into_iter().find(|e| e.id == after);
        Ok(e.context("the note is not stored")?.envelope)
    })?;
    let got = luis.with_node(|n| n.receive(&g, vec![sealed]))?;
    let locked = luis.with_node(|n| -> Result<bool> {
        let unread = n.store().unopened(&g)?.iter().any(|e| e.id == after);
        Ok(unread && n.keyring(&g)?.candidates(2).is_empty() && !n.state(&g)?.contains(&after))
    })?;
    ensure!(
        got.opened.is_empty() && locked,
        "Luis's device read epoch 2"
    );
    let refused = luis.write(&g, note(rosa, "still trying".into())).await;
    ensure!(refused.is_err(), "a removed member's write went through");
    steps.line(format!(
        "6. Dana removes Luis while he is away: epoch 2 sealed to {recipients} devices (Noise N); what Luis wrote offline after it is refused everywhere (beyond his cut); his device holds the new note's ciphertext and cannot open it, and writes nothing more"
    ));

    // 7. At rest: stop every node, scan the disk, reopen one.
    let planted = laptop.with_node(|n| {
        n.state(&g)
            .map(|s| s.contacts().any(|c| c.name.contains(MARKER)))
    })?;
    ensure!(planted, "marker not planted");
    let before = state_hash(&phone, &g)?;
    let mut counts = Vec::new();
    for r in [&laptop, &phone, &luis] {
        counts.push(r.with_node(|n| n.store().entry_count(&g))?);
    }
    drop(watch);
    for r in [laptop, phone, luis] {
        r.shutdown().await?;
    }
    let (files, bytes, hits) = scan_for(homes.path(), MARKER.as_bytes())?;
    ensure!(hits == 0, "{hits} plaintext hits of the marker on disk");
    steps.line(format!(
        "7. entries stored (SQLCipher, one home each): laptop {}, phone {}, Luis {} (1 unreadable to him); stopped; scanned {files} files, {bytes} bytes for \"{MARKER}\": 0 hits",
        counts[0], counts[1], counts[2]
    ));
    let phone = Node::open(&home("dana-phone"), PASS)?;
    let check = phone.reverify(&g)?;
    let state = phone.state(&g)?;
    ensure!(
        state.state_hash() == before,
        "reopened phone folds to another state"
    );
    ensure!(
        check.state_hash == before,
        "re-opened envelopes fold to another state"
    );
    ensure!(
        phone.store().all_contacts(&g)?.len()
            == state.contacts().count() + state.removed_contacts().count(),
        "store views disagree"
    );
    steps.line(format!(
        "   reopened Dana's phone from passphrase + disk: stored bodies fold to the same state; {} envelopes opened and verified again, same state",
        check.opened
    ));

    // 8. The workplace map and the support share, from the store's views (no fold).
    let map = phone.store().workplace_map(&g)?;
    let share = phone.store().support_share(&g)?;
    ensure!(
        map == state.workplace_map(),
        "map view disagrees with the fold"
    );
    ensure!(
        share == state.support_share(),
        "share view disagrees with the fold"
    );
    steps.line("8. workplace map (department x shift, one mark per contact, by rating):");
    print_map(&map);
    println!(
        "            support: {} supportive of {} workers = {:.2}%, target {}% -> {} more supporters needed",
        share.supportive,
        share.base.count(),
        share.percent(),
        share.target_percent.unwrap_or(0),
        share.still_needed().unwrap_or(0)
    );
    drop(phone);
    homes.close()?;
    println!("\nall checks passed; temporary homes removed");
    Ok(())
}

/// Glyphs for ratings 1 (leader) to 5 (opposed).
const GLYPHS: [char; 5] = ['█', '▓', '▒', '░', '·'];

fn bar(counts: &RatingCounts) -> String {
    let mut s = String::new();
    for (glyph, n) in GLYPHS.iter().zip(counts.by_rating) {
        s.extend(std::iter::repeat_n(*glyph, n as usize));
    }
    s
}

/// Department × shift, one glyph per contact, by rating.
fn print_map(map: &WorkplaceMap) {
    let shifts: BTreeSet<&String> = map.by_shift.keys().collect();
    print!("            {:<10}", "workplace");
    for shift in &shifts {
        print!("{shift:<9}");
    }
    println!("supportive");
    for (dept, row) in &map.cells {
        print!("            {dept:<10}");
        for shift in &shifts {
            print!("{:<9}", row.get(*shift).map(bar).unwrap_or_default());
        }
        let total = map.by_department.get(dept).copied().unwrap_or_default();
        println!("{} of {}", total.supportive(), total.total());
    }
    println!("            █ leader  ▓ supporter  ▒ undecided  ░ leaning against  · opposed");
}
