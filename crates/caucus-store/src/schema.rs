//! Versioned migrations, applied in order on open.
//!
//! Migration `n` (1-based) moves a database from schema `n - 1` to `n`; SQLite's
//! `user_version` holds the current number. Files are never edited once released: a
//! change is a new file.

use crate::StoreError;
use rusqlite::Connection;
use std::path::Path;

/// The migrations, in order. Index `i` brings schema `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_entries.sql"),
    include_str!("../migrations/0002_bodies_and_views.sql"),
    include_str!("../migrations/0003_views_version.sql"),
    include_str!("../migrations/0004_entry_format_2.sql"),
];

/// The schema whose migration first needs entries in body format 2: a database below it
/// holding a format-1 body is refused (see [`check_no_format_1`]).
const FORMAT_2_SCHEMA: u32 = 4;

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Brings `conn` up to `target` (at most [`SCHEMA_VERSION`]), each step in its own
/// transaction together with the version bump.
pub(crate) fn migrate_to(
    conn: &mut Connection,
    path: &Path,
    target: u32,
) -> Result<u32, StoreError> {
    let found: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .take(target as usize)
        .skip(found as usize)
    {
        let tx = conn.transaction()?;
        if i + 1 == FORMAT_2_SCHEMA as usize {
            check_no_format_1(&tx)?;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as u32)?;
        tx.commit()?;
    }
    Ok(found)
}

/// Refuses a database holding an entry body in caucus's old format 1 (a body's first
/// byte is its version). Envelopes stored without a body (relays, entries not opened
/// yet) carry no readable version and are kept: they fail to open later, like any entry
/// of an unknown format.
fn check_no_format_1(conn: &Connection) -> Result<(), StoreError> {
    let old: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM entries
                         WHERE body IS NOT NULL AND substr(body, 1, 1) = x'01')",
        [],
        |r| r.get(0),
    )?;
    if old {
        Err(StoreError::OldEntryFormat)
    } else {
        Ok(())
    }
}
