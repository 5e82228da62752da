//! Store errors: one line each, naming the problem, never the content.

use std::path::PathBuf;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database file exists but cannot be read with this key: a wrong passphrase, or a
    /// damaged or truncated file.
    #[error("cannot read the database {path}: wrong passphrase, or the file is damaged")]
    Unreadable {
        /// The database file.
        path: PathBuf,
    },
    /// The database was written by a newer caucus.
    #[error(
        "the database {path} has schema version {found}; this caucus reads up to {supported}: upgrade caucus"
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Version found in the file.
        found: u32,
        /// Newest version this build knows.
        supported: u32,
    },
    /// The database holds entries in body format 1, which this build cannot read (nor
    /// convert: bodies are signed). Found when migrating to schema 4.
    #[error(
        "this home holds entries in caucus's old format 1; export them with the caucus build that wrote them (`caucus export`), then `caucus init` a new home and `caucus import` the file"
    )]
    OldEntryFormat,
    /// The database file failed SQLite's integrity check.
    #[error("the database {path} failed its integrity check: {detail}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// First line of SQLite's report.
        detail: String,
    },
    /// A stored row does not have the shape this build expects.
    #[error("stored data is malformed: {0}")]
    Malformed(&'static str),
    /// The group is not registered in this store ([`crate::Store::add_group`]).
    #[error("this group is not stored here")]
    UnknownGroup,
    /// A batch for one group carried an entry of another.
    #[error("an entry of another group was given in this group's batch")]
    WrongGroup,
    /// An SQLite error not covered above.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}
