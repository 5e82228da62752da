//! The caucus node: one organizer device as a library, used by the `caucus` command,
//! the examples, the tests and (later) a mobile shell.
//!
//! - [`Node`] is the synchronous core: the device's keys, its encrypted store, and the
//!   groups it belongs to. Every command that writes or reads works on it, with the
//!   network stopped ("offline first").
//! - [`Running`] puts a `Node` on the network (`caucus-net`): gossip, catch-up sync,
//!   joins and device links over `/caucus/handshake/1`, automatic acknowledgement of
//!   urgent notices, and a [`NodeEvent`] stream. It also serves the home's control
//!   socket ([`control`]), through which CLI commands hand their writes to the running
//!   node, so one process writes a home at a time.
//! - [`relay`] is the office relay's blind store: ciphertext only, checked with relay
//!   tokens; [`relay::RelayNode`] is the one way to put it on the network.
//! - [`views`] answers what an organizer reads (contacts, notes, follow-ups, the map,
//!   members, devices, notices, spreadsheets) with the node's own view types, and
//!   [`netopts`] says what a front end says about the network: a front end needs
//!   neither `caucus-store` nor `caucus-net`.
//!
//! Logs carry ids, counts and operation kinds, never names, notes or notice text.

pub mod control;
mod core;
mod home;
pub mod netopts;
mod receipts;
pub mod relay;
pub mod requests;
mod running;
mod session;
mod verify;
pub mod views;

pub use crate::core::{
    GroupInfo, InviteInfo, MAX_CLOCK_AHEAD_MS, Node, OpenedSummary, Received, Revoked, now_ms,
};
pub use home::Home;
pub use netopts::{Multiaddr, NetOptions, PeerId, link_device};
pub use running::{
    ENTRY_EVENTS_AT_MOST, LINK_WINDOW, NODE_EVENT_QUEUE, NodeConfig, NodeEvent,
    RECEIPT_CONFIRM_WITHIN, RECORD_RECEIPTS_AFTER, Running, SyncStatus, link_new_device,
};
pub use session::Session;
pub use verify::Reverified;

use std::path::{Path, PathBuf};

/// Why a node operation failed. Messages are one line and carry no secrets or content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The home has no vault yet.
    #[error("no caucus home at {0} (run `caucus init` first, or pass --home)")]
    NotInitialized(PathBuf),
    /// The home already has a vault.
    #[error("{0} already holds a caucus home")]
    AlreadyInitialized(PathBuf),
    /// The passphrase does not unwrap the vault.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] caucus_store::StoreError),
    /// Something on disk is not what caucus wrote.
    #[error("damaged home: {0}")]
    Corrupt(String),
    /// A cryptographic step failed.
    #[error("{0}")]
    Crypto(String),
    /// The group is not one this device belongs to.
    #[error("this device is not in that group")]
    UnknownGroup,
    /// The request is refused (permissions, an invalid entry, a failed handshake).
    #[error("{0}")]
    Refused(String),
    /// The command was used wrongly.
    #[error("{0}")]
    Usage(String),
    /// The network failed.
    #[error("network: {0}")]
    Net(String),
}

impl NodeError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> NodeError {
        NodeError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
