//! Receipts for urgent notices, on the node: sealing this device's receipt, taking the
//! receipts that come back for this device's own notices, "delivered to k of n" live,
//! and recording what came back in one `NoticeDelivered` entry.
//!
//! Why not one acknowledgement entry per member: every such entry is gossiped to,
//! opened and stored by every member, so one notice cost the group n² entries. A
//! receipt travels back to the sender only (`caucus-net`'s `receipts` module); the sender
//! then writes one entry naming everyone who confirmed, which every member stores once.
//! The old `NoticeAcked` entry stays for a node that has no way back to the sender (it
//! got the notice by sync, not gossip). `proto/PROTOCOL.md`, "Receipts", has the why.

use crate::core::sealing_keys;
use crate::{Node, NodeError};
use caucus_crypto::receipt::{open_receipt, seal_receipt};
use caucus_model::Delivery;
use caucus_proto::{EntryId, GroupId, IdentityKey, NoticeId, Operation, SealedReceipt};

impl Node {
    /// Seals this device's receipt for `notice`, which arrived in `entry`.
    pub fn seal_receipt(
        &mut self,
        group: &GroupId,
        entry: &EntryId,
        notice: &NoticeId,
    ) -> Result<SealedReceipt, NodeError> {
        let (epoch, key_id) = self.sealing_key(group)?;
        let core = self.groups.get(group).ok_or(NodeError::UnknownGroup)?;
        let keys = sealing_keys(&core.keyring, epoch, key_id)?;
        seal_receipt(keys, &self.device, entry, notice, &mut rand::rng())
            .map_err(|e| NodeError::Crypto(e.to_string()))
    }

    /// Takes receipts for `entry`, an entry this device published: keeps each that opens,
    /// is signed by a current device of a current member, and confirms a notice this
    /// member posted. Returns the notice and its delivery if anyone new confirmed.
    pub fn take_receipts(
        &mut self,
        group: &GroupId,
        entry: &EntryId,
        receipts: &[SealedReceipt],
    ) -> Option<(NoticeId, Delivery)> {
        let me = self.identity();
        let core = self.groups.get_mut(group)?;
        let state = core.state.state();
        let mut news = None;
        for r in receipts {
            let opened = match open_receipt(&core.keyring, entry, r) {
                Ok(o) => o,
                Err(e) => {
                    tracing::debug!(%entry, "receipt refused: {e}");
                    continue;
                }
            };
            let Some(member) = state
                .current_devices()
                .find(|d| d.device == opened.device)
                .map(|d| d.identity)
                .filter(|m| state.is_member(m))
            else {
                tracing::debug!(%entry, "receipt from a device that is not current");
                continue;
            };
            let Some(notice) = state.notice(&opened.notice) else {
                continue;
            };
            if notice.posted_by != me || notice.acks.contains(&member) {
                continue;
            }
            if core
                .receipts
                .entry(opened.notice)
                .or_default()
                .insert(member)
            {
                news = Some(opened.notice);
            }
        }
        let notice = news?;
        Some((notice, self.delivery(group, &notice)?))
    }

    /// Counts this member as holding its own urgent notice `notice` (no entry needed).
    pub(crate) fn count_own_receipt(&mut self, group: &GroupId, notice: &NoticeId) {
        let me = self.identity();
        if let Some(core) = self.groups.get_mut(group) {
            let recorded = core
                .state
                .state()
                .notice(notice)
                .is_some_and(|n| n.acks.contains(&me));
            if !recorded {
                core.receipts.entry(*notice).or_default().insert(me);
            }
        }
    }

    /// "Delivered to k of n" for `notice`: current members recorded as holding it, in the
    /// group's entries or in receipts this device took and has not recorded yet.
    pub fn delivery(&self, group: &GroupId, notice: &NoticeId) -> Option<Delivery> {
        let core = self.groups.get(group)?;
        let state = core.state.state();
        let n = state.notice(notice)?;
        let pending = core.receipts.get(notice);
        let mut d = Delivery { acked: 0, total: 0 };
        for m in state.current_members() {
            d.total += 1;
            if n.acks.contains(&m.identity) || pending.is_some_and(|p| p.contains(&m.identity)) {
                d.acked += 1;
            }
        }
        Some(d)
    }

    /// Whether receipts are waiting to be recorded in `group`.
    pub fn has_unrecorded_receipts(&self, group: &GroupId) -> bool {
        self.groups
            .get(group)
            .is_some_and(|c| c.receipts.values().any(|s| !s.is_empty()))
    }

    /// Writes one `NoticeDelivered` entry per notice with receipts not yet recorded, and
    /// forgets them. Returns how many entries were written.
    pub fn record_deliveries(&mut self, group: &GroupId) -> Result<usize, NodeError> {
        let taken = match self.groups.get_mut(group) {
            Some(core) => std::mem::take(&mut core.receipts),
            None => return Err(NodeError::UnknownGroup),
        };
        let mut written = 0;
        for (notice, members) in taken {
            // A set: sorted and distinct, as the operation requires.
            let members: Vec<IdentityKey> = members.into_iter().collect();
            for chunk in members.chunks(caucus_proto::limits::MAX_DELIVERED_MEMBERS) {
                self.write(
                    group,
                    Operation::NoticeDelivered {
                        notice,
                        members: chunk.to_vec(),
                    },
                )?;
                written += 1;
            }
        }
        Ok(written)
    }
}
