//! Questions an organizer asks of the state: contact listings, the workplace map,
//! follow-ups due, the support share, current notices and who received them.
//!
//! All pure: the date or instant they depend on is an argument. Removed contacts count
//! nowhere here, and neither do their follow-ups.

use crate::records::{Contact, Delivery, Followup, Notice};
use crate::state::State;
use caucus_proto::{Day, NoticeId, Rating};
use serde::Serialize;
use std::collections::BTreeMap;

/// Which ratings a contact listing keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RatingFilter {
    /// Exactly this rating.
    Is(Rating),
    /// Not rated yet.
    Unrated,
    /// Rated 1 or 2.
    Supportive,
}

/// Filters for [`State::list_contacts`]. Every filter set must match; text matches are
/// case-insensitive (department, shift, tag and assignee exactly, `text` as a substring
/// of the name, job, handle or any note).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContactFilter {
    /// Department.
    pub department: Option<String>,
    /// Shift.
    pub shift: Option<String>,
    /// Rating.
    pub rating: Option<RatingFilter>,
    /// A tag that must be on.
    pub tag: Option<String>,
    /// Assigned organizer.
    pub assignee: Option<String>,
    /// Free text searched in name, job, handle and notes.
    pub text: Option<String>,
}

impl ContactFilter {
    /// No filter: every contact.
    pub fn all() -> ContactFilter {
        ContactFilter::default()
    }

    /// Only this department.
    pub fn department(mut self, department: impl Into<String>) -> Self {
        self.department = Some(department.into());
        self
    }

    /// Only this shift.
    pub fn shift(mut self, shift: impl Into<String>) -> Self {
        self.shift = Some(shift.into());
        self
    }

    /// Only these ratings.
    pub fn rating(mut self, rating: RatingFilter) -> Self {
        self.rating = Some(rating);
        self
    }

    /// Only contacts carrying this tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// Only contacts assigned to this organizer.
    pub fn assignee(mut self, assignee: impl Into<String>) -> Self {
        self.assignee = Some(assignee.into());
        self
    }

    /// Only contacts whose name, job, handle or notes contain this text.
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }
}

fn same(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

/// Counts of contacts by rating, plus the unrated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RatingCounts {
    /// Contacts rated 1 to 5 (index 0 is rating 1).
    pub by_rating: [u32; 5],
    /// Contacts not rated yet.
    pub unrated: u32,
}

impl RatingCounts {
    fn add(&mut self, rating: Option<Rating>) {
        match rating {
            Some(r) => self.by_rating[usize::from(r.get() - 1)] += 1,
            None => self.unrated += 1,
        }
    }

    /// Contacts with this rating.
    pub fn get(&self, rating: Rating) -> u32 {
        self.by_rating[usize::from(rating.get() - 1)]
    }

    /// Contacts rated supportive (1 or 2).
    pub fn supportive(&self) -> u32 {
        self.by_rating[0] + self.by_rating[1]
    }

    /// Contacts rated at all.
    pub fn rated(&self) -> u32 {
        self.by_rating.iter().sum()
    }

    /// All contacts counted.
    pub fn total(&self) -> u32 {
        self.rated() + self.unrated
    }
}

/// The workplace map: contacts by department and shift, by rating. Departments and
/// shifts are grouped by their exact text (normalize spelling on input); an empty one
/// stands for "not known".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WorkplaceMap {
    /// Department, then shift, then the counts.
    pub cells: BTreeMap<String, BTreeMap<String, RatingCounts>>,
    /// Totals per department.
    pub by_department: BTreeMap<String, RatingCounts>,
    /// Totals per shift.
    pub by_shift: BTreeMap<String, RatingCounts>,
    /// Overall totals.
    pub total: RatingCounts,
}

impl WorkplaceMap {
    /// The counts of one department and shift (zero when nobody is there).
    pub fn cell(&self, department: &str, shift: &str) -> RatingCounts {
        self.cells
            .get(department)
            .and_then(|shifts| shifts.get(shift))
            .copied()
            .unwrap_or_default()
    }
}

/// A follow-up due by the asked day.
#[derive(Clone, Copy, Debug)]
pub struct DueFollowup<'a> {
    /// The follow-up.
    pub followup: &'a Followup,
    /// Its contact.
    pub contact: &'a Contact,
    /// Due before the asked day.
    pub overdue: bool,
}

/// What the support share is measured against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum ShareBase {
    /// The campaign's known headcount.
    Headcount(u32),
    /// No headcount set: the number of contacts on file, an overestimate of the share.
    Contacts(u32),
}

impl ShareBase {
    /// The number the share is taken of.
    pub fn count(self) -> u32 {
        match self {
            ShareBase::Headcount(n) | ShareBase::Contacts(n) => n,
        }
    }
}

/// The share of workers rated supportive, against the campaign's target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SupportShare {
    /// Contacts rated 1 or 2.
    pub supportive: u32,
    /// What the share is taken of.
    pub base: ShareBase,
    /// The target in percent, once the campaign is set.
    pub target_percent: Option<u8>,
}

impl SupportShare {
    /// The share in percent (0 when the base is 0).
    pub fn percent(&self) -> f64 {
        match self.base.count() {
            0 => 0.0,
            n => f64::from(self.supportive) * 100.0 / f64::from(n),
        }
    }

    /// Whether the target is met; `None` without a target.
    pub fn target_met(&self) -> Option<bool> {
        self.target_percent.map(|t| {
            u64::from(self.supportive) * 100 >= u64::from(t) * u64::from(self.base.count())
        })
    }

    /// Supporters still needed to reach the target; `None` without a target.
    pub fn still_needed(&self) -> Option<u32> {
        self.target_percent.map(|t| {
            let needed = (u64::from(t) * u64::from(self.base.count())).div_ceil(100);
            u32::try_from(needed.saturating_sub(u64::from(self.supportive))).unwrap_or(u32::MAX)
        })
    }
}

impl State {
    /// Contacts (not removed) matching every filter, by name (case-insensitive) then id.
    pub fn list_contacts(&self, filter: &ContactFilter) -> Vec<&Contact> {
        let text = filter.text.as_ref().map(|t| t.to_lowercase());
        let mut out: Vec<&Contact> = self
            .contacts()
            .filter(|c| {
                filter
                    .department
                    .as_ref()
                    .is_none_or(|d| same(d, &c.department))
                    && filter.shift.as_ref().is_none_or(|s| same(s, &c.shift))
                    && filter
                        .assignee
                        .as_ref()
                        .is_none_or(|a| same(a, &c.assigned_to))
                    && filter
                        .tag
                        .as_ref()
                        .is_none_or(|t| c.tags_on().any(|on| same(on, t)))
                    && filter.rating.is_none_or(|r| match r {
                        RatingFilter::Is(want) => c.rating == Some(want),
                        RatingFilter::Unrated => c.rating.is_none(),
                        RatingFilter::Supportive => c.rating.is_some_and(Rating::is_supportive),
                    })
                    && text.as_ref().is_none_or(|t| self.mentions(c, t))
            })
            .collect();
        out.sort_by_cached_key(|c| (c.name.to_lowercase(), c.id));
        out
    }

    /// Whether `lower` (already lowercase) occurs in the contact's name, job, handle or notes.
    fn mentions(&self, c: &Contact, lower: &str) -> bool {
        let has = |s: &str| s.to_lowercase().contains(lower);
        has(&c.name) || has(&c.job) || has(&c.handle) || self.notes(&c.id).any(|n| has(&n.text))
    }

    /// The workplace map of the contacts that are not removed.
    pub fn workplace_map(&self) -> WorkplaceMap {
        let mut map = WorkplaceMap::default();
        for c in self.contacts() {
            map.cells
                .entry(c.department.clone())
                .or_default()
                .entry(c.shift.clone())
                .or_default()
                .add(c.rating);
            map.by_department
                .entry(c.department.clone())
                .or_default()
                .add(c.rating);
            map.by_shift
                .entry(c.shift.clone())
                .or_default()
                .add(c.rating);
            map.total.add(c.rating);
        }
        map
    }

    /// Follow-ups not done, of contacts not removed, due on or before `today +
    /// horizon_days`: overdue ones first, then by due day, then by id.
    pub fn followups_due(&self, today: Day, horizon_days: u32) -> Vec<DueFollowup<'_>> {
        let until = i64::from(today.0) + i64::from(horizon_days);
        let mut out: Vec<DueFollowup<'_>> = self
            .followups()
            .filter(|f| !f.done && i64::from(f.due.0) <= until)
            .filter_map(|f| {
                Some(DueFollowup {
                    followup: f,
                    contact: self.contact(&f.contact)?,
                    overdue: f.due < today,
                })
            })
            .collect();
        out.sort_by_key(|d| (!d.overdue, d.followup.due, d.followup.id));
        out
    }

    /// Supportive contacts (rated 1 or 2) against the campaign's headcount, or against
    /// the number of contacts when no headcount is set (a headcount of 0 counts as unset).
    pub fn support_share(&self) -> SupportShare {
        let mut counts = RatingCounts::default();
        for c in self.contacts() {
            counts.add(c.rating);
        }
        let campaign = self.campaign();
        let base = match campaign {
            Some(c) if c.headcount > 0 => ShareBase::Headcount(c.headcount),
            _ => ShareBase::Contacts(counts.total()),
        };
        SupportShare {
            supportive: counts.supportive(),
            base,
            target_percent: campaign.map(|c| c.target_percent),
        }
    }

    /// Notices shown as current at `now_ms` (not cancelled, not expired), by start time
    /// then id.
    pub fn current_notices(&self, now_ms: u64) -> Vec<&Notice> {
        let mut out: Vec<&Notice> = self.notices().filter(|n| n.is_current(now_ms)).collect();
        out.sort_by_key(|n| (n.content.starts_at_ms, n.id));
        out
    }

    /// "Delivered to k of n": current members who acknowledged the notice, out of all
    /// current members. `None` for an unknown notice.
    pub fn delivered(&self, notice: &NoticeId) -> Option<Delivery> {
        let n = self.notice(notice)?;
        let mut delivery = Delivery { acked: 0, total: 0 };
        for m in self.current_members() {
            delivery.total += 1;
            if n.acks.contains(&m.identity) {
                delivery.acked += 1;
            }
        }
        Some(delivery)
    }

    /// Current members who have not acknowledged the notice yet, by identity key.
    pub fn not_acked<'a>(
        &'a self,
        notice: &'a NoticeId,
    ) -> impl Iterator<Item = &'a crate::Member> + 'a {
        let acks = self.notice(notice).map(|n| &n.acks);
        self.current_members()
            .filter(move |m| acks.is_some_and(|a| !a.contains(&m.identity)))
    }
}
