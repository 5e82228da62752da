use super::*;
use crate::link::{LinkError, LinkHost, LinkNewDevice, LinkQr, PairingCode};
use crate::seal::{open, seal};

#[test]
fn linking_with_the_right_code_certifies_the_device_and_hands_over_group_keys() {
    let mut r = rng(30);
    let alice = Member::new(&mut r);
    let s0 = EpochSecret::generate(&mut r);
    let mut ring = ring_with(0, &s0);
    ring.insert(1, EpochSecret::generate(&mut r)).unwrap();

    let code = PairingCode::generate(&mut r);
    let shown = code.reveal();
    assert_eq!(shown.len(), 24);
    let typed = PairingCode::parse(&shown.to_lowercase().replace('0', "o")).unwrap();
    assert_eq!(typed, code);

    let laptop = DeviceKeys::generate_unlinked(&mut r);
    let host = LinkHost::new(&code, &mut r).unwrap();
    let (joiner, m1) = LinkNewDevice::start(&typed, &laptop, "laptop", &mut r).unwrap();
    let (issued, m2) = host.respond(&m1, &alice.identity, &[&ring]).unwrap();
    let linked = joiner.finish(&m2).unwrap();
    assert_eq!(linked.cert, issued.cert);
    assert_eq!(linked.identity, alice.identity.public());
    crate::verify_cert(&linked.cert).unwrap();
    let laptop = laptop.with_identity(linked.identity);
    assert_eq!(linked.cert.device, laptop.device_key());

    // The laptop reads what the phone wrote, in both epochs, and writes as Alice.
    let new_ring = &linked.keyrings[0];
    assert_eq!(new_ring.epochs().collect::<Vec<_>>(), vec![0, 1]);
    let mut dir = directory(&[&alice]);
    dir.insert(linked.cert.device, linked.cert.identity);
    let e = seal(
        &group(),
        ring.current().unwrap(),
        &alice.device,
        first(),
        hlc(1),
        note("x"),
        &mut r,
    )
    .unwrap();
    assert!(open(&e, new_ring, &dir).is_ok());
    let e = seal(
        &group(),
        new_ring.current().unwrap(),
        &laptop,
        first(),
        hlc(2),
        note("y"),
        &mut r,
    )
    .unwrap();
    assert_eq!(
        open(&e, &ring, &dir).unwrap().body.author.identity,
        alice.identity.public()
    );
}

#[test]
fn linking_with_a_wrong_code_fails_and_leaks_no_keys() {
    let mut r = rng(31);
    let alice = Member::new(&mut r);
    let ring = ring_with(0, &EpochSecret::generate(&mut r));
    let code = PairingCode::generate(&mut r);
    let wrong = PairingCode::generate(&mut r);
    let host = LinkHost::new(&code, &mut r).unwrap();
    let attacker = DeviceKeys::generate_unlinked(&mut r);
    let (_, m1) = LinkNewDevice::start(&wrong, &attacker, "evil", &mut r).unwrap();
    // The host refuses before producing any reply: there are no bytes to leak.
    assert_eq!(
        host.respond(&m1, &alice.identity, &[&ring]).map(|_| ()),
        Err(LinkError::Handshake)
    );
    // A man in the middle without the code cannot answer the new device either.
    let laptop = DeviceKeys::generate_unlinked(&mut r);
    let (joiner, m1) = LinkNewDevice::start(&code, &laptop, "laptop", &mut r).unwrap();
    let mitm = LinkHost::new(&wrong, &mut r).unwrap();
    assert!(mitm.respond(&m1, &alice.identity, &[&ring]).is_err());
    // A forged reply from someone with another code is refused by the new device.
    let other_host = LinkHost::new(&wrong, &mut r).unwrap();
    let (_, m1_wrong) = LinkNewDevice::start(&wrong, &laptop, "laptop", &mut r).unwrap();
    let (_, reply) = other_host
        .respond(&m1_wrong, &alice.identity, &[&ring])
        .unwrap();
    assert_eq!(joiner.finish(&reply).map(|_| ()), Err(LinkError::Handshake));
    // The host's reply is opaque: the ring's secret bytes do not appear in it.
    let host = LinkHost::new(&code, &mut r).unwrap();
    let (_, m1) = LinkNewDevice::start(&code, &laptop, "laptop", &mut r).unwrap();
    let (_, m2) = host.respond(&m1, &alice.identity, &[&ring]).unwrap();
    let secret = ring.current().unwrap().secret().expose();
    assert!(!m2.windows(32).any(|w| w == secret));
}

#[test]
fn malformed_link_messages_end_the_handshake_with_an_error() {
    let mut r = rng(32);
    let alice = Member::new(&mut r);
    let ring = ring_with(0, &EpochSecret::generate(&mut r));
    let code = PairingCode::generate(&mut r);
    let laptop = DeviceKeys::generate_unlinked(&mut r);
    let (_, m1) = LinkNewDevice::start(&code, &laptop, "laptop", &mut r).unwrap();
    for cut in 0..m1.len() {
        let host = LinkHost::new(&code, &mut r).unwrap();
        assert!(host.respond(&m1[..cut], &alice.identity, &[&ring]).is_err());
    }
    let host = LinkHost::new(&code, &mut r).unwrap();
    assert_eq!(
        host.respond(&vec![0u8; 70_000], &alice.identity, &[&ring])
            .map(|_| ()),
        Err(LinkError::TooLarge)
    );
    let host = LinkHost::new(&code, &mut r).unwrap();
    let (joiner, m1) = LinkNewDevice::start(&code, &laptop, "laptop", &mut r).unwrap();
    let (_, m2) = host.respond(&m1, &alice.identity, &[&ring]).unwrap();
    assert!(joiner.finish(&m2[..m2.len() - 1]).is_err());
}

#[test]
fn pairing_codes_and_qr_payloads_parse_strictly() {
    let mut r = rng(33);
    let code = PairingCode::generate(&mut r);
    for bad in [
        "",
        "K7QF",
        "K7QF-2MZX-9PLD-H3RT-8WNC-AAAA",
        "K7QF-2MZX-9PLD-H3RT-8WNU",
        "😀",
    ] {
        assert_eq!(PairingCode::parse(bad), Err(LinkError::BadCode), "{bad}");
    }
    assert!(PairingCode::parse("k7qf 2mzx 9pld h3rt 8wnc").is_ok());
    assert!(PairingCode::parse(&"A".repeat(1000)).is_err());
    let qr = LinkQr {
        code: code.clone(),
        addresses: vec!["/ip4/192.168.1.4/udp/4001/quic-v1".into()],
    };
    let bytes = qr.to_bytes().unwrap();
    assert_eq!(LinkQr::from_bytes(&bytes).unwrap(), qr);
    assert!(LinkQr::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    assert!(!format!("{qr:?}").contains(&code.reveal()[..4]));
    // 100 bits of entropy: 20 symbols of 5 bits.
    assert_eq!(crate::link::CODE_SYMBOLS * 5, 100);
}
