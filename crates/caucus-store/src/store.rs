//! The [`Store`]: one SQLCipher connection, with the operations the node needs.

use crate::schema::{self, SCHEMA_VERSION};
use crate::{DbKey, StoreError};
use caucus_proto::{EntryId, GroupId};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// How long a connection waits for another connection's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// SQLCipher 4.20 finishes its own set-up (`sqlcipher_extra_init`) after SQLite marks
/// itself initialized, so a second thread opening a connection at that moment finds no
/// crypto provider and `PRAGMA key` fails ("An error occurred with PRAGMA key or
/// rekey"). Every open first waits here until one connection has been opened in full.
fn sqlcipher_ready() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        // Opening any connection runs sqlite3_initialize to the end, extra init included;
        // an error here surfaces again, with its reason, on the real open below.
        drop(Connection::open_in_memory());
    });
}

/// An entry as stored: its content id, the header fields the store indexes, and the
/// encoded envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEntry {
    /// Content id (BLAKE3 of `envelope`).
    pub id: EntryId,
    /// Group, from the envelope header.
    pub group: GroupId,
    /// Epoch, from the envelope header.
    pub epoch: u64,
    /// The encoded envelope.
    pub envelope: Vec<u8>,
}

/// What a batch insert did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inserted {
    /// Ids that were new, in batch order.
    pub new: Vec<EntryId>,
    /// How many were already stored.
    pub duplicates: usize,
}

/// A node's local database. One per home directory; open it once per process (the
/// daemon) or per command (the CLI): several may be open at once.
#[derive(Debug)]
pub struct Store {
    pub(crate) conn: Connection,
    path: PathBuf,
    /// Entry ids in memory, shared with the readers this store opens.
    pub(crate) ids: crate::index::IdCache,
}

/// Opens a connection read-write (plus `extra` flags), gives SQLCipher the key and reads
/// once: a wrong key or a damaged header is [`StoreError::Unreadable`] here.
fn connect(path: &Path, key: &DbKey, extra: OpenFlags) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI
        | extra;
    sqlcipher_ready();
    let conn = Connection::open_with_flags(path, flags)?;
    // The key must be the first statement on the connection.
    conn.execute_batch(&format!(
        "PRAGMA key = \"{}\";",
        key.pragma_value().as_str()
    ))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // First read: fails with NOTADB on a wrong key or a damaged header.
    match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(_) => Ok(conn),
        Err(e) if is_not_a_database(&e) => Err(StoreError::Unreadable {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(e.into()),
    }
}

impl Store {
    /// Opens the database at `path` with `key`, creating it if missing, and brings its
    /// schema up to date.
    pub fn open(path: &Path, key: &DbKey) -> Result<Store, StoreError> {
        Self::open_at_version(path, key, SCHEMA_VERSION)
    }

    /// Opens an existing database read-write without creating one.
    pub fn open_existing(path: &Path, key: &DbKey) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Sqlite(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(format!("no database at {}", path.display())),
            )));
        }
        Self::open(path, key)
    }

    /// Opens (creating if missing) and migrates only up to `version`: for migration tests.
    #[doc(hidden)]
    pub fn open_at_version(path: &Path, key: &DbKey, version: u32) -> Result<Store, StoreError> {
        let mut conn = connect(path, key, OpenFlags::SQLITE_OPEN_CREATE)?;
        let unreadable = || StoreError::Unreadable {
            path: path.to_path_buf(),
        };
        // cache_size: 64 MiB. Every page SQLCipher reads is decrypted and authenticated,
        // so a cache holding a group's working set (random entry ids land on random
        // pages) matters far more than with plain SQLite: with the 2 MiB default a
        // 60,000-entry batch spilled and re-read pages, 4x slower. wal_autocheckpoint:
        // 8,192 pages (32 MiB), so a page rewritten by many batches is copied back into
        // the database file once per checkpoint rather than once per few batches.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA temp_store = MEMORY;
             PRAGMA foreign_keys = ON;
             PRAGMA secure_delete = ON;
             PRAGMA cache_size = -65536;
             PRAGMA wal_autocheckpoint = 8192;",
        )
        .map_err(|e| {
            if is_not_a_database(&e) {
                unreadable()
            } else {
                e.into()
            }
        })?;
        schema::migrate_to(&mut conn, path, version).map_err(|e| match e {
            StoreError::Sqlite(ref s) if is_not_a_database(s) => unreadable(),
            other => other,
        })?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            ids: Default::default(),
        })
    }

    /// A read-only connection to this store's database, sharing its entry ids in memory
    /// (see [`Store::open_reader`]).
    pub fn reader(&self, key: &DbKey) -> Result<Store, StoreError> {
        let mut r = Store::open_reader(&self.path, key)?;
        r.ids = self.ids.clone();
        Ok(r)
    }

    /// A second, read-only connection to an open database (WAL lets it read while the
    /// first one writes): catch-up sync reads the entry index through it, so a batch
    /// being stored does not hold up the session fetching the next one. Its page cache is
    /// smaller (8 MiB); it never migrates.
    pub fn open_reader(path: &Path, key: &DbKey) -> Result<Store, StoreError> {
        let conn = connect(path, key, OpenFlags::empty())?;
        conn.execute_batch(
            "PRAGMA query_only = ON;
             PRAGMA temp_store = MEMORY;
             PRAGMA cache_size = -8192;",
        )?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            ids: Default::default(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// The connection's `PRAGMA synchronous` (2 = `FULL`: every commit waits for the
    /// disk; see [`crate::Durability`]), for diagnostics and tests.
    pub fn synchronous(&self) -> Result<u8, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))?)
    }

    /// Runs SQLite's full integrity check.
    pub fn check_integrity(&self) -> Result<(), StoreError> {
        let report: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if report == "ok" {
            Ok(())
        } else {
            Err(StoreError::Corrupt {
                path: self.path.clone(),
                detail: report.lines().next().unwrap_or_default().to_string(),
            })
        }
    }

    /// Stores a batch of entries in one durable transaction. Entries already stored are
    /// skipped (same content id, same bytes). When this returns `Ok`, every entry in the
    /// batch survives a crash.
    pub fn insert_entries(
        &mut self,
        batch: &[StoredEntry],
        received_ms: u64,
    ) -> Result<Inserted, StoreError> {
        let tx = self.conn.transaction()?;
        let mut out = Inserted::default();
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO entries (id, group_id, epoch, envelope, received_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for e in batch {
                let n = stmt.execute(params![
                    e.id.as_bytes().as_slice(),
                    e.group.as_bytes().as_slice(),
                    to_sql_u64(e.epoch),
                    e.envelope,
                    to_sql_u64(received_ms),
                ])?;
                if n == 1 {
                    out.new.push(e.id);
                } else {
                    out.duplicates += 1;
                }
            }
        }
        tx.commit()?;
        // One sorted merge per group, not one shift per id (a relay stores thousands).
        let mut by_group: std::collections::HashMap<GroupId, Vec<EntryId>> = Default::default();
        let new: std::collections::HashSet<&EntryId> = out.new.iter().collect();
        for e in batch.iter().filter(|e| new.contains(&e.id)) {
            by_group.entry(e.group).or_default().push(e.id);
        }
        for (group, ids) in by_group {
            self.ids.add(&group, ids);
        }
        Ok(out)
    }

    /// Whether an entry is stored.
    pub fn has_entry(&self, id: &EntryId) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM entries WHERE id = ?1")?
            .exists([id.as_bytes().as_slice()])?)
    }

    /// The encoded envelope of a stored entry.
    pub fn entry(&self, id: &EntryId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT envelope FROM entries WHERE id = ?1")?
            .query_row([id.as_bytes().as_slice()], |r| r.get(0))
            .optional()?)
    }

    /// Every entry id of a group, in ascending byte order.
    pub fn entry_ids(&self, group: &GroupId) -> Result<Vec<EntryId>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM entries WHERE group_id = ?1 ORDER BY id")?;
        let rows = stmt.query_map([group.as_bytes().as_slice()], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(entry_id(&row?)?);
        }
        Ok(out)
    }

    /// Every stored entry of a group, in ascending id order.
    pub fn entries(&self, group: &GroupId) -> Result<Vec<StoredEntry>, StoreError> {
        self.select_entries(
            "SELECT id, epoch, envelope FROM entries WHERE group_id = ?1 ORDER BY id",
            group,
        )
    }

    /// Runs `sql` (selecting `id, epoch, envelope` with the group as `?1`) into entries.
    pub(crate) fn select_entries(
        &self,
        sql: &str,
        group: &GroupId,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map([group.as_bytes().as_slice()], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, epoch, envelope) = row?;
            out.push(StoredEntry {
                id: entry_id(&id)?,
                group: *group,
                epoch: from_sql_u64(epoch),
                envelope,
            });
        }
        Ok(out)
    }

    /// Number of entries stored for a group.
    pub fn entry_count(&self, group: &GroupId) -> Result<u64, StoreError> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM entries WHERE group_id = ?1",
            [group.as_bytes().as_slice()],
            |r| r.get(0),
        )?;
        Ok(from_sql_u64(n))
    }

    /// Total bytes of a group's stored envelopes.
    pub fn envelope_bytes(&self, group: &GroupId) -> Result<u64, StoreError> {
        let n: i64 = self.conn.query_row(
            "SELECT coalesce(sum(length(envelope)), 0) FROM entries WHERE group_id = ?1",
            [group.as_bytes().as_slice()],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Stores a setting (small value) under `name`, replacing any previous value.
    pub fn put_setting(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO settings (name, value) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            params![name, value],
        )?;
        Ok(())
    }

    /// Reads a setting.
    pub fn setting(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM settings WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Every setting whose name starts with `prefix`, by name.
    pub fn settings_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, value FROM settings WHERE substr(name, 1, length(?1)) = ?1 ORDER BY name",
        )?;
        let rows = stmt.query_map([prefix], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Stores wrapped (already sealed) key material under `name`.
    pub fn put_wrapped_key(&mut self, name: &str, wrapped: &[u8]) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO wrapped_keys (name, wrapped) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET wrapped = excluded.wrapped",
            params![name, wrapped],
        )?;
        Ok(())
    }

    /// Reads wrapped key material.
    pub fn wrapped_key(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT wrapped FROM wrapped_keys WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Moves the write-ahead log into the database file (a full checkpoint).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}

pub(crate) fn is_not_a_database(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt)
    )
}

pub(crate) fn entry_id(bytes: &[u8]) -> Result<EntryId, StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map(EntryId)
        .map_err(|_| StoreError::Malformed("entry id is not 32 bytes"))
}

/// SQLite integers are signed; u64 values are stored by bit pattern.
pub(crate) fn to_sql_u64(v: u64) -> i64 {
    v as i64
}

pub(crate) fn from_sql_u64(v: i64) -> u64 {
    v as u64
}
