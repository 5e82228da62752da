//! Attacks on authority, each by a modified client that holds only what its author
//! legitimately had: their own device keys, the entries they had seen before they were
//! removed, and their own clock. The attacker writes with the state it held then
//! ([`State::next_chain`] of that state: its own chain and its old authority heads), or
//! forges a chain place outright; the honest replicas receive everything.

use crate::testing::{
    Cast, cert, contact, device, entry, entry_at, hlc, identity, removal, revocation,
};
use crate::*;
use caucus_proto::{Author, Chain, Hlc, KeyDelivery, Note, Operation, Role};
use proptest::prelude::*;

fn at(wall: u64) -> Hlc {
    hlc(wall, 0)
}

fn note(n: u8, text: &str) -> Operation {
    Operation::NoteAdded {
        contact: contact(n),
        note: Note {
            text: text.to_owned(),
            date: None,
            by: None,
        },
    }
}

fn named(n: u8, name: &str) -> Operation {
    Operation::ContactSet {
        contact: contact(n),
        fields: vec![caucus_proto::ContactField::Name(name.to_owned())],
    }
}

/// An entry the attacker writes on the state it held: next in its own chain, made on
/// the authority heads it knew.
fn written_on(held: &State, author: Author, hlc: Hlc, op: Operation) -> OpenedEntry {
    let chain = held.next_chain(&author.device, &op);
    entry_at(author, chain, hlc, op)
}

fn deliver(epoch: u64, state: &State) -> Operation {
    Operation::EpochKeyDelivered {
        epoch,
        deliveries: state
            .current_devices()
            .map(|c| KeyDelivery {
                device: c.device,
                sealed: vec![7; 48],
            })
            .collect(),
    }
}

/// Dana (founder, admin, 2 devices), Eli (admin), Fatou and Gus (organizers, Gus with
/// a phone and a laptop), with two contacts on the log.
fn committee() -> (Cast, Vec<OpenedEntry>) {
    let cast = Cast::new(1, 2);
    let mut log = cast.setup();
    log.push(entry(cast.members[1].author(0), at(50), named(1, "Ana")));
    log.push(entry(cast.members[2].author(0), at(51), named(2, "Ben")));
    log.push(entry(
        cast.members[1].author(0),
        at(52),
        note(1, "will sign"),
    ));
    (cast, log)
}

fn state_of(cast: &Cast, log: &[OpenedEntry]) -> State {
    State::from_entries(cast.founder.identity, log.iter().cloned())
}

/// Asserts that none of `attack` counts in `s`.
fn all_refused(s: &State, attack: &[OpenedEntry]) {
    for e in attack {
        assert!(
            matches!(s.status(&e.id), Some(Outcome::Rejected(_))),
            "{} {:?}",
            e.op.kind(),
            s.status(&e.id)
        );
    }
}

/// Folds `log` in two more orders and checks they agree with `s`.
fn same_in_any_order(cast: &Cast, s: &State, log: &[OpenedEntry]) {
    let mut rev: Vec<_> = log.to_vec();
    rev.reverse();
    let mut one_by_one = State::new(cast.founder.identity);
    for e in rev.iter().cloned() {
        one_by_one.insert(e);
    }
    assert_eq!(one_by_one.state_hash(), s.state_hash());
    let mut odd_first: Vec<_> = log.iter().skip(1).step_by(2).cloned().collect();
    odd_first.extend(log.iter().step_by(2).cloned());
    assert_eq!(state_of(cast, &odd_first).state_hash(), s.state_hash());
}

#[test]
fn a_removed_member_writes_nothing_new_whatever_their_clock() {
    let (cast, mut log) = committee();
    let fatou = cast.members[1].author(0);
    let before = state_of(&cast, &log);
    log.push(entry(
        cast.members[0].author(0),
        at(100),
        removal(cast.members[1].identity, &cast.members[1].devices),
    ));
    // Her modified client: next in her own chain, stamped before the removal.
    let attacks = [
        written_on(&before, fatou, at(60), note(1, "backdated note")),
        written_on(
            &before,
            fatou,
            at(61),
            Operation::ContactRemoved {
                contact: contact(2),
            },
        ),
        written_on(&before, fatou, at(62), named(1, "renamed")),
    ];
    // The same, at a place of her chain the remover had seen (a substitution).
    let tip = before.chain_tip(&fatou.device).expect("she wrote before");
    let prev_of_tip = before
        .entries()
        .find(|e| e.author.device == fatou.device && e.chain.seq == tip.0)
        .and_then(|e| e.chain.prev);
    let substitute = entry_at(
        fatou,
        Chain {
            seq: tip.0,
            prev: prev_of_tip,
            heads: vec![],
        },
        at(52),
        Operation::ContactRemoved {
            contact: contact(1),
        },
    );
    let mut all = log.clone();
    all.extend(attacks.iter().cloned());
    all.push(substitute.clone());
    let s = state_of(&cast, &all);
    for e in &attacks {
        assert_eq!(
            s.status(&e.id),
            Some(Outcome::Rejected(Reason::BeyondCut)),
            "{}",
            e.op.kind()
        );
    }
    assert_eq!(
        s.status(&substitute.id),
        Some(Outcome::Rejected(Reason::Forked))
    );
    assert!(s.contact(&contact(1)).is_some() && s.contact(&contact(2)).is_some());
    assert_eq!(s.contact(&contact(1)).map(|c| c.name.as_str()), Some("Ana"));
    assert_eq!(s.notes(&contact(1)).count(), 1, "her honest note stays");
    same_in_any_order(&cast, &s, &all);
}

#[test]
fn a_removed_admin_cannot_add_a_sockpuppet_or_take_the_group_over() {
    let (cast, mut log) = committee();
    let dana = cast.founder.author(0);
    let eli = cast.members[0].author(0);
    let held = state_of(&cast, &log);
    log.push(entry(
        dana,
        at(100),
        removal(cast.members[0].identity, &cast.members[0].devices),
    ));
    // Eli's client, on what it held: adds a sockpuppet admin, whose device introduces
    // itself, removes Dana and delivers an epoch; Eli also re-adds himself.
    let sock = Author {
        identity: identity(66),
        device: device(66, 0),
    };
    let add = written_on(
        &held,
        eli,
        at(90),
        Operation::MemberAdded {
            member: sock.identity,
            name: "Sam".into(),
            role: Role::Admin,
        },
    );
    let mut eli_view = held.clone();
    eli_view.insert(add.clone());
    let link = written_on(
        &eli_view,
        sock,
        at(91),
        Operation::DeviceLinked {
            cert: cert(sock.identity, sock.device, "phone"),
        },
    );
    eli_view.insert(link.clone());
    let coup = written_on(
        &eli_view,
        sock,
        at(92),
        Operation::MemberRemoved {
            member: cast.founder.identity,
            cuts: eli_view.cuts_of(&cast.founder.identity),
        },
    );
    eli_view.insert(coup.clone());
    let epoch = written_on(&eli_view, sock, at(93), deliver(2, &eli_view));
    let readd = written_on(
        &held,
        eli,
        at(94),
        Operation::RoleChanged {
            member: cast.members[0].identity,
            role: Role::Admin,
            cuts: vec![],
        },
    );
    let attack = [add, link, coup, epoch, readd];
    let mut all = log.clone();
    all.extend(attack.iter().cloned());
    let s = state_of(&cast, &all);
    all_refused(&s, &attack);
    assert!(s.is_member(&cast.founder.identity), "Dana stays");
    assert_eq!(
        s.member(&cast.founder.identity).map(|m| m.role),
        Some(Role::Admin)
    );
    assert!(!s.is_member(&cast.members[0].identity), "Eli is out");
    assert!(!s.is_member(&sock.identity), "the sockpuppet never got in");
    assert_eq!(s.current_epoch(), 1);
    same_in_any_order(&cast, &s, &all);
}

#[test]
fn a_revoked_phone_writes_nothing_new_and_cannot_bring_a_new_device() {
    let (cast, mut log) = committee();
    let gus = &cast.members[2];
    let laptop = gus.author(0);
    let phone = gus.author(1);
    log.push(entry(phone, at(60), note(2, "from the phone")));
    let held = state_of(&cast, &log);
    log.push(entry(laptop, at(100), revocation(phone.device)));
    let fresh = Author {
        identity: gus.identity,
        device: device(88, 0),
    };
    let attack = [
        written_on(&held, phone, at(70), note(2, "backdated")),
        written_on(
            &held,
            phone,
            at(71),
            Operation::ContactRemoved {
                contact: contact(1),
            },
        ),
        // A fresh device certified by the identity (a seized device holding the
        // identity key could make one), linked by the revoked phone...
        written_on(
            &held,
            phone,
            at(72),
            Operation::DeviceLinked {
                cert: cert(gus.identity, fresh.device, "burner"),
            },
        ),
        // ...or introducing itself.
        written_on(
            &held,
            fresh,
            at(73),
            Operation::DeviceLinked {
                cert: cert(gus.identity, fresh.device, "burner"),
            },
        ),
        written_on(&held, phone, at(74), revocation(laptop.device)),
    ];
    let mut all = log.clone();
    all.extend(attack.iter().cloned());
    let s = state_of(&cast, &all);
    all_refused(&s, &attack);
    assert_eq!(
        s.status(&attack[3].id),
        Some(Outcome::Rejected(Reason::NotFirstDevice))
    );
    assert!(s.may_write(&gus.identity, &laptop.device));
    assert!(!s.may_write(&gus.identity, &phone.device));
    assert!(s.device(&fresh.device).is_none());
    assert!(s.contact(&contact(1)).is_some());
    assert_eq!(
        s.notes(&contact(2)).count(),
        1,
        "what the phone wrote before counts"
    );
    same_in_any_order(&cast, &s, &all);
}

#[test]
fn a_removed_admins_backdated_removals_are_refused_and_a_mutual_one_takes_both() {
    let (cast, mut log) = committee();
    let dana = cast.founder.author(0);
    let eli = cast.members[0].author(0);
    let fatou_id = cast.members[1].identity;
    let held = state_of(&cast, &log);
    log.push(entry(
        dana,
        at(100),
        removal(cast.members[0].identity, &cast.members[0].devices),
    ));
    // Eli, removed, removes Fatou on his old view: refused.
    let spite = written_on(
        &held,
        eli,
        at(90),
        Operation::MemberRemoved {
            member: fatou_id,
            cuts: held.cuts_of(&fatou_id),
        },
    );
    let mut all = log.clone();
    all.push(spite.clone());
    let s = state_of(&cast, &all);
    assert_eq!(
        s.status(&spite.id),
        Some(Outcome::Rejected(Reason::BeyondCut))
    );
    assert!(s.is_member(&fatou_id));
    same_in_any_order(&cast, &s, &all);
    // Eli removes Dana on his old view: indistinguishable from a concurrent mutual
    // removal, which takes both out (the written rule; THREATS.md section 5).
    let mutual = written_on(
        &held,
        eli,
        at(90),
        Operation::MemberRemoved {
            member: cast.founder.identity,
            cuts: held.cuts_of(&cast.founder.identity),
        },
    );
    let mut all = log.clone();
    all.push(mutual.clone());
    let s = state_of(&cast, &all);
    assert_eq!(s.status(&mutual.id), Some(Outcome::Applied));
    assert!(!s.is_member(&cast.founder.identity));
    assert!(!s.is_member(&cast.members[0].identity));
    assert!(s.is_member(&fatou_id));
    same_in_any_order(&cast, &s, &all);
}

#[test]
fn bogus_epochs_from_an_admin_then_removed_leave_the_group_on_a_key_they_lack() {
    let (cast, mut log) = committee();
    let dana = cast.founder.author(0);
    let eli = cast.members[0].author(0);
    let s0 = state_of(&cast, &log);
    let bogus: Vec<OpenedEntry> = [u64::MAX, 1_001]
        .into_iter()
        .map(|n| entry(eli, at(60 + n % 7), deliver(n, &s0)))
        .collect();
    // A real rotation by Eli while an admin: valid.
    let honest = entry(eli, at(70), deliver(2, &s0));
    log.extend(bogus.iter().cloned());
    log.push(honest.clone());
    let held = state_of(&cast, &log);
    assert_eq!(held.current_epoch(), 2);
    for e in &bogus {
        assert_eq!(
            held.status(&e.id),
            Some(Outcome::Rejected(Reason::EpochNotNext))
        );
    }
    // Dana removes Eli and rotates to the devices left.
    log.push(entry(
        dana,
        at(100),
        removal(cast.members[0].identity, &cast.members[0].devices),
    ));
    let after = state_of(&cast, &log);
    let rotate = OpenedEntry {
        epoch: 2,
        ..entry(dana, at(101), deliver(3, &after))
    };
    log.push(rotate.clone());
    // Eli, on his old view, delivers epoch 3 to himself too, sealed under epoch 2.
    let counter = OpenedEntry {
        epoch: 2,
        ..written_on(&held, eli, at(95), deliver(3, &held))
    };
    log.push(counter.clone());
    let s = state_of(&cast, &log);
    assert_eq!(s.status(&rotate.id), Some(Outcome::Applied));
    assert_eq!(
        s.status(&counter.id),
        Some(Outcome::Rejected(Reason::BeyondCut))
    );
    assert_eq!(s.current_epoch(), 3);
    assert!(s.epoch_settled());
    let winner = s.epoch_winner().expect("epoch 3 delivered");
    assert_eq!(winner.entry, rotate.id);
    assert!(
        winner
            .devices()
            .all(|d| !cast.members[0].devices.contains(&d))
    );
    same_in_any_order(&cast, &s, &log);
}

#[test]
fn two_admins_removing_two_members_at_once_both_hold_and_the_next_epoch_excludes_both() {
    let (cast, log) = committee();
    let dana = cast.founder.author(0);
    let eli = cast.members[0].author(0);
    let (fatou, gus) = (&cast.members[1], &cast.members[2]);
    let base = state_of(&cast, &log);
    // Each admin on the same past: remove one member, rotate without them.
    let mut dana_view = base.clone();
    let r1 = written_on(
        &dana_view,
        dana,
        at(100),
        removal(fatou.identity, &fatou.devices),
    );
    dana_view.insert(r1.clone());
    let e1 = written_on(&dana_view, dana, at(101), deliver(2, &dana_view));
    dana_view.insert(e1.clone());
    let mut eli_view = base.clone();
    let r2 = written_on(&eli_view, eli, at(100), removal(gus.identity, &gus.devices));
    eli_view.insert(r2.clone());
    let e2 = written_on(&eli_view, eli, at(101), deliver(2, &eli_view));
    eli_view.insert(e2.clone());
    let mut all = log.clone();
    all.extend([r1, e1, r2, e2]);
    let mut s = state_of(&cast, &all);
    assert!(!s.is_member(&fatou.identity) && !s.is_member(&gus.identity));
    assert_eq!(s.current_epoch(), 2);
    assert!(
        !s.epoch_settled(),
        "each epoch-2 key still reaches one removed member"
    );
    // The follow-up, made on both, reaches neither removed member.
    let follow = OpenedEntry {
        epoch: 2,
        ..written_on(&s, dana, at(110), deliver(3, &s))
    };
    s.insert(follow.clone());
    all.push(follow.clone());
    assert_eq!(s.status(&follow.id), Some(Outcome::Applied));
    assert!(s.epoch_settled());
    let winner = s.epoch_winner().expect("epoch 3");
    assert!(
        winner
            .devices()
            .all(|d| !fatou.devices.contains(&d) && !gus.devices.contains(&d))
    );
    same_in_any_order(&cast, &s, &all);
}

#[test]
fn an_equivocating_device_is_refused_from_the_fork_on_and_shown() {
    let (cast, mut log) = committee();
    let fatou = cast.members[1].author(0);
    let held = state_of(&cast, &log);
    let honest_before = log.last().cloned().expect("setup");
    let place = held.next_chain(&fatou.device, &note(1, "x"));
    let a = entry_at(fatou, place.clone(), at(60), note(1, "to Dana"));
    let b = entry_at(fatou, place.clone(), at(60), note(1, "to Eli"));
    let after_a = entry_at(
        fatou,
        Chain {
            seq: place.seq + 1,
            prev: Some(a.event),
            heads: vec![],
        },
        at(61),
        note(2, "later"),
    );
    log.extend([a.clone(), b.clone(), after_a.clone()]);
    let s = state_of(&cast, &log);
    for e in [&a, &b, &after_a] {
        assert_eq!(s.status(&e.id), Some(Outcome::Rejected(Reason::Forked)));
    }
    assert_eq!(s.status(&honest_before.id), Some(Outcome::Applied));
    assert_eq!(
        s.forks().collect::<Vec<_>>(),
        vec![(fatou.device, place.seq)]
    );
    same_in_any_order(&cast, &s, &log);
}

#[test]
fn offline_work_the_remover_knew_of_is_kept_and_the_rest_of_the_chain_is_not() {
    let (cast, mut log) = committee();
    let fatou = cast.members[1].author(0);
    // Three notes written offline; the admin got only the third (say, by gossip).
    let n1 = entry(fatou, at(60), note(1, "one"));
    let n2 = entry(fatou, at(61), note(1, "two"));
    let n3 = entry(fatou, at(62), note(1, "three"));
    log.push(n3.clone());
    log.push(entry(
        cast.members[0].author(0),
        at(100),
        removal(cast.members[1].identity, &cast.members[1].devices),
    ));
    let n4 = entry(fatou, at(63), note(1, "four, after the cut"));
    let mut s = state_of(&cast, &log);
    assert_eq!(s.status(&n3.id), Some(Outcome::Applied));
    // A substitute for the second, written after the removal: the third pins the
    // second's event, so it is refused; the first place is not pinned yet.
    let fake_two = entry_at(fatou, n2.chain.clone(), at(61), note(1, "forged two"));
    s.insert(fake_two.clone());
    assert_eq!(
        s.status(&fake_two.id),
        Some(Outcome::Rejected(Reason::Forked))
    );
    s.extend([n2.clone(), n1.clone(), n4.clone()]);
    for e in [&n1, &n2, &n3] {
        assert_eq!(s.status(&e.id), Some(Outcome::Applied));
    }
    assert_eq!(s.status(&n4.id), Some(Outcome::Rejected(Reason::BeyondCut)));
    log.extend([n1, n2, n4, fake_two]);
    same_in_any_order(&cast, &s, &log);
}

// ---- random concurrent histories ----------------------------------------------------

/// One step of a random history: who acts, what they do, and which replica's view
/// they act on.
#[derive(Clone, Debug)]
enum Step {
    /// Replica `r` writes a note as its person.
    Note(usize),
    /// Replica `r` (an admin) removes person `p`.
    Remove(usize, usize),
    /// Replica `r` (an admin) rotates the epoch.
    Rotate(usize),
    /// Replica `r` makes person `p` an organizer.
    Demote(usize, usize),
    /// Replica `r` learns everything replica `q` holds.
    Sync(usize, usize),
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0usize..4).prop_map(Step::Note),
        2 => (0usize..4, 0usize..4).prop_map(|(r, p)| Step::Remove(r, p)),
        2 => (0usize..4).prop_map(Step::Rotate),
        1 => (0usize..4, 0usize..4).prop_map(|(r, p)| Step::Demote(r, p)),
        4 => (0usize..4, 0usize..4).prop_map(|(r, q)| Step::Sync(r, q)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Four replicas (Dana, Eli admins; Fatou, Gus organizers) act on their own views,
    /// concurrently, syncing now and then; removed members keep writing on what they
    /// hold. Whatever the history: every order of the union folds to the same state, no
    /// device writes beyond its cut, and a removed member's devices cannot write.
    #[test]
    fn random_concurrent_authority_histories_converge_and_cut_the_removed(
        steps in proptest::collection::vec(arb_step(), 1..40),
        seed in any::<u64>(),
    ) {
        let (cast, log) = committee();
        let people: Vec<&crate::testing::Person> = cast.insiders().collect();
        let mut views: Vec<Vec<OpenedEntry>> = vec![log.clone(); 4];
        let mut clock = 200u64;
        for step in steps {
            clock += 1;
            let state = |v: &Vec<OpenedEntry>| state_of(&cast, v);
            match step {
                Step::Note(r) => {
                    let s = state(&views[r]);
                    let e = written_on(&s, people[r].author(0), at(clock), note((clock % 3) as u8, "n"));
                    views[r].push(e);
                }
                Step::Remove(r, p) if r != p => {
                    let s = state(&views[r]);
                    let op = Operation::MemberRemoved {
                        member: people[p].identity,
                        cuts: s.cuts_of(&people[p].identity),
                    };
                    let e = written_on(&s, people[r].author(0), at(clock), op);
                    views[r].push(e);
                }
                Step::Rotate(r) => {
                    let s = state(&views[r]);
                    let op = deliver(s.current_epoch().saturating_add(1), &s);
                    let e = OpenedEntry { epoch: s.current_epoch(), ..written_on(&s, people[r].author(0), at(clock), op) };
                    views[r].push(e);
                }
                Step::Demote(r, p) if r != p => {
                    let s = state(&views[r]);
                    let op = Operation::RoleChanged {
                        member: people[p].identity,
                        role: Role::Organizer,
                        cuts: s.cuts_of(&people[p].identity),
                    };
                    let e = written_on(&s, people[r].author(0), at(clock), op);
                    views[r].push(e);
                }
                Step::Sync(r, q) if r != q => {
                    let theirs = views[q].clone();
                    for e in theirs {
                        if !views[r].iter().any(|x| x.id == e.id) {
                            views[r].push(e);
                        }
                    }
                }
                _ => {}
            }
        }
        let mut union: Vec<OpenedEntry> = Vec::new();
        for v in &views {
            for e in v {
                if !union.iter().any(|x| x.id == e.id) {
                    union.push(e.clone());
                }
            }
        }
        let s = state_of(&cast, &union);
        // A deterministic shuffle from the seed, inserted one by one.
        let mut shuffled = union.clone();
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut live = State::new(cast.founder.identity);
        for e in shuffled {
            live.insert(e);
        }
        prop_assert_eq!(live.state_hash(), s.state_hash());
        // Nothing beyond a cut counts, but a removal of the member who cut it (mutual:
        // both hold by the written rule).
        let removes = |e: &OpenedEntry, who: &caucus_proto::IdentityKey| {
            matches!(&e.op, Operation::MemberRemoved { member, .. } if member == who)
        };
        for e in &union {
            if s.status(&e.id) == Some(Outcome::Applied)
                && let Some(cut) = s.cut_seq(&e.author.device)
                && e.chain.seq > cut
            {
                let mutual = union.iter().any(|r| {
                    s.status(&r.id) == Some(Outcome::Applied)
                        && removes(r, &e.author.identity)
                        && removes(e, &r.author.identity)
                });
                prop_assert!(mutual, "{} beyond its cut applied", e.op.kind());
            }
        }
        for m in s.members().filter(|m| !m.is_current()) {
            for d in s.devices_of(&m.identity) {
                prop_assert!(!s.may_write(&m.identity, &d.cert.device));
                prop_assert!(s.cut_seq(&d.cert.device).is_some());
            }
        }
    }
}
