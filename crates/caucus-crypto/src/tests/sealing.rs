use super::*;
use crate::seal::{OpenError, ReplayGuard, Seen, open, open_batch, seal, seal_event, verify_proof};
use caucus_proto::{
    BODY_VERSION, Body, Envelope, EnvelopeHeader, Signature, codec, limits::MAX_BODY_BYTES,
};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use ed25519_dalek::Signer;

/// What a member holding the epoch key can do by hand: seal any body bytes under any
/// header, with a valid membership proof.
fn insider_seal(keys: &crate::EpochKeys, header: EnvelopeHeader, plaintext: &[u8]) -> Envelope {
    let ad = header.encode();
    let ciphertext = XChaCha20Poly1305::new(&(*keys.content_key()).into())
        .encrypt(
            &XNonce::from(header.nonce),
            Payload {
                msg: plaintext,
                aad: &ad,
            },
        )
        .unwrap();
    reprove(
        keys,
        Envelope {
            header,
            ciphertext,
            proof: Signature([0; 64]),
        },
    )
}

/// Recomputes the membership proof (any member can).
fn reprove(keys: &crate::EpochKeys, mut env: Envelope) -> Envelope {
    let msg = crate::seal::tests_proof_message(&env.header.encode(), &env.ciphertext);
    env.proof = Signature(keys.membership().sign(&msg).to_bytes());
    env
}

/// A body for `author` at the first place of its chain, at group 7.. epoch 0, signed by
/// `signer` (whoever that is: the point of the tests using it).
fn signed_by(signer: &DeviceKeys, author: caucus_proto::Author, op: Operation) -> Body {
    let chain = first();
    let event = Body::event_bytes_for(&author, &chain, &hlc(3), &op).unwrap();
    Body {
        version: BODY_VERSION,
        author,
        chain,
        hlc: hlc(3),
        op,
        signature: signer.sign(&Body::signed_bytes_of(&group(), 0, &event)),
    }
}

fn insider_plaintext(keys: &crate::EpochKeys, env: &Envelope) -> Vec<u8> {
    XChaCha20Poly1305::new(&(*keys.content_key()).into())
        .decrypt(
            &XNonce::from(env.header.nonce),
            Payload {
                msg: &env.ciphertext,
                aad: &env.header.encode(),
            },
        )
        .unwrap()
}

struct World {
    r: ChaCha20Rng,
    alice: Member,
    bob: Member,
    ring: Keyring,
}

fn world() -> World {
    let mut r = rng(1);
    let alice = Member::new(&mut r);
    let bob = Member::new(&mut r);
    let secret = EpochSecret::generate(&mut r);
    World {
        alice,
        bob,
        ring: ring_with(0, &secret),
        r,
    }
}

#[test]
fn sealed_entry_opens_for_members_with_author_and_content() {
    let mut w = world();
    let keys = w.ring.current().unwrap();
    let prev = caucus_proto::EventId([0x3c; 32]);
    let (env, event) = seal_event(
        &group(),
        keys,
        &w.alice.device,
        after(2, prev, vec![]),
        hlc(5),
        note("met Sam at gate 3"),
        &mut w.r,
    )
    .unwrap();
    // Round trip through the wire form.
    let env = Envelope::decode(&env.encode().unwrap()).unwrap();
    let dir = directory(&[&w.alice, &w.bob]);
    let opened = open(&env, &w.ring, &dir).unwrap();
    assert_eq!(opened.body.author, w.alice.device.author());
    assert_eq!(opened.body.chain, after(2, prev, vec![]));
    assert_eq!(opened.body.op, note("met Sam at gate 3"));
    assert_eq!(opened.epoch, 0);
    // The body id is the event id `seal_event` returned, computed from the body alone.
    assert_eq!(opened.body_id.event_id(), event);
    assert_eq!(opened.body.event_id().unwrap(), event);
    // Bob, holding the same keyring, opens it too.
    let bob_ring = Keyring::from_secret_bytes(&w.ring.to_secret_bytes().unwrap()).unwrap();
    assert_eq!(open(&env, &bob_ring, &dir).unwrap(), opened);
    // The ciphertext does not contain the plaintext.
    let bytes = env.encode().unwrap();
    assert!(!bytes.windows(8).any(|win| win == b"met Sam "));
}

#[test]
fn forged_signature_is_rejected_with_its_own_error() {
    let mut w = world();
    let keys = w.ring.current().unwrap();
    let env = seal(
        &group(),
        keys,
        &w.alice.device,
        first(),
        hlc(5),
        note("x"),
        &mut w.r,
    )
    .unwrap();
    // Bob (a member) rewrites Alice's note, keeps her signature, reseals properly.
    let mut body = Body::decode(&insider_plaintext(keys, &env)).unwrap();
    body.op = note("Alice says: meeting cancelled");
    let forged = insider_seal(keys, env.header, &body.encode().unwrap());
    let dir = directory(&[&w.alice, &w.bob]);
    assert_eq!(open(&forged, &w.ring, &dir), Err(OpenError::BadSignature));
    // A random signature also fails.
    body.signature = Signature([9; 64]);
    let forged = insider_seal(keys, env.header, &body.encode().unwrap());
    assert_eq!(open(&forged, &w.ring, &dir), Err(OpenError::BadSignature));
}

#[test]
fn wrong_epoch_is_rejected_with_its_own_error() {
    let mut w = world();
    let mut r2 = rng(99);
    let other = ring_with(5, &EpochSecret::generate(&mut r2));
    let env = seal(
        &group(),
        other.current().unwrap(),
        &w.alice.device,
        first(),
        hlc(1),
        note("x"),
        &mut w.r,
    )
    .unwrap();
    let dir = directory(&[&w.alice]);
    assert_eq!(
        open(&env, &w.ring, &dir),
        Err(OpenError::UnknownEpoch { epoch: 5 })
    );
    // Relabelling the epoch of a real envelope breaks the proof (the header is signed).
    let mut env = seal(
        &group(),
        w.ring.current().unwrap(),
        &w.alice.device,
        first(),
        hlc(1),
        note("x"),
        &mut w.r,
    )
    .unwrap();
    env.header.epoch = 5;
    assert_eq!(open(&env, &other, &dir), Err(OpenError::BadProof));
}

#[test]
fn truncated_ciphertext_is_rejected_with_its_own_error() {
    let mut w = world();
    let keys = w.ring.current().unwrap();
    let dir = directory(&[&w.alice]);
    let env = seal(
        &group(),
        keys,
        &w.alice.device,
        first(),
        hlc(1),
        note("hello"),
        &mut w.r,
    )
    .unwrap();
    // Truncated in transit: the proof no longer matches.
    let mut t = env.clone();
    t.ciphertext.truncate(t.ciphertext.len() - 1);
    assert_eq!(open(&t, &w.ring, &dir), Err(OpenError::BadProof));
    // Truncated by a member who re-proves it: the AEAD catches it.
    for cut in [1, 16, env.ciphertext.len() - 1, env.ciphertext.len()] {
        let mut t = env.clone();
        t.ciphertext.truncate(env.ciphertext.len() - cut);
        let t = reprove(keys, t);
        assert_eq!(open(&t, &w.ring, &dir), Err(OpenError::Aead), "cut {cut}");
    }
}

#[test]
fn swapped_associated_data_is_rejected_with_its_own_error() {
    let mut w = world();
    let keys = w.ring.current().unwrap();
    let dir = directory(&[&w.alice]);
    let a = seal(
        &group(),
        keys,
        &w.alice.device,
        first(),
        hlc(1),
        note("a"),
        &mut w.r,
    )
    .unwrap();
    let b = seal(
        &group(),
        keys,
        &w.alice.device,
        first(),
        hlc(2),
        note("b"),
        &mut w.r,
    )
    .unwrap();
    // Swap headers between two envelopes; a member re-proves so only the AEAD is left.
    let swapped = reprove(
        keys,
        Envelope {
            header: b.header,
            ciphertext: a.ciphertext.clone(),
            proof: a.proof,
        },
    );
    assert_eq!(open(&swapped, &w.ring, &dir), Err(OpenError::Aead));
    // Without re-proving, the proof already fails.
    let swapped = Envelope {
        header: b.header,
        ciphertext: a.ciphertext,
        proof: a.proof,
    };
    assert_eq!(open(&swapped, &w.ring, &dir), Err(OpenError::BadProof));
}

#[test]
fn malformed_body_is_rejected_with_its_own_error() {
    let mut w = world();
    let keys = w.ring.current().unwrap();
    let dir = directory(&[&w.alice]);
    let header = EnvelopeHeader {
        version: 1,
        group: group(),
        epoch: 0,
        nonce: [3; 24],
    };
    for junk in [&b""[..], &[BODY_VERSION, 0xff, 0xff][..], &[9u8; 40][..]] {
        let env = insider_seal(keys, header, junk);
        assert!(matches!(
            open(&env, &w.ring, &dir),
            Err(OpenError::MalformedBody(_))
        ));
    }
    let _ = &mut w.r;
}

#[test]
fn replayed_entry_is_detected_and_identical_copy_is_idempotent() {
    let mut w = world();
    let keys = w.ring.current().unwrap();
    let dir = directory(&[&w.alice, &w.bob]);
    let env = seal(
        &group(),
        keys,
        &w.alice.device,
        first(),
        hlc(1),
        note("rally"),
        &mut w.r,
    )
    .unwrap();
    let mut guard = ReplayGuard::new();
    let opened = open(&env, &w.ring, &dir).unwrap();
    let id = env.id().unwrap();
    assert_eq!(guard.check(&opened, id), Ok(Seen::New));
    // Receiving the same envelope again: same entry, not an error.
    let again = open(&env, &w.ring, &dir).unwrap();
    assert_eq!(guard.check(&again, id), Ok(Seen::Duplicate));
    // Bob re-seals Alice's signed body with a fresh nonce: a new entry id, same body.
    let plaintext = insider_plaintext(keys, &env);
    let mut header = env.header;
    header.nonce = [42; 24];
    let resealed = insider_seal(keys, header, &plaintext);
    assert_ne!(resealed.id().unwrap(), id);
    let reopened = open(&resealed, &w.ring, &dir).unwrap();
    assert_eq!(reopened.body_id, opened.body_id);
    assert_eq!(
        guard.check(&reopened, resealed.id().unwrap()),
        Err(OpenError::Replayed { original: id })
    );
    assert_eq!(
        guard.len(),
        1,
        "a rejected replay leaves the guard unchanged"
    );
    // Re-sealed into another epoch: the body signature is bound to the epoch.
    let mut r2 = rng(5);
    let mut ring2 = Keyring::new(group());
    ring2.insert(0, keys.secret().clone()).unwrap();
    ring2.insert(1, EpochSecret::generate(&mut r2)).unwrap();
    let k1 = ring2.get(1).unwrap();
    let moved = insider_seal(k1, EnvelopeHeader { epoch: 1, ..header }, &plaintext);
    assert_eq!(open(&moved, &ring2, &dir), Err(OpenError::BadSignature));
}

#[test]
fn member_cannot_author_an_entry_appearing_to_come_from_another_member() {
    let mut w = world();
    let keys = w.ring.current().unwrap();
    let dir = directory(&[&w.alice, &w.bob]);
    let op = note("Alice: I quit the committee");
    // 1. Bob claims Alice's identity but signs with his own device.
    let author = caucus_proto::Author {
        identity: w.alice.identity.public(),
        device: w.bob.device.device_key(),
    };
    let body = signed_by(&w.bob.device, author, op.clone());
    let header = EnvelopeHeader {
        version: 1,
        group: group(),
        epoch: 0,
        nonce: [1; 24],
    };
    let env = insider_seal(keys, header, &body.encode().unwrap());
    assert_eq!(open(&env, &w.ring, &dir), Err(OpenError::AuthorMismatch));
    // 2. Bob claims Alice's device too: his signature does not verify under her key.
    let author = w.alice.device.author();
    let body = signed_by(&w.bob.device, author, op.clone());
    let env = insider_seal(keys, header, &body.encode().unwrap());
    assert_eq!(open(&env, &w.ring, &dir), Err(OpenError::BadSignature));
    // 3. Bob links a device of his to Alice's identity with his own certificate.
    let (dev, _) = w.bob.second_device(&mut w.r);
    let fake_cert = w.bob.identity.certify(&dev.public(), "x").unwrap();
    let mut fake_cert_alice = fake_cert.clone();
    fake_cert_alice.identity = w.alice.identity.public();
    let env = seal(
        &group(),
        keys,
        &dev.with_identity(w.alice.identity.public()),
        first(),
        hlc(4),
        Operation::DeviceLinked {
            cert: fake_cert_alice,
        },
        &mut w.r,
    )
    .unwrap();
    assert_eq!(open(&env, &w.ring, &dir), Err(OpenError::BadCertificate));
    // 4. With his own, genuine certificate, the device is his, not Alice's.
    let (dev, cert) = w.bob.second_device(&mut w.r);
    let env = seal(
        &group(),
        keys,
        &dev.with_identity(w.alice.identity.public()),
        first(),
        hlc(4),
        Operation::DeviceLinked { cert },
        &mut w.r,
    )
    .unwrap();
    assert_eq!(open(&env, &w.ring, &dir), Err(OpenError::AuthorMismatch));
}

/// An admin may link a device to another member (a join: the member's certificate,
/// carried in the admin's entry), but only with a certificate that member's identity
/// signed: otherwise the admin could bind a device (or an X25519 key receiving every
/// new epoch key) to someone else's name. Every certificate is checked on open, by
/// `open` and `open_batch` alike, whoever carries it and whether the device is known.
#[test]
fn an_admin_cannot_link_a_device_to_another_member_without_their_certificate() {
    let mut w = world();
    let keys = w.ring.current().unwrap();
    let (bob_laptop, genuine) = w.bob.second_device(&mut w.r);
    // A garbage signature on a certificate naming Bob's identity.
    let mut garbage = genuine.clone();
    garbage.signature = Signature([0x5a; 64]);
    // Bob's real certificate, its X25519 key swapped for one Alice holds the secret of
    // (new epoch keys sealed to the laptop would go to her).
    let alice_dh = DeviceKeys::generate(w.alice.identity.public(), &mut w.r)
        .public()
        .dh;
    let mut swapped = genuine.clone();
    swapped.dh = alice_dh;
    assert_ne!(swapped.dh, genuine.dh);
    for cert in [&garbage, &swapped] {
        assert!(crate::verify_cert(cert).is_err());
        assert_eq!(cert.identity, w.bob.identity.public());
    }
    crate::verify_cert(&genuine).unwrap();
    // Alice (known, signing properly as herself) seals each as her own entry.
    let envs: Vec<Envelope> = [garbage, swapped, genuine.clone()]
        .into_iter()
        .map(|cert| {
            seal(
                &group(),
                keys,
                &w.alice.device,
                first(),
                hlc(7),
                Operation::DeviceLinked { cert },
                &mut w.r,
            )
            .unwrap()
        })
        .collect();
    // Whether the directory already knows Bob's laptop or not.
    let mut knows_laptop = directory(&[&w.alice, &w.bob]);
    knows_laptop.insert(bob_laptop.device_key(), w.bob.identity.public());
    for dir in [directory(&[&w.alice, &w.bob]), knows_laptop] {
        assert_eq!(
            open(&envs[0], &w.ring, &dir),
            Err(OpenError::BadCertificate)
        );
        assert_eq!(
            open(&envs[1], &w.ring, &dir),
            Err(OpenError::BadCertificate)
        );
        let opened = open(&envs[2], &w.ring, &dir).unwrap();
        assert_eq!(opened.body.author, w.alice.device.author());
        assert_eq!(
            opened.body.op,
            Operation::DeviceLinked {
                cert: genuine.clone()
            }
        );
        // In a batch whose signatures all verify together...
        let batch = open_batch(&envs, &w.ring, &dir);
        assert_eq!(batch[0], Err(OpenError::BadCertificate));
        assert_eq!(batch[1], Err(OpenError::BadCertificate));
        assert_eq!(batch[2].as_ref(), Ok(&opened));
        // ...and in one that falls back to checking each entry alone.
        let mut spoiled = envs.clone();
        spoiled.push(Envelope {
            proof: Signature([0; 64]),
            ..envs[2].clone()
        });
        let batch = open_batch(&spoiled, &w.ring, &dir);
        assert_eq!(batch[0], Err(OpenError::BadCertificate));
        assert_eq!(batch[1], Err(OpenError::BadCertificate));
        assert_eq!(batch[2].as_ref(), Ok(&opened));
        assert_eq!(batch[3], Err(OpenError::BadProof));
    }
}

#[test]
fn unknown_device_is_pending_until_its_certificate_and_self_linking_entry_opens() {
    let mut w = world();
    let keys = w.ring.current().unwrap();
    let (laptop, cert) = w.alice.second_device(&mut w.r);
    let dir = directory(&[&w.alice]);
    let e = seal(
        &group(),
        keys,
        &laptop,
        first(),
        hlc(1),
        note("from laptop"),
        &mut w.r,
    )
    .unwrap();
    assert_eq!(open(&e, &w.ring, &dir), Err(OpenError::UnknownDevice));
    let link = seal(
        &group(),
        keys,
        &laptop,
        first(),
        hlc(1),
        Operation::DeviceLinked { cert: cert.clone() },
        &mut w.r,
    )
    .unwrap();
    assert!(open(&link, &w.ring, &dir).is_ok());
    let mut dir = dir;
    dir.insert(cert.device, cert.identity);
    assert!(open(&e, &w.ring, &dir).is_ok());
}

#[test]
fn relay_check_accepts_members_and_rejects_non_members() {
    let mut w = world();
    let keys = w.ring.current().unwrap();
    let token = keys.relay_token();
    for (i, m) in [&w.alice, &w.bob].into_iter().enumerate() {
        let env = seal(
            &group(),
            keys,
            &m.device,
            first(),
            hlc(i as u64),
            note("hi"),
            &mut w.r,
        )
        .unwrap();
        assert_eq!(verify_proof(&env, &token), Ok(()));
    }
    // A non-member knows the group id and epoch but not the secret.
    let mut r2 = rng(77);
    let mallory = Member::new(&mut r2);
    let guess = ring_with(0, &EpochSecret::generate(&mut r2));
    let env = seal(
        &group(),
        guess.current().unwrap(),
        &mallory.device,
        first(),
        hlc(1),
        note("spam"),
        &mut r2,
    )
    .unwrap();
    assert_eq!(verify_proof(&env, &token), Err(OpenError::BadProof));
    // Nor can they reuse a member's proof on their own ciphertext.
    let good = seal(
        &group(),
        keys,
        &w.alice.device,
        first(),
        hlc(1),
        note("hi"),
        &mut w.r,
    )
    .unwrap();
    let stolen = Envelope {
        proof: good.proof,
        ..env
    };
    assert_eq!(verify_proof(&stolen, &token), Err(OpenError::BadProof));
    // The token does not identify the author: the same key proves for every member.
    assert_eq!(token.key, keys.membership_public().to_bytes());
    // A token for another epoch does not accept it.
    let mut other = token;
    other.epoch = 1;
    assert!(matches!(
        verify_proof(&good, &other),
        Err(OpenError::UnknownEpoch { .. })
    ));
}

#[test]
fn batch_open_agrees_with_single_open() {
    let mut w = world();
    let keys = w.ring.current().unwrap();
    let dir = directory(&[&w.alice, &w.bob]);
    // Twenty entries of one device, each naming the one before.
    let mut envs: Vec<Envelope> = Vec::new();
    let mut chain = first();
    for i in 0..20 {
        let (env, id) = seal_event(
            &group(),
            keys,
            &w.alice.device,
            chain.clone(),
            hlc(i),
            note(&format!("n{i}")),
            &mut w.r,
        )
        .unwrap();
        envs.push(env);
        chain = after(i + 2, id, vec![]);
    }
    let all = open_batch(&envs, &w.ring, &dir);
    assert!(all.iter().all(Result::is_ok));
    for pair in all.windows(2) {
        let (a, b) = (pair[0].as_ref().unwrap(), pair[1].as_ref().unwrap());
        assert_eq!(b.body.chain.prev, Some(a.body_id.event_id()));
        assert_eq!(b.body.chain.seq, a.body.chain.seq + 1);
    }
    // Spoil some, in different ways.
    envs[3].proof = Signature([0; 64]);
    envs[7].ciphertext.pop();
    let mut body = Body::decode(&insider_plaintext(keys, &envs[11])).unwrap();
    body.op = note("forged");
    envs[11] = insider_seal(keys, envs[11].header, &body.encode().unwrap());
    let batch = open_batch(&envs, &w.ring, &dir);
    for (env, got) in envs.iter().zip(&batch) {
        assert_eq!(got, &open(env, &w.ring, &dir));
    }
    assert_eq!(batch[3], Err(OpenError::BadProof));
    assert_eq!(batch[7], Err(OpenError::BadProof));
    assert_eq!(batch[11], Err(OpenError::BadSignature));
    assert_eq!(batch.iter().filter(|r| r.is_ok()).count(), 17);
}

#[test]
fn oversized_body_cannot_be_sealed_and_wrong_group_is_refused() {
    let mut w = world();
    let keys = w.ring.current().unwrap();
    let big = Operation::NoteAdded {
        contact: ContactId([1; 16]),
        note: Note {
            text: "x".repeat(MAX_BODY_BYTES),
            date: None,
            by: None,
        },
    };
    assert!(
        seal(
            &group(),
            keys,
            &w.alice.device,
            first(),
            hlc(1),
            big,
            &mut w.r
        )
        .is_err()
    );
    assert_eq!(
        seal(
            &GroupId([1; 16]),
            keys,
            &w.alice.device,
            first(),
            hlc(1),
            note("x"),
            &mut w.r
        ),
        Err(crate::SealError::WrongGroup)
    );
    let env = seal(
        &group(),
        keys,
        &w.alice.device,
        first(),
        hlc(1),
        note("x"),
        &mut w.r,
    )
    .unwrap();
    let mut other = Keyring::new(GroupId([1; 16]));
    other.insert(0, keys.secret().clone()).unwrap();
    assert_eq!(
        open(&env, &other, &directory(&[&w.alice])),
        Err(OpenError::WrongGroup)
    );
    let _ = codec::encode::<u8, 1>;
}

#[test]
fn secrets_never_show_in_debug_output() {
    let mut r = rng(3);
    let m = Member::new(&mut r);
    let secret = EpochSecret::generate(&mut r);
    let ring = ring_with(0, &secret);
    let hex: String = secret.expose()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let dumps = [
        format!("{secret:?}"),
        format!("{ring:?}"),
        format!("{:?}", ring.current().unwrap()),
        format!("{:?}", m.device),
        format!("{:?}", m.identity),
    ];
    for d in &dumps {
        assert!(!d.contains(&hex), "{d}");
    }
    let seed_hex: String = m.identity.to_secret_bytes()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(!format!("{:?}", m.identity).contains(&seed_hex));
    assert!(format!("{secret:?}").contains("redacted"));
}

#[test]
fn relay_learns_the_next_epoch_token_from_an_update_signed_by_the_previous_one() {
    let mut w = world();
    let k0 = w.ring.get(0).unwrap();
    let t0 = k0.relay_token();
    let k1 = crate::EpochKeys::derive(group(), 1, EpochSecret::generate(&mut w.r));
    let update = crate::RelayTokenUpdate::new(k0, &k1);
    let update = crate::RelayTokenUpdate::from_bytes(&update.to_bytes()).unwrap();
    let t1 = update.verify(&t0).unwrap();
    assert_eq!(t1, k1.relay_token());
    let env = seal(
        &group(),
        &k1,
        &w.alice.device,
        first(),
        hlc(1),
        note("x"),
        &mut w.r,
    )
    .unwrap();
    assert_eq!(verify_proof(&env, &t1), Ok(()));
    // An outsider cannot vouch for a token.
    let mut r2 = rng(8);
    let fake_parent = crate::EpochKeys::derive(group(), 0, EpochSecret::generate(&mut r2));
    let forged = crate::RelayTokenUpdate::new(&fake_parent, &k1);
    assert_eq!(
        forged.verify(&t0),
        Err(crate::epoch::TokenUpdateError::BadSignature)
    );
    // Nor replay an update against a later token.
    assert_eq!(
        update.verify(&t1),
        Err(crate::epoch::TokenUpdateError::NotAChild)
    );
}

#[test]
fn certificates_with_small_order_or_torsion_keys_are_refused() {
    let mut r = rng(4);
    let m = Member::new(&mut r);
    crate::verify_cert(&m.cert).unwrap();
    let mut bad = m.cert.clone();
    // The identity point (encoding of the neutral element, small order).
    let mut identity_point = [0u8; 32];
    identity_point[0] = 1;
    bad.device = caucus_proto::DeviceKey(identity_point);
    assert_eq!(
        crate::verify_cert(&bad),
        Err(crate::keys::CertError::BadDeviceKey)
    );
    // A real key plus a point of order 2 ((0, -1)): mixed order, not torsion-free.
    let real = ed25519_dalek::VerifyingKey::from_bytes(&m.cert.device.0)
        .unwrap()
        .to_edwards();
    let mut minus_one = [0u8; 32];
    minus_one[0] = 0xec;
    minus_one[1..31].fill(0xff);
    minus_one[31] = 0x7f;
    let t = ed25519_dalek::VerifyingKey::from_bytes(&minus_one)
        .unwrap()
        .to_edwards();
    let mixed = (real + t).compress().to_bytes();
    let mut bad = m.cert.clone();
    bad.device = caucus_proto::DeviceKey(mixed);
    assert_eq!(
        crate::verify_cert(&bad),
        Err(crate::keys::CertError::BadDeviceKey)
    );
    let mut bad = m.cert.clone();
    bad.dh = [0; 32];
    assert_eq!(
        crate::verify_cert(&bad),
        Err(crate::keys::CertError::BadDhKey)
    );
    let mut bad = m.cert.clone();
    bad.label = "other".into();
    assert_eq!(
        crate::verify_cert(&bad),
        Err(crate::keys::CertError::BadSignature)
    );
}
