use super::*;
use crate::delivery::{
    DeliveryError, EpochCandidate, SEALED_DELIVERY_BYTES, deliver_epoch, open_delivery,
    resolve_epoch,
};
use crate::seal::{OpenError, open, seal, seal_event};
use caucus_proto::{Cut, Envelope, KeyDelivery};
use std::collections::BTreeSet;

/// Alice (admin) removes Carol: a new epoch delivered to Alice and Bob only. Carol keeps
/// every envelope, before and after, and her old keyring.
#[test]
fn removed_member_cannot_open_entries_written_after_removal() {
    let mut r = rng(10);
    let (alice, bob, carol) = (
        Member::new(&mut r),
        Member::new(&mut r),
        Member::new(&mut r),
    );
    let dir = directory(&[&alice, &bob, &carol]);
    let s0 = EpochSecret::generate(&mut r);
    let mut alice_ring = ring_with(0, &s0);
    let mut bob_ring = ring_with(0, &s0);
    let mut carol_ring = ring_with(0, &s0);
    let mut log: Vec<Envelope> = Vec::new();

    let k0 = alice_ring.get(0).unwrap();
    let (env, before) = seal_event(
        &group(),
        k0,
        &carol.device,
        first(),
        hlc(1),
        note("before"),
        &mut r,
    )
    .unwrap();
    log.push(env);
    // The removal cuts Carol's device at the last entry of it Alice had seen.
    let removal = Operation::MemberRemoved {
        member: carol.identity.public(),
        cuts: vec![Cut {
            device: carol.device.device_key(),
            seq: 1,
            head: Some(before),
        }],
    };
    let (env, removed) = seal_event(
        &group(),
        k0,
        &alice.device,
        first(),
        hlc(2),
        removal,
        &mut r,
    )
    .unwrap();
    log.push(env);
    let s1 = EpochSecret::generate(&mut r);
    let op = deliver_epoch(
        &group(),
        1,
        &s1,
        &alice.device.device_key(),
        &[alice.recipient(), bob.recipient()],
        &mut r,
    )
    .unwrap();
    let (delivery_env, delivered) = seal_event(
        &group(),
        k0,
        &alice.device,
        after(2, removed, vec![removed]),
        hlc(3),
        op,
        &mut r,
    )
    .unwrap();
    log.push(delivery_env.clone());

    // Bob opens the delivery entry (sealed under epoch 0) and his own delivery.
    let opened = open(&delivery_env, &bob_ring, &dir).unwrap();
    assert_eq!(opened.body_id.event_id(), delivered);
    assert_eq!(opened.body.chain.prev, Some(removed));
    let candidate = EpochCandidate::from_opened(&opened).unwrap();
    assert_eq!((candidate.parent_epoch, candidate.epoch), (0, 1));
    assert!(!candidate.recipients.contains(&carol.device.device_key()));
    let (e, got) = open_delivery(
        &group(),
        &opened.body.author.device,
        &opened.body.op,
        &bob.device,
    )
    .unwrap();
    assert_eq!((e, &got), (1, &s1));
    bob_ring.insert(1, got).unwrap();
    alice_ring.insert(1, s1.clone()).unwrap();

    // Carol can open the delivery entry (epoch 0) but finds nothing for her.
    let carol_view = open(&delivery_env, &carol_ring, &dir).unwrap();
    assert_eq!(
        open_delivery(
            &group(),
            &alice.device.device_key(),
            &carol_view.body.op,
            &carol.device
        ),
        Err(DeliveryError::NotARecipient)
    );
    // Not even by pretending to be the recipient of someone else's delivery.
    if let Operation::EpochKeyDelivered { epoch, deliveries } = &carol_view.body.op {
        for d in deliveries {
            let relabelled = Operation::EpochKeyDelivered {
                epoch: *epoch,
                deliveries: vec![KeyDelivery {
                    device: carol.device.device_key(),
                    sealed: d.sealed.clone(),
                }],
            };
            assert_eq!(
                open_delivery(
                    &group(),
                    &alice.device.device_key(),
                    &relabelled,
                    &carol.device
                ),
                Err(DeliveryError::Sealed)
            );
        }
    }

    // Everything written after the removal is sealed under epoch 1.
    let k1 = alice_ring.current().unwrap();
    assert_eq!(k1.epoch(), 1);
    let mut prev = delivered;
    for i in 0..5 {
        let (env, id) = seal_event(
            &group(),
            k1,
            &alice.device,
            after(3 + i, prev, vec![]),
            hlc(10 + i),
            note("after"),
            &mut r,
        )
        .unwrap();
        prev = id;
        log.push(env);
    }
    for env in &log {
        let carol_result = open(env, &carol_ring, &dir);
        if env.header.epoch >= 1 {
            assert_eq!(carol_result, Err(OpenError::UnknownEpoch { epoch: 1 }));
            assert!(open(env, &bob_ring, &dir).is_ok());
        } else {
            assert!(carol_result.is_ok());
        }
    }
    // Carol's epoch-0 keys do not open epoch-1 envelopes even if she relabels them.
    for env in log.iter().filter(|e| e.header.epoch == 1) {
        let mut relabelled = env.clone();
        relabelled.header.epoch = 0;
        assert!(open(&relabelled, &carol_ring, &dir).is_err());
    }
    carol_ring.insert(1, EpochSecret::generate(&mut r)).unwrap();
    for env in log.iter().filter(|e| e.header.epoch == 1) {
        assert_eq!(open(env, &carol_ring, &dir), Err(OpenError::BadProof));
    }
}

#[test]
fn revoked_device_cannot_open_entries_written_after_revocation() {
    let mut r = rng(11);
    let alice = Member::new(&mut r);
    let (lost_phone, lost_cert) = alice.second_device(&mut r);
    let bob = Member::new(&mut r);
    let mut dir = directory(&[&alice, &bob]);
    dir.insert(lost_cert.device, lost_cert.identity);
    let s0 = EpochSecret::generate(&mut r);
    let mut ring = ring_with(0, &s0);
    let thief_ring = ring_with(0, &s0);
    let k0 = ring.get(0).unwrap();
    // The thief has written nothing Alice saw: the lost phone is cut before its first entry.
    let revoke = Operation::DeviceRevoked {
        cut: Cut {
            device: lost_cert.device,
            seq: 0,
            head: None,
        },
    };
    let (env, revoked) =
        seal_event(&group(), k0, &alice.device, first(), hlc(1), revoke, &mut r).unwrap();
    let mut log = vec![env];
    let s1 = EpochSecret::generate(&mut r);
    let op = deliver_epoch(
        &group(),
        1,
        &s1,
        &alice.device.device_key(),
        &[alice.recipient(), bob.recipient()],
        &mut r,
    )
    .unwrap();
    log.push(
        seal(
            &group(),
            k0,
            &alice.device,
            after(2, revoked, vec![revoked]),
            hlc(2),
            op.clone(),
            &mut r,
        )
        .unwrap(),
    );
    assert_eq!(
        open_delivery(&group(), &alice.device.device_key(), &op, &lost_phone),
        Err(DeliveryError::NotARecipient)
    );
    ring.insert(1, s1).unwrap();
    let k1 = ring.current().unwrap();
    log.push(
        seal(
            &group(),
            k1,
            &bob.device,
            first(),
            hlc(3),
            note("new plan"),
            &mut r,
        )
        .unwrap(),
    );
    let after = log.last().unwrap();
    assert_eq!(
        open(after, &thief_ring, &dir),
        Err(OpenError::UnknownEpoch { epoch: 1 })
    );
    assert!(open(after, &ring, &dir).is_ok());
}

#[test]
fn a_delivery_does_not_open_outside_its_group_epoch_author_or_recipient() {
    let mut r = rng(12);
    let (alice, bob) = (Member::new(&mut r), Member::new(&mut r));
    let s = EpochSecret::generate(&mut r);
    let author = alice.device.device_key();
    let op = deliver_epoch(&group(), 4, &s, &author, &[bob.recipient()], &mut r).unwrap();
    let Operation::EpochKeyDelivered { deliveries, .. } = &op else {
        panic!("not a delivery");
    };
    assert_eq!(deliveries[0].sealed.len(), SEALED_DELIVERY_BYTES);
    assert_eq!(
        open_delivery(&group(), &author, &op, &bob.device)
            .unwrap()
            .1,
        s
    );
    // Other group, other author, other epoch: refused.
    assert_eq!(
        open_delivery(&GroupId([0; 16]), &author, &op, &bob.device),
        Err(DeliveryError::Sealed)
    );
    assert_eq!(
        open_delivery(&group(), &bob.device.device_key(), &op, &bob.device),
        Err(DeliveryError::Sealed)
    );
    let moved = Operation::EpochKeyDelivered {
        epoch: 5,
        deliveries: deliveries.clone(),
    };
    assert_eq!(
        open_delivery(&group(), &author, &moved, &bob.device),
        Err(DeliveryError::Sealed)
    );
    // Truncated or flipped sealed keys are refused without a panic.
    for n in 0..SEALED_DELIVERY_BYTES {
        let mut d = deliveries.clone();
        d[0].sealed[n] ^= 1;
        let op = Operation::EpochKeyDelivered {
            epoch: 4,
            deliveries: d,
        };
        assert_eq!(
            open_delivery(&group(), &author, &op, &bob.device),
            Err(DeliveryError::Sealed)
        );
        let mut d = deliveries.clone();
        d[0].sealed.truncate(n);
        let op = Operation::EpochKeyDelivered {
            epoch: 4,
            deliveries: d,
        };
        assert_eq!(
            open_delivery(&group(), &author, &op, &bob.device),
            Err(DeliveryError::Sealed)
        );
    }
    assert_eq!(
        open_delivery(&group(), &author, &note("x"), &bob.device),
        Err(DeliveryError::NotADelivery)
    );
}

#[test]
fn epoch_change_for_a_thousand_devices_fits_one_entry() {
    let mut r = rng(13);
    let alice = Member::new(&mut r);
    let recipients: Vec<_> = (0..1000)
        .map(|_| {
            let d = DeviceKeys::generate(IdentityKey([1; 32]), &mut r);
            crate::delivery::Recipient {
                device: d.device_key(),
                dh: d.public().dh,
            }
        })
        .collect();
    let s = EpochSecret::generate(&mut r);
    let op = deliver_epoch(
        &group(),
        1,
        &s,
        &alice.device.device_key(),
        &recipients,
        &mut r,
    )
    .unwrap();
    let ring = ring_with(0, &EpochSecret::generate(&mut r));
    let env = seal(
        &group(),
        ring.current().unwrap(),
        &alice.device,
        first(),
        hlc(1),
        op,
        &mut r,
    )
    .unwrap();
    let bytes = env.encode().unwrap().len();
    assert!(bytes < 200 * 1024, "{bytes} bytes");
}

fn cand(id: u8, author: &Member, recipients: &[&Member]) -> EpochCandidate {
    EpochCandidate {
        body_id: crate::BodyId([id; 32]),
        author: author.device.device_key(),
        parent_epoch: 0,
        epoch: 1,
        recipients: recipients.iter().map(|m| m.device.device_key()).collect(),
    }
}

#[test]
fn concurrent_removals_resolve_deterministically_and_both_take_effect() {
    let mut r = rng(14);
    let [a, b, x, y, z] = std::array::from_fn(|_| Member::new(&mut r));
    // Admin A removes X, admin B removes Y, concurrently at epoch 0.
    let from_a = cand(0x20, &a, &[&a, &b, &y, &z]);
    let from_b = cand(0x10, &b, &[&a, &b, &x, &z]);
    // Both removals are in the model: current devices exclude X and Y.
    let current: BTreeSet<_> = [&a, &b, &z].iter().map(|m| m.device.device_key()).collect();
    let one = resolve_epoch(1, &[from_a.clone(), from_b.clone()], &current).unwrap();
    let two = resolve_epoch(
        1,
        &[from_b.clone(), from_a.clone(), from_b.clone()],
        &current,
    )
    .unwrap();
    assert_eq!(one, two, "order and duplicates do not matter");
    assert_eq!(one.winner, from_b.body_id, "smallest body id wins");
    // The winner still delivered to X (removed by A): a follow-up must exclude X, and A,
    // whose candidate lost, is asked to start it.
    assert_eq!(one.must_exclude, BTreeSet::from([x.device.device_key()]));
    assert_eq!(one.follow_up_by, BTreeSet::from([a.device.device_key()]));
    assert!(!one.is_settled());
    assert!(one.missing.is_empty());
    // Epoch 2 from A (and, racing, from Z after a grace period): both exclude X and Y.
    let mut e2a = cand(0x05, &a, &[&a, &b, &z]);
    e2a.epoch = 2;
    let mut e2z = cand(0x03, &z, &[&a, &b, &z]);
    e2z.epoch = 2;
    let two = resolve_epoch(2, &[e2a, e2z.clone()], &current).unwrap();
    assert_eq!(two.winner, e2z.body_id);
    assert!(two.is_settled());
    assert!(two.follow_up_by.is_empty());
    // A device linked concurrently and left out by the winner is reported as missing.
    let w = Member::new(&mut r);
    let mut with_w = current.clone();
    with_w.insert(w.device.device_key());
    let res = resolve_epoch(1, &[from_a, from_b], &with_w).unwrap();
    assert_eq!(res.missing, BTreeSet::from([w.device.device_key()]));
    assert_eq!(resolve_epoch(9, &[], &current), None);
}

#[test]
fn keyring_keeps_every_candidate_of_a_forked_epoch_and_opens_with_either() {
    let mut r = rng(15);
    let a = Member::new(&mut r);
    let dir = directory(&[&a]);
    let (s_win, s_lose) = (EpochSecret::generate(&mut r), EpochSecret::generate(&mut r));
    let mut ring = Keyring::new(group());
    let lose_id = ring.insert(1, s_lose.clone()).unwrap();
    let win_id = ring.insert(1, s_win.clone()).unwrap();
    assert_eq!(ring.insert(1, s_win.clone()).unwrap(), win_id, "idempotent");
    assert_eq!(ring.current().unwrap().key_id(), lose_id);
    assert!(ring.prefer(1, win_id));
    assert_eq!(ring.current().unwrap().key_id(), win_id);
    let by_loser = seal(
        &group(),
        &crate::EpochKeys::derive(group(), 1, s_lose),
        &a.device,
        first(),
        hlc(1),
        note("l"),
        &mut r,
    )
    .unwrap();
    let by_winner = seal(
        &group(),
        ring.current().unwrap(),
        &a.device,
        first(),
        hlc(2),
        note("w"),
        &mut r,
    )
    .unwrap();
    assert_eq!(open(&by_loser, &ring, &dir).unwrap().key_id, lose_id);
    assert_eq!(open(&by_winner, &ring, &dir).unwrap().key_id, win_id);
    assert_eq!(ring.relay_tokens().len(), 2);
    for _ in 0..6 {
        ring.insert(1, EpochSecret::generate(&mut r)).unwrap();
    }
    assert!(
        ring.insert(1, EpochSecret::generate(&mut r)).is_err(),
        "bounded"
    );
}

/// A sync-session proof verifies under its epoch's relay token only, over its binding
/// only; another epoch's token, another binding or a flipped bit is refused.
#[test]
fn session_proofs_bind_epoch_and_session() {
    let mut r = rng(44);
    let s1 = EpochSecret::generate(&mut r);
    let s2 = EpochSecret::generate(&mut r);
    let k1 = crate::EpochKeys::derive(group(), 1, s1);
    let k2 = crate::EpochKeys::derive(group(), 2, s2);
    let proof = k1.sign_session(b"group|prover|verifier");
    assert_eq!(crate::epoch::session_proof_epoch(&proof), Some(1));
    assert!(
        k1.relay_token()
            .verify_session(b"group|prover|verifier", &proof)
    );
    assert!(
        !k1.relay_token()
            .verify_session(b"group|verifier|prover", &proof)
    );
    assert!(
        !k2.relay_token()
            .verify_session(b"group|prover|verifier", &proof)
    );
    let mut bad = proof.clone();
    bad[20] ^= 1;
    assert!(
        !k1.relay_token()
            .verify_session(b"group|prover|verifier", &bad)
    );
    assert!(
        !k1.relay_token()
            .verify_session(b"group|prover|verifier", &proof[..71])
    );
}

/// The founder set on a keyring survives wrapping at rest and a join welcome.
#[test]
fn the_founder_travels_with_the_keyring() {
    let mut r = rng(45);
    let founder = IdentityKeypair::generate(&mut r).public();
    let mut ring = ring_with(1, &EpochSecret::generate(&mut r));
    ring.set_founder(founder);
    let back = Keyring::from_secret_bytes(&ring.to_secret_bytes().unwrap()).unwrap();
    assert_eq!(back.founder(), Some(founder));
    let shared = crate::epoch::SharedEpochs::from_keyring(&ring, true);
    assert_eq!(shared.into_keyring().unwrap().founder(), Some(founder));
}

/// A relay credential's session proof is accepted as a relay proof of its epoch only,
/// and never as a member's proof; it survives its byte form.
#[test]
fn relay_credentials_prove_relay_sessions_only() {
    let mut r = rng(46);
    let k1 = crate::EpochKeys::derive(group(), 1, EpochSecret::generate(&mut r));
    let k2 = crate::EpochKeys::derive(group(), 2, EpochSecret::generate(&mut r));
    let cred = crate::RelayCredential::from_secret_bytes(&k1.relay_credential().to_secret_bytes());
    let proof = cred.sign_session(b"binding");
    assert!(k1.verify_relay_session(b"binding", &proof));
    assert!(!k1.verify_relay_session(b"other", &proof));
    assert!(!k2.verify_relay_session(b"binding", &proof));
    assert!(!k1.relay_token().verify_session(b"binding", &proof));
    let member = k1.sign_session(b"binding");
    assert!(!k1.verify_relay_session(b"binding", &member));
}
