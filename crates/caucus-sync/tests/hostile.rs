//! A hostile or broken peer: every bad input ends the session with a typed error, never
//! a panic, and nothing it sends makes the session hold more than its bounds.

// Test code: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use caucus_proto::codec::DecodeError;
use caucus_proto::{EntryId, GroupId};
use caucus_sync::message::{
    Blob, Entries, Get, Hello, MAX_MESSAGE_BYTES, MAX_RECONCILE_BYTES, Mode, PROTOCOL_VERSION,
    Reconcile, WireBound, WireRange,
};
use caucus_sync::session::{MAX_NEEDED_IDS, MAX_QUEUED_ANSWERS, MAX_ROUNDS};
use caucus_sync::{
    AcceptAll, Config, Event, Fingerprint, MemoryIndex, Message, Role, Session, SyncError,
};

const GROUP: GroupId = GroupId([3; 16]);

/// SplitMix64: a tiny deterministic generator for test inputs.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn enc(m: &Message) -> Vec<u8> {
    m.encode().unwrap()
}

fn hello(group: GroupId) -> Vec<u8> {
    enc(&Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        group,
        proof: b"proof".to_vec(),
    }))
}

fn store() -> MemoryIndex {
    MemoryIndex::from_entries((0u32..500).map(|n| n.to_le_bytes().to_vec()))
}

/// A responder that has accepted our (hostile) hello and answered with its own.
fn verified_responder(store: &MemoryIndex) -> Session {
    let mut s = Session::new(
        Role::Responder,
        Config::new(GROUP, vec![]),
        Box::new(AcceptAll),
        0,
    );
    s.handle_message(0, &hello(GROUP), store).unwrap();
    while s.poll_transmit().is_some() {}
    s
}

fn round(n: u32, ranges: Vec<WireRange>) -> Vec<u8> {
    enc(&Message::Reconcile(Reconcile { round: n, ranges }))
}

fn end(mode: Mode) -> WireRange {
    WireRange {
        upper: WireBound::End,
        mode,
    }
}

#[test]
fn garbage_is_a_decode_error() {
    let st = store();
    for bad in [
        &[][..],
        &[0xff],
        &[5],
        &[0, 1],
        &[1, 2, 200, 0, 0],
        &[4, 0],
        b"GET / HTTP/1.1\r\n\r\n",
    ] {
        assert!(Message::decode(bad).is_err(), "{bad:?}");
        let mut s = verified_responder(&st);
        let e = s.handle_message(1, bad, &st).unwrap_err();
        assert!(matches!(e, SyncError::Decode(_)), "{bad:?}: {e:?}");
        // The error sticks and nothing more goes out.
        assert!(s.is_closed());
        assert!(s.poll_transmit().is_none());
        assert!(s.handle_message(2, &enc(&Message::Finish), &st).is_err());
    }
}

#[test]
fn hundred_thousand_random_inputs_never_panic() {
    let mut rng = Rng(7);
    let valid: Vec<Vec<u8>> = vec![
        hello(GROUP),
        round(
            2,
            vec![
                WireRange {
                    upper: WireBound::Prefix(vec![0x80, 1]),
                    mode: Mode::Fingerprint(Fingerprint([1; 16])),
                },
                end(Mode::Ids(vec![EntryId([0x90; 32]), EntryId([0xa0; 32])])),
            ],
        ),
        enc(&Message::Get(Get {
            req: 0,
            ids: vec![EntryId([1; 32]), EntryId([2; 32])],
        })),
        enc(&Message::Entries(Entries {
            req: 0,
            entries: vec![Blob(vec![1, 2, 3])],
            missing: vec![EntryId([2; 32])],
        })),
        enc(&Message::Finish),
    ];
    let mut decoded = 0;
    for i in 0..100_000u32 {
        let input: Vec<u8> = if i % 2 == 0 {
            let len = rng.below(120) as usize;
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            // Mutations of valid messages reach deeper into the decoder.
            let mut m = valid[rng.below(valid.len() as u64) as usize].clone();
            for _ in 0..=rng.below(4) {
                match rng.below(3) {
                    0 if !m.is_empty() => {
                        let at = rng.below(m.len() as u64) as usize;
                        m[at] = rng.next() as u8;
                    }
                    1 if !m.is_empty() => m.truncate(rng.below(m.len() as u64) as usize),
                    _ => m.push(rng.next() as u8),
                }
            }
            m
        };
        if Message::decode(&input).is_ok() {
            decoded += 1;
        }
    }
    println!("{decoded} of 100,000 random inputs decoded as some message");
}

#[test]
fn random_messages_to_a_live_session_end_it_cleanly() {
    let st = store();
    let mut rng = Rng(11);
    for _ in 0..5_000 {
        let mut s = verified_responder(&st);
        // A random but well-formed-looking round 2 with random bounds and modes.
        let n = 1 + rng.below(6) as usize;
        let mut ranges = Vec::new();
        for i in 0..n {
            let upper = if i + 1 == n && rng.below(4) != 0 {
                WireBound::End
            } else {
                let len = rng.below(34) as usize;
                WireBound::Prefix((0..len).map(|_| rng.next() as u8).collect())
            };
            let mode = match rng.below(4) {
                0 => Mode::Skip,
                1 => Mode::Fingerprint(Fingerprint([rng.next() as u8; 16])),
                2 => Mode::Ids(
                    (0..rng.below(4))
                        .map(|_| EntryId([rng.next() as u8; 32]))
                        .collect(),
                ),
                _ => Mode::Lacking(
                    (0..rng.below(4))
                        .map(|_| EntryId([rng.next() as u8; 32]))
                        .collect(),
                ),
            };
            ranges.push(WireRange { upper, mode });
        }
        let r = rng.below(4) as u32 + 1;
        match s.handle_message(1, &round(r, ranges), &st) {
            Ok(()) => assert!(!s.is_closed() || s.is_done()),
            Err(e) => {
                assert!(
                    matches!(
                        e,
                        SyncError::BadRanges(_)
                            | SyncError::BadIds(_)
                            | SyncError::WrongRound { .. }
                    ),
                    "{e:?}"
                );
                assert!(s.poll_transmit().is_none());
            }
        }
    }
}

#[test]
fn oversized_inputs_are_refused_before_decoding() {
    let st = store();
    let mut s = verified_responder(&st);
    let big = vec![0u8; MAX_MESSAGE_BYTES + 1];
    assert!(matches!(
        s.handle_message(1, &big, &st),
        Err(SyncError::Decode(DecodeError::TooLarge { .. }))
    ));

    // A reconcile round larger than its own limit (but under the message limit).
    let ids: Vec<EntryId> = (0..(MAX_RECONCILE_BYTES / 32 + 10) as u32)
        .map(|n| EntryId(*blake3::hash(&n.to_le_bytes()).as_bytes()))
        .collect();
    let mut ids = ids;
    ids.sort();
    let mut s = verified_responder(&st);
    assert!(matches!(
        s.handle_message(1, &round(2, vec![end(Mode::Ids(ids))]), &st),
        Err(SyncError::TooLarge { .. })
    ));

    // A hello with an absurd proof.
    let mut s = Session::new(
        Role::Responder,
        Config::new(GROUP, vec![]),
        Box::new(AcceptAll),
        0,
    );
    let fat = enc(&Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        group: GROUP,
        proof: vec![0; 100_000],
    }));
    assert!(matches!(
        s.handle_message(0, &fat, &st),
        Err(SyncError::TooLarge { .. })
    ));

    // A get for more ids than a request may hold.
    let mut s = verified_responder(&st);
    let get = enc(&Message::Get(Get {
        req: 0,
        ids: (0..1000u32)
            .map(|n| EntryId(*blake3::hash(&n.to_le_bytes()).as_bytes()))
            .collect(),
    }));
    assert!(matches!(
        s.handle_message(1, &get, &st),
        Err(SyncError::TooLarge { .. })
    ));
}

#[test]
fn endless_ranges_hit_the_round_limit() {
    let st = store();
    let mut s = verified_responder(&st);
    let mut rng = Rng(3);
    let mut r = 2;
    let err = loop {
        // Always a fresh mismatching fingerprint over everything: never settles.
        let fp = Fingerprint([rng.next() as u8; 16]);
        match s.handle_message(1, &round(r, vec![end(Mode::Fingerprint(fp))]), &st) {
            Ok(()) => {
                while s.poll_transmit().is_some() {}
                r += 2;
                assert!(r <= MAX_ROUNDS + 2);
            }
            Err(e) => break e,
        }
    };
    assert_eq!(err, SyncError::TooManyRounds { limit: MAX_ROUNDS });
}

#[test]
fn ranges_out_of_order_overlapping_or_short_are_refused() {
    let st = store();
    let p = |b: &[u8]| WireBound::Prefix(b.to_vec());
    let cases = vec![
        // out of order
        vec![
            WireRange {
                upper: p(&[0x80]),
                mode: Mode::Skip,
            },
            WireRange {
                upper: p(&[0x40]),
                mode: Mode::Skip,
            },
            end(Mode::Skip),
        ],
        // overlapping (same bound twice)
        vec![
            WireRange {
                upper: p(&[0x80]),
                mode: Mode::Skip,
            },
            WireRange {
                upper: p(&[0x80, 0]),
                mode: Mode::Skip,
            },
            end(Mode::Skip),
        ],
        // does not reach the end
        vec![WireRange {
            upper: p(&[0x80]),
            mode: Mode::Skip,
        }],
        // no ranges at all
        vec![],
    ];
    for ranges in cases {
        let mut s = verified_responder(&st);
        assert!(matches!(
            s.handle_message(1, &round(2, ranges), &st),
            Err(SyncError::BadRanges(_))
        ));
    }
    let mut s = verified_responder(&st);
    let outside = vec![
        WireRange {
            upper: p(&[0x10]),
            mode: Mode::Lacking(vec![EntryId([0x20; 32])]),
        },
        end(Mode::Skip),
    ];
    assert!(matches!(
        s.handle_message(1, &round(2, outside), &st),
        Err(SyncError::BadIds(_))
    ));
}

#[test]
fn nothing_before_a_verified_hello() {
    let st = store();
    let fresh = || {
        Session::new(
            Role::Responder,
            Config::new(GROUP, vec![]),
            Box::new(AcceptAll),
            0,
        )
    };
    let get = enc(&Message::Get(Get {
        req: 0,
        ids: vec![st.ids()[0]],
    }));
    let mut s = fresh();
    assert_eq!(
        s.handle_message(0, &get, &st),
        Err(SyncError::Unexpected { what: "get" })
    );
    let mut s = fresh();
    assert!(matches!(
        s.handle_message(0, &round(2, vec![end(Mode::Skip)]), &st),
        Err(SyncError::Unexpected { .. })
    ));
    let mut s = fresh();
    assert_eq!(
        s.handle_message(0, &hello(GroupId([9; 16])), &st),
        Err(SyncError::WrongGroup)
    );
    let mut s = Session::new(
        Role::Responder,
        Config::new(GROUP, vec![]),
        Box::new(|_: &GroupId, proof: &[u8]| proof == b"the real proof"),
        0,
    );
    assert_eq!(
        s.handle_message(0, &hello(GROUP), &st),
        Err(SyncError::NotAMember)
    );
    assert!(s.poll_transmit().is_none(), "a non-member hears nothing");
    let mut s = fresh();
    let old = enc(&Message::Hello(Hello {
        version: 0,
        group: GROUP,
        proof: vec![],
    }));
    assert_eq!(
        s.handle_message(0, &old, &st),
        Err(SyncError::UnsupportedVersion { found: 0 })
    );
}

/// An initiator that has sent round 2 and been told it lacks `want`.
fn initiator_with_requests(st: &MemoryIndex, want: &[EntryId]) -> Session {
    let empty = MemoryIndex::new();
    let mut s = Session::new(
        Role::Initiator,
        Config::new(GROUP, vec![]),
        Box::new(AcceptAll),
        0,
    );
    while s.poll_transmit().is_some() {}
    s.handle_message(0, &hello(GROUP), &empty).unwrap();
    while s.poll_transmit().is_some() {}
    let _ = st;
    s.handle_message(
        0,
        &round(3, vec![end(Mode::Lacking(want.to_vec()))]),
        &empty,
    )
    .unwrap();
    s
}

#[test]
fn answers_are_checked_against_requests() {
    let st = store();
    let want = vec![st.ids()[0], st.ids()[1]];
    let empty = MemoryIndex::new();

    // An entry nobody asked for.
    let mut s = initiator_with_requests(&st, &want);
    let bogus = enc(&Message::Entries(Entries {
        req: 0,
        entries: vec![Blob(b"not what you asked for".to_vec())],
        missing: vec![],
    }));
    assert_eq!(
        s.handle_message(1, &bogus, &empty),
        Err(SyncError::Unrequested)
    );

    // An answer to a request never made.
    let mut s = initiator_with_requests(&st, &want);
    let unknown = enc(&Message::Entries(Entries {
        req: 77,
        entries: vec![],
        missing: vec![want[0]],
    }));
    assert_eq!(
        s.handle_message(1, &unknown, &empty),
        Err(SyncError::UnknownRequest { req: 77 })
    );

    // An empty answer.
    let mut s = initiator_with_requests(&st, &want);
    let nothing = enc(&Message::Entries(Entries {
        req: 0,
        entries: vec![],
        missing: vec![],
    }));
    assert_eq!(
        s.handle_message(1, &nothing, &empty),
        Err(SyncError::NoProgress)
    );

    // The honest answer is taken, and a repeat of it ignored.
    let mut s = initiator_with_requests(&st, &want);
    let mut sent = Vec::new();
    while let Some(b) = s.poll_transmit() {
        sent.push(Message::decode(&b).unwrap());
    }
    assert!(
        sent.iter()
            .any(|m| matches!(m, Message::Get(g) if g.ids == want))
    );
    let good = enc(&Message::Entries(Entries {
        req: 0,
        entries: want
            .iter()
            .map(|id| Blob(caucus_sync::EntryIndex::get(&st, id).unwrap()))
            .collect(),
        missing: vec![],
    }));
    s.handle_message(1, &good, &empty).unwrap();
    s.handle_message(1, &good, &empty).unwrap();
    let got: Vec<EntryId> = std::iter::from_fn(|| s.poll_event())
        .filter_map(|e| match e {
            Event::Entry { id, .. } => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn a_request_flood_is_cut_off() {
    let st = store();
    let mut s = verified_responder(&st);
    let mut err = None;
    for req in 0..100u32 {
        let get = enc(&Message::Get(Get {
            req,
            ids: vec![st.ids()[req as usize]],
        }));
        // The driver never gets to send the answers out.
        if let Err(e) = s.handle_message(1, &get, &st) {
            err = Some((req, e));
            break;
        }
    }
    let (at, e) = err.unwrap();
    assert_eq!(at as usize, MAX_QUEUED_ANSWERS);
    assert_eq!(
        e,
        SyncError::Flood {
            limit: MAX_QUEUED_ANSWERS
        }
    );
}

#[test]
fn rounds_out_of_sequence_are_refused_and_repeats_answered_again() {
    let st = store();
    let mut s = verified_responder(&st);
    assert_eq!(
        s.handle_message(1, &round(6, vec![end(Mode::Skip)]), &st),
        Err(SyncError::WrongRound {
            expected: 2,
            found: 6
        })
    );
    // A repeated hello (our answer was lost) gets our hello again.
    let mut s = verified_responder(&st);
    s.handle_message(1, &hello(GROUP), &st).unwrap();
    let again = Message::decode(&s.poll_transmit().unwrap()).unwrap();
    assert!(matches!(again, Message::Hello(_)));
}

#[test]
fn a_silent_peer_times_out() {
    let st = store();
    let mut s = Session::new(
        Role::Responder,
        Config {
            retransmit: true,
            ..Config::new(GROUP, vec![])
        },
        Box::new(AcceptAll),
        0,
    );
    s.handle_message(0, &hello(GROUP), &st).unwrap();
    while s.poll_transmit().is_some() {}
    assert_eq!(s.poll_timeout(), Some(2_000));
    s.handle_timeout(1_999).unwrap();
    assert!(s.poll_transmit().is_none(), "not yet");
    let mut now: u64;
    let mut resent = 0;
    let err = loop {
        now = s.poll_timeout().unwrap();
        match s.handle_timeout(now) {
            Ok(()) => {
                while s.poll_transmit().is_some() {
                    resent += 1;
                }
            }
            Err(e) => break e,
        }
    };
    assert_eq!(err, SyncError::Timeout);
    assert_eq!(resent, 4, "our hello, once per retry");
    assert!(now >= 2_000 * (1 + 2 + 4 + 8 + 16));
    assert_eq!(s.poll_timeout(), None);

    // Over a reliable stream nothing is repeated: the timer is an idle timeout.
    let mut s = verified_responder(&st);
    let err = loop {
        let now = s.poll_timeout().unwrap();
        match s.handle_timeout(now) {
            Ok(()) => assert!(s.poll_transmit().is_none()),
            Err(e) => break e,
        }
    };
    assert_eq!(err, SyncError::Timeout);

    // Activity on a slow frame keeps the session alive.
    let mut s = verified_responder(&st);
    for t in (0..200_000).step_by(1_000) {
        s.note_activity(t);
        s.handle_timeout(t).unwrap();
    }
    assert!(!s.is_closed());
}

#[test]
fn announced_needs_are_capped_per_session() {
    let st = store();
    let mut s = verified_responder(&st);
    let mut rng = Rng(5);
    let mut r = 2;
    let per_round = 4000;
    let rounds = MAX_NEEDED_IDS / per_round + 2;
    for _ in 0..rounds {
        // "You lack these" below 0x80…, and a question above so the exchange goes on.
        let mut ids: Vec<EntryId> = (0..per_round)
            .map(|_| {
                let mut b = [0u8; 32];
                for chunk in b.chunks_mut(8) {
                    chunk.copy_from_slice(&rng.next().to_le_bytes());
                }
                b[0] &= 0x7f;
                EntryId(b)
            })
            .collect();
        ids.sort();
        ids.dedup();
        let msg = round(
            r,
            vec![
                WireRange {
                    upper: WireBound::Prefix(vec![0x80]),
                    mode: Mode::Lacking(ids),
                },
                end(Mode::Fingerprint(Fingerprint([rng.next() as u8; 16]))),
            ],
        );
        s.handle_message(1, &msg, &st).unwrap();
        while s.poll_transmit().is_some() {}
        while s.poll_event().is_some() {}
        r += 2;
    }
    let stats = s.stats();
    assert!(stats.needs_deferred > 0, "{stats:?}");
    assert!(!s.is_closed());

    // After a round that asks nothing, reconciliation is over: no more rounds.
    let mut s = verified_responder(&st);
    s.handle_message(1, &round(2, vec![end(Mode::Skip)]), &st)
        .unwrap();
    assert_eq!(
        s.handle_message(1, &round(3, vec![end(Mode::Skip)]), &st),
        Err(SyncError::Unexpected { what: "reconcile" })
    );
}
