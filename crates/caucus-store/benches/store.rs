//! caucus-store benchmarks on the reference campaign (`shared/data/campaign-10k`:
//! 10,000 contacts, 50,000 notes), sealed for real with caucus-crypto:
//!
//! - `apply/60k_in_batches_of_1000`: entries stored per second into a fresh encrypted
//!   database — envelopes and bodies written, the fold updated, views and state hash
//!   written, one durable transaction per batch (sealing and opening happen before the
//!   clock starts: they are the crypto layer's cost, measured in its own benches);
//! - `apply/60k_packed_as_imported`: the same rows packed as `caucus import` packs them
//!   (`Operation::pack`: up to 1,024 rows per entry, 59 entries), stored in one
//!   transaction; throughput counted in rows;
//! - `open/cold_60k`: opening the database and folding the 60,000 stored bodies;
//! - `query/*`: the CLI's queries on the views over the same group, the workplace map
//!   first (target < 20 ms).

#![allow(clippy::unwrap_used, missing_docs)]

use caucus_crypto::{DeviceKeys, EpochSecret, IdentityKeypair, Keyring, open_batch, seal_event};
use caucus_model::ContactFilter;
use caucus_proto::limits::{MAX_RECORDS_PER_ENTRY, PACK_TEXT_BYTES};
use caucus_proto::{Chain, ContactId, Day, EntryId, GroupId, Hlc, Operation};
use caucus_store::spreadsheet::{self, KnownPhones};
use caucus_store::{DbKey, Incoming, Store, StoredEntry, VerifiedBody};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

const GROUP: GroupId = GroupId([0x5a; 16]);
const BATCH: usize = 1000;

struct Workload {
    founder: caucus_proto::IdentityKey,
    entries: Vec<Incoming>,
}

/// The campaign's operations, sealed by the founder's device and opened again; packed
/// into `Records` entries as an import packs them when `packed`.
fn workload(packed: bool) -> Workload {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let identity = IdentityKeypair::generate(&mut rng);
    let device = DeviceKeys::generate(identity.public(), &mut rng);
    let mut ring = Keyring::new(GROUP);
    ring.insert(0, EpochSecret::generate(&mut rng)).unwrap();
    let keys = ring.current().unwrap();
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/campaign-10k"
    ));
    let contacts = std::fs::read(dir.join("contacts.csv")).unwrap();
    let notes = std::fs::read(dir.join("notes.csv")).unwrap();
    let import = spreadsheet::import(
        Some(&mut contacts.as_slice()),
        Some(&mut notes.as_slice()),
        &KnownPhones::none(),
        &mut || {
            let mut id = [0u8; 16];
            rng.fill_bytes(&mut id);
            ContactId(id)
        },
        &mut |_, _| {},
    )
    .unwrap();
    let cert = identity.certify(&device.public(), "laptop").unwrap();
    let rows = if packed {
        Operation::pack(import.operations, MAX_RECORDS_PER_ENTRY, PACK_TEXT_BYTES)
    } else {
        import.operations
    };
    let ops = std::iter::once(Operation::DeviceLinked { cert }).chain(rows);
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    // One device chain: each entry names the one before it.
    let mut prev = None;
    let envelopes: Vec<_> = ops
        .enumerate()
        .map(|(i, op)| {
            let hlc = Hlc {
                wall_ms: 1_780_000_000_000 + i as u64,
                counter: 0,
            };
            let chain = Chain {
                seq: i as u64 + 1,
                prev,
                heads: Vec::new(),
            };
            let (envelope, event) =
                seal_event(&GROUP, keys, &device, chain, hlc, op, &mut rng).unwrap();
            prev = Some(event);
            envelope
        })
        .collect();
    let directory: BTreeMap<_, _> = [(device.device_key(), identity.public())].into();
    let opened = open_batch(&envelopes, &ring, &directory);
    let entries = envelopes
        .iter()
        .zip(opened)
        .map(|(env, opened)| {
            let opened = opened.unwrap();
            let bytes = env.encode().unwrap();
            Incoming {
                entry: StoredEntry {
                    id: EntryId::of_encoded(&bytes),
                    group: GROUP,
                    epoch: 0,
                    envelope: bytes,
                },
                body: Some(VerifiedBody {
                    body_id: opened.body_id.0,
                    body: opened.body,
                }),
            }
        })
        .collect();
    Workload {
        founder: identity.public(),
        entries,
    }
}

fn key() -> DbKey {
    DbKey::from_bytes([0x11; 32])
}

/// A fresh database holding the whole workload, applied in batches of `batch` entries;
/// returns the time the batches took.
fn fill(path: &Path, w: &Workload, batch: usize) -> Duration {
    let mut store = Store::open(path, &key()).unwrap();
    store.add_group(GROUP, w.founder).unwrap();
    let mut group = store.load_group(&GROUP).unwrap();
    let mut total = Duration::ZERO;
    for chunk in w.entries.chunks(batch) {
        let batch = chunk.to_vec();
        let t = Instant::now();
        store.apply(&mut group, batch, 1).unwrap();
        total += t.elapsed();
    }
    total
}

fn benches(c: &mut Criterion) {
    let packed = workload(true);
    let mut g = c.benchmark_group("apply");
    g.sample_size(10);
    g.throughput(Throughput::Elements(60_000));
    g.bench_function("60k_packed_as_imported", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                total += fill(&dir.path().join("db"), &packed, usize::MAX);
            }
            total
        })
    });
    g.finish();
    drop(packed);

    let w = workload(false);
    let n = w.entries.len() as u64;

    let mut g = c.benchmark_group("apply");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(30));
    g.throughput(Throughput::Elements(n));
    g.bench_function("60k_in_batches_of_1000", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                total += fill(&dir.path().join("db"), &w, BATCH);
            }
            total
        })
    });
    g.finish();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    fill(&path, &w, BATCH);

    let mut g = c.benchmark_group("open");
    g.sample_size(10);
    g.bench_function("cold_60k", |b| {
        b.iter(|| {
            let store = Store::open(&path, &key()).unwrap();
            black_box(store.load_group(&GROUP).unwrap());
        })
    });
    g.finish();

    let store = Store::open(&path, &key()).unwrap();
    let mut g = c.benchmark_group("query");
    g.bench_function("workplace_map_10k_contacts_50k_notes", |b| {
        b.iter(|| black_box(store.workplace_map(&GROUP).unwrap()))
    });
    let stow_nights = ContactFilter::all().department("Stow").shift("Night");
    g.bench_function("contacts_dept_shift", |b| {
        b.iter(|| black_box(store.contacts(&GROUP, &stow_nights).unwrap()))
    });
    let text = ContactFilter::all().text("barbecue");
    g.bench_function("contacts_text_in_notes", |b| {
        b.iter(|| black_box(store.contacts(&GROUP, &text).unwrap()))
    });
    let one = store.contacts(&GROUP, &ContactFilter::all()).unwrap()[4242].id;
    g.bench_function("contact_with_notes", |b| {
        b.iter(|| black_box(store.contact(&GROUP, &one).unwrap()))
    });
    g.bench_function("followups_due", |b| {
        b.iter(|| black_box(store.followups_due(&GROUP, Day(20_500), 7).unwrap()))
    });
    g.bench_function("support_share", |b| {
        b.iter(|| black_box(store.support_share(&GROUP).unwrap()))
    });
    g.finish();
}

criterion_group!(store, benches);
criterion_main!(store);
