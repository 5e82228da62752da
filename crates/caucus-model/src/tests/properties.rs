//! Properties over random sets of entries from a small committee (see [`crate::testing`]):
//! the state depends only on the set, partitions converge, no authorized note is lost.

use crate::testing::Cast;
use crate::{OpenedEntry, Outcome, State};
use caucus_proto::Operation;
use proptest::prelude::*;
use std::collections::BTreeSet;

const CASES: u32 = 1_000;

fn cast() -> Cast {
    Cast::new(1, 3)
}

/// The setup plus up to 40 random entries with membership churn, some re-sealed copies
/// of them (new entry ids, same events), and all of that shuffled with some entries
/// repeated.
fn entries_and_shuffled_copy() -> impl Strategy<Value = (Vec<OpenedEntry>, Vec<OpenedEntry>)> {
    cast().arb_entries(0..40, true).prop_flat_map(|entries| {
        let n = entries.len();
        let dups = proptest::collection::vec(0..n, 0..10);
        let resealed = proptest::collection::vec((0..n, any::<u64>()), 0..4);
        (Just(entries.clone()), dups, resealed).prop_flat_map(|(mut entries, dups, resealed)| {
            let copies: Vec<_> = resealed
                .into_iter()
                .map(|(i, salt)| crate::testing::resealed(&entries[i], salt))
                .collect();
            entries.extend(copies);
            let mut copy = entries.clone();
            copy.extend(dups.into_iter().map(|i| entries[i].clone()));
            (Just(entries), Just(copy).prop_shuffle())
        })
    })
}

fn rejected_ids(s: &State) -> Vec<(caucus_proto::EntryId, crate::Reason)> {
    s.rejected().map(|r| (r.id, r.reason)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Any permutation, any duplication, folded at once or inserted one by one: the
    /// same state hash, the same rejections.
    #[test]
    fn any_order_and_duplication_gives_the_same_state((entries, shuffled) in entries_and_shuffled_copy()) {
        let founder = cast().founder.identity;
        let reference = State::from_entries(founder, entries.iter().cloned());
        let batch = State::from_entries(founder, shuffled.iter().cloned());
        let mut one_by_one = State::new(founder);
        let mut duplicates = 0;
        for e in shuffled.iter().cloned() {
            if one_by_one.insert(e) == Outcome::Duplicate {
                duplicates += 1;
            }
        }
        let events: BTreeSet<_> = entries.iter().map(|e| (e.author, e.hlc, format!("{:?}", e.op))).collect();
        prop_assert_eq!(duplicates, shuffled.len() - events.len());
        prop_assert_eq!(reference.len(), events.len());
        prop_assert_eq!(batch.len(), events.len());
        prop_assert_eq!(reference.state_hash(), batch.state_hash());
        prop_assert_eq!(reference.state_hash(), one_by_one.state_hash());
        prop_assert_eq!(rejected_ids(&reference), rejected_ids(&one_by_one));
        // Every entry's reported status agrees with the rejection list; of each event,
        // exactly one copy is held.
        for e in &entries {
            let rejected = reference.rejected().any(|r| r.id == e.id);
            let held = reference.entries().any(|h| h.id == e.id);
            match reference.status(&e.id) {
                Some(Outcome::Duplicate) => prop_assert!(!held),
                Some(status) => {
                    prop_assert!(held);
                    prop_assert_eq!(status == Outcome::Applied, !rejected);
                }
                None => prop_assert!(false, "an inserted entry has no status"),
            }
        }
        // A re-sealed note never shows twice.
        let notes = entries.iter().filter(|e| matches!(e.op, Operation::NoteAdded { .. }));
        let note_events: BTreeSet<_> = notes.map(|e| (e.author, e.hlc, format!("{:?}", e.op))).collect();
        prop_assert!(reference.all_notes().count() <= note_events.len());
    }

    /// Catch-up in batches of any size in any order (a sync delivers entries by id, not
    /// in fold order): the state of folding everything at once.
    #[test]
    fn batches_in_any_order_give_the_same_state(
        ((entries, shuffled), cuts) in (entries_and_shuffled_copy(), proptest::collection::vec(1usize..12, 1..8))
    ) {
        let founder = cast().founder.identity;
        let reference = State::from_entries(founder, entries.iter().cloned());
        let mut batched = State::new(founder);
        let mut rest = shuffled.as_slice();
        for cut in cuts.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (now, later) = rest.split_at((*cut).min(rest.len()));
            batched.extend(now.iter().cloned());
            rest = later;
        }
        prop_assert_eq!(reference.state_hash(), batched.state_hash());
        prop_assert_eq!(rejected_ids(&reference), rejected_ids(&batched));
    }

    /// Two replicas each fold part of the entries (some entries reach both), then each
    /// merges the other's, one by one or in a batch: both end equal to the union.
    #[test]
    fn partitions_converge_to_the_union(
        (entries, sides, order) in cast().arb_entries(0..40, true).prop_flat_map(|entries| {
            let n = entries.len();
            (
                Just(entries),
                proptest::collection::vec(0u8..3, n),
                Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
            )
        })
    ) {
        let founder = cast().founder.identity;
        let side = |want: u8| -> Vec<OpenedEntry> {
            entries.iter().zip(&sides).filter(|(_, s)| **s == want || **s == 2).map(|(e, _)| e.clone()).collect()
        };
        let (a_only, b_only) = (side(0), side(1));
        let mut a = State::from_entries(founder, a_only.clone());
        let mut b = State::from_entries(founder, b_only.clone());
        // A hears B's entries one at a time, in a random order (gossip).
        for i in &order {
            if sides[*i] == 1 {
                a.insert(entries[*i].clone());
            }
        }
        // B catches up in one batch (sync).
        b.extend(a_only);
        let union = State::from_entries(founder, entries.iter().cloned());
        prop_assert_eq!(a.state_hash(), union.state_hash());
        prop_assert_eq!(b.state_hash(), union.state_hash());
        prop_assert_eq!(rejected_ids(&a), rejected_ids(&union));
        prop_assert_eq!(rejected_ids(&b), rejected_ids(&union));
    }

    /// With membership churn: every note not rejected for who wrote it is in the state,
    /// removed contacts included, and a note is only ever rejected for who wrote it.
    #[test]
    fn no_authorized_note_is_dropped(entries in cast().arb_entries(0..40, true)) {
        let s = State::from_entries(cast().founder.identity, entries.iter().cloned());
        let kept: BTreeSet<_> = s.all_notes().map(|n| n.entry).collect();
        for e in &entries {
            if let Operation::NoteAdded { contact, note } = &e.op {
                match s.status(&e.id) {
                    Some(Outcome::Applied) => {
                        prop_assert!(kept.contains(&e.id));
                        prop_assert!(s.notes(contact).any(|n| n.entry == e.id && n.text == note.text));
                    }
                    Some(Outcome::Rejected(reason)) => {
                        prop_assert!(reason.is_authorization(), "{:?}", reason);
                        prop_assert!(!s.may_write(&e.author.identity, &e.author.device) || !kept.contains(&e.id));
                    }
                    other => prop_assert!(false, "unexpected status {:?}", other),
                }
            }
        }
        // Removed contacts never show up in listings.
        prop_assert!(s.list_contacts(&crate::ContactFilter::all()).iter().all(|c| !c.is_removed()));
    }

    /// The merge rules against independent oracles computed from the applied entries:
    /// a name is the one set by the greatest fold key, a removal always wins, the acks of
    /// a notice are exactly its acknowledgers, cancellation sticks.
    #[test]
    fn merge_rules_match_their_oracles(entries in cast().arb_entries(0..40, true)) {
        use std::collections::BTreeMap;
        let s = State::from_entries(cast().founder.identity, entries.iter().cloned());
        let mut applied: Vec<&OpenedEntry> = entries
            .iter()
            .filter(|e| s.status(&e.id) == Some(Outcome::Applied))
            .collect();
        applied.sort_by_key(|e| e.fold_key());
        applied.dedup_by_key(|e| e.id);
        let mut names = BTreeMap::new();
        let mut removed = BTreeSet::new();
        let mut acks: BTreeMap<_, BTreeSet<_>> = BTreeMap::new();
        let mut cancelled = BTreeSet::new();
        for e in &applied {
            match &e.op {
                Operation::ContactSet { contact, fields } => {
                    for f in fields {
                        if let caucus_proto::ContactField::Name(n) = f {
                            names.insert(*contact, n.clone());
                        }
                    }
                }
                Operation::ContactRemoved { contact } => {
                    removed.insert(*contact);
                }
                Operation::NoticeAcked { notice } => {
                    acks.entry(*notice).or_default().insert(e.author.identity);
                }
                // Counted from the notice's poster only.
                Operation::NoticeDelivered { notice, members }
                    if s.notice(notice).is_some_and(|n| n.posted_by == e.author.identity) =>
                {
                    acks.entry(*notice).or_default().extend(members.iter().copied());
                }
                Operation::NoticeCancelled { notice } => {
                    cancelled.insert(*notice);
                }
                _ => {}
            }
        }
        for c in s.contacts() {
            prop_assert!(!removed.contains(&c.id));
            prop_assert_eq!(names.get(&c.id).map_or("", String::as_str), c.name.as_str());
        }
        for c in &removed {
            prop_assert!(s.contact(c).is_none());
            prop_assert!(s.contact_any(c).is_some_and(|c| c.is_removed()));
        }
        for n in s.notices() {
            prop_assert_eq!(&n.acks, &acks.get(&n.id).cloned().unwrap_or_default());
            prop_assert_eq!(n.cancelled.is_some(), cancelled.contains(&n.id));
        }
    }

    /// The aggregates agree with the contact listing on any state: the map counts every
    /// contact not removed once, filters partition the listing, the support share counts
    /// the supportive, and follow-ups due skip the done and the removed.
    #[test]
    fn aggregates_agree_with_the_listing(entries in cast().arb_entries(0..40, true), today in 20_000i32..20_012) {
        use crate::{ContactFilter, RatingFilter, ShareBase};
        let s = State::from_entries(cast().founder.identity, entries);
        let all = s.list_contacts(&ContactFilter::all());
        prop_assert_eq!(all.len(), s.contacts().count());
        prop_assert!(all.windows(2).all(|w| (w[0].name.to_lowercase(), w[0].id) <= (w[1].name.to_lowercase(), w[1].id)));
        let map = s.workplace_map();
        prop_assert_eq!(map.total.total() as usize, all.len());
        let cells: u32 = map.cells.values().flat_map(|shifts| shifts.values()).map(|c| c.total()).sum();
        prop_assert_eq!(cells, map.total.total());
        prop_assert_eq!(map.by_department.values().map(|c| c.total()).sum::<u32>(), map.total.total());
        prop_assert_eq!(map.by_shift.values().map(|c| c.total()).sum::<u32>(), map.total.total());
        let mut by_rating = s.list_contacts(&ContactFilter::all().rating(RatingFilter::Unrated)).len();
        for r in caucus_proto::Rating::ALL {
            let n = s.list_contacts(&ContactFilter::all().rating(RatingFilter::Is(r))).len();
            prop_assert_eq!(n as u32, map.total.get(r));
            by_rating += n;
        }
        prop_assert_eq!(by_rating, all.len());
        for (dept, shifts) in &map.cells {
            for (shift, counts) in shifts {
                let listed = all.iter().filter(|c| &c.department == dept && &c.shift == shift).count();
                prop_assert_eq!(listed as u32, counts.total());
            }
        }
        let share = s.support_share();
        let supportive = s.list_contacts(&ContactFilter::all().rating(RatingFilter::Supportive)).len();
        prop_assert_eq!(share.supportive as usize, supportive);
        if let ShareBase::Contacts(n) = share.base {
            prop_assert_eq!(n as usize, all.len());
        }
        let due = s.followups_due(caucus_proto::Day(today), 3);
        for d in &due {
            prop_assert!(!d.followup.done);
            prop_assert!(!d.contact.is_removed());
            prop_assert!(d.followup.due.0 <= today + 3);
            prop_assert_eq!(d.overdue, d.followup.due.0 < today);
        }
        prop_assert!(due.windows(2).all(|w| (!w[0].overdue, w[0].followup.due) <= (!w[1].overdue, w[1].followup.due)));
        let open = s.followups().filter(|f| !f.done && f.due.0 <= today + 3 && s.contact(&f.contact).is_some()).count();
        prop_assert_eq!(due.len(), open);
    }

    /// Without membership churn every note from a member's linked device is kept, whatever
    /// edits and removals race it; notes from outsiders and stray devices never are.
    #[test]
    fn every_note_from_a_linked_device_is_kept(entries in cast().arb_entries(0..40, false)) {
        let cast = cast();
        let linked: BTreeSet<_> = cast.linked_authors().into_iter().collect();
        let s = State::from_entries(cast.founder.identity, entries.iter().cloned());
        let kept: BTreeSet<_> = s.all_notes().map(|n| n.entry).collect();
        for e in &entries {
            if matches!(e.op, Operation::NoteAdded { .. }) {
                prop_assert_eq!(kept.contains(&e.id), linked.contains(&e.author));
            }
        }
    }
}
