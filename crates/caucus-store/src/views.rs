//! The materialized state: rows of the `v_*` tables, written from a [`State`] in the
//! same transaction as the entries that changed it.
//!
//! # How the rows follow the fold
//!
//! The writer keeps the [`State`] in memory (in a [`crate::GroupState`]) together with a
//! fingerprint of every row it has written ([`Prints`]: a 16-byte BLAKE3 digest per
//! contact, follow-up and notice record, and the set of note ids). After a batch:
//!
//! - when the fold applied every new entry incrementally (no re-fold), only the records
//!   the batch's operations name can have changed: their rows are rewritten (a contact
//!   with its tags and any note not written yet, a follow-up, a notice with its acks);
//! - when the fold had to fold everything again (an entry that sorts early and cannot be
//!   merged late, or a re-sealed copy replacing another), every record is fingerprinted
//!   again and exactly the rows whose fingerprint changed are written or deleted: O(n)
//!   hashing in memory, but only the difference goes to disk;
//! - members and devices (a few rows) are rewritten whenever a membership, device,
//!   epoch, name or campaign operation was in the batch or the fold re-folded; the
//!   `groups` row (with the state hash) after every batch.
//!
//! Rows carry what queries and export need, and `*_key` columns with the Unicode
//! lowercase of text compared case-insensitively (SQLite's own `lower()` and `NOCASE`
//! only fold ASCII, the model folds Unicode).

use crate::StoreError;
use crate::store::to_sql_u64;
use caucus_model::{Contact, Followup, NoteRecord, Notice, State};
use caucus_proto::{
    Author, ContactId, Day, DeviceKey, EntryId, FollowupId, GroupId, Hlc, IdentityKey, NoticeId,
    Operation, Rating, Role,
};
use rusqlite::{Transaction, params};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

/// A contact as the views hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactRow {
    /// The contact's id.
    pub id: ContactId,
    /// Full name; empty until set.
    pub name: String,
    /// Department; empty when unknown.
    pub department: String,
    /// Shift; empty when unknown.
    pub shift: String,
    /// Job or work area.
    pub job: String,
    /// Phone number or other handle.
    pub handle: String,
    /// Support rating, `None` until rated.
    pub rating: Option<Rating>,
    /// Every tag ever set, with whether it is on now.
    pub tags: BTreeMap<String, bool>,
    /// The organizer responsible; empty when unassigned.
    pub assigned_to: String,
    /// Whether the contact was removed (removed contacts appear in no listing).
    pub removed: bool,
    /// Clock of the first entry that mentioned the contact.
    pub first_seen: Hlc,
}

impl ContactRow {
    /// The row for a contact of the model.
    pub fn from_model(c: &Contact) -> ContactRow {
        ContactRow {
            id: c.id,
            name: c.name.clone(),
            department: c.department.clone(),
            shift: c.shift.clone(),
            job: c.job.clone(),
            handle: c.handle.clone(),
            rating: c.rating,
            tags: c.tags.clone(),
            assigned_to: c.assigned_to.clone(),
            removed: c.is_removed(),
            first_seen: c.first_seen,
        }
    }

    /// The tags currently on, sorted.
    pub fn tags_on(&self) -> impl Iterator<Item = &str> {
        self.tags
            .iter()
            .filter(|(_, on)| **on)
            .map(|(t, _)| t.as_str())
    }
}

/// One conversation note as the views hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteRow {
    /// The entry that added it.
    pub entry: EntryId,
    /// The contact it is about.
    pub contact: ContactId,
    /// Who logged it.
    pub author: Author,
    /// When it was logged.
    pub hlc: Hlc,
    /// The conversation's day if given, else the day it was logged.
    pub day: Day,
    /// The conversation's day, when given.
    pub date: Option<Day>,
    /// Who had the conversation, when given.
    pub by: Option<String>,
    /// What was said.
    pub text: String,
}

impl NoteRow {
    /// The row for a note of the model.
    pub fn from_model(n: &NoteRecord) -> NoteRow {
        NoteRow {
            entry: n.entry,
            contact: n.contact,
            author: n.author,
            hlc: n.hlc,
            day: note_day(n),
            date: n.date,
            by: n.by.clone(),
            text: n.text.clone(),
        }
    }
}

/// A follow-up as the views hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowupRow {
    /// The follow-up's id.
    pub id: FollowupId,
    /// The contact to follow up with.
    pub contact: ContactId,
    /// Due day.
    pub due: Day,
    /// Organizer responsible.
    pub assignee: String,
    /// What to do.
    pub task: String,
    /// Whether it is done.
    pub done: bool,
}

impl FollowupRow {
    /// The row for a follow-up of the model.
    pub fn from_model(f: &Followup) -> FollowupRow {
        FollowupRow {
            id: f.id,
            contact: f.contact,
            due: f.due,
            assignee: f.assignee.clone(),
            task: f.task.clone(),
            done: f.done,
        }
    }
}

/// A notice as the views hold it, with its acknowledgements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoticeRow {
    /// The notice's id.
    pub id: NoticeId,
    /// Title.
    pub title: String,
    /// Start, milliseconds since the Unix epoch.
    pub starts_at_ms: u64,
    /// Place.
    pub place: String,
    /// Longer text.
    pub body: String,
    /// Urgent.
    pub urgent: bool,
    /// Expiry, milliseconds since the Unix epoch.
    pub expires_at_ms: Option<u64>,
    /// Who posted it first.
    pub posted_by: IdentityKey,
    /// Whether it was cancelled.
    pub cancelled: bool,
    /// Members who acknowledged it (current or not), sorted.
    pub acks: Vec<IdentityKey>,
}

impl NoticeRow {
    /// The row for a notice of the model.
    pub fn from_model(n: &Notice) -> NoticeRow {
        NoticeRow {
            id: n.id,
            title: n.content.title.clone(),
            starts_at_ms: n.content.starts_at_ms,
            place: n.content.place.clone(),
            body: n.content.body.clone(),
            urgent: n.content.urgent,
            expires_at_ms: n.content.expires_at_ms,
            posted_by: n.posted_by,
            cancelled: n.cancelled.is_some(),
            acks: n.acks.iter().copied().collect(),
        }
    }
}

/// A member as the views hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRow {
    /// Identity key.
    pub identity: IdentityKey,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Whether the member is current (not removed).
    pub current: bool,
}

/// A device as the views hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRow {
    /// Device signing key.
    pub device: DeviceKey,
    /// The identity it is certified to.
    pub identity: IdentityKey,
    /// Its X25519 key.
    pub dh: [u8; 32],
    /// Label ("phone", "laptop").
    pub label: String,
    /// Whether it was revoked.
    pub revoked: bool,
}

pub(crate) fn note_day(n: &NoteRecord) -> Day {
    n.date.unwrap_or(Day::from_unix_ms(n.hlc.wall_ms))
}

/// A u64 shifted into i64 order (XOR 2^63): SQL comparisons agree with u64 ones.
pub(crate) fn ord_u64(v: u64) -> i64 {
    (v ^ (1 << 63)) as i64
}

/// Inverse of [`ord_u64`].
pub(crate) fn from_ord_u64(v: i64) -> u64 {
    (v as u64) ^ (1 << 63)
}

/// memcmp-ordered encoding of a note's place: day (sign-flipped, big-endian), clock
/// (big-endian), entry id.
fn note_sort_key(day: Day, hlc: Hlc, entry: &EntryId) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + 8 + 4 + 32);
    k.extend_from_slice(&((day.0 as u32) ^ (1 << 31)).to_be_bytes());
    k.extend_from_slice(&hlc.wall_ms.to_be_bytes());
    k.extend_from_slice(&hlc.counter.to_be_bytes());
    k.extend_from_slice(&entry.0);
    k
}

fn lower_if_different(s: &str) -> Option<String> {
    let l = s.to_lowercase();
    (l != s).then_some(l)
}

/// 16-byte digest of a record in the wire codec's canonical encoding.
type Print = [u8; 16];

fn print_of<T: Serialize>(value: &T) -> Print {
    let mut out = [0u8; 16];
    match caucus_proto::codec::encode::<_, { 1 << 30 }>(value) {
        Ok(bytes) => out.copy_from_slice(&blake3::hash(&bytes).as_bytes()[..16]),
        // Records always encode; an all-ones print simply forces a rewrite.
        Err(_) => out.fill(0xff),
    }
    out
}

/// Fingerprints of the rows written for one group (see the module docs).
#[derive(Clone, Debug, Default)]
pub(crate) struct Prints {
    contacts: HashMap<ContactId, Print>,
    notes: HashSet<EntryId>,
    followups: HashMap<FollowupId, Print>,
    notices: HashMap<NoticeId, Print>,
}

impl Prints {
    /// The prints of the rows `state` materializes to.
    pub(crate) fn of(state: &State) -> Prints {
        Prints {
            contacts: all_contacts(state).map(|c| (c.id, print_of(c))).collect(),
            notes: state.all_notes().map(|n| n.entry).collect(),
            followups: state.followups().map(|f| (f.id, print_of(f))).collect(),
            notices: state.notices().map(|n| (n.id, print_of(n))).collect(),
        }
    }
}

fn all_contacts(state: &State) -> impl Iterator<Item = &Contact> {
    state.contacts().chain(state.removed_contacts())
}

/// Which records a batch's operations name (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Touched {
    contacts: HashSet<ContactId>,
    followups: HashSet<FollowupId>,
    notices: HashSet<NoticeId>,
    /// A membership, device, epoch, group-name or campaign operation.
    pub(crate) group: bool,
}

impl Touched {
    pub(crate) fn add(&mut self, op: &Operation) {
        match op {
            Operation::ContactSet { contact, .. }
            | Operation::NoteAdded { contact, .. }
            | Operation::ContactRemoved { contact } => {
                self.contacts.insert(*contact);
            }
            Operation::FollowupSet {
                followup, contact, ..
            } => {
                self.contacts.insert(*contact);
                self.followups.insert(*followup);
            }
            Operation::FollowupDone { followup, .. } => {
                self.followups.insert(*followup);
            }
            Operation::NoticePosted { notice, .. }
            | Operation::NoticeChanged { notice, .. }
            | Operation::NoticeCancelled { notice }
            | Operation::NoticeAcked { notice }
            | Operation::NoticeDelivered { notice, .. } => {
                self.notices.insert(*notice);
            }
            Operation::MemberAdded { .. }
            | Operation::MemberRemoved { .. }
            | Operation::RoleChanged { .. }
            | Operation::DeviceLinked { .. }
            | Operation::DeviceRevoked { .. }
            | Operation::EpochKeyDelivered { .. }
            | Operation::GroupNamed { .. }
            | Operation::CampaignSet { .. } => self.group = true,
            Operation::Records { ops } => ops.iter().for_each(|op| self.add(op)),
        }
    }
}

/// Writes rows of one group inside a transaction.
pub(crate) struct Writer<'t, 'c> {
    tx: &'t Transaction<'c>,
    group: &'t [u8],
}

impl<'t, 'c> Writer<'t, 'c> {
    pub(crate) fn new(tx: &'t Transaction<'c>, group: &'t GroupId) -> Self {
        Writer {
            tx,
            group: group.as_bytes().as_slice(),
        }
    }

    /// Rewrites the rows of the records `touched` names, and notes not written yet.
    pub(crate) fn touched(
        &self,
        state: &State,
        touched: &Touched,
        prints: &mut Prints,
    ) -> Result<(), StoreError> {
        for id in &touched.contacts {
            match state.contact_any(id) {
                Some(c) => {
                    let p = print_of(c);
                    if prints.contacts.get(id) != Some(&p) {
                        self.put_contact(c)?;
                        prints.contacts.insert(*id, p);
                    }
                }
                None => {
                    if prints.contacts.remove(id).is_some() {
                        self.delete_contact(id)?;
                    }
                }
            }
            for n in state.notes(id) {
                if prints.notes.insert(n.entry) {
                    self.put_note(n)?;
                }
            }
        }
        for id in &touched.followups {
            match state.followup(id) {
                Some(f) => {
                    let p = print_of(f);
                    if prints.followups.get(id) != Some(&p) {
                        self.put_followup(f)?;
                        prints.followups.insert(*id, p);
                    }
                }
                None => {
                    if prints.followups.remove(id).is_some() {
                        self.delete_followup(id)?;
                    }
                }
            }
        }
        for id in &touched.notices {
            match state.notice(id) {
                Some(n) => {
                    let p = print_of(n);
                    if prints.notices.get(id) != Some(&p) {
                        self.put_notice(n)?;
                        prints.notices.insert(*id, p);
                    }
                }
                None => {
                    if prints.notices.remove(id).is_some() {
                        self.delete_notice(id)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Brings every row in line with `state`, writing only rows whose print changed.
    pub(crate) fn all(&self, state: &State, prints: &mut Prints) -> Result<(), StoreError> {
        let fresh = Prints::of(state);
        for c in all_contacts(state) {
            if prints.contacts.get(&c.id) != fresh.contacts.get(&c.id) {
                self.put_contact(c)?;
            }
        }
        for id in prints.contacts.keys() {
            if !fresh.contacts.contains_key(id) {
                self.delete_contact(id)?;
            }
        }
        for n in state.all_notes() {
            if !prints.notes.contains(&n.entry) {
                self.put_note(n)?;
            }
        }
        for id in &prints.notes {
            if !fresh.notes.contains(id) {
                self.tx
                    .prepare_cached("DELETE FROM v_notes WHERE group_id = ?1 AND entry_id = ?2")?
                    .execute(params![self.group, id.as_bytes().as_slice()])?;
            }
        }
        for f in state.followups() {
            if prints.followups.get(&f.id) != fresh.followups.get(&f.id) {
                self.put_followup(f)?;
            }
        }
        for id in prints.followups.keys() {
            if !fresh.followups.contains_key(id) {
                self.delete_followup(id)?;
            }
        }
        for n in state.notices() {
            if prints.notices.get(&n.id) != fresh.notices.get(&n.id) {
                self.put_notice(n)?;
            }
        }
        for id in prints.notices.keys() {
            if !fresh.notices.contains_key(id) {
                self.delete_notice(id)?;
            }
        }
        *prints = fresh;
        Ok(())
    }

    /// Deletes every view row of the group (before a rewrite from scratch).
    pub(crate) fn clear(&self) -> Result<(), StoreError> {
        for table in [
            "v_contacts",
            "v_tags",
            "v_notes",
            "v_followups",
            "v_notices",
            "v_acks",
            "v_members",
            "v_devices",
        ] {
            self.tx.execute(
                &format!("DELETE FROM {table} WHERE group_id = ?1"),
                [self.group],
            )?;
        }
        Ok(())
    }

    fn put_contact(&self, c: &Contact) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT OR REPLACE INTO v_contacts (group_id, contact_id, name, department,
                 shift, job, handle, rating, assigned_to, removed, first_seen_ms,
                 first_seen_counter, name_key, dept_key, shift_key, job_key, handle_key,
                 assigned_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                 ?16, ?17, ?18)",
            )?
            .execute(params![
                self.group,
                c.id.as_bytes().as_slice(),
                c.name,
                c.department,
                c.shift,
                c.job,
                c.handle,
                c.rating.map(Rating::get),
                c.assigned_to,
                c.is_removed(),
                to_sql_u64(c.first_seen.wall_ms),
                c.first_seen.counter,
                c.name.to_lowercase(),
                c.department.to_lowercase(),
                c.shift.to_lowercase(),
                c.job.to_lowercase(),
                c.handle.to_lowercase(),
                c.assigned_to.to_lowercase(),
            ])?;
        self.tx
            .prepare_cached("DELETE FROM v_tags WHERE group_id = ?1 AND contact_id = ?2")?
            .execute(params![self.group, c.id.as_bytes().as_slice()])?;
        let mut tag = self.tx.prepare_cached(
            "INSERT INTO v_tags (group_id, contact_id, tag, tag_key, is_on)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (t, on) in &c.tags {
            tag.execute(params![
                self.group,
                c.id.as_bytes().as_slice(),
                t,
                t.to_lowercase(),
                on
            ])?;
        }
        Ok(())
    }

    fn delete_contact(&self, id: &ContactId) -> Result<(), StoreError> {
        for sql in [
            "DELETE FROM v_contacts WHERE group_id = ?1 AND contact_id = ?2",
            "DELETE FROM v_tags WHERE group_id = ?1 AND contact_id = ?2",
        ] {
            self.tx
                .prepare_cached(sql)?
                .execute(params![self.group, id.as_bytes().as_slice()])?;
        }
        Ok(())
    }

    fn put_note(&self, n: &NoteRecord) -> Result<(), StoreError> {
        let day = note_day(n);
        self.tx
            .prepare_cached(
                "INSERT OR REPLACE INTO v_notes (group_id, entry_id, contact_id, sort_key, day,
                 author_identity, author_device, hlc_ms, hlc_counter, date, by_name, text,
                 text_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?
            .execute(params![
                self.group,
                n.entry.as_bytes().as_slice(),
                n.contact.as_bytes().as_slice(),
                note_sort_key(day, n.hlc, &n.entry),
                day.0,
                n.author.identity.as_bytes().as_slice(),
                n.author.device.as_bytes().as_slice(),
                to_sql_u64(n.hlc.wall_ms),
                n.hlc.counter,
                n.date.map(|d| d.0),
                n.by,
                n.text,
                lower_if_different(&n.text),
            ])?;
        Ok(())
    }

    fn put_followup(&self, f: &Followup) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT OR REPLACE INTO v_followups (group_id, followup_id, contact_id, due,
                 assignee, task, done) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                self.group,
                f.id.as_bytes().as_slice(),
                f.contact.as_bytes().as_slice(),
                f.due.0,
                f.assignee,
                f.task,
                f.done,
            ])?;
        Ok(())
    }

    fn delete_followup(&self, id: &FollowupId) -> Result<(), StoreError> {
        self.tx
            .prepare_cached("DELETE FROM v_followups WHERE group_id = ?1 AND followup_id = ?2")?
            .execute(params![self.group, id.as_bytes().as_slice()])?;
        Ok(())
    }

    fn put_notice(&self, n: &Notice) -> Result<(), StoreError> {
        let c = &n.content;
        self.tx
            .prepare_cached(
                "INSERT OR REPLACE INTO v_notices (group_id, notice_id, title, starts_at, place,
                 body, urgent, expires_at, posted_by, cancelled)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                self.group,
                n.id.as_bytes().as_slice(),
                c.title,
                ord_u64(c.starts_at_ms),
                c.place,
                c.body,
                c.urgent,
                c.expires_at_ms.map(ord_u64),
                n.posted_by.as_bytes().as_slice(),
                n.cancelled.is_some(),
            ])?;
        self.tx
            .prepare_cached("DELETE FROM v_acks WHERE group_id = ?1 AND notice_id = ?2")?
            .execute(params![self.group, n.id.as_bytes().as_slice()])?;
        let mut ack = self.tx.prepare_cached(
            "INSERT INTO v_acks (group_id, notice_id, identity) VALUES (?1, ?2, ?3)",
        )?;
        for who in &n.acks {
            ack.execute(params![
                self.group,
                n.id.as_bytes().as_slice(),
                who.as_bytes().as_slice()
            ])?;
        }
        Ok(())
    }

    fn delete_notice(&self, id: &NoticeId) -> Result<(), StoreError> {
        for sql in [
            "DELETE FROM v_notices WHERE group_id = ?1 AND notice_id = ?2",
            "DELETE FROM v_acks WHERE group_id = ?1 AND notice_id = ?2",
        ] {
            self.tx
                .prepare_cached(sql)?
                .execute(params![self.group, id.as_bytes().as_slice()])?;
        }
        Ok(())
    }

    /// Rewrites the member and device rows (a few per group).
    pub(crate) fn members_and_devices(&self, state: &State) -> Result<(), StoreError> {
        self.tx
            .prepare_cached("DELETE FROM v_members WHERE group_id = ?1")?
            .execute([self.group])?;
        self.tx
            .prepare_cached("DELETE FROM v_devices WHERE group_id = ?1")?
            .execute([self.group])?;
        let mut put = self.tx.prepare_cached(
            "INSERT INTO v_members (group_id, identity, name, is_admin, removed)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for m in state.members() {
            put.execute(params![
                self.group,
                m.identity.as_bytes().as_slice(),
                m.name,
                m.role == Role::Admin,
                !m.is_current(),
            ])?;
        }
        let mut put = self.tx.prepare_cached(
            "INSERT INTO v_devices (group_id, device, identity, dh, label, revoked)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut seen = HashSet::new();
        for m in state.members() {
            for d in state.devices_of(&m.identity) {
                if seen.insert(d.cert.device) {
                    put.execute(params![
                        self.group,
                        d.cert.device.as_bytes().as_slice(),
                        d.cert.identity.as_bytes().as_slice(),
                        d.cert.dh.as_slice(),
                        d.cert.label,
                        d.revoked.is_some(),
                    ])?;
                }
            }
        }
        Ok(())
    }

    /// Writes the group row: founder, name, campaign, epoch, and the version of these
    /// views.
    pub(crate) fn group_row(&self, state: &State) -> Result<(), StoreError> {
        let campaign = state.campaign();
        self.tx
            .prepare_cached(
                "INSERT INTO groups (group_id, founder, views_version, name, headcount,
                 target_percent, current_epoch) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (group_id) DO UPDATE SET founder = excluded.founder,
                 views_version = excluded.views_version, name = excluded.name,
                 headcount = excluded.headcount, target_percent = excluded.target_percent,
                 current_epoch = excluded.current_epoch",
            )?
            .execute(params![
                self.group,
                state.founder().as_bytes().as_slice(),
                crate::group::VIEWS_VERSION,
                state.group_name(),
                campaign.map(|c| c.headcount),
                campaign.map(|c| c.target_percent),
                to_sql_u64(state.current_epoch()),
            ])?;
        Ok(())
    }
}
