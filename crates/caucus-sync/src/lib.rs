//! Catch-up sync for caucus: range-based set reconciliation over entry ids, then batched
//! fetching of the missing envelopes, as a pure state machine.
//!
//! When two nodes of a group meet, each holds a set of entries named by their
//! [`EntryId`](caucus_proto::EntryId)s (BLAKE3 of the encoded envelope, so uniformly
//! distributed). A [`Session`] on each side finds the symmetric difference of the two
//! sets with a cost that grows with the size of the difference, not of the sets (two
//! sides sharing 10,000 entries and differing by one exchange about 1.2 KiB), and then
//! fetches what each side lacks in bounded batches with back-pressure.
//!
//! The crate is sans-IO in the manner of `quinn-proto`: it owns no socket, file, clock
//! or random source. The driver feeds it frames ([`Session::handle_message`]) and time
//! ([`Session::handle_timeout`]), and takes out frames ([`Session::poll_transmit`]),
//! events ([`Session::poll_event`]) and its next deadline ([`Session::poll_timeout`]).
//! The entry store is seen only through the read-only [`EntryIndex`] trait.
//!
//! ```
//! use caucus_proto::GroupId;
//! use caucus_sync::{AcceptAll, Config, Event, MemoryIndex, Role, Session};
//!
//! // Two stores sharing 1,000 entries; `a` has one more.
//! let mut a = MemoryIndex::from_entries((0u32..1000).map(|n| n.to_le_bytes().to_vec()));
//! let mut b = a.clone();
//! a.insert(b"a new note".to_vec());
//!
//! let config = Config::new(GroupId([7; 16]), b"membership proof".to_vec());
//! let mut sa = Session::new(Role::Initiator, config.clone(), Box::new(AcceptAll), 0);
//! let mut sb = Session::new(Role::Responder, config, Box::new(AcceptAll), 0);
//! let mut bytes = 0;
//! while !(sa.is_done() && sb.is_done()) {
//!     while let Some(frame) = sa.poll_transmit() {
//!         bytes += frame.len();
//!         sb.handle_message(0, &frame, &b)?;
//!     }
//!     while let Some(frame) = sb.poll_transmit() {
//!         bytes += frame.len();
//!         sa.handle_message(0, &frame, &a)?;
//!     }
//!     while let Some(event) = sb.poll_event() {
//!         if let Event::Entry { id, bytes } = event {
//!             // A node decodes the envelope and checks its proof first.
//!             b.insert_with_id(id, Some(bytes));
//!         }
//!     }
//!     while sa.poll_event().is_some() {}
//! }
//! assert_eq!(a.ids(), b.ids());
//! assert!(bytes < 1024);
//! # Ok::<(), caucus_sync::SyncError>(())
//! ```
//!
//! - [`fingerprint`]: fingerprints (BLAKE3 of count and sum of ids) and range bounds;
//! - [`reconcile`]: the reconciliation algorithm, one round at a time;
//! - [`message`]: the wire messages, their layout, bounds and validation;
//! - [`session`]: hello and authentication, rounds, fetching, timers;
//! - `sim` (feature `test-utils`): a deterministic many-replica network simulator.

pub mod fingerprint;
pub mod index;
pub mod message;
pub mod reconcile;
pub mod session;
#[cfg(feature = "test-utils")]
pub mod sim;

pub use fingerprint::{Accumulator, Bound, Fingerprint, IdRange};
pub use index::{EntryIndex, MemoryIndex};
pub use message::{Message, SyncError};
pub use session::{AcceptAll, Authenticator, Config, Event, Millis, Role, Session, Stats};
