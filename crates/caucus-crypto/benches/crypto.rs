//! caucus-crypto benchmarks, each next to the bare primitive it is built on, in one run:
//! seal+sign of a 1 KiB entry vs one Ed25519 signature; open+verify vs one verification
//! and one batch-verified signature; an epoch change for 1,000 devices (time and bytes).
//! Also the codec (`caucus_proto::codec`, bincode): encoding and decoding an envelope and
//! its body, for one 1 KiB note and for a packed entry of 1,024 imported rows.

use caucus_crypto::delivery::{Recipient, deliver_epoch};
use caucus_crypto::{DeviceKeys, EpochSecret, IdentityKeypair, Keyring, open, open_batch, seal};
use caucus_proto::limits::{MAX_RECORDS_PER_ENTRY, PACK_TEXT_BYTES};
use caucus_proto::{
    Body, Chain, ContactId, DeviceKey, Envelope, EventId, GroupId, Hlc, IdentityKey, Note,
    Operation,
};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::{Signer, SigningKey, Verifier};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::collections::BTreeMap;
use std::hint::black_box;

const BATCH: usize = 64;

fn note_1k() -> Operation {
    Operation::NoteAdded {
        contact: ContactId([1; 16]),
        note: Note {
            text: "x".repeat(1000),
            date: None,
            by: None,
        },
    }
}

fn hlc(i: u64) -> Hlc {
    Hlc {
        wall_ms: 1_800_000_000_000 + i,
        counter: 0,
    }
}

/// A device's entry `i + 2` in the group: past its first, so it names its predecessor
/// (33 bytes more than a first entry), as nearly every entry does.
fn chain(i: u64) -> Chain {
    Chain {
        seq: i + 2,
        prev: Some(EventId([9; 32])),
        heads: vec![],
    }
}

/// An authority entry's chain: a predecessor and two authority heads, as an epoch change
/// after concurrent removals names.
fn authority_chain() -> Chain {
    Chain {
        seq: 7,
        prev: Some(EventId([9; 32])),
        heads: vec![EventId([10; 32]), EventId([11; 32])],
    }
}

/// 1,024 imported rows (a contact set and four notes each), packed into one operation as
/// `caucus import` packs them.
fn packed_rows() -> Operation {
    let rows = (0..1024u32)
        .map(|i| Operation::NoteAdded {
            contact: ContactId([(i % 251) as u8; 16]),
            note: Note {
                text: format!("Talked at break, row {i}: worried about the new rates"),
                date: None,
                by: None,
            },
        })
        .collect();
    Operation::pack(rows, MAX_RECORDS_PER_ENTRY, PACK_TEXT_BYTES)
        .into_iter()
        .next()
        .unwrap_or_else(note_1k)
}

/// Envelope and body encode/decode: the one codec every entry goes through.
fn codec(
    c: &mut Criterion,
    note: &Envelope,
    ring: &Keyring,
    dir: &BTreeMap<DeviceKey, IdentityKey>,
    packed: impl FnOnce() -> Result<Envelope, caucus_crypto::SealError>,
) {
    let Ok(packed) = packed() else { return };
    let mut g = c.benchmark_group("codec");
    for (name, env) in [("note_1KiB", note), ("packed_1024_rows", &packed)] {
        let Ok(bytes) = env.encode() else { return };
        let Ok(opened) = open(env, ring, dir) else {
            return;
        };
        let Ok(body) = opened.body.encode() else {
            return;
        };
        println!(
            "codec: {name}: envelope {} bytes, body {} bytes",
            bytes.len(),
            body.len()
        );
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(format!("envelope_encode_{name}"), |b| {
            b.iter(|| black_box(env).encode())
        });
        g.bench_function(format!("envelope_decode_{name}"), |b| {
            b.iter(|| Envelope::decode(black_box(&bytes)))
        });
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(format!("body_encode_{name}"), |b| {
            b.iter(|| black_box(&opened.body).encode())
        });
        g.bench_function(format!("body_decode_{name}"), |b| {
            b.iter(|| Body::decode(black_box(&body)))
        });
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    let mut r = ChaCha20Rng::seed_from_u64(1);
    let group = GroupId([7; 16]);
    let identity = IdentityKeypair::generate(&mut r);
    let device = DeviceKeys::generate(identity.public(), &mut r);
    let mut ring = Keyring::new(group);
    ring.insert(0, EpochSecret::generate(&mut r)).ok();
    let Some(keys) = ring.current() else { return };
    let dir: BTreeMap<_, _> = [(device.device_key(), identity.public())].into();

    // Bare Ed25519 on a 1 KiB message.
    let bare = SigningKey::from_bytes(&[3; 32]);
    let msg = vec![0x55u8; 1024];
    let sig = bare.sign(&msg);
    let vk = bare.verifying_key();
    let mut g = c.benchmark_group("sign");
    g.bench_function("ed25519_sign_1KiB", |b| {
        b.iter(|| bare.sign(black_box(&msg)))
    });
    g.bench_function("seal_1KiB_entry", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            seal(&group, keys, &device, chain(i), hlc(i), note_1k(), &mut r)
        })
    });
    g.finish();

    let envs: Vec<_> = (0..BATCH as u64)
        .filter_map(|i| seal(&group, keys, &device, chain(i), hlc(i), note_1k(), &mut r).ok())
        .collect();
    let msgs: Vec<&[u8]> = (0..BATCH).map(|_| msg.as_slice()).collect();
    let sigs = vec![sig; BATCH];
    let vks = vec![vk; BATCH];

    interleaved_ratios(
        &group, keys, &device, &ring, &dir, &envs, &bare, &msgs, &sigs, &vks,
    );

    codec(c, &envs[0], &ring, &dir, || {
        seal(
            &group,
            keys,
            &device,
            chain(0),
            hlc(0),
            packed_rows(),
            &mut r,
        )
    });

    let mut g = c.benchmark_group("verify");
    g.bench_function("ed25519_verify_1KiB", |b| {
        b.iter(|| vk.verify(black_box(&msg), black_box(&sig)))
    });
    g.bench_function("open_1KiB_entry", |b| {
        b.iter(|| open(black_box(&envs[0]), &ring, &dir))
    });
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("ed25519_verify_batch_64", |b| {
        b.iter(|| ed25519_dalek::verify_batch(black_box(&msgs), &sigs, &vks))
    });
    g.bench_function("open_batch_64_entries", |b| {
        b.iter(|| open_batch(black_box(&envs), &ring, &dir))
    });
    g.finish();

    // Epoch change for 1,000 devices: deliveries + sealing the entry.
    let recipients: Vec<Recipient> = (0..1000)
        .map(|_| {
            let d = DeviceKeys::generate(identity.public(), &mut r);
            Recipient {
                device: d.device_key(),
                dh: d.public().dh,
            }
        })
        .collect();
    let author = device.device_key();
    if let Ok(op) = deliver_epoch(
        &group,
        1,
        &EpochSecret::generate(&mut r),
        &author,
        &recipients,
        &mut r,
    ) && let Ok(env) = seal(&group, keys, &device, authority_chain(), hlc(0), op, &mut r)
        && let Ok(bytes) = env.encode()
    {
        println!(
            "epoch change for 1000 devices adds one entry of {} bytes ({:.1} KiB)",
            bytes.len(),
            bytes.len() as f64 / 1024.0
        );
    }
    // The X25519 operations an epoch delivery is made of, bare.
    let mut g = c.benchmark_group("x25519");
    let point = curve25519_dalek_snow::montgomery::MontgomeryPoint(recipients[0].dh);
    g.bench_function("dh_curve25519_dalek4_as_in_snow", |b| {
        b.iter(|| black_box(point).mul_clamped(black_box([9u8; 32])))
    });
    g.bench_function("keygen_curve25519_dalek4_as_in_snow", |b| {
        b.iter(|| {
            curve25519_dalek_snow::montgomery::MontgomeryPoint::mul_base_clamped(black_box(
                [9u8; 32],
            ))
        })
    });
    let secret = x25519_dalek::StaticSecret::from([9u8; 32]);
    let public = x25519_dalek::PublicKey::from(recipients[0].dh);
    g.bench_function("dh_x25519_dalek3", |b| {
        b.iter(|| black_box(&secret).diffie_hellman(black_box(&public)))
    });
    g.bench_function("single_delivery", |b| {
        b.iter(|| {
            deliver_epoch(
                &group,
                1,
                &EpochSecret::from_bytes([1; 32]),
                &author,
                &recipients[..1],
                &mut r,
            )
        })
    });
    g.finish();

    let mut g = c.benchmark_group("epoch");
    g.sample_size(10);
    g.bench_function("epoch_change_1000_devices", |b| {
        b.iter_batched(
            || EpochSecret::generate(&mut r),
            |s| {
                let mut r2 = ChaCha20Rng::seed_from_u64(9);
                deliver_epoch(&group, 1, &s, &author, &recipients, &mut r2)
                    .ok()
                    .and_then(|op| {
                        seal(
                            &group,
                            keys,
                            &device,
                            authority_chain(),
                            hlc(0),
                            op,
                            &mut r2,
                        )
                        .ok()
                    })
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// Median of `f`'s time over `n` runs, each run interleaved with the other measurements
/// so that load from other processes hits all of them alike.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Prints the ratios the issue sets targets for, measured interleaved (A, B, A, B, ...)
/// so a shared, busy machine skews both sides the same way.
#[allow(clippy::too_many_arguments)]
fn interleaved_ratios(
    group: &GroupId,
    keys: &caucus_crypto::EpochKeys,
    device: &DeviceKeys,
    ring: &Keyring,
    dir: &BTreeMap<caucus_proto::DeviceKey, caucus_proto::IdentityKey>,
    envs: &[caucus_proto::Envelope],
    bare: &SigningKey,
    msgs: &[&[u8]],
    sigs: &[ed25519_dalek::Signature],
    vks: &[ed25519_dalek::VerifyingKey],
) {
    use std::time::Instant;
    let mut r = ChaCha20Rng::seed_from_u64(5);
    let rounds = 300;
    let (mut sign, mut sealt, mut verify, mut opent, mut batch, mut openb) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for i in 0..rounds {
        let t = Instant::now();
        black_box(bare.sign(black_box(msgs[0])));
        sign.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        black_box(seal(group, keys, device, chain(i), hlc(i), note_1k(), &mut r).ok());
        sealt.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        black_box(vks[0].verify(black_box(msgs[0]), &sigs[0]).ok());
        verify.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        black_box(open(black_box(&envs[0]), ring, dir).ok());
        opent.push(t.elapsed().as_secs_f64());
        if i % 10 == 0 {
            let t = Instant::now();
            black_box(ed25519_dalek::verify_batch(msgs, sigs, vks).ok());
            batch.push(t.elapsed().as_secs_f64() / msgs.len() as f64);
            let t = Instant::now();
            black_box(open_batch(envs, ring, dir));
            openb.push(t.elapsed().as_secs_f64() / envs.len() as f64);
        }
    }
    let us = |v: Vec<f64>| median(v) * 1e6;
    let (sign, sealt, verify, opent, batch, openb) = (
        us(sign),
        us(sealt),
        us(verify),
        us(opent),
        us(batch),
        us(openb),
    );
    println!(
        "interleaved medians (µs): sign {sign:.1}, seal {sealt:.1} ({:.2}x); verify {verify:.1}, open {opent:.1} ({:.2}x); batch verify per sig {batch:.1}, open_batch per entry {openb:.1} ({:.2}x)",
        sealt / sign,
        opent / verify,
        openb / batch
    );
}

criterion_group!(crypto, benches);
criterion_main!(crypto);
