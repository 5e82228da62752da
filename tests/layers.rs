//! The layers together, through real nodes: the story of `examples/campaign_tour.rs`
//! with assertions only. Dana's laptop, Dana's phone and Luis's laptop are each a
//! `caucus::node::Running` node with its own SQLCipher home and libp2p swarm on
//! 127.0.0.1, in this process: every entry is sealed (crypto), gossiped or fetched by
//! catch-up sync (net, sync), opened and verified (crypto), stored (store) and folded
//! (model).
//!
//! A committee founded, a phone linked with a pairing code and a member invited over
//! `/caucus/handshake/1`; contacts gossiped; a partition (two nodes offline, editing
//! one contact concurrently) healed by catch-up sync, every node at one state hash; an
//! urgent notice acknowledged by every member; a removed member locked out of what is
//! written after and refused for what he wrote beyond his cut; nothing readable on
//! disk; every home reopened to the same state, its views and a fresh crypto pass
//! agreeing. Delivery in any order and altered entries, at the node:
//! `crates/caucus-node/tests/receive.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../crates/caucus-node/tests/common/mod.rs"]
mod common;

use caucus::crypto::invite::InviteTicket;
use caucus::crypto::link::PairingCode;
use caucus::model::{Outcome, Reason};
use caucus::net::Multiaddr;
use caucus::node::{Node, NodeError, Running, link_new_device, now_ms};
use caucus::proto::{
    ContactField, ContactId, EntryId, GroupId, IdentityKey, NoticeContent, NoticeId, Operation,
    Rating,
};
use caucus::store::ContactRow;
use common::{PASS, WAIT, Watch, converge, kdf, note, offline, online, scan, set, start};
use std::collections::BTreeSet;
use std::path::PathBuf;
use tempfile::TempDir;

/// Planted in a contact name, a note and a notice.
const MARKER: &str = "CANARY-QX7";
/// Two days in milliseconds.
const TWO_DAYS_MS: u64 = 2 * 86_400_000;

/// Dana (laptop + phone) and Luis (laptop), in one group, all in sync.
struct Committee {
    dir: TempDir,
    group: GroupId,
    laptop: Running,
    /// Where the laptop listens: the others dial it.
    laptop_addrs: Vec<Multiaddr>,
    phone: Running,
    luis: Running,
    luis_id: IdentityKey,
}

impl Committee {
    fn home(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// What the campaign wrote.
struct Campaign {
    /// Every note's entry, the one written after the removal included.
    notes: Vec<EntryId>,
    rosa: ContactId,
    /// Dana's note written after Luis's removal (epoch 2).
    after: EntryId,
    /// Luis's note, written offline after his removal, before his node heard of it.
    rogue: EntryId,
}

fn random_contact() -> ContactId {
    ContactId(rand::random())
}

fn rating(n: u8) -> ContactField {
    ContactField::Rating(Rating::new(n).unwrap())
}

fn tag(tag: &str) -> ContactField {
    ContactField::Tag {
        tag: tag.into(),
        on: true,
    }
}

fn texts(addrs: &[Multiaddr]) -> Vec<String> {
    addrs.iter().map(ToString::to_string).collect()
}

/// Founding, linking the phone with a pairing code, inviting Luis with a ticket, all
/// over the network.
async fn committee() -> Committee {
    let dir = tempfile::tempdir().unwrap();
    let (laptop, laptop_addrs) = start(&dir.path().join("dana-laptop"), "Dana", &[]).await;
    let g = laptop.create_group("JFK8 committee").await.unwrap();
    laptop
        .write(
            &g,
            Operation::CampaignSet {
                headcount: 8000,
                target_percent: 70,
            },
        )
        .await
        .unwrap();

    // The phone: the pairing code typed on the phone (in lower case), the link
    // handshake with the laptop, which records the phone; the history by sync.
    let (code, linked) = laptop.host_link().unwrap();
    let typed = PairingCode::parse(&code.reveal().to_lowercase()).unwrap();
    let phone = link_new_device(
        &dir.path().join("dana-phone"),
        PASS,
        kdf(),
        &typed,
        "phone",
        &laptop_addrs,
        caucus::net::Config::loopback(),
    )
    .await
    .unwrap();
    assert!(!phone.holds_identity());
    let cert = tokio::time::timeout(WAIT, linked).await.unwrap().unwrap();
    assert_eq!(cert.device, phone.device_key());
    let (phone, _) = online(phone, &laptop_addrs).await;
    converge(&[&laptop, &phone], &g).await;
    assert_eq!(
        phone.with_node(|n| n.identity()),
        laptop.with_node(|n| n.identity())
    );
    let state_has_phone = laptop.with_node(|n| {
        let state = n.state(&g).unwrap();
        state.device(&cert.device).is_some_and(|d| !d.first)
    });
    assert!(state_has_phone, "the laptop did not record the phone");

    // Luis: the ticket as text, the join handshake, recorded by Dana's laptop.
    let ticket = laptop
        .with_node(|n| n.create_invite(&g, texts(&laptop_addrs), now_ms() + TWO_DAYS_MS))
        .unwrap();
    let parsed = InviteTicket::parse(&ticket.to_text().unwrap()).unwrap();
    let (luis, _) = start(&dir.path().join("luis-laptop"), "Luis", &laptop_addrs).await;
    assert_eq!(luis.join(&parsed, &[]).await.unwrap(), g);
    converge(&[&laptop, &phone, &luis], &g).await;
    let luis_id = luis.with_node(|n| n.identity());
    assert!(luis.with_node(|n| n.state(&g).unwrap().is_member(&luis_id)));
    let devices = laptop.with_node(|n| n.state(&g).unwrap().current_devices().count());
    assert_eq!(devices, 3);

    Committee {
        dir,
        group: g,
        laptop,
        laptop_addrs,
        phone,
        luis,
        luis_id,
    }
}

/// Contacts on three devices, a partition with concurrent edits, the heal; an urgent
/// notice; Luis's removal, a note written after it, and one Luis writes offline.
async fn campaign(mut c: Committee) -> (Committee, Campaign) {
    let g = c.group;
    let mut notes = Vec::new();
    let mut ids = Vec::new();
    for i in 0..9u8 {
        let id = random_contact();
        ids.push(id);
        let name = if i == 0 {
            format!("Rosa {MARKER}")
        } else {
            format!("Worker {i}")
        };
        let fields = vec![
            ContactField::Name(name),
            ContactField::Department(["Outbound", "Inbound", "ICQA"][usize::from(i % 3)].into()),
            ContactField::Shift(if i < 5 { "nights" } else { "days" }.into()),
            rating(i % 5 + 1),
        ];
        let w = [&c.laptop, &c.phone, &c.luis][usize::from(i % 3)];
        w.write(&g, set(id, fields)).await.unwrap();
        notes.push(w.write(&g, note(id, "first talk")).await.unwrap());
    }
    converge(&[&c.laptop, &c.phone, &c.luis], &g).await;

    // Partition: the phone and Luis go offline and edit one contact concurrently.
    let rosa = ids[0];
    let (phone_home, luis_home) = (c.home("dana-phone"), c.home("luis-laptop"));
    let mut phone = offline(c.phone, &phone_home).await;
    let mut luis = offline(c.luis, &luis_home).await;
    phone
        .write(&g, set(rosa, vec![rating(2), tag("committee")]))
        .unwrap();
    luis.write(&g, set(rosa, vec![rating(4), tag("petition")]))
        .unwrap();
    notes.push(phone.write(&g, note(rosa, MARKER)).unwrap());
    notes.push(luis.write(&g, note(rosa, "worried")).unwrap());
    assert_ne!(
        phone.state(&g).unwrap().state_hash(),
        luis.state(&g).unwrap().state_hash()
    );
    // The heal: both back, each dialing the laptop; catch-up sync on connecting.
    (c.luis, _) = online(luis, &c.laptop_addrs).await;
    (c.phone, _) = online(phone, &c.laptop_addrs).await;
    converge(&[&c.laptop, &c.phone, &c.luis], &g).await;
    for (label, r) in [
        ("laptop", &c.laptop),
        ("phone", &c.phone),
        ("luis", &c.luis),
    ] {
        r.with_node(|n| {
            let state = n.state(&g).unwrap();
            let held: BTreeSet<EntryId> = state.all_notes().map(|n| n.entry).collect();
            assert!(
                notes.iter().all(|n| held.contains(n)),
                "{label} lost a note"
            );
            let contact = state.contact(&rosa).unwrap();
            assert!(contact.has_tag("committee") && contact.has_tag("petition"));
        });
    }

    // An urgent notice: the laptop counts Dana at once, Luis's node acknowledges on
    // opening it.
    let notice = NoticeId(rand::random());
    let content = NoticeContent {
        title: "Emergency committee meeting".into(),
        starts_at_ms: now_ms() + 7_200_000,
        place: "Union hall".into(),
        body: MARKER.into(),
        urgent: true,
        expires_at_ms: None,
    };
    let mut watch = Watch::new(&[&c.laptop]);
    c.laptop
        .write(&g, Operation::NoticePosted { notice, content })
        .await
        .unwrap();
    watch
        .until("every member to acknowledge the notice", || {
            c.laptop.with_node(|n| {
                let d = n.delivery(&g, &notice).unwrap();
                (d.acked, d.total) == (2, 2)
            })
        })
        .await;
    let acks = c.laptop.with_node(|n| {
        let state = n.state(&g).unwrap();
        state.notice(&notice).unwrap().acks.clone()
    });
    let dana = c.laptop.with_node(|n| n.identity());
    assert!(acks.contains(&dana) && acks.contains(&c.luis_id));
    // The phone's acknowledgement, if it wrote one before seeing the laptop's, is the
    // same member's: the notice settles on every node.
    converge(&[&c.laptop, &c.phone, &c.luis], &g).await;

    // Luis is offline when Dana removes him and moves the group to epoch 2, sealed to
    // her two devices; offline, not knowing, he writes a note.
    let mut luis = offline(c.luis, &luis_home).await;
    let epoch = c
        .laptop
        .with_node(|n| n.remove_member(&g, c.luis_id))
        .unwrap();
    assert_eq!(epoch, 2);
    let (winner, laptop_epoch) = c.laptop.with_node(|n| {
        let state = n.state(&g).unwrap();
        let winner: Vec<_> = state.epoch_winner().unwrap().devices().collect();
        (winner, n.keyring(&g).unwrap().current().unwrap().epoch())
    });
    let dana_devices = [
        c.laptop.with_node(|n| n.device_key()),
        c.phone.with_node(|n| n.device_key()),
    ];
    assert_eq!(winner.len(), 2, "Dana's two devices");
    assert!(winner.iter().all(|d| dana_devices.contains(d)));
    assert_eq!(laptop_epoch, 2);
    let after = c
        .laptop
        .write(&g, note(rosa, "after the removal"))
        .await
        .unwrap();
    notes.push(after);
    let rogue = luis.write(&g, note(rosa, "after being removed")).unwrap();
    (c.luis, _) = online(luis, &c.laptop_addrs).await;
    let mut watch = Watch::new(&[&c.laptop, &c.phone, &c.luis]);
    let beyond_cut = Some(Outcome::Rejected(Reason::BeyondCut));
    watch
        .until(
            "the removal and Luis's late note to reach every node",
            || {
                let removed = c.luis.with_node(|n| {
                    let state = n.state(&g).unwrap();
                    !state.is_member(&c.luis_id) && state.status(&rogue) == beyond_cut
                });
                let refused = [&c.laptop, &c.phone]
                    .iter()
                    .all(|r| r.with_node(|n| n.state(&g).unwrap().status(&rogue)) == beyond_cut);
                let read = c.phone.with_node(|n| n.state(&g).unwrap().contains(&after));
                removed && refused && read
            },
        )
        .await;
    converge(&[&c.laptop, &c.phone], &g).await;

    // The ciphertext of the note written after the removal, handed to Luis's node as a
    // relay or a copied disk would hand it: stored, never opened.
    let sealed = c.laptop.with_node(|n| {
        let entries = n.store().entries(&g).unwrap();
        entries.into_iter().find(|e| e.id == after).unwrap()
    });
    assert_eq!(sealed.epoch, 2);
    let got = c
        .luis
        .with_node(|n| n.receive(&g, vec![sealed.envelope]))
        .unwrap();
    assert!(got.opened.is_empty() && got.refused == 0);
    (
        c,
        Campaign {
            notes,
            rosa,
            after,
            rogue,
        },
    )
}

/// Whether `node`'s store holds `id` without a body (received, not opened).
fn unopened(node: &Node, g: &GroupId, id: &EntryId) -> bool {
    node.store()
        .unopened(g)
        .unwrap()
        .iter()
        .any(|e| e.id == *id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_heals_and_a_removed_member_is_locked_out() {
    let (c, w) = campaign(committee().await).await;
    let g = c.group;

    // The phone reads the note written after the removal; Luis's node holds its
    // ciphertext and cannot open it: it was not sent the new epoch.
    assert!(c.phone.with_node(|n| {
        let state = n.state(&g).unwrap();
        state.all_notes().any(|n| n.entry == w.after)
    }));
    let luis_device = c.luis.with_node(|n| n.device_key());
    c.luis.with_node(|n| {
        let state = n.state(&g).unwrap();
        assert!(unopened(n, &g, &w.after));
        assert_eq!(state.status(&w.after), None);
        assert!(!state.all_notes().any(|n| n.entry == w.after));
        assert!(n.keyring(&g).unwrap().candidates(2).is_empty());
        assert!(!state.is_member(&c.luis_id));
        let winner = state.epoch_winner().unwrap();
        assert!(winner.devices().all(|d| d != luis_device));
        assert!(n.refused_counts().is_empty(), "{:?}", n.refused_counts());
    });
    // Now that it knows, Luis's node refuses to write at all.
    match c.luis.write(&g, note(w.rosa, "still trying")).await {
        Err(NodeError::Refused(why)) => assert!(why.contains("not given the current epoch")),
        other => panic!("a removed member's write went through: {other:?}"),
    }
    // Dana's devices refused only Luis's late note, and give it no effect.
    for r in [&c.laptop, &c.phone] {
        r.with_node(|n| {
            let refused: Vec<_> = n.refused_counts().iter().map(|(k, v)| (*k, *v)).collect();
            assert_eq!(refused, vec![("beyond cut", 1)]);
            let state = n.state(&g).unwrap();
            assert!(!state.all_notes().any(|n| n.entry == w.rogue));
        });
    }
    let held = c
        .laptop
        .with_node(|n| n.state(&g).unwrap().all_notes().count());
    assert_eq!(held, w.notes.len());
    for r in [c.laptop, c.phone, c.luis] {
        r.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_reopen_to_the_same_state_and_hold_nothing_readable() {
    let (c, w) = campaign(committee().await).await;
    let g = c.group;
    let homes = ["dana-laptop", "dana-phone", "luis-laptop"];
    let before: Vec<([u8; 32], u64)> = [&c.laptop, &c.phone, &c.luis]
        .iter()
        .map(|r| {
            r.with_node(|n| {
                let hash = n.state(&g).unwrap().state_hash();
                (hash, n.store().entry_count(&g).unwrap())
            })
        })
        .collect();
    let planted = c.laptop.with_node(|n| {
        let state = n.state(&g).unwrap();
        state.contacts().any(|x| x.name.contains(MARKER))
    });
    assert!(planted, "marker not planted");
    let dir = c.dir;
    for r in [c.laptop, c.phone, c.luis] {
        r.shutdown().await.unwrap();
    }

    let (files, bytes, hits) = scan(dir.path(), MARKER.as_bytes());
    assert!(
        files >= 6 && bytes > 0,
        "scanned {files} files, {bytes} bytes"
    );
    assert_eq!(hits, 0, "marker found in plaintext on disk");
    // The scanner does find a plaintext marker.
    let control = tempfile::tempdir().unwrap();
    std::fs::write(control.path().join("plain"), format!("x{MARKER}y")).unwrap();
    assert_eq!(scan(control.path(), MARKER.as_bytes()).2, 1);

    for (label, (hash, count)) in homes.iter().zip(before) {
        let n = Node::open(&dir.path().join(label), PASS).unwrap();
        assert_eq!(n.store().entry_count(&g).unwrap(), count, "{label}");
        // The store's fold of its bodies, its views, and a fresh crypto pass over every
        // envelope all agree with the state before closing.
        let state = n.state(&g).unwrap();
        assert_eq!(state.state_hash(), hash, "{label} folds to another state");
        let mut contacts: Vec<ContactRow> = state
            .contacts()
            .chain(state.removed_contacts())
            .map(ContactRow::from_model)
            .collect();
        contacts.sort_by_key(|c| c.id);
        assert_eq!(
            n.store().all_contacts(&g).unwrap(),
            contacts,
            "{label} views"
        );
        assert_eq!(
            n.store().all_notes(&g).unwrap().len(),
            state.all_notes().count(),
            "{label} note views"
        );
        assert_eq!(n.store().workplace_map(&g).unwrap(), state.workplace_map());
        assert_eq!(n.store().support_share(&g).unwrap(), state.support_share());
        let check = n.reverify(&g).unwrap();
        assert_eq!(check.state_hash, hash, "{label} re-opened");
        assert_eq!(check.opened as u64 + check.unreadable as u64, count);
    }
    // Luis's node kept the note written after his removal as ciphertext only.
    let luis = Node::open(&dir.path().join("luis-laptop"), PASS).unwrap();
    assert!(unopened(&luis, &g, &w.after));
    assert_eq!(luis.state(&g).unwrap().status(&w.after), None);
    assert_eq!(luis.reverify(&g).unwrap().unreadable, 1);
    assert!(matches!(
        Node::open(&dir.path().join("dana-phone"), b"wrong"),
        Err(NodeError::WrongPassphrase)
    ));
}
