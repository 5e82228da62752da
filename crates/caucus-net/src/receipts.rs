//! `/caucus/receipt/1`: receipts for urgent notices, carried back to the sender along
//! the path the notice came by, never gossiped.
//!
//! Every node remembers, for a while, which peer first delivered each gossiped entry
//! ([`Routes`]). A node that wants to confirm an entry hands a sealed receipt to
//! [`crate::Network::send_receipt`]; it goes to that peer, which forwards it the same
//! way, until it reaches the node that published the entry, whose backend opens it
//! ([`crate::Backend::receipts`]). Receipts for one entry that meet at a node within
//! [`RECEIPT_FLUSH`] travel on as one [`ReceiptBatch`]. A node or relay on the way sees
//! only sealed bytes for an entry id.
//!
//! ```text
//! sender -> receiver : one frame [ ReceiptBatch ] then close        (no reply)
//! ```
//!
//! Costs: one small frame per hop per batch, instead of an entry that every member
//! opens and stores. Bounds: [`MAX_RECEIPT_STREAMS`] inbound at once, frames of at most
//! `MAX_RECEIPT_BATCH_BYTES`, [`MAX_FORWARDED_PER_ENTRY`] receipts forwarded per entry,
//! [`ROUTES_AT_MOST`] remembered origins.

use crate::framing::{read_frame, write_frame};
use caucus_proto::limits::{MAX_RECEIPT_BATCH_BYTES, MAX_RECEIPTS_PER_BATCH};
use caucus_proto::{EntryId, GroupId, ReceiptBatch, SealedReceipt};
use futures::AsyncWriteExt;
use libp2p::{PeerId, StreamProtocol};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;
use tokio::sync::mpsc;

/// The protocol name.
pub const RECEIPT_PROTOCOL: StreamProtocol = StreamProtocol::new("/caucus/receipt/1");

/// Inbound receipt streams read at once; more wait in libp2p's queue.
pub const MAX_RECEIPT_STREAMS: usize = 16;

/// Longest reading or sending one frame may take.
pub const RECEIPT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long receipts for one entry gather at a node before they move on together.
pub const RECEIPT_FLUSH: Duration = Duration::from_millis(10);

/// Origins of gossiped entries remembered, oldest forgotten first.
pub const ROUTES_AT_MOST: usize = 16_384;

/// Most receipts a node forwards for one entry (about one per device of a large group).
pub const MAX_FORWARDED_PER_ENTRY: u32 = 4_096;

/// A batch of receipts read from a peer, for the swarm task.
#[derive(Debug)]
pub(crate) struct Inbound {
    pub(crate) from: PeerId,
    pub(crate) batch: ReceiptBatch,
}

/// Where a receipt for an entry goes from this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// This node published the entry: its backend takes the receipt.
    Here,
    /// Back to the peer that delivered the entry.
    Peer(PeerId),
    /// Unknown (the entry came by sync, or was forgotten).
    None,
}

/// The origins of recently gossiped entries and the entries this node published.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    origin: HashMap<EntryId, (PeerId, u32)>,
    published: HashSet<EntryId>,
    order: VecDeque<EntryId>,
}

impl Routes {
    fn remember(&mut self, entry: EntryId) {
        self.order.push_back(entry);
        while self.order.len() > ROUTES_AT_MOST {
            if let Some(old) = self.order.pop_front() {
                self.origin.remove(&old);
                self.published.remove(&old);
            }
        }
    }

    /// `entry` was first delivered by `peer` (later deliveries are ignored).
    pub(crate) fn delivered(&mut self, entry: EntryId, peer: PeerId) {
        if self.published.contains(&entry) || self.origin.contains_key(&entry) {
            return;
        }
        self.origin.insert(entry, (peer, 0));
        self.remember(entry);
    }

    /// This node published `entry`.
    pub(crate) fn published(&mut self, entry: EntryId) {
        if self.published.insert(entry) {
            self.origin.remove(&entry);
            self.remember(entry);
        }
    }

    /// Where `count` receipts for `entry` arriving from `from` (`None`: this node's own)
    /// go; counts them against [`MAX_FORWARDED_PER_ENTRY`].
    pub(crate) fn route(&mut self, entry: &EntryId, from: Option<PeerId>, count: u32) -> Route {
        if self.published.contains(entry) {
            return Route::Here;
        }
        match self.origin.get_mut(entry) {
            // Never back to where it came from (a peer confused about the path).
            Some((peer, _)) if Some(*peer) == from => Route::None,
            Some((peer, forwarded)) if *forwarded + count <= MAX_FORWARDED_PER_ENTRY => {
                *forwarded += count;
                Route::Peer(*peer)
            }
            _ => Route::None,
        }
    }
}

/// Receipts waiting to move on, by next hop and entry.
#[derive(Debug, Default)]
pub(crate) struct Outgoing {
    pending: HashMap<(PeerId, GroupId, EntryId), Vec<SealedReceipt>>,
}

impl Outgoing {
    /// Queues receipts for `peer`; true if the queue was empty (arm the flush timer).
    pub(crate) fn push(
        &mut self,
        peer: PeerId,
        group: GroupId,
        entry: EntryId,
        receipts: Vec<SealedReceipt>,
    ) -> bool {
        let was_empty = self.pending.is_empty();
        self.pending
            .entry((peer, group, entry))
            .or_default()
            .extend(receipts);
        was_empty
    }

    /// Everything queued, as batches of at most `MAX_RECEIPTS_PER_BATCH`.
    pub(crate) fn take(&mut self) -> Vec<(PeerId, ReceiptBatch)> {
        let mut out = Vec::new();
        for ((peer, group, entry), receipts) in self.pending.drain() {
            for chunk in receipts.chunks(MAX_RECEIPTS_PER_BATCH) {
                out.push((
                    peer,
                    ReceiptBatch {
                        group,
                        entry,
                        receipts: chunk.to_vec(),
                    },
                ));
            }
        }
        out
    }
}

/// Sends one batch to `peer` on a new stream, asking again (up to [`SEND_ATTEMPTS`]
/// times, within [`RECEIPT_TIMEOUT`]) when the stream went to a connection that closed
/// under it. A batch that still fails is dropped: the sender's delivery record tells
/// each receiver whether its receipt arrived (see `caucus-node`).
pub(crate) async fn send(control: libp2p_stream::Control, peer: PeerId, batch: ReceiptBatch) {
    let Ok(frame) = batch.encode() else {
        return;
    };
    let attempt = |mut control: libp2p_stream::Control, frame: Vec<u8>| async move {
        let mut stream = control
            .open_stream(peer, RECEIPT_PROTOCOL)
            .await
            .map_err(|e| e.to_string())?;
        write_frame(&mut stream, &frame)
            .await
            .map_err(|e| e.to_string())?;
        let _ = stream.close().await;
        Ok::<(), String>(())
    };
    let all = async {
        let mut last = String::new();
        for i in 0..SEND_ATTEMPTS {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(100 << i)).await;
            }
            match attempt(control.clone(), frame.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
        }
        Err(last)
    };
    match tokio::time::timeout(RECEIPT_TIMEOUT, all).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(%peer, "receipts not sent: {e}"),
        Err(_) => tracing::debug!(%peer, "receipts not sent: timed out"),
    }
}

/// How many times a batch is offered to the next hop.
pub const SEND_ATTEMPTS: u32 = 4;

/// Reads inbound receipt streams and hands each batch to the swarm task.
pub(crate) async fn accept_loop(
    mut incoming: libp2p_stream::IncomingStreams,
    to_driver: mpsc::Sender<Inbound>,
) {
    use futures::StreamExt;
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_RECEIPT_STREAMS));
    while let Some((peer, mut stream)) = incoming.next().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let to_driver = to_driver.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let read = tokio::time::timeout(
                RECEIPT_TIMEOUT,
                read_frame(&mut stream, MAX_RECEIPT_BATCH_BYTES, |_| {}),
            )
            .await;
            let _ = stream.close().await;
            match read {
                Ok(Ok(frame)) => match ReceiptBatch::decode(&frame) {
                    Ok(batch) => {
                        let _ = to_driver.send(Inbound { from: peer, batch }).await;
                    }
                    Err(e) => tracing::debug!(%peer, "malformed receipts: {e}"),
                },
                Ok(Err(e)) => tracing::debug!(%peer, "receipts unreadable: {e}"),
                Err(_) => tracing::debug!(%peer, "receipts timed out"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_go_back_the_way_the_entry_came_and_no_further() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut routes = Routes::default();
        let (mine, theirs, unknown) = (EntryId([1; 32]), EntryId([2; 32]), EntryId([3; 32]));
        routes.published(mine);
        routes.delivered(theirs, a);
        routes.delivered(theirs, b); // a later copy does not move the route
        routes.delivered(mine, b); // an echo of our own entry neither
        assert_eq!(routes.route(&mine, Some(b), 1), Route::Here);
        assert_eq!(routes.route(&theirs, None, 1), Route::Peer(a));
        assert_eq!(routes.route(&theirs, Some(b), 1), Route::Peer(a));
        assert_eq!(routes.route(&theirs, Some(a), 1), Route::None);
        assert_eq!(routes.route(&unknown, None, 1), Route::None);
        // Forwarding per entry is capped.
        assert_eq!(
            routes.route(&theirs, None, MAX_FORWARDED_PER_ENTRY),
            Route::None
        );
    }

    #[test]
    fn origins_are_forgotten_oldest_first() {
        let peer = PeerId::random();
        let mut routes = Routes::default();
        for i in 0..=ROUTES_AT_MOST as u32 {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_le_bytes());
            routes.delivered(EntryId(id), peer);
        }
        assert_eq!(routes.route(&EntryId([0; 32]), None, 1), Route::None);
        let mut last = [0u8; 32];
        last[..4].copy_from_slice(&(ROUTES_AT_MOST as u32).to_le_bytes());
        assert_eq!(routes.route(&EntryId(last), None, 1), Route::Peer(peer));
        assert!(routes.origin.len() <= ROUTES_AT_MOST);
    }
}
