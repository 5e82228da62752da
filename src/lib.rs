//! caucus: an end-to-end encrypted, peer-to-peer contact log and meeting notices for
//! union organizers.
//!
//! This facade re-exports the layers so the top-level `examples/` and `tests/` (and later
//! a mobile shell) depend on one crate. Each layer is its own crate under `crates/`; read
//! `ARCHITECTURE.md` first.

pub use caucus_crypto as crypto;
pub use caucus_model as model;
pub use caucus_net as net;
pub use caucus_node as node;
pub use caucus_proto as proto;
pub use caucus_store as store;
pub use caucus_sync as sync;
