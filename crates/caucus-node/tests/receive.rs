//! What `Node::receive` does with what peers hand it, offline (real nodes in temporary
//! homes, envelopes handed between them). A committee's whole history (a linked
//! phone, an invited member, concurrent edits, a notice and its acknowledgements, a
//! removal with a new epoch, and an entry the removed member wrote beyond his cut)
//! folds to one state hash on a fresh copy of the phone whatever the order, in pieces,
//! each piece twice, and after reopening; an altered, truncated or foreign entry is
//! refused and changes nothing; a fresh crypto pass over every stored envelope
//! (`Node::reverify`) agrees with the store's fold.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use caucus_model::{Outcome, Reason};
use caucus_node::{Node, now_ms};
use caucus_proto::{
    ContactField, ContactId, EntryId, Envelope, GroupId, NoticeContent, NoticeId, Operation, Rating,
};
use common::{PASS, copy_home, envelopes, init, join, link, note, set, sync};
use rand::seq::SliceRandom;
use std::path::{Path, PathBuf};

/// A committee's history, every node caught up with the others.
struct History {
    group: GroupId,
    laptop: Node,
    phone: Node,
    luis: Node,
    /// A closed copy of the phone's home as the link left it: the epoch-1 keyring and
    /// no entries.
    phone_as_linked: PathBuf,
    /// Written by Luis after his removal, before his node heard of it.
    rogue: EntryId,
    /// Written by Dana after Luis's removal, under epoch 2.
    after: EntryId,
}

fn rate(n: u8, tag: &str) -> Vec<ContactField> {
    vec![
        ContactField::Rating(Rating::new(n).unwrap()),
        ContactField::Tag {
            tag: tag.into(),
            on: true,
        },
    ]
}

/// Hands every node everything every other holds, twice round.
fn sync_all(nodes: &mut [&mut Node], g: &GroupId) {
    for _ in 0..2 {
        for i in 0..nodes.len() {
            for j in 0..nodes.len() {
                if i != j {
                    let from = envelopes(nodes[i], g);
                    nodes[j].receive(g, from).unwrap();
                }
            }
        }
    }
}

fn history(dir: &Path) -> History {
    let mut laptop = init(dir, "dana-laptop");
    let g = laptop.create_group("JFK8 committee").unwrap();
    laptop
        .write(
            &g,
            Operation::CampaignSet {
                headcount: 8000,
                target_percent: 70,
            },
        )
        .unwrap();
    let phone = link(&mut laptop, dir, "dana-phone");
    drop(phone);
    let phone_as_linked = dir.join("phone-as-linked");
    copy_home(&dir.join("dana-phone"), &phone_as_linked);
    let mut phone = Node::open(&dir.join("dana-phone"), PASS).unwrap();
    sync(&laptop, &mut phone, &g);
    let mut luis = init(dir, "luis-laptop");
    join(&mut laptop, &mut luis, &g);

    // Contacts and notes on three devices.
    let ids: Vec<ContactId> = (0..9u8).map(|i| ContactId([i + 1; 16])).collect();
    for (i, id) in ids.iter().enumerate() {
        let w = match i % 3 {
            0 => &mut laptop,
            1 => &mut phone,
            _ => &mut luis,
        };
        let fields = vec![
            ContactField::Name(format!("Worker {i}")),
            ContactField::Department(["Outbound", "Inbound", "ICQA"][i % 3].into()),
            ContactField::Rating(Rating::new(i as u8 % 5 + 1).unwrap()),
        ];
        w.write(&g, set(*id, fields)).unwrap();
        w.write(&g, note(*id, "first talk")).unwrap();
    }
    sync_all(&mut [&mut laptop, &mut phone, &mut luis], &g);

    // Apart, the phone and Luis edit one contact.
    let rosa = ids[0];
    phone.write(&g, set(rosa, rate(2, "committee"))).unwrap();
    luis.write(&g, set(rosa, rate(4, "petition"))).unwrap();
    phone.write(&g, note(rosa, "will sign")).unwrap();
    luis.write(&g, note(rosa, "worried")).unwrap();
    assert_ne!(
        phone.state(&g).unwrap().state_hash(),
        luis.state(&g).unwrap().state_hash()
    );
    sync_all(&mut [&mut laptop, &mut phone, &mut luis], &g);

    // A notice, acknowledged by Luis and by Dana's phone.
    let notice = NoticeId([7; 16]);
    let content = NoticeContent {
        title: "Emergency committee meeting".into(),
        starts_at_ms: now_ms() + 7_200_000,
        place: "Union hall".into(),
        body: "bring the sheets".into(),
        urgent: true,
        expires_at_ms: None,
    };
    laptop
        .write(&g, Operation::NoticePosted { notice, content })
        .unwrap();
    sync_all(&mut [&mut laptop, &mut phone, &mut luis], &g);
    for n in [&mut luis, &mut phone] {
        n.write(&g, Operation::NoticeAcked { notice }).unwrap();
    }
    sync_all(&mut [&mut laptop, &mut phone, &mut luis], &g);
    let d = laptop.state(&g).unwrap().delivered(&notice).unwrap();
    assert_eq!((d.acked, d.total), (2, 2));

    // Dana removes Luis (epoch 2 to her two devices) and writes; Luis, not having
    // heard of it, writes too.
    assert_eq!(laptop.remove_member(&g, luis.identity()).unwrap(), 2);
    let after = laptop.write(&g, note(rosa, "after the removal")).unwrap();
    let rogue = luis.write(&g, note(rosa, "after being removed")).unwrap();
    sync_all(&mut [&mut laptop, &mut phone, &mut luis], &g);
    for n in [&laptop, &phone] {
        let state = n.state(&g).unwrap();
        assert_eq!(
            state.status(&rogue),
            Some(Outcome::Rejected(Reason::BeyondCut))
        );
        assert_eq!(state.status(&after), Some(Outcome::Applied));
    }
    assert_eq!(
        laptop.state(&g).unwrap().state_hash(),
        phone.state(&g).unwrap().state_hash()
    );
    History {
        group: g,
        laptop,
        phone,
        luis,
        phone_as_linked,
        rogue,
        after,
    }
}

#[test]
fn any_delivery_order_folds_to_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let h = history(dir.path());
    let g = h.group;
    let target = h.laptop.state(&g).unwrap().state_hash();
    let stored = h.laptop.store().entry_count(&g).unwrap();
    let mut all = envelopes(&h.laptop, &g);
    assert_eq!(all.len() as u64, stored);
    // Luis's node holds everything but what was sealed under epoch 2.
    assert!(!h.luis.state(&g).unwrap().contains(&h.after));

    let mut rng = rand::rng();
    for round in 0..4 {
        match round {
            0 => {}
            1 => all.reverse(),
            _ => all.shuffle(&mut rng),
        }
        // A fresh copy of the phone, holding only what the link gave it (epoch 1).
        let home = dir.path().join(format!("observer-{round}"));
        copy_home(&h.phone_as_linked, &home);
        let mut fresh = Node::open(&home, PASS).unwrap();
        assert_eq!(fresh.store().entry_count(&g).unwrap(), 0);
        // In pieces of 1 to 7 entries, each piece delivered twice.
        let mut rest = all.as_slice();
        let mut refused = 0;
        while !rest.is_empty() {
            let n = rand::random_range(1..=7usize).min(rest.len());
            let (piece, tail) = rest.split_at(n);
            let first = fresh.receive(&g, piece.to_vec()).unwrap();
            let again = fresh.receive(&g, piece.to_vec()).unwrap();
            assert_eq!(again.new, 0, "order {round}: a duplicate counted as new");
            assert!(again.opened.is_empty(), "order {round}: a duplicate opened");
            refused += first.refused + again.refused;
            rest = tail;
        }
        let state = fresh.state(&g).unwrap();
        assert_eq!(state.state_hash(), target, "order {round}");
        assert_eq!(fresh.store().entry_count(&g).unwrap(), stored);
        assert_eq!(refused, 0, "order {round}: an entry did not open");
        assert!(fresh.store().unopened(&g).unwrap().is_empty());
        assert_eq!(
            state.status(&h.rogue),
            Some(Outcome::Rejected(Reason::BeyondCut))
        );
        assert_eq!(fresh.keyring(&g).unwrap().current().unwrap().epoch(), 2);
        drop(fresh);
        let reopened = Node::open(&home, PASS).unwrap();
        assert_eq!(
            reopened.state(&g).unwrap().state_hash(),
            target,
            "order {round}, reopened"
        );
    }
}

#[test]
fn an_altered_or_foreign_entry_is_refused_and_harms_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = history(dir.path());
    let g = h.group;
    let hash = h.phone.state(&g).unwrap().state_hash();
    let stored = h.phone.store().entry_count(&g).unwrap();
    let bytes = envelopes(&h.laptop, &g).pop().unwrap();
    let id = EntryId::of_encoded(&bytes);

    // One ciphertext bit flipped: a new entry id, refused at the membership proof.
    let mut envelope = Envelope::decode(&bytes).unwrap();
    envelope.ciphertext[0] ^= 1;
    let altered = envelope.encode().unwrap();
    let received = h.phone.receive(&g, vec![altered.clone()]).unwrap();
    assert_eq!((received.opened.len(), received.refused), (0, 1));
    assert_eq!(
        h.phone.refused_counts().get("bad membership proof"),
        Some(&1)
    );
    assert!(
        !h.phone
            .store()
            .has_entry(&EntryId::of_encoded(&altered))
            .unwrap()
    );
    // Truncated bytes do not decode.
    let truncated = h
        .phone
        .receive(&g, vec![bytes[..bytes.len() - 1].to_vec()])
        .unwrap();
    assert_eq!(truncated.refused, 1);
    assert_eq!(h.phone.refused_counts().get("malformed envelope"), Some(&1));
    // An entry of another group, handed in for this one.
    let other = h.laptop.create_group("another committee").unwrap();
    let foreign = envelopes(&h.laptop, &other).pop().unwrap();
    assert_eq!(h.phone.receive(&g, vec![foreign]).unwrap().refused, 1);
    assert_eq!(h.phone.refused_counts().get("another group"), Some(&1));
    // The original is a duplicate; nothing changed.
    let again = h.phone.receive(&g, vec![bytes]).unwrap();
    assert_eq!((again.new, again.opened.len()), (0, 0));
    let state = h.phone.state(&g).unwrap();
    assert!(state.contains(&id));
    assert_eq!(state.state_hash(), hash);
    assert_eq!(h.phone.store().entry_count(&g).unwrap(), stored);

    // What Luis wrote after his removal opened (he was a member of epoch 1) but the
    // model gives it no effect: no note, on any node that knows of the removal.
    assert_eq!(
        state.status(&h.rogue),
        Some(Outcome::Rejected(Reason::BeyondCut))
    );
    assert!(!state.all_notes().any(|n| n.entry == h.rogue));
    assert!(
        !(h.laptop.state(&g).unwrap().all_notes()).any(|n| n.entry == h.rogue),
        "the laptop kept the removed member's note"
    );
}

#[test]
fn a_fresh_crypto_pass_over_the_store_agrees_with_its_fold() {
    let dir = tempfile::tempdir().unwrap();
    let h = history(dir.path());
    let g = h.group;
    for (label, node) in [
        ("laptop", &h.laptop),
        ("phone", &h.phone),
        ("luis", &h.luis),
    ] {
        let check = node.reverify(&g).unwrap();
        let state = node.state(&g).unwrap();
        assert_eq!(check.state_hash, state.state_hash(), "{label}");
        assert_eq!(
            (check.opened + check.unreadable) as u64,
            node.store().entry_count(&g).unwrap(),
            "{label}"
        );
    }
    // Dana's devices open everything. Luis's node was handed the entry sealed under
    // epoch 2 (as a relay or a copied disk would hand it): it holds the ciphertext and
    // cannot open it, in the store's fold or in a fresh pass.
    assert_eq!(h.phone.reverify(&g).unwrap().unreadable, 0);
    let unopened = h.luis.store().unopened(&g).unwrap();
    assert_eq!(
        unopened.iter().map(|e| (e.id, e.epoch)).collect::<Vec<_>>(),
        vec![(h.after, 2)]
    );
    assert_eq!(h.luis.reverify(&g).unwrap().unreadable, 1);
    assert!(h.luis.state(&g).unwrap().status(&h.after).is_none());
    assert!(h.luis.keyring(&g).unwrap().candidates(2).is_empty());

    // Reopened from disk (the fold of the stored bodies, no cryptography), the laptop
    // still agrees with a full pass.
    drop(h.laptop);
    let laptop = Node::open(&dir.path().join("dana-laptop"), PASS).unwrap();
    let check = laptop.reverify(&g).unwrap();
    assert_eq!(check.state_hash, laptop.state(&g).unwrap().state_hash());
    assert_eq!(check.unreadable, 0);
}
