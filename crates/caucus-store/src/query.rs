//! Read queries on the materialized views: what the CLI asks with the node stopped or
//! running, without folding.
//!
//! Each query answers what the model's query of the same name answers on a fresh fold
//! (the property test in `tests/views.rs` checks it): the same filters with the same
//! Unicode case folding, the same order, removed contacts nowhere.

use crate::group::identity;
use crate::store::{entry_id, from_sql_u64};
use crate::views::{
    ContactRow, DeviceRow, FollowupRow, MemberRow, NoteRow, NoticeRow, from_ord_u64, ord_u64,
};
use crate::{Store, StoreError};
use caucus_model::{
    ContactFilter, Delivery, RatingCounts, RatingFilter, ShareBase, SupportShare, WorkplaceMap,
};
use caucus_proto::{
    Author, ContactId, Day, DeviceKey, FollowupId, GroupId, Hlc, NoticeId, Rating, Role,
};
use rusqlite::{OptionalExtension, Row, params};
use std::collections::{BTreeMap, HashMap};

/// A contact with its conversation log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactDetail {
    /// The contact.
    pub contact: ContactRow,
    /// Its notes, in the model's order (day, clock, entry id).
    pub notes: Vec<NoteRow>,
}

/// A follow-up due, with its contact's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueRow {
    /// The follow-up.
    pub followup: FollowupRow,
    /// Its contact's name.
    pub contact_name: String,
    /// Due before the asked day.
    pub overdue: bool,
}

/// A current notice with "delivered to k of n".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoticeSummary {
    /// The notice.
    pub notice: NoticeRow,
    /// Current members who acknowledged it, of all current members.
    pub delivery: Delivery,
}

const CONTACT_COLUMNS: &str = "contact_id, name, department, shift, job, handle, rating, \
     assigned_to, removed, first_seen_ms, first_seen_counter";

fn fixed<const N: usize>(bytes: &[u8], what: &'static str) -> Result<[u8; N], StoreError> {
    <[u8; N]>::try_from(bytes).map_err(|_| StoreError::Malformed(what))
}

fn rating(n: Option<u8>) -> Result<Option<Rating>, StoreError> {
    n.map(|n| Rating::new(n).map_err(|_| StoreError::Malformed("stored rating out of range")))
        .transpose()
}

fn contact_row(r: &Row<'_>) -> Result<ContactRow, StoreError> {
    Ok(ContactRow {
        id: ContactId(fixed(blob(r, 0)?, "contact id")?),
        name: r.get(1)?,
        department: r.get(2)?,
        shift: r.get(3)?,
        job: r.get(4)?,
        handle: r.get(5)?,
        rating: rating(r.get(6)?)?,
        assigned_to: r.get(7)?,
        removed: r.get(8)?,
        first_seen: Hlc {
            wall_ms: from_sql_u64(r.get(9)?),
            counter: r.get(10)?,
        },
        tags: BTreeMap::new(),
    })
}

pub(crate) fn blob<'a>(r: &'a Row<'_>, i: usize) -> Result<&'a [u8], StoreError> {
    r.get_ref(i)?
        .as_blob()
        .map_err(|_| StoreError::Malformed("expected a blob"))
}

const NOTE_COLUMNS: &str = "entry_id, contact_id, author_identity, author_device, hlc_ms, \
     hlc_counter, day, date, by_name, text";

fn note_row(r: &Row<'_>) -> Result<NoteRow, StoreError> {
    Ok(NoteRow {
        entry: entry_id(blob(r, 0)?)?,
        contact: ContactId(fixed(blob(r, 1)?, "contact id")?),
        author: Author {
            identity: identity(blob(r, 2)?)?,
            device: DeviceKey(fixed(blob(r, 3)?, "device key")?),
        },
        hlc: Hlc {
            wall_ms: from_sql_u64(r.get(4)?),
            counter: r.get(5)?,
        },
        day: Day(r.get(6)?),
        date: r.get::<_, Option<i32>>(7)?.map(Day),
        by: r.get(8)?,
        text: r.get(9)?,
    })
}

const NOTICE_COLUMNS: &str =
    "notice_id, title, starts_at, place, body, urgent, expires_at, posted_by, cancelled";

fn notice_row(r: &Row<'_>) -> Result<NoticeRow, StoreError> {
    Ok(NoticeRow {
        id: NoticeId(fixed(blob(r, 0)?, "notice id")?),
        title: r.get(1)?,
        starts_at_ms: from_ord_u64(r.get(2)?),
        place: r.get(3)?,
        body: r.get(4)?,
        urgent: r.get(5)?,
        expires_at_ms: r.get::<_, Option<i64>>(6)?.map(from_ord_u64),
        posted_by: identity(blob(r, 7)?)?,
        cancelled: r.get(8)?,
        acks: Vec::new(),
    })
}

/// The query of [`Store::contacts`]. The notes subquery names its index: without
/// statistics SQLite preferred the notes' primary key, scanning every note of the group
/// for every contact (about 100 s for a text search of the reference campaign).
fn contacts_sql() -> String {
    format!(
        "SELECT {CONTACT_COLUMNS} FROM v_contacts c
         WHERE group_id = ?1 AND removed = 0
           AND (?2 IS NULL OR dept_key = ?2)
           AND (?3 IS NULL OR shift_key = ?3)
           AND (?4 IS NULL OR assigned_key = ?4)
           AND (?5 IS NULL OR EXISTS (SELECT 1 FROM v_tags t WHERE t.group_id = c.group_id
                AND t.contact_id = c.contact_id AND t.tag_key = ?5 AND t.is_on = 1))
           AND (?6 = 0 OR (?6 = 1 AND rating = ?7) OR (?6 = 2 AND rating IS NULL)
                OR (?6 = 3 AND rating <= 2))
           AND (?8 IS NULL OR instr(name_key, ?8) > 0 OR instr(job_key, ?8) > 0
                OR instr(handle_key, ?8) > 0
                OR EXISTS (SELECT 1 FROM v_notes n INDEXED BY v_notes_by_contact
                   WHERE n.group_id = c.group_id AND n.contact_id = c.contact_id
                   AND instr(coalesce(n.text_key, n.text), ?8) > 0))
         ORDER BY name_key, contact_id"
    )
}

impl Store {
    /// Contacts (not removed) matching every filter of `filter`, by name
    /// (case-insensitive) then id: [`caucus_model::State::list_contacts`] on SQL.
    pub fn contacts(
        &self,
        group: &GroupId,
        filter: &ContactFilter,
    ) -> Result<Vec<ContactRow>, StoreError> {
        let (rating_mode, rating_value): (u8, Option<u8>) = match filter.rating {
            None => (0, None),
            Some(RatingFilter::Is(r)) => (1, Some(r.get())),
            Some(RatingFilter::Unrated) => (2, None),
            Some(RatingFilter::Supportive) => (3, None),
            Some(_) => return Err(StoreError::Malformed("rating filter not supported")),
        };
        let lower = |s: &Option<String>| s.as_ref().map(|s| s.to_lowercase());
        let sql = contacts_sql();
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![
            group.as_bytes().as_slice(),
            lower(&filter.department),
            lower(&filter.shift),
            lower(&filter.assignee),
            lower(&filter.tag),
            rating_mode,
            rating_value,
            lower(&filter.text),
        ])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(contact_row(r)?);
        }
        self.attach_tags(group, &mut out)?;
        Ok(out)
    }

    /// Every contact row of the group, removed ones included, by id.
    pub fn all_contacts(&self, group: &GroupId) -> Result<Vec<ContactRow>, StoreError> {
        let sql = format!(
            "SELECT {CONTACT_COLUMNS} FROM v_contacts WHERE group_id = ?1 ORDER BY contact_id"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query([group.as_bytes().as_slice()])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(contact_row(r)?);
        }
        self.attach_tags(group, &mut out)?;
        Ok(out)
    }

    fn attach_tags(&self, group: &GroupId, rows: &mut [ContactRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tags: HashMap<ContactId, BTreeMap<String, bool>> = HashMap::new();
        // A short listing looks its contacts' tags up by key; a long one reads them all.
        if rows.len() <= 256 {
            let mut stmt = self.conn.prepare_cached(
                "SELECT tag, is_on FROM v_tags WHERE group_id = ?1 AND contact_id = ?2",
            )?;
            for row in rows.iter_mut() {
                let mut q = stmt.query(params![
                    group.as_bytes().as_slice(),
                    row.id.as_bytes().as_slice()
                ])?;
                while let Some(r) = q.next()? {
                    row.tags.insert(r.get(0)?, r.get(1)?);
                }
            }
            return Ok(());
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT contact_id, tag, is_on FROM v_tags WHERE group_id = ?1")?;
        let mut q = stmt.query([group.as_bytes().as_slice()])?;
        while let Some(r) = q.next()? {
            let id = ContactId(fixed(blob(r, 0)?, "contact id")?);
            tags.entry(id).or_default().insert(r.get(1)?, r.get(2)?);
        }
        for row in rows {
            if let Some(t) = tags.remove(&row.id) {
                row.tags = t;
            }
        }
        Ok(())
    }

    /// A contact that has not been removed, with its notes.
    pub fn contact(
        &self,
        group: &GroupId,
        id: &ContactId,
    ) -> Result<Option<ContactDetail>, StoreError> {
        let sql = format!(
            "SELECT {CONTACT_COLUMNS} FROM v_contacts
             WHERE group_id = ?1 AND contact_id = ?2 AND removed = 0"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![
            group.as_bytes().as_slice(),
            id.as_bytes().as_slice()
        ])?;
        let Some(r) = rows.next()? else {
            return Ok(None);
        };
        let mut contact = [contact_row(r)?];
        drop(rows);
        self.attach_tags(group, &mut contact)?;
        let [contact] = contact;
        Ok(Some(ContactDetail {
            notes: self.notes(group, id)?,
            contact,
        }))
    }

    /// A contact's notes (removed contacts too), in the model's order.
    pub fn notes(&self, group: &GroupId, contact: &ContactId) -> Result<Vec<NoteRow>, StoreError> {
        let sql = format!(
            "SELECT {NOTE_COLUMNS} FROM v_notes WHERE group_id = ?1 AND contact_id = ?2
             ORDER BY sort_key"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![
            group.as_bytes().as_slice(),
            contact.as_bytes().as_slice()
        ])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(note_row(r)?);
        }
        Ok(out)
    }

    /// Every note of the group, by contact then note order.
    pub fn all_notes(&self, group: &GroupId) -> Result<Vec<NoteRow>, StoreError> {
        let sql = format!(
            "SELECT {NOTE_COLUMNS} FROM v_notes WHERE group_id = ?1
             ORDER BY contact_id, sort_key"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query([group.as_bytes().as_slice()])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(note_row(r)?);
        }
        Ok(out)
    }

    /// Every follow-up of the group, by id.
    pub fn followups(&self, group: &GroupId) -> Result<Vec<FollowupRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT followup_id, contact_id, due, assignee, task, done FROM v_followups
             WHERE group_id = ?1 ORDER BY followup_id",
        )?;
        let mut rows = stmt.query([group.as_bytes().as_slice()])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(followup_row(r)?);
        }
        Ok(out)
    }

    /// Follow-ups not done, of contacts not removed, due on or before `today +
    /// horizon_days`: overdue first, then by due day, then id.
    pub fn followups_due(
        &self,
        group: &GroupId,
        today: Day,
        horizon_days: u32,
    ) -> Result<Vec<DueRow>, StoreError> {
        let until = i64::from(today.0) + i64::from(horizon_days);
        let mut stmt = self.conn.prepare_cached(
            "SELECT f.followup_id, f.contact_id, f.due, f.assignee, f.task, f.done, c.name
             FROM v_followups f JOIN v_contacts c
               ON c.group_id = f.group_id AND c.contact_id = f.contact_id
             WHERE f.group_id = ?1 AND f.done = 0 AND f.due <= ?2 AND c.removed = 0
             ORDER BY f.due >= ?3, f.due, f.followup_id",
        )?;
        let mut rows = stmt.query(params![group.as_bytes().as_slice(), until, today.0])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let followup = followup_row(r)?;
            out.push(DueRow {
                overdue: followup.due < today,
                contact_name: r.get(6)?,
                followup,
            });
        }
        Ok(out)
    }

    /// Every notice of the group (cancelled and expired ones included), by id, with acks.
    pub fn all_notices(&self, group: &GroupId) -> Result<Vec<NoticeRow>, StoreError> {
        let sql = format!(
            "SELECT {NOTICE_COLUMNS} FROM v_notices WHERE group_id = ?1 ORDER BY notice_id"
        );
        self.notice_rows(group, &sql, None)
    }

    fn notice_rows(
        &self,
        group: &GroupId,
        sql: &str,
        now_ms: Option<u64>,
    ) -> Result<Vec<NoticeRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let mut rows = match now_ms {
            Some(now) => stmt.query(params![group.as_bytes().as_slice(), ord_u64(now)])?,
            None => stmt.query([group.as_bytes().as_slice()])?,
        };
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(notice_row(r)?);
        }
        drop(rows);
        let mut acks = self.conn.prepare_cached(
            "SELECT identity FROM v_acks WHERE group_id = ?1 AND notice_id = ?2
             ORDER BY identity",
        )?;
        for n in &mut out {
            let mut q = acks.query(params![
                group.as_bytes().as_slice(),
                n.id.as_bytes().as_slice()
            ])?;
            while let Some(r) = q.next()? {
                n.acks.push(identity(blob(r, 0)?)?);
            }
        }
        Ok(out)
    }

    /// Notices current at `now_ms` (not cancelled, not expired), by start then id, with
    /// "delivered to k of n" over current members.
    pub fn current_notices(
        &self,
        group: &GroupId,
        now_ms: u64,
    ) -> Result<Vec<NoticeSummary>, StoreError> {
        let sql = format!(
            "SELECT {NOTICE_COLUMNS} FROM v_notices
             WHERE group_id = ?1 AND cancelled = 0 AND (expires_at IS NULL OR ?2 < expires_at)
             ORDER BY starts_at, notice_id"
        );
        let notices = self.notice_rows(group, &sql, Some(now_ms))?;
        let mut out = Vec::with_capacity(notices.len());
        for notice in notices {
            let delivery = self
                .delivered(group, &notice.id)?
                .unwrap_or(Delivery { acked: 0, total: 0 });
            out.push(NoticeSummary { notice, delivery });
        }
        Ok(out)
    }

    /// "Delivered to k of n" for a notice; `None` for an unknown notice.
    pub fn delivered(
        &self,
        group: &GroupId,
        notice: &NoticeId,
    ) -> Result<Option<Delivery>, StoreError> {
        let g = group.as_bytes().as_slice();
        let known = self
            .conn
            .prepare_cached("SELECT 1 FROM v_notices WHERE group_id = ?1 AND notice_id = ?2")?
            .exists(params![g, notice.as_bytes().as_slice()])?;
        if !known {
            return Ok(None);
        }
        let acked: u32 = self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM v_acks a JOIN v_members m
                   ON m.group_id = a.group_id AND m.identity = a.identity
                 WHERE a.group_id = ?1 AND a.notice_id = ?2 AND m.removed = 0",
            )?
            .query_row(params![g, notice.as_bytes().as_slice()], |r| r.get(0))?;
        let total: u32 = self
            .conn
            .prepare_cached("SELECT count(*) FROM v_members WHERE group_id = ?1 AND removed = 0")?
            .query_row([g], |r| r.get(0))?;
        Ok(Some(Delivery { acked, total }))
    }

    /// Every member ever added (removed ones flagged), by identity key.
    pub fn members(&self, group: &GroupId) -> Result<Vec<MemberRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT identity, name, is_admin, removed FROM v_members WHERE group_id = ?1
             ORDER BY identity",
        )?;
        let mut rows = stmt.query([group.as_bytes().as_slice()])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(MemberRow {
                identity: identity(blob(r, 0)?)?,
                name: r.get(1)?,
                role: if r.get(2)? {
                    Role::Admin
                } else {
                    Role::Organizer
                },
                current: !r.get::<_, bool>(3)?,
            });
        }
        Ok(out)
    }

    /// Every device ever linked (revoked ones flagged), by device key.
    pub fn devices(&self, group: &GroupId) -> Result<Vec<DeviceRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT device, identity, dh, label, revoked FROM v_devices WHERE group_id = ?1
             ORDER BY device",
        )?;
        let mut rows = stmt.query([group.as_bytes().as_slice()])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(DeviceRow {
                device: DeviceKey(fixed(blob(r, 0)?, "device key")?),
                identity: identity(blob(r, 1)?)?,
                dh: fixed(blob(r, 2)?, "device dh key")?,
                label: r.get(3)?,
                revoked: r.get(4)?,
            });
        }
        Ok(out)
    }

    /// The workplace map: contacts not removed, by department and shift, by rating.
    pub fn workplace_map(&self, group: &GroupId) -> Result<WorkplaceMap, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT department, shift, rating, count(*) FROM v_contacts
             WHERE group_id = ?1 AND removed = 0 GROUP BY department, shift, rating",
        )?;
        let mut rows = stmt.query([group.as_bytes().as_slice()])?;
        let mut map = WorkplaceMap::default();
        while let Some(r) = rows.next()? {
            let dept: String = r.get(0)?;
            let shift: String = r.get(1)?;
            let rating = rating(r.get(2)?)?;
            let n: u32 = r.get(3)?;
            let add = |c: &mut RatingCounts| match rating {
                Some(r) => c.by_rating[usize::from(r.get() - 1)] += n,
                None => c.unrated += n,
            };
            add(map.by_shift.entry(shift.clone()).or_default());
            add(map.by_department.entry(dept.clone()).or_default());
            add(map.cells.entry(dept).or_default().entry(shift).or_default());
            add(&mut map.total);
        }
        Ok(map)
    }

    /// Supportive contacts against the campaign's headcount (or the contacts on file
    /// when no headcount is set), as [`caucus_model::State::support_share`].
    pub fn support_share(&self, group: &GroupId) -> Result<SupportShare, StoreError> {
        let g = group.as_bytes().as_slice();
        let (supportive, total): (u32, u32) = self
            .conn
            .prepare_cached(
                "SELECT coalesce(sum(rating <= 2), 0), count(*) FROM v_contacts
             WHERE group_id = ?1 AND removed = 0",
            )?
            .query_row([g], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let campaign: Option<(Option<u32>, Option<u8>)> = self
            .conn
            .prepare_cached("SELECT headcount, target_percent FROM groups WHERE group_id = ?1")?
            .query_row([g], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (headcount, target) = campaign.ok_or(StoreError::UnknownGroup)?;
        Ok(SupportShare {
            supportive,
            base: match headcount {
                Some(h) if h > 0 => ShareBase::Headcount(h),
                _ => ShareBase::Contacts(total),
            },
            target_percent: target,
        })
    }

    /// The group's name, once set.
    pub fn group_name(&self, group: &GroupId) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT name FROM groups WHERE group_id = ?1")?
            .query_row([group.as_bytes().as_slice()], |r| r.get(0))
            .optional()?
            .flatten())
    }
}

fn followup_row(r: &Row<'_>) -> Result<FollowupRow, StoreError> {
    Ok(FollowupRow {
        id: FollowupId(fixed(blob(r, 0)?, "follow-up id")?),
        contact: ContactId(fixed(blob(r, 1)?, "contact id")?),
        due: Day(r.get(2)?),
        assignee: r.get(3)?,
        task: r.get(4)?,
        done: r.get(5)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::DbKey;

    /// Every lookup of the contact query goes through an index: the contacts by name, and
    /// a contact's notes and tags by contact (never a scan of the group's notes).
    #[test]
    fn the_contact_query_looks_notes_up_by_contact() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), &DbKey::from_bytes([7; 32])).unwrap();
        let mut stmt = store
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", contacts_sql()))
            .unwrap();
        let plan: Vec<String> = stmt
            .query_map(
                params![
                    [0u8; 16].as_slice(),
                    None::<String>,
                    None::<String>,
                    None::<String>,
                    None::<String>,
                    0,
                    None::<u8>,
                    "x"
                ],
                |r| r.get(3),
            )
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let notes = plan.iter().find(|l| l.contains(" n ")).unwrap();
        assert!(
            notes.contains("v_notes_by_contact (group_id=? AND contact_id=?)"),
            "{plan:?}"
        );
        assert!(plan.iter().all(|l| !l.starts_with("SCAN")), "{plan:?}");
    }
}
