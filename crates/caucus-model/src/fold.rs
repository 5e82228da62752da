//! Applying one entry to the state: authorization first, then the merge rule of its
//! operation.
//!
//! [`View`] is the state derived from the entries applied so far, in fold order. The
//! fold calls [`View::apply`] once per entry, in increasing [`crate::FoldKey`] order,
//! so "the membership at that point" is simply the membership in the view, and "last
//! writer wins" is simply "the later `apply` overwrites". Nothing here looks at the
//! wall clock; the whole module is a pure function of the ordered entries.

use crate::entry::{FoldKey, OpenedEntry};
use crate::outcome::{Reason, Rejection};
use crate::records::{
    Campaign, Contact, Device, EpochDelivery, Followup, Member, NoteKey, NoteRecord, Notice, Stamp,
};
use caucus_proto::{
    ContactField, ContactId, Day, DeviceKey, EntryId, FollowupId, Hlc, IdentityKey, NoticeId,
    Operation, Role,
};
use std::collections::BTreeMap;

/// The state derived from the entries applied so far.
#[derive(Clone, Debug)]
pub(crate) struct View {
    pub(crate) founder: IdentityKey,
    pub(crate) members: BTreeMap<IdentityKey, Member>,
    pub(crate) devices: BTreeMap<DeviceKey, Device>,
    pub(crate) contacts: BTreeMap<ContactId, Contact>,
    pub(crate) notes: BTreeMap<ContactId, BTreeMap<NoteKey, NoteRecord>>,
    pub(crate) followups: BTreeMap<FollowupId, Followup>,
    pub(crate) notices: BTreeMap<NoticeId, Notice>,
    pub(crate) epochs: BTreeMap<u64, Vec<EpochDelivery>>,
    pub(crate) group_name: Option<String>,
    pub(crate) campaign: Option<Campaign>,
    /// Diagnostics only; not part of the state hash.
    pub(crate) rejected: BTreeMap<EntryId, Rejection>,
    /// The greatest fold key of an applied entry that changed who may write (member
    /// added, removed or re-roled, device linked or revoked).
    pub(crate) last_authority_change: Option<FoldKey>,
}

impl View {
    /// The state before any entry: the founder is the one member, an admin.
    pub(crate) fn new(founder: IdentityKey) -> View {
        let mut members = BTreeMap::new();
        members.insert(
            founder,
            Member {
                identity: founder,
                name: String::new(),
                role: Role::Admin,
                removed: None,
            },
        );
        View {
            founder,
            members,
            devices: BTreeMap::new(),
            contacts: BTreeMap::new(),
            notes: BTreeMap::new(),
            followups: BTreeMap::new(),
            notices: BTreeMap::new(),
            epochs: BTreeMap::new(),
            group_name: None,
            campaign: None,
            rejected: BTreeMap::new(),
            last_authority_change: None,
        }
    }

    /// Whether `e` may be applied now although entries after it in the fold order have
    /// been applied already, with the same result as folding everything again.
    ///
    /// True for notes, acknowledgements and contact field edits when no entry after `e`
    /// changed who may write: then the authorization of `e` is the same now as at its
    /// place in the order, no other entry's outcome depends on `e`, and its merge is
    /// order-free (notes and acks are sets; contact fields compare fold keys).
    pub(crate) fn can_apply_late(&self, e: &OpenedEntry) -> bool {
        matches!(
            e.op,
            Operation::NoteAdded { .. }
                | Operation::NoticeAcked { .. }
                | Operation::ContactSet { .. }
        ) && self.authority_unchanged_after(e)
    }

    /// Whether no entry applied after `e`'s place changed who may write (so `e` is
    /// authorized now as it would be at its place).
    pub(crate) fn authority_unchanged_after(&self, e: &OpenedEntry) -> bool {
        self.last_authority_change.is_none_or(|k| k < e.fold_key())
    }

    /// Applies one entry, or records why it has no effect.
    pub(crate) fn apply(&mut self, e: &OpenedEntry) -> Result<(), Reason> {
        let result = self.check(e).and_then(|role| self.apply_checked(e, role));
        if result.is_ok()
            && matches!(
                e.op,
                Operation::MemberAdded { .. }
                    | Operation::MemberRemoved { .. }
                    | Operation::RoleChanged { .. }
                    | Operation::DeviceLinked { .. }
                    | Operation::DeviceRevoked { .. }
            )
        {
            self.last_authority_change = self.last_authority_change.max(Some(e.fold_key()));
        }
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

    /// Who may write at all: a current member, from a linked device that is not
    /// revoked, or a device introducing itself. Returns the author's role.
    fn check(&self, e: &OpenedEntry) -> Result<Role, Reason> {
        if let Err(err) = e.op.validate() {
            return Err(Reason::Invalid(match err {
                caucus_proto::codec::EncodeError::Invalid(why) => why,
                _ => "operation does not encode",
            }));
        }
        let member = self
            .members
            .get(&e.author.identity)
            .filter(|m| m.is_current())
            .ok_or(Reason::NotAMember)?;
        match self.devices.get(&e.author.device) {
            Some(d) if d.cert.identity == e.author.identity => {
                if d.revoked.is_some() {
                    return Err(Reason::DeviceRevoked);
                }
            }
            _ => {
                let introduces_itself = matches!(
                    &e.op,
                    Operation::DeviceLinked { cert }
                        if cert.device == e.author.device && cert.identity == e.author.identity
                );
                if !introduces_itself {
                    return Err(Reason::DeviceNotLinked);
                }
            }
        }
        Ok(member.role)
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

    fn current_member(&self, who: &IdentityKey) -> bool {
        self.members.get(who).is_some_and(Member::is_current)
    }

    /// The role and target checks of each operation, then its merge rule.
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
            Operation::MemberAdded { member, name, role } => {
                admin_only("add members")?;
                self.members.insert(
                    *member,
                    Member {
                        identity: *member,
                        name: name.clone(),
                        role: *role,
                        removed: None,
                    },
                );
            }
            Operation::MemberRemoved { member } => {
                admin_only("remove members")?;
                let stamp = Self::stamp(e);
                let m = self
                    .members
                    .get_mut(member)
                    .filter(|m| m.is_current())
                    .ok_or(Reason::TargetNotAMember)?;
                m.removed = Some(stamp);
            }
            Operation::RoleChanged { member, role } => {
                admin_only("change roles")?;
                let m = self
                    .members
                    .get_mut(member)
                    .filter(|m| m.is_current())
                    .ok_or(Reason::TargetNotAMember)?;
                m.role = *role;
            }
            Operation::DeviceLinked { cert } => {
                if !admin && cert.identity != e.author.identity {
                    return Err(Reason::NotTheirOwn("link devices"));
                }
                if !self.current_member(&cert.identity) {
                    return Err(Reason::TargetNotAMember);
                }
                match self.devices.get_mut(&cert.device) {
                    Some(d) if d.revoked.is_some() => return Err(Reason::DeviceWasRevoked),
                    Some(d) if d.cert.identity != cert.identity => {
                        return Err(Reason::DeviceOfAnotherMember);
                    }
                    Some(d) => d.cert = cert.clone(),
                    None => {
                        self.devices.insert(
                            cert.device,
                            Device {
                                cert: cert.clone(),
                                revoked: None,
                            },
                        );
                    }
                }
            }
            Operation::DeviceRevoked { device } => {
                let stamp = Self::stamp(e);
                let d = self.devices.get_mut(device).ok_or(Reason::UnknownDevice)?;
                if !admin && d.cert.identity != e.author.identity {
                    return Err(Reason::NotTheirOwn("revoke devices"));
                }
                d.revoked.get_or_insert(stamp);
            }
            Operation::EpochKeyDelivered { epoch, deliveries } => {
                admin_only("deliver epoch keys")?;
                self.epochs.entry(*epoch).or_default().push(EpochDelivery {
                    entry: e.id,
                    author: e.author,
                    hlc: e.hlc,
                    deliveries: deliveries.clone(),
                });
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
