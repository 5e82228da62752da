//! What an organizer reads, as the node answers it: contacts, a contact with its
//! notes, follow-ups, the workplace map, members, devices, current notices, and the
//! spreadsheets in and out. Read from the store's materialized views (no fold), with the
//! node stopped or running.
//!
//! The row types are the store's view rows, re-exported here as the node's view types:
//! a front end (the `caucus` command, a mobile shell) renders them and needs nothing
//! from `caucus-store`.

use crate::{Node, NodeError, now_ms};
use caucus_model::{ContactFilter, SupportShare, WorkplaceMap};
use caucus_proto::limits::{MAX_RECORDS_PER_ENTRY, PACK_TEXT_BYTES};
use caucus_proto::{ContactId, Day, GroupId, Operation};
use caucus_store::spreadsheet::{self, CsvError, KnownPhones};

/// A contact with its conversation log.
pub use caucus_store::ContactDetail;
/// A contact as listed: its fields, tags and whether it was removed.
pub use caucus_store::ContactRow;
/// A device linked to the group (revoked ones flagged).
pub use caucus_store::DeviceRow;
/// A follow-up due, with its contact's name and whether it is overdue.
pub use caucus_store::DueRow;
/// A follow-up.
pub use caucus_store::FollowupRow;
/// A member of the group (removed ones flagged).
pub use caucus_store::MemberRow;
/// A conversation note.
pub use caucus_store::NoteRow;
/// A notice.
pub use caucus_store::NoticeRow;
/// A current notice with "delivered to k of n".
pub use caucus_store::NoticeSummary;

/// An import read and checked in full, ready to be written in one transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PreparedImport {
    /// The operations, packed (up to a thousand records per entry: one signature,
    /// nonce, tag and membership proof for many rows instead of one each).
    pub operations: Vec<Operation>,
    /// Contact rows read.
    pub contacts: usize,
    /// Note rows read.
    pub notes: usize,
}

/// A group exported as the two reference spreadsheets (plain text: keep them safe).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpreadsheetExport {
    /// The contacts file.
    pub contacts_csv: Vec<u8>,
    /// The notes file.
    pub notes_csv: Vec<u8>,
    /// Contact rows written.
    pub contacts: usize,
    /// Note rows written.
    pub notes: usize,
}

fn csv_error(e: CsvError) -> NodeError {
    match e {
        CsvError::Store(e) => NodeError::Store(e),
        other => NodeError::Usage(other.to_string()),
    }
}

/// Rows of a CSV file written by the export: its lines, less the header.
fn data_rows(csv: &[u8]) -> usize {
    csv.iter()
        .filter(|b| **b == b'\n')
        .count()
        .saturating_sub(1)
}

impl Node {
    /// Contacts (not removed) matching `filter`, by name then id.
    pub fn contacts(
        &self,
        group: &GroupId,
        filter: &ContactFilter,
    ) -> Result<Vec<ContactRow>, NodeError> {
        Ok(self.store.contacts(group, filter)?)
    }

    /// Every contact row of the group, removed ones included, by id.
    pub fn all_contacts(&self, group: &GroupId) -> Result<Vec<ContactRow>, NodeError> {
        Ok(self.store.all_contacts(group)?)
    }

    /// A contact with its notes, if the group has it.
    pub fn contact_detail(
        &self,
        group: &GroupId,
        contact: &ContactId,
    ) -> Result<Option<ContactDetail>, NodeError> {
        Ok(self.store.contact(group, contact)?)
    }

    /// Every follow-up of the group, by id.
    pub fn followups(&self, group: &GroupId) -> Result<Vec<FollowupRow>, NodeError> {
        Ok(self.store.followups(group)?)
    }

    /// Follow-ups not done and due within `days` from today: overdue first.
    pub fn followups_due(&self, group: &GroupId, days: u32) -> Result<Vec<DueRow>, NodeError> {
        Ok(self
            .store
            .followups_due(group, Day::from_unix_ms(now_ms()), days)?)
    }

    /// Notices current now (not cancelled, not expired), by start.
    pub fn current_notices(&self, group: &GroupId) -> Result<Vec<NoticeSummary>, NodeError> {
        Ok(self.store.current_notices(group, now_ms())?)
    }

    /// Every member ever added (removed ones flagged), by identity key.
    pub fn members(&self, group: &GroupId) -> Result<Vec<MemberRow>, NodeError> {
        Ok(self.store.members(group)?)
    }

    /// Every device ever linked (revoked ones flagged), by device key.
    pub fn devices(&self, group: &GroupId) -> Result<Vec<DeviceRow>, NodeError> {
        Ok(self.store.devices(group)?)
    }

    /// The workplace map: contacts by department and shift, by rating.
    pub fn workplace_map(&self, group: &GroupId) -> Result<WorkplaceMap, NodeError> {
        Ok(self.store.workplace_map(group)?)
    }

    /// Supportive contacts against the campaign's headcount and target.
    pub fn support_share(&self, group: &GroupId) -> Result<SupportShare, NodeError> {
        Ok(self.store.support_share(group)?)
    }

    /// Entries the group holds.
    pub fn entry_count(&self, group: &GroupId) -> Result<u64, NodeError> {
        Ok(self.store.entry_count(group)?)
    }

    /// Reads and checks a contacts spreadsheet (and a notes one) in full, all or
    /// nothing, into packed operations for [`Node::write_many`] (or a running node's
    /// write). `progress(done, total)` counts rows checked. The first bad row is the
    /// error (`contacts line N: …`).
    pub fn prepare_import(
        &self,
        group: &GroupId,
        contacts: &mut dyn std::io::Read,
        notes: Option<&mut dyn std::io::Read>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<PreparedImport, NodeError> {
        let known = KnownPhones::from_store(&self.store, group)?;
        let import = spreadsheet::import(
            Some(contacts),
            notes,
            &known,
            &mut || ContactId(crate::core::random16()),
            progress,
        )
        .map_err(csv_error)?;
        Ok(PreparedImport {
            operations: Operation::pack(import.operations, MAX_RECORDS_PER_ENTRY, PACK_TEXT_BYTES),
            contacts: import.contacts,
            notes: import.notes,
        })
    }

    /// The group's contacts (by name) and notes as the two reference spreadsheets.
    pub fn export_spreadsheets(&self, group: &GroupId) -> Result<SpreadsheetExport, NodeError> {
        let mut contacts_csv = Vec::new();
        let mut notes_csv = Vec::new();
        spreadsheet::export(&self.store, group, &mut contacts_csv, &mut notes_csv)
            .map_err(csv_error)?;
        Ok(SpreadsheetExport {
            contacts: data_rows(&contacts_csv),
            notes: data_rows(&notes_csv),
            contacts_csv,
            notes_csv,
        })
    }
}
