//! The local store of a caucus node: entries and state in SQLite, encrypted at rest,
//! crash-safe.
//!
//! - **Encryption at rest** is SQLCipher (rusqlite's `bundled-sqlcipher-vendored-openssl`):
//!   every page of the database, its write-ahead log and its journals is encrypted with
//!   AES-256 under a raw 32-byte [`DbKey`], which the node derives from the organizer's
//!   passphrase through the crypto layer (Argon2id); the store never sees the passphrase.
//!   Temporary tables and indices stay in memory (`temp_store = MEMORY`), so no plaintext
//!   temp file is ever written.
//! - **Crash safety**: WAL mode with `synchronous = FULL`; a batch of entries is one
//!   transaction, and [`Store::insert_entries`] returns only once it is durable, so an
//!   entry reported stored survives a kill at any instant (and a power cut).
//! - **Readers and a writer** (the CLI while `caucus run` is up) use separate connections;
//!   WAL lets readers proceed during a write, and a busy timeout covers writer contention.
//! - **Migrations** are SQL files in `migrations/`, applied in order on open and recorded
//!   in SQLite's `user_version`; a database from a newer caucus is refused, not touched.
//!
//! Entries are stored as the ciphertext envelopes they travel as, keyed by content id, so
//! inserting one twice is a no-op.

mod error;
mod key;
mod schema;
mod store;

pub use error::StoreError;
pub use key::DbKey;
pub use schema::SCHEMA_VERSION;
pub use store::{Inserted, Store, StoredEntry};
