//! Authority: who may write, decided by causality, never by an author's clock.
//!
//! Two structures carry causality (see `caucus_proto::Chain`):
//!
//! - **Device chains.** Every entry names its device's sequence number and the event id
//!   of that device's previous entry. Two events at one place in a chain are an
//!   *equivocation* (a fork): the device's entries from that place on are refused
//!   ([`Reason::Forked`]) unless a cut says which branch is genuine.
//! - **The authority graph.** Every authority entry (member added, removed or re-roled,
//!   device linked or revoked, epoch key delivered) names the authority entries it was
//!   made on (its heads). Its *past* is everything reachable from them. An authority
//!   entry is checked against the authority state of its past alone — the members,
//!   roles and devices that the entries in its past make, folded in a deterministic
//!   topological order (heads first, ties by event id) — so a clock tells nothing.
//!
//! # Cuts
//!
//! A removal or revocation records, per device of its target, the last entry
//! of that device its writer had seen ([`caucus_proto::Cut`]). Once the removal holds
//! (below), every node refuses that device's entries beyond the cut whatever their clock
//! or epoch ([`Reason::BeyondCut`]). Its entries up to the cut count however late they
//! arrive (work done before the cut is kept): at each place the chain from the cut's
//! head pins (the head, and the predecessor each held entry names, down to the first
//! place not held) only the pinned event counts, so a removed device cannot substitute
//! a new entry for one the remover saw or one a seen entry names ([`Reason::Forked`]).
//! Below the first place not held, the only event held at a place counts, and two
//! events at one place both fail. (What that leaves a device that deliberately
//! withheld some of its own entries before its cut is in `proto/THREATS.md`.) Authority
//! entries in the revocation's own past are never cut by it: its writer saw them. A
//! device of a removed member that the remover never saw (linked concurrently) is cut
//! entirely. A cut below what its writer's own past shows of that device is refused
//! ([`Reason::CutBelowSeen`]).
//!
//! # Concurrent removals ("strong removal")
//!
//! Revocations (member removals and device revocations) are decided
//! one at a time, each against the cuts of those decided valid before it, in this
//! priority order:
//!
//! 1. causal order: a revocation in another's past goes first;
//! 2. a revocation that cuts an entry the other's *authority* rests on (the member
//!    addition, role grant or device link that lets its author act, transitively) goes
//!    first, unless the other cuts one of its own in turn: a sockpuppet made by a
//!    removed admin's backdated entry cannot remove the admin who removed them;
//! 3. a revocation whose target wrote the other goes first, unless they target each
//!    other: a removed member's backdated removal of someone else is refused; of two
//!    devices revoking each other, the identity's first device (the one holding the
//!    identity key) goes first;
//! 4. the smaller position in the topological order (which breaks the rare cycles of
//!    three or more admins removing each other).
//!
//! A revocation its author could not make even on its own past (an organizer removing
//! someone) takes precedence over nothing. What the authority of a revocation decided
//! valid rests on is never cut by one decided after it; a revocation itself that falls
//! to the cut of a later one (only where the order had to break a cycle) is dropped with
//! its cuts, until every one left holds. Two member removals
//! aimed at each other's authors (mutual removal) both hold, as in
//! p2panda-auth's strong-removal resolver: a removed admin who writes, on their old
//! view, a removal of the admin who removed them takes that admin out too (it cannot be
//! told from a concurrent one; `proto/THREATS.md` section 5). The rest of the graph is
//! then checked against the cuts of the valid revocations; entries made on refused
//! entries fail in turn, since their past's state lacks what the refused entries would
//! have done.
//!
//! A demotion is not a cut: it changes the role from its place in the authority order
//! on, so a demoted admin's admin entries made concurrently with it still count. To cut
//! an informant off, remove them.
//!
//! # Epochs
//!
//! The epochs form one chain. A delivery of epoch `e + 1` is valid only from an admin,
//! sealed under epoch `e`, where `e` is the current epoch of its past, to exactly the
//! current devices of its past (one sealed key each). Concurrent deliveries of one epoch
//! are all kept; the one with the smallest event id wins (which every node computes
//! alike). The epoch is *settled* when all its deliveries reach the same devices;
//! otherwise a delivery of the next epoch must have all of them in its past (so its
//! recipients exclude everyone either branch removed), and until one does, nodes seal
//! nothing but it.
//!
//! Content entries (contacts, notes, follow-ups, notices, acknowledgements, the group's
//! name and campaign) carry no heads: their author's device must be linked, not forked,
//! and the entry within its device's cut; admin-only content needs the admin role at
//! its place in the device's chain (a role change applies to a device's entries after
//! its cut).

use crate::entry::OpenedEntry;
use crate::outcome::Reason;
use crate::records::{Device, EpochDelivery, Member, Stamp};
use caucus_proto::{Cut, DeviceCert, DeviceKey, EntryId, EventId, IdentityKey, Operation, Role};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

// ---- device chains ------------------------------------------------------------------

/// Every event held, per device and sequence number (content and authority alike).
#[derive(Clone, Debug, Default)]
pub(crate) struct Chains {
    by_device: BTreeMap<DeviceKey, BTreeMap<u64, Place>>,
}

/// The events held at one place of a device's chain, each with the predecessor it
/// names: almost always one (two or more are an equivocation).
#[derive(Clone, Debug, Default)]
struct Place(Vec<(EventId, Option<EventId>)>);

impl Place {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn contains(&self, event: &EventId) -> bool {
        self.0.iter().any(|(e, _)| e == event)
    }
    fn prev_of(&self, event: &EventId) -> Option<&Option<EventId>> {
        self.0.iter().find(|(e, _)| e == event).map(|(_, p)| p)
    }
    fn events(&self) -> impl Iterator<Item = &EventId> {
        self.0.iter().map(|(e, _)| e)
    }
    fn prevs(&self) -> impl Iterator<Item = &Option<EventId>> {
        self.0.iter().map(|(_, p)| p)
    }
    /// Adds an event; returns whether it was new. Kept sorted by event id.
    fn insert(&mut self, event: EventId, prev: Option<EventId>) -> bool {
        match self.0.binary_search_by(|(e, _)| e.cmp(&event)) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, (event, prev));
                true
            }
        }
    }
}

/// What a device's chain shows below a cut: the event expected at each place the chain
/// from the cut's head pins (the head, then each held entry's predecessor, down to the
/// first place whose entry is not held), and every event held at each place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CutView {
    /// The cut's sequence number.
    pub(crate) seq: u64,
    /// The event each pinned place must hold.
    pinned: BTreeMap<u64, EventId>,
    /// Places below the cut where more than one event is held.
    contested: BTreeSet<u64>,
}

impl CutView {
    /// Whether the device's entry `event` at `seq` counts under this cut: not beyond
    /// it, and the event the chain pins there (or, where the chain does not reach, the
    /// only event held there).
    pub(crate) fn admits(&self, seq: u64, event: &EventId) -> Result<(), Reason> {
        if seq > self.seq {
            return Err(Reason::BeyondCut);
        }
        match self.pinned.get(&seq) {
            Some(expected) if expected == event => Ok(()),
            Some(_) => Err(Reason::Forked),
            None if self.contested.contains(&seq) => Err(Reason::Forked),
            None => Ok(()),
        }
    }
}

impl Chains {
    /// Records one event and tells whether it forks the chain (another event at its
    /// place, or a neighbour that does not name it or that it does not name): one
    /// look-up of the device's chain for both.
    pub(crate) fn place(
        &mut self,
        device: DeviceKey,
        seq: u64,
        event: EventId,
        prev: Option<EventId>,
    ) -> bool {
        let chain = self.by_device.entry(device).or_default();
        let forks = {
            let other_here = chain
                .get(&seq)
                .is_some_and(|here| here.events().any(|e| *e != event));
            let before_differs = match (seq.checked_sub(1).and_then(|s| chain.get(&s)), &prev) {
                (Some(before), Some(p)) => !before.contains(p),
                _ => false,
            };
            let after_differs = chain
                .get(&(seq.saturating_add(1)))
                .is_some_and(|after| after.prevs().any(|p| p.as_ref() != Some(&event)));
            other_here || before_differs || after_differs
        };
        chain.entry(seq).or_default().insert(event, prev);
        forks
    }

    /// The lowest place where a device's chain forks: two events at one sequence
    /// number, or an event whose predecessor is not the event held before it.
    pub(crate) fn fork_at(&self, device: &DeviceKey) -> Option<u64> {
        let chain = self.by_device.get(device)?;
        let mut prev_seq: Option<(u64, &Place)> = None;
        for (seq, here) in chain {
            if here.len() > 1 {
                return Some(*seq);
            }
            if let Some((ps, before)) = prev_seq
                && ps + 1 == *seq
                && here
                    .prevs()
                    .any(|p| p.as_ref().is_some_and(|p| !before.contains(p)))
            {
                return Some(ps);
            }
            prev_seq = Some((*seq, here));
        }
        None
    }

    /// Every device's lowest fork.
    pub(crate) fn forks(&self) -> BTreeMap<DeviceKey, u64> {
        self.by_device
            .keys()
            .filter_map(|d| self.fork_at(d).map(|s| (*d, s)))
            .collect()
    }

    /// The highest place held in a device's chain (the smallest event id if forked).
    pub(crate) fn tip(&self, device: &DeviceKey) -> Option<(u64, EventId)> {
        let (seq, here) = self.by_device.get(device)?.last_key_value()?;
        here.events().next().map(|e| (*seq, *e))
    }

    /// The view below a cut of `device` at `seq`, `head`.
    pub(crate) fn cut_view(&self, device: &DeviceKey, seq: u64, head: Option<EventId>) -> CutView {
        let mut view = CutView {
            seq,
            pinned: BTreeMap::new(),
            contested: BTreeSet::new(),
        };
        let Some(chain) = self.by_device.get(device) else {
            return view;
        };
        view.contested = chain
            .range(..=seq)
            .filter(|(_, here)| here.len() > 1)
            .map(|(s, _)| *s)
            .collect();
        let mut at = seq;
        let mut next = head;
        while let Some(event) = next {
            view.pinned.insert(at, event);
            let Some(prev) = chain.get(&at).and_then(|here| here.prev_of(&event)) else {
                break;
            };
            next = *prev;
            if at <= 1 {
                break;
            }
            at -= 1;
        }
        view
    }
}

// ---- the authority state of a past ------------------------------------------------------

/// A member as the authority state holds them, with the entries their standing rests on.
#[derive(Clone, Debug)]
struct MemberSt {
    name: String,
    role: Role,
    removed: Option<usize>,
    /// The entry that last admitted them (none for the founder).
    added_by: Option<usize>,
    /// The entry that last set their role, if not their admission.
    role_by: Option<usize>,
}

#[derive(Clone, Debug)]
struct DeviceSt {
    cert: DeviceCert,
    revoked: Option<usize>,
    linked_by: usize,
    first: bool,
}

/// The members, devices and epoch that a set of authority entries makes.
#[derive(Clone, Debug)]
struct AuthState {
    members: BTreeMap<IdentityKey, MemberSt>,
    devices: BTreeMap<DeviceKey, DeviceSt>,
    /// The current epoch (1 = the founding key).
    epoch: u64,
    /// Valid deliveries of `epoch` held in this past: entry index and recipient set.
    candidates: Vec<(usize, BTreeSet<DeviceKey>)>,
}

impl AuthState {
    fn new(founder: IdentityKey) -> AuthState {
        let mut members = BTreeMap::new();
        members.insert(
            founder,
            MemberSt {
                name: String::new(),
                role: Role::Admin,
                removed: None,
                added_by: None,
                role_by: None,
            },
        );
        AuthState {
            members,
            devices: BTreeMap::new(),
            epoch: 1,
            candidates: Vec::new(),
        }
    }

    fn current(&self, who: &IdentityKey) -> Option<&MemberSt> {
        self.members.get(who).filter(|m| m.removed.is_none())
    }

    fn current_devices(&self) -> BTreeSet<DeviceKey> {
        self.devices
            .iter()
            .filter(|(_, d)| d.revoked.is_none() && self.current(&d.cert.identity).is_some())
            .map(|(k, _)| *k)
            .collect()
    }

    /// The entries the author of `e` relies on to act: their admission and role grant,
    /// and their device's link.
    fn grants(&self, e: &OpenedEntry) -> Vec<usize> {
        let mut out = Vec::new();
        if let Some(m) = self.members.get(&e.author.identity) {
            out.extend(m.added_by);
            out.extend(m.role_by);
        }
        if let Some(d) = self.devices.get(&e.author.device) {
            out.push(d.linked_by);
        }
        out
    }

    /// Whether `e` may be applied on this state: its author's standing, then the rules
    /// of its operation.
    fn check(&self, e: &OpenedEntry, seen: &dyn Fn(&DeviceKey) -> u64) -> Result<(), Reason> {
        if let Err(err) = e.op.validate() {
            return Err(Reason::Invalid(match err {
                caucus_proto::codec::EncodeError::Invalid(why) => why,
                _ => "operation does not encode",
            }));
        }
        let member = self.current(&e.author.identity).ok_or(Reason::NotAMember)?;
        match self.devices.get(&e.author.device) {
            Some(d) if d.cert.identity == e.author.identity => {
                if d.revoked.is_some() {
                    return Err(Reason::DeviceRevoked);
                }
            }
            Some(_) => return Err(Reason::DeviceNotLinked),
            None => match &e.op {
                Operation::DeviceLinked { cert }
                    if cert.device == e.author.device && cert.identity == e.author.identity =>
                {
                    if self
                        .devices
                        .values()
                        .any(|d| d.cert.identity == e.author.identity)
                    {
                        return Err(Reason::NotFirstDevice);
                    }
                }
                _ => return Err(Reason::DeviceNotLinked),
            },
        }
        let admin = member.role == Role::Admin;
        let admin_only = |what: &'static str| {
            if admin {
                Ok(())
            } else {
                Err(Reason::AdminOnly(what))
            }
        };
        let check_cuts = |target: &IdentityKey, cuts: &[Cut]| -> Result<(), Reason> {
            for c in cuts {
                match self.devices.get(&c.device) {
                    Some(d) if d.cert.identity == *target => {}
                    _ => return Err(Reason::Invalid("a cut names a device of someone else")),
                }
                if c.seq < seen(&c.device) {
                    return Err(Reason::CutBelowSeen);
                }
            }
            Ok(())
        };
        match &e.op {
            Operation::MemberAdded { .. } => admin_only("add members"),
            Operation::MemberRemoved { member, cuts } => {
                admin_only("remove members")?;
                self.current(member).ok_or(Reason::TargetNotAMember)?;
                check_cuts(member, cuts)
            }
            Operation::RoleChanged { member, cuts, .. } => {
                admin_only("change roles")?;
                self.current(member).ok_or(Reason::TargetNotAMember)?;
                check_cuts(member, cuts)
            }
            Operation::DeviceLinked { cert } => {
                if !admin && cert.identity != e.author.identity {
                    return Err(Reason::NotTheirOwn("link devices"));
                }
                self.current(&cert.identity)
                    .ok_or(Reason::TargetNotAMember)?;
                match self.devices.get(&cert.device) {
                    Some(d) if d.revoked.is_some() => Err(Reason::DeviceWasRevoked),
                    Some(d) if d.cert.identity != cert.identity => {
                        Err(Reason::DeviceOfAnotherMember)
                    }
                    Some(d) if d.cert != *cert => Err(Reason::DeviceKeyChanged),
                    _ => Ok(()),
                }
            }
            Operation::DeviceRevoked { cut } => {
                let d = self.devices.get(&cut.device).ok_or(Reason::UnknownDevice)?;
                if !admin && d.cert.identity != e.author.identity {
                    return Err(Reason::NotTheirOwn("revoke devices"));
                }
                if cut.seq < seen(&cut.device) {
                    return Err(Reason::CutBelowSeen);
                }
                Ok(())
            }
            Operation::EpochKeyDelivered { epoch, deliveries } => {
                admin_only("deliver epoch keys")?;
                let next = self.epoch.checked_add(1).ok_or(Reason::EpochNotNext)?;
                if *epoch != next || e.epoch != self.epoch {
                    return Err(Reason::EpochNotNext);
                }
                let to: BTreeSet<DeviceKey> = deliveries.iter().map(|d| d.device).collect();
                if to.len() != deliveries.len() || to != self.current_devices() {
                    return Err(Reason::WrongRecipients);
                }
                Ok(())
            }
            // Content never reaches the authority state.
            _ => Err(Reason::Invalid("not an authority operation")),
        }
    }

    /// Applies a valid authority entry (index `i`).
    fn apply(&mut self, i: usize, e: &OpenedEntry) {
        match &e.op {
            Operation::MemberAdded { member, name, role } => {
                self.members.insert(
                    *member,
                    MemberSt {
                        name: name.clone(),
                        role: *role,
                        removed: None,
                        added_by: Some(i),
                        role_by: None,
                    },
                );
            }
            Operation::MemberRemoved { member, .. } => {
                if let Some(m) = self.members.get_mut(member) {
                    m.removed.get_or_insert(i);
                }
                // A removed member's devices are cut for good; coming back means new ones.
                for d in self.devices.values_mut() {
                    if d.cert.identity == *member {
                        d.revoked.get_or_insert(i);
                    }
                }
            }
            Operation::RoleChanged { member, role, .. } => {
                if let Some(m) = self.members.get_mut(member) {
                    m.role = *role;
                    m.role_by = Some(i);
                }
            }
            Operation::DeviceLinked { cert } => {
                let first = !self
                    .devices
                    .values()
                    .any(|d| d.cert.identity == cert.identity);
                self.devices.entry(cert.device).or_insert(DeviceSt {
                    cert: cert.clone(),
                    revoked: None,
                    linked_by: i,
                    first,
                });
            }
            Operation::DeviceRevoked { cut } => {
                if let Some(d) = self.devices.get_mut(&cut.device) {
                    d.revoked.get_or_insert(i);
                }
            }
            Operation::EpochKeyDelivered { epoch, deliveries } => {
                let to = deliveries.iter().map(|d| d.device).collect();
                if *epoch == self.epoch {
                    self.candidates.push((i, to));
                } else if *epoch > self.epoch {
                    self.epoch = *epoch;
                    self.candidates = vec![(i, to)];
                }
            }
            _ => {}
        }
    }
}

// ---- bit sets over topological positions --------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    fn or(&mut self, other: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= *b;
        }
    }
    fn and_not(&mut self, other: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a &= !*b;
        }
    }
    fn intersects(&self, other: &Bits) -> bool {
        self.0.iter().zip(&other.0).any(|(a, b)| a & b != 0)
    }
    fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
    fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, word)| {
            (0..64)
                .filter(move |b| word & (1 << b) != 0)
                .map(move |b| w * 64 + b)
        })
    }
}

// ---- resolution ---------------------------------------------------------------------

/// The current epoch as the authority entries settle it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct EpochState {
    pub(crate) number: u64,
    pub(crate) winner: Option<EntryId>,
    pub(crate) settled: bool,
}

/// One step of a member's role, for content entries: the role from a device's entries
/// after `cuts` (all of them when the device is not listed).
#[derive(Clone, Debug)]
struct RoleStep {
    role: Role,
    cuts: BTreeMap<DeviceKey, u64>,
}

/// What the authority entries held decide: members, devices, epochs, each authority
/// entry's status, and what content entries are checked against.
#[derive(Clone, Debug)]
pub(crate) struct Resolution {
    pub(crate) members: BTreeMap<IdentityKey, Member>,
    pub(crate) devices: BTreeMap<DeviceKey, Device>,
    pub(crate) epochs: BTreeMap<u64, Vec<EpochDelivery>>,
    pub(crate) epoch: EpochState,
    /// Every authority entry's status, by entry id.
    pub(crate) status: BTreeMap<EntryId, Result<(), Reason>>,
    /// The effective cut of each cut device (the lowest).
    pub(crate) cuts: BTreeMap<DeviceKey, CutView>,
    /// Each forked device's lowest fork.
    pub(crate) forks: BTreeMap<DeviceKey, u64>,
    /// The authority entries held that no other held authority entry names in its
    /// past (those with all of their own past held).
    pub(crate) heads: Vec<EventId>,
    /// Role steps of each member, in order.
    roles: BTreeMap<IdentityKey, Vec<RoleStep>>,
    /// The founder.
    founder: IdentityKey,
}

impl Resolution {
    /// A group with no authority entry yet: the founder alone.
    pub(crate) fn empty(founder: IdentityKey) -> Resolution {
        resolve(founder, &[], &Chains::default())
    }

    /// Whether a content entry counts, and its author's role there.
    pub(crate) fn content(&self, e: &OpenedEntry) -> Result<Role, Reason> {
        let device = self
            .devices
            .get(&e.author.device)
            .filter(|d| d.cert.identity == e.author.identity);
        let Some(_) = device else {
            return Err(if self.members.contains_key(&e.author.identity) {
                Reason::DeviceNotLinked
            } else {
                Reason::NotAMember
            });
        };
        let seq = e.chain.seq;
        if let Some(cut) = self.cuts.get(&e.author.device) {
            cut.admits(seq, &e.event)?;
        } else if self.forks.get(&e.author.device).is_some_and(|f| *f <= seq) {
            return Err(Reason::Forked);
        }
        let mut role = if e.author.identity == self.founder {
            Some(Role::Admin)
        } else {
            None
        };
        for step in self.roles.get(&e.author.identity).into_iter().flatten() {
            if step.cuts.get(&e.author.device).is_none_or(|cut| seq > *cut) {
                role = Some(step.role);
            }
        }
        role.ok_or(Reason::NotAMember)
    }
}

/// The highest sequence number of each device among the authority entries in a past.
fn seen_in(entries: &[&OpenedEntry], order: &[usize], past: &Bits, device: &DeviceKey) -> u64 {
    past.ones()
        .map(|p| entries[order[p]])
        .filter(|e| e.author.device == *device)
        .map(|e| e.chain.seq)
        .max()
        .unwrap_or(0)
}

/// One check of every authority entry in topological order, against `filtered` (entries
/// cut by revocations decided valid) and the cuts' chain views.
struct Pass {
    valid: Bits,
    status: Vec<Result<(), Reason>>,
    state: AuthState,
    grants: Vec<Vec<usize>>,
}

struct Graph<'a> {
    founder: IdentityKey,
    entries: Vec<&'a OpenedEntry>,
    /// Topological order: entry indices.
    order: Vec<usize>,
    /// Position of each entry in `order`; `None` if it waits for its heads.
    pos: Vec<Option<usize>>,
    /// Ancestors of each position (bits over positions).
    past: Vec<Bits>,
}

impl Graph<'_> {
    fn pass(
        &self,
        filtered: &Bits,
        refused: &BTreeMap<usize, Reason>,
        cuts: &BTreeMap<DeviceKey, CutView>,
        forks: &BTreeMap<DeviceKey, u64>,
    ) -> Pass {
        let n = self.order.len();
        let mut valid = Bits::new(n);
        let mut status = vec![Err(Reason::AwaitingAuthority); self.entries.len()];
        let mut grants = vec![Vec::new(); n];
        let mut running = AuthState::new(self.founder);
        for (p, &i) in self.order.iter().enumerate() {
            let e = self.entries[i];
            let result = (|| {
                if let Some(reason) = refused.get(&p) {
                    return Err(*reason);
                }
                if filtered.get(p) {
                    // Cut by a valid revocation (see `resolve`): why, from the cut's view.
                    return Err(cuts
                        .get(&e.author.device)
                        .and_then(|c| c.admits(e.chain.seq, &e.event).err())
                        .unwrap_or(Reason::BeyondCut));
                }
                // Under a cut, the cut's chain decides which branch of a fork counts.
                if !cuts.contains_key(&e.author.device)
                    && forks
                        .get(&e.author.device)
                        .is_some_and(|f| *f <= e.chain.seq)
                {
                    return Err(Reason::Forked);
                }
                let past = &self.past[p];
                let replayed;
                let state = if past.count() == p {
                    &running
                } else {
                    let mut s = AuthState::new(self.founder);
                    for q in past.ones() {
                        if valid.get(q) {
                            s.apply(self.order[q], self.entries[self.order[q]]);
                        }
                    }
                    replayed = s;
                    &replayed
                };
                let seen = |device: &DeviceKey| seen_in(&self.entries, &self.order, past, device);
                state.check(e, &seen)?;
                grants[p] = state
                    .grants(e)
                    .into_iter()
                    .filter_map(|g| self.pos[g])
                    .collect();
                Ok(())
            })();
            if result.is_ok() {
                valid.set(p);
                running.apply(i, e);
            }
            status[i] = result;
        }
        Pass {
            valid,
            status,
            state: running,
            grants,
        }
    }
}

/// A revocation (member removal or device revocation) among the authority entries,
/// with what it would cut.
struct Revocation {
    /// Its topological position.
    at: usize,
    /// Where it cuts each device it concerns.
    cuts: Vec<Cut>,
    /// The authority entries it would refuse, by position.
    cut_entries: Bits,
}

/// What a revocation cuts: per device, the cut's sequence number and head.
fn revocation_cuts(
    g: &Graph<'_>,
    p: usize,
    links: &BTreeMap<DeviceKey, (IdentityKey, Option<usize>)>,
) -> Option<Vec<Cut>> {
    let e = g.entries[g.order[p]];
    let member_cuts = |member: &IdentityKey, cuts: &[Cut]| {
        let listed: BTreeMap<DeviceKey, &Cut> = cuts.iter().map(|c| (c.device, c)).collect();
        links
            .iter()
            .filter(|(_, (id, _))| id == member)
            // A device linked after the removal (on its past) is not the one removed.
            .filter(|(_, (_, link))| link.is_none_or(|l| !g.past[l].get(p)))
            .map(|(d, _)| match listed.get(d) {
                Some(c) => **c,
                None => Cut {
                    device: *d,
                    seq: 0,
                    head: None,
                },
            })
            .collect::<Vec<_>>()
    };
    match &e.op {
        Operation::MemberRemoved { member, cuts } => Some(member_cuts(member, cuts)),
        Operation::DeviceRevoked { cut } => Some(vec![*cut]),
        _ => None,
    }
}

/// Whether `e` removes a member (as opposed to revoking one device): two of those aimed
/// at each other's authors both hold (mutual removal).
fn member_level(e: &OpenedEntry) -> bool {
    matches!(e.op, Operation::MemberRemoved { .. })
}

/// Whether `e` revokes `author` (their identity or device).
fn targets(e: &OpenedEntry, author: &caucus_proto::Author) -> bool {
    match &e.op {
        Operation::MemberRemoved { member, .. } => *member == author.identity,
        Operation::DeviceRevoked { cut } => cut.device == author.device,
        _ => false,
    }
}

/// Resolves the authority entries held (see the module docs).
pub(crate) fn resolve(
    founder: IdentityKey,
    entries: &[&OpenedEntry],
    chains: &Chains,
) -> Resolution {
    let by_event: HashMap<EventId, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.event, i))
        .collect();
    // Topological order (Kahn), ties by event id; entries whose heads are not all held
    // (transitively) wait.
    let parents: Vec<Option<Vec<usize>>> = entries
        .iter()
        .map(|e| {
            e.chain
                .heads
                .iter()
                .map(|h| by_event.get(h).copied())
                .collect()
        })
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); entries.len()];
    let mut missing = vec![0usize; entries.len()];
    for (i, ps) in parents.iter().enumerate() {
        match ps {
            Some(ps) => {
                for &q in ps {
                    children[q].push(i);
                }
                missing[i] = ps.len();
            }
            None => missing[i] = usize::MAX,
        }
    }
    let mut ready: BinaryHeap<std::cmp::Reverse<(EventId, usize)>> = entries
        .iter()
        .enumerate()
        .filter(|(i, _)| missing[*i] == 0)
        .map(|(i, e)| std::cmp::Reverse((e.event, i)))
        .collect();
    let mut order = Vec::with_capacity(entries.len());
    let mut pos = vec![None; entries.len()];
    while let Some(std::cmp::Reverse((_, i))) = ready.pop() {
        pos[i] = Some(order.len());
        order.push(i);
        for &c in &children[i] {
            if missing[c] != usize::MAX {
                missing[c] -= 1;
                if missing[c] == 0 {
                    ready.push(std::cmp::Reverse((entries[c].event, c)));
                }
            }
        }
    }
    let n = order.len();
    let mut past: Vec<Bits> = Vec::with_capacity(n);
    for &i in &order {
        let mut bits = Bits::new(n);
        for &q in parents[i].iter().flatten() {
            if let Some(pq) = pos[q] {
                bits.or(&past[pq]);
                bits.set(pq);
            }
        }
        past.push(bits);
    }
    let graph = Graph {
        founder,
        entries: entries.to_vec(),
        order,
        pos,
        past,
    };
    let forks = chains.forks();

    // Every device ever linked by a held entry, with its identity and link position.
    let mut links: BTreeMap<DeviceKey, (IdentityKey, Option<usize>)> = BTreeMap::new();
    for (p, &i) in graph.order.iter().enumerate() {
        if let Operation::DeviceLinked { cert } = &entries[i].op {
            links.entry(cert.device).or_insert((cert.identity, Some(p)));
        }
    }

    // Each identity's first device: the one holding the identity key.
    let mut first_link: BTreeMap<IdentityKey, (usize, DeviceKey)> = BTreeMap::new();
    for (device, (identity, link)) in &links {
        let at = link.unwrap_or(usize::MAX);
        let slot = first_link.entry(*identity).or_insert((at, *device));
        if at < slot.0 {
            *slot = (at, *device);
        }
    }
    let first_device: BTreeSet<DeviceKey> = first_link.values().map(|(_, d)| *d).collect();

    // First pass, nothing cut: what each entry's authority rests on.
    let none = Bits::new(n);
    let refused: BTreeMap<usize, Reason> = BTreeMap::new();
    let first = graph.pass(&none, &refused, &BTreeMap::new(), &forks);
    let mut basis: Vec<Bits> = Vec::with_capacity(n);
    for p in 0..n {
        let mut b = Bits::new(n);
        for &g in &first.grants[p] {
            if g < p {
                b.set(g);
                let gb = basis[g].clone();
                b.or(&gb);
            }
        }
        basis.push(b);
    }

    // What each revocation would cut, among authority entries.
    let mut revocations: Vec<Revocation> = Vec::new();
    for p in 0..n {
        let Some(cuts) = revocation_cuts(&graph, p, &links) else {
            continue;
        };
        let r = graph.entries[graph.order[p]];
        let mut f = Bits::new(n);
        for (q, &j) in graph.order.iter().enumerate() {
            let e = entries[j];
            // Not what the revoker had in its past (it saw those), nor a mutual removal
            // of its author.
            if q == p
                || graph.past[p].get(q)
                || (targets(e, &r.author) && member_level(e) && member_level(r))
            {
                continue;
            }
            if let Some(c) = cuts.iter().find(|c| c.device == e.author.device) {
                let view = chains.cut_view(&e.author.device, c.seq, c.head);
                if view.admits(e.chain.seq, &e.event).is_err() {
                    f.set(q);
                }
            }
        }
        revocations.push(Revocation {
            at: p,
            cuts,
            cut_entries: f,
        });
    }

    // Decide the revocations in priority order.
    let before = |a: &Revocation, b: &Revocation| -> bool {
        let (pa, pb) = (a.at, b.at);
        if graph.past[pb].get(pa) {
            return true;
        }
        // A revocation its author may not make even on its own past (an organizer
        // removing someone, say) takes precedence over nothing.
        if !first.valid.get(pa) {
            return false;
        }
        if graph.past[pa].get(pb) {
            return false;
        }
        let fa = a.cut_entries.intersects(&basis[pb]);
        let fb = b.cut_entries.intersects(&basis[pa]);
        if fa != fb {
            return fa;
        }
        let ea = graph.entries[graph.order[pa]];
        let eb = graph.entries[graph.order[pb]];
        let ta = targets(ea, &eb.author);
        let tb = targets(eb, &ea.author);
        if ta && tb && !(member_level(ea) && member_level(eb)) {
            // Two devices revoking each other: the identity's first device (the one
            // holding the identity key) goes first.
            return first_device.contains(&ea.author.device)
                && !first_device.contains(&eb.author.device);
        }
        ta && !tb
    };
    // The cuts of the revocations decided valid so far, in decision order: each one's
    // cut entries, less what the authority of those before it rests on.
    let apply_cuts = |valid: &[usize]| {
        let mut filtered = Bits::new(n);
        let mut protected = Bits::new(n);
        let mut cut_views: BTreeMap<DeviceKey, CutView> = BTreeMap::new();
        for &k in valid {
            let r = &revocations[k];
            let mut f = r.cut_entries.clone();
            f.and_not(&protected);
            filtered.or(&f);
            protected.or(&basis[r.at]);
            for c in &r.cuts {
                let view = chains.cut_view(&c.device, c.seq, c.head);
                if cut_views
                    .get(&c.device)
                    .is_none_or(|old| view.seq < old.seq)
                {
                    cut_views.insert(c.device, view);
                }
            }
        }
        (filtered, cut_views)
    };
    let mut decided: Vec<usize> = Vec::new();
    let mut undecided: Vec<usize> = (0..revocations.len()).collect();
    while !undecided.is_empty() {
        let minimal: Vec<usize> = undecided
            .iter()
            .copied()
            .filter(|&a| {
                !undecided
                    .iter()
                    .any(|&b| b != a && before(&revocations[b], &revocations[a]))
            })
            .collect();
        let pool = if minimal.is_empty() {
            &undecided
        } else {
            &minimal
        };
        let Some(&pick) = pool.iter().min_by_key(|&&k| revocations[k].at) else {
            break;
        };
        undecided.retain(|&k| k != pick);
        let (filtered, cut_views) = apply_cuts(&decided);
        if graph
            .pass(&filtered, &refused, &cut_views, &forks)
            .valid
            .get(revocations[pick].at)
        {
            decided.push(pick);
        }
    }
    // A revocation decided early (where the order had to break a cycle) may fall to the
    // cut of one decided later: drop it, and its cuts, until every one left holds.
    let (mut filtered, mut cut_views) = apply_cuts(&decided);
    for _ in 0..revocations.len() {
        let pass = graph.pass(&filtered, &refused, &cut_views, &forks);
        let before_len = decided.len();
        decided.retain(|&k| pass.valid.get(revocations[k].at));
        if decided.len() == before_len {
            break;
        }
        (filtered, cut_views) = apply_cuts(&decided);
    }

    // Final passes: deliveries of an epoch after a contested one must have every
    // contested delivery in their past.
    let mut refused = refused;
    let mut pass = graph.pass(&filtered, &refused, &cut_views, &forks);
    for _ in 0..n {
        let mut by_epoch: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for p in pass.valid.ones() {
            if let Operation::EpochKeyDelivered { epoch, .. } = &entries[graph.order[p]].op {
                by_epoch.entry(*epoch).or_default().push(p);
            }
        }
        let recipients = |p: usize| -> BTreeSet<DeviceKey> {
            match &entries[graph.order[p]].op {
                Operation::EpochKeyDelivered { deliveries, .. } => {
                    deliveries.iter().map(|d| d.device).collect()
                }
                _ => BTreeSet::new(),
            }
        };
        let mut more = false;
        for (epoch, cands) in &by_epoch {
            let contested = cands.len() > 1
                && cands
                    .windows(2)
                    .any(|w| recipients(w[0]) != recipients(w[1]));
            if !contested {
                continue;
            }
            let Some(next) = epoch.checked_add(1).and_then(|e| by_epoch.get(&e)) else {
                continue;
            };
            for &q in next {
                if cands.iter().any(|&c| !graph.past[q].get(c)) {
                    refused.insert(q, Reason::EpochNotSettled);
                    more = true;
                }
            }
        }
        if !more {
            break;
        }
        pass = graph.pass(&filtered, &refused, &cut_views, &forks);
    }

    // What the valid entries make.
    let stamp = |i: usize| {
        let e = entries[i];
        Stamp {
            entry: e.id,
            by: e.author,
            hlc: e.hlc,
        }
    };
    let st = &pass.state;
    let members = st
        .members
        .iter()
        .map(|(id, m)| {
            (
                *id,
                Member {
                    identity: *id,
                    name: m.name.clone(),
                    role: m.role,
                    removed: m.removed.map(stamp),
                },
            )
        })
        .collect();
    let devices = st
        .devices
        .iter()
        .map(|(k, d)| {
            (
                *k,
                Device {
                    cert: d.cert.clone(),
                    revoked: d.revoked.map(stamp),
                    first: d.first,
                },
            )
        })
        .collect();
    let mut epochs: BTreeMap<u64, Vec<EpochDelivery>> = BTreeMap::new();
    let mut roles: BTreeMap<IdentityKey, Vec<RoleStep>> = BTreeMap::new();
    for p in pass.valid.ones() {
        let e = entries[graph.order[p]];
        match &e.op {
            Operation::EpochKeyDelivered { epoch, deliveries } => {
                epochs.entry(*epoch).or_default().push(EpochDelivery {
                    entry: e.id,
                    author: e.author,
                    hlc: e.hlc,
                    deliveries: deliveries.clone(),
                });
            }
            Operation::MemberAdded { member, role, .. } => {
                roles.entry(*member).or_default().push(RoleStep {
                    role: *role,
                    cuts: BTreeMap::new(),
                });
            }
            Operation::RoleChanged { member, role, cuts } => {
                roles.entry(*member).or_default().push(RoleStep {
                    role: *role,
                    cuts: cuts.iter().map(|c| (c.device, c.seq)).collect(),
                });
            }
            _ => {}
        }
    }
    let epoch = match st.candidates.iter().min_by_key(|(i, _)| entries[*i].event) {
        Some((winner, _)) => EpochState {
            number: st.epoch,
            winner: Some(entries[*winner].id),
            settled: st.candidates.windows(2).all(|w| w[0].1 == w[1].1),
        },
        None => EpochState {
            number: st.epoch,
            winner: None,
            settled: true,
        },
    };
    let status = graph
        .order
        .iter()
        .map(|&i| (entries[i].id, pass.status[i]))
        .chain(
            (0..entries.len())
                .filter(|i| graph.pos[*i].is_none())
                .map(|i| (entries[i].id, Err(Reason::AwaitingAuthority))),
        )
        .collect();
    // Heads: held authority entries (with their past held) in no other's past.
    let mut named = Bits::new(n);
    for b in &graph.past {
        named.or(b);
    }
    let mut heads: Vec<(usize, EventId)> = (0..n)
        .filter(|p| !named.get(*p))
        .map(|p| (p, entries[graph.order[p]].event))
        .collect();
    // At most MAX_HEADS, the latest in topological order.
    if heads.len() > caucus_proto::limits::MAX_HEADS {
        heads.drain(..heads.len() - caucus_proto::limits::MAX_HEADS);
    }
    let mut heads: Vec<EventId> = heads.into_iter().map(|(_, e)| e).collect();
    heads.sort_unstable();
    Resolution {
        members,
        devices,
        epochs,
        epoch,
        status,
        cuts: cut_views,
        forks,
        heads,
        roles,
        founder,
    }
}
