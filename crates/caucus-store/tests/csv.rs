//! CSV import and export: the reference spreadsheets import as they are and export back
//! to the same rows; every bad file is refused with a one-line reason naming the line,
//! and nothing is written.

#![allow(clippy::unwrap_used)]

use caucus_model::testing::{Cast, entry, hlc};
use caucus_proto::{BODY_VERSION, Body, ContactId, GroupId, Signature};
use caucus_store::spreadsheet::{self, CsvError, Import, KnownPhones};
use caucus_store::{DbKey, GroupState, Incoming, Store, StoredEntry, VerifiedBody};
use std::path::{Path, PathBuf};

const GROUP: GroupId = GroupId([0x44; 16]);

fn data(set: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data")).join(set)
}

struct Node {
    _dir: tempfile::TempDir,
    store: Store,
    group: GroupState,
    cast: Cast,
}

fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("db"), &DbKey::from_bytes([9; 32])).unwrap();
    let cast = Cast::default();
    store.add_group(GROUP, cast.founder.identity).unwrap();
    let mut group = store.load_group(&GROUP).unwrap();
    let setup = cast.setup().iter().map(incoming).collect();
    store.apply(&mut group, setup, 0).unwrap();
    Node {
        _dir: dir,
        store,
        group,
        cast,
    }
}

fn incoming(e: &caucus_model::OpenedEntry) -> Incoming {
    Incoming {
        entry: StoredEntry {
            id: e.id,
            group: GROUP,
            epoch: 0,
            envelope: e.id.0.to_vec(),
        },
        body: Some(VerifiedBody {
            body_id: e.event.0,
            body: Body {
                version: BODY_VERSION,
                author: e.author,
                chain: e.chain.clone(),
                hlc: e.hlc,
                op: e.op.clone(),
                signature: Signature([0; 64]),
            },
        }),
    }
}

/// What the node does: parse everything, then seal (here: build) and store in one batch.
fn import_into(node: &mut Node, contacts: &[u8], notes: Option<&[u8]>) -> Result<Import, CsvError> {
    let mut next = 0u64;
    let mut new_id = || {
        next += 1;
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&next.to_le_bytes());
        ContactId(id)
    };
    let mut calls = Vec::new();
    let known = KnownPhones::from_store(&node.store, &GROUP).unwrap();
    let mut c = contacts;
    let mut n = notes;
    let import = spreadsheet::import(
        Some(&mut c),
        n.as_mut().map(|n| n as &mut dyn std::io::Read),
        &known,
        &mut new_id,
        &mut |done, total| calls.push((done, total)),
    )?;
    // Progress ends at (total, total) and never goes back.
    let total = (import.contacts + import.notes) as u64;
    assert!(
        total == 0 || calls.last() == Some(&(total, total)),
        "{calls:?}"
    );
    assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0));
    let author = node.cast.founder.author(0);
    let base = 1_000_000 + node.group.state().len() as u64 * 10;
    let batch: Vec<Incoming> = import
        .operations
        .iter()
        .enumerate()
        .map(|(i, op)| incoming(&entry(author, hlc(base + i as u64, 0), op.clone())))
        .collect();
    node.store.apply(&mut node.group, batch, 1).unwrap();
    Ok(import)
}

/// The rows of a CSV file, header first, the rest sorted (a multiset).
fn rows(bytes: &[u8]) -> Vec<Vec<String>> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes);
    let mut all: Vec<Vec<String>> = r
        .records()
        .map(|rec| rec.unwrap().iter().map(str::to_owned).collect())
        .collect();
    all[1..].sort();
    all
}

fn round_trip(set: &str) {
    let contacts = std::fs::read(data(set).join("contacts.csv")).unwrap();
    let notes = std::fs::read(data(set).join("notes.csv")).unwrap();
    let mut node = node();
    let t = std::time::Instant::now();
    let import = import_into(&mut node, &contacts, Some(&notes)).unwrap();
    eprintln!("import+apply {set}: {:?}", t.elapsed());
    assert!(import.ignored_columns.is_empty());
    assert_eq!(
        import.contacts + 1,
        contacts.iter().filter(|&&b| b == b'\n').count()
    );
    let (mut c_out, mut n_out) = (Vec::new(), Vec::new());
    spreadsheet::export(&node.store, &GROUP, &mut c_out, &mut n_out).unwrap();
    assert_eq!(rows(&c_out), rows(&contacts), "contacts of {set}");
    assert_eq!(rows(&n_out), rows(&notes), "notes of {set}");
    // Importing the same sheet again is refused: every phone is known now.
    let err = import_into(&mut node, &contacts, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "contacts line 2: phone already belongs to a contact in this group"
    );
}

#[test]
fn small_campaign_round_trips() {
    round_trip("campaign-small");
}

#[test]
fn reference_campaign_10k_imports_and_exports_the_same_rows() {
    round_trip("campaign-10k");
}

#[test]
fn headers_in_any_case_spacing_and_order() {
    let mut node = node();
    let contacts = "Phone Number , NAME,Assigned To,dept,Rating,TAGS,Extra\n\
                    +1 555 0100,Zoë Łucja,Dana R.,Stow,2,signed card; wants info ;,x\n\
                    ,Björn,,,,,\n";
    let notes = "Text,Contact_Phone,DATE\nWill sign.,+1-555-0100,2026-03-01\n";
    let import = import_into(&mut node, contacts.as_bytes(), Some(notes.as_bytes())).unwrap();
    assert_eq!((import.contacts, import.notes), (2, 1));
    assert_eq!(import.ignored_columns, vec!["Extra".to_owned()]);
    let list = node
        .store
        .contacts(&GROUP, &caucus_model::ContactFilter::all())
        .unwrap();
    let zoe = list.iter().find(|c| c.name == "Zoë Łucja").unwrap();
    assert_eq!(zoe.department, "Stow");
    assert_eq!(zoe.shift, "");
    assert_eq!(
        zoe.tags_on().collect::<Vec<_>>(),
        vec!["signed card", "wants info"]
    );
    let notes = node.store.contact(&GROUP, &zoe.id).unwrap().unwrap().notes;
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].by, None);
    assert_eq!(notes[0].date.unwrap().to_string(), "2026-03-01");
}

/// A bad file: the one-line error, and nothing stored.
fn refused(contacts: &[u8], notes: Option<&[u8]>) -> String {
    let mut node = node();
    let before = node.store.entry_count(&GROUP).unwrap();
    let err = import_into(&mut node, contacts, notes)
        .unwrap_err()
        .to_string();
    assert_eq!(node.store.entry_count(&GROUP).unwrap(), before, "{err}");
    assert!(
        node.store
            .contacts(&GROUP, &caucus_model::ContactFilter::all())
            .unwrap()
            .is_empty()
    );
    assert!(!err.contains('\n'), "{err}");
    err
}

const HEADER: &str = "name,department,shift,job,phone,rating,tags,assigned_to\n";

#[test]
fn bad_encoding_is_refused_naming_the_line() {
    let mut sheet = format!("{HEADER}Ana,Stow,Day,Tech,+1-555-0101,2,,Dana\n").into_bytes();
    // Latin-1 "Zoë", as a spreadsheet saved in the wrong encoding writes it.
    sheet.extend_from_slice(b"Zo\xeb Evans,Stow,Day,Tech,+1-555-0102,2,,Dana\n");
    assert_eq!(
        refused(&sheet, None),
        "contacts line 3: name is not UTF-8 text (save the sheet as \"CSV UTF-8\")"
    );
    let notes = b"contact_phone,author,date,text\n+1-555-0101,Dana,2026-01-02,caf\xe9\n";
    let contacts = format!("{HEADER}Ana,Stow,Day,Tech,+1-555-0101,2,,Dana\n");
    assert_eq!(
        refused(contacts.as_bytes(), Some(notes)),
        "notes line 2: text is not UTF-8 text (save the sheet as \"CSV UTF-8\")"
    );
}

#[test]
fn missing_columns_are_named() {
    assert_eq!(
        refused(b"name,department,shift\nAna,Stow,Day\n", None),
        "contacts: missing column \"phone\""
    );
    assert_eq!(
        refused(b"full name? ,phone\nAna,1\n", None),
        "contacts: missing column \"name\""
    );
    let contacts = format!("{HEADER}Ana,Stow,Day,Tech,+1-555-0101,2,,Dana\n");
    assert_eq!(
        refused(
            contacts.as_bytes(),
            Some(b"contact_phone,author,date\n+1-555-0101,Dana,2026-01-02\n")
        ),
        "notes: missing column \"text\""
    );
    assert_eq!(
        refused(b"name,phone,Phone\nAna,1,2\n", None),
        "contacts: column \"phone\" appears twice"
    );
}

#[test]
fn out_of_range_ratings_are_refused() {
    for bad in ["0", "6", "7", "-1", "two", "2.5"] {
        let sheet = format!(
            "{HEADER}Ana,Stow,Day,Tech,+1-555-0101,2,,Dana\nBen,Stow,Day,Tech,+1-555-0102,{bad},,Dana\n"
        );
        assert_eq!(
            refused(sheet.as_bytes(), None),
            "contacts line 3: rating must be a number from 1 (leader) to 5 (opposed)",
            "{bad}"
        );
    }
}

#[test]
fn bad_dates_unknown_and_duplicate_phones_are_refused() {
    let contacts = format!(
        "{HEADER}Ana,Stow,Day,Tech,+1-555-0101,2,,Dana\n\"Ben, Jr.\",Stow,Day,Tech,+1-555-0102,,,\n"
    );
    for bad in ["2026-02-30", "03/01/2026", "2026-3-1", "yesterday"] {
        let notes = format!(
            "contact_phone,author,date,text\n+1-555-0101,Dana,2026-01-02,ok\n+1-555-0102,Dana,{bad},x\n"
        );
        assert_eq!(
            refused(contacts.as_bytes(), Some(notes.as_bytes())),
            "notes line 3: date must be a real date written YYYY-MM-DD",
            "{bad}"
        );
    }
    let notes = "contact_phone,author,date,text\n+1-555-0199,Dana,2026-01-02,x\n";
    assert_eq!(
        refused(contacts.as_bytes(), Some(notes.as_bytes())),
        "notes line 2: no contact has this phone"
    );
    let dup = format!("{HEADER}Ana,,,,+1-555-0101,,,\nBen,,,,+1 555 0101,,,\n");
    assert_eq!(
        refused(dup.as_bytes(), None),
        "contacts line 3: phone appears on an earlier row"
    );
    // A multi-line quoted note moves later line numbers on, as the file shows them.
    let notes = "contact_phone,author,date,text\n+1-555-0101,Dana,,\"two\nlines\"\n+1-555-0101,Dana,2026-13-01,x\n";
    assert_eq!(
        refused(contacts.as_bytes(), Some(notes.as_bytes())),
        "notes line 4: date must be a real date written YYYY-MM-DD"
    );
    assert_eq!(
        refused(b"", None),
        "contacts: empty file (a header row is needed)"
    );
}
