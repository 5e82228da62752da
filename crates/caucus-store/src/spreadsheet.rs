//! CSV import and export of contacts and notes: organizers start from spreadsheets.
//!
//! **Contacts file**: one row per worker. Columns are found by header, whatever their
//! order, case or spacing (`Assigned To`, `assigned_to` and ` ASSIGNED-TO ` are the same
//! column): `name` and `phone` are required; `department` (or `dept`), `shift`, `job`,
//! `rating` (1 to 5, empty for unrated), `tags` (`;`-separated) and `assigned_to` (or
//! `assigned organizer`, `organizer`, `assignee`) are optional. Other columns are
//! ignored and listed in [`Import::ignored_columns`].
//!
//! **Notes file**: `contact_phone` and `text` required, `author` (who had the
//! conversation: [`caucus_proto::Note::by`]) and `date` (`YYYY-MM-DD`:
//! [`caucus_proto::Note::date`]) optional. A note names its contact by phone, matched
//! ignoring everything but digits and a leading `+`.
//!
//! [`import`] is **all-or-nothing**: it reads and checks every row of both files before
//! returning any operation, and the node seals them and stores them with one
//! [`crate::Store::apply`] (one transaction). The first bad row stops it with
//! `line N: <reason>` (the file's own line number; reasons never quote the row's text).
//! Text that is not UTF-8 is refused, naming the line.
//!
//! [`export`] writes the same two files back from the views: importing a file and
//! exporting it gives back the same rows (as a multiset: export orders contacts by name).

use crate::views::{ContactRow, MemberRow, NoteRow};
use crate::{Store, StoreError};
use caucus_model::State;
use caucus_proto::limits::{MAX_FIELDS_PER_SET, MAX_LONG_TEXT, MAX_SHORT_TEXT};
use caucus_proto::{ContactField, ContactId, Day, GroupId, Note, Operation, Rating};
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};

/// Why a spreadsheet could not be imported or exported. One line, naming the file and
/// line, never the content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CsvError {
    /// A required column is missing from the header.
    #[error("{file}: missing column \"{column}\"")]
    MissingColumn {
        /// `contacts` or `notes`.
        file: &'static str,
        /// The column.
        column: &'static str,
    },
    /// Two header cells name the same column.
    #[error("{file}: column \"{column}\" appears twice")]
    DuplicateColumn {
        /// `contacts` or `notes`.
        file: &'static str,
        /// The column.
        column: &'static str,
    },
    /// A row is wrong.
    #[error("{file} line {line}: {reason}")]
    Row {
        /// `contacts` or `notes`.
        file: &'static str,
        /// Line number in the file (the header is line 1).
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// The file is not CSV at all, or could not be read.
    #[error("{file}: {reason}")]
    Read {
        /// `contacts` or `notes`.
        file: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// Reading the store for an export failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The operations an import makes, in order: one `ContactSet` per contact row (every
/// field of the row), then one `NoteAdded` per note row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Import {
    /// The operations, to seal and store in one batch.
    pub operations: Vec<Operation>,
    /// Contact rows read.
    pub contacts: usize,
    /// Note rows read.
    pub notes: usize,
    /// Header cells that matched no column (ignored).
    pub ignored_columns: Vec<String>,
}

/// Phones of contacts already in the group, so that notes may name them and a second
/// import of the same sheet is refused.
#[derive(Clone, Debug, Default)]
pub struct KnownPhones(HashMap<String, ContactId>);

impl KnownPhones {
    /// No contact known.
    pub fn none() -> KnownPhones {
        KnownPhones::default()
    }

    /// The phones of a state's contacts (not removed).
    pub fn from_state(state: &State) -> KnownPhones {
        KnownPhones(
            state
                .contacts()
                .filter_map(|c| Some((phone_key(&c.handle)?, c.id)))
                .collect(),
        )
    }

    /// The phones of the contacts in a store's views (not removed).
    pub fn from_store(store: &Store, group: &GroupId) -> Result<KnownPhones, StoreError> {
        Ok(KnownPhones(
            store
                .contacts(group, &caucus_model::ContactFilter::all())?
                .into_iter()
                .filter_map(|c| Some((phone_key(&c.handle)?, c.id)))
                .collect(),
        ))
    }
}

/// The comparable form of a phone: its digits, with a leading `+` kept; `None` when it
/// has no digit.
fn phone_key(phone: &str) -> Option<String> {
    let t = phone.trim();
    let mut key: String = t.chars().filter(char::is_ascii_digit).collect();
    if key.is_empty() {
        return None;
    }
    if t.starts_with('+') {
        key.insert(0, '+');
    }
    Some(key)
}

/// A header cell's comparable form: lowercase, words joined by `_`, BOM dropped.
fn header_key(h: &str) -> String {
    let h = h.trim_start_matches('\u{feff}').trim().to_lowercase();
    let mut out = String::with_capacity(h.len());
    let mut gap = false;
    for ch in h.chars() {
        if ch.is_whitespace() || ch == '_' || ch == '-' || ch == '.' {
            gap = !out.is_empty();
        } else {
            if gap {
                out.push('_');
                gap = false;
            }
            out.push(ch);
        }
    }
    out
}

/// Maps header cells to column slots; `names[slot]` lists accepted keys, the first
/// being the column's name in errors.
fn map_header(
    file: &'static str,
    header: &csv::ByteRecord,
    names: &[&[&'static str]],
    required: &[usize],
    ignored: &mut Vec<String>,
) -> Result<Vec<Option<usize>>, CsvError> {
    let mut slots = vec![None; names.len()];
    for (i, cell) in header.iter().enumerate() {
        let cell = std::str::from_utf8(cell).map_err(|_| CsvError::Row {
            file,
            line: 1,
            reason: "header is not UTF-8 text (save the sheet as \"CSV UTF-8\")".into(),
        })?;
        let key = header_key(cell);
        match names.iter().position(|ns| ns.contains(&key.as_str())) {
            Some(slot) => {
                if slots[slot].is_some() {
                    return Err(CsvError::DuplicateColumn {
                        file,
                        column: names[slot][0],
                    });
                }
                slots[slot] = Some(i);
            }
            None => ignored.push(cell.trim().to_owned()),
        }
    }
    for &r in required {
        if slots[r].is_none() {
            return Err(CsvError::MissingColumn {
                file,
                column: names[r][0],
            });
        }
    }
    Ok(slots)
}

/// Reads every record of a file (the first pass: counts rows for the progress bar),
/// each with the line it starts on.
fn read_all(
    file: &'static str,
    input: &mut dyn Read,
) -> Result<Vec<(csv::ByteRecord, u64)>, CsvError> {
    let mut bytes = Vec::new();
    input.read_to_end(&mut bytes).map_err(|_| CsvError::Read {
        file,
        reason: "cannot be read".into(),
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes.as_slice());
    let mut out = Vec::new();
    // Lines are counted here: csv's own count lags by one after a CRLF line end.
    let (mut counted_to, mut newlines) = (0usize, 0u64);
    let mut line_at = |pos: usize| {
        let pos = pos.min(bytes.len());
        if pos > counted_to {
            newlines += bytes[counted_to..pos]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u64;
            counted_to = pos;
        }
        1 + newlines + u64::from(bytes.get(pos) == Some(&b'\n'))
    };
    for rec in reader.byte_records() {
        match rec {
            Ok(rec) => {
                let start = rec.position().map_or(0, |p| p.byte());
                let line = line_at(usize::try_from(start).unwrap_or(usize::MAX));
                out.push((rec, line));
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| {
                    line_at(usize::try_from(p.byte()).unwrap_or(usize::MAX))
                });
                return Err(CsvError::Row {
                    file,
                    line,
                    reason: "not valid CSV".into(),
                });
            }
        }
    }
    if out.is_empty() {
        return Err(CsvError::Read {
            file,
            reason: "empty file (a header row is needed)".into(),
        });
    }
    Ok(out)
}

/// One row's field accessor, with the row's line for errors.
struct Cells<'a> {
    file: &'static str,
    rec: &'a csv::ByteRecord,
    line: u64,
}

impl Cells<'_> {
    fn fail(&self, reason: impl Into<String>) -> CsvError {
        CsvError::Row {
            file: self.file,
            line: self.line,
            reason: reason.into(),
        }
    }

    /// The trimmed text of a column ("" when the column is absent or the row short).
    fn text(&self, col: Option<usize>, what: &str, max: usize) -> Result<&str, CsvError> {
        let Some(bytes) = col.and_then(|c| self.rec.get(c)) else {
            return Ok("");
        };
        let s = std::str::from_utf8(bytes).map_err(|_| {
            self.fail(format!(
                "{what} is not UTF-8 text (save the sheet as \"CSV UTF-8\")"
            ))
        })?;
        let s = s.trim();
        if s.len() > max {
            return Err(self.fail(format!("{what} is longer than {max} bytes")));
        }
        Ok(s)
    }
}

const C_NAME: usize = 0;
const C_DEPT: usize = 1;
const C_SHIFT: usize = 2;
const C_JOB: usize = 3;
const C_PHONE: usize = 4;
const C_RATING: usize = 5;
const C_TAGS: usize = 6;
const C_ASSIGNED: usize = 7;
const CONTACT_COLUMNS: &[&[&str]] = &[
    &["name", "full_name"],
    &["department", "dept"],
    &["shift"],
    &["job", "job_title", "role"],
    &["phone", "phone_number", "mobile", "handle"],
    &["rating", "support", "assessment"],
    &["tags", "tag"],
    &["assigned_to", "assigned_organizer", "organizer", "assignee"],
];

const N_PHONE: usize = 0;
const N_AUTHOR: usize = 1;
const N_DATE: usize = 2;
const N_TEXT: usize = 3;
const NOTE_COLUMNS: &[&[&str]] = &[
    &["contact_phone", "phone"],
    &["author", "by", "organizer"],
    &["date", "day"],
    &["text", "note"],
];

/// Reads a contacts file and, optionally, a notes file into operations (see the module
/// docs). `new_contact_id` names each new contact (the node passes random ids);
/// `progress(done, total)` is called as rows are checked. Returns the first bad row.
pub fn import(
    contacts: Option<&mut dyn Read>,
    notes: Option<&mut dyn Read>,
    known: &KnownPhones,
    new_contact_id: &mut dyn FnMut() -> ContactId,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Import, CsvError> {
    let contact_rows = contacts.map(|r| read_all("contacts", r)).transpose()?;
    let note_rows = notes.map(|r| read_all("notes", r)).transpose()?;
    let total = contact_rows.as_ref().map_or(0, |r| r.len() as u64 - 1)
        + note_rows.as_ref().map_or(0, |r| r.len() as u64 - 1);
    let mut done = 0u64;
    let mut out = Import::default();
    let mut phones: HashMap<String, ContactId> = HashMap::new();
    let mut tick = |done: &mut u64| {
        *done += 1;
        if (*done).is_multiple_of(256) || *done == total {
            progress(*done, total);
        }
    };

    if let Some(rows) = &contact_rows {
        let file = "contacts";
        let cols = map_header(
            file,
            &rows[0].0,
            CONTACT_COLUMNS,
            &[C_NAME, C_PHONE],
            &mut out.ignored_columns,
        )?;
        for (rec, line) in rows.iter().skip(1) {
            let cells = Cells {
                file,
                rec,
                line: *line,
            };
            if rec.iter().all(|c| c.iter().all(u8::is_ascii_whitespace)) {
                tick(&mut done);
                continue; // a blank line
            }
            let short = |col, what| cells.text(cols[col], what, MAX_SHORT_TEXT);
            let name = short(C_NAME, "name")?;
            if name.is_empty() {
                return Err(cells.fail("name is empty"));
            }
            let phone = short(C_PHONE, "phone")?;
            let rating = match short(C_RATING, "rating")? {
                "" => None,
                r => Some(
                    r.parse::<u8>()
                        .ok()
                        .and_then(|n| Rating::new(n).ok())
                        .ok_or_else(|| {
                            cells.fail("rating must be a number from 1 (leader) to 5 (opposed)")
                        })?,
                ),
            };
            let mut fields = vec![
                ContactField::Name(name.to_owned()),
                ContactField::Department(short(C_DEPT, "department")?.to_owned()),
                ContactField::Shift(short(C_SHIFT, "shift")?.to_owned()),
                ContactField::Job(short(C_JOB, "job")?.to_owned()),
                ContactField::Handle(phone.to_owned()),
            ];
            if let Some(r) = rating {
                fields.push(ContactField::Rating(r));
            }
            fields.push(ContactField::AssignedTo(
                short(C_ASSIGNED, "assigned organizer")?.to_owned(),
            ));
            let mut seen_tags = HashSet::new();
            for tag in cells.text(cols[C_TAGS], "tags", usize::MAX)?.split(';') {
                let tag = tag.trim();
                if tag.is_empty() || !seen_tags.insert(tag) {
                    continue;
                }
                if tag.len() > MAX_SHORT_TEXT {
                    return Err(cells.fail(format!("a tag is longer than {MAX_SHORT_TEXT} bytes")));
                }
                fields.push(ContactField::Tag {
                    tag: tag.to_owned(),
                    on: true,
                });
            }
            if fields.len() > MAX_FIELDS_PER_SET {
                return Err(cells.fail("too many tags"));
            }
            let id = new_contact_id();
            if let Some(key) = phone_key(phone) {
                if known.0.contains_key(&key) {
                    return Err(cells.fail("phone already belongs to a contact in this group"));
                }
                if phones.insert(key, id).is_some() {
                    return Err(cells.fail("phone appears on an earlier row"));
                }
            }
            out.operations.push(Operation::ContactSet {
                contact: id,
                fields,
            });
            out.contacts += 1;
            tick(&mut done);
        }
    }

    if let Some(rows) = &note_rows {
        let file = "notes";
        let cols = map_header(
            file,
            &rows[0].0,
            NOTE_COLUMNS,
            &[N_PHONE, N_TEXT],
            &mut out.ignored_columns,
        )?;
        for (rec, line) in rows.iter().skip(1) {
            let cells = Cells {
                file,
                rec,
                line: *line,
            };
            if rec.iter().all(|c| c.iter().all(u8::is_ascii_whitespace)) {
                tick(&mut done);
                continue;
            }
            let phone = cells.text(cols[N_PHONE], "contact phone", MAX_SHORT_TEXT)?;
            let contact = phone_key(phone)
                .and_then(|k| phones.get(&k).or_else(|| known.0.get(&k)).copied())
                .ok_or_else(|| cells.fail("no contact has this phone"))?;
            let text = cells.text(cols[N_TEXT], "text", MAX_LONG_TEXT)?;
            if text.is_empty() {
                return Err(cells.fail("text is empty"));
            }
            let by = cells.text(cols[N_AUTHOR], "author", MAX_SHORT_TEXT)?;
            let date = match cells.text(cols[N_DATE], "date", MAX_SHORT_TEXT)? {
                "" => None,
                d => Some(
                    d.parse::<Day>()
                        .map_err(|_| cells.fail("date must be a real date written YYYY-MM-DD"))?,
                ),
            };
            out.operations.push(Operation::NoteAdded {
                contact,
                note: Note {
                    text: text.to_owned(),
                    date,
                    by: (!by.is_empty()).then(|| by.to_owned()),
                },
            });
            out.notes += 1;
            tick(&mut done);
        }
    }
    progress(total, total);
    Ok(out)
}

/// The reference header of the contacts file.
pub const CONTACTS_HEADER: [&str; 8] = [
    "name",
    "department",
    "shift",
    "job",
    "phone",
    "rating",
    "tags",
    "assigned_to",
];

/// The reference header of the notes file.
pub const NOTES_HEADER: [&str; 4] = ["contact_phone", "author", "date", "text"];

fn write_err(file: &'static str) -> impl Fn(csv::Error) -> CsvError {
    move |_| CsvError::Read {
        file,
        reason: "cannot be written".into(),
    }
}

/// Writes the contacts (not removed) and their notes as the two reference files.
/// A note's `author` is who had the conversation, or else its author's member name;
/// its `date` the conversation's day, or else the day it was logged.
pub fn export_rows(
    contacts: &[ContactRow],
    notes: &[NoteRow],
    members: &[MemberRow],
    contacts_out: &mut dyn Write,
    notes_out: &mut dyn Write,
) -> Result<(), CsvError> {
    let mut w = csv::Writer::from_writer(contacts_out);
    let err = write_err("contacts");
    w.write_record(CONTACTS_HEADER).map_err(&err)?;
    let mut phone_of: HashMap<ContactId, &str> = HashMap::new();
    for c in contacts.iter().filter(|c| !c.removed) {
        phone_of.insert(c.id, &c.handle);
        let rating = c.rating.map(|r| r.get().to_string()).unwrap_or_default();
        let tags = c.tags_on().collect::<Vec<_>>().join(";");
        w.write_record([
            c.name.as_str(),
            &c.department,
            &c.shift,
            &c.job,
            &c.handle,
            &rating,
            &tags,
            &c.assigned_to,
        ])
        .map_err(&err)?;
    }
    w.flush().map_err(|_| CsvError::Read {
        file: "contacts",
        reason: "cannot be written".into(),
    })?;
    let names: HashMap<_, &str> = members
        .iter()
        .map(|m| (m.identity, m.name.as_str()))
        .collect();
    let mut w = csv::Writer::from_writer(notes_out);
    let err = write_err("notes");
    w.write_record(NOTES_HEADER).map_err(&err)?;
    for n in notes {
        let Some(phone) = phone_of.get(&n.contact) else {
            continue; // a removed contact's notes stay out
        };
        let author =
            n.by.as_deref()
                .or_else(|| names.get(&n.author.identity).copied())
                .unwrap_or("");
        let date = n.date.unwrap_or(n.day).to_string();
        w.write_record([*phone, author, &date, &n.text])
            .map_err(&err)?;
    }
    w.flush().map_err(|_| CsvError::Read {
        file: "notes",
        reason: "cannot be written".into(),
    })?;
    Ok(())
}

/// Exports a group from the store's views (see [`export_rows`]); contacts by name.
pub fn export(
    store: &Store,
    group: &GroupId,
    contacts_out: &mut dyn Write,
    notes_out: &mut dyn Write,
) -> Result<(), CsvError> {
    let contacts = store.contacts(group, &caucus_model::ContactFilter::all())?;
    let notes = store.all_notes(group)?;
    let members = store.members(group)?;
    export_rows(&contacts, &notes, &members, contacts_out, notes_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_phones_normalize() {
        assert_eq!(header_key("\u{feff} Assigned  To "), "assigned_to");
        assert_eq!(header_key("ASSIGNED-TO"), "assigned_to");
        assert_eq!(header_key("contact_phone"), "contact_phone");
        assert_eq!(phone_key("+1 (718) 531-2471"), Some("+17185312471".into()));
        assert_eq!(phone_key("+1-718-531-2471"), Some("+17185312471".into()));
        assert_eq!(phone_key(" - "), None);
    }
}
