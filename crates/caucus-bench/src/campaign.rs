//! The dataset the sync scenarios carry: the reference campaign spreadsheet
//! (`shared/data/campaign-10k`: 10,000 contacts, 50,000 notes) plus meeting notices, or a
//! small synthetic one in the same format for `--tiny`.

use anyhow::{Context, Result};
use caucus_proto::{ContactField, ContactId, NoticeContent, NoticeId, Operation};
use caucus_store::spreadsheet::{self, KnownPhones};
use std::path::Path;

/// The two spreadsheets, as files an organizer would import.
pub(crate) struct Campaign {
    /// `contacts.csv`.
    pub(crate) contacts_csv: Vec<u8>,
    /// `notes.csv`.
    pub(crate) notes_csv: Vec<u8>,
    /// Meeting notices posted on top.
    pub(crate) notices: usize,
}

impl Campaign {
    /// Reads `contacts.csv` and `notes.csv` from `dir`.
    pub(crate) fn load(dir: &Path, notices: usize) -> Result<Campaign> {
        let read = |f: &str| {
            let p = dir.join(f);
            std::fs::read(&p).with_context(|| format!("{} (use --campaign DIR)", p.display()))
        };
        Ok(Campaign {
            contacts_csv: read("contacts.csv")?,
            notes_csv: read("notes.csv")?,
            notices,
        })
    }

    /// A small campaign in the reference format.
    pub(crate) fn synthetic(contacts: usize, notes: usize, notices: usize) -> Campaign {
        const DEPTS: [&str; 4] = ["Stow", "Pick", "Pack", "Ship Dock"];
        const SHIFTS: [&str; 3] = ["Day", "Night", "Weekend"];
        let phone = |i: usize| format!("+1-718-{:03}-{:04}", 100 + i / 10_000, i % 10_000);
        let mut c = String::from("name,department,shift,job,phone,rating,tags,assigned_to\n");
        for i in 0..contacts {
            c.push_str(&format!(
                "Worker {i},{},{},Tech,{},{},,Dana R.\n",
                DEPTS[i % DEPTS.len()],
                SHIFTS[i % SHIFTS.len()],
                phone(i),
                1 + i % 5
            ));
        }
        let mut n = String::from("contact_phone,author,date,text\n");
        for i in 0..notes {
            n.push_str(&format!(
                "{},Priya S.,2026-04-26,Talked about the schedule change on the dock ({i}).\n",
                phone(i % contacts.max(1))
            ));
        }
        Campaign {
            contacts_csv: c.into_bytes(),
            notes_csv: n.into_bytes(),
            notices,
        }
    }

    /// Bytes of the dataset as plain CSV (the size the wire target compares against).
    pub(crate) fn csv_bytes(&self) -> usize {
        self.contacts_csv.len() + self.notes_csv.len()
    }

    /// The operations an import makes (one `ContactSet` per contact, one `NoteAdded` per
    /// note), then one `NoticePosted` per notice.
    pub(crate) fn operations(&self) -> Result<Vec<Operation>> {
        let mut next = 0u128;
        let import = spreadsheet::import(
            Some(&mut self.contacts_csv.as_slice()),
            Some(&mut self.notes_csv.as_slice()),
            &KnownPhones::none(),
            &mut || {
                next += 1;
                ContactId(next.to_le_bytes())
            },
            &mut |_, _| {},
        )?;
        let mut ops = import.operations;
        for i in 0..self.notices {
            ops.push(notice(i as u64, false));
        }
        Ok(ops)
    }
}

/// A meeting notice, distinct per `i`.
pub(crate) fn notice(i: u64, urgent: bool) -> Operation {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&i.to_le_bytes());
    id[8] = 0xa5;
    Operation::NoticePosted {
        notice: NoticeId(id),
        content: NoticeContent {
            title: format!("Committee meeting {i}"),
            starts_at_ms: 1_800_000_000_000 + i * 86_400_000,
            place: "Union hall, room 2".into(),
            body: "Bring the petition sheets and a coworker from your department.".into(),
            urgent,
            expires_at_ms: None,
        },
    }
}

/// A new note on the first contact of the dataset (for incremental sync).
pub(crate) fn extra_note(ops: &[Operation], i: usize) -> Operation {
    let contact = ops
        .iter()
        .find_map(|op| match op {
            Operation::ContactSet { contact, .. } => Some(*contact),
            _ => None,
        })
        .unwrap_or(ContactId([7; 16]));
    Operation::NoteAdded {
        contact,
        note: caucus_proto::Note {
            text: format!("Follow-up call {i}: will bring two coworkers from Pack on Thursday."),
            date: None,
            by: None,
        },
    }
}

/// The fields of a `ContactSet` as (key, text) pairs, for the automerge baseline.
pub(crate) fn fields_as_text(fields: &[ContactField]) -> Vec<(&'static str, String)> {
    let mut tags = Vec::new();
    let mut out = Vec::new();
    for f in fields {
        match f {
            ContactField::Name(s) => out.push(("name", s.clone())),
            ContactField::Department(s) => out.push(("department", s.clone())),
            ContactField::Shift(s) => out.push(("shift", s.clone())),
            ContactField::Job(s) => out.push(("job", s.clone())),
            ContactField::Handle(s) => out.push(("phone", s.clone())),
            ContactField::Rating(r) => out.push(("rating", r.get().to_string())),
            ContactField::Tag { tag, on: true } => tags.push(tag.clone()),
            ContactField::Tag { .. } => {}
            ContactField::AssignedTo(s) => out.push(("assigned_to", s.clone())),
        }
    }
    if !tags.is_empty() {
        out.push(("tags", tags.join(";")));
    }
    out
}
