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
//! and however many times. It is computed in two steps.
//!
//! 1. **Who may do what** is resolved first from the *authority* entries (member added,
//!    removed or re-roled, device linked or revoked, epoch key delivered) and the
//!    devices' chains, by causality, never by an author's clock: each entry names its
//!    device's previous entry, and each authority entry the authority entries it was
//!    made on. Removals and revocations *cut* their target's devices at the last entry
//!    the remover had seen; concurrent removals settle by written rules (strong
//!    removal); epochs form one chain. The rules, with the reasons, are in the
//!    `authority` module's docs (`src/authority.rs`), summarised below.
//! 2. **Content** (contacts, notes, follow-ups, notices and acknowledgements, the
//!    group's name and campaign) is folded in [`FoldKey`] order — hybrid logical clock,
//!    then author device, then entry id — deduplicated by id, each entry checked against
//!    that resolution. The clock decides only merges (last writer wins), never
//!    authority.
//!
//! Entries with the same event ([`OpenedEntry::event`]) are one event however many
//! envelopes carry them (a re-sealed copy): the copy with the smallest id is the one
//! held.
//!
//! A `Records` entry (many rows of an import in one envelope) is folded as its records:
//! record `i` is an event of its own, with id [`caucus_proto::EntryId::of_record`] and
//! the entry's clock advanced by `i` ([`OpenedEntry::records`]), checked and merged like
//! the same row written alone (it is one place in its device's chain); [`State::status`]
//! of the entry tells the first record that did not apply.
//!
//! [`State::insert`] applies a content entry at once when it sorts after everything
//! held (and merges a late note, acknowledgement or contact edit in place); an
//! authority entry, or one that forks a chain or lies under a cut, resolves authority
//! and folds everything again (O(n), see [`State`]). [`State::from_entries`] and
//! [`State::extend`] fold once per batch. [`State::state_hash`] is BLAKE3 over a
//! canonical encoding of the state: two replicas holding the same set of entries have
//! the same hash.
//!
//! # Who may do what
//!
//! An authority entry counts only if, in the authority state of **its own past** (the
//! authority entries reachable from the heads it names), its author's identity is a
//! current member and its signing device is linked to that identity and not revoked —
//! except a `DeviceLinked` whose certificate names the signing device and the author's
//! identity, allowed only for the identity's **first** device (a device introducing
//! itself; the crypto layer checks every certificate's signature). A content entry
//! counts only if its device is linked to its author, is not forked at or below it, and
//! the entry lies within every cut of the device (see [`Reason::BeyondCut`]). Then the
//! author's role decides (for content: the role at the entry's place in its device's
//! chain):
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
//! | `NoticeDelivered` (the receipts a notice's sender got) | notices they posted | notices they posted |
//! | `DeviceLinked` | their own devices | any current member's |
//! | `DeviceRevoked` | their own devices | any device |
//! | `MemberAdded`, `MemberRemoved`, `RoleChanged` | no | yes |
//! | `EpochKeyDelivered` (the next epoch, to exactly the current devices) | no | yes |
//! | `GroupNamed`, `CampaignSet` | no | yes |
//!
//! The founder (known from the group's creation record) is an admin member from the
//! start, before any entry. Entries that do not count are kept (a later-arriving entry
//! may make them count: one waiting for its chain or its heads) and listed by
//! [`State::rejected`] with a [`Reason`], without content. What a removed member, a
//! revoked device or an informant admin can still do is written in `proto/THREATS.md`
//! sections 4 and 5, with the tests that show it.
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
//! - **Members**: `MemberAdded` sets name and role and re-admits a removed member (who
//!   then writes from new devices: a removal revokes every device of the member for
//!   good); `MemberRemoved` keeps the record, marked removed; roles follow the
//!   authority order, and for content a role change applies to each device's entries
//!   after its cut.
//! - **Devices**: a device key belongs to the first identity it is linked to, with its
//!   first certificate, for good (a changed key is a new device). Revocation is
//!   permanent, and a revoked device key can never be linked again.
//! - **Epochs**: one chain. Every valid `EpochKeyDelivered` is kept, by epoch number
//!   ([`State::epoch_deliveries`]); [`State::current_epoch`] is 1 (the founding key)
//!   until the first, and the winner of concurrent deliveries of one epoch is the one
//!   with the smallest event id ([`State::epoch_winner`], [`State::epoch_settled`]).
//! - **Group name** and **campaign** (headcount, target percent): LWW.
//!
//! # Clocks
//!
//! The clock orders merges only. A device may still stamp entries ahead of time (its
//! edits then win registers until clocks catch up); bounding that is the node's job: an
//! entry more than ten minutes ahead of the receiver's clock waits until its time, and
//! only applied entries advance the local clock (`caucus-node`).
//!
//! # Example
//!
//! ```
//! use caucus_model::{OpenedEntry, Outcome, State};
//! use caucus_proto::{
//!     Author, Body, Chain, ContactField, ContactId, DeviceCert, DeviceKey, EntryId, Hlc,
//!     IdentityKey, Operation, Rating, Signature, BODY_VERSION,
//! };
//!
//! let dana = Author { identity: IdentityKey([1; 32]), device: DeviceKey([2; 32]) };
//! let at = |wall_ms| Hlc { wall_ms, counter: 0 };
//! // What the crypto layer hands the model once it has opened and verified a body.
//! let opened = |id: u8, chain: Chain, hlc: Hlc, op: Operation| {
//!     let signature = Signature([0; 64]);
//!     let body = Body { version: BODY_VERSION, author: dana, chain, hlc, op, signature };
//!     OpenedEntry::new(EntryId([id; 32]), 1, body)
//! };
//! // Dana founded the group; her phone introduces itself (its first entry, made on no
//! // authority entry), then she logs a conversation (the phone's second entry).
//! let cert = DeviceCert {
//!     identity: dana.identity,
//!     device: dana.device,
//!     dh: [3; 32],
//!     label: "phone".into(),
//!     signature: Signature([0; 64]),
//! };
//! let link = opened(10, Chain::first(vec![]), at(1), Operation::DeviceLinked { cert });
//! let next = Chain { seq: 2, prev: Some(link.event), heads: vec![] };
//! let rate = opened(11, next, at(2), Operation::ContactSet {
//!     contact: ContactId([5; 16]),
//!     fields: vec![ContactField::Name("Ana".into()), ContactField::Rating(Rating::new(2)?)],
//! });
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

mod authority;
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
pub const FOLD_VERSION: u32 = 2;
pub use outcome::{Outcome, Reason, Rejection};
pub use query::{
    ContactFilter, DueFollowup, RatingCounts, RatingFilter, ShareBase, SupportShare, WorkplaceMap,
};
pub use records::{
    Campaign, Contact, Delivery, Device, EpochDelivery, Followup, Member, NoteKey, NoteRecord,
    Notice, Stamp,
};
pub use state::State;
