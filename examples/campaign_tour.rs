//! The campaign so far, told by the layers that exist today: `cargo run --example campaign_tour`.
//!
//! **Offline, in one process.** There is no network yet: three replicas (Dana's laptop,
//! Dana's phone, Luis's laptop) each have their own encrypted store in a temporary home,
//! and "sync" runs two real `caucus_sync::Session`s whose frames are handed across as
//! byte vectors. Handshakes (linking a phone, joining with an invite) run their real
//! Noise messages the same way. Every received entry is opened and verified by
//! `caucus-crypto` before the model folds it.
//!
//! Each step prints one line with its wall time; any failed check ends the process with
//! a one-line reason and a non-zero exit status.

#[path = "../tests/support/mod.rs"]
mod support;

use anyhow::{Context, Result, ensure};
use caucus::crypto::delivery::{Recipient, deliver_epoch};
use caucus::crypto::invite::{History, InviteTicket, Joiner, accept_join};
use caucus::crypto::link::{LinkHost, LinkNewDevice, PairingCode};
use caucus::crypto::{DeviceKeys, EpochSecret, IdentityKeypair, Keyring, OpenError};
use caucus::model::{RatingCounts, WorkplaceMap};
use caucus::proto::{
    ContactField, ContactId, GroupId, Note, NoticeContent, NoticeId, Operation, Rating, Role,
};
use rand_core::CryptoRng;
use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use support::{AtRest, Replica, scan_for, sync, tour_kdf};

/// Planted in a contact name, a note and the notice; must never be found on disk.
const MARKER: &str = "CANARY-QX7";
/// One hour in milliseconds.
const HOUR: u64 = 3_600_000;

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

fn main() -> ExitCode {
    match run() {
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn random16(rng: &mut impl CryptoRng) -> [u8; 16] {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b
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

fn all_same(replicas: [&Replica; 3]) -> Result<String> {
    let h = replicas[0].state_hash();
    for r in &replicas[1..] {
        ensure!(
            r.state_hash() == h,
            "{} disagrees with {}",
            r.label,
            replicas[0].label
        );
    }
    Ok(h[..4].iter().map(|b| format!("{b:02x}")).collect())
}

fn run() -> Result<()> {
    let mut rng = rand::rng();
    let rng = &mut rng;
    let at_rest = AtRest {
        passphrase: b"correct horse battery staple",
        params: tour_kdf()?,
    };
    let homes = tempfile::Builder::new().prefix("caucus-tour-").tempdir()?;
    println!("caucus campaign tour: offline, one process, three devices in temporary homes");
    println!("(sync = two real sync sessions passing bytes in memory; no network yet)\n");
    let mut steps = Steps(Instant::now());

    // 1. Dana founds the group.
    let dana = IdentityKeypair::generate(rng);
    let laptop_keys = DeviceKeys::generate(dana.public(), rng);
    let laptop_cert = dana.certify(&laptop_keys.public(), "laptop")?;
    let group = GroupId(random16(rng));
    let mut ring = Keyring::new(group);
    ring.insert(1, EpochSecret::generate(rng))?;
    let home = homes.path().join("dana-laptop");
    let mut laptop = Replica::create(
        "dana-laptop",
        &home,
        laptop_keys,
        ring,
        dana.public(),
        &at_rest,
        rng,
    )?;
    laptop.write(Operation::DeviceLinked { cert: laptop_cert }, now_ms(), rng)?;
    let name = "JFK8 committee";
    laptop.write(Operation::GroupNamed { name: name.into() }, now_ms(), rng)?;
    let campaign = Operation::CampaignSet {
        headcount: 8000,
        target_percent: 70,
    };
    laptop.write(campaign, now_ms(), rng)?;
    ensure!(
        laptop.state().group_name() == Some(name),
        "group name not folded"
    );
    steps.line(format!(
        "1. Dana founds \"{name}\": identity + laptop, epoch 1 key, campaign 8000 workers / target 70%"
    ));

    // 2. Dana links her phone with a pairing code.
    let code = PairingCode::generate(rng);
    let phone_keys = DeviceKeys::generate_unlinked(rng);
    let typed = PairingCode::parse(&code.reveal())?;
    let (waiting, request) = LinkNewDevice::start(&typed, &phone_keys, "phone", rng)?;
    let host = LinkHost::new(&code, rng)?;
    let (_issued, grant) = host.respond(&request, &dana, &[&laptop.keyring])?;
    let linked = waiting.finish(&grant)?;
    let phone_keys = phone_keys.with_identity(linked.identity);
    let phone_ring = linked
        .keyrings
        .into_iter()
        .next()
        .context("no keyring in the grant")?;
    let home = homes.path().join("dana-phone");
    let mut phone = Replica::create(
        "dana-phone",
        &home,
        phone_keys,
        phone_ring,
        dana.public(),
        &at_rest,
        rng,
    )?;
    // The laptop records the phone: only an identity's first device introduces itself.
    laptop.write(Operation::DeviceLinked { cert: linked.cert }, now_ms(), rng)?;
    let s = sync(&mut laptop, &mut phone)?;
    ensure!(
        laptop.state_hash() == phone.state_hash(),
        "phone and laptop differ after linking"
    );
    steps.line(format!(
        "2. Dana's laptop shows pairing code {}; the phone types it, Noise NNpsk0 hands over cert + keyring ({} + {} bytes); the laptop's DeviceLinked for the phone synced ({} bytes)",
        &*code.reveal(), request.len(), grant.len(), s.bytes
    ));

    // 3. Dana invites Luis.
    let ticket = InviteTicket::create(group, Vec::new(), now_ms() + 48 * HOUR, rng)?;
    let text = ticket.to_text()?;
    let luis = IdentityKeypair::generate(rng);
    let luis_keys = DeviceKeys::generate(luis.public(), rng);
    let luis_cert = luis.certify(&luis_keys.public(), "laptop")?;
    let (joiner, hello) = Joiner::start(
        &InviteTicket::parse(&text)?,
        &luis_cert,
        "Luis",
        now_ms(),
        rng,
    )?;
    let (accepted, welcome) = accept_join(
        &hello,
        &ticket,
        now_ms(),
        &BTreeSet::new(),
        &laptop.keyring,
        History::Full,
        rng,
    )?;
    let luis_ring = joiner.finish(&welcome)?;
    for op in accepted.operations(Role::Organizer) {
        laptop.write(op, now_ms(), rng)?;
    }
    let home = homes.path().join("luis-laptop");
    // The founder is not in the ticket or the welcome: Luis's node is told out of band.
    let mut luis_laptop = Replica::create(
        "luis-laptop",
        &home,
        luis_keys,
        luis_ring,
        dana.public(),
        &at_rest,
        rng,
    )?;
    let s = sync(&mut laptop, &mut luis_laptop)?;
    ensure!(
        luis_laptop.state().is_member(&luis.public()),
        "Luis is not a member on his own device"
    );
    steps.line(format!(
        "3. Dana invites Luis (organizer); join handshake {} + {} bytes; MemberAdded + DeviceLinked synced to Luis ({} entries, {} bytes)",
        hello.len(), welcome.len(), s.entries, s.bytes
    ));
    println!("            ticket: {}", &*text);

    // 4. Contacts and notes on three devices, then a partition.
    let mut ids = Vec::new();
    let mut notes = Vec::new();
    for (i, (name, dept, shift, rating, by)) in CONTACTS.iter().enumerate() {
        let id = ContactId(random16(rng));
        ids.push(id);
        let writer = match by {
            0 => &mut laptop,
            1 => &mut phone,
            _ => &mut luis_laptop,
        };
        let fields = contact(name, dept, shift, *rating)?;
        writer.write(
            Operation::ContactSet {
                contact: id,
                fields,
            },
            now_ms(),
            rng,
        )?;
        if i % 3 == 0 {
            notes.push(writer.write(
                note(id, format!("talked at the break room, follow up #{i}")),
                now_ms(),
                rng,
            )?);
        }
    }
    let a = sync(&mut laptop, &mut phone)?;
    let b = sync(&mut laptop, &mut luis_laptop)?;
    let c = sync(&mut laptop, &mut phone)?;
    all_same([&laptop, &phone, &luis_laptop])?;
    steps.line(format!(
        "4. {} contacts and {} notes written on 3 devices; synced laptop<->phone<->Luis ({} bytes)",
        CONTACTS.len(),
        notes.len(),
        a.bytes + b.bytes + c.bytes
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
    phone.write(rate(2, "committee")?, now_ms(), rng)?;
    luis_laptop.write(rate(4, "petition")?, now_ms(), rng)?;
    notes.push(phone.write(
        note(rosa, format!("{MARKER}: will sign, wants a shift meeting")),
        now_ms(),
        rng,
    )?);
    notes.push(luis_laptop.write(
        note(rosa, "worried about retaliation".into()),
        now_ms(),
        rng,
    )?);
    ensure!(
        phone.state_hash() != luis_laptop.state_hash(),
        "partitioned replicas should differ"
    );
    steps.line(
        "   partition: Dana's phone and Luis both rate one contact, tag it and add a note, offline",
    );
    let a = sync(&mut phone, &mut luis_laptop)?;
    let b = sync(&mut laptop, &mut phone)?;
    let hash = all_same([&laptop, &phone, &luis_laptop])?;
    for r in [&laptop, &phone, &luis_laptop] {
        ensure!(
            notes
                .iter()
                .all(|n| r.state().all_notes().any(|x| x.entry == *n)),
            "{} lost a note",
            r.label
        );
    }
    let c = laptop.state().contact(&rosa).context("contact missing")?;
    ensure!(
        c.has_tag("committee") && c.has_tag("petition"),
        "a concurrent tag was lost"
    );
    let rating = c.rating.map_or(0, Rating::get);
    steps.line(format!(
        "   reconciled phone<->Luis ({} bytes, {} entries) then laptop<->phone ({} bytes): all 3 at state {hash}…, {} notes kept, both tags, rating {rating} (last writer)",
        a.bytes, a.entries, b.bytes, notes.len()
    ));

    // 5. An urgent notice, acknowledged.
    let notice = NoticeId(random16(rng));
    let content = NoticeContent {
        title: "Emergency committee meeting".into(),
        starts_at_ms: now_ms() + 2 * HOUR,
        place: "Union hall, room 2".into(),
        body: format!("Bring the petition sheets. {MARKER}"),
        urgent: true,
        expires_at_ms: Some(now_ms() + 6 * HOUR),
    };
    laptop.write(Operation::NoticePosted { notice, content }, now_ms(), rng)?;
    sync(&mut laptop, &mut phone)?;
    sync(&mut laptop, &mut luis_laptop)?;
    luis_laptop.write(Operation::NoticeAcked { notice }, now_ms(), rng)?;
    sync(&mut laptop, &mut luis_laptop)?;
    let first = laptop
        .state()
        .delivered(&notice)
        .context("notice unknown")?;
    phone.write(Operation::NoticeAcked { notice }, now_ms(), rng)?;
    sync(&mut laptop, &mut phone)?;
    let then = laptop
        .state()
        .delivered(&notice)
        .context("notice unknown")?;
    ensure!(then.acked == then.total, "not every member acknowledged");
    steps.line(format!(
        "5. Dana (admin) posts an urgent notice; Luis acks: delivered to {} of {} members; Dana's phone acks: {} of {}",
        first.acked, first.total, then.acked, then.total
    ));

    // 6. Dana removes Luis and moves the group to epoch 2.
    laptop.write(
        Operation::MemberRemoved {
            member: luis.public(),
            cuts: laptop.state().cuts_of(&luis.public()),
        },
        now_ms(),
        rng,
    )?;
    let recipients: Vec<Recipient> = laptop
        .state()
        .current_devices()
        .map(|c| Recipient {
            device: c.device,
            dh: c.dh,
        })
        .collect();
    let secret = EpochSecret::generate(rng);
    let delivery = deliver_epoch(
        &group,
        2,
        &secret,
        &laptop.device.device_key(),
        &recipients,
        rng,
    )?;
    laptop.write(delivery, now_ms(), rng)?;
    ensure!(
        laptop.keyring.current().map(|k| k.epoch()) == Some(2),
        "laptop did not move to epoch 2"
    );
    let after = laptop.write(
        note(rosa, "organizing committee meets Thursday".into()),
        now_ms(),
        rng,
    )?;
    sync(&mut laptop, &mut phone)?;
    // The sync hello accepts any proof today, so Luis's device still fetches the
    // ciphertext, as a relay or a copied disk would hand it to him.
    sync(&mut laptop, &mut luis_laptop)?;
    ensure!(
        phone.state().all_notes().any(|n| n.entry == after),
        "phone cannot read epoch 2"
    );
    let locked = luis_laptop.pending_error(&after);
    ensure!(
        locked == Some(&OpenError::UnknownEpoch { epoch: 2 }),
        "Luis's device: {locked:?}"
    );
    ensure!(
        luis_laptop.not_for_me().contains(&2),
        "Luis's device was sent epoch 2"
    );
    steps.line(format!(
        "6. Dana removes Luis: epoch 2 sealed to {} devices (Noise N); Luis's device holds the new note's ciphertext and cannot open it: \"{}\"",
        recipients.len(),
        OpenError::UnknownEpoch { epoch: 2 }
    ));

    // 7. At rest: close every store, scan the disk, reopen one.
    ensure!(
        laptop.state().contacts().any(|c| c.name.contains(MARKER)),
        "marker not planted"
    );
    let before = phone.state_hash();
    let counts: Vec<u64> = [&laptop, &phone, &luis_laptop]
        .iter()
        .map(|r| r.stored())
        .collect::<Result<_>>()?;
    let phone_home = phone.home().to_owned();
    for r in [laptop, phone, luis_laptop] {
        r.close(&at_rest, rng)?;
    }
    let (files, bytes, hits) = scan_for(homes.path(), MARKER.as_bytes())?;
    ensure!(hits == 0, "{hits} plaintext hits of the marker on disk");
    steps.line(format!(
        "7. entries stored (SQLCipher, one home each): laptop {}, phone {}, Luis {} (1 unreadable to him); closed; scanned {files} files, {bytes} bytes for \"{MARKER}\": 0 hits",
        counts[0], counts[1], counts[2]
    ));
    let phone = Replica::reopen("dana-phone", &phone_home, &at_rest)?;
    let group = phone.keyring.group();
    let (opened, reverified) = phone.reverify()?;
    ensure!(
        phone.state_hash() == before,
        "reopened phone folds to another state"
    );
    ensure!(
        reverified == before,
        "re-opened envelopes fold to another state"
    );
    ensure!(
        phone.store().all_contacts(&group)?.len()
            == phone.state().contacts().count() + phone.state().removed_contacts().count(),
        "store views disagree"
    );
    steps.line(format!(
        "   reopened Dana's phone from passphrase + disk: stored bodies fold to the same state; {opened} envelopes opened and verified again, same state",
    ));

    // 8. The workplace map and the support share, from the store's views (no fold).
    let map = phone.store().workplace_map(&group)?;
    let share = phone.store().support_share(&group)?;
    ensure!(
        map == phone.state().workplace_map(),
        "map view disagrees with the fold"
    );
    ensure!(
        share == phone.state().support_share(),
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
