//! The rules of [`Chain`] and [`Cut`]: a body breaking one is refused with its own error
//! when encoding (so no node can sign or send it) and when decoding (so no node accepts
//! it from a peer who framed it by hand), and its event bytes cannot be computed either.

#![allow(clippy::unwrap_used)]

mod common;

use caucus_proto::limits::{MAX_BODY_BYTES, MAX_CUTS, MAX_HEADS};
use caucus_proto::*;

fn id(n: u8) -> EventId {
    EventId([n; 32])
}

fn device(n: u8) -> DeviceKey {
    DeviceKey([n; 32])
}

fn cut(n: u8, seq: u64) -> Cut {
    Cut {
        device: device(n),
        seq,
        head: (seq != 0).then_some(id(n)),
    }
}

/// An authority operation (it may name heads).
fn added() -> Operation {
    Operation::MemberAdded {
        member: IdentityKey([0x77; 32]),
        name: "Keisha T.".into(),
        role: Role::Organizer,
    }
}

/// A content operation (it may not).
fn acked() -> Operation {
    Operation::NoticeAcked {
        notice: common::notice(),
    }
}

fn removed(cuts: Vec<Cut>) -> Operation {
    Operation::MemberRemoved {
        member: IdentityKey([0x77; 32]),
        cuts,
    }
}

fn role_changed(cuts: Vec<Cut>) -> Operation {
    Operation::RoleChanged {
        member: IdentityKey([0x77; 32]),
        role: Role::Admin,
        cuts,
    }
}

/// `body` is refused with `why`: by `encode`, by `event_bytes` (so it cannot be signed)
/// and by `decode` of its bytes framed without the checks.
#[track_caller]
fn refused(body: Body, why: &'static str) {
    assert_eq!(body.encode(), Err(EncodeError::Invalid(why)), "encode");
    assert_eq!(body.event_bytes(), Err(EncodeError::Invalid(why)), "event");
    let raw = codec::encode::<_, MAX_BODY_BYTES>(&body).unwrap();
    assert_eq!(Body::decode(&raw), Err(DecodeError::Invalid(why)), "decode");
}

/// `body` encodes, decodes back to itself, and has an event id.
#[track_caller]
fn accepted(body: Body) {
    let bytes = body.encode().unwrap();
    assert_eq!(Body::decode(&bytes).unwrap(), body);
    assert!(body.event_id().is_ok());
}

fn chain(seq: u64, prev: Option<EventId>, heads: Vec<EventId>) -> Chain {
    Chain { seq, prev, heads }
}

#[test]
fn sequence_numbers_start_at_one() {
    let why = "sequence numbers start at 1";
    refused(common::body_with(chain(0, None, vec![]), acked()), why);
    refused(
        common::body_with(chain(0, Some(id(1)), vec![]), acked()),
        why,
    );
    accepted(common::body_with(chain(1, None, vec![]), acked()));
    accepted(common::body_with(
        chain(u64::MAX, Some(id(1)), vec![]),
        acked(),
    ));
}

#[test]
fn an_entry_names_its_predecessor_exactly_when_it_is_not_the_first() {
    let why = "an entry names its predecessor exactly when it is not its device's first";
    // A first entry naming a predecessor.
    refused(
        common::body_with(chain(1, Some(id(1)), vec![]), acked()),
        why,
    );
    // A later entry naming none.
    refused(common::body_with(chain(2, None, vec![]), acked()), why);
    refused(common::body_with(chain(9, None, vec![id(1)]), added()), why);
    accepted(common::body_with(chain(2, Some(id(1)), vec![]), acked()));
}

#[test]
fn heads_are_sorted_without_repeats_and_at_most_the_limit() {
    let why = "authority heads must be sorted, without repeats";
    refused(
        common::body_with(Chain::first(vec![id(2), id(1)]), added()),
        why,
    );
    refused(
        common::body_with(Chain::first(vec![id(1), id(1)]), added()),
        why,
    );
    accepted(common::body_with(Chain::first(vec![id(1), id(2)]), added()));
    // The limit, then one more (sorted, so only the count is wrong).
    let at_limit: Vec<EventId> = (0..MAX_HEADS as u8).map(id).collect();
    accepted(common::body_with(Chain::first(at_limit), added()));
    let over: Vec<EventId> = (0..=MAX_HEADS as u8).map(id).collect();
    refused(
        common::body_with(Chain::first(over), added()),
        "too many authority heads",
    );
}

#[test]
fn only_authority_entries_name_heads() {
    let why = "only authority entries name authority heads";
    refused(common::body_with(Chain::first(vec![id(1)]), acked()), why);
    // Not even a records entry, nor a later entry.
    let records = Operation::Records {
        ops: vec![Operation::FollowupDone {
            followup: common::followup(),
            done: true,
        }],
    };
    refused(common::body_with(Chain::first(vec![id(1)]), records), why);
    refused(
        common::body_with(chain(4, Some(id(3)), vec![id(1)]), acked()),
        why,
    );
    // Every operation the protocol calls authority may name heads; no other may.
    for (name, op) in common::operations() {
        let body = common::body_with(Chain::first(vec![id(1)]), op.clone());
        if op.is_authority() {
            accepted(body);
        } else {
            refused(body, why);
        }
        assert_eq!(
            op.is_authority(),
            [
                "op09-member-added",
                "op10-member-removed",
                "op11-role-changed",
                "op12-device-linked",
                "op13-device-revoked",
                "op14-epoch-key-delivered"
            ]
            .contains(&name),
            "{name}"
        );
    }
}

#[test]
fn a_cut_names_a_head_exactly_when_its_sequence_number_is_not_zero() {
    let why = "a cut names a head exactly when its sequence number is not 0";
    let seq0_with_head = Cut {
        device: device(1),
        seq: 0,
        head: Some(id(1)),
    };
    let seq2_without = Cut {
        device: device(1),
        seq: 2,
        head: None,
    };
    for bad in [seq0_with_head, seq2_without] {
        refused(common::body(removed(vec![bad])), why);
        refused(common::body(role_changed(vec![bad])), why);
        refused(common::body(Operation::DeviceRevoked { cut: bad }), why);
        // Among valid cuts too.
        let mut cuts = vec![cut(0, 3), bad, cut(2, 0)];
        cuts.sort();
        refused(common::body(removed(cuts)), why);
    }
    // A device the writer saw nothing of, and one it saw up to entry 7.
    for good in [cut(1, 0), cut(1, 7)] {
        accepted(common::body(removed(vec![good])));
        accepted(common::body(role_changed(vec![good])));
        accepted(common::body(Operation::DeviceRevoked { cut: good }));
    }
}

#[test]
fn cuts_are_sorted_by_device_without_repeats_and_at_most_the_limit() {
    let why = "device cuts must be sorted by device, without repeats";
    let unsorted = vec![cut(2, 1), cut(1, 1)];
    refused(common::body(removed(unsorted.clone())), why);
    refused(common::body(role_changed(unsorted)), why);
    // One device twice, even at different places.
    let repeated = vec![cut(1, 1), cut(1, 2)];
    refused(common::body(removed(repeated.clone())), why);
    refused(common::body(role_changed(repeated)), why);
    accepted(common::body(removed(vec![cut(1, 1), cut(2, 0)])));
    accepted(common::body(removed(vec![])));
    // The limit, then one more.
    let at_limit: Vec<Cut> = (0..MAX_CUTS as u8).map(|n| cut(n, 1)).collect();
    accepted(common::body(removed(at_limit)));
    let over: Vec<Cut> = (0..=MAX_CUTS as u8).map(|n| cut(n, 1)).collect();
    refused(common::body(removed(over.clone())), "too many device cuts");
    refused(common::body(role_changed(over)), "too many device cuts");
}

#[test]
fn the_event_id_names_the_event_not_its_signature() {
    let body = common::body_with(chain(3, Some(id(5)), vec![id(1), id(2)]), added());
    let id0 = body.event_id().unwrap();
    let mut other = body.clone();
    other.signature = Signature([0x01; 64]);
    assert_eq!(other.event_id().unwrap(), id0);
    // Every other field changes it, the chain included.
    let mut moved = body.clone();
    moved.chain.seq = 4;
    assert_ne!(moved.event_id().unwrap(), id0);
    let mut moved = body.clone();
    moved.chain.prev = Some(id(6));
    assert_ne!(moved.event_id().unwrap(), id0);
    let mut moved = body.clone();
    moved.chain.heads = vec![id(1)];
    assert_ne!(moved.event_id().unwrap(), id0);
    let mut moved = body.clone();
    moved.hlc.counter += 1;
    assert_ne!(moved.event_id().unwrap(), id0);
    // It is not the hash of the body or its signed bytes: it is derived with its own key.
    let event = body.event_bytes().unwrap();
    assert_eq!(id0, EventId::of_event_bytes(&event));
    assert_ne!(id0.0, *blake3::hash(&event).as_bytes());
    assert_ne!(
        id0,
        EventId::of_event_bytes(&body.signed_bytes(&common::group(), 1).unwrap())
    );
}
