//! Sample values shared by the vector and robustness tests: one of every message shape.

#![allow(clippy::unwrap_used, dead_code)]

use caucus_proto::*;

pub(crate) fn group() -> GroupId {
    GroupId([0x11; 16])
}

pub(crate) fn author() -> Author {
    Author {
        identity: IdentityKey([0x22; 32]),
        device: DeviceKey([0x33; 32]),
    }
}

pub(crate) fn hlc() -> Hlc {
    // 2026-11-25T09:00:00Z
    Hlc {
        wall_ms: 1_795_597_200_000,
        counter: 3,
    }
}

pub(crate) fn contact() -> ContactId {
    ContactId([0x44; 16])
}

pub(crate) fn notice() -> NoticeId {
    NoticeId([0x55; 16])
}

pub(crate) fn followup() -> FollowupId {
    FollowupId([0x66; 16])
}

pub(crate) fn notice_content(urgent: bool) -> NoticeContent {
    NoticeContent {
        title: "Emergency meeting".into(),
        starts_at_ms: 1_795_633_200_000,
        place: "Union hall, room 2".into(),
        body: "Schedule change on nights; bring your badge.".into(),
        urgent,
        expires_at_ms: Some(1_795_640_400_000),
    }
}

/// One operation of every kind, with the name of its vector.
pub(crate) fn operations() -> Vec<(&'static str, Operation)> {
    let day = Day::from_ymd(2026, 12, 1).unwrap();
    vec![
        (
            "op00-contact-set",
            Operation::ContactSet {
                contact: contact(),
                fields: vec![
                    ContactField::Name("Carmen Yılmaz".into()),
                    ContactField::Department("Stow".into()),
                    ContactField::Shift("Night".into()),
                    ContactField::Job("Tech".into()),
                    ContactField::Handle("+1-718-531-2471".into()),
                    ContactField::Rating(Rating::new(3).unwrap()),
                    ContactField::Tag {
                        tag: "signed card".into(),
                        on: true,
                    },
                    ContactField::AssignedTo("Dana R.".into()),
                ],
            },
        ),
        (
            "op01-note-added",
            Operation::NoteAdded {
                contact: contact(),
                note: Note {
                    text: "Talked at break about mandatory overtime.".into(),
                    date: Some(Day::from_ymd(2026, 7, 20).unwrap()),
                    by: Some("Jamal W.".into()),
                },
            },
        ),
        (
            "op02-followup-set",
            Operation::FollowupSet {
                followup: followup(),
                contact: contact(),
                due: day,
                assignee: "Luis M.".into(),
                task: "Bring the petition in Spanish".into(),
            },
        ),
        (
            "op03-followup-done",
            Operation::FollowupDone {
                followup: followup(),
                done: true,
            },
        ),
        (
            "op04-contact-removed",
            Operation::ContactRemoved { contact: contact() },
        ),
        (
            "op05-notice-posted",
            Operation::NoticePosted {
                notice: notice(),
                content: notice_content(true),
            },
        ),
        (
            "op06-notice-changed",
            Operation::NoticeChanged {
                notice: notice(),
                content: notice_content(false),
            },
        ),
        (
            "op07-notice-cancelled",
            Operation::NoticeCancelled { notice: notice() },
        ),
        (
            "op08-notice-acked",
            Operation::NoticeAcked { notice: notice() },
        ),
        (
            "op09-member-added",
            Operation::MemberAdded {
                member: IdentityKey([0x77; 32]),
                name: "Keisha T.".into(),
                role: Role::Organizer,
            },
        ),
        (
            "op10-member-removed",
            Operation::MemberRemoved {
                member: IdentityKey([0x77; 32]),
                cuts: vec![
                    Cut {
                        device: DeviceKey([0x78; 32]),
                        seq: 4,
                        head: Some(EventId([0x79; 32])),
                    },
                    Cut {
                        device: DeviceKey([0x88; 32]),
                        seq: 0,
                        head: None,
                    },
                ],
            },
        ),
        (
            "op11-role-changed",
            Operation::RoleChanged {
                member: IdentityKey([0x77; 32]),
                role: Role::Admin,
                cuts: vec![Cut {
                    device: DeviceKey([0x78; 32]),
                    seq: 2,
                    head: Some(EventId([0x7a; 32])),
                }],
            },
        ),
        (
            "op12-device-linked",
            Operation::DeviceLinked {
                cert: DeviceCert {
                    identity: IdentityKey([0x22; 32]),
                    device: DeviceKey([0x88; 32]),
                    dh: [0x99; 32],
                    label: "phone".into(),
                    signature: Signature([0xaa; 64]),
                },
            },
        ),
        (
            "op13-device-revoked",
            Operation::DeviceRevoked {
                cut: Cut {
                    device: DeviceKey([0x88; 32]),
                    seq: 5,
                    head: Some(EventId([0x8a; 32])),
                },
            },
        ),
        (
            "op14-epoch-key-delivered",
            Operation::EpochKeyDelivered {
                epoch: 2,
                deliveries: vec![
                    KeyDelivery {
                        device: DeviceKey([0x33; 32]),
                        sealed: vec![0xbb; 80],
                    },
                    KeyDelivery {
                        device: DeviceKey([0x88; 32]),
                        sealed: vec![0xcc; 80],
                    },
                ],
            },
        ),
        (
            "op15-group-named",
            Operation::GroupNamed {
                name: "JFK8 committee".into(),
            },
        ),
        (
            "op16-campaign-set",
            Operation::CampaignSet {
                headcount: 8000,
                target_percent: 70,
            },
        ),
        (
            "op17-records",
            Operation::Records {
                ops: vec![
                    Operation::ContactSet {
                        contact: ContactId([0x44; 16]),
                        fields: vec![ContactField::Name("Ana Ortiz".into())],
                    },
                    Operation::NoteAdded {
                        contact: ContactId([0x44; 16]),
                        note: Note {
                            text: "asked about the petition".into(),
                            date: None,
                            by: None,
                        },
                    },
                ],
            },
        ),
        (
            "op18-notice-delivered",
            Operation::NoticeDelivered {
                notice: NoticeId([0x66; 16]),
                members: vec![IdentityKey([0x22; 32]), IdentityKey([0x77; 32])],
            },
        ),
    ]
}

/// The vector whose body carries [`busy_chain`].
pub(crate) const BUSY_CHAIN_VECTOR: &str = "op10-member-removed";

/// A chain past the device's first entry, made on two concurrent authority heads: the
/// device's third entry, after `5a × 32`, on heads `1a × 32` and `1b × 32`.
pub(crate) fn busy_chain() -> Chain {
    Chain {
        seq: 3,
        prev: Some(EventId([0x5a; 32])),
        heads: vec![EventId([0x1a; 32]), EventId([0x1b; 32])],
    }
}

/// The chain of the body of vector `name`: [`busy_chain`] for [`BUSY_CHAIN_VECTOR`], the
/// device's first entry on no heads for every other.
pub(crate) fn chain_of(name: &str) -> Chain {
    if name == BUSY_CHAIN_VECTOR {
        busy_chain()
    } else {
        Chain::first(vec![])
    }
}

/// A body carrying `op` as the author's first entry.
pub(crate) fn body(op: Operation) -> Body {
    body_with(Chain::first(vec![]), op)
}

/// The body of vector `name`.
pub(crate) fn vector_body(name: &str, op: Operation) -> Body {
    body_with(chain_of(name), op)
}

/// A body carrying `op` at `chain`.
pub(crate) fn body_with(chain: Chain, op: Operation) -> Body {
    Body {
        version: BODY_VERSION,
        author: author(),
        chain,
        hlc: hlc(),
        op,
        signature: Signature([0xee; 64]),
    }
}

pub(crate) fn envelope() -> Envelope {
    Envelope {
        header: EnvelopeHeader {
            version: ENVELOPE_VERSION,
            group: group(),
            epoch: 1,
            nonce: [0x0d; 24],
        },
        ciphertext: (0u8..=99).collect(),
        proof: Signature([0xf0; 64]),
    }
}
