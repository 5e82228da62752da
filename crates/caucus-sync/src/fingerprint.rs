//! Fingerprints of sets of entry ids, and the positions that bound ranges of ids.
//!
//! # Fingerprint
//!
//! The fingerprint of a set of ids is
//!
//! ```text
//! BLAKE3("caucus sync fingerprint v1" ‖ count as u64 LE ‖ (Σ ids mod 2^256) as 32 bytes LE)[..16]
//! ```
//!
//! where each id is read as a 256-bit little-endian integer. The sum is a group operation,
//! so an [`Accumulator`] can add and remove ids one at a time, and a store can keep
//! running sums (or prefix sums) to answer range fingerprints without reading every id.
//! Hashing the sum with the count makes the 16 bytes hard to collide on purpose: a plain
//! sum could be matched by a chosen set, but ids are BLAKE3 outputs an attacker would have
//! to find preimages for, and the final hash hides the linear structure. (A peer that is a
//! group member can always withhold entries; a fingerprint collision gains it nothing more.)
//!
//! # Bounds
//!
//! Ids are ordered as 32-byte strings (lexicographically). A [`Bound`] is a position in
//! that order: either a 32-byte value (an id belongs to `[lower, upper)` when
//! `lower <= id < upper`) or [`Bound::End`], past every id. On the wire a bound is sent as
//! the shortest prefix that still separates the last id below it from the first id at or
//! above it, padded back with zero bytes on receipt (negentropy's trick): with uniformly
//! distributed ids that is about `log256(n) + 1` bytes instead of 32.

use caucus_proto::EntryId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Length in bytes of a range [`Fingerprint`].
pub const FINGERPRINT_LEN: usize = 16;

/// Domain separation of fingerprints.
const FINGERPRINT_DOMAIN: &[u8] = b"caucus sync fingerprint v1";

/// The 16-byte digest of a set of ids (see the module docs).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint(pub [u8; FINGERPRINT_LEN]);

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// Running count and sum (mod 2^256) of a set of ids; add and remove in O(1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Accumulator {
    /// Number of ids added minus ids removed.
    pub count: u64,
    /// Sum of the ids as little-endian 256-bit integers, in four little-endian limbs.
    pub sum: [u64; 4],
}

fn limbs(id: &EntryId) -> [u64; 4] {
    let b = id.as_bytes();
    let mut out = [0u64; 4];
    for (i, limb) in out.iter_mut().enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&b[i * 8..i * 8 + 8]);
        *limb = u64::from_le_bytes(word);
    }
    out
}

impl Accumulator {
    /// The empty set.
    pub const EMPTY: Accumulator = Accumulator {
        count: 0,
        sum: [0; 4],
    };

    /// The accumulator of exactly these ids (each counted once per occurrence).
    pub fn of<'a>(ids: impl IntoIterator<Item = &'a EntryId>) -> Accumulator {
        let mut acc = Accumulator::EMPTY;
        for id in ids {
            acc.add(id);
        }
        acc
    }

    /// Adds one id.
    pub fn add(&mut self, id: &EntryId) {
        self.add_acc(&Accumulator {
            count: 1,
            sum: limbs(id),
        });
    }

    /// Removes one id that was added before.
    pub fn remove(&mut self, id: &EntryId) {
        self.sub_acc(&Accumulator {
            count: 1,
            sum: limbs(id),
        });
    }

    /// Adds every id of `other` (set union of disjoint sets).
    pub fn add_acc(&mut self, other: &Accumulator) {
        self.count = self.count.wrapping_add(other.count);
        let mut carry = false;
        for (a, b) in self.sum.iter_mut().zip(other.sum) {
            let (s1, c1) = a.overflowing_add(b);
            let (s2, c2) = s1.overflowing_add(u64::from(carry));
            *a = s2;
            carry = c1 || c2;
        }
    }

    /// Removes every id of `other`, a subset of `self` (set difference).
    pub fn sub_acc(&mut self, other: &Accumulator) {
        self.count = self.count.wrapping_sub(other.count);
        let mut borrow = false;
        for (a, b) in self.sum.iter_mut().zip(other.sum) {
            let (s1, c1) = a.overflowing_sub(b);
            let (s2, c2) = s1.overflowing_sub(u64::from(borrow));
            *a = s2;
            borrow = c1 || c2;
        }
    }

    /// The fingerprint of the set.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut h = blake3::Hasher::new();
        h.update(FINGERPRINT_DOMAIN);
        h.update(&self.count.to_le_bytes());
        for limb in self.sum {
            h.update(&limb.to_le_bytes());
        }
        let mut out = [0u8; FINGERPRINT_LEN];
        out.copy_from_slice(&h.finalize().as_bytes()[..FINGERPRINT_LEN]);
        Fingerprint(out)
    }
}

/// A position in the order of ids: the lower or upper end of a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bound {
    /// Just before the id equal to these bytes (ids `< value` are below, ids `>= value` above).
    At([u8; 32]),
    /// After every id.
    End,
}

impl Bound {
    /// The lowest position, before every id.
    pub const START: Bound = Bound::At([0; 32]);

    /// The position just before `id`.
    pub fn at(id: &EntryId) -> Bound {
        Bound::At(id.0)
    }

    /// Whether `id` lies at or after this position.
    pub fn le_id(&self, id: &EntryId) -> bool {
        match self {
            Bound::At(b) => b <= &id.0,
            Bound::End => false,
        }
    }

    /// The shortest bound that lies after `prev` and at or before `next` (`prev < next`),
    /// as the prefix sent on the wire: `next` cut just after its first byte differing
    /// from `prev`.
    pub fn separating(prev: &EntryId, next: &EntryId) -> Vec<u8> {
        let common = prev
            .0
            .iter()
            .zip(next.0.iter())
            .take_while(|(a, b)| a == b)
            .count();
        let len = (common + 1).min(32);
        next.0[..len].to_vec()
    }

    /// The bound a wire prefix stands for (zero-padded to 32 bytes), or `None` when the
    /// prefix is longer than an id.
    pub fn from_prefix(prefix: &[u8]) -> Option<Bound> {
        if prefix.len() > 32 {
            return None;
        }
        let mut b = [0u8; 32];
        b[..prefix.len()].copy_from_slice(prefix);
        Some(Bound::At(b))
    }
}

/// A half-open range `[lower, upper)` of ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IdRange {
    /// First position inside the range.
    pub lower: Bound,
    /// First position past the range.
    pub upper: Bound,
}

impl IdRange {
    /// Every id.
    pub const ALL: IdRange = IdRange {
        lower: Bound::START,
        upper: Bound::End,
    };

    /// The range `[lower, upper)`.
    pub fn new(lower: Bound, upper: Bound) -> IdRange {
        IdRange { lower, upper }
    }

    /// Whether `id` lies in the range.
    pub fn contains(&self, id: &EntryId) -> bool {
        self.lower.le_id(id) && !self.upper.le_id(id)
    }

    /// Whether the range holds no position at all (`lower >= upper`).
    pub fn is_empty(&self) -> bool {
        self.lower >= self.upper
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> EntryId {
        EntryId(*blake3::hash(&[n]).as_bytes())
    }

    #[test]
    fn accumulator_add_remove_is_order_free() {
        let ids: Vec<EntryId> = (0..50).map(id).collect();
        let a = Accumulator::of(&ids);
        let mut rev = ids.clone();
        rev.reverse();
        assert_eq!(a, Accumulator::of(&rev));
        let mut b = a;
        for i in &ids[..20] {
            b.remove(i);
        }
        assert_eq!(b, Accumulator::of(&ids[20..]));
        let mut c = Accumulator::of(&ids[..20]);
        c.add_acc(&Accumulator::of(&ids[20..]));
        assert_eq!(c, a);
        c.sub_acc(&Accumulator::of(&ids[..20]));
        assert_eq!(c.fingerprint(), Accumulator::of(&ids[20..]).fingerprint());
    }

    #[test]
    fn carries_propagate_across_limbs() {
        let max = EntryId([0xff; 32]);
        let one = {
            let mut b = [0u8; 32];
            b[0] = 1;
            EntryId(b)
        };
        let acc = Accumulator::of([&max, &one]);
        assert_eq!(acc.sum, [0, 0, 0, 0], "2^256 - 1 + 1 wraps to 0");
        assert_eq!(acc.count, 2);
        let mut back = acc;
        back.remove(&one);
        assert_eq!(back.sum, [u64::MAX; 4]);
    }

    #[test]
    fn fingerprints_differ_by_count_and_content() {
        assert_ne!(
            Accumulator::EMPTY.fingerprint(),
            Accumulator::of([&id(1)]).fingerprint()
        );
        assert_ne!(
            Accumulator::of([&id(1)]).fingerprint(),
            Accumulator::of([&id(2)]).fingerprint()
        );
        // Same sum, different count.
        let zero = EntryId([0; 32]);
        assert_ne!(
            Accumulator::EMPTY.fingerprint(),
            Accumulator::of([&zero]).fingerprint()
        );
    }

    #[test]
    fn separating_prefix_is_short_and_correct() {
        let prev = EntryId([0x12; 32]);
        let mut n = [0x12; 32];
        n[2] = 0x13;
        let next = EntryId(n);
        let p = Bound::separating(&prev, &next);
        assert_eq!(p, vec![0x12, 0x12, 0x13]);
        let b = Bound::from_prefix(&p).unwrap();
        assert!(!b.le_id(&prev));
        assert!(b.le_id(&next));
        assert_eq!(Bound::from_prefix(&[0; 33]), None);
    }

    #[test]
    fn ranges_contain_their_ids() {
        let r = IdRange::new(Bound::from_prefix(&[0x40]).unwrap(), Bound::End);
        assert!(r.contains(&EntryId([0x40; 32])));
        assert!(r.contains(&EntryId([0xff; 32])));
        assert!(!r.contains(&EntryId([0x3f; 32])));
        assert!(IdRange::ALL.contains(&EntryId([0; 32])));
        assert!(!IdRange::ALL.is_empty());
        assert!(IdRange::new(Bound::End, Bound::End).is_empty());
    }
}
