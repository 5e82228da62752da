//! What a command asks before it writes: which contact, notice, follow-up, device or
//! member an id prefix (or a name) means, and the operation a revocation, removal or
//! role change writes (with the cuts it records). A front end resolves and builds here,
//! then writes the operation directly or through the running node.
//!
//! Refusals are one line and name the list to look at; they never quote content.

use crate::{Node, NodeError};
use caucus_proto::{
    ContactId, DeviceKey, FollowupId, GroupId, IdentityKey, NoticeId, Operation, Role,
};

/// A device revocation to write, and what it means for the device's identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRevocation {
    /// The `DeviceRevoked` operation (cut at the last entry of it held).
    pub operation: Operation,
    /// The device was its identity's first device and holds the identity key: the
    /// identity is compromised. Its member's name (or short id).
    pub compromised: Option<String>,
}

/// A device that wrote two different entries at one place of its chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Equivocation {
    /// The device.
    pub device: DeviceKey,
    /// The lowest place of its chain written twice; its entries from there on are refused.
    pub seq: u64,
    /// Its member's name (or the device's short id).
    pub who: String,
}

/// The first 8 hex digits of an id, as ids are shown.
fn short(bytes: &[u8]) -> String {
    hex::encode(&bytes[..bytes.len().min(4)])
}

/// The one item whose id, in hex, starts with `prefix`, or a one-line refusal naming
/// the list to look at.
fn by_prefix<const N: usize, T: Copy>(
    items: impl Iterator<Item = ([u8; N], T)>,
    prefix: &str,
    what: &str,
    list: &str,
) -> Result<T, NodeError> {
    let lower = prefix.trim().to_lowercase();
    let hits: Vec<T> = items
        .filter(|(id, _)| !lower.is_empty() && hex::encode(id).starts_with(&lower))
        .map(|(_, t)| t)
        .collect();
    match hits.as_slice() {
        [one] => Ok(*one),
        [] => Err(NodeError::Usage(format!(
            "no {what} with id {prefix}: it matches 0 (see `{list}`)"
        ))),
        _ => Err(NodeError::Usage(format!(
            "{prefix} matches {} {what}s: give more of the id",
            hits.len()
        ))),
    }
}

impl Node {
    /// The contact (not removed) whose id starts with `prefix`.
    pub fn find_contact(&self, group: &GroupId, prefix: &str) -> Result<ContactId, NodeError> {
        let rows = self.all_contacts(group)?;
        let live = rows.iter().filter(|c| !c.removed).map(|c| (c.id.0, c.id));
        by_prefix(live, prefix, "contact", "caucus contact list")
    }

    /// The notice whose id starts with `prefix`.
    pub fn find_notice(&self, group: &GroupId, prefix: &str) -> Result<NoticeId, NodeError> {
        let notices = self.state(group)?.notices().map(|n| (n.id.0, n.id));
        by_prefix(notices, prefix, "notice", "caucus notice list")
    }

    /// The follow-up whose id starts with `prefix`.
    pub fn find_followup(&self, group: &GroupId, prefix: &str) -> Result<FollowupId, NodeError> {
        let followups = self.followups(group)?;
        let ids = followups.iter().map(|f| (f.id.0, f.id));
        by_prefix(ids, prefix, "follow-up", "caucus followup list")
    }

    /// The device (not revoked) whose key starts with `prefix`.
    pub fn find_device(&self, group: &GroupId, prefix: &str) -> Result<DeviceKey, NodeError> {
        let devices = self.devices(group)?;
        let live = devices
            .iter()
            .filter(|d| !d.revoked)
            .map(|d| (d.device.0, d.device));
        by_prefix(live, prefix, "device", "caucus device list")
    }

    /// The current member named `who` (case-insensitive), or whose identity starts with
    /// `who` (at least 4 hex digits).
    pub fn find_member(&self, group: &GroupId, who: &str) -> Result<IdentityKey, NodeError> {
        let lower = who.to_lowercase();
        let members = self.members(group)?;
        let hits: Vec<IdentityKey> = members
            .iter()
            .filter(|m| {
                m.current
                    && (m.name.to_lowercase() == lower
                        || (lower.len() >= 4 && hex::encode(m.identity.0).starts_with(&lower)))
            })
            .map(|m| m.identity)
            .collect();
        match hits.as_slice() {
            [one] => Ok(*one),
            [] => Err(NodeError::Usage(format!(
                "no current member \"{who}\" (see `caucus member list`)"
            ))),
            _ => Err(NodeError::Usage(format!(
                "\"{who}\" matches several members: use the id"
            ))),
        }
    }

    /// The revocation of `device` to write now (then rotate the epoch).
    pub fn device_revocation(
        &self,
        group: &GroupId,
        device: &DeviceKey,
    ) -> Result<DeviceRevocation, NodeError> {
        let state = self.state(group)?;
        // The identity's first device holds its identity key: it can certify more.
        let compromised = state.device(device).filter(|x| x.first).map(|x| {
            state
                .member(&x.cert.identity)
                .map(|m| m.name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| short(&x.cert.identity.0))
        });
        Ok(DeviceRevocation {
            operation: Operation::DeviceRevoked {
                cut: state.cut_of(device),
            },
            compromised,
        })
    }

    /// The removal of `member` to write now, cutting each of their devices (then rotate
    /// the epoch).
    pub fn member_removal(
        &self,
        group: &GroupId,
        member: &IdentityKey,
    ) -> Result<Operation, NodeError> {
        Ok(Operation::MemberRemoved {
            member: *member,
            cuts: self.state(group)?.cuts_of(member),
        })
    }

    /// The role change of `member` to write now.
    pub fn role_change(
        &self,
        group: &GroupId,
        member: &IdentityKey,
        role: Role,
    ) -> Result<Operation, NodeError> {
        Ok(Operation::RoleChanged {
            member: *member,
            role,
            cuts: self.state(group)?.cuts_of(member),
        })
    }

    /// Whether this organizer is a current admin of the group.
    pub fn is_current_admin(&self, group: &GroupId) -> Result<bool, NodeError> {
        self.is_admin(group)
    }

    /// Devices seen equivocating, shown to the group's admins (who may remove the
    /// member); empty for anyone else.
    pub fn equivocations(&self, group: &GroupId) -> Result<Vec<Equivocation>, NodeError> {
        if !self.is_current_admin(group)? {
            return Ok(Vec::new());
        }
        let state = self.state(group)?;
        Ok(state
            .forks()
            .map(|(device, seq)| Equivocation {
                device,
                seq,
                who: state
                    .identity_of(&device)
                    .and_then(|i| state.member(&i))
                    .map(|m| m.name.clone())
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| short(&device.0)),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use caucus_crypto::at_rest::KdfParams;
    use caucus_proto::ContactField;

    #[test]
    fn prefixes_and_names_resolve_or_are_refused_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let kdf = KdfParams::insecure_for_tests();
        let mut node = Node::init(&dir.path().join("h"), b"pass", "Dana", "laptop", kdf).unwrap();
        let g = node.create_group("committee").unwrap();
        let id = ContactId([0xab; 16]);
        node.write(
            &g,
            Operation::ContactSet {
                contact: id,
                fields: vec![ContactField::Name("Ana".into())],
            },
        )
        .unwrap();
        assert_eq!(node.find_contact(&g, "ABAB").unwrap(), id);
        let e = node.find_contact(&g, "cd").unwrap_err().to_string();
        assert_eq!(
            e,
            "no contact with id cd: it matches 0 (see `caucus contact list`)"
        );
        let me = hex::encode(&node.identity().0[..3]);
        assert_eq!(node.find_member(&g, &me).unwrap(), node.identity());
        assert!(node.find_member(&g, "luis").is_err());
        assert!(node.is_current_admin(&g).unwrap());
        assert!(node.equivocations(&g).unwrap().is_empty());
        let me = node.identity();
        assert!(matches!(
            node.member_removal(&g, &me).unwrap(),
            Operation::MemberRemoved { member, .. } if member == me
        ));

        let export = node.export_spreadsheets(&g).unwrap();
        assert_eq!((export.contacts, export.notes), (1, 0));
        let mut sheet = "name,phone\nBen,+1 555 0100\nKim,+1 555 0101\n".as_bytes();
        let import = node
            .prepare_import(&g, &mut sheet, None, &mut |_, _| {})
            .unwrap();
        assert_eq!((import.contacts, import.notes), (2, 0));
        assert_eq!(
            import.operations.len(),
            1,
            "two rows travel in one packed entry"
        );
    }
}
