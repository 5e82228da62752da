//! Hostile bytes: every decoder returns a typed error and never panics, on truncations,
//! oversized inputs, wrong versions, random bytes and mutations of valid messages; and
//! every valid message round-trips.

#![allow(clippy::unwrap_used)]

mod common;

use caucus_proto::limits::{
    self, MAX_BODY_BYTES, MAX_ENVELOPE_BYTES, MAX_LONG_TEXT, MAX_SHORT_TEXT,
};
use caucus_proto::*;
use proptest::prelude::*;

/// Decodes `bytes` as every top-level message; panics propagate and fail the test.
fn decode_all(bytes: &[u8]) -> (Result<Envelope, DecodeError>, Result<Body, DecodeError>) {
    (Envelope::decode(bytes), Body::decode(bytes))
}

fn valid_messages() -> Vec<Vec<u8>> {
    let mut out = vec![envelope_bytes()];
    out.extend(body_messages());
    out
}

fn envelope_bytes() -> Vec<u8> {
    common::envelope().encode().unwrap()
}

fn body_messages() -> Vec<Vec<u8>> {
    common::operations()
        .into_iter()
        .map(|(name, op)| common::vector_body(name, op).encode().unwrap())
        .collect()
}

#[test]
fn every_truncation_of_every_valid_message_is_refused() {
    let env = envelope_bytes();
    for cut in 0..env.len() {
        assert!(
            Envelope::decode(&env[..cut]).is_err(),
            "a {cut}-byte envelope prefix decoded"
        );
    }
    for body in body_messages() {
        for cut in 0..body.len() {
            assert!(
                Body::decode(&body[..cut]).is_err(),
                "a {cut}-byte body prefix decoded"
            );
        }
    }
}

#[test]
fn oversized_inputs_are_refused_before_decoding() {
    let mut big = common::envelope().encode().unwrap();
    big.resize(MAX_ENVELOPE_BYTES + 1, 0);
    assert_eq!(
        Envelope::decode(&big),
        Err(DecodeError::TooLarge {
            len: MAX_ENVELOPE_BYTES + 1,
            limit: MAX_ENVELOPE_BYTES
        })
    );
    let mut big = common::body(Operation::GroupNamed { name: "x".into() })
        .encode()
        .unwrap();
    big.resize(MAX_BODY_BYTES + 1, 0);
    assert!(matches!(
        Body::decode(&big),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn a_length_prefix_claiming_more_than_the_limit_is_refused() {
    // A valid envelope prefix up to the ciphertext, then a length of 2^60 bytes.
    let env = common::envelope().encode().unwrap();
    let mut hostile = env[..42].to_vec();
    hostile.push(253);
    hostile.extend_from_slice(&(1u64 << 60).to_le_bytes());
    hostile.extend_from_slice(&[0; 100]);
    let err = Envelope::decode(&hostile).unwrap_err();
    assert!(
        matches!(err, DecodeError::TooLarge { .. } | DecodeError::Truncated),
        "{err:?}"
    );
}

#[test]
fn field_limits_hold_on_encode_and_decode() {
    let long_name = Operation::GroupNamed {
        name: "x".repeat(MAX_SHORT_TEXT + 1),
    };
    assert_eq!(
        common::body(long_name.clone()).encode(),
        Err(EncodeError::Invalid("group name too long"))
    );
    // A body carrying an over-long field is refused by the decoder too.
    let raw = caucus_proto::codec::encode::<_, MAX_BODY_BYTES>(&common::body(long_name)).unwrap();
    assert_eq!(
        Body::decode(&raw),
        Err(DecodeError::Invalid("group name too long"))
    );
    let note = Operation::NoteAdded {
        contact: common::contact(),
        note: Note {
            text: "n".repeat(MAX_LONG_TEXT),
            date: None,
            by: None,
        },
    };
    assert!(
        common::body(note).encode().is_ok(),
        "a note exactly at the limit is fine"
    );
    assert_eq!(
        common::body(Operation::ContactSet {
            contact: common::contact(),
            fields: vec![]
        })
        .encode(),
        Err(EncodeError::Invalid(
            "contact set must carry 1 to 64 fields"
        ))
    );
}

#[test]
fn wrong_versions_are_named() {
    let mut body = common::body(Operation::NoticeAcked {
        notice: common::notice(),
    })
    .encode()
    .unwrap();
    body[0] = 9;
    assert_eq!(
        Body::decode(&body),
        Err(DecodeError::UnsupportedVersion {
            what: "body",
            found: 9,
            supported: BODY_VERSION
        })
    );
    // A body of version 1 (before chains) is refused as such, not misread.
    body[0] = 1;
    assert_eq!(
        Body::decode(&body),
        Err(DecodeError::UnsupportedVersion {
            what: "body",
            found: 1,
            supported: 2
        })
    );
    assert_eq!(Envelope::decode(&[]), Err(DecodeError::Truncated));
}

#[test]
fn random_and_mutated_inputs_never_panic() {
    // 100,000 random inputs of random lengths, and 100,000 mutations of valid messages,
    // from a fixed seed so a failure reproduces.
    let mut rng = SplitMix(0x5eed_cafe);
    let valid = valid_messages();
    let mut bodies = 0usize;
    for i in 0..100_000u32 {
        let len = (rng.next_u32() % 600) as usize;
        let mut bytes = vec![0u8; len];
        rng.fill_bytes(&mut bytes);
        if i % 2 == 0 && !bytes.is_empty() {
            bytes[0] = BODY_VERSION; // get past the body version check half the time
        }
        let (_, b) = decode_all(&bytes);
        bodies += usize::from(b.is_ok());
    }
    for _ in 0..100_000u32 {
        let mut bytes = valid[(rng.next_u32() as usize) % valid.len()].clone();
        for _ in 0..1 + rng.next_u32() % 4 {
            let at = (rng.next_u32() as usize) % bytes.len();
            match rng.next_u32() % 3 {
                0 => bytes[at] = rng.next_u32() as u8,
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, rng.next_u32() as u8),
            }
            if bytes.is_empty() {
                break;
            }
        }
        let (e, b) = decode_all(&bytes);
        // Whatever decodes must be canonical: it re-encodes to the very same bytes.
        if let Ok(env) = e {
            assert_eq!(env.encode().unwrap(), bytes);
        }
        if let Ok(body) = b {
            assert_eq!(body.encode().unwrap(), bytes);
        }
    }
    // Random bytes essentially never form a valid body. (An envelope is mostly opaque bytes,
    // so random input does sometimes frame as one: the membership proof is what refuses it.)
    // The mutations above sometimes decode (a changed byte inside a key or a text), which is
    // fine as long as the result is canonical.
    assert!(bodies < 10, "{bodies} random inputs decoded as a body");
}

/// A tiny seeded generator (SplitMix64) so the fuzz loop needs no extra crate.
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    fn fill_bytes(&mut self, out: &mut [u8]) {
        for b in out {
            *b = self.next_u64() as u8;
        }
    }
}

fn arb_text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 0..8).prop_map(move |cs| {
        let mut s: String = cs.into_iter().collect();
        while s.len() > max {
            s.pop();
        }
        s
    })
}

fn arb_bytes<const N: usize>() -> impl Strategy<Value = [u8; N]> + Clone {
    proptest::collection::vec(any::<u8>(), N).prop_map(|v| {
        let mut a = [0u8; N];
        a.copy_from_slice(&v);
        a
    })
}

fn arb_field() -> impl Strategy<Value = ContactField> {
    prop_oneof![
        arb_text(64).prop_map(ContactField::Name),
        arb_text(64).prop_map(ContactField::Department),
        arb_text(64).prop_map(ContactField::Shift),
        arb_text(64).prop_map(ContactField::Job),
        arb_text(64).prop_map(ContactField::Handle),
        (1u8..=5).prop_map(|r| ContactField::Rating(Rating::new(r).unwrap())),
        (arb_text(64), any::<bool>()).prop_map(|(tag, on)| ContactField::Tag { tag, on }),
        arb_text(64).prop_map(ContactField::AssignedTo),
    ]
}

fn arb_notice() -> impl Strategy<Value = NoticeContent> {
    (
        arb_text(64),
        any::<u64>(),
        arb_text(64),
        arb_text(200),
        any::<bool>(),
        any::<Option<u64>>(),
    )
        .prop_map(
            |(title, starts_at_ms, place, body, urgent, expires_at_ms)| NoticeContent {
                title,
                starts_at_ms,
                place,
                body,
                urgent,
                expires_at_ms,
            },
        )
}

fn arb_role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Admin), Just(Role::Organizer)]
}

fn arb_event() -> impl Strategy<Value = EventId> + Clone {
    arb_bytes::<32>().prop_map(EventId)
}

/// A valid cut: a head exactly when the sequence number is not 0.
fn arb_cut() -> impl Strategy<Value = Cut> {
    (arb_bytes::<32>(), 0u64..1_000_000, arb_event()).prop_map(|(device, seq, head)| Cut {
        device: DeviceKey(device),
        seq,
        head: (seq != 0).then_some(head),
    })
}

/// Valid cuts: sorted by device, no device twice, up to a few beyond the usual.
fn arb_cuts() -> impl Strategy<Value = Vec<Cut>> {
    proptest::collection::vec(arb_cut(), 0..6).prop_map(|cuts| {
        let by_device: std::collections::BTreeMap<_, _> =
            cuts.into_iter().map(|c| (c.device, c)).collect();
        by_device.into_values().collect()
    })
}

/// A valid chain for `op`: `prev` exactly past the first entry, sorted heads without
/// repeats on authority entries only.
fn arb_chain(op: &Operation) -> impl Strategy<Value = Chain> + use<> {
    let authority = op.is_authority();
    (
        prop_oneof![Just(1u64), 2u64..10, any::<u64>().prop_map(|s| s.max(1))],
        arb_event(),
        proptest::collection::btree_set(arb_event(), 0..=limits::MAX_HEADS),
    )
        .prop_map(move |(seq, prev, heads)| Chain {
            seq,
            prev: (seq != 1).then_some(prev),
            heads: if authority {
                heads.into_iter().collect()
            } else {
                vec![]
            },
        })
}

fn arb_op() -> impl Strategy<Value = Operation> {
    let contact = arb_bytes::<16>().prop_map(ContactId);
    let notice = arb_bytes::<16>().prop_map(NoticeId);
    let followup = arb_bytes::<16>().prop_map(FollowupId);
    let member = arb_bytes::<32>().prop_map(IdentityKey);
    let device = arb_bytes::<32>().prop_map(DeviceKey);
    prop_oneof![
        (
            contact.clone(),
            proptest::collection::vec(arb_field(), 1..10)
        )
            .prop_map(|(contact, fields)| Operation::ContactSet { contact, fields }),
        (
            contact.clone(),
            arb_text(300),
            any::<Option<i32>>(),
            proptest::option::of(arb_text(32))
        )
            .prop_map(|(contact, text, date, by)| Operation::NoteAdded {
                contact,
                note: Note {
                    text,
                    date: date.map(Day),
                    by
                }
            }),
        (
            followup.clone(),
            contact.clone(),
            any::<i32>(),
            arb_text(32),
            arb_text(100)
        )
            .prop_map(
                |(followup, contact, due, assignee, task)| Operation::FollowupSet {
                    followup,
                    contact,
                    due: Day(due),
                    assignee,
                    task
                }
            ),
        (followup, any::<bool>())
            .prop_map(|(followup, done)| Operation::FollowupDone { followup, done }),
        contact.prop_map(|contact| Operation::ContactRemoved { contact }),
        (notice.clone(), arb_notice())
            .prop_map(|(notice, content)| Operation::NoticePosted { notice, content }),
        (notice.clone(), arb_notice())
            .prop_map(|(notice, content)| Operation::NoticeChanged { notice, content }),
        notice
            .clone()
            .prop_map(|notice| Operation::NoticeCancelled { notice }),
        notice
            .clone()
            .prop_map(|notice| Operation::NoticeAcked { notice }),
        (
            notice,
            proptest::collection::btree_set(member.clone(), 1..8)
        )
            .prop_map(|(notice, members)| Operation::NoticeDelivered {
                notice,
                members: members.into_iter().collect(),
            }),
        (member.clone(), arb_text(40), arb_role())
            .prop_map(|(member, name, role)| Operation::MemberAdded { member, name, role }),
        (member.clone(), arb_cuts())
            .prop_map(|(member, cuts)| Operation::MemberRemoved { member, cuts }),
        (member.clone(), arb_role(), arb_cuts())
            .prop_map(|(member, role, cuts)| Operation::RoleChanged { member, role, cuts }),
        (
            member,
            device.clone(),
            arb_bytes::<32>(),
            arb_text(20),
            arb_bytes::<64>()
        )
            .prop_map(
                |(identity, device, dh, label, sig)| Operation::DeviceLinked {
                    cert: DeviceCert {
                        identity,
                        device,
                        dh,
                        label,
                        signature: Signature(sig)
                    }
                }
            ),
        arb_cut().prop_map(|cut| Operation::DeviceRevoked { cut }),
        (
            any::<u64>(),
            proptest::collection::vec(
                (device, proptest::collection::vec(any::<u8>(), 0..120)),
                0..5
            )
        )
            .prop_map(|(epoch, ds)| Operation::EpochKeyDelivered {
                epoch,
                deliveries: ds
                    .into_iter()
                    .map(|(device, sealed)| KeyDelivery { device, sealed })
                    .collect()
            }),
        arb_text(64).prop_map(|name| Operation::GroupNamed { name }),
        (any::<u32>(), 0u8..=100).prop_map(|(headcount, target_percent)| Operation::CampaignSet {
            headcount,
            target_percent
        }),
    ]
}

fn arb_body() -> impl Strategy<Value = Body> {
    let op_and_chain = arb_op().prop_flat_map(|op| {
        let chain = arb_chain(&op);
        (Just(op), chain)
    });
    (
        arb_bytes::<32>(),
        arb_bytes::<32>(),
        any::<u64>(),
        any::<u32>(),
        op_and_chain,
        arb_bytes::<64>(),
    )
        .prop_map(
            |(identity, device, wall_ms, counter, (op, chain), sig)| Body {
                version: BODY_VERSION,
                author: Author {
                    identity: IdentityKey(identity),
                    device: DeviceKey(device),
                },
                chain,
                hlc: Hlc { wall_ms, counter },
                op,
                signature: Signature(sig),
            },
        )
}

fn arb_envelope() -> impl Strategy<Value = Envelope> {
    (
        arb_bytes::<16>(),
        any::<u64>(),
        arb_bytes::<24>(),
        proptest::collection::vec(any::<u8>(), 0..2000),
        arb_bytes::<64>(),
    )
        .prop_map(|(group, epoch, nonce, ciphertext, proof)| Envelope {
            header: EnvelopeHeader {
                version: ENVELOPE_VERSION,
                group: GroupId(group),
                epoch,
                nonce,
            },
            ciphertext,
            proof: Signature(proof),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn every_body_round_trips(body in arb_body()) {
        let bytes = body.encode().unwrap();
        prop_assert_eq!(Body::decode(&bytes).unwrap(), body.clone());
        // The signed bytes never collide with the body encoding (domain separation).
        let signed = body.signed_bytes(&GroupId([0; 16]), 0).unwrap();
        prop_assert_ne!(&signed, &bytes);
        // The event bytes are the body without its signature, and end the signed bytes.
        let event = body.event_bytes().unwrap();
        prop_assert_eq!(&event[..], &bytes[..bytes.len() - Signature::LEN]);
        prop_assert!(signed.ends_with(&event));
        prop_assert_eq!(body.event_id().unwrap(), EventId::of_event_bytes(&event));
    }

    #[test]
    fn every_envelope_round_trips(env in arb_envelope()) {
        let bytes = env.encode().unwrap();
        prop_assert!(bytes.starts_with(&env.header.encode()));
        prop_assert_eq!(Envelope::decode(&bytes).unwrap(), env.clone());
        prop_assert_eq!(env.id().unwrap(), EntryId::of_encoded(&bytes));
    }

    #[test]
    fn signed_bytes_bind_group_and_epoch(body in arb_body(), g in arb_bytes::<16>(), e in any::<u64>()) {
        let a = body.signed_bytes(&GroupId(g), e).unwrap();
        let mut g2 = g;
        g2[0] ^= 1;
        prop_assert_ne!(&a, &body.signed_bytes(&GroupId(g2), e).unwrap());
        prop_assert_ne!(&a, &body.signed_bytes(&GroupId(g), e.wrapping_add(1)).unwrap());
    }
}
