//! Unit tests: one or more per operation, per role refusal and per aggregate.

mod attacks;
mod properties;

use crate::testing::{
    Cast, cert, contact, device, entry, followup, hlc, identity, notice, notice_content, rating,
    removal, revocation, role_change,
};
use crate::*;
use caucus_proto::{Author, ContactField, Day, KeyDelivery, Note, NoticeContent, Operation, Role};

/// A committee: founder Dana (admin, 2 devices), Eli (admin), Fatou and Gus (organizers).
fn committee() -> (Cast, State) {
    let cast = Cast::new(1, 2);
    let state = State::from_entries(cast.founder.identity, cast.setup());
    assert_eq!(
        state.rejected().count(),
        0,
        "{:?}",
        state.rejected().collect::<Vec<_>>()
    );
    (cast, state)
}

fn dana(c: &Cast) -> Author {
    c.founder.author(0)
}
fn eli(c: &Cast) -> Author {
    c.members[0].author(0)
}
fn fatou(c: &Cast) -> Author {
    c.members[1].author(0)
}
fn gus(c: &Cast) -> Author {
    c.members[2].author(0)
}

fn set(contact_n: u8, fields: Vec<ContactField>) -> Operation {
    Operation::ContactSet {
        contact: contact(contact_n),
        fields,
    }
}

fn note(contact_n: u8, text: &str) -> Operation {
    Operation::NoteAdded {
        contact: contact(contact_n),
        note: Note {
            text: text.to_owned(),
            date: None,
            by: None,
        },
    }
}

fn name(s: &str) -> ContactField {
    ContactField::Name(s.to_owned())
}

fn at(wall: u64) -> caucus_proto::Hlc {
    hlc(wall, 0)
}

#[test]
fn founder_is_an_admin_from_the_start() {
    let f = identity(1);
    let s = State::new(f);
    assert!(s.is_member(&f));
    assert_eq!(s.member(&f).map(|m| m.role), Some(Role::Admin));
    assert_eq!(s.current_devices().count(), 0);
    assert_eq!(s.current_epoch(), 1, "the founding key is epoch 1");
    assert!(s.is_empty());
}

#[test]
fn setup_links_every_device_and_adds_every_member() {
    let (cast, s) = committee();
    assert_eq!(s.current_members().count(), 4);
    assert_eq!(s.current_devices().count(), cast.linked_authors().len());
    assert_eq!(s.group_name(), Some("Warehouse committee"));
    assert_eq!(
        s.member(&cast.members[1].identity).map(|m| m.name.as_str()),
        Some("Fatou")
    );
    for a in cast.linked_authors() {
        assert!(s.may_write(&a.identity, &a.device));
    }
    assert!(!s.may_write(&cast.stray_device.identity, &cast.stray_device.device));
}

#[test]
fn contact_fields_are_last_writer_wins_per_field() {
    let (cast, mut s) = committee();
    assert_eq!(
        s.insert(entry(
            fatou(&cast),
            at(100),
            set(1, vec![name("Ana"), ContactField::Shift("Night".into())])
        )),
        Outcome::Applied
    );
    // Concurrent: Gus renames later, Eli rates at the same ms.
    s.insert(entry(gus(&cast), at(110), set(1, vec![name("Ana Ruiz")])));
    s.insert(entry(
        eli(&cast),
        at(110),
        set(1, vec![ContactField::Rating(rating(2))]),
    ));
    // An older rename arriving late loses.
    s.insert(entry(dana(&cast), at(105), set(1, vec![name("A. R.")])));
    let c = s.contact(&contact(1)).unwrap();
    assert_eq!(c.name, "Ana Ruiz");
    assert_eq!(c.shift, "Night");
    assert_eq!(c.rating, Some(rating(2)));
    assert_eq!(
        s.refolds(),
        0,
        "late contact edits merge without folding again"
    );
}

#[test]
fn ties_on_the_clock_break_by_device_then_entry_id() {
    let (cast, _) = committee();
    let a = entry(fatou(&cast), at(100), set(1, vec![name("from fatou")]));
    let b = entry(gus(&cast), at(100), set(1, vec![name("from gus")]));
    let winner = if fatou(&cast).device > gus(&cast).device {
        "from fatou"
    } else {
        "from gus"
    };
    for order in [vec![a.clone(), b.clone()], vec![b, a]] {
        let s = State::from_entries(cast.founder.identity, cast.setup().into_iter().chain(order));
        assert_eq!(s.contact(&contact(1)).unwrap().name, winner);
    }
}

#[test]
fn all_fields_and_tags_are_set() {
    let (cast, mut s) = committee();
    s.insert(entry(
        fatou(&cast),
        at(100),
        set(
            1,
            vec![
                name("Ana"),
                ContactField::Department("Outbound".into()),
                ContactField::Shift("Day".into()),
                ContactField::Job("picker".into()),
                ContactField::Handle("+1 555".into()),
                ContactField::Rating(rating(3)),
                ContactField::Tag {
                    tag: "signed card".into(),
                    on: true,
                },
                ContactField::AssignedTo("Fatou".into()),
            ],
        ),
    ));
    let c = s.contact(&contact(1)).unwrap();
    assert_eq!(
        (
            c.name.as_str(),
            c.department.as_str(),
            c.shift.as_str(),
            c.job.as_str()
        ),
        ("Ana", "Outbound", "Day", "picker")
    );
    assert_eq!(c.handle, "+1 555");
    assert_eq!(c.rating, Some(rating(3)));
    assert_eq!(c.assigned_to, "Fatou");
    assert!(c.has_tag("signed card"));
}

#[test]
fn concurrent_tags_are_both_kept_and_untagging_is_per_tag() {
    let (cast, mut s) = committee();
    let tag = |t: &str, on| ContactField::Tag { tag: t.into(), on };
    s.insert(entry(
        fatou(&cast),
        at(100),
        set(1, vec![tag("signed card", true)]),
    ));
    s.insert(entry(
        gus(&cast),
        at(100),
        set(1, vec![tag("petition", true)]),
    ));
    assert_eq!(
        s.contact(&contact(1))
            .unwrap()
            .tags_on()
            .collect::<Vec<_>>(),
        vec!["petition", "signed card"]
    );
    s.insert(entry(
        gus(&cast),
        at(101),
        set(1, vec![tag("petition", false)]),
    ));
    assert_eq!(
        s.contact(&contact(1))
            .unwrap()
            .tags_on()
            .collect::<Vec<_>>(),
        vec!["signed card"]
    );
}

#[test]
fn notes_append_and_create_the_contact_implicitly() {
    let (cast, mut s) = committee();
    s.insert(entry(fatou(&cast), at(100), note(7, "worried about hours")));
    let c = s.contact(&contact(7)).expect("created by the note");
    assert_eq!(c.name, "");
    s.insert(entry(
        gus(&cast),
        at(90),
        Operation::NoteAdded {
            contact: contact(7),
            note: Note {
                text: "met at the gate".into(),
                date: Some(Day(-1)),
                by: Some("Sam".into()),
            },
        },
    ));
    let notes: Vec<_> = s.notes(&contact(7)).collect();
    assert_eq!(notes.len(), 2);
    // Ordered by the conversation's day: the dated one (day -1) first.
    assert_eq!(notes[0].text, "met at the gate");
    assert_eq!(notes[0].by.as_deref(), Some("Sam"));
    assert_eq!(notes[0].author, gus(&cast));
    assert_eq!(notes[1].text, "worried about hours");
}

#[test]
fn removal_wins_over_concurrent_and_later_edits_and_keeps_notes() {
    let (cast, mut s) = committee();
    s.insert(entry(fatou(&cast), at(100), set(1, vec![name("Ana")])));
    s.insert(entry(fatou(&cast), at(101), note(1, "first talk")));
    s.insert(entry(
        dana(&cast),
        at(110),
        Operation::ContactRemoved {
            contact: contact(1),
        },
    ));
    // A stale phone sends edits and a note, concurrent and later.
    s.insert(entry(gus(&cast), at(110), set(1, vec![name("Ana R")])));
    s.insert(entry(
        gus(&cast),
        at(200),
        set(1, vec![ContactField::Rating(rating(1))]),
    ));
    s.insert(entry(gus(&cast), at(201), note(1, "second talk")));
    assert!(s.contact(&contact(1)).is_none());
    assert_eq!(s.contacts().count(), 0);
    assert_eq!(s.list_contacts(&ContactFilter::all()).len(), 0);
    assert_eq!(s.workplace_map().total.total(), 0);
    let removed: Vec<_> = s.removed_contacts().collect();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].removed.map(|r| r.by), Some(dana(&cast)));
    assert_eq!(s.notes(&contact(1)).count(), 2);
    // A second removal changes nothing.
    let h = s.state_hash();
    s.insert(entry(
        fatou(&cast),
        at(300),
        Operation::ContactRemoved {
            contact: contact(1),
        },
    ));
    assert_eq!(
        s.contact_any(&contact(1)).unwrap().removed.map(|r| r.by),
        Some(dana(&cast))
    );
    assert_eq!(h, s.state_hash());
}

#[test]
fn followups_set_and_done_are_separate_registers() {
    let (cast, mut s) = committee();
    let fs = |due, task: &str| Operation::FollowupSet {
        followup: followup(1),
        contact: contact(1),
        due: Day(due),
        assignee: "Fatou".into(),
        task: task.into(),
    };
    s.insert(entry(fatou(&cast), at(100), fs(10, "call back")));
    s.insert(entry(
        gus(&cast),
        at(120),
        Operation::FollowupDone {
            followup: followup(1),
            done: true,
        },
    ));
    // A concurrent content edit does not reopen it.
    s.insert(entry(dana(&cast), at(121), fs(12, "bring card")));
    let f = s.followup(&followup(1)).unwrap();
    assert!(f.done);
    assert_eq!((f.due, f.task.as_str()), (Day(12), "bring card"));
    assert!(s.contact(&contact(1)).is_some(), "created implicitly");
    s.insert(entry(
        gus(&cast),
        at(130),
        Operation::FollowupDone {
            followup: followup(1),
            done: false,
        },
    ));
    assert!(!s.followup(&followup(1)).unwrap().done);
    // Done for a follow-up never set.
    let r = s.insert(entry(
        gus(&cast),
        at(140),
        Operation::FollowupDone {
            followup: followup(9),
            done: true,
        },
    ));
    assert_eq!(r, Outcome::Rejected(Reason::UnknownFollowup));
}

#[test]
fn followups_due_lists_overdue_first_and_skips_done_and_removed() {
    let (cast, mut s) = committee();
    let fs = |n, c, due| Operation::FollowupSet {
        followup: followup(n),
        contact: contact(c),
        due: Day(due),
        assignee: "Fatou".into(),
        task: "call".into(),
    };
    for (i, (n, c, due)) in [
        (1, 1, 105),
        (2, 1, 98),
        (3, 2, 100),
        (4, 3, 99),
        (5, 1, 200),
        (6, 1, 95),
    ]
    .into_iter()
    .enumerate()
    {
        s.insert(entry(fatou(&cast), at(100 + i as u64), fs(n, c, due)));
    }
    s.insert(entry(
        fatou(&cast),
        at(120),
        Operation::FollowupDone {
            followup: followup(6),
            done: true,
        },
    ));
    s.insert(entry(
        fatou(&cast),
        at(121),
        Operation::ContactRemoved {
            contact: contact(3),
        },
    ));
    let due = s.followups_due(Day(100), 7);
    let got: Vec<_> = due.iter().map(|d| (d.followup.id, d.overdue)).collect();
    assert_eq!(
        got,
        vec![
            (followup(2), true),
            (followup(3), false),
            (followup(1), false)
        ]
    );
    assert_eq!(s.followups_due(Day(100), 0).len(), 2);
}

#[test]
fn notices_post_change_cancel_expire_and_ack() {
    let (cast, mut s) = committee();
    let post = Operation::NoticePosted {
        notice: notice(1),
        content: notice_content("Meeting", false),
    };
    assert_eq!(
        s.insert(entry(fatou(&cast), at(100), post)),
        Outcome::Applied
    );
    let changed = NoticeContent {
        place: "Cafe".into(),
        expires_at_ms: Some(5_000),
        ..notice_content("Meeting", false)
    };
    s.insert(entry(
        fatou(&cast),
        at(101),
        Operation::NoticeChanged {
            notice: notice(1),
            content: changed,
        },
    ));
    let n = s.notice(&notice(1)).unwrap();
    assert_eq!(n.content.place, "Cafe");
    assert_eq!(n.posted_by, cast.members[1].identity);
    assert_eq!(s.current_notices(4_999).len(), 1);
    assert_eq!(s.current_notices(5_000).len(), 0, "expired");
    // Acks: two devices of Dana count once; Gus acks too.
    s.insert(entry(
        cast.founder.author(0),
        at(102),
        Operation::NoticeAcked { notice: notice(1) },
    ));
    s.insert(entry(
        cast.founder.author(1),
        at(103),
        Operation::NoticeAcked { notice: notice(1) },
    ));
    s.insert(entry(
        gus(&cast),
        at(104),
        Operation::NoticeAcked { notice: notice(1) },
    ));
    assert_eq!(
        s.delivered(&notice(1)),
        Some(Delivery { acked: 2, total: 4 })
    );
    assert_eq!(s.not_acked(&notice(1)).count(), 2);
    // Ack from an outsider does not count.
    let r = s.insert(entry(
        cast.outsiders[0].author(0),
        at(105),
        Operation::NoticeAcked { notice: notice(1) },
    ));
    assert_eq!(r, Outcome::Rejected(Reason::NotAMember));
    // The poster's delivery record adds the members whose receipts it got; nobody
    // else may write one, not even the founder.
    let who: Vec<_> = s.current_members().map(|m| m.identity).collect();
    let r = s.insert(entry(
        cast.founder.author(0),
        at(106),
        Operation::NoticeDelivered {
            notice: notice(1),
            members: who.clone(),
        },
    ));
    assert_eq!(
        r,
        Outcome::Rejected(Reason::NotTheirOwn("record deliveries of notices"))
    );
    s.insert(entry(
        cast.members[1].author(0),
        at(107),
        Operation::NoticeDelivered {
            notice: notice(1),
            members: who,
        },
    ));
    assert_eq!(
        s.delivered(&notice(1)),
        Some(Delivery { acked: 4, total: 4 })
    );
    // Cancel is sticky against a later change.
    s.insert(entry(
        fatou(&cast),
        at(110),
        Operation::NoticeCancelled { notice: notice(1) },
    ));
    s.insert(entry(
        fatou(&cast),
        at(111),
        Operation::NoticeChanged {
            notice: notice(1),
            content: notice_content("Back on", false),
        },
    ));
    let n = s.notice(&notice(1)).unwrap();
    assert!(n.cancelled.is_some());
    assert_eq!(n.content.title, "Back on");
    assert_eq!(s.current_notices(0).len(), 0);
    assert_eq!(s.delivered(&notice(9)), None);
}

#[test]
fn removed_members_drop_out_of_delivery_counts() {
    let (cast, mut s) = committee();
    s.insert(entry(
        dana(&cast),
        at(100),
        Operation::NoticePosted {
            notice: notice(1),
            content: notice_content("Now", true),
        },
    ));
    s.insert(entry(
        gus(&cast),
        at(101),
        Operation::NoticeAcked { notice: notice(1) },
    ));
    assert_eq!(
        s.delivered(&notice(1)),
        Some(Delivery { acked: 1, total: 4 })
    );
    s.insert(entry(
        dana(&cast),
        at(102),
        removal(cast.members[2].identity, &cast.members[2].devices),
    ));
    assert_eq!(
        s.delivered(&notice(1)),
        Some(Delivery { acked: 0, total: 3 })
    );
}

#[test]
fn organizer_cannot_send_urgent_notices_or_touch_others_notices() {
    let (cast, mut s) = committee();
    let urgent = Operation::NoticePosted {
        notice: notice(1),
        content: notice_content("Now!", true),
    };
    assert_eq!(
        s.insert(entry(fatou(&cast), at(100), urgent.clone())),
        Outcome::Rejected(Reason::AdminOnly("send an urgent notice"))
    );
    assert!(s.notice(&notice(1)).is_none());
    assert_eq!(
        s.insert(entry(eli(&cast), at(101), urgent)),
        Outcome::Applied
    );
    // Fatou may not downgrade, change or cancel Eli's notice.
    let r = s.insert(entry(
        fatou(&cast),
        at(102),
        Operation::NoticeChanged {
            notice: notice(1),
            content: notice_content("x", false),
        },
    ));
    assert_eq!(r, Outcome::Rejected(Reason::NotTheirOwn("change notices")));
    let r = s.insert(entry(
        fatou(&cast),
        at(103),
        Operation::NoticeCancelled { notice: notice(1) },
    ));
    assert_eq!(r, Outcome::Rejected(Reason::NotTheirOwn("cancel notices")));
    // An organizer may not upgrade their own notice to urgent either.
    s.insert(entry(
        fatou(&cast),
        at(104),
        Operation::NoticePosted {
            notice: notice(2),
            content: notice_content("a", false),
        },
    ));
    let r = s.insert(entry(
        fatou(&cast),
        at(105),
        Operation::NoticeChanged {
            notice: notice(2),
            content: notice_content("a", true),
        },
    ));
    assert_eq!(
        r,
        Outcome::Rejected(Reason::AdminOnly("send an urgent notice"))
    );
    // Admins may cancel anyone's notice.
    assert_eq!(
        s.insert(entry(
            dana(&cast),
            at(106),
            Operation::NoticeCancelled { notice: notice(2) }
        )),
        Outcome::Applied
    );
    let r = s.insert(entry(
        fatou(&cast),
        at(107),
        Operation::NoticeCancelled { notice: notice(5) },
    ));
    assert_eq!(r, Outcome::Rejected(Reason::UnknownNotice));
}

#[test]
fn admin_only_operations_are_refused_to_organizers() {
    let (cast, mut s) = committee();
    let ops = [
        Operation::MemberAdded {
            member: identity(50),
            name: "X".into(),
            role: Role::Admin,
        },
        removal(cast.members[0].identity, &cast.members[0].devices),
        role_change(
            cast.members[1].identity,
            Role::Admin,
            &cast.members[1].devices,
        ),
        Operation::EpochKeyDelivered {
            epoch: 1,
            deliveries: vec![],
        },
        Operation::GroupNamed {
            name: "mine".into(),
        },
        Operation::CampaignSet {
            headcount: 10,
            target_percent: 60,
        },
        revocation(cast.founder.devices[1]),
    ];
    let h = s.state_hash();
    for (i, op) in ops.into_iter().enumerate() {
        let r = s.insert(entry(fatou(&cast), at(100 + i as u64), op));
        assert!(
            matches!(r, Outcome::Rejected(reason) if reason.is_authorization()),
            "{r:?}"
        );
    }
    assert_eq!(s.state_hash(), h);
    assert_eq!(s.rejected().count(), 7);
}

#[test]
fn members_are_added_removed_readded_and_change_roles() {
    let (cast, mut s) = committee();
    let fatou_id = cast.members[1].identity;
    s.insert(entry(
        eli(&cast),
        at(100),
        role_change(fatou_id, Role::Admin, &cast.members[1].devices),
    ));
    assert_eq!(s.member(&fatou_id).unwrap().role, Role::Admin);
    s.insert(entry(
        eli(&cast),
        at(101),
        removal(fatou_id, &cast.members[1].devices),
    ));
    assert!(!s.is_member(&fatou_id));
    assert!(s.member(&fatou_id).unwrap().removed.is_some());
    // Her entries after removal do not count, whatever their clock; her devices leave
    // the current set.
    let r = s.insert(entry(fatou(&cast), at(102), note(1, "x")));
    assert_eq!(r, Outcome::Rejected(Reason::BeyondCut));
    let r = s.insert(entry(fatou(&cast), at(50), note(1, "backdated")));
    assert_eq!(r, Outcome::Rejected(Reason::BeyondCut));
    assert!(s.current_devices().all(|d| d.identity != fatou_id));
    assert_eq!(
        s.insert(entry(
            eli(&cast),
            at(103),
            role_change(fatou_id, Role::Organizer, &cast.members[1].devices)
        )),
        Outcome::Rejected(Reason::TargetNotAMember)
    );
    // Re-added: her old devices stay cut; she writes again from a new device.
    s.insert(entry(
        eli(&cast),
        at(104),
        Operation::MemberAdded {
            member: fatou_id,
            name: "Fatou D".into(),
            role: Role::Organizer,
        },
    ));
    assert!(s.is_member(&fatou_id));
    assert_eq!(
        s.insert(entry(fatou(&cast), at(105), note(1, "back"))),
        Outcome::Rejected(Reason::BeyondCut)
    );
    let fresh = Author {
        identity: fatou_id,
        device: device(3, 9),
    };
    assert_eq!(
        s.insert(entry(
            eli(&cast),
            at(106),
            Operation::DeviceLinked {
                cert: cert(fatou_id, fresh.device, "new phone")
            }
        )),
        Outcome::Applied
    );
    assert_eq!(
        s.insert(entry(fresh, at(107), note(1, "back"))),
        Outcome::Applied
    );
    assert_eq!(s.member(&fatou_id).unwrap().name, "Fatou D");
}

#[test]
fn an_entry_written_before_removal_still_counts_when_it_arrives_late() {
    let (cast, mut s) = committee();
    // Fatou wrote two notes; Eli had seen the second (gossip) but not the first.
    let first = entry(fatou(&cast), at(150), note(1, "before"));
    let second = entry(fatou(&cast), at(151), note(1, "also before"));
    s.insert(second.clone());
    s.insert(entry(
        eli(&cast),
        at(200),
        removal(cast.members[1].identity, &cast.members[1].devices),
    ));
    // The first arrives after the removal: it lies on her chain below the cut.
    assert_eq!(s.insert(first), Outcome::Applied);
    assert_eq!(s.status(&second.id), Some(Outcome::Applied));
    assert_eq!(s.notes(&contact(1)).count(), 2);
}

#[test]
fn non_members_stray_devices_and_revoked_devices_are_rejected() {
    let (cast, mut s) = committee();
    let r = s.insert(entry(cast.outsiders[0].author(0), at(100), note(1, "x")));
    assert_eq!(r, Outcome::Rejected(Reason::NotAMember));
    let r = s.insert(entry(cast.stray_device, at(101), note(1, "x")));
    assert_eq!(r, Outcome::Rejected(Reason::DeviceNotLinked));
    // Another member's device signing for Fatou.
    let r = s.insert(entry(
        Author {
            identity: cast.members[1].identity,
            device: cast.members[2].devices[0],
        },
        at(102),
        note(1, "x"),
    ));
    assert_eq!(r, Outcome::Rejected(Reason::DeviceNotLinked));
    // Dana revokes her own second device; it can no longer write or re-link itself.
    let second = cast.founder.author(1);
    assert_eq!(
        s.insert(entry(dana(&cast), at(103), revocation(second.device))),
        Outcome::Applied
    );
    assert!(s.device(&second.device).unwrap().revoked.is_some());
    assert_eq!(
        s.insert(entry(second, at(104), note(1, "x"))),
        Outcome::Rejected(Reason::BeyondCut)
    );
    let relink = Operation::DeviceLinked {
        cert: cert(second.identity, second.device, "again"),
    };
    assert_eq!(
        s.insert(entry(second, at(105), relink.clone())),
        Outcome::Rejected(Reason::BeyondCut)
    );
    assert_eq!(
        s.insert(entry(dana(&cast), at(106), relink)),
        Outcome::Rejected(Reason::DeviceWasRevoked)
    );
    assert!(s.current_devices().all(|d| d.device != second.device));
    assert_eq!(s.notes(&contact(1)).count(), 0);
}

#[test]
fn devices_link_themselves_and_organizers_manage_only_their_own() {
    let (cast, mut s) = committee();
    let fatou_id = cast.members[1].identity;
    let new_dev = device(60, 0);
    // A device introducing itself for an identity that has a device already: refused
    // (only the first device does; further ones are linked by an existing one).
    let me = Author {
        identity: fatou_id,
        device: new_dev,
    };
    let link = Operation::DeviceLinked {
        cert: cert(fatou_id, new_dev, "tablet"),
    };
    assert_eq!(
        s.insert(entry(me, at(100), link.clone())),
        Outcome::Rejected(Reason::NotFirstDevice)
    );
    assert_eq!(
        s.insert(entry(fatou(&cast), at(100), link)),
        Outcome::Applied
    );
    assert!(s.may_write(&fatou_id, &new_dev));
    assert_eq!(s.devices_of(&fatou_id).count(), 2);
    // An unlinked device may not introduce a different device.
    let other = device(61, 0);
    let r = s.insert(entry(
        Author {
            identity: fatou_id,
            device: other,
        },
        at(101),
        Operation::DeviceLinked {
            cert: cert(fatou_id, device(62, 0), "x"),
        },
    ));
    assert_eq!(r, Outcome::Rejected(Reason::DeviceNotLinked));
    // Fatou may not link or revoke Gus's devices; Eli (admin) may revoke them.
    let gus_id = cast.members[2].identity;
    let r = s.insert(entry(
        fatou(&cast),
        at(102),
        Operation::DeviceLinked {
            cert: cert(gus_id, device(63, 0), "x"),
        },
    ));
    assert_eq!(r, Outcome::Rejected(Reason::NotTheirOwn("link devices")));
    let r = s.insert(entry(
        fatou(&cast),
        at(103),
        revocation(cast.members[2].devices[0]),
    ));
    assert_eq!(r, Outcome::Rejected(Reason::NotTheirOwn("revoke devices")));
    assert_eq!(
        s.insert(entry(fatou(&cast), at(104), revocation(new_dev))),
        Outcome::Applied
    );
    assert_eq!(
        s.insert(entry(
            eli(&cast),
            at(105),
            revocation(cast.members[2].devices[0])
        )),
        Outcome::Applied
    );
    // Unknown device; device of another member; linking for a non-member.
    let r = s.insert(entry(eli(&cast), at(106), revocation(device(70, 0))));
    assert_eq!(r, Outcome::Rejected(Reason::UnknownDevice));
    let r = s.insert(entry(
        eli(&cast),
        at(107),
        Operation::DeviceLinked {
            cert: cert(gus_id, cast.founder.devices[0], "x"),
        },
    ));
    assert_eq!(r, Outcome::Rejected(Reason::DeviceOfAnotherMember));
    let r = s.insert(entry(
        eli(&cast),
        at(108),
        Operation::DeviceLinked {
            cert: cert(identity(70), device(70, 0), "x"),
        },
    ));
    assert_eq!(r, Outcome::Rejected(Reason::TargetNotAMember));
    // A device's certificate is fixed: linking the same key again with another
    // certificate is refused (a changed key is a new device), the same one is harmless.
    let r = s.insert(entry(
        dana(&cast),
        at(109),
        Operation::DeviceLinked {
            cert: cert(cast.founder.identity, cast.founder.devices[0], "old phone"),
        },
    ));
    assert_eq!(r, Outcome::Rejected(Reason::DeviceKeyChanged));
    let r = s.insert(entry(
        dana(&cast),
        at(110),
        Operation::DeviceLinked {
            cert: cert(cast.founder.identity, cast.founder.devices[0], "phone"),
        },
    ));
    assert_eq!(r, Outcome::Applied);
    assert_eq!(
        s.device(&cast.founder.devices[0]).unwrap().cert.label,
        "phone"
    );
}

#[test]
fn epochs_form_one_chain_and_concurrent_changes_settle_on_a_follow_up() {
    let (cast, mut s) = committee();
    let deliver = |epoch, devs: &[caucus_proto::DeviceKey]| Operation::EpochKeyDelivered {
        epoch,
        deliveries: devs
            .iter()
            .map(|d| KeyDelivery {
                device: *d,
                sealed: vec![1; 48],
            })
            .collect(),
    };
    let devs: Vec<_> = s.current_devices().map(|c| c.device).collect();
    let base = s.authority_heads().to_vec();
    // Epoch numbers are not taken as given: only the next one, from an admin.
    for bad in [3, 1_000, u64::MAX] {
        assert_eq!(
            s.insert(entry(dana(&cast), at(90), deliver(bad, &devs))),
            Outcome::Rejected(Reason::EpochNotNext),
            "epoch {bad}"
        );
    }
    assert!(matches!(
        s.insert(entry(fatou(&cast), at(91), deliver(2, &devs))),
        Outcome::Rejected(Reason::AdminOnly(_))
    ));
    // To exactly the current devices: not one fewer, not a stranger more.
    assert_eq!(
        s.insert(entry(dana(&cast), at(92), deliver(2, &devs[1..]))),
        Outcome::Rejected(Reason::WrongRecipients)
    );
    let mut more = devs.clone();
    more.push(device(77, 0));
    assert_eq!(
        s.insert(entry(dana(&cast), at(93), deliver(2, &more))),
        Outcome::Rejected(Reason::WrongRecipients)
    );
    // Two admins change the epoch at once: Dana to every device, Eli after removing Gus
    // (on a past without Dana's change), so the two epoch-2 keys reach different devices.
    let a = crate::testing::entry_at(
        dana(&cast),
        s.next_chain(&dana(&cast).device, &deliver(2, &devs)),
        at(100),
        deliver(2, &devs),
    );
    s.insert(a.clone());
    assert_eq!(s.status(&a.id), Some(Outcome::Applied));
    assert_eq!(s.current_epoch(), 2);
    let gus_gone = crate::testing::entry_at(
        eli(&cast),
        caucus_proto::Chain {
            heads: base.clone(),
            ..s.next_chain(&eli(&cast).device, &deliver(2, &devs))
        },
        at(100),
        removal(cast.members[2].identity, &cast.members[2].devices),
    );
    let without_gus: Vec<_> = devs
        .iter()
        .copied()
        .filter(|d| !cast.members[2].devices.contains(d))
        .collect();
    let b = crate::testing::entry_at(
        eli(&cast),
        caucus_proto::Chain {
            seq: gus_gone.chain.seq + 1,
            prev: Some(gus_gone.event),
            heads: vec![gus_gone.event],
        },
        at(101),
        deliver(2, &without_gus),
    );
    s.extend([gus_gone.clone(), b.clone()]);
    assert_eq!(s.status(&b.id), Some(Outcome::Applied));
    assert_eq!(s.epoch_deliveries()[&2].len(), 2);
    assert!(
        !s.epoch_settled(),
        "the two epoch-2 keys reach different devices"
    );
    // A follow-up on only one branch is refused; one on both settles it, without Gus.
    let mut heads = vec![a.event, b.event];
    heads.sort();
    let one_branch = crate::testing::entry_at(
        dana(&cast),
        caucus_proto::Chain {
            seq: a.chain.seq + 1,
            prev: Some(a.event),
            heads: vec![a.event],
        },
        at(110),
        deliver(3, &devs),
    );
    let one_branch = OpenedEntry {
        epoch: 2,
        ..one_branch
    };
    s.insert(one_branch.clone());
    assert_eq!(
        s.status(&one_branch.id),
        Some(Outcome::Rejected(Reason::EpochNotSettled))
    );
    let follow_up = crate::testing::entry_at(
        dana(&cast),
        caucus_proto::Chain {
            seq: one_branch.chain.seq + 1,
            prev: Some(one_branch.event),
            heads,
        },
        at(111),
        deliver(3, &without_gus),
    );
    let follow_up = OpenedEntry {
        epoch: 2,
        ..follow_up
    };
    s.insert(follow_up.clone());
    assert_eq!(s.status(&follow_up.id), Some(Outcome::Applied));
    assert_eq!(s.current_epoch(), 3);
    assert!(s.epoch_settled());
    assert_eq!(s.epoch_winner().map(|d| d.entry), Some(follow_up.id));
    assert!(
        s.epoch_winner()
            .is_some_and(|d| d.devices().all(|x| !cast.members[2].devices.contains(&x)))
    );
}

#[test]
fn group_name_and_campaign_are_last_writer_wins() {
    let (cast, mut s) = committee();
    s.insert(entry(
        eli(&cast),
        at(110),
        Operation::GroupNamed { name: "B".into() },
    ));
    s.insert(entry(
        dana(&cast),
        at(100),
        Operation::GroupNamed { name: "A".into() },
    ));
    assert_eq!(s.group_name(), Some("B"));
    s.insert(entry(
        dana(&cast),
        at(100),
        Operation::CampaignSet {
            headcount: 400,
            target_percent: 70,
        },
    ));
    s.insert(entry(
        eli(&cast),
        at(101),
        Operation::CampaignSet {
            headcount: 500,
            target_percent: 65,
        },
    ));
    assert_eq!(
        s.campaign(),
        Some(Campaign {
            headcount: 500,
            target_percent: 65
        })
    );
}

/// Contacts 1..=6 over two departments and shifts with various ratings.
fn populated() -> (Cast, State) {
    let (cast, mut s) = committee();
    /// Name, department, shift, rating, job, assigned organizer.
    type Row<'a> = (&'a str, &'a str, &'a str, Option<u8>, &'a str, &'a str);
    let rows: [Row<'_>; 6] = [
        ("Ana Ruiz", "Outbound", "Day", Some(1), "picker", "Fatou"),
        ("ben okafor", "Outbound", "Night", Some(2), "stower", "Gus"),
        ("Chloé", "Outbound", "Night", Some(5), "picker", "Gus"),
        ("Dmitri", "Inbound", "Day", Some(3), "forklift", ""),
        ("Eve", "Inbound", "Day", None, "picker", "Fatou"),
        ("Ana Ruiz", "Inbound", "Night", Some(2), "stower", ""),
    ];
    for (i, (n, d, sh, r, job, who)) in rows.into_iter().enumerate() {
        let mut fields = vec![
            name(n),
            ContactField::Department(d.into()),
            ContactField::Shift(sh.into()),
            ContactField::Job(job.into()),
            ContactField::AssignedTo(who.into()),
        ];
        if let Some(r) = r {
            fields.push(ContactField::Rating(rating(r)));
        }
        s.insert(entry(
            fatou(&cast),
            at(100 + i as u64),
            set(i as u8 + 1, fields),
        ));
    }
    s.insert(entry(
        gus(&cast),
        at(120),
        set(
            2,
            vec![ContactField::Tag {
                tag: "Signed Card".into(),
                on: true,
            }],
        ),
    ));
    s.insert(entry(
        gus(&cast),
        at(121),
        note(4, "Talks about the HEAT in the trailers"),
    ));
    (cast, s)
}

#[test]
fn workplace_map_counts_by_department_shift_and_rating() {
    let (cast, mut s) = populated();
    let m = s.workplace_map();
    assert_eq!(m.cell("Outbound", "Night").get(rating(2)), 1);
    assert_eq!(m.cell("Outbound", "Night").get(rating(5)), 1);
    assert_eq!(m.cell("Inbound", "Day").unrated, 1);
    assert_eq!(m.cell("Inbound", "Day").total(), 2);
    assert_eq!(m.cell("Nowhere", "Day").total(), 0);
    assert_eq!(m.by_department["Outbound"].total(), 3);
    assert_eq!(m.by_department["Outbound"].supportive(), 2);
    assert_eq!(m.by_shift["Night"].total(), 3);
    assert_eq!(m.total.total(), 6);
    assert_eq!(m.total.rated(), 5);
    assert_eq!(m.total.supportive(), 3);
    s.insert(entry(
        fatou(&cast),
        at(200),
        Operation::ContactRemoved {
            contact: contact(1),
        },
    ));
    assert_eq!(s.workplace_map().total.supportive(), 2);
}

#[test]
fn support_share_uses_headcount_or_says_it_used_contacts() {
    let (cast, mut s) = populated();
    let share = s.support_share();
    assert_eq!(share.supportive, 3);
    assert_eq!(share.base, ShareBase::Contacts(6));
    assert_eq!(share.target_percent, None);
    assert_eq!(share.target_met(), None);
    assert!((share.percent() - 50.0).abs() < 1e-9);
    s.insert(entry(
        dana(&cast),
        at(200),
        Operation::CampaignSet {
            headcount: 5,
            target_percent: 60,
        },
    ));
    let share = s.support_share();
    assert_eq!(share.base, ShareBase::Headcount(5));
    assert_eq!(share.target_met(), Some(true));
    assert_eq!(share.still_needed(), Some(0));
    s.insert(entry(
        dana(&cast),
        at(201),
        Operation::CampaignSet {
            headcount: 10,
            target_percent: 70,
        },
    ));
    let share = s.support_share();
    assert_eq!(share.target_met(), Some(false));
    assert_eq!(share.still_needed(), Some(4));
    s.insert(entry(
        dana(&cast),
        at(202),
        Operation::CampaignSet {
            headcount: 0,
            target_percent: 50,
        },
    ));
    let share = s.support_share();
    assert_eq!(share.base, ShareBase::Contacts(6));
    assert_eq!(share.target_met(), Some(true));
    assert_eq!(State::new(identity(1)).support_share().percent(), 0.0);
}

#[test]
fn contact_listing_filters_and_orders_by_name_then_id() {
    let (_, s) = populated();
    let names = |f: ContactFilter| -> Vec<(String, u8)> {
        s.list_contacts(&f)
            .iter()
            .map(|c| (c.name.clone(), c.id.0[0]))
            .collect()
    };
    let all = names(ContactFilter::all());
    assert_eq!(all.len(), 6);
    assert_eq!(all[0], ("Ana Ruiz".into(), 1));
    assert_eq!(all[1], ("Ana Ruiz".into(), 6));
    assert_eq!(all[2].0, "ben okafor");
    assert_eq!(names(ContactFilter::all().department("outbound")).len(), 3);
    assert_eq!(
        names(ContactFilter::all().department("outbound").shift("NIGHT")).len(),
        2
    );
    assert_eq!(
        names(ContactFilter::all().rating(RatingFilter::Is(rating(2)))).len(),
        2
    );
    assert_eq!(
        names(ContactFilter::all().rating(RatingFilter::Unrated)),
        vec![("Eve".into(), 5)]
    );
    assert_eq!(
        names(ContactFilter::all().rating(RatingFilter::Supportive)).len(),
        3
    );
    assert_eq!(
        names(ContactFilter::all().tag("signed card")),
        vec![("ben okafor".into(), 2)]
    );
    assert_eq!(names(ContactFilter::all().assignee("gus")).len(), 2);
    assert_eq!(
        names(ContactFilter::all().text("heat")),
        vec![("Dmitri".into(), 4)]
    );
    assert_eq!(names(ContactFilter::all().text("PICK")).len(), 3);
    assert_eq!(names(ContactFilter::all().text("chlo")).len(), 1);
    assert_eq!(
        names(ContactFilter::all().department("Inbound").text("ana")),
        vec![("Ana Ruiz".into(), 6)]
    );
}

#[test]
fn duplicates_are_reported_and_change_nothing() {
    let (cast, mut s) = committee();
    let e = entry(fatou(&cast), at(100), note(1, "x"));
    assert_eq!(s.insert(e.clone()), Outcome::Applied);
    let h = s.state_hash();
    assert_eq!(s.insert(e.clone()), Outcome::Duplicate);
    assert_eq!(s.extend([e.clone(), e.clone()]), 0);
    assert_eq!(s.state_hash(), h);
    assert_eq!(s.status(&e.id), Some(Outcome::Applied));
    assert!(s.contains(&e.id));
}

#[test]
fn resealed_copies_are_one_event_and_the_smallest_id_is_held() {
    let (cast, mut s) = committee();
    let original = entry(fatou(&cast), at(100), note(1, "only once"));
    let copies: Vec<_> = (0..6)
        .map(|salt| crate::testing::resealed(&original, salt))
        .collect();
    assert_eq!(s.insert(original.clone()), Outcome::Applied);
    for c in &copies {
        assert_eq!(s.insert(c.clone()), Outcome::Duplicate);
    }
    let smallest = copies
        .iter()
        .chain([&original])
        .map(|e| e.id)
        .min()
        .unwrap();
    let notes: Vec<_> = s.notes(&contact(1)).collect();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].entry, smallest);
    assert_eq!(s.status(&smallest), Some(Outcome::Applied));
    for e in copies
        .iter()
        .chain([&original])
        .filter(|e| e.id != smallest)
    {
        assert_eq!(s.status(&e.id), Some(Outcome::Duplicate));
        assert!(s.contains(&e.id));
    }
    // Another replica holding only some copies, inserted the other way round, agrees.
    let mut other = State::from_entries(cast.founder.identity, cast.setup());
    other.extend(copies.iter().rev().cloned().chain([original]));
    assert_eq!(other.state_hash(), s.state_hash());
    assert_eq!(other.len(), s.len());
}

#[test]
fn a_late_member_added_makes_earlier_rejected_entries_count() {
    let (cast, _) = committee();
    let newcomer = identity(40);
    let dev = device(40, 0);
    let me = Author {
        identity: newcomer,
        device: dev,
    };
    let mut s = State::from_entries(cast.founder.identity, cast.setup());
    let add = entry(
        dana(&cast),
        at(100),
        Operation::MemberAdded {
            member: newcomer,
            name: "New".into(),
            role: Role::Organizer,
        },
    );
    let link = entry(
        me,
        at(101),
        Operation::DeviceLinked {
            cert: cert(newcomer, dev, "phone"),
        },
    );
    let n = entry(me, at(102), note(1, "hello"));
    // The link was made on the addition, which has not arrived: it waits.
    assert_eq!(
        s.insert(link.clone()),
        Outcome::Rejected(Reason::AwaitingAuthority)
    );
    assert_eq!(s.insert(n.clone()), Outcome::Rejected(Reason::NotAMember));
    s.insert(add);
    assert_eq!(s.status(&link.id), Some(Outcome::Applied));
    assert_eq!(s.status(&n.id), Some(Outcome::Applied));
    assert_eq!(s.rejected().count(), 0);
    assert_eq!(s.notes(&contact(1)).count(), 1);
}

#[test]
fn extend_merges_late_notes_in_place_and_folds_again_otherwise() {
    let (cast, mut s) = committee();
    s.extend([
        entry(fatou(&cast), at(100), note(1, "a")),
        entry(fatou(&cast), at(101), note(1, "b")),
    ]);
    assert_eq!(s.refolds(), 0);
    // A batch with a late note and a new tail: no fold of the whole log.
    s.extend([
        entry(fatou(&cast), at(50), note(1, "c")),
        entry(fatou(&cast), at(120), note(1, "d")),
    ]);
    assert_eq!(s.refolds(), 0);
    assert_eq!(s.notes(&contact(1)).count(), 4);
    // A late operation that does not merge in place folds again, once per batch.
    s.extend([
        entry(
            dana(&cast),
            at(60),
            Operation::GroupNamed { name: "x".into() },
        ),
        entry(fatou(&cast), at(55), note(1, "e")),
    ]);
    assert_eq!(s.refolds(), 1);
    assert_eq!(s.notes(&contact(1)).count(), 5);
    let batch = State::from_entries(cast.founder.identity, s.entries().cloned());
    assert_eq!(batch.state_hash(), s.state_hash());
}

#[test]
fn late_entries_fold_again_only_when_authority_changed_after_them() {
    let (cast, mut s) = committee();
    s.insert(entry(fatou(&cast), at(100), note(1, "a")));
    s.insert(entry(
        dana(&cast),
        at(101),
        Operation::NoticePosted {
            notice: notice(1),
            content: notice_content("Now", true),
        },
    ));
    s.insert(entry(gus(&cast), at(110), set(1, vec![name("Ana")])));
    // Late note, ack and edit: merged in place.
    s.insert(entry(gus(&cast), at(90), note(1, "b")));
    s.insert(entry(
        gus(&cast),
        at(105),
        Operation::NoticeAcked { notice: notice(1) },
    ));
    s.insert(entry(fatou(&cast), at(108), set(1, vec![name("old")])));
    // An ack that sorts before its notice is unknown there, as in a full fold.
    let early = s.insert(entry(
        fatou(&cast),
        at(95),
        Operation::NoticeAcked { notice: notice(1) },
    ));
    assert_eq!(early, Outcome::Rejected(Reason::UnknownNotice));
    assert_eq!(s.refolds(), 0);
    assert_eq!(s.contact(&contact(1)).unwrap().name, "Ana");
    assert_eq!(s.contact(&contact(1)).unwrap().first_seen, at(90));
    // Fatou wrote a note, then was removed; the note arrives after the removal (at an
    // earlier clock) and still counts: it lies below her cut.
    let late = entry(fatou(&cast), at(150), note(1, "c"));
    s.insert(entry(
        eli(&cast),
        at(200),
        removal(cast.members[1].identity, &cast.members[1].devices),
    ));
    assert_eq!(s.refolds(), 1);
    // Her device is under a cut: its late entries are judged with the whole fold.
    assert_eq!(s.insert(late), Outcome::Applied);
    assert_eq!(s.refolds(), 2);
    // Any other late operation folds again.
    s.insert(entry(
        dana(&cast),
        at(160),
        Operation::GroupNamed { name: "x".into() },
    ));
    assert_eq!(s.refolds(), 3);
    let batch = State::from_entries(cast.founder.identity, s.entries().cloned());
    assert_eq!(batch.state_hash(), s.state_hash());
    assert_eq!(batch.rejected().count(), s.rejected().count());
}

#[test]
fn samples_are_deterministic_and_mostly_authorized() {
    let cast = Cast::default();
    let a = cast.sample(7, 300, true);
    assert_eq!(a, cast.sample(7, 300, true));
    assert_ne!(a, cast.sample(8, 300, true));
    assert_eq!(a.len(), cast.setup().len() + 300);
    let s = State::from_entries(cast.founder.identity, a.iter().cloned());
    let applied = s.len() - s.rejected().count();
    assert!(applied * 2 > s.len(), "{applied} of {}", s.len());
    assert!(s.all_notes().count() > 10);
}

#[test]
fn opened_entries_come_from_bodies_and_devices_map_to_identities() {
    let (cast, s) = committee();
    let body = caucus_proto::Body {
        version: caucus_proto::BODY_VERSION,
        author: fatou(&cast),
        chain: caucus_proto::Chain::first(vec![]),
        hlc: at(5),
        op: note(1, "x"),
        signature: caucus_proto::Signature([0; 64]),
    };
    let e = OpenedEntry::new(caucus_proto::EntryId([9; 32]), 3, body);
    assert_eq!((e.author, e.hlc, e.epoch), (fatou(&cast), at(5), 3));
    assert_eq!(
        s.identity_of(&fatou(&cast).device),
        Some(fatou(&cast).identity)
    );
    assert_eq!(s.identity_of(&cast.stray_device.device), None);
}

#[test]
fn invalid_operations_are_rejected() {
    let (cast, mut s) = committee();
    let r = s.insert(entry(
        dana(&cast),
        at(100),
        Operation::CampaignSet {
            headcount: 1,
            target_percent: 101,
        },
    ));
    assert!(matches!(r, Outcome::Rejected(Reason::Invalid(_))));
    let r = s.insert(entry(
        dana(&cast),
        at(101),
        Operation::ContactSet {
            contact: contact(1),
            fields: vec![],
        },
    ));
    assert!(matches!(r, Outcome::Rejected(Reason::Invalid(_))));
}

#[test]
fn state_hash_changes_with_the_state() {
    let (cast, mut s) = committee();
    let h0 = s.state_hash();
    s.insert(entry(fatou(&cast), at(100), set(1, vec![name("A")])));
    let h1 = s.state_hash();
    assert_ne!(h0, h1);
    s.insert(entry(fatou(&cast), at(101), set(1, vec![name("B")])));
    assert_ne!(h1, s.state_hash());
    // Rejected entries do not change the hash.
    let h2 = s.state_hash();
    s.insert(entry(cast.outsiders[0].author(0), at(102), note(1, "x")));
    assert_eq!(h2, s.state_hash());
}

fn records(ops: Vec<Operation>) -> Operation {
    Operation::Records { ops }
}

#[test]
fn records_fold_like_their_rows_written_one_by_one() {
    let (cast, base) = committee();
    let rows = vec![
        set(1, vec![name("Ana"), ContactField::Rating(rating(2))]),
        note(1, "wants a shift meeting"),
        set(2, vec![name("Ben")]),
        note(2, "asked about pay"),
        note(1, "will bring a coworker"),
    ];
    let packed = entry(dana(&cast), at(500), records(rows.clone()));
    let one_by_one = packed.clone().records();
    assert_eq!(one_by_one.len(), 5);
    for (i, r) in one_by_one.iter().enumerate() {
        assert_eq!(r.hlc, hlc(500, i as u32), "record {i} is stamped clock + i");
        assert_eq!(r.id, caucus_proto::EntryId::of_record(&packed.id, i as u32));
    }
    assert_eq!(packed.last_hlc(), hlc(500, 4));

    let mut a = base.clone();
    assert_eq!(a.insert(packed.clone()), Outcome::Applied);
    let mut b = base.clone();
    b.extend(one_by_one);
    assert_eq!(a.state_hash(), b.state_hash());
    assert_eq!(a.len(), b.len());
    assert_eq!(a.contact(&contact(1)).map(|c| c.name.as_str()), Some("Ana"));
    assert_eq!(a.notes(&contact(1)).count(), 2);
    // Held, reported and deduplicated under the entry's own id.
    assert!(a.contains(&packed.id));
    assert_eq!(a.status(&packed.id), Some(Outcome::Applied));
    assert_eq!(a.insert(packed.clone()), Outcome::Duplicate);
    let hash = a.state_hash();
    a.extend([packed.clone()]);
    assert_eq!(a.state_hash(), hash, "a second copy changes nothing");
    // A re-sealed copy (another envelope, same signed body) is folded as the same rows,
    // and both copies give one state in any order.
    let copy = crate::testing::resealed(&packed, 7);
    a.extend([copy.clone()]);
    assert_eq!(a.notes(&contact(1)).count(), 2);
    assert_eq!(a.len(), b.len());
    let mut c = base.clone();
    c.insert(copy);
    c.insert(packed);
    assert_eq!(a.state_hash(), c.state_hash());
}

#[test]
fn records_merge_with_concurrent_edits_by_their_own_clocks() {
    let (cast, base) = committee();
    // Row 1 of the import sets Ana's name at (500, 1); Eli renames her at (500, 0),
    // before it, and at (501, 0), after it.
    let import = entry(
        dana(&cast),
        at(500),
        records(vec![note(1, "first"), set(1, vec![name("Ana")])]),
    );
    let before = entry(eli(&cast), hlc(500, 0), set(1, vec![name("Anna")]));
    let after = entry(eli(&cast), hlc(501, 0), set(1, vec![name("Ana O.")]));
    for order in [
        vec![import.clone(), before.clone(), after.clone()],
        vec![after.clone(), import.clone(), before.clone()],
        vec![before.clone(), after.clone(), import.clone()],
    ] {
        let mut s = base.clone();
        for e in order {
            s.insert(e);
        }
        assert_eq!(
            s.contact(&contact(1)).map(|c| c.name.as_str()),
            Some("Ana O.")
        );
        assert_eq!(s.notes(&contact(1)).count(), 1);
    }
    let mut s = base.clone();
    s.insert(before);
    s.insert(import);
    assert_eq!(s.contact(&contact(1)).map(|c| c.name.as_str()), Some("Ana"));
}

#[test]
fn records_from_an_outsider_are_rejected_row_by_row() {
    let (cast, mut s) = committee();
    let outsider = cast.unauthorized_authors()[0];
    let packed = entry(outsider, at(500), records(vec![note(1, "x"), note(2, "y")]));
    let hash = s.state_hash();
    assert!(matches!(s.insert(packed.clone()), Outcome::Rejected(_)));
    assert!(matches!(s.status(&packed.id), Some(Outcome::Rejected(_))));
    assert_eq!(s.notes(&contact(1)).count(), 0);
    assert_eq!(s.state_hash(), hash, "rejected rows change nothing");
    assert_eq!(s.rejected().count(), 2);
}
