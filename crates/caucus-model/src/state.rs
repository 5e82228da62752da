//! [`State`]: the set of entries held, and the state folded from them.
//!
//! The state keeps every entry it was given (applied or rejected) in fold order, and
//! the view derived from applying them in that order. An entry that sorts after every
//! entry held is applied to the view directly (the common case: live entries from
//! gossip). So is a note, an acknowledgement or a contact edit that sorts earlier, as
//! long as no entry after it changed who may write: those merge without regard to
//! order (sets, and registers that compare fold keys). So is a notice or follow-up
//! operation when, besides, no entry after it is about the same notice or follow-up
//! (their outcome depends on order only among those). Any other entry that sorts
//! earlier invalidates the view from its position on, so the view is rebuilt by
//! folding all held entries again: O(n) in the number of entries held, each
//! application being a few map operations (measured: about 12 ms for 20,000 entries in
//! a release build, about 0.6 ms per thousand). Catch-up after a partition should use
//! [`State::extend`], which folds at most once per batch.
//!
//! **Copies.** A member can seal a body they opened again, with a new nonce: a new
//! envelope, so a new entry id, around the same signed body. The store is meant to keep
//! one entry per body, but replicas may then hold different copies. The model therefore
//! dedups by *event* — author, clock and operation — as well as by entry id, and
//! holds the copy with the smallest entry id: a replayed note never appears twice, and
//! replicas holding the same copies (in any order) agree on every id in the state.

use crate::authority::{Chains, Resolution, resolve};
use crate::entry::{FoldKey, OpenedEntry};
use crate::fold::View;
use crate::outcome::{Outcome, Rejection};
use crate::records::{
    Campaign, Contact, Device, EpochDelivery, Followup, Member, NoteRecord, Notice,
};
use caucus_proto::{
    ContactId, Cut, DeviceCert, DeviceKey, EntryId, EventId, FollowupId, IdentityKey, NoticeId,
};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The organizing state of one group: a deterministic function of the set of entries
/// inserted, whatever their order and however often each was inserted.
#[derive(Clone, Debug)]
pub struct State {
    /// Every entry held, in fold order.
    log: BTreeMap<FoldKey, OpenedEntry>,
    /// Entry id of each entry in `log` to its place there.
    ids: BTreeMap<EntryId, FoldKey>,
    /// Each event held (see [`event_digest`]) to the id of the copy held: the smallest.
    events: BTreeMap<EventDigest, EntryId>,
    /// Ids of other copies of events held, not in `log`.
    copies: BTreeMap<EntryId, EventDigest>,
    /// Each `Records` entry inserted, to its number of records (held in `log` one by
    /// one, under [`EntryId::of_record`]).
    packed: BTreeMap<EntryId, u32>,
    /// Every event held, per device chain (a `Records` entry is one place).
    chains: Chains,
    /// The event last placed in `chains` (the records of one entry share it).
    last_place: Option<EventId>,
    /// Fold keys of the authority entries in `log`.
    authority: BTreeSet<FoldKey>,
    /// Who may do what, resolved from the authority entries and the chains.
    resolution: Resolution,
    /// The content state derived from `log`.
    view: View,
    /// How many times the whole log was folded again (diagnostics).
    refolds: u64,
    /// Digests of each contact's notes for [`State::state_hash`] (a cache).
    note_digests: HashCache<(usize, [u8; 32])>,
    /// Each contact as last hashed and its encoding for [`State::state_hash`] (a cache:
    /// an entry counts only while the contact still equals it).
    contact_bytes: HashCache<(Contact, Vec<u8>)>,
}

/// The notice or follow-up an operation is about, for [`State::can_apply_late`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Subject {
    Notice(NoticeId),
    Followup(FollowupId),
}

impl Subject {
    fn of(op: &caucus_proto::Operation) -> Option<Subject> {
        use caucus_proto::Operation as Op;
        match op {
            Op::NoticePosted { notice, .. }
            | Op::NoticeChanged { notice, .. }
            | Op::NoticeCancelled { notice }
            | Op::NoticeAcked { notice }
            | Op::NoticeDelivered { notice, .. } => Some(Subject::Notice(*notice)),
            Op::FollowupSet { followup, .. } | Op::FollowupDone { followup, .. } => {
                Some(Subject::Followup(*followup))
            }
            _ => None,
        }
    }
}

/// A per-contact cache for [`State::state_hash`], which takes `&self`. Note digests hold
/// how many notes a contact had and their digest when last hashed: between full folds a
/// contact's notes are only ever added to, so an unchanged count means an unchanged
/// digest. Every full fold empties both caches.
#[derive(Debug)]
struct HashCache<V>(std::sync::Mutex<HashMap<ContactId, V>>);

impl<V> Default for HashCache<V> {
    fn default() -> Self {
        HashCache(std::sync::Mutex::new(HashMap::new()))
    }
}

impl<V> HashCache<V> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ContactId, V>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn clear(&self) {
        self.lock().clear();
    }
}

impl<V: Clone> Clone for HashCache<V> {
    fn clone(&self) -> Self {
        HashCache(std::sync::Mutex::new(self.lock().clone()))
    }
}

/// What names one event (or one record of a `Records` event), whatever envelope carries
/// it: the event id, and for a record its clock.
type EventDigest = [u8; 32];

fn event_digest(e: &OpenedEntry) -> EventDigest {
    // Records of one entry share its event id and differ by clock (`Hlc::nth`).
    let mut h = blake3::Hasher::new();
    h.update(b"caucus-model event v2");
    h.update(&e.event.0);
    feed(&mut h, &e.hlc);
    *h.finalize().as_bytes()
}

/// What [`State::hold`] did with an entry.
enum Hold {
    /// The entry, or a copy with a smaller id, was already held.
    Known,
    /// A new event, now in the log at this key; `true` if authority must be resolved
    /// again.
    New(FoldKey, bool),
    /// A copy with a smaller id than the one held replaced it; the view is stale.
    Replaced,
}

impl State {
    /// The state of a new group: the founder (known from the group's creation record) is
    /// its only member, an admin, with no device linked yet.
    pub fn new(founder: IdentityKey) -> State {
        State {
            log: BTreeMap::new(),
            ids: BTreeMap::new(),
            events: BTreeMap::new(),
            copies: BTreeMap::new(),
            packed: BTreeMap::new(),
            chains: Chains::default(),
            last_place: None,
            authority: BTreeSet::new(),
            resolution: Resolution::empty(founder),
            view: View::new(founder),
            refolds: 0,
            note_digests: HashCache::default(),
            contact_bytes: HashCache::default(),
        }
    }

    /// Folds a set of entries (any order, duplicates ignored) in one pass.
    pub fn from_entries(
        founder: IdentityKey,
        entries: impl IntoIterator<Item = OpenedEntry>,
    ) -> State {
        let mut state = State::new(founder);
        state.extend(entries);
        state
    }

    /// Puts an entry in the log unless it, or a copy of the same event, is held.
    fn hold(&mut self, entry: OpenedEntry) -> Hold {
        if self.ids.contains_key(&entry.id) || self.copies.contains_key(&entry.id) {
            return Hold::Known;
        }
        let digest = event_digest(&entry);
        let replaced = match self.events.get(&digest).copied() {
            Some(held) if held < entry.id => {
                self.copies.insert(entry.id, digest);
                return Hold::Known;
            }
            Some(held) => {
                if let Some(old) = self.ids.remove(&held) {
                    self.log.remove(&old);
                    self.authority.remove(&old);
                }
                self.copies.insert(held, digest);
                true
            }
            None => false,
        };
        let key = entry.fold_key();
        // Whether who may write could change: a new authority entry, or a new place in a
        // chain that forks it or lies under a cut. The records of one entry after its
        // first are the same place (`self.last_place`).
        let device = entry.author.device;
        let resolve = if self.last_place == Some(entry.event) {
            false
        } else {
            self.last_place = Some(entry.event);
            let forks = self
                .chains
                .place(device, entry.chain.seq, entry.event, entry.chain.prev);
            forks
                || entry.op.is_authority()
                || (!self.resolution.cuts.is_empty() && self.resolution.cuts.contains_key(&device))
                || (!self.resolution.forks.is_empty()
                    && self.resolution.forks.contains_key(&device))
        };
        if entry.op.is_authority() {
            self.authority.insert(key);
        }
        self.events.insert(digest, entry.id);
        self.ids.insert(entry.id, key);
        self.log.insert(key, entry);
        if replaced {
            Hold::Replaced
        } else {
            Hold::New(key, resolve)
        }
    }

    /// Adds one entry. Applies it at once when it sorts after every entry held (or
    /// merges regardless of order, see the module docs) and changes no one's authority,
    /// otherwise resolves authority and folds all entries again.
    ///
    /// Returns what became of this entry. Inserting an entry can change what becomes of
    /// other entries (for example a `MemberAdded` that arrives late makes that member's
    /// entries count); [`State::status`] and [`State::rejected`] always tell the current
    /// status.
    pub fn insert(&mut self, entry: OpenedEntry) -> Outcome {
        if matches!(entry.op, caucus_proto::Operation::Records { .. }) {
            let id = entry.id;
            if self.contains(&id) {
                return Outcome::Duplicate;
            }
            self.extend([entry]);
            return self.status(&id).unwrap_or(Outcome::Duplicate);
        }
        let last_before = self.log.last_key_value().map(|(k, _)| *k);
        match self.hold(entry) {
            Hold::Known => Outcome::Duplicate,
            Hold::Replaced => {
                self.refold();
                Outcome::Duplicate
            }
            Hold::New(key, resolve) => {
                let Some(e) = self.log.get(&key) else {
                    return Outcome::Duplicate;
                };
                if !resolve
                    && (last_before.is_none_or(|last| last < key) || self.can_apply_late(&key, e))
                {
                    match self.view.apply(e, &self.resolution) {
                        Ok(()) => Outcome::Applied,
                        Err(reason) => Outcome::Rejected(reason),
                    }
                } else {
                    self.refold();
                    self.outcome_of(&key.id)
                }
            }
        }
    }

    /// Adds many entries, folding at most once. Returns how many were new events.
    pub fn extend(&mut self, entries: impl IntoIterator<Item = OpenedEntry>) -> usize {
        let mut new_keys = Vec::new();
        let mut replaced = false;
        let mut resolve = false;
        let last_before = self.log.last_key_value().map(|(k, _)| *k);
        let packed = &mut self.packed;
        let records = entries.into_iter().flat_map(|entry| {
            if let caucus_proto::Operation::Records { ops } = &entry.op {
                packed.insert(entry.id, ops.len() as u32);
            }
            entry.records()
        });
        let records: Vec<OpenedEntry> = records.collect();
        for entry in records {
            match self.hold(entry) {
                Hold::Known => {}
                Hold::Replaced => replaced = true,
                Hold::New(key, r) => {
                    resolve |= r;
                    new_keys.push(key);
                }
            }
        }
        let added = new_keys.len();
        match last_before {
            // Nothing was held before: one fold.
            None => self.fold_all(),
            Some(_) if replaced || resolve => self.refold(),
            Some(last) => {
                // As if inserted one by one in fold order ([`State::insert`]): each entry
                // after everything applied, or one that merges regardless of order, is
                // applied at once; the first that is neither folds everything again.
                new_keys.sort_unstable();
                let mut tail = last;
                for key in new_keys {
                    let Some(e) = self.log.get(&key) else {
                        continue;
                    };
                    if key > tail || self.can_apply_late(&key, e) {
                        // Rejections are recorded in the view.
                        let _ = self.view.apply(e, &self.resolution);
                        tail = tail.max(key);
                    } else {
                        self.refold();
                        break;
                    }
                }
            }
        }
        added
    }

    /// Whether `e`, held at `key` with entries after it already applied, may be applied
    /// now with the result of a full fold: the view's rule (notes, acks, contact edits),
    /// or a notice or follow-up operation when no entry after it is about the same
    /// notice or follow-up (their outcome depends on order only among those).
    fn can_apply_late(&self, key: &FoldKey, e: &OpenedEntry) -> bool {
        if self.view.can_apply_late(e) {
            return true;
        }
        let Some(subject) = Subject::of(&e.op) else {
            return false;
        };
        self.log
            .range((std::ops::Bound::Excluded(*key), std::ops::Bound::Unbounded))
            .all(|(_, later)| Subject::of(&later.op) != Some(subject))
    }

    fn refold(&mut self) {
        self.refolds += 1;
        self.fold_all();
    }

    fn fold_all(&mut self) {
        self.note_digests.clear();
        self.contact_bytes.clear();
        let authority: Vec<&OpenedEntry> = (self.authority.iter())
            .filter_map(|k| self.log.get(k))
            .collect();
        self.resolution = resolve(self.view.founder, &authority, &self.chains);
        let mut view = View::new(self.view.founder);
        for e in self.log.values() {
            // Rejections are recorded in the view.
            let _ = view.apply(e, &self.resolution);
        }
        self.view = view;
    }

    fn outcome_of(&self, id: &EntryId) -> Outcome {
        match self.view.rejected.get(id) {
            Some(r) => Outcome::Rejected(r.reason),
            None => Outcome::Applied,
        }
    }

    /// What became of an entry: applied or rejected if held, [`Outcome::Duplicate`] if
    /// it is a copy of an event held under another id, `None` if never inserted.
    ///
    /// For an `Operation::Records` entry: the first record's status that is not
    /// `Applied`, else `Applied`.
    pub fn status(&self, id: &EntryId) -> Option<Outcome> {
        if let Some(n) = self.packed.get(id) {
            let mut outcome = Outcome::Applied;
            for i in 0..*n {
                match self.status(&EntryId::of_record(id, i)) {
                    Some(Outcome::Applied) => {}
                    Some(other) => {
                        outcome = other;
                        break;
                    }
                    None => return None,
                }
            }
            return Some(outcome);
        }
        if self.ids.contains_key(id) {
            Some(self.outcome_of(id))
        } else if self.copies.contains_key(id) {
            Some(Outcome::Duplicate)
        } else {
            None
        }
    }

    /// Whether an entry with this id was inserted (held, or a copy of an event held).
    pub fn contains(&self, id: &EntryId) -> bool {
        self.ids.contains_key(id) || self.copies.contains_key(id) || self.packed.contains_key(id)
    }

    /// Number of events held (applied or rejected), copies counted once; each record of a
    /// `Records` entry is one event.
    pub fn len(&self) -> usize {
        self.log.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.log.is_empty()
    }

    /// Every entry held, in fold order; a `Records` entry as its records (see
    /// [`OpenedEntry::records`]).
    pub fn entries(&self) -> impl Iterator<Item = &OpenedEntry> {
        self.log.values()
    }

    /// Entries that currently have no effect, with the reason; no content.
    pub fn rejected(&self) -> impl Iterator<Item = &Rejection> {
        self.view.rejected.values()
    }

    /// How many times an out-of-order insert made the whole log fold again.
    pub fn refolds(&self) -> u64 {
        self.refolds
    }

    // ---- members, devices, epochs ----

    /// The group's founder.
    pub fn founder(&self) -> IdentityKey {
        self.view.founder
    }

    /// A member, current or removed.
    pub fn member(&self, identity: &IdentityKey) -> Option<&Member> {
        self.resolution.members.get(identity)
    }

    /// Every member ever added (removed ones included, see [`Member::is_current`]),
    /// by identity key.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.resolution.members.values()
    }

    /// The current members.
    pub fn current_members(&self) -> impl Iterator<Item = &Member> {
        self.resolution.members.values().filter(|m| m.is_current())
    }

    /// Whether `identity` is a current member.
    pub fn is_member(&self, identity: &IdentityKey) -> bool {
        self.member(identity).is_some_and(Member::is_current)
    }

    /// A device ever linked, revoked or not.
    pub fn device(&self, device: &DeviceKey) -> Option<&Device> {
        self.resolution.devices.get(device)
    }

    /// The identity a device is certified to, for every device ever linked (revoked
    /// ones included: their earlier entries still verify). What the crypto layer's
    /// device directory needs to check the device-identity binding of a body.
    pub fn identity_of(&self, device: &DeviceKey) -> Option<IdentityKey> {
        self.device(device).map(|d| d.cert.identity)
    }

    /// Every device ever linked to `identity`, revoked ones included.
    pub fn devices_of<'a>(&'a self, identity: &'a IdentityKey) -> impl Iterator<Item = &'a Device> {
        self.resolution
            .devices
            .values()
            .filter(move |d| d.cert.identity == *identity)
    }

    /// The devices that may read new entries: non-revoked devices of current members,
    /// with their X25519 keys in the certificate. The crypto layer seals new epoch keys
    /// to exactly these.
    pub fn current_devices(&self) -> impl Iterator<Item = &DeviceCert> {
        self.resolution
            .devices
            .values()
            .filter(|d| d.revoked.is_none() && self.is_member(&d.cert.identity))
            .map(|d| &d.cert)
    }

    /// Whether `device` may write for `identity` now: a current member's linked,
    /// non-revoked device.
    pub fn may_write(&self, identity: &IdentityKey, device: &DeviceKey) -> bool {
        self.is_member(identity)
            && self
                .device(device)
                .is_some_and(|d| d.cert.identity == *identity && d.revoked.is_none())
    }

    /// Every valid epoch key delivery, by epoch number, each epoch's deliveries in
    /// topological order of the authority graph (see the crate docs: the smallest event
    /// id among an epoch's deliveries wins).
    pub fn epoch_deliveries(&self) -> &BTreeMap<u64, Vec<EpochDelivery>> {
        &self.resolution.epochs
    }

    /// The current epoch: 1 (the founding key) until the first valid delivery, then the
    /// highest epoch delivered along the one chain of epochs.
    pub fn current_epoch(&self) -> u64 {
        self.resolution.epoch.number
    }

    /// The delivery of the current epoch that wins (the smallest event id among its
    /// valid deliveries); `None` for the founding epoch.
    pub fn epoch_winner(&self) -> Option<&EpochDelivery> {
        let winner = self.resolution.epoch.winner?;
        self.resolution
            .epochs
            .get(&self.resolution.epoch.number)?
            .iter()
            .find(|d| d.entry == winner)
    }

    /// Whether every delivery of the current epoch reaches the same devices. When not,
    /// concurrent epoch changes disagree on who may read: nodes seal nothing until an
    /// admin delivers the next epoch on all of them (`Node` does so at its next write).
    pub fn epoch_settled(&self) -> bool {
        self.resolution.epoch.settled
    }

    // ---- chains and authority heads ----

    /// The highest place held in a device's chain in this group: its sequence number and
    /// event id. A device's next entry takes `seq + 1` and names this event as `prev`.
    pub fn chain_tip(&self, device: &DeviceKey) -> Option<(u64, EventId)> {
        self.chains.tip(device)
    }

    /// The chain position a new entry by `device` takes: after its tip, naming the
    /// current authority heads if `op` is an authority operation.
    pub fn next_chain(
        &self,
        device: &DeviceKey,
        op: &caucus_proto::Operation,
    ) -> caucus_proto::Chain {
        let heads = if op.is_authority() {
            self.authority_heads().to_vec()
        } else {
            Vec::new()
        };
        match self.chain_tip(device) {
            Some((seq, event)) => caucus_proto::Chain {
                seq: seq.saturating_add(1),
                prev: Some(event),
                heads,
            },
            None => caucus_proto::Chain::first(heads),
        }
    }

    /// The authority entries held that no other held authority entry has in its past:
    /// what a new authority entry is made on.
    pub fn authority_heads(&self) -> &[EventId] {
        &self.resolution.heads
    }

    /// Devices that wrote two different entries at one place of their chain
    /// (equivocation), with the lowest such place: their entries from there on are
    /// refused. Shown to admins.
    pub fn forks(&self) -> impl Iterator<Item = (DeviceKey, u64)> + '_ {
        self.resolution.forks.iter().map(|(d, s)| (*d, *s))
    }

    /// The sequence number a device is cut at by the valid removals and revocations held
    /// (the lowest): its entries beyond it never count. `None` if it is not cut.
    pub fn cut_seq(&self, device: &DeviceKey) -> Option<u64> {
        self.resolution.cuts.get(device).map(|c| c.seq)
    }

    /// Where a revocation of `device` written now cuts it: the last entry of it held.
    pub fn cut_of(&self, device: &DeviceKey) -> Cut {
        match self.chain_tip(device) {
            Some((seq, head)) => Cut {
                device: *device,
                seq,
                head: Some(head),
            },
            None => Cut {
                device: *device,
                seq: 0,
                head: None,
            },
        }
    }

    /// The cuts a removal (or role change) of `member` written now records: one per
    /// device ever linked to them, sorted by device.
    pub fn cuts_of(&self, member: &IdentityKey) -> Vec<Cut> {
        self.devices_of(member)
            .map(|d| self.cut_of(&d.cert.device))
            .collect()
    }

    // ---- group ----

    /// The group's name, once an admin has named it.
    pub fn group_name(&self) -> Option<&str> {
        self.view.group_name.as_deref()
    }

    /// The campaign's headcount and target, once an admin has set them.
    pub fn campaign(&self) -> Option<Campaign> {
        self.view.campaign
    }

    // ---- contacts, notes, follow-ups, notices ----

    /// A contact that has not been removed.
    pub fn contact(&self, id: &ContactId) -> Option<&Contact> {
        self.view.contacts.get(id).filter(|c| !c.is_removed())
    }

    /// The contacts that have not been removed, by id.
    pub fn contacts(&self) -> impl Iterator<Item = &Contact> {
        self.view.contacts.values().filter(|c| !c.is_removed())
    }

    /// The removed contacts, by id. Their notes stay reachable through
    /// [`State::notes`]; they appear in no listing or aggregate.
    pub fn removed_contacts(&self) -> impl Iterator<Item = &Contact> {
        self.view.contacts.values().filter(|c| c.is_removed())
    }

    /// A contact whether removed or not.
    pub fn contact_any(&self, id: &ContactId) -> Option<&Contact> {
        self.view.contacts.get(id)
    }

    /// A contact's conversation log (removed contacts too), in stable order: day of the
    /// conversation (or of logging), then clock, then entry id.
    pub fn notes(&self, contact: &ContactId) -> impl Iterator<Item = &NoteRecord> {
        self.view
            .notes
            .get(contact)
            .into_iter()
            .flat_map(|notes| notes.values())
    }

    /// Every note of every contact, removed contacts included, by contact then note order.
    pub fn all_notes(&self) -> impl Iterator<Item = &NoteRecord> {
        self.view.notes.values().flat_map(|notes| notes.values())
    }

    /// A follow-up (whatever the state of its contact).
    pub fn followup(&self, id: &FollowupId) -> Option<&Followup> {
        self.view.followups.get(id)
    }

    /// Every follow-up, by id.
    pub fn followups(&self) -> impl Iterator<Item = &Followup> {
        self.view.followups.values()
    }

    /// A notice, cancelled or expired ones included.
    pub fn notice(&self, id: &NoticeId) -> Option<&Notice> {
        self.view.notices.get(id)
    }

    /// Every notice, by id.
    pub fn notices(&self) -> impl Iterator<Item = &Notice> {
        self.view.notices.values()
    }

    // ---- hash ----

    /// BLAKE3 over a canonical encoding of the whole state (not of the rejection
    /// diagnostics nor of the entries held): equal on two replicas exactly when their
    /// folded states are equal.
    pub fn state_hash(&self) -> [u8; 32] {
        let v = &self.view;
        let mut h = blake3::Hasher::new();
        h.update(b"caucus-model state v1");
        feed(&mut h, &v.founder);
        feed(&mut h, &v.group_name);
        feed(&mut h, &v.campaign);
        feed_map(&mut h, &self.resolution.members);
        feed_map(&mut h, &self.resolution.devices);
        // As `feed_map`, reusing the encoding of each contact unchanged since last time.
        h.update(&(v.contacts.len() as u64).to_le_bytes());
        let mut cached = self.contact_bytes.lock();
        for (id, c) in &v.contacts {
            if let Some((was, bytes)) = cached.get(id)
                && was == c
            {
                h.update(bytes);
                continue;
            }
            let bytes = encoded(&(id, c));
            h.update(&bytes);
            cached.insert(*id, (c.clone(), bytes));
        }
        drop(cached);
        h.update(&(v.notes.len() as u64).to_le_bytes());
        let mut digests = self.note_digests.lock();
        for (contact, notes) in &v.notes {
            feed(&mut h, contact);
            let digest = match digests.get(contact) {
                Some((n, d)) if *n == notes.len() => *d,
                _ => {
                    let mut nh = blake3::Hasher::new();
                    feed_map(&mut nh, notes);
                    let d = *nh.finalize().as_bytes();
                    digests.insert(*contact, (notes.len(), d));
                    d
                }
            };
            h.update(&digest);
        }
        drop(digests);
        feed_map(&mut h, &v.followups);
        feed_map(&mut h, &v.notices);
        h.update(&(self.resolution.epochs.len() as u64).to_le_bytes());
        for (epoch, deliveries) in &self.resolution.epochs {
            feed(&mut h, epoch);
            h.update(&(deliveries.len() as u64).to_le_bytes());
            for d in deliveries {
                feed(&mut h, d);
            }
        }
        *h.finalize().as_bytes()
    }
}

/// Per-item encoding limit for the hash. Items are single records (one contact without
/// its notes, one note, one epoch delivery), far below this.
const HASH_ITEM_LIMIT: usize = 1 << 30;

/// Feeds one value, length-prefixed, in the wire codec's canonical encoding.
fn feed<T: Serialize>(h: &mut blake3::Hasher, value: &T) {
    h.update(&encoded(value));
}

/// What [`feed`] hashes for `value`: its length, then its canonical encoding.
fn encoded<T: Serialize>(value: &T) -> Vec<u8> {
    match caucus_proto::codec::encode::<_, HASH_ITEM_LIMIT>(value) {
        Ok(bytes) => {
            let mut out = Vec::with_capacity(8 + bytes.len());
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(&bytes);
            out
        }
        // Cannot happen for these types; still deterministic if it did.
        Err(_) => u64::MAX.to_le_bytes().to_vec(),
    }
}

fn feed_map<K: Serialize, V: Serialize>(h: &mut blake3::Hasher, map: &BTreeMap<K, V>) {
    h.update(&(map.len() as u64).to_le_bytes());
    for (k, v) in map {
        feed(h, &(k, v));
    }
}
