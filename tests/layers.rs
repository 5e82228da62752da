//! The layers together, offline: seal (crypto) → store (SQLCipher) → reopen → open and
//! verify (crypto) → fold (model), with catch-up through real `caucus_sync` sessions.
//!
//! The same story as `examples/campaign_tour.rs`, with assertions only and a seeded RNG:
//! a committee founded, a phone linked, a member invited; a partition healed; every
//! replica, and fresh replicas fed the entries in any order and in pieces, at one state
//! hash; a removed member locked out of what is written after; nothing readable on disk;
//! an altered entry refused without harm.

#![allow(clippy::unwrap_used)]

mod support;

use caucus::crypto::at_rest::KdfParams;
use caucus::crypto::delivery::{Recipient, deliver_epoch};
use caucus::crypto::invite::{History, InviteTicket, Joiner, accept_join};
use caucus::crypto::link::{LinkHost, LinkNewDevice, PairingCode};
use caucus::crypto::{DeviceKeys, EpochSecret, IdentityKeypair, Keyring, OpenError};
use caucus::model::Reason;
use caucus::proto::{
    ContactField, ContactId, EntryId, Envelope, GroupId, Note, NoticeContent, NoticeId, Operation,
    Rating, Role,
};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use std::cell::Cell;
use std::collections::BTreeSet;
use support::{AtRest, Replica, scan_for, sync};
use tempfile::TempDir;
use zeroize::Zeroizing;

/// 2026-11-25 08:00 UTC.
const BASE_MS: u64 = 1_795_593_600_000;
/// Planted in a contact name, a note and a notice.
const MARKER: &str = "CANARY-QX7";

const AT_REST: AtRest = AtRest {
    passphrase: b"test passphrase",
    params: KdfParams::insecure_for_tests(),
};

/// A scenario clock: one second per reading.
struct Clock(Cell<u64>);

impl Clock {
    fn now(&self) -> u64 {
        self.0.set(self.0.get() + 1_000);
        self.0.get()
    }
}

/// Dana (laptop + phone) and Luis (laptop), in one group, all in sync.
struct Committee {
    homes: TempDir,
    rng: ChaCha20Rng,
    clock: Clock,
    group: GroupId,
    luis: IdentityKeypair,
    laptop: Replica,
    phone: Replica,
    luis_laptop: Replica,
    /// The phone's device keys and its keyring as linked (epoch 1 only): enough to build
    /// fresh replicas of the phone that learn everything else from entries.
    phone_secrets: (Zeroizing<Vec<u8>>, Zeroizing<Vec<u8>>),
}

fn id16(rng: &mut ChaCha20Rng) -> [u8; 16] {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b
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

fn set(contact: ContactId, fields: Vec<ContactField>) -> Operation {
    Operation::ContactSet { contact, fields }
}

fn rating(n: u8) -> ContactField {
    ContactField::Rating(Rating::new(n).unwrap())
}

fn assert_same(replicas: &[&Replica]) {
    for r in replicas {
        assert_eq!(
            r.state_hash(),
            replicas[0].state_hash(),
            "{} and {} differ",
            r.label,
            replicas[0].label
        );
    }
}

/// Founding, linking the phone with a pairing code, inviting Luis with a ticket.
fn committee(seed: u64) -> Committee {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let r = &mut rng;
    let clock = Clock(Cell::new(BASE_MS));
    let homes = tempfile::tempdir().unwrap();

    let dana = IdentityKeypair::generate(r);
    let laptop_keys = DeviceKeys::generate(dana.public(), r);
    let cert = dana.certify(&laptop_keys.public(), "laptop").unwrap();
    let group = GroupId(id16(r));
    let mut ring = Keyring::new(group);
    ring.insert(1, EpochSecret::generate(r)).unwrap();
    let home = homes.path().join("dana-laptop");
    let mut laptop = Replica::create(
        "dana-laptop",
        &home,
        laptop_keys,
        ring,
        dana.public(),
        &AT_REST,
        r,
    )
    .unwrap();
    for op in [
        Operation::DeviceLinked { cert },
        Operation::GroupNamed {
            name: "JFK8 committee".into(),
        },
        Operation::CampaignSet {
            headcount: 8000,
            target_percent: 70,
        },
    ] {
        laptop.write(op, clock.now(), r).unwrap();
    }

    // The phone: pairing code typed on the phone, link handshake, recorded by the laptop.
    let code = PairingCode::generate(r);
    let phone_keys = DeviceKeys::generate_unlinked(r);
    let typed = PairingCode::parse(&code.reveal().to_lowercase()).unwrap();
    let (waiting, request) = LinkNewDevice::start(&typed, &phone_keys, "phone", r).unwrap();
    let (issued, grant) = LinkHost::new(&code, r)
        .unwrap()
        .respond(&request, &dana, &[&laptop.keyring])
        .unwrap();
    let linked = waiting.finish(&grant).unwrap();
    assert_eq!(issued.cert, linked.cert);
    assert_eq!(linked.identity, dana.public());
    let phone_keys = phone_keys.with_identity(linked.identity);
    let phone_ring = linked.keyrings.into_iter().next().unwrap();
    let phone_secrets = (
        phone_keys.to_secret_bytes(),
        phone_ring.to_secret_bytes().unwrap(),
    );
    let home = homes.path().join("dana-phone");
    let mut phone = Replica::create(
        "dana-phone",
        &home,
        phone_keys,
        phone_ring,
        dana.public(),
        &AT_REST,
        r,
    )
    .unwrap();
    // Dana's laptop records the phone (only an identity's first device introduces
    // itself), and the phone learns of it by sync.
    let linked_entry = laptop
        .write(
            Operation::DeviceLinked { cert: linked.cert },
            clock.now(),
            r,
        )
        .unwrap();
    sync(&mut laptop, &mut phone).unwrap();
    assert!(laptop.state().contains(&linked_entry));
    assert_same(&[&laptop, &phone]);

    // Luis: ticket as text, join handshake, the join recorded by Dana.
    let ticket = InviteTicket::create(group, Vec::new(), BASE_MS + 86_400_000, r).unwrap();
    let luis = IdentityKeypair::generate(r);
    let luis_keys = DeviceKeys::generate(luis.public(), r);
    let luis_cert = luis.certify(&luis_keys.public(), "laptop").unwrap();
    let parsed = InviteTicket::parse(&ticket.to_text().unwrap()).unwrap();
    let (joiner, hello) = Joiner::start(&parsed, &luis_cert, "Luis", clock.now(), r).unwrap();
    let (accepted, welcome) = accept_join(
        &hello,
        &ticket,
        clock.now(),
        &BTreeSet::new(),
        &laptop.keyring,
        History::Full,
        r,
    )
    .unwrap();
    let luis_ring = joiner.finish(&welcome).unwrap();
    for op in accepted.operations(Role::Organizer) {
        laptop.write(op, clock.now(), r).unwrap();
    }
    let home = homes.path().join("luis-laptop");
    let mut luis_laptop = Replica::create(
        "luis-laptop",
        &home,
        luis_keys,
        luis_ring,
        dana.public(),
        &AT_REST,
        r,
    )
    .unwrap();
    sync(&mut laptop, &mut luis_laptop).unwrap();
    sync(&mut laptop, &mut phone).unwrap();
    assert_same(&[&laptop, &phone, &luis_laptop]);
    assert!(luis_laptop.state().is_member(&luis.public()));
    assert_eq!(laptop.state().current_devices().count(), 3);

    Committee {
        homes,
        rng,
        clock,
        group,
        luis,
        laptop,
        phone,
        luis_laptop,
        phone_secrets,
    }
}

/// Contacts on three devices, a partition with concurrent edits, the heal; then a
/// notice, and Luis's removal with a note written after it. Returns every note's entry
/// id and the id of the note written after the removal.
fn campaign(c: &mut Committee) -> (Vec<EntryId>, EntryId) {
    let r = &mut c.rng;
    let clock = &c.clock;
    let mut ids = Vec::new();
    let mut notes = Vec::new();
    for i in 0..9u8 {
        let id = ContactId(id16(r));
        ids.push(id);
        let dept = ["Outbound", "Inbound", "ICQA"][usize::from(i % 3)];
        let name = if i == 0 {
            format!("Rosa {MARKER}")
        } else {
            format!("Worker {i}")
        };
        let fields = vec![
            ContactField::Name(name),
            ContactField::Department(dept.into()),
            ContactField::Shift(if i < 5 { "nights" } else { "days" }.into()),
            rating(i % 5 + 1),
        ];
        let w = match i % 3 {
            0 => &mut c.laptop,
            1 => &mut c.phone,
            _ => &mut c.luis_laptop,
        };
        w.write(set(id, fields), clock.now(), r).unwrap();
        notes.push(w.write(note(id, "first talk"), clock.now(), r).unwrap());
    }
    sync(&mut c.laptop, &mut c.phone).unwrap();
    sync(&mut c.laptop, &mut c.luis_laptop).unwrap();
    sync(&mut c.laptop, &mut c.phone).unwrap();
    assert_same(&[&c.laptop, &c.phone, &c.luis_laptop]);

    // Partition: the phone and Luis edit one contact concurrently, at the same instant.
    let rosa = ids[0];
    let t = clock.now();
    c.phone
        .write(set(rosa, vec![rating(2), tag("committee")]), t, r)
        .unwrap();
    c.luis_laptop
        .write(set(rosa, vec![rating(4), tag("petition")]), t, r)
        .unwrap();
    notes.push(c.phone.write(note(rosa, MARKER), t, r).unwrap());
    notes.push(c.luis_laptop.write(note(rosa, "worried"), t, r).unwrap());
    assert_ne!(c.phone.state_hash(), c.luis_laptop.state_hash());
    sync(&mut c.phone, &mut c.luis_laptop).unwrap();
    sync(&mut c.laptop, &mut c.phone).unwrap();
    assert_same(&[&c.laptop, &c.phone, &c.luis_laptop]);
    for replica in [&c.laptop, &c.phone, &c.luis_laptop] {
        let held: BTreeSet<EntryId> = replica.state().all_notes().map(|n| n.entry).collect();
        assert!(
            notes.iter().all(|n| held.contains(n)),
            "{} lost a note",
            replica.label
        );
        let contact = replica.state().contact(&rosa).unwrap();
        assert!(contact.has_tag("committee") && contact.has_tag("petition"));
    }

    // An urgent notice, acknowledged by Luis and by Dana's phone.
    let notice = NoticeId(id16(r));
    let content = NoticeContent {
        title: "Emergency committee meeting".into(),
        starts_at_ms: BASE_MS + 7_200_000,
        place: "Union hall".into(),
        body: MARKER.into(),
        urgent: true,
        expires_at_ms: None,
    };
    c.laptop
        .write(Operation::NoticePosted { notice, content }, clock.now(), r)
        .unwrap();
    sync(&mut c.laptop, &mut c.luis_laptop).unwrap();
    sync(&mut c.laptop, &mut c.phone).unwrap();
    for w in [&mut c.luis_laptop, &mut c.phone] {
        w.write(Operation::NoticeAcked { notice }, clock.now(), r)
            .unwrap();
        sync(&mut c.laptop, w).unwrap();
    }
    let delivered = c.laptop.state().delivered(&notice).unwrap();
    assert_eq!((delivered.acked, delivered.total), (2, 2));

    // Dana removes Luis and delivers epoch 2 to the remaining devices.
    let luis = c.luis.public();
    c.laptop
        .write(
            Operation::MemberRemoved {
                member: luis,
                cuts: c.laptop.state().cuts_of(&luis),
            },
            clock.now(),
            r,
        )
        .unwrap();
    let recipients: Vec<Recipient> = c
        .laptop
        .state()
        .current_devices()
        .map(|d| Recipient {
            device: d.device,
            dh: d.dh,
        })
        .collect();
    assert_eq!(recipients.len(), 2, "Dana's two devices");
    let author = c.laptop.device.device_key();
    let op = deliver_epoch(
        &c.group,
        2,
        &EpochSecret::generate(r),
        &author,
        &recipients,
        r,
    )
    .unwrap();
    c.laptop.write(op, clock.now(), r).unwrap();
    assert_eq!(c.laptop.keyring.current().unwrap().epoch(), 2);
    let after = c
        .laptop
        .write(note(rosa, "after the removal"), clock.now(), r)
        .unwrap();
    notes.push(after);
    sync(&mut c.laptop, &mut c.phone).unwrap();
    sync(&mut c.laptop, &mut c.luis_laptop).unwrap();
    assert_same(&[&c.laptop, &c.phone]);
    (notes, after)
}

fn tag(tag: &str) -> ContactField {
    ContactField::Tag {
        tag: tag.into(),
        on: true,
    }
}

#[test]
fn partition_heals_and_a_removed_member_is_locked_out() {
    let mut c = committee(1);
    let (notes, after) = campaign(&mut c);

    // The phone reads the note written after the removal; Luis's device holds its
    // ciphertext and cannot open it, and was not sent the new epoch.
    assert!(c.phone.state().all_notes().any(|n| n.entry == after));
    assert_eq!(
        c.luis_laptop.pending_error(&after),
        Some(&OpenError::UnknownEpoch { epoch: 2 })
    );
    assert!(c.luis_laptop.not_for_me().contains(&2));
    assert!(c.luis_laptop.keyring.get(2).is_none());
    assert!(!c.luis_laptop.state().all_notes().any(|n| n.entry == after));
    assert!(!c.luis_laptop.state().is_member(&c.luis.public()));
    assert_eq!(c.laptop.state().all_notes().count(), notes.len());
    for r in [&c.laptop, &c.phone, &c.luis_laptop] {
        assert!(r.refused().is_empty(), "{} refused entries", r.label);
    }
}

#[test]
fn stores_reopen_to_the_same_state_and_hold_nothing_readable() {
    let mut c = committee(2);
    let (_, after) = campaign(&mut c);
    let hashes: Vec<[u8; 32]> = [&c.laptop, &c.phone, &c.luis_laptop]
        .iter()
        .map(|r| r.state_hash())
        .collect();
    let counts: Vec<u64> = [&c.laptop, &c.phone, &c.luis_laptop]
        .iter()
        .map(|r| r.stored().unwrap())
        .collect();
    assert!(c.laptop.state().contacts().any(|x| x.name.contains(MARKER)));
    let homes: Vec<_> = [&c.laptop, &c.phone, &c.luis_laptop]
        .iter()
        .map(|r| (r.label, r.home().to_owned()))
        .collect();
    for r in [c.laptop, c.phone, c.luis_laptop] {
        r.close(&AT_REST, &mut c.rng).unwrap();
    }

    let (files, bytes, hits) = scan_for(c.homes.path(), MARKER.as_bytes()).unwrap();
    assert!(
        files >= 6 && bytes > 0,
        "scanned {files} files, {bytes} bytes"
    );
    assert_eq!(hits, 0, "marker found in plaintext on disk");
    // The scanner does find a plaintext marker.
    let control = tempfile::tempdir().unwrap();
    std::fs::write(control.path().join("plain"), format!("x{MARKER}y")).unwrap();
    assert_eq!(scan_for(control.path(), MARKER.as_bytes()).unwrap().2, 1);

    for (((label, home), hash), count) in homes.into_iter().zip(hashes).zip(counts) {
        let r = Replica::reopen(label, &home, &AT_REST).unwrap();
        assert_eq!(r.stored().unwrap(), count, "{label}");
        // The store's fold of its bodies, its views, and a fresh crypto pass over every
        // envelope all agree with the state before closing.
        assert_eq!(r.state_hash(), hash, "{label} folds to another state");
        let group = r.keyring.group();
        let mut contacts: Vec<caucus_store::ContactRow> = r
            .state()
            .contacts()
            .chain(r.state().removed_contacts())
            .map(caucus_store::ContactRow::from_model)
            .collect();
        contacts.sort_by_key(|c| c.id);
        assert_eq!(
            r.store().all_contacts(&group).unwrap(),
            contacts,
            "{label} views"
        );
        assert_eq!(
            r.store().all_notes(&group).unwrap().len(),
            r.state().all_notes().count(),
            "{label} note views"
        );
        assert_eq!(r.reverify().unwrap().1, hash, "{label} re-opened");
        assert_eq!(
            r.store().workplace_map(&group).unwrap(),
            r.state().workplace_map()
        );
    }
    // Luis's device kept the note written after his removal as ciphertext only.
    let luis =
        Replica::reopen("luis-laptop", &c.homes.path().join("luis-laptop"), &AT_REST).unwrap();
    assert_eq!(
        luis.pending_error(&after),
        Some(&OpenError::UnknownEpoch { epoch: 2 })
    );
    let wrong = AtRest {
        passphrase: b"wrong",
        ..AT_REST
    };
    assert!(Replica::reopen("dana-phone", &c.homes.path().join("dana-phone"), &wrong).is_err());
}

#[test]
fn any_delivery_order_folds_to_the_same_state() {
    let mut c = committee(3);
    campaign(&mut c);
    let target = c.laptop.state_hash();
    let stored = c.laptop.stored().unwrap();
    let mut envelopes = c.laptop.envelopes().unwrap();
    assert_eq!(envelopes.len() as u64, stored);

    for round in 0..4 {
        match round {
            0 => {}
            1 => envelopes.reverse(),
            _ => envelopes.shuffle(&mut c.rng),
        }
        // A fresh copy of the phone, holding only what the link gave it (epoch 1).
        let device = DeviceKeys::from_secret_bytes(&c.phone_secrets.0).unwrap();
        let ring = Keyring::from_secret_bytes(&c.phone_secrets.1).unwrap();
        let home = c.homes.path().join(format!("observer-{round}"));
        let founder = c.laptop.state().founder();
        let mut fresh = Replica::create(
            "observer", &home, device, ring, founder, &AT_REST, &mut c.rng,
        )
        .unwrap();
        // In pieces of 1 to 7 entries, each piece delivered twice.
        let mut rest = envelopes.as_slice();
        while !rest.is_empty() {
            let n = (c.rng.next_u32() % 7 + 1) as usize;
            let (piece, tail) = rest.split_at(n.min(rest.len()));
            fresh.receive(piece.to_vec()).unwrap();
            fresh.receive(piece.to_vec()).unwrap();
            rest = tail;
        }
        assert_eq!(fresh.state_hash(), target, "order {round}");
        assert_eq!(fresh.stored().unwrap(), stored, "order {round}");
        assert!(fresh.refused().is_empty());
        assert_eq!(fresh.keyring.current().unwrap().epoch(), 2);
        fresh.close(&AT_REST, &mut c.rng).unwrap();
        let reopened = Replica::reopen("observer", &home, &AT_REST).unwrap();
        assert_eq!(reopened.state_hash(), target, "order {round}, reopened");
    }
}

#[test]
fn an_altered_or_foreign_entry_is_refused_and_harms_nothing() {
    let mut c = committee(4);
    campaign(&mut c);
    let hash = c.phone.state_hash();
    let stored = c.phone.stored().unwrap();
    let bytes = c.laptop.envelopes().unwrap().pop().unwrap();
    let id = EntryId::of_encoded(&bytes);

    // One ciphertext bit flipped: a new entry id, refused at the membership proof.
    let mut envelope = Envelope::decode(&bytes).unwrap();
    envelope.ciphertext[0] ^= 1;
    let altered = envelope.encode().unwrap();
    let received = c.phone.receive([altered.clone()]).unwrap();
    assert_eq!((received.opened, received.refused), (0, 1));
    assert_eq!(
        c.phone.refused().get(&EntryId::of_encoded(&altered)),
        Some(&OpenError::BadProof)
    );
    // Truncated bytes do not decode.
    c.phone
        .receive([bytes[..bytes.len() - 1].to_vec()])
        .unwrap();
    assert_eq!(c.phone.refused().len(), 2);
    // The original is a duplicate; nothing changed.
    assert_eq!(c.phone.receive([bytes]).unwrap().opened, 0);
    assert!(c.phone.state().contains(&id));
    assert_eq!(c.phone.state_hash(), hash);
    assert_eq!(c.phone.stored().unwrap(), stored);

    // An entry Luis seals after his removal with the epoch-1 key he kept opens (he was a
    // member of epoch 1) but the model gives it no effect.
    let r = &mut c.rng;
    let keys = c.luis_laptop.keyring.get(1).unwrap();
    let op = note(ContactId([9; 16]), "after being removed");
    let chain = (c.luis_laptop.state()).next_chain(&c.luis_laptop.device.device_key(), &op);
    let rogue = caucus::crypto::seal(
        &c.group,
        keys,
        &c.luis_laptop.device,
        chain,
        caucus::proto::Hlc {
            wall_ms: c.clock.now(),
            counter: 0,
        },
        op,
        r,
    )
    .unwrap()
    .encode()
    .unwrap();
    let rogue_id = EntryId::of_encoded(&rogue);
    c.phone.receive([rogue]).unwrap();
    assert_eq!(
        c.phone.state().status(&rogue_id),
        Some(caucus::model::Outcome::Rejected(Reason::BeyondCut))
    );
    assert!(!c.phone.state().all_notes().any(|n| n.entry == rogue_id));
}
