//! The local store of a caucus node: entries and state in SQLite, encrypted at rest,
//! crash-safe, with materialized views for fast queries.
//!
//! - **Encryption at rest** is SQLCipher (rusqlite's `bundled-sqlcipher-vendored-openssl`):
//!   every page of the database, its write-ahead log and its journals is encrypted with
//!   AES-256 under a raw 32-byte [`DbKey`], which the node derives from the organizer's
//!   passphrase through the crypto layer (Argon2id); the store never sees the passphrase.
//!   Temporary tables and indices stay in memory (`temp_store = MEMORY`), so no plaintext
//!   temp file is ever written.
//! - **Crash safety**: WAL mode with `synchronous = FULL`; a batch of entries is one
//!   transaction, and [`Store::insert_entries`] / [`Store::apply`] return only once it is
//!   durable, so an entry reported stored survives a kill at any instant (and a power cut).
//!   Entries received from peers may be stored with [`Store::apply_received`]
//!   ([`Durability::Received`]): committed, so they survive a kill of the process at any
//!   instant, but without waiting for the disk, so a power cut may roll back the last
//!   batches (the peers that sent them sync them back). A device's own writes always
//!   wait for the disk.
//! - **Readers and a writer** (the CLI while `caucus run` is up) use separate connections;
//!   WAL lets readers proceed during a write, and a busy timeout covers writer contention.
//! - **Migrations** are SQL files in `migrations/`, applied in order on open and recorded
//!   in SQLite's `user_version`; a database from a newer caucus is refused, not touched.
//!
//! Entries are stored as the ciphertext envelopes they travel as, keyed by content id, so
//! inserting one twice is a no-op.
//!
//! # What the node calls
//!
//! A **relay** stores envelopes only: [`Store::insert_entries`], and serves sync from
//! [`Store::index`] (a [`caucus_sync::EntryIndex`] over one group's ids).
//!
//! A **node** also stores the body of every entry it has opened and verified, and keeps
//! each group's fold in memory:
//!
//! ```text
//! store.add_group(group, founder)?;              // once, on create/join
//! let mut g = store.load_group(&group)?;         // at start: decode bodies + fold, no crypto
//! store.apply(&mut g, batch, now_ms)?;           // per batch: Vec<Incoming { entry, body }>
//! g.state();                                     // the caucus_model::State, for the node's logic
//! ```
//!
//! [`Store::apply`] stores the envelopes and bodies, folds the bodies into the
//! [`GroupState`], and updates the materialized views and the state hash, all in one
//! durable transaction. Readers (CLI commands, with or without the node running) query
//! the views with no fold: [`Store::contacts`] (with a [`caucus_model::ContactFilter`]),
//! [`Store::contact`], [`Store::followups_due`], [`Store::current_notices`],
//! [`Store::members`], [`Store::workplace_map`], [`Store::support_share`].
//!
//! [`spreadsheet`] turns an organizer's CSV files into operations (all-or-nothing, with a
//! progress callback) and writes them back out.

mod error;
mod group;
mod index;
mod key;
mod query;
mod schema;
pub mod spreadsheet;
mod store;
mod views;

pub use error::StoreError;
pub use group::{Applied, Durability, GroupState, Incoming, VIEWS_VERSION, VerifiedBody};
pub use index::GroupIndex;
pub use key::DbKey;
pub use query::{ContactDetail, DueRow, NoticeSummary};
pub use schema::SCHEMA_VERSION;
pub use store::{Inserted, Store, StoredEntry};
pub use views::{ContactRow, DeviceRow, FollowupRow, MemberRow, NoteRow, NoticeRow};
