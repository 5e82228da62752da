//! The records the fold produces: contacts and their notes, follow-ups, notices,
//! members, devices, epoch deliveries and the campaign.
//!
//! Records are read-only views handed out by [`crate::State`]; every collection in them
//! is a `BTreeMap` or `BTreeSet` so iteration order, and therefore the state hash, is
//! canonical.

use crate::entry::FoldKey;
use caucus_proto::{
    Author, ContactId, Day, DeviceCert, DeviceKey, EntryId, FollowupId, Hlc, IdentityKey,
    KeyDelivery, NoticeContent, NoticeId, Rating, Role,
};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Who did something, when, in which entry: the stamp of a sticky event such as a
/// removal, a revocation or a cancellation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Stamp {
    /// The entry that did it.
    pub entry: EntryId,
    /// Its author.
    pub by: Author,
    /// Its clock.
    pub hlc: Hlc,
}

impl Stamp {
    /// The stamped entry's place in the fold order.
    pub fn fold_key(&self) -> FoldKey {
        FoldKey {
            hlc: self.hlc,
            device: self.by.device,
            id: self.entry,
        }
    }
}

/// A worker the committee talks to.
///
/// Every field is a last-writer-wins register; tags are one register per tag. A contact
/// first mentioned by a note, a follow-up or a field edit exists from then on, with
/// empty fields until someone sets them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Contact {
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
    /// Support rating, 1 (leader) to 5 (opposed); `None` until rated.
    pub rating: Option<Rating>,
    /// Every tag ever set, with whether it is on now.
    pub tags: BTreeMap<String, bool>,
    /// The organizer responsible, by name; empty when unassigned.
    pub assigned_to: String,
    /// Set once the contact is removed. Permanent (see the crate docs).
    pub removed: Option<Stamp>,
    /// Clock of the first entry that mentioned this contact.
    pub first_seen: Hlc,
    /// Which entry last wrote each field (not part of the state hash: it follows from
    /// the entries).
    #[serde(skip)]
    pub(crate) stamps: FieldStamps,
}

/// The fold key of the entry that last wrote each field of a contact, so that an entry
/// arriving late can be merged without folding everything again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldStamps {
    pub(crate) name: Option<FoldKey>,
    pub(crate) department: Option<FoldKey>,
    pub(crate) shift: Option<FoldKey>,
    pub(crate) job: Option<FoldKey>,
    pub(crate) handle: Option<FoldKey>,
    pub(crate) rating: Option<FoldKey>,
    pub(crate) assigned_to: Option<FoldKey>,
    pub(crate) tags: BTreeMap<String, FoldKey>,
}

impl Contact {
    pub(crate) fn new(id: ContactId, first_seen: Hlc) -> Contact {
        Contact {
            id,
            name: String::new(),
            department: String::new(),
            shift: String::new(),
            job: String::new(),
            handle: String::new(),
            rating: None,
            tags: BTreeMap::new(),
            assigned_to: String::new(),
            removed: None,
            first_seen,
            stamps: FieldStamps::default(),
        }
    }

    /// The tags currently on, in sorted order.
    pub fn tags_on(&self) -> impl Iterator<Item = &str> {
        self.tags
            .iter()
            .filter(|(_, on)| **on)
            .map(|(t, _)| t.as_str())
    }

    /// Whether the tag is currently on (exact text).
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.get(tag).copied().unwrap_or(false)
    }

    /// Whether the contact has been removed.
    pub fn is_removed(&self) -> bool {
        self.removed.is_some()
    }
}

/// Where a note sits in a contact's conversation log: the day of the conversation (or
/// the day it was logged), then the clock, then the entry id. Stable on every replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct NoteKey {
    /// The conversation's day if given, else the day of the entry's clock.
    pub day: Day,
    /// The entry's clock.
    pub hlc: Hlc,
    /// The entry id.
    pub entry: EntryId,
}

/// One note in a contact's conversation log. Append-only: never edited, never dropped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NoteRecord {
    /// The entry that added it (also the note's id).
    pub entry: EntryId,
    /// The contact it is about.
    pub contact: ContactId,
    /// Who logged it.
    pub author: Author,
    /// When it was logged.
    pub hlc: Hlc,
    /// The conversation's day, when it differs from the day it was logged.
    pub date: Option<Day>,
    /// Who had the conversation, when that is not the author.
    pub by: Option<String>,
    /// What was said.
    pub text: String,
}

/// A follow-up: a task about a contact, due on a day, assigned to an organizer.
///
/// The content (contact, due, assignee, task) is one last-writer-wins register, `done`
/// another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Followup {
    /// The follow-up's id.
    pub id: FollowupId,
    /// The contact to follow up with.
    pub contact: ContactId,
    /// Due day.
    pub due: Day,
    /// Organizer responsible, by name.
    pub assignee: String,
    /// What to do.
    pub task: String,
    /// Whether it is done.
    pub done: bool,
    /// The last content change.
    pub set: Stamp,
}

/// A meeting notice and who has acknowledged it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Notice {
    /// The notice's id.
    pub id: NoticeId,
    /// The current content (last writer wins).
    pub content: NoticeContent,
    /// The member who posted it first; organizers may change or cancel only their own.
    pub posted_by: IdentityKey,
    /// The first posting.
    pub posted: Stamp,
    /// Set once cancelled. Sticky: a later or concurrent change does not revive it.
    pub cancelled: Option<Stamp>,
    /// Members who acknowledged it, from any of their devices.
    pub acks: BTreeSet<IdentityKey>,
}

impl Notice {
    /// Whether the notice is shown as current at `now_ms`: not cancelled, not expired.
    pub fn is_current(&self, now_ms: u64) -> bool {
        self.cancelled.is_none() && self.content.expires_at_ms.is_none_or(|exp| now_ms < exp)
    }
}

/// "Delivered to k of n": how many current members acknowledged a notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// Current members who acknowledged.
    pub acked: u32,
    /// Current members.
    pub total: u32,
}

/// A member of the group: an organizer's identity with a name and a role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Member {
    /// The identity key.
    pub identity: IdentityKey,
    /// Display name inside the group (empty for the founder until named).
    pub name: String,
    /// Role.
    pub role: Role,
    /// Set when removed; cleared when added again.
    pub removed: Option<Stamp>,
}

impl Member {
    /// Whether the member is current (not removed).
    pub fn is_current(&self) -> bool {
        self.removed.is_none()
    }
}

/// A device linked to a member's identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Device {
    /// The identity's certificate for the device (keys and label), fixed at its first
    /// link: a changed key is a new device.
    pub cert: DeviceCert,
    /// Set once revoked (or its member removed). Permanent: a revoked key is never
    /// linked again.
    pub revoked: Option<Stamp>,
    /// Whether it was its identity's first device in the group: the one that ran `init`
    /// and holds the identity key (a seized one compromises the identity).
    pub first: bool,
}

/// One `EpochKeyDelivered` entry by an admin, as the crypto layer needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EpochDelivery {
    /// The entry.
    pub entry: EntryId,
    /// The admin who delivered.
    pub author: Author,
    /// When.
    pub hlc: Hlc,
    /// The epoch key sealed to each device.
    pub deliveries: Vec<KeyDelivery>,
}

impl EpochDelivery {
    /// The devices this delivery seals the epoch key to.
    pub fn devices(&self) -> impl Iterator<Item = DeviceKey> + '_ {
        self.deliveries.iter().map(|d| d.device)
    }
}

/// The campaign's known headcount and support target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Campaign {
    /// Workers in the bargaining unit.
    pub headcount: u32,
    /// Target share of supportive workers, in percent.
    pub target_percent: u8,
}
