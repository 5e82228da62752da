use super::*;
use crate::invite::{
    History, InviteId, InviteTicket, JoinError, Joiner, TicketError, accept_join, hello_invite_id,
};
use crate::seal::{open, seal, seal_event};
use caucus_proto::Role;
use std::collections::BTreeSet;

const NOW: u64 = 1_800_000_000_000;
const DAY: u64 = 86_400_000;

fn setup(seed: u64) -> (ChaCha20Rng, Member, Member, Keyring, InviteTicket) {
    let mut r = rng(seed);
    let alice = Member::new(&mut r);
    let joiner = Member::new(&mut r);
    let mut ring = ring_with(0, &EpochSecret::generate(&mut r));
    ring.insert(1, EpochSecret::generate(&mut r)).unwrap();
    let ticket = InviteTicket::create(
        group(),
        vec!["/dns/relay.example/tcp/4001".into()],
        NOW + DAY,
        &mut r,
    )
    .unwrap();
    (r, alice, joiner, ring, ticket)
}

#[test]
fn joining_with_a_ticket_hands_over_the_group_key_and_records_a_signed_membership_entry() {
    let (mut r, alice, joiner, ring, ticket) = setup(40);
    let text = ticket.to_text().unwrap();
    assert!(text.starts_with("caucus1-"));
    let parsed = InviteTicket::parse(&text.to_uppercase()).unwrap();
    assert_eq!(parsed, ticket);
    assert_eq!(
        InviteTicket::from_bytes(&ticket.to_bytes().unwrap()).unwrap(),
        ticket
    );

    let (state, hello) = Joiner::start(&parsed, &joiner.cert, "Sam", NOW, &mut r).unwrap();
    assert_eq!(hello_invite_id(&hello).unwrap(), ticket.id());
    let (accepted, welcome) = accept_join(
        &hello,
        &ticket,
        NOW + 1,
        &BTreeSet::new(),
        &ring,
        History::CurrentOnly,
        &mut r,
    )
    .unwrap();
    assert_eq!(accepted.member, joiner.identity.public());
    assert_eq!(accepted.name, "Sam");
    let joined = state.finish(&welcome).unwrap();
    assert_eq!(joined.group(), group());
    assert_eq!(
        joined.epochs().collect::<Vec<_>>(),
        vec![1],
        "current epoch only"
    );

    // Alice records the join as signed entries; the joiner can read them and write.
    let mut dir = directory(&[&alice]);
    let keys = ring.current().unwrap();
    // The member, then the joiner's device (its certificate checked on open although
    // Alice, not the joiner, carries it), each made on the one before.
    let mut chain = first();
    for op in accepted.operations(Role::Organizer) {
        let (env, id) = seal_event(
            &group(),
            keys,
            &alice.device,
            chain.clone(),
            hlc(1),
            op.clone(),
            &mut r,
        )
        .unwrap();
        let opened = open(&env, &joined, &dir).unwrap();
        assert_eq!(opened.body.op, op);
        assert_eq!(opened.body.author.identity, alice.identity.public());
        assert_eq!(opened.body.chain, chain);
        chain = after(chain.seq + 1, id, vec![id]);
    }
    dir.insert(joiner.device.device_key(), joiner.identity.public());
    let env = seal(
        &group(),
        joined.current().unwrap(),
        &joiner.device,
        first(),
        hlc(2),
        note("hi"),
        &mut r,
    )
    .unwrap();
    assert!(open(&env, &ring, &dir).is_ok());

    // Full history on request.
    let (state, hello) = Joiner::start(&ticket, &joiner.cert, "Sam", NOW, &mut r).unwrap();
    let (_, welcome) = accept_join(
        &hello,
        &ticket,
        NOW,
        &BTreeSet::new(),
        &ring,
        History::Full,
        &mut r,
    )
    .unwrap();
    assert_eq!(state.finish(&welcome).unwrap().epochs().count(), 2);
}

#[test]
fn expired_revoked_or_foreign_invites_are_refused_by_the_member() {
    let (mut r, _alice, joiner, ring, ticket) = setup(41);
    let (_, hello) = Joiner::start(&ticket, &joiner.cert, "Sam", NOW, &mut r).unwrap();
    let none = BTreeSet::new();
    assert_eq!(
        accept_join(
            &hello,
            &ticket,
            NOW + DAY,
            &none,
            &ring,
            History::Full,
            &mut r
        )
        .map(|_| ()),
        Err(JoinError::Expired)
    );
    let revoked: BTreeSet<InviteId> = [ticket.id()].into();
    assert_eq!(
        accept_join(&hello, &ticket, NOW, &revoked, &ring, History::Full, &mut r).map(|_| ()),
        Err(JoinError::Revoked)
    );
    let other = InviteTicket::create(group(), vec![], NOW + DAY, &mut r).unwrap();
    assert_eq!(
        accept_join(&hello, &other, NOW, &none, &ring, History::Full, &mut r).map(|_| ()),
        Err(JoinError::WrongInvite)
    );
    assert_eq!(
        Joiner::start(&ticket, &joiner.cert, "Sam", NOW + DAY, &mut r).map(|_| ()),
        Err(JoinError::Expired)
    );
}

#[test]
fn a_guessed_invite_secret_fails_the_handshake_and_gets_no_key() {
    let (mut r, _alice, joiner, ring, ticket) = setup(42);
    // Mallory knows the group, the addresses and the invite id, not the secret.
    let guess = InviteTicket::create(group(), vec![], NOW + DAY, &mut r).unwrap();
    let (_, hello) = Joiner::start(&guess, &joiner.cert, "M", NOW, &mut r).unwrap();
    // Rewrite the hello to name the real invite id.
    let mut forged = hello.clone();
    let real_id = ticket.id().0;
    let pos = forged.windows(16).position(|w| w == guess.id().0).unwrap();
    forged[pos..pos + 16].copy_from_slice(&real_id);
    assert_eq!(
        accept_join(
            &forged,
            &ticket,
            NOW,
            &BTreeSet::new(),
            &ring,
            History::Full,
            &mut r
        )
        .map(|_| ()),
        Err(JoinError::Handshake)
    );
}

#[test]
fn tickets_parse_with_bounds_and_clear_errors() {
    let (mut r, ..) = setup(43);
    assert_eq!(InviteTicket::parse("hello"), Err(TicketError::Prefix));
    assert_eq!(
        InviteTicket::parse("caucus1-!!!"),
        Err(TicketError::Encoding)
    );
    assert_eq!(
        InviteTicket::parse(&format!("caucus1-{}", "a".repeat(10_000))),
        Err(TicketError::TooLong)
    );
    assert!(matches!(
        InviteTicket::parse("caucus1-aaaa"),
        Err(TicketError::Malformed(_))
    ));
    let t = InviteTicket::create(group(), vec![], NOW, &mut r).unwrap();
    let text = t.to_text().unwrap();
    assert!(InviteTicket::parse(&text[..text.len() - 3]).is_err());
    assert_eq!(
        InviteTicket::create(group(), vec!["x".repeat(500)], NOW, &mut r),
        Err(TicketError::Addresses)
    );
    assert!(!format!("{t:?}").contains(&text[8..20]));
}
