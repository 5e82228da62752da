//! Identifiers, keys, signatures, clocks and dates as they appear on the wire.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! byte_newtype {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(#[serde(with = "crate::codec::fixed")] pub [u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Parses the lowercase or uppercase hex form printed by `Display`.
            pub fn from_hex(s: &str) -> Option<Self> {
                let s = s.as_bytes();
                if s.len() != 2 * $len {
                    return None;
                }
                let mut out = [0u8; $len];
                for (i, pair) in s.chunks_exact(2).enumerate() {
                    out[i] = (hex_val(pair[0])? << 4) | hex_val(pair[1])?;
                }
                Some(Self(out))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for b in &self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Short form: enough to tell ids apart in logs, never a secret.
                write!(f, concat!(stringify!($name), "("))?;
                for b in &self.0[..4] {
                    write!(f, "{b:02x}")?;
                }
                write!(f, "…)")
            }
        }
    };
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

byte_newtype!(
    /// Opaque random id of a group (a campaign committee). Reveals nothing about it.
    GroupId, 16
);
byte_newtype!(
    /// Content id of an entry: BLAKE3 of its encoded envelope.
    EntryId, 32
);
byte_newtype!(
    /// Name of one event, whatever envelope carries it: BLAKE3 (derived key
    /// `"caucus v2 event id"`) of the body's encoding without its signature (version,
    /// author, chain, clock, operation). Re-sealed copies of a body share it; a device's
    /// entries name their predecessor by it, and authority entries their heads.
    EventId, 32
);
byte_newtype!(
    /// Random id of a contact (a worker the committee talks to), chosen by whoever adds it.
    ContactId, 16
);
byte_newtype!(
    /// Random id of a meeting notice.
    NoticeId, 16
);
byte_newtype!(
    /// Random id of a follow-up.
    FollowupId, 16
);
byte_newtype!(
    /// Public Ed25519 identity key of an organizer (a member of a group).
    IdentityKey, 32
);
byte_newtype!(
    /// Public Ed25519 signing key of one device (phone, laptop) of an organizer.
    DeviceKey, 32
);
byte_newtype!(
    /// An Ed25519 signature.
    Signature, 64
);

impl EventId {
    /// The event id of a body's event bytes ([`crate::Body::event_bytes`]).
    pub fn of_event_bytes(event_bytes: &[u8]) -> Self {
        let mut h = blake3::Hasher::new_derive_key("caucus v2 event id");
        h.update(event_bytes);
        Self(*h.finalize().as_bytes())
    }
}

impl EntryId {
    /// The content id of an encoded envelope: BLAKE3 of exactly these bytes.
    pub fn of_encoded(envelope_bytes: &[u8]) -> Self {
        Self(*blake3::hash(envelope_bytes).as_bytes())
    }

    /// The id of record `index` inside a [`crate::Operation::Records`] entry: what the
    /// model names that record by (a note's id, a rejection), since one entry holds
    /// many. `BLAKE3(domain ‖ entry id ‖ index as u32 LE)`.
    pub fn of_record(entry: &EntryId, index: u32) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(b"caucus v1 record id");
        h.update(&entry.0);
        h.update(&index.to_le_bytes());
        Self(*h.finalize().as_bytes())
    }
}

/// Hybrid logical clock timestamp: wall-clock milliseconds since the Unix epoch, and a
/// counter that orders events within one millisecond or when a clock runs behind.
///
/// Ordered by `(wall_ms, counter)`; ties between authors are broken by the author's
/// device key, then by entry id (see `caucus-model`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Hlc {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    pub wall_ms: u64,
    /// Logical counter within `wall_ms`.
    pub counter: u32,
}

impl Hlc {
    /// A timestamp for a new local event, after both `self` (the last one this device
    /// issued or saw) and the wall clock `now_ms`.
    pub fn tick(self, now_ms: u64) -> Hlc {
        if now_ms > self.wall_ms {
            Hlc {
                wall_ms: now_ms,
                counter: 0,
            }
        } else {
            Hlc {
                wall_ms: self.wall_ms,
                counter: self.counter.saturating_add(1),
            }
        }
    }

    /// The clock `n` ticks after this one within the same millisecond: record `n` of a
    /// [`crate::Operation::Records`] entry stamped `self` is at `self.nth(n)`.
    pub fn nth(self, n: u32) -> Hlc {
        Hlc {
            wall_ms: self.wall_ms,
            counter: self.counter.saturating_add(n),
        }
    }

    /// Folds in a timestamp received from another device, so later local events sort after it.
    pub fn observe(self, seen: Hlc) -> Hlc {
        self.max(seen)
    }
}

/// A calendar day: days since 1970-01-01 (proleptic Gregorian, UTC). Used for follow-up
/// due dates and the day a conversation took place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Day(pub i32);

impl Day {
    /// The day containing `unix_ms`.
    pub fn from_unix_ms(unix_ms: u64) -> Day {
        Day((unix_ms / 86_400_000) as i32)
    }

    /// The day for a civil date, or `None` if the month or day is out of range.
    pub fn from_ymd(y: i32, m: u32, d: u32) -> Option<Day> {
        if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
            return None;
        }
        // Days from civil (H. Hinnant's algorithm).
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe as u32 * 365 + yoe as u32 / 4 - yoe as u32 / 100 + doy;
        Some(Day(era * 146_097 + doe as i32 - 719_468))
    }

    /// The civil date `(year, month, day)` of this day.
    pub fn ymd(self) -> (i32, u32, u32) {
        let z = self.0 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097) as u32;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe as i32 + era * 400 + i32::from(m <= 2);
        (y, m, d)
    }
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl std::str::FromStr for Day {
    type Err = &'static str;

    /// Parses `YYYY-MM-DD`.
    fn from_str(s: &str) -> Result<Day, Self::Err> {
        const BAD: &str = "expected a date as YYYY-MM-DD";
        let mut parts = s.trim().splitn(3, '-');
        let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(BAD);
        };
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return Err(BAD);
        }
        let y: i32 = y.parse().map_err(|_| BAD)?;
        let m: u32 = m.parse().map_err(|_| BAD)?;
        let d: u32 = d.parse().map_err(|_| BAD)?;
        Day::from_ymd(y, m, d).ok_or("no such date")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_round_trips_through_civil_dates() {
        assert_eq!(Day::from_ymd(1970, 1, 1), Some(Day(0)));
        assert_eq!(
            Day::from_ymd(2026, 11, 25)
                .map(|d| d.to_string())
                .as_deref(),
            Some("2026-11-25")
        );
        for n in -800_000..800_000 {
            let (y, m, d) = Day(n).ymd();
            assert_eq!(Day::from_ymd(y, m, d), Some(Day(n)));
        }
        assert_eq!(
            "2024-02-29".parse::<Day>().map(|d| d.ymd()),
            Ok((2024, 2, 29))
        );
        assert!("2025-02-29".parse::<Day>().is_err());
        assert!("2025-13-01".parse::<Day>().is_err());
        assert!("25-1-1".parse::<Day>().is_err());
    }

    #[test]
    fn hlc_ticks_forward_even_when_the_clock_runs_back() {
        let a = Hlc {
            wall_ms: 1000,
            counter: 3,
        };
        assert_eq!(
            a.tick(2000),
            Hlc {
                wall_ms: 2000,
                counter: 0
            }
        );
        assert_eq!(
            a.tick(500),
            Hlc {
                wall_ms: 1000,
                counter: 4
            }
        );
        assert!(a.tick(500) > a);
        assert_eq!(
            a.observe(Hlc {
                wall_ms: 3000,
                counter: 1
            })
            .tick(10),
            Hlc {
                wall_ms: 3000,
                counter: 2
            }
        );
    }

    #[test]
    fn hex_round_trip() {
        let id = ContactId([0xab; 16]);
        assert_eq!(ContactId::from_hex(&id.to_string()), Some(id));
        assert_eq!(ContactId::from_hex("zz"), None);
    }
}
