//! Generators of realistic entries, for this crate's tests and for other crates' (the
//! sync simulator, store tests). Enabled by the `test-utils` feature.
//!
//! A [`Cast`] is a small committee with deterministic keys: a founder, a few admins
//! and organizers with one or two devices each, a device never linked, and outsiders
//! who are never members. [`Cast::setup`] returns the entries that make the committee
//! (devices introducing themselves, members added), all at early clocks, and
//! [`Cast::arb_entries`] a proptest strategy for that setup followed by random
//! operations drawn from small pools of contacts, follow-ups, notices and tags, so
//! concurrent edits of the same record are frequent.
//!
//! [`entry`] places each new entry in its device's chain and names the authority heads
//! for an authority operation, as a node would: a per-thread scribe remembers, in the
//! order entries are made, each device's last entry and the last authority entry (so the
//! authority graph of entries made by [`entry`] is one line, in the order they were
//! made). Making the same entry twice (same author, clock and operation) gives the same
//! entry. [`entry_at`] places an entry explicitly (concurrent or backdated histories).
//! Entry ids are BLAKE3 of the event bytes.

use crate::OpenedEntry;
use caucus_proto::{
    Author, Body, Chain, ContactField, ContactId, Cut, Day, DeviceCert, DeviceKey, EntryId,
    EventId, FollowupId, Hlc, IdentityKey, KeyDelivery, Note, NoticeContent, NoticeId, Operation,
    Rating, Role, Signature,
};
use proptest::prelude::*;
use proptest::sample::select;
use std::cell::RefCell;
use std::collections::HashMap;

#[derive(Default)]
struct Scribe {
    made: HashMap<Vec<u8>, OpenedEntry>,
    tips: HashMap<DeviceKey, (u64, EventId)>,
    authority: Option<EventId>,
}

thread_local! {
    static SCRIBE: RefCell<Scribe> = RefCell::new(Scribe::default());
}

/// Forgets every chain and authority head [`entry`] remembered on this thread.
pub fn reset() {
    SCRIBE.with(|s| *s.borrow_mut() = Scribe::default());
}

/// An entry placed after its device's last entry made by [`entry`] on this thread (and,
/// for an authority operation, made on the last authority entry made so far). The same
/// author, clock and operation give the same entry.
pub fn entry(author: Author, hlc: Hlc, op: Operation) -> OpenedEntry {
    let key = caucus_proto::codec::encode::<_, { 1 << 20 }>(&(author, hlc, &op))
        .unwrap_or_else(|_| format!("{author:?}{hlc:?}{op:?}").into_bytes());
    SCRIBE.with(|s| {
        let mut s = s.borrow_mut();
        if let Some(e) = s.made.get(&key) {
            return e.clone();
        }
        let tip = s.tips.get(&author.device).copied();
        let heads = if op.is_authority() {
            s.authority.into_iter().collect()
        } else {
            Vec::new()
        };
        let chain = match tip {
            Some((seq, prev)) => Chain {
                seq: seq + 1,
                prev: Some(prev),
                heads,
            },
            None => Chain::first(heads),
        };
        let e = entry_at(author, chain, hlc, op);
        s.tips.insert(author.device, (e.chain.seq, e.event));
        if e.op.is_authority() {
            s.authority = Some(e.event);
        }
        s.made.insert(key, e.clone());
        e
    })
}

/// An entry at an explicit place: `chain` as given, the event id computed from the
/// event bytes (like the crypto layer), the id BLAKE3 of them. Leaves the scribe alone.
pub fn entry_at(author: Author, chain: Chain, hlc: Hlc, op: Operation) -> OpenedEntry {
    let bytes = Body::event_bytes_for(&author, &chain, &hlc, &op).unwrap_or_else(|_| {
        // An invalid operation (for rejection tests): still a distinct, stable name.
        format!("{author:?}{chain:?}{hlc:?}{op:?}").into_bytes()
    });
    OpenedEntry {
        id: EntryId(*blake3::hash(&bytes).as_bytes()),
        author,
        event: EventId::of_event_bytes(&bytes),
        chain,
        hlc,
        epoch: 1,
        op,
    }
}

/// Where a removal or revocation written now cuts `device`: its last entry made by
/// [`entry`] on this thread.
pub fn seen(device: DeviceKey) -> Cut {
    SCRIBE.with(|s| match s.borrow().tips.get(&device) {
        Some((seq, head)) => Cut {
            device,
            seq: *seq,
            head: Some(*head),
        },
        None => Cut {
            device,
            seq: 0,
            head: None,
        },
    })
}

/// A removal of `member` written now, cutting each of `devices` at its last entry made
/// so far ([`seen`]).
pub fn removal(member: IdentityKey, devices: &[DeviceKey]) -> Operation {
    Operation::MemberRemoved {
        member,
        cuts: seen_all(devices),
    }
}

/// A role change of `member` written now (cuts as for [`removal`]).
pub fn role_change(member: IdentityKey, role: Role, devices: &[DeviceKey]) -> Operation {
    Operation::RoleChanged {
        member,
        role,
        cuts: seen_all(devices),
    }
}

/// A revocation of `device` written now ([`seen`]).
pub fn revocation(device: DeviceKey) -> Operation {
    Operation::DeviceRevoked { cut: seen(device) }
}

fn seen_all(devices: &[DeviceKey]) -> Vec<Cut> {
    let mut cuts: Vec<Cut> = devices.iter().map(|d| seen(*d)).collect();
    cuts.sort_by_key(|c| c.device);
    cuts.dedup_by_key(|c| c.device);
    cuts
}

/// Where a removal or revocation written by someone who holds `entries` cuts `device`:
/// its highest entry among them.
pub fn cut_after(entries: &[OpenedEntry], device: DeviceKey) -> Cut {
    entries
        .iter()
        .filter(|e| e.author.device == device)
        .max_by_key(|e| e.chain.seq)
        .map_or(
            Cut {
                device,
                seq: 0,
                head: None,
            },
            |e| Cut {
                device,
                seq: e.chain.seq,
                head: Some(e.event),
            },
        )
}

/// The same entry in another envelope (a member re-sealing a body they opened): same
/// event, a new entry id derived from `salt`.
pub fn resealed(e: &OpenedEntry, salt: u64) -> OpenedEntry {
    let mut h = blake3::Hasher::new();
    h.update(&e.id.0);
    h.update(&salt.to_le_bytes());
    OpenedEntry {
        id: EntryId(*h.finalize().as_bytes()),
        epoch: e.epoch + 1,
        ..e.clone()
    }
}

/// A clock reading.
pub fn hlc(wall_ms: u64, counter: u32) -> Hlc {
    Hlc { wall_ms, counter }
}

/// A deterministic identity key for person number `n`.
pub fn identity(n: u8) -> IdentityKey {
    let mut k = [n; 32];
    k[0] = 0x1d;
    IdentityKey(k)
}

/// A deterministic device key: device `d` of person `n`.
pub fn device(n: u8, d: u8) -> DeviceKey {
    let mut k = [n; 32];
    k[0] = 0xde;
    k[1] = d;
    DeviceKey(k)
}

/// A device certificate as the crypto layer would carry it (the signature is not
/// checked by the model, so it is zero here).
pub fn cert(identity: IdentityKey, device: DeviceKey, label: &str) -> DeviceCert {
    DeviceCert {
        identity,
        device,
        dh: device.0,
        label: label.to_owned(),
        signature: Signature([0; 64]),
    }
}

/// A deterministic contact id from a small number.
pub fn contact(n: u8) -> ContactId {
    ContactId([n; 16])
}

/// A deterministic follow-up id from a small number.
pub fn followup(n: u8) -> FollowupId {
    FollowupId([n; 16])
}

/// A deterministic notice id from a small number.
pub fn notice(n: u8) -> NoticeId {
    NoticeId([n; 16])
}

/// A rating from a number known to be 1 to 5 (others clamp into range).
pub fn rating(n: u8) -> Rating {
    Rating::ALL[usize::from(n.clamp(1, 5) - 1)]
}

/// A plain notice content.
pub fn notice_content(title: &str, urgent: bool) -> NoticeContent {
    NoticeContent {
        title: title.to_owned(),
        starts_at_ms: 1_800_000_000_000,
        place: "Union hall".to_owned(),
        body: "Bring a friend.".to_owned(),
        urgent,
        expires_at_ms: None,
    }
}

/// One person of a [`Cast`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    /// Display name.
    pub name: String,
    /// Identity key.
    pub identity: IdentityKey,
    /// Role once added (the founder is an admin).
    pub role: Role,
    /// Devices, each introduced by [`Cast::setup`].
    pub devices: Vec<DeviceKey>,
}

impl Person {
    /// The author of an entry signed by this person's device `d`.
    pub fn author(&self, d: usize) -> Author {
        Author {
            identity: self.identity,
            device: self.devices[d % self.devices.len()],
        }
    }
}

/// A small committee with deterministic keys. See the module docs.
#[derive(Clone, Debug)]
pub struct Cast {
    /// The founder: an admin from the start.
    pub founder: Person,
    /// Members added by the founder in [`Cast::setup`].
    pub members: Vec<Person>,
    /// People who are never added.
    pub outsiders: Vec<Person>,
    /// A device of the first member that is never linked.
    pub stray_device: Author,
}

impl Default for Cast {
    fn default() -> Self {
        Cast::new(2, 2)
    }
}

impl Cast {
    /// A founder with two devices, `admins` more admins and `organizers` organizers
    /// (alternating one and two devices), and two outsiders.
    pub fn new(admins: u8, organizers: u8) -> Cast {
        const NAMES: [&str; 8] = ["Dana", "Eli", "Fatou", "Gus", "Hana", "Ivo", "Jun", "Kim"];
        let person = |n: u8, role: Role, devices: u8| Person {
            name: NAMES[usize::from(n.wrapping_sub(1)) % NAMES.len()].to_owned(),
            identity: identity(n),
            role,
            devices: (0..devices).map(|d| device(n, d)).collect(),
        };
        let founder = person(1, Role::Admin, 2);
        let members: Vec<Person> = (0..admins)
            .map(|i| person(2 + i, Role::Admin, 1 + i % 2))
            .chain((0..organizers).map(|i| person(2 + admins + i, Role::Organizer, 1 + i % 2)))
            .collect();
        let outsiders = vec![person(100, Role::Admin, 1), person(101, Role::Organizer, 1)];
        let stray_device = Author {
            identity: members.first().map_or(founder.identity, |m| m.identity),
            device: device(99, 0),
        };
        Cast {
            founder,
            members,
            outsiders,
            stray_device,
        }
    }

    /// The founder and the members.
    pub fn insiders(&self) -> impl Iterator<Item = &Person> {
        std::iter::once(&self.founder).chain(&self.members)
    }

    /// Every device of the founder and the members, as authors.
    pub fn linked_authors(&self) -> Vec<Author> {
        self.insiders()
            .flat_map(|p| (0..p.devices.len()).map(move |d| p.author(d)))
            .collect()
    }

    /// Authors whose entries never count: outsiders and the stray device.
    pub fn unauthorized_authors(&self) -> Vec<Author> {
        self.outsiders
            .iter()
            .map(|p| p.author(0))
            .chain(std::iter::once(self.stray_device))
            .collect()
    }

    /// Every person, insiders and outsiders.
    pub fn everyone(&self) -> impl Iterator<Item = &Person> {
        self.insiders().chain(&self.outsiders)
    }

    /// The entries that make the committee, at clocks 1 to about 40 ms: the founder's
    /// first device introduces itself and links the second, the founder names the group
    /// and adds every member, then each member's first device introduces itself and
    /// links the member's second.
    pub fn setup(&self) -> Vec<OpenedEntry> {
        let mut out = Vec::new();
        let f = &self.founder;
        for (d, key) in f.devices.iter().enumerate() {
            out.push(entry(
                f.author(0),
                hlc(1, d as u32),
                Operation::DeviceLinked {
                    cert: cert(f.identity, *key, "phone"),
                },
            ));
        }
        out.push(entry(
            f.author(0),
            hlc(2, 0),
            Operation::MemberAdded {
                member: f.identity,
                name: f.name.clone(),
                role: Role::Admin,
            },
        ));
        out.push(entry(
            f.author(0),
            hlc(2, 1),
            Operation::GroupNamed {
                name: "Warehouse committee".to_owned(),
            },
        ));
        for (i, m) in self.members.iter().enumerate() {
            out.push(entry(
                f.author(0),
                hlc(3 + i as u64, 0),
                Operation::MemberAdded {
                    member: m.identity,
                    name: m.name.clone(),
                    role: m.role,
                },
            ));
            for (d, key) in m.devices.iter().enumerate() {
                out.push(entry(
                    m.author(0),
                    hlc(20 + i as u64, d as u32),
                    Operation::DeviceLinked {
                        cert: cert(m.identity, *key, if d == 0 { "phone" } else { "laptop" }),
                    },
                ));
            }
        }
        out
    }

    /// A random operation on the shared records (contacts, notes, follow-ups, notices),
    /// never touching membership.
    pub fn arb_content_op(&self) -> BoxedStrategy<Operation> {
        arb_content_op()
    }

    /// A random operation on membership, devices, epochs or the group, naming people of
    /// this cast.
    pub fn arb_churn_op(&self) -> BoxedStrategy<Operation> {
        let people: Vec<Person> = self.everyone().cloned().collect();
        let devices: Vec<(IdentityKey, DeviceKey)> = people
            .iter()
            .flat_map(|p| p.devices.iter().map(move |d| (p.identity, *d)))
            .chain(std::iter::once((
                self.stray_device.identity,
                self.stray_device.device,
            )))
            .collect();
        let ids: Vec<IdentityKey> = people.iter().map(|p| p.identity).collect();
        let device_keys: Vec<DeviceKey> = devices.iter().map(|(_, d)| *d).collect();
        prop_oneof![
            (select(people.clone()), arb_role()).prop_map(|(p, role)| Operation::MemberAdded {
                member: p.identity,
                name: p.name,
                role,
            }),
            select(ids.clone()).prop_map(|member| Operation::MemberRemoved {
                member,
                cuts: Vec::new()
            }),
            (select(ids), arb_role()).prop_map(|(member, role)| Operation::RoleChanged {
                member,
                role,
                cuts: Vec::new()
            }),
            select(devices).prop_map(|(i, d)| Operation::DeviceLinked {
                cert: cert(i, d, "spare"),
            }),
            select(device_keys.clone()).prop_map(|device| Operation::DeviceRevoked {
                cut: Cut {
                    device,
                    seq: 0,
                    head: None
                }
            }),
            (
                1u64..4,
                proptest::collection::vec(select(device_keys), 0..3)
            )
                .prop_map(|(epoch, ds)| Operation::EpochKeyDelivered {
                    epoch,
                    deliveries: ds
                        .into_iter()
                        .map(|device| KeyDelivery {
                            device,
                            sealed: vec![epoch as u8; 48],
                        })
                        .collect(),
                }),
            select(vec!["Committee", "JFK8 committee"])
                .prop_map(|n| Operation::GroupNamed { name: n.to_owned() }),
            (0u32..200, 50u8..=80).prop_map(|(headcount, target_percent)| {
                Operation::CampaignSet {
                    headcount,
                    target_percent,
                }
            }),
        ]
        .boxed()
    }

    /// Random entries after the setup, at clocks 100 to 129 ms (so ties between devices
    /// happen): mostly content from linked devices, some unauthorized authors, and,
    /// when `churn` is set, membership and device changes too.
    pub fn arb_random_entries(
        &self,
        count: std::ops::Range<usize>,
        churn: bool,
    ) -> BoxedStrategy<Vec<OpenedEntry>> {
        self.arb_random_writes(count, churn)
            .prop_map(|writes| {
                (writes.into_iter())
                    .map(|(a, at, op)| entry(a, at, op))
                    .collect()
            })
            .boxed()
    }

    /// What [`Cast::arb_random_entries`] writes, before it is placed in chains.
    fn arb_random_writes(
        &self,
        count: std::ops::Range<usize>,
        churn: bool,
    ) -> BoxedStrategy<Vec<(Author, Hlc, Operation)>> {
        let linked = self.linked_authors();
        let strangers = self.unauthorized_authors();
        let author = prop_oneof![9 => select(linked), 1 => select(strangers)];
        let op = if churn {
            prop_oneof![6 => self.arb_content_op(), 1 => self.arb_churn_op()].boxed()
        } else {
            self.arb_content_op()
        };
        proptest::collection::vec(
            (author, 100u64..130, 0u32..2, op)
                .prop_map(|(a, wall, counter, op)| (a, hlc(wall, counter), op)),
            count,
        )
        .boxed()
    }

    /// A deterministic sample for simulators that do not use proptest: the setup then
    /// `count` random entries drawn from `seed`, with clocks spread out so that later
    /// entries mostly sort later (about 4 entries per millisecond, with overlaps).
    pub fn sample(&self, seed: u64, count: usize, churn: bool) -> Vec<OpenedEntry> {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
        let mut seed_bytes = [0u8; 32];
        seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
        let mut runner = TestRunner::new_with_rng(Config::default(), rng);
        let random = match self
            .arb_random_writes(count..count + 1, churn)
            .new_tree(&mut runner)
        {
            Ok(tree) => tree.current(),
            Err(_) => Vec::new(),
        };
        let setup = self.setup();
        let spread = random.into_iter().enumerate().map(|(i, (a, at, op))| {
            let at = hlc(at.wall_ms + i as u64 / 4, at.counter);
            entry(a, at, op)
        });
        setup.into_iter().chain(spread).collect()
    }

    /// The setup followed by random entries (see [`Cast::arb_random_entries`]).
    pub fn arb_entries(
        &self,
        count: std::ops::Range<usize>,
        churn: bool,
    ) -> BoxedStrategy<Vec<OpenedEntry>> {
        let setup = self.setup();
        self.arb_random_entries(count, churn)
            .prop_map(move |random| setup.iter().cloned().chain(random).collect())
            .boxed()
    }
}

/// A random role.
pub fn arb_role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Admin), Just(Role::Organizer)]
}

/// A random rating, 1 to 5.
pub fn arb_rating() -> impl Strategy<Value = Rating> {
    (1u8..=5).prop_map(rating)
}

/// A random contact field from small pools of realistic values.
pub fn arb_contact_field() -> impl Strategy<Value = ContactField> {
    prop_oneof![
        select(vec!["Ana Ruiz", "Ben Okafor", "Chloé Martin", "dmitri p."])
            .prop_map(|s| ContactField::Name(s.to_owned())),
        select(vec!["Outbound", "Inbound", "Sortation"])
            .prop_map(|s| ContactField::Department(s.to_owned())),
        select(vec!["Day", "Night"]).prop_map(|s| ContactField::Shift(s.to_owned())),
        select(vec!["picker", "stower", "forklift"]).prop_map(|s| ContactField::Job(s.to_owned())),
        select(vec!["+1 555 0100", "@ana", ""]).prop_map(|s| ContactField::Handle(s.to_owned())),
        arb_rating().prop_map(ContactField::Rating),
        (
            select(vec!["signed card", "petition", "potential leader"]),
            any::<bool>()
        )
            .prop_map(|(t, on)| ContactField::Tag {
                tag: t.to_owned(),
                on
            }),
        select(vec!["Dana", "Eli", ""]).prop_map(|s| ContactField::AssignedTo(s.to_owned())),
    ]
}

/// A random operation on contacts, notes, follow-ups or notices, over small id pools.
pub fn arb_content_op() -> BoxedStrategy<Operation> {
    let contact_id = (0u8..4).prop_map(contact);
    let followup_id = (0u8..3).prop_map(followup);
    let notice_id = (0u8..3).prop_map(notice);
    let content = (
        select(vec!["Meeting", "Schedule change", "Rally"]),
        any::<bool>(),
        proptest::option::of(100u64..200),
    )
        .prop_map(|(title, urgent, expires)| NoticeContent {
            expires_at_ms: expires,
            ..notice_content(title, urgent)
        });
    prop_oneof![
        4 => (
            contact_id.clone(),
            proptest::collection::vec(arb_contact_field(), 1..4)
        )
            .prop_map(|(contact, fields)| Operation::ContactSet { contact, fields }),
        4 => (
            contact_id.clone(),
            select(vec!["worried about hours", "will sign", "talk to nights", "ask about pay"]),
            0u16..1000,
            proptest::option::of((20_000i32..20_010).prop_map(Day)),
            proptest::option::of(Just("Dana".to_owned())),
        )
            .prop_map(|(contact, text, n, date, by)| Operation::NoteAdded {
                contact,
                note: Note {
                    text: format!("{text} ({n})"),
                    date,
                    by,
                },
            }),
        2 => (
            followup_id.clone(),
            contact_id.clone(),
            (20_000i32..20_010).prop_map(Day),
            select(vec!["Dana", "Eli"]),
            select(vec!["call back", "bring card"]),
        )
            .prop_map(|(followup, contact, due, assignee, task)| Operation::FollowupSet {
                followup,
                contact,
                due,
                assignee: assignee.to_owned(),
                task: task.to_owned(),
            }),
        1 => (followup_id, any::<bool>())
            .prop_map(|(followup, done)| Operation::FollowupDone { followup, done }),
        1 => contact_id.prop_map(|contact| Operation::ContactRemoved { contact }),
        2 => (notice_id.clone(), content.clone())
            .prop_map(|(notice, content)| Operation::NoticePosted { notice, content }),
        1 => (notice_id.clone(), content)
            .prop_map(|(notice, content)| Operation::NoticeChanged { notice, content }),
        1 => notice_id.clone().prop_map(|notice| Operation::NoticeCancelled { notice }),
        2 => notice_id.clone().prop_map(|notice| Operation::NoticeAcked { notice }),
        1 => (notice_id, proptest::collection::btree_set(0u8..6, 1..4)).prop_map(
            |(notice, people)| Operation::NoticeDelivered {
                notice,
                members: people.into_iter().map(identity).collect(),
            }
        ),
    ]
    .boxed()
}
