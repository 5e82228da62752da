//! The materialized views equal a fresh fold.
//!
//! Random committees' entries (the model's `test-utils` generators, membership churn
//! included) arrive in random order, in several batches, some first as bare envelopes
//! and opened later, some twice, some as re-sealed copies. After every batch, every view
//! read back through SQL equals what a fresh `State::from_entries` of all stored bodies
//! answers, query by query, and the writer's fold equals the fresh one.

#![allow(clippy::unwrap_used)]

use caucus_model::testing::{Cast, resealed};
use caucus_model::{ContactFilter, OpenedEntry, RatingFilter, State};
use caucus_proto::{BODY_VERSION, Body, Day, GroupId, Rating, Signature};
use caucus_store::{
    ContactRow, DbKey, DeviceRow, FollowupRow, GroupState, Incoming, MemberRow, NoteRow, NoticeRow,
    Store, StoredEntry, VerifiedBody,
};
use proptest::prelude::*;

const GROUP: GroupId = GroupId([0x33; 16]);

fn incoming(e: &OpenedEntry, with_body: bool) -> Incoming {
    let mut envelope = b"envelope:".to_vec();
    envelope.extend_from_slice(&e.id.0);
    Incoming {
        entry: StoredEntry {
            id: e.id,
            group: GROUP,
            epoch: e.epoch,
            envelope,
        },
        body: with_body.then(|| VerifiedBody {
            body_id: e.event.0,
            body: Body {
                version: BODY_VERSION,
                author: e.author,
                chain: e.chain.clone(),
                hlc: e.hlc,
                op: e.op.clone(),
                signature: Signature([0; 64]),
            },
        }),
    }
}

fn filters() -> Vec<ContactFilter> {
    vec![
        ContactFilter::all(),
        ContactFilter::all().department("outbound"),
        ContactFilter::all().shift("Night"),
        ContactFilter::all().rating(RatingFilter::Supportive),
        ContactFilter::all().rating(RatingFilter::Unrated),
        ContactFilter::all().rating(RatingFilter::Is(Rating::new(3).unwrap())),
        ContactFilter::all().tag("Signed Card"),
        ContactFilter::all().assignee("dana"),
        ContactFilter::all().text("WILL"),
        ContactFilter::all().text("ana"),
        ContactFilter::all()
            .department("Inbound")
            .shift("day")
            .text("o"),
    ]
}

/// Every view of `store` against a fresh fold of the bodies it holds.
fn check(store: &Store, live: &GroupState) {
    let fresh: State = store.load_group(&GROUP).unwrap().state().clone();
    assert_eq!(live.state().state_hash(), fresh.state_hash(), "live fold");
    let mut contacts: Vec<ContactRow> = fresh
        .contacts()
        .chain(fresh.removed_contacts())
        .map(ContactRow::from_model)
        .collect();
    contacts.sort_by_key(|c| c.id);
    assert_eq!(store.all_contacts(&GROUP).unwrap(), contacts);
    let notes: Vec<NoteRow> = fresh.all_notes().map(NoteRow::from_model).collect();
    assert_eq!(store.all_notes(&GROUP).unwrap(), notes);
    let followups: Vec<FollowupRow> = fresh.followups().map(FollowupRow::from_model).collect();
    assert_eq!(store.followups(&GROUP).unwrap(), followups);
    let notices: Vec<NoticeRow> = fresh.notices().map(NoticeRow::from_model).collect();
    assert_eq!(store.all_notices(&GROUP).unwrap(), notices);
    let members: Vec<MemberRow> = fresh
        .members()
        .map(|m| MemberRow {
            identity: m.identity,
            name: m.name.clone(),
            role: m.role,
            current: m.is_current(),
        })
        .collect();
    assert_eq!(store.members(&GROUP).unwrap(), members);
    let mut devices: Vec<DeviceRow> = fresh
        .members()
        .flat_map(|m| fresh.devices_of(&m.identity))
        .map(|d| DeviceRow {
            device: d.cert.device,
            identity: d.cert.identity,
            dh: d.cert.dh,
            label: d.cert.label.clone(),
            revoked: d.revoked.is_some(),
        })
        .collect();
    devices.sort_by_key(|d| d.device);
    assert_eq!(store.devices(&GROUP).unwrap(), devices);

    // The queries, against the model's own.
    assert_eq!(store.workplace_map(&GROUP).unwrap(), fresh.workplace_map());
    assert_eq!(store.support_share(&GROUP).unwrap(), fresh.support_share());
    assert_eq!(
        store.group_name(&GROUP).unwrap().as_deref(),
        fresh.group_name()
    );
    for f in filters() {
        let want: Vec<ContactRow> = fresh
            .list_contacts(&f)
            .into_iter()
            .map(ContactRow::from_model)
            .collect();
        assert_eq!(store.contacts(&GROUP, &f).unwrap(), want, "{f:?}");
    }
    for c in fresh.contacts() {
        let detail = store.contact(&GROUP, &c.id).unwrap().unwrap();
        assert_eq!(detail.contact, ContactRow::from_model(c));
        let notes: Vec<NoteRow> = fresh.notes(&c.id).map(NoteRow::from_model).collect();
        assert_eq!(detail.notes, notes);
    }
    for c in fresh.removed_contacts() {
        assert!(store.contact(&GROUP, &c.id).unwrap().is_none());
    }
    for (today, horizon) in [(20_000, 0), (20_004, 3), (20_011, 30)] {
        let want: Vec<_> = fresh
            .followups_due(Day(today), horizon)
            .into_iter()
            .map(|d| {
                (
                    FollowupRow::from_model(d.followup),
                    d.contact.name.clone(),
                    d.overdue,
                )
            })
            .collect();
        let got: Vec<_> = store
            .followups_due(&GROUP, Day(today), horizon)
            .unwrap()
            .into_iter()
            .map(|d| (d.followup, d.contact_name, d.overdue))
            .collect();
        assert_eq!(got, want);
    }
    for now in [0, 150, 10_000] {
        let want: Vec<_> = fresh
            .current_notices(now)
            .into_iter()
            .map(|n| (NoticeRow::from_model(n), fresh.delivered(&n.id).unwrap()))
            .collect();
        let got: Vec<_> = store
            .current_notices(&GROUP, now)
            .unwrap()
            .into_iter()
            .map(|s| (s.notice, s.delivery))
            .collect();
        assert_eq!(got, want);
    }
}

/// How each entry arrives.
#[derive(Clone, Copy, Debug)]
enum Arrival {
    /// With its body.
    Opened,
    /// As a bare envelope first, opened in a later batch.
    EnvelopeFirst,
    /// Twice, in two batches.
    Twice,
    /// With a re-sealed copy (new id, same event) in a later batch.
    Resealed,
}

fn arb_arrival() -> impl Strategy<Value = Arrival> {
    prop_oneof![
        12 => Just(Arrival::Opened),
        2 => Just(Arrival::EnvelopeFirst),
        1 => Just(Arrival::Twice),
        1 => Just(Arrival::Resealed),
    ]
}

fn arb_case() -> impl Strategy<Value = (Vec<OpenedEntry>, Vec<Arrival>, Vec<usize>)> {
    let cast = Cast::default();
    prop_oneof![
        // Setup first, the rest in random order.
        cast.arb_entries(0..50, true),
        // Everything shuffled: membership arrives late, forcing re-folds.
        cast.arb_entries(0..50, true).prop_shuffle(),
    ]
    .prop_flat_map(|entries| {
        let n = entries.len();
        (
            Just(entries),
            proptest::collection::vec(arb_arrival(), n),
            proptest::collection::vec(0..n.max(1), 1..5),
        )
    })
}

proptest! {
    // 48 cases: each opens a fresh encrypted database and commits 2-10 durable
    // (fsync'd) batches, then reads every view back after each; 48 keep this file at
    // a few seconds in a debug build while covering shuffled and in-order arrivals,
    // re-folds, late bodies, duplicates and re-sealed copies many times over.
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn views_equal_a_fresh_fold((entries, arrivals, cuts) in arb_case()) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db"), &DbKey::from_bytes([7; 32])).unwrap();
        let cast = Cast::default();
        store.add_group(GROUP, cast.founder.identity).unwrap();
        let mut live = store.load_group(&GROUP).unwrap();
        check(&store, &live);

        let mut cuts = cuts;
        cuts.push(entries.len());
        cuts.sort_unstable();
        let mut later: Vec<Incoming> = Vec::new();
        let mut start = 0;
        for (b, &end) in cuts.iter().enumerate() {
            let mut batch: Vec<Incoming> = std::mem::take(&mut later);
            for (i, e) in entries[start..end].iter().enumerate() {
                match arrivals[start + i] {
                    Arrival::Opened => batch.push(incoming(e, true)),
                    Arrival::EnvelopeFirst => {
                        batch.push(incoming(e, false));
                        later.push(incoming(e, true));
                    }
                    Arrival::Twice => {
                        batch.push(incoming(e, true));
                        later.push(incoming(e, true));
                    }
                    Arrival::Resealed => {
                        batch.push(incoming(e, true));
                        later.push(incoming(&resealed(e, b as u64), true));
                    }
                }
            }
            start = end;
            store.apply(&mut live, batch, 1).unwrap();
            check(&store, &live);
        }
        if !later.is_empty() {
            store.apply(&mut live, later, 2).unwrap();
            check(&store, &live);
        }
        // A writer restarting trusts the views it finds, and keeps them right.
        drop(live);
        let mut again = store.load_group(&GROUP).unwrap();
        let extra: Vec<Incoming> = entries.iter().rev().take(3).map(|e| incoming(e, true)).collect();
        let applied = store.apply(&mut again, extra, 3).unwrap();
        prop_assert_eq!(applied.opened, 0);
        check(&store, &again);
    }
}

#[test]
fn views_start_with_the_founder_and_refuse_other_groups() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("db"), &DbKey::from_bytes([7; 32])).unwrap();
    let cast = Cast::default();
    store.add_group(GROUP, cast.founder.identity).unwrap();
    // Registering again is a no-op; another founder is refused.
    store.add_group(GROUP, cast.founder.identity).unwrap();
    assert!(store.add_group(GROUP, cast.members[0].identity).is_err());
    let members = store.members(&GROUP).unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].identity, cast.founder.identity);
    let mut live = store.load_group(&GROUP).unwrap();
    let setup = cast.setup();
    let mut wrong = incoming(&setup[0], true);
    wrong.entry.group = GroupId([1; 16]);
    let err = store.apply(&mut live, vec![incoming(&setup[1], true), wrong], 1);
    assert!(err.is_err());
    // Nothing of the failed batch was stored.
    assert_eq!(store.entry_count(&GROUP).unwrap(), 0);
    assert!(store.load_group(&GroupId([2; 16])).is_err());
    let batch = setup.iter().map(|e| incoming(e, true)).collect();
    let applied = store.apply(&mut live, batch, 1).unwrap();
    assert_eq!(applied.new.len(), setup.len());
    check(&store, &live);
    assert_eq!(
        store.groups().unwrap(),
        vec![(GROUP, cast.founder.identity)]
    );
}

#[test]
fn a_late_membership_entry_refolds_and_views_follow() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("db"), &DbKey::from_bytes([7; 32])).unwrap();
    let cast = Cast::default();
    store.add_group(GROUP, cast.founder.identity).unwrap();
    let mut live = store.load_group(&GROUP).unwrap();
    let all = cast.sample(11, 300, true);
    let setup_len = cast.setup().len();
    // Content first (most of it rejected: nobody is a member yet), the committee after.
    let (setup, content) = all.split_at(setup_len);
    let first = store
        .apply(
            &mut live,
            content.iter().map(|e| incoming(e, true)).collect(),
            1,
        )
        .unwrap();
    assert!(!first.refolded);
    check(&store, &live);
    let first_hash = live.state().state_hash();
    let second = store
        .apply(
            &mut live,
            setup.iter().map(|e| incoming(e, true)).collect(),
            2,
        )
        .unwrap();
    assert!(second.refolded, "the committee sorts before the content");
    check(&store, &live);
    assert_ne!(first_hash, live.state().state_hash());
    assert!(store.members(&GROUP).unwrap().len() > 1);
}

#[test]
fn views_of_this_version_are_kept_and_of_another_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let key = DbKey::from_bytes([7; 32]);
    let cast = Cast::default();
    let entries = cast.sample(5, 200, true);
    {
        let mut store = Store::open(&db, &key).unwrap();
        store.add_group(GROUP, cast.founder.identity).unwrap();
        let mut live = store.load_group(&GROUP).unwrap();
        let first = store
            .apply(
                &mut live,
                entries.iter().map(|e| incoming(e, true)).collect(),
                1,
            )
            .unwrap();
        assert!(
            !first.rewrote_views,
            "a new group's views are of this version"
        );
        check(&store, &live);
    }
    // Reopened by the same build: the views are trusted, the next write only touches
    // what it changes.
    let extra = cast.sample(6, 20, false);
    {
        let mut store = Store::open(&db, &key).unwrap();
        let mut live = store.load_group(&GROUP).unwrap();
        let applied = store
            .apply(&mut live, vec![incoming(&extra[extra.len() - 1], true)], 2)
            .unwrap();
        assert!(!applied.rewrote_views);
        check(&store, &live);
    }
    // Views written by another fold (an older build): stale rows, another version.
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", "07".repeat(32)))
            .unwrap();
        let n = conn
            .execute(
                "UPDATE groups SET views_version = ?1",
                [caucus_store::VIEWS_VERSION - 1],
            )
            .unwrap();
        assert_eq!(n, 1);
        conn.execute("UPDATE v_contacts SET name = 'stale'", [])
            .unwrap();
    }
    let mut store = Store::open(&db, &key).unwrap();
    let mut live = store.load_group(&GROUP).unwrap();
    let applied = store
        .apply(&mut live, vec![incoming(&extra[extra.len() - 2], true)], 3)
        .unwrap();
    assert!(
        applied.rewrote_views,
        "views of another version are rewritten"
    );
    check(&store, &live);
}
