//! Operations: the one thing each entry says. Variant indices are part of the wire format;
//! new operations are appended at the end (see `proto/PROTOCOL.md`, "Evolution").

use crate::codec::EncodeError;
use crate::ids::{
    ContactId, Day, DeviceKey, EventId, FollowupId, IdentityKey, NoticeId, Signature,
};
use crate::limits::{
    MAX_CUTS, MAX_DELIVERED_MEMBERS, MAX_FIELDS_PER_SET, MAX_KEY_DELIVERIES, MAX_LONG_TEXT,
    MAX_RECORDS_PER_ENTRY, MAX_SEALED_KEY_BYTES, MAX_SHORT_TEXT,
};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Support rating on the usual organizing scale, 1 to 5:
///
/// | rating | meaning |
/// |---|---|
/// | 1 | active organizer or leader |
/// | 2 | supporter |
/// | 3 | undecided |
/// | 4 | leaning against |
/// | 5 | opposed |
///
/// Lower is more supportive; 1 and 2 count as supportive in aggregates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Rating(u8);

/// A rating outside 1–5.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("rating must be 1 (leader) to 5 (opposed), got {0}")]
pub struct RatingError(pub u8);

impl Rating {
    /// All ratings, most supportive first.
    pub const ALL: [Rating; 5] = [Rating(1), Rating(2), Rating(3), Rating(4), Rating(5)];

    /// A rating from its number, 1 to 5.
    pub fn new(n: u8) -> Result<Rating, RatingError> {
        if (1..=5).contains(&n) {
            Ok(Rating(n))
        } else {
            Err(RatingError(n))
        }
    }

    /// The number, 1 to 5.
    pub fn get(self) -> u8 {
        self.0
    }

    /// 1 (leader) and 2 (supporter) count as supportive.
    pub fn is_supportive(self) -> bool {
        self.0 <= 2
    }

    /// The organizer's word for this rating.
    pub fn label(self) -> &'static str {
        match self.0 {
            1 => "leader",
            2 => "supporter",
            3 => "undecided",
            4 => "leaning against",
            _ => "opposed",
        }
    }
}

impl TryFrom<u8> for Rating {
    type Error = RatingError;
    fn try_from(n: u8) -> Result<Rating, RatingError> {
        Rating::new(n)
    }
}

impl From<Rating> for u8 {
    fn from(r: Rating) -> u8 {
        r.0
    }
}

impl fmt::Display for Rating {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a member may do in a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// May do everything: add and remove members, change roles, send urgent notices,
    /// set the campaign's headcount and target, plus everything an organizer may do.
    Admin,
    /// May log contacts, notes and follow-ups, post ordinary notices and acknowledge them,
    /// and link or revoke their own devices.
    Organizer,
}

/// One field of a contact being set. Tags are set one at a time so that two organizers
/// tagging the same contact concurrently both keep their tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContactField {
    /// Full name as the committee knows them.
    Name(String),
    /// Department (e.g. "Outbound Dock").
    Department(String),
    /// Shift (e.g. "Night").
    Shift(String),
    /// Job or work area.
    Job(String),
    /// A way to reach them: phone number or other handle. Empty clears it.
    Handle(String),
    /// Support rating, 1 (leader) to 5 (opposed).
    Rating(Rating),
    /// A tag (e.g. "signed card") put on (`true`) or taken off (`false`).
    Tag {
        /// The tag text.
        tag: String,
        /// Whether the contact carries the tag.
        on: bool,
    },
    /// The organizer responsible for this contact, by name. Empty means unassigned.
    AssignedTo(String),
}

impl ContactField {
    /// The field's text (a tag's name for a tag), `None` for a rating.
    pub fn text(&self) -> Option<&str> {
        match self {
            ContactField::Name(s)
            | ContactField::Department(s)
            | ContactField::Shift(s)
            | ContactField::Job(s)
            | ContactField::Handle(s)
            | ContactField::AssignedTo(s)
            | ContactField::Tag { tag: s, .. } => Some(s),
            ContactField::Rating(_) => None,
        }
    }
}

/// A conversation note. Its author and time of writing are the entry's author and clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// What was said.
    pub text: String,
    /// The day the conversation took place, when it differs from the day it was logged.
    pub date: Option<Day>,
    /// Who had the conversation, as written on a spreadsheet, when that is not the author.
    pub by: Option<String>,
}

/// The content of a meeting notice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeContent {
    /// Short title ("Emergency meeting: schedule change").
    pub title: String,
    /// When the meeting starts, in milliseconds since the Unix epoch.
    pub starts_at_ms: u64,
    /// Where.
    pub place: String,
    /// Longer text.
    pub body: String,
    /// Urgent notices are flooded and acknowledged by every receiving node; admins only.
    pub urgent: bool,
    /// After this instant the notice is no longer shown as current.
    pub expires_at_ms: Option<u64>,
}

/// A device certificate: the organizer's identity vouches for one device's keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCert {
    /// The organizer's identity key (the signer).
    pub identity: IdentityKey,
    /// The device's Ed25519 signing key.
    pub device: DeviceKey,
    /// The device's X25519 key for receiving sealed epoch keys.
    #[serde(with = "crate::codec::fixed")]
    pub dh: [u8; 32],
    /// A label the organizer chose ("phone", "laptop").
    pub label: String,
    /// Identity signature over the certificate's other fields (see `caucus-crypto`).
    pub signature: Signature,
}

/// A new epoch key sealed to one device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyDelivery {
    /// The recipient device.
    pub device: DeviceKey,
    /// The epoch secret sealed to that device alone (see `caucus-crypto`).
    #[serde(with = "crate::codec::bytes")]
    pub sealed: Vec<u8>,
}

/// Where a removal, revocation or role change cuts one device's chain of entries: the
/// last entry of that device the writer had seen. The device's entries up to `seq` on
/// the chain ending at `head` still count; entries beyond it count only if they were
/// written after this operation (see `caucus-model`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Cut {
    /// The device.
    pub device: DeviceKey,
    /// The highest sequence number of the device the writer had seen; 0 for none.
    pub seq: u64,
    /// The event id of that entry; `None` exactly when `seq` is 0.
    pub head: Option<EventId>,
}

impl Cut {
    fn validate(&self) -> Result<(), EncodeError> {
        if (self.seq == 0) != self.head.is_none() {
            return Err(EncodeError::Invalid(
                "a cut names a head exactly when its sequence number is not 0",
            ));
        }
        Ok(())
    }
}

fn validate_cuts(cuts: &[Cut]) -> Result<(), EncodeError> {
    if cuts.len() > MAX_CUTS {
        return Err(EncodeError::Invalid("too many device cuts"));
    }
    if cuts.windows(2).any(|w| w[0].device >= w[1].device) {
        return Err(EncodeError::Invalid(
            "device cuts must be sorted by device, without repeats",
        ));
    }
    cuts.iter().try_for_each(Cut::validate)
}

/// The operation an entry carries. The index of each variant is fixed forever.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operation {
    /// 0: set one or more fields of a contact; creates the contact if it is new.
    ContactSet {
        /// The contact.
        contact: ContactId,
        /// Fields set, all at this entry's clock.
        fields: Vec<ContactField>,
    },
    /// 1: append a note to a contact's conversation log.
    NoteAdded {
        /// The contact.
        contact: ContactId,
        /// The note.
        note: Note,
    },
    /// 2: create or replace a follow-up.
    FollowupSet {
        /// The follow-up.
        followup: FollowupId,
        /// The contact to follow up with.
        contact: ContactId,
        /// Due day.
        due: Day,
        /// Organizer responsible, by name.
        assignee: String,
        /// What to do.
        task: String,
    },
    /// 3: mark a follow-up done (or not done again).
    FollowupDone {
        /// The follow-up.
        followup: FollowupId,
        /// Done or reopened.
        done: bool,
    },
    /// 4: remove a contact. Wins over every edit, concurrent or later (see `caucus-model`).
    ContactRemoved {
        /// The contact.
        contact: ContactId,
    },
    /// 5: post a meeting notice.
    NoticePosted {
        /// The notice.
        notice: NoticeId,
        /// What it says.
        content: NoticeContent,
    },
    /// 6: change a notice's content.
    NoticeChanged {
        /// The notice.
        notice: NoticeId,
        /// The new content.
        content: NoticeContent,
    },
    /// 7: cancel a notice.
    NoticeCancelled {
        /// The notice.
        notice: NoticeId,
    },
    /// 8: the author's member acknowledges having received a notice.
    NoticeAcked {
        /// The notice.
        notice: NoticeId,
    },
    /// 9: add a member (or re-add a removed one) with a display name and a role.
    MemberAdded {
        /// Their identity key.
        member: IdentityKey,
        /// Display name inside the group.
        name: String,
        /// Their role.
        role: Role,
    },
    /// 10: remove a member; starts a new epoch. Every device of the member is cut for
    /// good: at its [`Cut`] if listed, entirely if the writer knew no entry of it.
    MemberRemoved {
        /// Their identity key.
        member: IdentityKey,
        /// Where each of the member's devices the writer knew of is cut, by device.
        cuts: Vec<Cut>,
    },
    /// 11: change a member's role. The new role applies to each device's entries after
    /// its [`Cut`] (all of a device's entries if it is not listed).
    RoleChanged {
        /// Their identity key.
        member: IdentityKey,
        /// The new role.
        role: Role,
        /// Where the change falls in each of the member's devices' chains, by device.
        cuts: Vec<Cut>,
    },
    /// 12: link a device to its organizer's identity.
    DeviceLinked {
        /// The identity's certificate for the device.
        cert: DeviceCert,
    },
    /// 13: revoke a lost or retired device, cut at the last entry of it the writer had
    /// seen; starts a new epoch.
    DeviceRevoked {
        /// The device and where it is cut.
        cut: Cut,
    },
    /// 14: deliver the key of a new epoch to every remaining device.
    EpochKeyDelivered {
        /// The new epoch number.
        epoch: u64,
        /// One sealed key per remaining device.
        deliveries: Vec<KeyDelivery>,
    },
    /// 15: name the group (the campaign committee's own name for itself).
    GroupNamed {
        /// The name.
        name: String,
    },
    /// 16: the campaign's known headcount and its support target, for the support share.
    CampaignSet {
        /// Workers in the bargaining unit.
        headcount: u32,
        /// Target share of supportive workers, in percent (e.g. 70).
        target_percent: u8,
    },
    /// 17: many contact-log records in one entry, in order (a spreadsheet import): 1 to
    /// [`MAX_RECORDS_PER_ENTRY`] operations, each a `ContactSet`, `NoteAdded`,
    /// `FollowupSet` or `FollowupDone`. Record `i` counts as its own event at the entry's
    /// clock advanced by `i` ([`crate::Hlc::nth`]), named [`crate::EntryId::of_record`].
    /// One signature, nonce, tag and proof then carry hundreds of rows.
    Records {
        /// The records, in order.
        ops: Vec<Operation>,
    },
    /// 18: the sender of an urgent notice records who confirmed receiving it: the members
    /// whose devices sent it a receipt (see `proto/PROTOCOL.md`, "Receipts"). One entry
    /// for many members, instead of one acknowledgement entry per member that every
    /// member would store. Only the notice's poster may write it; members are sorted and
    /// distinct, at most [`MAX_DELIVERED_MEMBERS`].
    NoticeDelivered {
        /// The notice.
        notice: NoticeId,
        /// Members who confirmed receiving it, sorted by identity key.
        members: Vec<IdentityKey>,
    },
}

fn short(s: &str, what: &'static str) -> Result<(), EncodeError> {
    if s.len() > MAX_SHORT_TEXT {
        Err(EncodeError::Invalid(what))
    } else {
        Ok(())
    }
}

fn long(s: &str, what: &'static str) -> Result<(), EncodeError> {
    if s.len() > MAX_LONG_TEXT {
        Err(EncodeError::Invalid(what))
    } else {
        Ok(())
    }
}

impl Operation {
    /// Checks the per-field limits of `proto/PROTOCOL.md`; both encoding and decoding apply it.
    pub fn validate(&self) -> Result<(), EncodeError> {
        match self {
            Operation::ContactSet { fields, .. } => {
                if fields.is_empty() || fields.len() > MAX_FIELDS_PER_SET {
                    return Err(EncodeError::Invalid(
                        "contact set must carry 1 to 64 fields",
                    ));
                }
                for text in fields.iter().filter_map(ContactField::text) {
                    short(text, "contact field too long")?;
                }
                Ok(())
            }
            Operation::NoteAdded { note, .. } => {
                long(&note.text, "note text too long")?;
                note.by
                    .as_deref()
                    .map_or(Ok(()), |b| short(b, "note author too long"))
            }
            Operation::FollowupSet { assignee, task, .. } => {
                short(assignee, "follow-up assignee too long")?;
                long(task, "follow-up task too long")
            }
            Operation::NoticePosted { content, .. } | Operation::NoticeChanged { content, .. } => {
                short(&content.title, "notice title too long")?;
                short(&content.place, "notice place too long")?;
                long(&content.body, "notice body too long")
            }
            Operation::MemberAdded { name, .. } => short(name, "member name too long"),
            Operation::DeviceLinked { cert } => short(&cert.label, "device label too long"),
            Operation::EpochKeyDelivered { deliveries, .. } => {
                if deliveries.len() > MAX_KEY_DELIVERIES {
                    return Err(EncodeError::Invalid("too many key deliveries"));
                }
                if deliveries
                    .iter()
                    .any(|d| d.sealed.len() > MAX_SEALED_KEY_BYTES)
                {
                    return Err(EncodeError::Invalid("sealed key too long"));
                }
                Ok(())
            }
            Operation::GroupNamed { name } => short(name, "group name too long"),
            Operation::CampaignSet { target_percent, .. } => {
                if *target_percent > 100 {
                    Err(EncodeError::Invalid("target percent above 100"))
                } else {
                    Ok(())
                }
            }
            Operation::Records { ops } => {
                if ops.is_empty() || ops.len() > MAX_RECORDS_PER_ENTRY {
                    return Err(EncodeError::Invalid(
                        "records must carry 1 to 1024 operations",
                    ));
                }
                for op in ops {
                    if !op.is_record() {
                        return Err(EncodeError::Invalid(
                            "records may only carry contact sets, notes and follow-ups",
                        ));
                    }
                    op.validate()?;
                }
                Ok(())
            }
            Operation::MemberRemoved { cuts, .. } | Operation::RoleChanged { cuts, .. } => {
                validate_cuts(cuts)
            }
            Operation::DeviceRevoked { cut } => cut.validate(),
            Operation::NoticeDelivered { members, .. } => {
                if members.is_empty() || members.len() > MAX_DELIVERED_MEMBERS {
                    return Err(EncodeError::Invalid(
                        "a delivery record names 1 to 4096 members",
                    ));
                }
                if members.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(EncodeError::Invalid(
                        "a delivery record's members must be sorted and distinct",
                    ));
                }
                Ok(())
            }
            Operation::FollowupDone { .. }
            | Operation::ContactRemoved { .. }
            | Operation::NoticeCancelled { .. }
            | Operation::NoticeAcked { .. } => Ok(()),
        }
    }

    /// Short name of the operation, for logs (never carries content).
    pub fn kind(&self) -> &'static str {
        match self {
            Operation::ContactSet { .. } => "contact-set",
            Operation::NoteAdded { .. } => "note-added",
            Operation::FollowupSet { .. } => "followup-set",
            Operation::FollowupDone { .. } => "followup-done",
            Operation::ContactRemoved { .. } => "contact-removed",
            Operation::NoticePosted { .. } => "notice-posted",
            Operation::NoticeChanged { .. } => "notice-changed",
            Operation::NoticeCancelled { .. } => "notice-cancelled",
            Operation::NoticeAcked { .. } => "notice-acked",
            Operation::MemberAdded { .. } => "member-added",
            Operation::MemberRemoved { .. } => "member-removed",
            Operation::RoleChanged { .. } => "role-changed",
            Operation::DeviceLinked { .. } => "device-linked",
            Operation::DeviceRevoked { .. } => "device-revoked",
            Operation::EpochKeyDelivered { .. } => "epoch-key-delivered",
            Operation::GroupNamed { .. } => "group-named",
            Operation::CampaignSet { .. } => "campaign-set",
            Operation::Records { .. } => "records",
            Operation::NoticeDelivered { .. } => "notice-delivered",
        }
    }

    /// Whether this operation changes who may do what (members, roles, devices, epochs):
    /// an **authority** entry. Authority entries name the authority heads they were made
    /// on ([`crate::Chain::heads`]); no other entry may.
    pub fn is_authority(&self) -> bool {
        matches!(
            self,
            Operation::MemberAdded { .. }
                | Operation::MemberRemoved { .. }
                | Operation::RoleChanged { .. }
                | Operation::DeviceLinked { .. }
                | Operation::DeviceRevoked { .. }
                | Operation::EpochKeyDelivered { .. }
        )
    }

    /// Whether this operation may travel inside [`Operation::Records`]: a contact-log
    /// record that any organizer may write and that changes no one's authority.
    pub fn is_record(&self) -> bool {
        matches!(
            self,
            Operation::ContactSet { .. }
                | Operation::NoteAdded { .. }
                | Operation::FollowupSet { .. }
                | Operation::FollowupDone { .. }
        )
    }

    /// The operations this one stands for: the records of [`Operation::Records`], or
    /// itself.
    pub fn each(&self) -> &[Operation] {
        match self {
            Operation::Records { ops } => ops,
            op => std::slice::from_ref(op),
        }
    }

    /// Packs operations for storing many at once: runs of records (see
    /// [`Operation::is_record`]) become [`Operation::Records`] entries of at most
    /// `per_entry` records and about `max_bytes` of text each (a lone record stays as
    /// it is); every other operation stays its own entry, in its place in the order.
    pub fn pack(ops: Vec<Operation>, per_entry: usize, max_bytes: usize) -> Vec<Operation> {
        let per_entry = per_entry.clamp(1, MAX_RECORDS_PER_ENTRY);
        let mut out = Vec::new();
        let mut run: Vec<Operation> = Vec::new();
        let mut run_bytes = 0;
        let flush = |run: &mut Vec<Operation>, out: &mut Vec<Operation>| match run.len() {
            0 => {}
            1 => out.append(run),
            _ => out.push(Operation::Records {
                ops: std::mem::take(run),
            }),
        };
        for op in ops {
            if !op.is_record() {
                flush(&mut run, &mut out);
                run_bytes = 0;
                out.push(op);
                continue;
            }
            let bytes = op.text_len() + 40;
            if !run.is_empty() && (run.len() >= per_entry || run_bytes + bytes > max_bytes) {
                flush(&mut run, &mut out);
                run_bytes = 0;
            }
            run_bytes += bytes;
            run.push(op);
        }
        flush(&mut run, &mut out);
        out
    }

    /// Bytes of text a record carries (an upper bound's main term, for packing).
    fn text_len(&self) -> usize {
        match self {
            Operation::ContactSet { fields, .. } => fields
                .iter()
                .map(|f| f.text().map_or(2, |s| s.len() + 4))
                .sum(),
            Operation::NoteAdded { note, .. } => {
                note.text.len() + note.by.as_ref().map_or(0, String::len) + 8
            }
            Operation::FollowupSet { assignee, task, .. } => assignee.len() + task.len() + 8,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(n: u8, text: &str) -> Operation {
        Operation::NoteAdded {
            contact: ContactId([n; 16]),
            note: Note {
                text: text.into(),
                date: None,
                by: None,
            },
        }
    }

    fn named(n: u8) -> Operation {
        Operation::GroupNamed {
            name: format!("g{n}"),
        }
    }

    #[test]
    fn records_carry_one_to_the_limit_of_contact_log_rows_only() {
        let ok = Operation::Records {
            ops: vec![note(1, "a"); MAX_RECORDS_PER_ENTRY],
        };
        assert!(ok.validate().is_ok());
        let cases = [
            Operation::Records { ops: vec![] },
            Operation::Records {
                ops: vec![note(1, "a"); MAX_RECORDS_PER_ENTRY + 1],
            },
            Operation::Records {
                ops: vec![note(1, "a"), named(1)],
            },
            Operation::Records {
                ops: vec![Operation::Records {
                    ops: vec![note(1, "a")],
                }],
            },
            // A record that is invalid on its own.
            Operation::Records {
                ops: vec![Operation::ContactSet {
                    contact: ContactId([1; 16]),
                    fields: vec![],
                }],
            },
        ];
        for op in cases {
            assert!(op.validate().is_err(), "{op:?}");
        }
    }

    #[test]
    fn pack_keeps_the_order_and_splits_by_count_bytes_and_other_operations() {
        let mut ops: Vec<Operation> = (0..10).map(|i| note(i, "hello")).collect();
        ops.insert(4, named(0));
        ops.push(named(1));
        ops.push(note(99, "alone"));
        let packed = Operation::pack(ops.clone(), 3, usize::MAX);
        let flat: Vec<Operation> = packed.iter().flat_map(|op| op.each().to_vec()).collect();
        assert_eq!(flat, ops, "unpacking gives the operations back in order");
        let sizes: Vec<usize> = packed
            .iter()
            .map(|op| match op {
                Operation::Records { ops } => ops.len(),
                _ => 0,
            })
            .collect();
        // 4 notes → 3 + 1 (a lone record stays itself), the name, 6 notes → 3 + 3, the
        // second name, the last note alone.
        assert_eq!(sizes, vec![3, 0, 0, 3, 3, 0, 0]);
        for op in &packed {
            assert!(op.validate().is_ok());
        }
        // A byte budget smaller than two records packs nothing.
        let unpacked = Operation::pack(ops.clone(), 1_000, 50);
        assert_eq!(unpacked, ops);
    }
}
