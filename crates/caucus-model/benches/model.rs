//! Micro benchmarks of the fold: a campaign-sized state (10,000 contacts, 50,000 notes,
//! 200 notices) folded from scratch, one late note merged in, and the state hash
//! after that note (the per-write cost the store pays) and from cold.
//!
//! `cargo bench -p caucus-model --bench model`

use caucus_model::testing::{Cast, entry, hlc, notice_content};
use caucus_model::{OpenedEntry, State};
use caucus_proto::{ContactField, ContactId, Note, NoticeId, Operation};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use std::hint::black_box;

const CONTACTS: u32 = 10_000;
const NOTES_PER_CONTACT: u32 = 5;
const NOTICES: u32 = 200;

fn contact_id(i: u32) -> ContactId {
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&i.to_be_bytes());
    id[4] = 0xc0;
    ContactId(id)
}

/// The committee's setup followed by the campaign, in clock order.
fn campaign(cast: &Cast) -> Vec<OpenedEntry> {
    let mut out = cast.setup();
    let author = cast.founder.author(0);
    let mut t = 1_000u64;
    // Each operation one millisecond after the last.
    let mut push = |op: Operation| {
        t += 1;
        out.push(entry(author, hlc(t, 0), op));
    };
    for i in 0..CONTACTS {
        push(Operation::ContactSet {
            contact: contact_id(i),
            fields: vec![
                ContactField::Name(format!("Worker {i}")),
                ContactField::Department(format!("Department {}", i % 12)),
                ContactField::Shift(["Day", "Swing", "Night"][(i % 3) as usize].into()),
                ContactField::Job("Picker".into()),
                ContactField::Handle(format!("555-{i:07}")),
            ],
        });
    }
    for n in 0..NOTES_PER_CONTACT {
        for i in 0..CONTACTS {
            push(Operation::NoteAdded {
                contact: contact_id(i),
                note: Note {
                    text: format!(
                        "Conversation {n} with worker {i}: talked about the schedule change."
                    ),
                    date: None,
                    by: None,
                },
            });
        }
    }
    for k in 0..NOTICES {
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&k.to_be_bytes());
        push(Operation::NoticePosted {
            notice: NoticeId(id),
            content: notice_content(&format!("Meeting {k}"), k % 10 == 0),
        });
    }
    out
}

fn one_note(cast: &Cast, k: u64) -> OpenedEntry {
    entry(
        cast.founder.author(0),
        hlc(10_000_000 + k, 0),
        Operation::NoteAdded {
            contact: contact_id((k % u64::from(CONTACTS)) as u32),
            note: Note {
                text: format!("Follow-up conversation {k}."),
                date: None,
                by: None,
            },
        },
    )
}

fn bench(c: &mut Criterion) {
    let cast = Cast::new(1, 3);
    let entries = campaign(&cast);
    let mut g = c.benchmark_group("model");
    g.sample_size(10);
    g.bench_function("fold 60,200 entries", |b| {
        b.iter_batched(
            || entries.clone(),
            |e| {
                let mut s = State::new(cast.founder.identity);
                s.extend(e);
                black_box(s)
            },
            BatchSize::LargeInput,
        )
    });
    let mut state = State::new(cast.founder.identity);
    state.extend(entries.clone());
    g.bench_function("state hash, cold (after open)", |b| {
        b.iter_batched(
            || {
                let mut s = State::new(cast.founder.identity);
                s.extend(entries.clone());
                s
            },
            |s| black_box(s.state_hash()),
            BatchSize::LargeInput,
        )
    });
    let _ = state.state_hash();
    let mut k = 0u64;
    g.bench_function("one new note: merge + state hash", |b| {
        b.iter(|| {
            k += 1;
            state.extend([one_note(&cast, k)]);
            black_box(state.state_hash())
        })
    });
    g.bench_function("state hash, unchanged", |b| {
        b.iter(|| black_box(state.state_hash()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
