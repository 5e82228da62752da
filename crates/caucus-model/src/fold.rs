//! Applying one entry to the content state: authorization first (from the authority
//! [`Resolution`]), then the merge rule of its operation.
//!
//! [`View`] is the content state derived from the entries applied so far, in fold order.
//! The fold calls [`View::apply`] once per entry, in increasing [`crate::FoldKey`] order,
//! so "last writer wins" is simply "the later `apply` overwrites". Who may write is not
//! a matter of that order: the resolution decided it from the device chains and the
//! authority graph (see `authority`). Nothing here looks at the wall clock; the whole
//! module is a pure function of the ordered entries and the resolution.

use crate::authority::Resolution;
use crate::entry::{FoldKey, OpenedEntry};
use crate::outcome::{Reason, Rejection};
use crate::records::{Campaign, Contact, Followup, NoteKey, NoteRecord, Notice, Stamp};
use caucus_proto::{
    ContactField, ContactId, Day, EntryId, FollowupId, Hlc, IdentityKey, NoticeId, Operation, Role,
};
use std::collections::BTreeMap;

/// The content state derived from the entries applied so far.
#[derive(Clone, Debug)]
pub(crate) struct View {
    pub(crate) founder: IdentityKey,
    pub(crate) contacts: BTreeMap<ContactId, Contact>,
    pub(crate) notes: BTreeMap<ContactId, BTreeMap<NoteKey, NoteRecord>>,
    pub(crate) followups: BTreeMap<FollowupId, Followup>,
    pub(crate) notices: BTreeMap<NoticeId, Notice>,
    pub(crate) group_name: Option<String>,
    pub(crate) campaign: Option<Campaign>,
    /// Diagnostics only; not part of the state hash.
    pub(crate) rejected: BTreeMap<EntryId, Rejection>,
    /// The authorization of the last content event checked: the records of one
    /// `Records` entry share it (one event, one place in its device's chain).
    last_checked: Option<(caucus_proto::EventId, Result<Role, Reason>)>,
}

impl View {
    /// The state before any entry.
    pub(crate) fn new(founder: IdentityKey) -> View {
        View {
            founder,
            contacts: BTreeMap::new(),
            notes: BTreeMap::new(),
            followups: BTreeMap::new(),
            notices: BTreeMap::new(),
            group_name: None,
            campaign: None,
            rejected: BTreeMap::new(),
            last_checked: None,
        }
    }

    /// Whether `e` may be applied now although entries after it in the fold order have
    /// been applied already, with the same result as folding everything again: notes,
    /// acknowledgements and contact field edits, whose merge is order-free (notes and
    /// acks are sets; contact fields compare fold keys). Authorization does not depend
    /// on the order.
    pub(crate) fn can_apply_late(&self, e: &OpenedEntry) -> bool {
        matches!(
            e.op,
            Operation::NoteAdded { .. }
                | Operation::NoticeAcked { .. }
                | Operation::NoticeDelivered { .. }
                | Operation::ContactSet { .. }
        )
    }

    /// Applies one entry, or records why it has no effect.
    pub(crate) fn apply(&mut self, e: &OpenedEntry, auth: &Resolution) -> Result<(), Reason> {
        let result = if e.op.is_authority() {
            auth.status
                .get(&e.id)
                .copied()
                .unwrap_or(Err(Reason::AwaitingAuthority))
        } else {
            let checked = match self.last_checked {
                Some((event, result)) if event == e.event => result,
                _ => {
                    let result = auth.content(e);
                    self.last_checked = Some((e.event, result));
                    result
                }
            };
            checked.and_then(|role| {
                if let Err(err) = e.op.validate() {
                    return Err(Reason::Invalid(match err {
                        caucus_proto::codec::EncodeError::Invalid(why) => why,
                        _ => "operation does not encode",
                    }));
                }
                self.apply_checked(e, role)
            })
        };
        if let Err(reason) = result {
            self.rejected.insert(
                e.id,
                Rejection {
                    id: e.id,
                    kind: e.op.kind(),
                    reason,
                },
            );
        }
        result
    }

    fn stamp(e: &OpenedEntry) -> Stamp {
        Stamp {
            entry: e.id,
            by: e.author,
            hlc: e.hlc,
        }
    }

    fn contact_mut(&mut self, id: ContactId, hlc: Hlc) -> &mut Contact {
        let c = self
            .contacts
            .entry(id)
            .or_insert_with(|| Contact::new(id, hlc));
        // The first entry in fold order has the smallest clock, also when applied late.
        c.first_seen = c.first_seen.min(hlc);
        c
    }

    /// The role and target checks of each content operation, then its merge rule.
    fn apply_checked(&mut self, e: &OpenedEntry, role: Role) -> Result<(), Reason> {
        let admin = role == Role::Admin;
        let admin_only = |what: &'static str| {
            if admin {
                Ok(())
            } else {
                Err(Reason::AdminOnly(what))
            }
        };
        match &e.op {
            Operation::ContactSet { contact, fields } => {
                let key = e.fold_key();
                let c = self.contact_mut(*contact, e.hlc);
                let st = &mut c.stamps;
                for f in fields {
                    match f {
                        ContactField::Name(s) => lww(&mut c.name, &mut st.name, key, s),
                        ContactField::Department(s) => {
                            lww(&mut c.department, &mut st.department, key, s);
                        }
                        ContactField::Shift(s) => lww(&mut c.shift, &mut st.shift, key, s),
                        ContactField::Job(s) => lww(&mut c.job, &mut st.job, key, s),
                        ContactField::Handle(s) => lww(&mut c.handle, &mut st.handle, key, s),
                        ContactField::Rating(r) => {
                            lww(&mut c.rating, &mut st.rating, key, &Some(*r));
                        }
                        ContactField::Tag { tag, on } => {
                            let stamp = st.tags.get(tag).copied();
                            if Some(key) >= stamp {
                                c.tags.insert(tag.clone(), *on);
                                st.tags.insert(tag.clone(), key);
                            }
                        }
                        ContactField::AssignedTo(s) => {
                            lww(&mut c.assigned_to, &mut st.assigned_to, key, s);
                        }
                    }
                }
            }
            Operation::NoteAdded { contact, note } => {
                self.contact_mut(*contact, e.hlc);
                let key = NoteKey {
                    day: note.date.unwrap_or(Day::from_unix_ms(e.hlc.wall_ms)),
                    hlc: e.hlc,
                    entry: e.id,
                };
                self.notes.entry(*contact).or_default().insert(
                    key,
                    NoteRecord {
                        entry: e.id,
                        contact: *contact,
                        author: e.author,
                        hlc: e.hlc,
                        date: note.date,
                        by: note.by.clone(),
                        text: note.text.clone(),
                    },
                );
            }
            Operation::FollowupSet {
                followup,
                contact,
                due,
                assignee,
                task,
            } => {
                self.contact_mut(*contact, e.hlc);
                let done = self.followups.get(followup).is_some_and(|f| f.done);
                self.followups.insert(
                    *followup,
                    Followup {
                        id: *followup,
                        contact: *contact,
                        due: *due,
                        assignee: assignee.clone(),
                        task: task.clone(),
                        done,
                        set: Self::stamp(e),
                    },
                );
            }
            Operation::FollowupDone { followup, done } => {
                let f = self
                    .followups
                    .get_mut(followup)
                    .ok_or(Reason::UnknownFollowup)?;
                f.done = *done;
            }
            Operation::ContactRemoved { contact } => {
                let stamp = Self::stamp(e);
                let c = self.contact_mut(*contact, e.hlc);
                // The first removal in fold order is the one recorded; later ones change nothing.
                c.removed.get_or_insert(stamp);
            }
            Operation::NoticePosted { notice, content }
            | Operation::NoticeChanged { notice, content } => {
                if content.urgent {
                    admin_only("send an urgent notice")?;
                }
                let posting = matches!(e.op, Operation::NoticePosted { .. });
                match self.notices.get_mut(notice) {
                    Some(n) => {
                        if !admin && n.posted_by != e.author.identity {
                            return Err(Reason::NotTheirOwn("change notices"));
                        }
                        n.content = content.clone();
                    }
                    None if posting => {
                        self.notices.insert(
                            *notice,
                            Notice {
                                id: *notice,
                                content: content.clone(),
                                posted_by: e.author.identity,
                                posted: Self::stamp(e),
                                cancelled: None,
                                acks: Default::default(),
                            },
                        );
                    }
                    None => return Err(Reason::UnknownNotice),
                }
            }
            Operation::NoticeCancelled { notice } => {
                let n = self.notices.get_mut(notice).ok_or(Reason::UnknownNotice)?;
                if !admin && n.posted_by != e.author.identity {
                    return Err(Reason::NotTheirOwn("cancel notices"));
                }
                n.cancelled.get_or_insert(Self::stamp(e));
            }
            Operation::NoticeAcked { notice } => {
                let n = self
                    .notices
                    .get_mut(notice)
                    // Posted after this ack in the fold order (possible when applied late).
                    .filter(|n| n.posted.fold_key() < e.fold_key())
                    .ok_or(Reason::UnknownNotice)?;
                n.acks.insert(e.author.identity);
            }
            Operation::NoticeDelivered { notice, members } => {
                let n = self
                    .notices
                    .get_mut(notice)
                    .filter(|n| n.posted.fold_key() < e.fold_key())
                    .ok_or(Reason::UnknownNotice)?;
                // The poster's record of the receipts it got; nobody else's.
                if n.posted_by != e.author.identity {
                    return Err(Reason::NotTheirOwn("record deliveries of notices"));
                }
                n.acks.extend(members.iter().copied());
            }
            // Decided by the authority resolution before the content fold.
            Operation::MemberAdded { .. }
            | Operation::MemberRemoved { .. }
            | Operation::RoleChanged { .. }
            | Operation::DeviceLinked { .. }
            | Operation::DeviceRevoked { .. }
            | Operation::EpochKeyDelivered { .. } => {
                return Err(Reason::Invalid("authority entries are not content"));
            }
            Operation::GroupNamed { name } => {
                admin_only("name the group")?;
                self.group_name = Some(name.clone());
            }
            Operation::CampaignSet {
                headcount,
                target_percent,
            } => {
                admin_only("set the campaign headcount and target")?;
                self.campaign = Some(Campaign {
                    headcount: *headcount,
                    target_percent: *target_percent,
                });
            }
            // `State` hands the fold each record of such an entry on its own.
            Operation::Records { .. } => {
                return Err(Reason::Invalid("records are folded one by one"));
            }
        }
        Ok(())
    }
}

/// A last-writer-wins register write: takes effect only for a fold key at least the one
/// that last wrote (equal within one entry setting a field twice: the later wins), so an
/// edit applied late never overwrites a newer one.
fn lww<T: Clone>(value: &mut T, stamp: &mut Option<FoldKey>, key: FoldKey, new: &T) {
    if Some(key) >= *stamp {
        value.clone_from(new);
        *stamp = Some(key);
    }
}
