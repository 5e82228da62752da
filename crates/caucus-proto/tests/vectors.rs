//! The hex test vectors in `proto/vectors/` decode to the values built here and re-encode
//! byte for byte. Run with `CAUCUS_WRITE_VECTORS=1` to rewrite them after a deliberate
//! format change (and bump the version: see `proto/PROTOCOL.md`).

#![allow(clippy::unwrap_used)]

mod common;

use caucus_proto::*;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto/vectors")
}

fn read_hex(name: &str) -> Vec<u8> {
    let path = dir().join(format!("{name}.hex"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let hex: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
        .collect();
    hex::decode(hex).unwrap()
}

fn write_hex(name: &str, comment: &str, bytes: &[u8]) {
    let mut out = String::new();
    for line in comment.lines() {
        out.push_str(&format!("# {line}\n"));
    }
    out.push_str(&format!("# {} bytes\n", bytes.len()));
    for chunk in bytes.chunks(32) {
        out.push_str(&hex::encode(chunk));
        out.push('\n');
    }
    std::fs::write(dir().join(format!("{name}.hex")), out).unwrap();
}

fn writing() -> bool {
    std::env::var_os("CAUCUS_WRITE_VECTORS").is_some()
}

/// A chain as the vector comments show it.
fn describe(chain: &Chain) -> String {
    let short = |id: &EventId| format!("{:02x}..", id.0[0]);
    let mut out = format!("chain seq {}", chain.seq);
    if let Some(prev) = &chain.prev {
        out.push_str(&format!(" prev {}", short(prev)));
    }
    if !chain.heads.is_empty() {
        let heads: Vec<String> = chain.heads.iter().map(short).collect();
        out.push_str(&format!(" heads {}", heads.join(" ")));
    }
    out
}

/// The body of the vector with the busy chain, and its encoding.
fn busy_body() -> Body {
    let op = common::operations()
        .into_iter()
        .find(|(name, _)| *name == common::BUSY_CHAIN_VECTOR)
        .unwrap()
        .1;
    common::vector_body(common::BUSY_CHAIN_VECTOR, op)
}

/// Every valid vector: name, comment, encoding.
fn valid_vectors() -> Vec<(String, String, Vec<u8>)> {
    let mut v = Vec::new();
    let env = common::envelope();
    v.push((
        "envelope".to_string(),
        "Envelope: version 1, group 11.., epoch 1, nonce 0d.., 100-byte ciphertext 00..63, proof f0..".to_string(),
        env.encode().unwrap(),
    ));
    v.push((
        "envelope-header".to_string(),
        "EnvelopeHeader of the envelope vector: the AEAD associated data".to_string(),
        env.header.encode(),
    ));
    for (name, op) in common::operations() {
        let body = common::vector_body(name, op);
        v.push((
            format!("body-{name}"),
            format!(
                "Body: version 2, author 22../33.., {}, hlc 1795597200000/3, {}, signature ee..",
                describe(&body.chain),
                body.op.kind()
            ),
            body.encode().unwrap(),
        ));
    }
    let first = common::body(common::operations().remove(0).1);
    v.push((
        "signed-body-op00".to_string(),
        "Bytes the device signs for body-op00-contact-set, bound to group 11.. and epoch 1"
            .to_string(),
        first.signed_bytes(&common::group(), 1).unwrap(),
    ));
    v.push((
        "signed-body-op10".to_string(),
        "Bytes the device signs for body-op10-member-removed (chain seq 3, two heads), bound to group 11.. and epoch 1"
            .to_string(),
        busy_body().signed_bytes(&common::group(), 1).unwrap(),
    ));
    v
}

#[test]
fn valid_vectors_decode_and_reencode_byte_for_byte() {
    let vectors = valid_vectors();
    if writing() {
        for (name, comment, bytes) in &vectors {
            write_hex(name, comment, bytes);
        }
    }
    // The envelope.
    let env_bytes = read_hex("envelope");
    let env = Envelope::decode(&env_bytes).unwrap();
    assert_eq!(env, common::envelope());
    assert_eq!(env.encode().unwrap(), env_bytes);
    assert_eq!(read_hex("envelope-header"), env.header.encode());
    assert!(
        env_bytes.starts_with(&env.header.encode()),
        "the header is a prefix of the envelope"
    );
    // Every body; its event bytes are its encoding without the trailing signature.
    for (name, op) in common::operations() {
        let bytes = read_hex(&format!("body-{name}"));
        let body = Body::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(body, common::vector_body(name, op), "{name}");
        assert_eq!(body.encode().unwrap(), bytes, "{name}");
        assert_eq!(
            body.event_bytes().unwrap(),
            bytes[..bytes.len() - Signature::LEN],
            "{name}"
        );
    }
    let first = common::body(common::operations().remove(0).1);
    assert_eq!(
        read_hex("signed-body-op00"),
        first.signed_bytes(&common::group(), 1).unwrap()
    );
    // The signed bytes: the encoded domain string, group and epoch, then the event bytes.
    let busy = busy_body();
    let signed = read_hex("signed-body-op10");
    let event_bytes = busy.event_bytes().unwrap();
    assert_eq!(signed, busy.signed_bytes(&common::group(), 1).unwrap());
    let mut prefix = vec![24u8];
    prefix.extend_from_slice(b"caucus body signature v2");
    prefix.extend_from_slice(&[0x11; 16]);
    prefix.push(1);
    assert_eq!(signed[..prefix.len()], prefix[..]);
    assert_eq!(signed[prefix.len()..], event_bytes[..]);
    // Nothing on disk that this test does not know.
    for (name, _, bytes) in &vectors {
        assert_eq!(&read_hex(name), bytes, "{name}");
    }
}

#[test]
fn content_id_is_blake3_of_the_envelope_bytes() {
    let bytes = read_hex("envelope");
    let id = Envelope::decode(&bytes).unwrap().id().unwrap();
    assert_eq!(id.to_string(), blake3::hash(&bytes).to_hex().as_str());
    let pinned = std::fs::read_to_string(dir().join("envelope.id")).unwrap_or_default();
    if writing() {
        std::fs::write(dir().join("envelope.id"), format!("{id}\n")).unwrap();
    } else {
        assert_eq!(pinned.trim(), id.to_string());
    }
}

#[test]
fn event_id_is_the_derived_blake3_of_the_event_bytes() {
    // From the value, so that writing the vectors needs one run (the file is checked
    // against it by `valid_vectors_decode_and_reencode_byte_for_byte`).
    let bytes = busy_body().encode().unwrap();
    let body = Body::decode(&bytes).unwrap();
    let id = body.event_id().unwrap();
    let event_bytes = &bytes[..bytes.len() - Signature::LEN];
    assert_eq!(
        id.0,
        blake3::derive_key("caucus v2 event id", event_bytes),
        "BLAKE3 derive_key over the body without its signature"
    );
    // The signature is not part of the event: another signature, the same event.
    let mut resigned = body.clone();
    resigned.signature = Signature([0x01; 64]);
    assert_eq!(resigned.event_id().unwrap(), id);
    let pinned = std::fs::read_to_string(dir().join("event-op10.id")).unwrap_or_default();
    if writing() {
        std::fs::write(dir().join("event-op10.id"), format!("{id}\n")).unwrap();
    } else {
        assert_eq!(pinned.trim(), id.to_string());
    }
}

/// Invalid vectors: bytes and the error each must give.
fn invalid_vectors() -> Vec<(&'static str, &'static str, Vec<u8>, DecodeError)> {
    let env = common::envelope().encode().unwrap();
    let body = common::body(common::operations().remove(0).1)
        .encode()
        .unwrap();
    let mut wrong_version = env.clone();
    wrong_version[0] = 2;
    let mut trailing = env.clone();
    trailing.push(0);
    // Non-minimal epoch: 1 written as marker 251 + u16 (bytes 17.. of the envelope).
    let mut non_canonical = env[..17].to_vec();
    non_canonical.extend_from_slice(&[251, 1, 0]);
    non_canonical.extend_from_slice(&env[18..]);
    // A rating of 6 in the contact-set body: find the Rating field tag (5) followed by 3.
    let mut bad_rating = body.clone();
    let pos = bad_rating.windows(2).position(|w| w == [5, 3]).unwrap();
    bad_rating[pos + 1] = 6;
    // A version-1 body (the layout before chains): refused by its first byte.
    let mut old_version = body.clone();
    old_version[0] = 1;
    vec![
        (
            "invalid-envelope-truncated",
            "envelope cut one byte short",
            env[..env.len() - 1].to_vec(),
            DecodeError::Truncated,
        ),
        (
            "invalid-envelope-trailing",
            "envelope with one extra byte",
            trailing,
            DecodeError::TrailingBytes { extra: 1 },
        ),
        (
            "invalid-envelope-version",
            "envelope with version byte 2",
            wrong_version,
            DecodeError::UnsupportedVersion {
                what: "envelope",
                found: 2,
                supported: 1,
            },
        ),
        (
            "invalid-envelope-noncanonical",
            "envelope whose epoch is a non-minimal varint",
            non_canonical,
            DecodeError::NonCanonical,
        ),
        (
            "invalid-body-rating",
            "contact-set body with a rating of 6",
            bad_rating,
            DecodeError::Malformed(String::new()),
        ),
        (
            "invalid-body-version",
            "contact-set body with version byte 1",
            old_version,
            DecodeError::UnsupportedVersion {
                what: "body",
                found: 1,
                supported: 2,
            },
        ),
        (
            "invalid-body-heads-on-content",
            "followup-done body (a content operation) naming an authority head 1a..",
            heads_on_content_raw(),
            DecodeError::Invalid("only authority entries name authority heads"),
        ),
    ]
}

/// A content operation's body naming an authority head: the codec frames it, the
/// chain's rules refuse it.
fn heads_on_content() -> Body {
    let op = common::operations()
        .into_iter()
        .find(|(name, _)| *name == "op03-followup-done")
        .unwrap()
        .1;
    common::body_with(Chain::first(vec![EventId([0x1a; 32])]), op)
}

fn heads_on_content_raw() -> Vec<u8> {
    codec::encode::<_, { limits::MAX_BODY_BYTES }>(&heads_on_content()).unwrap()
}

#[test]
fn the_invalid_heads_on_content_body_cannot_be_encoded_either() {
    let body = heads_on_content();
    let why = "only authority entries name authority heads";
    assert_eq!(body.encode(), Err(EncodeError::Invalid(why)));
    assert_eq!(body.event_bytes(), Err(EncodeError::Invalid(why)));
    // It differs from the valid followup-done vector only by the head.
    let valid = common::vector_body("op03-followup-done", body.op.clone());
    let raw = heads_on_content_raw();
    assert_eq!(raw.len(), valid.encode().unwrap().len() + EventId::LEN);
}

#[test]
fn invalid_vectors_give_their_errors() {
    for (name, comment, bytes, expected) in invalid_vectors() {
        if writing() {
            write_hex(name, comment, &bytes);
        }
        let on_disk = read_hex(name);
        assert_eq!(on_disk, bytes, "{name}");
        let got = if name.starts_with("invalid-body") {
            Body::decode(&on_disk).map(|_| ())
        } else {
            Envelope::decode(&on_disk).map(|_| ())
        };
        match (&got, &expected) {
            (Err(DecodeError::Malformed(_)), DecodeError::Malformed(_)) => {}
            _ => assert_eq!(got, Err(expected), "{name}"),
        }
    }
}
