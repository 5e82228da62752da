//! `caucus demo`: the whole story on loopback, with real nodes in temporary homes.
//!
//! An office relay and four organizer devices (Dana's laptop and phone, Luis, Maria),
//! each a real `caucus-node` with its own SQLCipher home and its own libp2p swarm on
//! 127.0.0.1, in this process. Dana founds the committee, links her phone with a
//! pairing code, invites Luis and Maria; everyone logs contacts and notes; Maria drops
//! off the network and keeps writing while the others do too, then comes back and all
//! converge; Dana sends an urgent notice and watches "delivered to k of n"; Dana removes
//! Luis, who cannot read what is written after; Maria reads Dana's news from the relay
//! alone. Every step prints its wall time; any failed check ends with a non-zero exit.

use anyhow::{Context, Result, bail, ensure};
use caucus_crypto::at_rest::KdfParams;
use caucus_node::relay::{Quota, Relay, RelayNode, RelayOptions};
use caucus_node::{
    Multiaddr, NetOptions, Node, NodeConfig, NodeEvent, Running, link_device, now_ms,
};
use caucus_proto::{
    ContactField, ContactId, GroupId, Note, NoticeContent, NoticeId, Operation, Rating,
};
use std::path::Path;
use std::time::{Duration, Instant};

/// Planted in names, notes and the notice; must never appear in the relay's files.
const MARKER: &str = "CANARY-DEMO-7Q";
const PASS: &[u8] = b"demo passphrase, not for real use";
/// The longest any step may wait for the network.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

const CONTACTS: [(&str, &str, &str, u8); 12] = [
    ("Ana Ortiz", "Outbound", "nights", 1),
    ("Ben Cole", "Outbound", "nights", 2),
    ("Rosa Diaz CANARY-DEMO-7Q", "Outbound", "days", 3),
    ("Kim Tran", "Outbound", "days", 2),
    ("Omar Haddad", "Inbound", "nights", 4),
    ("Lena Park", "Inbound", "days", 1),
    ("Joe Marsh", "Inbound", "days", 3),
    ("Ivy Chen", "ICQA", "nights", 2),
    ("Sam Reyes", "ICQA", "days", 5),
    ("Tara Webb", "ICQA", "days", 3),
    ("Raj Patel", "Inbound", "nights", 2),
    ("Nia Brooks", "Outbound", "nights", 3),
];

struct Steps(Instant);

impl Steps {
    fn line(&mut self, text: impl std::fmt::Display) {
        println!("{:>8.1} ms  {text}", self.0.elapsed().as_secs_f64() * 1e3);
        self.0 = Instant::now();
    }
}

fn kdf() -> Result<KdfParams> {
    Ok(KdfParams::new(19 * 1024, 2, 1)?)
}

fn loopback(peers: &[Multiaddr]) -> NodeConfig {
    NodeConfig::with_net(&NetOptions {
        resync_interval: Some(Duration::from_secs(2)),
        ..NetOptions::loopback(peers)
    })
}

fn random16() -> [u8; 16] {
    use rand::Rng;
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b
}

fn hash(r: &Running, g: &GroupId) -> Result<[u8; 32]> {
    Ok(r.with_node(|n| n.state(g).map(|s| s.state_hash()))?)
}

/// Waits until every node has the same state (bounded).
async fn converge(nodes: &[&Running], g: &GroupId) -> Result<String> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let first = hash(nodes[0], g)?;
        let mut same = true;
        for n in &nodes[1..] {
            same &= hash(n, g)? == first;
        }
        if same {
            return Ok(hex::encode(&first[..4]));
        }
        if Instant::now() > deadline {
            bail!("the nodes did not converge within {STEP_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn start(node: Node, peers: &[Multiaddr]) -> Result<(Running, Vec<Multiaddr>)> {
    let r = Running::start(node, loopback(peers)).await?;
    let addrs = r.wait_listening(Duration::from_secs(10)).await?;
    Ok((r, addrs))
}

async fn contact(
    r: &Running,
    g: &GroupId,
    name: &str,
    dept: &str,
    shift: &str,
    rating: u8,
) -> Result<ContactId> {
    let id = ContactId(random16());
    let fields = vec![
        ContactField::Name(name.into()),
        ContactField::Department(dept.into()),
        ContactField::Shift(shift.into()),
        ContactField::Rating(Rating::new(rating)?),
    ];
    r.write(
        g,
        Operation::ContactSet {
            contact: id,
            fields,
        },
    )
    .await?;
    Ok(id)
}

fn note(contact: ContactId, text: &str) -> Operation {
    Operation::NoteAdded {
        contact,
        note: Note {
            text: text.into(),
            date: None,
            by: None,
        },
    }
}

/// Every file under `dir`: (files, bytes, hits of `marker`).
fn scan(dir: &Path, marker: &[u8]) -> Result<(usize, u64, usize)> {
    let (mut files, mut bytes, mut hits) = (0, 0, 0);
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            let (f, b, h) = scan(&path, marker)?;
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

pub(crate) async fn run(keep: bool) -> Result<()> {
    let dir = tempfile::Builder::new().prefix("caucus-demo-").tempdir()?;
    let root = dir.path().to_path_buf();
    println!(
        "caucus demo: an office relay and four organizer devices on 127.0.0.1, homes in {}",
        root.display()
    );
    println!(
        "(every entry sealed, signed, verified and stored encrypted; the relay sees ciphertext only)\n"
    );
    let result = story(&root).await;
    if keep {
        let kept = dir.keep();
        println!("homes kept in {}", kept.display());
    }
    match result {
        Ok(()) => {
            println!("\ndemo complete: every check passed");
            Ok(())
        }
        Err(e) => Err(e.context("demo check failed")),
    }
}

async fn story(root: &Path) -> Result<()> {
    let mut steps = Steps(Instant::now());

    // 0. The office relay.
    let (relay, mut relay_events) = RelayNode::start(
        Relay::open(&root.join("relay"), Quota::default())?,
        RelayOptions {
            resync_interval: Some(Duration::from_secs(2)),
            ..RelayOptions::loopback()
        },
    )
    .await?;
    let relay_addr = relay
        .wait_listening(&mut relay_events, STEP_TIMEOUT)
        .await?;
    drop(relay_events);
    steps.line(format!(
        "0. office relay up at {relay_addr} (circuit relay v2 + blind store)"
    ));

    // 1. Dana founds the committee.
    let dana_node = Node::init(&root.join("dana-laptop"), PASS, "Dana", "laptop", kdf()?)?;
    let (dana, dana_addrs) = start(dana_node, std::slice::from_ref(&relay_addr)).await?;
    let g = dana.create_group("JFK8 committee").await?;
    dana.write(
        &g,
        Operation::CampaignSet {
            headcount: 8000,
            target_percent: 70,
        },
    )
    .await?;
    let grant = dana.with_node(|n| n.relay_grant(&g))?;
    relay.allow(grant).await?;
    steps.line("1. Dana founds \"JFK8 committee\" (8,000 workers, target 70%) and gives the relay a grant: tokens, no content key");

    // 2. Dana links her phone.
    let (code, linked) = dana.host_link()?;
    let phone_node = link_device(
        &root.join("dana-phone"),
        PASS,
        kdf()?,
        &code,
        "phone",
        &NetOptions::loopback(&dana_addrs),
    )
    .await?;
    let (phone, _) = start(phone_node, &dana_addrs).await?;
    tokio::time::timeout(STEP_TIMEOUT, linked)
        .await
        .context("the link did not complete")??;
    let h = converge(&[&dana, &phone], &g).await?;
    steps.line(format!(
        "2. Dana's phone links with pairing code {} (Noise NNpsk0 over /caucus/handshake/1) and syncs: state {h}…",
        &*code.reveal()
    ));

    // 3. Invites.
    let mut members = Vec::new();
    for (who, label) in [("Maria", "maria"), ("Luis", "luis")] {
        let addrs: Vec<String> = dana_addrs.iter().map(ToString::to_string).collect();
        let ticket = dana.with_node(|n| n.create_invite(&g, addrs, now_ms() + 3_600_000))?;
        let node = Node::init(&root.join(label), PASS, who, "laptop", kdf()?)?;
        let (r, _) = start(node, std::slice::from_ref(&relay_addr)).await?;
        let joined = r.join(&ticket, &[]).await?;
        ensure!(joined == g, "{who} joined another group");
        members.push(r);
    }
    let luis_node = members.pop().context("luis")?;
    let maria = members.pop().context("maria")?;
    let luis = &luis_node;
    let h = converge(&[&dana, &phone, luis, &maria], &g).await?;
    let n = dana.with_node(|n| n.state(&g).map(|s| s.current_members().count()))?;
    steps.line(format!("3. Dana invites Luis and Maria (one-time tickets, Noise NNpsk0); {n} members, all at state {h}…"));

    // 4. Contacts and notes from every device.
    let writers = [&dana, &phone, luis, &maria];
    let mut ids = Vec::new();
    for (i, (name, dept, shift, rating)) in CONTACTS.iter().enumerate() {
        let w = writers[i % writers.len()];
        let id = contact(w, &g, name, dept, shift, *rating).await?;
        if i % 3 == 0 {
            w.write(&g, note(id, &format!("talked at the break room {MARKER}")))
                .await?;
        }
        ids.push(id);
    }
    let h = converge(&[&dana, &phone, luis, &maria], &g).await?;
    steps.line(format!(
        "4. {} contacts and notes written on 4 devices, gossiped live: all at state {h}…",
        CONTACTS.len()
    ));

    // 5. Partition: Maria drops off and keeps working; so do the others.
    let maria_home = root.join("maria");
    maria.shutdown().await?;
    let rosa = ids[2];
    let mut offline = Node::open(&maria_home, PASS)?;
    offline.write(&g, note(rosa, "Maria (offline): wants a shift meeting"))?;
    offline.write(
        &g,
        Operation::ContactSet {
            contact: rosa,
            fields: vec![ContactField::Tag {
                tag: "signed card".into(),
                on: true,
            }],
        },
    )?;
    drop(offline);
    luis.write(&g, note(rosa, "Luis: worried about retaliation"))
        .await?;
    dana.write(
        &g,
        Operation::ContactSet {
            contact: rosa,
            fields: vec![ContactField::Rating(Rating::new(2)?)],
        },
    )
    .await?;
    let heal = Instant::now();
    let (maria, _) = start(
        Node::open(&maria_home, PASS)?,
        std::slice::from_ref(&relay_addr),
    )
    .await?;
    let h = converge(&[&dana, &phone, luis, &maria], &g).await?;
    let notes = dana.with_node(|n| n.state(&g).map(|s| s.notes(&rosa).count()))?;
    let tagged = dana.with_node(|n| {
        n.state(&g)
            .map(|s| s.contact(&rosa).is_some_and(|c| c.has_tag("signed card")))
    })?;
    ensure!(
        notes == 2 && tagged,
        "a concurrent edit was lost ({notes} notes)"
    );
    steps.line(format!(
        "5. partition: Maria offline adds a note and a tag while Luis adds a note and Dana re-rates; healed in {} ms: all at {h}…, {notes} notes kept",
        heal.elapsed().as_millis()
    ));

    // 6. An urgent notice.
    let mut rx = dana.subscribe();
    let notice = NoticeId(random16());
    let sent = Instant::now();
    dana.write(
        &g,
        Operation::NoticePosted {
            notice,
            content: NoticeContent {
                title: "Emergency committee meeting".into(),
                starts_at_ms: now_ms() + 2 * 3_600_000,
                place: "Union hall, room 2".into(),
                body: format!("Bring the petition sheets {MARKER}"),
                urgent: true,
                expires_at_ms: Some(now_ms() + 6 * 3_600_000),
            },
        },
    )
    .await?;
    let total = dana.with_node(|n| n.state(&g).map(|s| s.current_members().count()))? as u32;
    let mut acked = 1;
    let mut first_ack = None;
    while acked < total {
        let left = STEP_TIMEOUT.saturating_sub(sent.elapsed());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Ok(NodeEvent::AckReceived {
                notice: n,
                acked: a,
                ..
            })) if n == notice => {
                acked = a;
                first_ack.get_or_insert(sent.elapsed());
            }
            Ok(Ok(_)) => {}
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            _ => bail!("urgent notice: only {acked} of {total} members acknowledged"),
        }
    }
    steps.line(format!(
        "6. Dana sends an urgent notice: delivered to {acked} of {total} members in {} ms (first ack after {} ms)",
        sent.elapsed().as_millis(),
        first_ack.unwrap_or_default().as_millis()
    ));

    // 7. Dana removes Luis: new epoch, sealed to the remaining devices only.
    let luis_id = luis.with_node(|n| n.identity());
    let epoch = dana.with_node(|n| n.remove_member(&g, luis_id))?;
    let secret = dana
        .write(&g, note(ids[0], "organizing committee meets Thursday"))
        .await?;
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let phone_has = phone.with_node(|n| n.state(&g).map(|s| s.contains(&secret)))?;
        let maria_has = maria.with_node(|n| n.state(&g).map(|s| s.contains(&secret)))?;
        if phone_has && maria_has {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the remaining members did not get epoch {epoch}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let luis_reads = luis.with_node(|n| n.state(&g).map(|s| s.contains(&secret)))?;
    ensure!(
        !luis_reads,
        "a removed member read an entry written after the removal"
    );
    // What Luis writes now counts nowhere: his own node refuses once it knows of the
    // removal, and before that every other node refuses it (beyond his cut).
    let refused_by = match luis
        .write(&g, note(ids[0], "Luis, after his removal"))
        .await
    {
        Err(_) => "his own node",
        Ok(after) => {
            let deadline = Instant::now() + STEP_TIMEOUT;
            loop {
                let status = dana.with_node(|n| n.state(&g).map(|s| s.status(&after)))?;
                match status {
                    Some(caucus_model::Outcome::Rejected(_)) => break "every other node",
                    Some(caucus_model::Outcome::Applied) => {
                        bail!("an entry written by a removed member was applied")
                    }
                    _ => {}
                }
                ensure!(
                    Instant::now() < deadline,
                    "Dana's node never got Luis's entry written after his removal"
                );
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    };
    steps.line(format!(
        "7. Dana removes Luis: epoch {epoch} sealed to the remaining devices, its relay token sent to the relay; phone and Maria read the new note, Luis cannot, and what he writes now is refused by {refused_by}"
    ));

    // 8. Store and forward: Maria is away while Dana writes, then Dana is away.
    maria.shutdown().await?;
    let news = dana
        .write(&g, note(ids[1], "card drive moved to Friday"))
        .await?;
    let deadline = Instant::now() + STEP_TIMEOUT;
    while !relay.relay().holds(&g, &news) {
        ensure!(
            Instant::now() < deadline,
            "the relay did not take Dana's entry"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let dana_hash = hash(&dana, &g)?;
    dana.shutdown().await?;
    phone.shutdown().await?;
    luis_node.shutdown().await?;
    let (maria, _) = start(
        Node::open(&maria_home, PASS)?,
        std::slice::from_ref(&relay_addr),
    )
    .await?;
    let deadline = Instant::now() + STEP_TIMEOUT;
    while hash(&maria, &g)? != dana_hash {
        ensure!(
            Instant::now() < deadline,
            "Maria did not get Dana's news from the relay"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    steps.line("8. store and forward: Dana writes while Maria is away, then leaves; Maria comes back to the relay alone and has Dana's state");
    maria.shutdown().await?;

    // 9. What the relay holds.
    relay.relay().checkpoint()?;
    let (files, bytes, hits) = scan(&root.join("relay"), MARKER.as_bytes())?;
    ensure!(
        hits == 0,
        "{hits} plaintext hits of the marker in the relay's files"
    );
    let usage: u64 = relay.relay().usage().iter().map(|(_, u)| u.entries).sum();
    steps.line(format!(
        "9. the relay holds {usage} envelopes; scanned its {files} files ({bytes} bytes) for \"{MARKER}\": 0 hits"
    ));
    relay.shutdown().await?;
    Ok(())
}
