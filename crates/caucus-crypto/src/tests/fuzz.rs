//! Random and mutated bytes into every parser and handshake step: errors, never panics.

use super::*;
use crate::at_rest::WrappedSecret;
use crate::delivery::open_delivery;
use crate::invite::{History, InviteTicket, Joiner, accept_join, hello_invite_id};
use crate::link::{LinkHost, LinkNewDevice, LinkQr, PairingCode};
use caucus_proto::KeyDelivery;
use proptest::prelude::*;
use std::collections::BTreeSet;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_any_parser_or_handshake(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        seed in any::<u64>(),
    ) {
        let mut r = rng(seed);
        let alice = Member::new(&mut r);
        let ring = ring_with(0, &EpochSecret::generate(&mut r));
        let code = PairingCode::generate(&mut r);
        let host = LinkHost::new(&code, &mut r).unwrap();
        prop_assert!(host.respond(&bytes, &alice.identity, &[&ring]).is_err());
        let laptop = DeviceKeys::generate_unlinked(&mut r);
        let (joiner, _) = LinkNewDevice::start(&code, &laptop, "l", &mut r).unwrap();
        prop_assert!(joiner.finish(&bytes).is_err());
        let ticket = InviteTicket::create(group(), vec![], u64::MAX, &mut r).unwrap();
        prop_assert!(accept_join(&bytes, &ticket, 0, &BTreeSet::new(), &ring, History::Full, &mut r).is_err());
        let (j, _) = Joiner::start(&ticket, &alice.cert, "a", 0, &mut r).unwrap();
        prop_assert!(j.finish(&bytes).is_err());
        let _ = hello_invite_id(&bytes);
        let _ = InviteTicket::from_bytes(&bytes);
        let _ = InviteTicket::parse(&String::from_utf8_lossy(&bytes));
        let _ = LinkQr::from_bytes(&bytes);
        let _ = PairingCode::parse(&String::from_utf8_lossy(&bytes));
        let _ = WrappedSecret::from_bytes(&bytes);
        let _ = Keyring::from_secret_bytes(&bytes);
        let _ = DeviceKeys::from_secret_bytes(&bytes);
        let op = Operation::EpochKeyDelivered {
            epoch: 1,
            deliveries: vec![KeyDelivery { device: alice.device.device_key(), sealed: bytes.clone() }],
        };
        prop_assert!(open_delivery(&group(), &alice.device.device_key(), &op, &alice.device).is_err());
        if let Ok(env) = caucus_proto::Envelope::decode(&bytes) {
            prop_assert!(crate::open(&env, &ring, &directory(&[&alice])).is_err());
        }
    }

    #[test]
    fn mutated_handshake_messages_fail_cleanly(
        seed in any::<u64>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut r = rng(seed);
        let alice = Member::new(&mut r);
        let ring = ring_with(0, &EpochSecret::generate(&mut r));
        // Join hello, mutated.
        let ticket = InviteTicket::create(group(), vec![], u64::MAX, &mut r).unwrap();
        let (_, hello) = Joiner::start(&ticket, &alice.cert, "a", 0, &mut r).unwrap();
        let mut m = hello.clone();
        for (i, x) in &flips {
            let i = i.index(m.len());
            m[i] ^= x;
        }
        prop_assert!(accept_join(&m, &ticket, 0, &BTreeSet::new(), &ring, History::Full, &mut r).is_err());
        let t = &hello[..cut.index(hello.len())];
        prop_assert!(accept_join(t, &ticket, 0, &BTreeSet::new(), &ring, History::Full, &mut r).is_err());
        // Link message one, mutated.
        let code = PairingCode::generate(&mut r);
        let laptop = DeviceKeys::generate_unlinked(&mut r);
        let (_, m1) = LinkNewDevice::start(&code, &laptop, "l", &mut r).unwrap();
        let mut m = m1.clone();
        for (i, x) in &flips {
            let i = i.index(m.len());
            m[i] ^= x;
        }
        let host = LinkHost::new(&code, &mut r).unwrap();
        prop_assert!(host.respond(&m, &alice.identity, &[&ring]).is_err());
    }
}
