//! The organizing model of caucus: folds a **set** of entries into the state a campaign
//! committee works with — contacts and their conversation notes, follow-ups, meeting
//! notices and acknowledgements, members, roles and devices — and answers the
//! questions organizers ask of it (workplace map, follow-ups due, support share).
//!
//! Pure and deterministic: no I/O, no clock, no randomness. Dates and instants are
//! arguments. The input is [`OpenedEntry`]: an entry the crypto layer has already
//! opened and whose signature it has checked.
//!
//! # The fold
//!
//! The state is a function of the set of entries held, whatever order they arrived in
//! and however many times. Entries are sorted by [`FoldKey`] — hybrid logical clock,
//! then author device, then entry id — deduplicated by id, and applied in that order.
//! Entries with the same author, clock and operation are one event however many
//! envelopes carry them (a re-sealed copy): the copy with the smallest id is the one
//! held. Each entry is checked against the membership **at its point in that order**, so a
//! member removed at noon may still have written at eleven, and a device's entries
//! count from the moment it is linked until it is revoked.
//!
//! A `Records` entry (many rows of an import in one envelope) is folded as its records:
//! record `i` is an event of its own, with id [`caucus_proto::EntryId::of_record`] and
//! the entry's clock advanced by `i` ([`OpenedEntry::records`]), checked and merged like
//! the same row written alone; [`State::status`] of the entry tells the first record
//! that did not apply.
//!
//! [`State::insert`] applies an entry at once when it sorts after everything held (and
//! merges a late note, acknowledgement or contact edit in place), and folds all entries
//! again otherwise (O(n), see [`State`]). [`State::from_entries`]
//! and [`State::extend`] fold once per batch. [`State::state_hash`] is BLAKE3 over a
//! canonical encoding of the state: two replicas holding the same set of entries have
//! the same hash.
//!
//! # Who may do what
//!
//! An entry counts only if its author's identity is a **current member** at that point
//! and its signing device is **linked to that identity and not revoked** — except a
//! `DeviceLinked` whose certificate names the signing device and the author's identity
//! (a device introducing itself; the crypto layer checks the certificate's signature).
//! Then the author's role decides:
//!
//! | operation | organizer | admin |
//! |---|---|---|
//! | `ContactSet`, `NoteAdded`, `ContactRemoved` | yes | yes |
//! | `FollowupSet`, `FollowupDone` | yes | yes |
//! | `Records` of `ContactSet`, `NoteAdded`, `FollowupSet`, `FollowupDone` (each by its own rule) | yes | yes |
//! | `NoticePosted` not urgent | yes | yes |
//! | `NoticeChanged` (to not urgent), `NoticeCancelled` | notices they posted | any notice |
//! | `NoticePosted` / `NoticeChanged` with `urgent: true` | no | yes |
//! | `NoticeAcked` | yes | yes |
//! | `DeviceLinked` | their own devices | any current member's |
//! | `DeviceRevoked` | their own devices | any device |
//! | `MemberAdded`, `MemberRemoved`, `RoleChanged` | no | yes |
//! | `EpochKeyDelivered`, `GroupNamed`, `CampaignSet` | no | yes |
//!
//! The founder (known from the group's creation record) is an admin member from the
//! start, before any entry. Entries that do not count are kept (a later-arriving
//! earlier entry may make them count) and listed by [`State::rejected`] with a
//! [`Reason`], without content.
//!
//! # Merge rules
//!
//! "Last writer wins" (LWW) means the entry with the greatest [`FoldKey`] wins: the
//! later hybrid logical clock, ties broken by author device key, then entry id.
//!
//! - **Contacts**: every field (name, department, shift, job, handle, rating, assigned
//!   organizer) is its own LWW register, so two organizers editing different fields
//!   concurrently both keep their edit. Tags are one LWW on/off register per tag, so
//!   concurrent tagging keeps both tags. A note, follow-up or edit naming a contact id
//!   never seen before creates that contact implicitly, with empty fields.
//! - **Notes** are append-only and **never lost**: every `NoteAdded` from an authorized
//!   author is kept, whatever edit or removal races it, listed per contact by the day
//!   of the conversation (or of logging), then clock, then entry id.
//! - **Removal wins.** `ContactRemoved` is a permanent tombstone: it wins over every
//!   edit, concurrent or later, and nothing brings the contact back. The contact leaves
//!   every listing and aggregate; its fields keep folding and its notes stay in the
//!   state, reachable through [`State::removed_contacts`] and [`State::notes`]. Why:
//!   "remove this worker" is a privacy request (someone asked not to be tracked, or the
//!   record endangers them); a stale edit from a phone that was offline must not
//!   silently put them back on the list. Notes are kept rather than dropped so that no
//!   organizer's record is destroyed by another's action, and removal does not become a
//!   way to erase history.
//! - **Follow-ups**: `FollowupSet` is one LWW register over the whole follow-up
//!   (contact, due day, assignee, task); `FollowupDone` a second LWW register over done.
//!   A `FollowupDone` that sorts before any `FollowupSet` of its follow-up is rejected
//!   (`UnknownFollowup`); so are a change, cancellation or acknowledgement sorting
//!   before its notice was posted (`UnknownNotice`). Hybrid logical clocks make these
//!   sort after what their author had seen, so only broken clocks meet this rule.
//! - **Notices**: `NoticePosted`/`NoticeChanged` are LWW over the content; the first
//!   poster owns the notice. Cancellation is sticky: once cancelled, a notice stays
//!   cancelled. Expiry is applied by queries given `now_ms`. Acknowledgements are a set
//!   of member identities (an ack from any device of a member counts for the member);
//!   [`State::delivered`] counts current members only.
//! - **Members**: `MemberAdded` sets name and role and re-admits a removed member;
//!   `MemberRemoved` keeps the record, marked removed; `RoleChanged` is LWW.
//! - **Devices**: a device key belongs to the first identity it is linked to, for good;
//!   the last `DeviceLinked` for it sets its certificate (label, keys). Revocation is
//!   permanent, and a revoked device key can never be linked again. A device stays
//!   linked across its member's removal, but only current members' devices write or
//!   appear in [`State::current_devices`].
//! - **Epochs**: every authorized `EpochKeyDelivered` is kept, by epoch number, in fold
//!   order ([`State::epoch_deliveries`]); [`State::current_epoch`] is the highest number
//!   seen. Choosing between competing deliveries of one epoch is the crypto layer's job.
//! - **Group name** and **campaign** (headcount, target percent): LWW.
//!
//! # What the fold cannot decide
//!
//! The order trusts authors' clocks. A device may write with a clock far in the future
//! (its edits then win every register until clocks catch up) or, once revoked, keep
//! writing with an old clock so its entries sort before the revocation. The model
//! cannot tell either from honest concurrency, and it has no clock of its own (every
//! replica must fold alike). Bounding them belongs to the layers around it: refusing
//! to issue or accept entries whose clock is far ahead of the local one, and refusing
//! entries sealed under an epoch a revoked device could still use once a newer epoch
//! has been delivered ([`OpenedEntry::epoch`] is carried for such a check).
//!
//! # Example
//!
//! ```
//! use caucus_model::{OpenedEntry, Outcome, State};
//! use caucus_proto::{
//!     Author, ContactField, ContactId, DeviceCert, DeviceKey, EntryId, Hlc, IdentityKey,
//!     Operation, Rating, Signature,
//! };
//!
//! let dana = Author { identity: IdentityKey([1; 32]), device: DeviceKey([2; 32]) };
//! let at = |wall_ms| Hlc { wall_ms, counter: 0 };
//! // Dana founded the group; her phone introduces itself, then she logs a conversation.
//! let cert = DeviceCert {
//!     identity: dana.identity,
//!     device: dana.device,
//!     dh: [3; 32],
//!     label: "phone".into(),
//!     signature: Signature([0; 64]),
//! };
//! let link = OpenedEntry {
//!     id: EntryId([10; 32]),
//!     author: dana,
//!     hlc: at(1),
//!     epoch: 0,
//!     op: Operation::DeviceLinked { cert },
//! };
//! let rate = OpenedEntry {
//!     id: EntryId([11; 32]),
//!     author: dana,
//!     hlc: at(2),
//!     epoch: 0,
//!     op: Operation::ContactSet {
//!         contact: ContactId([5; 16]),
//!         fields: vec![ContactField::Name("Ana".into()), ContactField::Rating(Rating::new(2)?)],
//!     },
//! };
//!
//! // Any order, any duplicates: the same state.
//! let batch = State::from_entries(dana.identity, [rate.clone(), link.clone(), rate.clone()]);
//! let mut live = State::new(dana.identity);
//! assert_eq!(live.insert(link), Outcome::Applied);
//! assert_eq!(live.insert(rate), Outcome::Applied);
//! assert_eq!(batch.state_hash(), live.state_hash());
//! assert_eq!(live.support_share().supportive, 1);
//! # Ok::<(), caucus_proto::RatingError>(())
//! ```
//!
//! # Ratings
//!
//! Support ratings use the usual organizing scale ([`caucus_proto::Rating`]): 1 = active
//! leader, 2 = supporter, 3 = undecided, 4 = leaning against, 5 = opposed. 1 and 2
//! count as supportive in every aggregate.

mod entry;
mod fold;
mod outcome;
mod query;
mod records;
mod state;

#[cfg(any(test, feature = "test-utils"))]
pub mod testing;

#[cfg(test)]
mod tests;

pub use entry::{FoldKey, OpenedEntry};

/// The version of the fold's rules. It changes whenever the same entries could fold to a
/// different state (a merge rule, an authorization check, a record's fields), so that
/// anything derived from an earlier fold and kept (the store's views) is derived again.
pub const FOLD_VERSION: u32 = 1;
pub use outcome::{Outcome, Reason, Rejection};
pub use query::{
    ContactFilter, DueFollowup, RatingCounts, RatingFilter, ShareBase, SupportShare, WorkplaceMap,
};
pub use records::{
    Campaign, Contact, Delivery, Device, EpochDelivery, Followup, Member, NoteKey, NoteRecord,
    Notice, Stamp,
};
pub use state::State;
