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
];

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
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as u32)?;
        tx.commit()?;
    }
    Ok(found)
}
