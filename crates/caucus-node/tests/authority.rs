//! Authority at the node: real `Node`s in temporary homes, entries handed between them
//! with `receive` (no network). A clock set an hour ahead neither gets its entry applied
//! nor drags the receiver's clock; a removed member is left out of the new epoch and what
//! it writes after its removal is refused everywhere; revoking the device that holds an
//! identity's key says the identity is compromised.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use caucus_crypto::{DeviceKeys, IdentityKeypair, seal_event};
use caucus_model::{Outcome, Reason};
use caucus_node::{MAX_CLOCK_AHEAD_MS, Node, NodeError, now_ms};
use caucus_proto::{Chain, ContactId, EntryId, EventId, GroupId, Hlc, Operation, Role};
use common::{PASS, contact, envelopes, init, join, link, sync};

const HOUR_MS: u64 = 3_600_000;

/// The clock an applied entry of `node` was stamped with.
fn stamp(node: &Node, group: &GroupId, id: &EntryId) -> Hlc {
    let state = node.state(group).unwrap();
    state.entries().find(|e| e.id == *id).unwrap().hlc
}

/// A member whose entries the test seals by hand (so it sets their clocks): added by
/// the group's founder, its first device introducing itself.
struct ByHand {
    device: DeviceKeys,
    last: Option<(u64, EventId)>,
}

impl ByHand {
    fn add(founder: &mut Node, group: &GroupId) -> ByHand {
        let mut rng = rand::rng();
        let identity = IdentityKeypair::generate(&mut rng);
        let device = DeviceKeys::generate(identity.public(), &mut rng);
        let cert = identity.certify(&device.public(), "phone").unwrap();
        founder
            .write(
                group,
                Operation::MemberAdded {
                    member: identity.public(),
                    name: "by hand".into(),
                    role: Role::Organizer,
                },
            )
            .unwrap();
        let mut member = ByHand { device, last: None };
        let heads = founder.state(group).unwrap().authority_heads().to_vec();
        let linked = member.seal(
            founder,
            group,
            heads,
            now_ms(),
            Operation::DeviceLinked { cert },
        );
        let got = founder.receive(group, vec![linked]).unwrap();
        assert_eq!(got.opened.len(), 1);
        member
    }

    /// The device's next entry, stamped `wall_ms`, sealed under the epoch-1 key `keys_of`
    /// holds.
    fn seal(
        &mut self,
        keys_of: &Node,
        group: &GroupId,
        heads: Vec<EventId>,
        wall_ms: u64,
        op: Operation,
    ) -> Vec<u8> {
        let chain = match self.last {
            None => Chain::first(heads),
            Some((seq, prev)) => Chain {
                seq: seq + 1,
                prev: Some(prev),
                heads,
            },
        };
        let seq = chain.seq;
        let keys = keys_of.keyring(group).unwrap().get(1).unwrap();
        let hlc = Hlc {
            wall_ms,
            counter: 0,
        };
        let (envelope, event) =
            seal_event(group, keys, &self.device, chain, hlc, op, &mut rand::rng()).unwrap();
        self.last = Some((seq, event));
        envelope.encode().unwrap()
    }
}

#[test]
fn an_entry_stamped_an_hour_ahead_waits_and_does_not_move_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let mut alice = init(dir.path(), "alice");
    let g = alice.create_group("committee").unwrap();
    // A member whose device's clock is an hour fast.
    let mut fast = ByHand::add(&mut alice, &g);
    let ahead = now_ms() + HOUR_MS;
    let future = fast.seal(&alice, &g, Vec::new(), ahead, contact(1, "from the future"));
    let future_id = EntryId::of_encoded(&future);

    let got = alice.receive(&g, vec![future.clone()]).unwrap();
    assert_eq!((got.new, got.opened.len(), got.pending), (1, 0, 1));
    let state = alice.state(&g).unwrap();
    assert_eq!(state.status(&future_id), None, "not folded");
    assert!(state.contact(&ContactId([1; 16])).is_none());
    // Kept (without a body), so sync still offers it; received again, still waiting.
    assert!(
        (alice.store().unopened(&g).unwrap().iter()).any(|e| e.id == future_id),
        "stored without a body"
    );
    let again = alice.receive(&g, vec![future.clone()]).unwrap();
    assert_eq!((again.new, again.opened.len(), again.pending), (0, 0, 1));

    // Alice's next own entry is stamped near now, not an hour ahead.
    let before = now_ms();
    let mine = alice.write(&g, contact(2, "written now")).unwrap();
    let t = stamp(&alice, &g, &mine).wall_ms;
    assert!(
        t >= before && t <= now_ms() + 1_000,
        "stamped {t} for a wall clock at {before}"
    );
    assert!(t + MAX_CLOCK_AHEAD_MS < ahead);

    // Reopened, the home still holds it back.
    drop(alice);
    let mut alice = Node::open(&dir.path().join("alice"), PASS).unwrap();
    assert_eq!(alice.state(&g).unwrap().status(&future_id), None);
    let mine = alice.write(&g, contact(3, "after reopening")).unwrap();
    assert!(stamp(&alice, &g, &mine).wall_ms <= now_ms() + 1_000);
}

#[test]
fn a_clock_ahead_within_the_bound_is_applied_and_followed() {
    let dir = tempfile::tempdir().unwrap();
    let mut alice = init(dir.path(), "alice");
    let g = alice.create_group("committee").unwrap();
    let mut member = ByHand::add(&mut alice, &g);
    // Five minutes ahead: a clock that is off, not one that drags the group.
    let ahead = now_ms() + 300_000;
    let entry = member.seal(&alice, &g, Vec::new(), ahead, contact(1, "a little ahead"));
    let id = EntryId::of_encoded(&entry);
    alice.receive(&g, vec![entry]).unwrap();
    assert_eq!(alice.state(&g).unwrap().status(&id), Some(Outcome::Applied));
    // Alice's clock follows what she applied, as a hybrid logical clock does.
    let mine = alice.write(&g, contact(2, "after it")).unwrap();
    assert!(stamp(&alice, &g, &mine) > stamp(&alice, &g, &id));
}

#[test]
fn a_removed_member_is_left_out_of_the_new_epoch_and_refused_after_its_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut alice = init(dir.path(), "alice");
    let mut bob = init(dir.path(), "bob");
    let mut carol = init(dir.path(), "carol");
    let g = alice.create_group("committee").unwrap();
    join(&mut alice, &mut bob, &g);
    join(&mut alice, &mut carol, &g);
    let before = bob.write(&g, contact(1, "before the removal")).unwrap();
    sync(&bob, &mut alice, &g);
    sync(&alice, &mut carol, &g);

    let epoch = alice.remove_member(&g, bob.identity()).unwrap();
    assert_eq!(epoch, 2);
    sync(&alice, &mut carol, &g);
    let state = alice.state(&g).unwrap();
    assert_eq!(state.current_epoch(), 2);
    assert!(state.epoch_settled());
    let winner = state.epoch_winner().expect("a winning delivery of epoch 2");
    assert!(winner.devices().all(|d| d != bob.device_key()));
    assert!(winner.devices().any(|d| d == carol.device_key()));
    assert_eq!(carol.state(&g).unwrap().current_epoch(), 2);
    assert!(!carol.keyring(&g).unwrap().candidates(2).is_empty());

    // Bob, not having heard of it yet, writes: his node seals it (under epoch 1, the
    // only one it knows) at the next place of his chain, beyond the removal's cut.
    let after = bob.write(&g, contact(2, "after the removal")).unwrap();
    let sent: Vec<Vec<u8>> = bob.take_outbox().into_iter().map(|(_, b)| b).collect();
    assert!(!sent.is_empty());
    for node in [&mut alice, &mut carol] {
        node.receive(&g, sent.clone()).unwrap();
        let state = node.state(&g).unwrap();
        assert_eq!(state.status(&before), Some(Outcome::Applied));
        assert_eq!(
            state.status(&after),
            Some(Outcome::Rejected(Reason::BeyondCut))
        );
        assert!(state.contact(&ContactId([2; 16])).is_none());
        assert_eq!(node.refused_counts().get("beyond cut"), Some(&1));
    }

    // Once Bob's node has the removal, it holds no key of the epoch the group is in,
    // and refuses to write at all.
    sync(&alice, &mut bob, &g);
    assert_eq!(bob.state(&g).unwrap().current_epoch(), 2);
    assert!(!bob.state(&g).unwrap().is_member(&bob.identity()));
    assert!(bob.keyring(&g).unwrap().candidates(2).is_empty());
    match bob.write(&g, contact(3, "still trying")) {
        Err(NodeError::Refused(why)) => {
            assert!(why.contains("not given the current epoch's key"), "{why}");
        }
        other => panic!("a removed member's write went through: {other:?}"),
    }
    // Whatever Bob's node still sends (only epoch-1 entries) changes nothing.
    let hash = alice.state(&g).unwrap().state_hash();
    alice.receive(&g, envelopes(&bob, &g)).unwrap();
    assert_eq!(alice.state(&g).unwrap().state_hash(), hash);
    // The group goes on under epoch 2, and Bob's node cannot open it.
    let later = alice.write(&g, contact(4, "for the committee")).unwrap();
    let got = bob.receive(&g, envelopes(&alice, &g)).unwrap();
    assert!(got.opened.iter().all(|e| e.id != later));
    assert!(bob.state(&g).unwrap().status(&later).is_none());

    // Someone who joins after the epoch change was not one of its recipients, but the
    // welcome gave them its key: they write under epoch 2.
    let mut frank = init(dir.path(), "frank");
    join(&mut alice, &mut frank, &g);
    let id = frank.write(&g, contact(5, "new here")).unwrap();
    assert_eq!(
        frank
            .store()
            .entries(&g)
            .unwrap()
            .iter()
            .find(|e| e.id == id)
            .map(|e| e.epoch),
        Some(2)
    );
    sync(&frank, &mut alice, &g);
    assert_eq!(alice.state(&g).unwrap().status(&id), Some(Outcome::Applied));
    let got = bob.receive(&g, envelopes(&frank, &g)).unwrap();
    assert!(got.opened.iter().all(|e| e.id != id));
}

#[test]
fn revoking_the_device_that_holds_the_identity_key_says_the_identity_is_compromised() {
    let dir = tempfile::tempdir().unwrap();
    let mut alice = init(dir.path(), "alice");
    let mut bob = init(dir.path(), "bob");
    let g = alice.create_group("committee").unwrap();
    join(&mut alice, &mut bob, &g);

    // Bob links a phone: his laptop certifies it and records it.
    let phone = link(&mut bob, dir.path(), "bob-phone");
    let cert = phone.cert().clone();
    assert!(!phone.holds_identity());
    sync(&bob, &mut alice, &g);
    let state = alice.state(&g).unwrap();
    assert!(state.device(&bob.device_key()).unwrap().first);
    assert!(!state.device(&cert.device).unwrap().first);

    // The phone holds no identity key: revoking it is just that.
    let revoked = alice.revoke_device(&g, cert.device).unwrap();
    assert_eq!(revoked.epoch, 2);
    assert_eq!(revoked.identity, bob.identity());
    assert!(!revoked.identity_compromised);
    // The laptop does: whoever holds it can certify new devices for Bob.
    let revoked = alice.revoke_device(&g, bob.device_key()).unwrap();
    assert_eq!(revoked.epoch, 3);
    assert_eq!(revoked.identity, bob.identity());
    assert!(revoked.identity_compromised);
    let state = alice.state(&g).unwrap();
    assert!(
        state
            .current_devices()
            .all(|d| d.identity != bob.identity())
    );
    // A device never linked here is a usage error, and nothing is written.
    let entries = alice.store().entry_count(&g).unwrap();
    assert!(matches!(
        alice.revoke_device(&g, caucus_proto::DeviceKey([9; 32])),
        Err(NodeError::Usage(_))
    ));
    assert_eq!(alice.store().entry_count(&g).unwrap(), entries);
}

#[test]
fn concurrent_removals_leave_the_epoch_unsettled_until_an_admin_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut alice = init(dir.path(), "alice");
    let mut bob = init(dir.path(), "bob");
    let mut carol = init(dir.path(), "carol");
    let mut dave = init(dir.path(), "dave");
    let mut erin = init(dir.path(), "erin");
    let g = alice.create_group("committee").unwrap();
    for n in [&mut bob, &mut carol, &mut dave, &mut erin] {
        join(&mut alice, n, &g);
    }
    alice
        .write(
            &g,
            Operation::RoleChanged {
                member: bob.identity(),
                role: Role::Admin,
                cuts: Vec::new(),
            },
        )
        .unwrap();
    for n in [&mut bob, &mut carol, &mut dave, &mut erin] {
        sync(&alice, n, &g);
    }

    // Apart, Alice removes Carol and Bob removes Dave: two deliveries of epoch 2 that
    // reach different devices.
    assert_eq!(alice.remove_member(&g, carol.identity()).unwrap(), 2);
    assert_eq!(bob.remove_member(&g, dave.identity()).unwrap(), 2);
    sync(&bob, &mut alice, &g);
    sync(&alice, &mut bob, &g);
    sync(&alice, &mut erin, &g);
    for n in [&alice, &bob, &erin] {
        let state = n.state(&g).unwrap();
        assert_eq!(state.current_epoch(), 2);
        assert!(!state.epoch_settled());
        assert_eq!(state.epoch_deliveries().get(&2).map(Vec::len), Some(2));
    }

    // An organizer may not write until it is settled.
    match erin.write(&g, contact(1, "while unsettled")) {
        Err(NodeError::Refused(why)) => assert!(why.contains("being settled"), "{why}"),
        other => panic!("written while unsettled: {other:?}"),
    }
    // An admin's next write settles it first: epoch 3, to the current devices only.
    let written = alice.write(&g, contact(2, "settling")).unwrap();
    let state = alice.state(&g).unwrap();
    assert_eq!(state.status(&written), Some(Outcome::Applied));
    assert_eq!(state.current_epoch(), 3);
    assert!(state.epoch_settled());
    let winner = state.epoch_winner().unwrap();
    let mut reached: Vec<_> = winner.devices().collect();
    reached.sort_unstable();
    let mut current = vec![alice.device_key(), bob.device_key(), erin.device_key()];
    current.sort_unstable();
    assert_eq!(reached, current);

    // Now Erin writes again, under epoch 3; the removed never get its key.
    for n in [&mut bob, &mut carol, &mut dave, &mut erin] {
        sync(&alice, n, &g);
    }
    let id = erin.write(&g, contact(3, "settled")).unwrap();
    sync(&erin, &mut alice, &g);
    assert_eq!(alice.state(&g).unwrap().status(&id), Some(Outcome::Applied));
    for n in [&carol, &dave] {
        assert!(n.keyring(&g).unwrap().candidates(3).is_empty());
        assert!(n.state(&g).unwrap().status(&id).is_none());
    }
}
