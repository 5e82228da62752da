//! Range-based set reconciliation, one round at a time, with no state of its own.
//!
//! The algorithm is negentropy's, made symmetric so that both sides learn what *they*
//! need. A `Reconcile` message tiles the id space with ranges; for each range the
//! receiver answers:
//!
//! | received             | answer                                                          |
//! |----------------------|-----------------------------------------------------------------|
//! | `Skip`               | `Skip`                                                          |
//! | `Fingerprint(f)`     | `Skip` if its own ids there hash to `f`; else its `Ids` if it holds at most [`ID_LIST_THRESHOLD`] there, else [`BRANCHING`] sub-ranges of equal count, each as a `Fingerprint` |
//! | `Ids(theirs)`        | `Lacking(mine − theirs)`; it now knows `theirs − mine` (its needs) |
//! | `Lacking(ids)`       | `Skip`; `ids` are its needs                                     |
//!
//! The initiator opens with the answer to a mismatching fingerprint of the whole space.
//! A message with no `Fingerprint` and no `Ids` range asks nothing: after sending or
//! receiving one, reconciliation is over for that side. Ids are uniform hashes, so
//! splitting by count splits the id space evenly, and a difference of `d` ids among `n`
//! costs about `d · log_B(n / T)` rounds' worth of `B` fingerprints (B = branching,
//! T = threshold): bytes grow with the difference, not the set.
//!
//! **Bounded replies.** An answer is built within [`REPLY_BUDGET_BYTES`] and
//! [`MAX_RANGES_PER_MESSAGE`]. When the next answer might not fit, the builder stops and
//! covers everything from there to the end with one `Fingerprint` of its own ids, which
//! the peer will split again next round; a long `Lacking` list is cut at an id and the
//! rest of the space is fingerprinted the same way. Every round settles at least one
//! range, so reconciliation always progresses (an initial sync of a large set against an
//! empty one moves about 4,000 ids per round).

use crate::fingerprint::{Accumulator, Bound, IdRange};
use crate::index::EntryIndex;
use crate::message::{
    MAX_RANGES_PER_MESSAGE, MAX_RECONCILE_BYTES, Mode, Range, WireBound, WireRange,
};
use caucus_proto::EntryId;

/// Sub-ranges a mismatching range is split into.
pub const BRANCHING: usize = 16;

/// A side holding at most this many ids in a mismatching range sends them as a list
/// instead of splitting further.
pub const ID_LIST_THRESHOLD: usize = 32;

/// Bytes a reply's ranges may take (the message limit minus room for the header).
pub const REPLY_BUDGET_BYTES: usize = MAX_RECONCILE_BYTES - 64;

/// Worst-case bytes of one split answer: `BRANCHING` ranges with 32-byte bounds.
const SPLIT_WORST_BYTES: usize = BRANCHING * (2 + 32 + 1 + 16);

/// Worst-case bytes of one id-list answer.
const IDS_WORST_BYTES: usize = 2 + 32 + 1 + 2 + ID_LIST_THRESHOLD * 32;

/// What one side says in answer to one received round, and what it learnt from it.
#[derive(Debug, Default)]
pub(crate) struct Reply {
    /// The ranges to send back.
    pub(crate) ranges: Vec<WireRange>,
    /// Whether the reply asks anything (holds a `Fingerprint` or `Ids` range).
    pub(crate) asks: bool,
    /// Ids the peer holds that this side lacks (not yet filtered for repeats).
    pub(crate) need: Vec<EntryId>,
    /// Ids this side holds that the peer lacks (told to the peer in `Lacking`).
    pub(crate) have: Vec<EntryId>,
}

/// Builds a reply range by range, merging neighbouring `Skip`s and counting bytes.
struct Builder {
    reply: Reply,
    bytes: usize,
}

fn varint_len(n: usize) -> usize {
    match n {
        0..=250 => 1,
        251..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// The bound as sent: trailing zero bytes dropped (they are padded back on receipt).
fn wire_bound(b: &Bound) -> WireBound {
    match b {
        Bound::End => WireBound::End,
        Bound::At(bytes) => {
            let len = bytes.iter().rposition(|&x| x != 0).map_or(0, |i| i + 1);
            WireBound::Prefix(bytes[..len].to_vec())
        }
    }
}

fn range_bytes(r: &WireRange) -> usize {
    let bound = match &r.upper {
        WireBound::End => 1,
        WireBound::Prefix(p) => 1 + varint_len(p.len()) + p.len(),
    };
    let mode = match &r.mode {
        Mode::Skip => 1,
        Mode::Fingerprint(_) => 17,
        Mode::Ids(ids) | Mode::Lacking(ids) => 1 + varint_len(ids.len()) + 32 * ids.len(),
    };
    bound + mode
}

impl Builder {
    fn new() -> Builder {
        Builder {
            reply: Reply::default(),
            bytes: 0,
        }
    }

    fn push(&mut self, upper: WireBound, mode: Mode) {
        if matches!(mode, Mode::Skip)
            && let Some(last) = self.reply.ranges.last_mut()
            && matches!(last.mode, Mode::Skip)
        {
            self.bytes -= range_bytes(last);
            last.upper = upper;
            self.bytes += range_bytes(last);
            return;
        }
        if matches!(mode, Mode::Fingerprint(_) | Mode::Ids(_)) {
            self.reply.asks = true;
        }
        let r = WireRange { upper, mode };
        self.bytes += range_bytes(&r);
        self.reply.ranges.push(r);
    }

    fn fits(&self, bytes: usize, ranges: usize) -> bool {
        self.bytes + bytes <= REPLY_BUDGET_BYTES
            && self.reply.ranges.len() + ranges < MAX_RANGES_PER_MESSAGE
    }

    /// Answers a range whose fingerprints differ: the ids, or a split.
    fn mismatch<S: EntryIndex + ?Sized>(&mut self, store: &S, range: IdRange, mine: Accumulator) {
        let count = mine.count;
        if count <= ID_LIST_THRESHOLD as u64 {
            let ids = store.ids_in_range(&range, ID_LIST_THRESHOLD);
            self.push(wire_bound(&range.upper), Mode::Ids(ids));
            return;
        }
        // Cut at positions count·i/B for i in 1..B: B sub-ranges of (almost) equal count.
        let positions: Vec<u64> = (1..BRANCHING)
            .map(|i| (u128::from(count) * i as u128 / BRANCHING as u128) as u64)
            .filter(|&p| p > 0)
            .collect();
        let cuts = store.cut_points(&range, &positions);
        let mut lower = range.lower;
        for cut in cuts {
            // The store may have changed under us: skip a cut that no longer makes sense.
            let Some((before, at)) = cut else { continue };
            if before >= at || !range.contains(&at) {
                continue;
            }
            let prefix = Bound::separating(&before, &at);
            let Some(upper) = Bound::from_prefix(&prefix) else {
                continue;
            };
            if upper <= lower {
                continue;
            }
            let fp = store.summary(&IdRange::new(lower, upper)).fingerprint();
            self.push(WireBound::Prefix(prefix), Mode::Fingerprint(fp));
            lower = upper;
        }
        let fp = store
            .summary(&IdRange::new(lower, range.upper))
            .fingerprint();
        self.push(wire_bound(&range.upper), Mode::Fingerprint(fp));
    }

    /// Covers `[lower, End)` with one fingerprint of this side's ids: "continue from here".
    fn rest<S: EntryIndex + ?Sized>(&mut self, store: &S, lower: Bound) {
        let range = IdRange::new(lower, Bound::End);
        let fp = store.summary(&range).fingerprint();
        self.push(WireBound::End, Mode::Fingerprint(fp));
    }
}

/// The initiator's first round: the answer to a mismatch over the whole id space.
pub(crate) fn initiate<S: EntryIndex + ?Sized>(store: &S) -> Reply {
    let mut b = Builder::new();
    let all = store.summary(&IdRange::ALL);
    b.mismatch(store, IdRange::ALL, all);
    b.reply
}

/// Answers one received (validated) round.
pub(crate) fn respond<S: EntryIndex + ?Sized>(store: &S, ranges: Vec<Range>) -> Reply {
    let mut b = Builder::new();
    let mut stopped = false;
    for Range { range, mode } in ranges {
        if stopped {
            // Past the cut, only take in what the peer told us we lack.
            if let Mode::Lacking(ids) = mode {
                b.reply
                    .need
                    .extend(ids.into_iter().filter(|id| !store.contains(id)));
            }
            continue;
        }
        let upper = wire_bound(&range.upper);
        match mode {
            Mode::Skip => b.push(upper, Mode::Skip),
            Mode::Lacking(ids) => {
                b.reply
                    .need
                    .extend(ids.into_iter().filter(|id| !store.contains(id)));
                b.push(upper, Mode::Skip);
            }
            Mode::Fingerprint(theirs) => {
                let mine = store.summary(&range);
                if mine.fingerprint() == theirs {
                    b.push(upper, Mode::Skip);
                } else if b.fits(SPLIT_WORST_BYTES.max(IDS_WORST_BYTES), BRANCHING + 1) {
                    b.mismatch(store, range, mine);
                } else {
                    b.rest(store, range.lower);
                    stopped = true;
                }
            }
            Mode::Ids(theirs) => {
                // Room for the range itself and at least one lacking id, or stop here.
                if !b.fits(2 + 32 + 1 + 3 + 32 + 17 + 40, 2) {
                    b.rest(store, range.lower);
                    stopped = true;
                    continue;
                }
                b.reply
                    .need
                    .extend(theirs.iter().filter(|id| !store.contains(id)));
                // Room left for lacking ids, keeping space for a closing fingerprint range.
                let room = REPLY_BUDGET_BYTES.saturating_sub(b.bytes + 2 + 32 + 1 + 3 + 17 + 40);
                let max_lacking = (room / 32).max(1);
                let mine = store.ids_in_range(&range, theirs.len() + max_lacking + 1);
                let mut lacking = Vec::new();
                let mut cut = None;
                for id in mine {
                    if theirs.binary_search(&id).is_ok() {
                        continue;
                    }
                    if lacking.len() == max_lacking {
                        cut = Some(id);
                        break;
                    }
                    lacking.push(id);
                }
                // Scanning `theirs.len() + max_lacking + 1` of our ids either reaches the
                // end of the range or finds more than `max_lacking` the peer lacks.
                b.reply.have.extend(lacking.iter().copied());
                match cut {
                    None => {
                        let mode = if lacking.is_empty() {
                            Mode::Skip
                        } else {
                            Mode::Lacking(lacking)
                        };
                        b.push(upper, mode);
                    }
                    Some(first_left) => {
                        let at = Bound::at(&first_left);
                        b.push(wire_bound(&at), Mode::Lacking(lacking));
                        b.rest(store, at);
                        stopped = true;
                    }
                }
            }
        }
    }
    b.reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::MemoryIndex;
    use crate::message::Reconcile;
    use std::collections::BTreeSet;

    fn id(n: u32) -> EntryId {
        EntryId(*blake3::hash(&n.to_le_bytes()).as_bytes())
    }

    /// Runs reconciliation to the end; returns (needs of a, needs of b, rounds, bytes).
    fn run(a: &MemoryIndex, b: &MemoryIndex) -> (BTreeSet<EntryId>, BTreeSet<EntryId>, usize) {
        let mut need = [BTreeSet::new(), BTreeSet::new()];
        let stores = [a, b];
        let mut reply = initiate(a);
        let mut side = 1;
        let mut rounds = 1;
        while reply.asks {
            let msg = Reconcile {
                round: 0,
                ranges: reply.ranges,
            };
            let ranges = msg.validate().unwrap();
            reply = respond(stores[side], ranges);
            need[side].extend(reply.need.iter().copied());
            if !reply.asks {
                // The last message still carries `Lacking` for the other side.
                let ranges = Reconcile {
                    round: 0,
                    ranges: reply.ranges.clone(),
                }
                .validate()
                .unwrap();
                let last = respond(stores[1 - side], ranges);
                need[1 - side].extend(last.need.iter().copied());
                assert!(!last.asks);
            }
            side = 1 - side;
            rounds += 1;
            assert!(rounds < 1000);
        }
        let [na, nb] = need;
        (na, nb, rounds)
    }

    #[test]
    fn finds_the_symmetric_difference() {
        let common: Vec<EntryId> = (0..2000).map(id).collect();
        let a = MemoryIndex::from_ids(common.iter().copied().chain((5000..5003).map(id)));
        let b = MemoryIndex::from_ids(common.iter().copied().chain((6000..6010).map(id)));
        let (na, nb, _) = run(&a, &b);
        assert_eq!(na, (6000..6010).map(id).collect());
        assert_eq!(nb, (5000..5003).map(id).collect());
    }

    #[test]
    fn big_one_sided_difference_is_cut_into_rounds() {
        let a = MemoryIndex::from_ids((0..20_000).map(id));
        let b = MemoryIndex::new();
        let (na, nb, rounds) = run(&a, &b);
        assert!(na.is_empty());
        assert_eq!(nb.len(), 20_000);
        assert!(rounds > 2, "20,000 ids do not fit one message");
        let (na, nb, _) = run(&b, &a);
        assert_eq!(na.len(), 20_000);
        assert!(nb.is_empty());
    }
}
