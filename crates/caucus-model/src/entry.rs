//! The model's input: an entry already opened and verified by `caucus-crypto`, and the
//! total order in which entries are folded.

use caucus_proto::{Author, Body, Chain, DeviceKey, EntryId, EventId, Hlc, Operation};
use serde::Serialize;

/// An entry as the model sees it: opened, decoded and signature-checked by the crypto
/// layer. The model trusts the author fields cryptographically but still checks that the
/// author is a member, that the device is linked and not revoked, and that the role
/// allows the operation (see the crate docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OpenedEntry {
    /// Content id of the entry (BLAKE3 of its envelope).
    pub id: EntryId,
    /// Who wrote it: organizer identity and signing device.
    pub author: Author,
    /// The event the body names ([`Body::event_id`]): shared by re-sealed copies, named
    /// by the device's next entry and by authority heads.
    pub event: EventId,
    /// Its place in its device's chain and, for an authority entry, the heads it was
    /// made on.
    pub chain: Chain,
    /// The author's hybrid logical clock when writing it.
    pub hlc: Hlc,
    /// The epoch whose key sealed it: an epoch key delivery must be sealed under the
    /// epoch before the one it delivers.
    pub epoch: u64,
    /// What it says.
    pub op: Operation,
}

impl OpenedEntry {
    /// The model's view of an opened body: its entry id, the epoch it was sealed under,
    /// and the body's author, clock and operation (the signature was checked already).
    pub fn new(id: EntryId, epoch: u64, body: Body) -> OpenedEntry {
        // A decoded body always encodes; the entry id stands in if it ever did not.
        let event = body.event_id().unwrap_or(EventId(id.0));
        OpenedEntry {
            id,
            author: body.author,
            event,
            chain: body.chain,
            hlc: body.hlc,
            epoch,
            op: body.op,
        }
    }

    /// [`OpenedEntry::new`] when the event id is known already (the crypto layer
    /// computed it while verifying the signature, or the store kept it): saves encoding
    /// the body again. `event` must be the body's [`Body::event_id`].
    pub fn with_event(id: EntryId, epoch: u64, event: EventId, body: Body) -> OpenedEntry {
        OpenedEntry {
            id,
            author: body.author,
            event,
            chain: body.chain,
            hlc: body.hlc,
            epoch,
            op: body.op,
        }
    }

    /// The clock of the last event this entry stands for: its own clock, or for an
    /// [`Operation::Records`] entry of `n` records, the clock of record `n - 1`. A device
    /// that saw the entry observes this clock, so its next write sorts after every record.
    pub fn last_hlc(&self) -> Hlc {
        match &self.op {
            Operation::Records { ops } => self.hlc.nth(ops.len().saturating_sub(1) as u32),
            _ => self.hlc,
        }
    }

    /// The events this entry stands for: itself, or each record of an
    /// [`Operation::Records`] entry as an entry of its own, named
    /// [`EntryId::of_record`] and stamped with the entry's clock advanced by its index
    /// ([`Hlc::nth`]); records keep the entry's event id and chain (they are one place
    /// in the device's chain). The fold sees only these.
    pub fn records(self) -> Vec<OpenedEntry> {
        match self.op {
            Operation::Records { ops } => ops
                .into_iter()
                .enumerate()
                .map(|(i, op)| OpenedEntry {
                    id: EntryId::of_record(&self.id, i as u32),
                    author: self.author,
                    event: self.event,
                    chain: self.chain.clone(),
                    hlc: self.hlc.nth(i as u32),
                    epoch: self.epoch,
                    op,
                })
                .collect(),
            op => vec![OpenedEntry { op, ..self }],
        }
    }

    /// The entry's place in the fold order.
    pub fn fold_key(&self) -> FoldKey {
        FoldKey {
            hlc: self.hlc,
            device: self.author.device,
            id: self.id,
        }
    }
}

/// The total order of the fold: hybrid logical clock, then author device, then entry id.
///
/// Every replica sorts the same set of entries the same way, so applying them in this
/// order gives the same state everywhere. "Last writer wins" in this crate always means
/// "greatest `FoldKey` wins".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct FoldKey {
    /// The entry's clock.
    pub hlc: Hlc,
    /// The signing device: breaks ties between authors writing in the same millisecond.
    pub device: DeviceKey,
    /// The entry id: breaks the last ties (one device, one clock, two entries).
    pub id: EntryId,
}
