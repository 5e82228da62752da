use super::*;
use crate::at_rest::{KdfParams, UnwrapError, WrapError, WrappedSecret};

#[test]
fn wrapped_secret_unwraps_with_the_passphrase_only() {
    let mut r = rng(20);
    let m = Member::new(&mut r);
    let secret = m.device.to_secret_bytes();
    let w = WrappedSecret::wrap(
        b"correct horse",
        "device keys",
        &secret,
        KdfParams::insecure_for_tests(),
        &mut r,
    )
    .unwrap();
    let stored = w.to_bytes().unwrap();
    assert!(
        !stored
            .windows(16)
            .any(|win| secret.windows(16).any(|s| s == win))
    );
    let back = WrappedSecret::from_bytes(&stored).unwrap();
    let plain = back.unwrap(b"correct horse", "device keys").unwrap();
    let keys = DeviceKeys::from_secret_bytes(&plain).unwrap();
    assert_eq!(keys.public(), m.device.public());
    assert_eq!(
        back.unwrap(b"wrong horse", "device keys"),
        Err(UnwrapError::WrongPassphrase)
    );
    assert_eq!(
        back.unwrap(b"correct horse", "keyring"),
        Err(UnwrapError::WrongPurpose)
    );
}

#[test]
fn tampered_parameters_or_ciphertext_fail_and_weak_parameters_are_refused() {
    let mut r = rng(21);
    let w = WrappedSecret::wrap(
        b"pw",
        "p",
        b"secret",
        KdfParams::insecure_for_tests(),
        &mut r,
    )
    .unwrap();
    let mut bytes = w.to_bytes().unwrap();
    // Flip each byte in turn: never a panic, never the secret.
    for i in 0..bytes.len() {
        bytes[i] ^= 0x01;
        if let Ok(t) = WrappedSecret::from_bytes(&bytes) {
            assert!(t.unwrap(b"pw", "p").is_err(), "byte {i}");
        }
        bytes[i] ^= 0x01;
    }
    assert_eq!(KdfParams::new(8 * 1024, 2, 1), Err(WrapError::WeakParams));
    assert_eq!(KdfParams::new(19 * 1024, 1, 1), Err(WrapError::WeakParams));
    assert!(KdfParams::new(19 * 1024, 2, 1).is_ok());
    let rec = KdfParams::recommended();
    assert!(rec.m_kib() >= 19 * 1024 && rec.t() >= 2 && rec.p() >= 1);
    assert!(KdfParams::new(rec.m_kib(), rec.t(), rec.p()).is_ok());
}
