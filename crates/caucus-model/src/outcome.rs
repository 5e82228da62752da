//! What became of an entry: applied, a duplicate, or rejected with a reason.
//!
//! A rejection records the entry id, the kind of operation and the reason, never any
//! content: rejections are diagnostics an organizer or a developer may print.
//! Rejection depends on the entry's place in the fold order (a member removed at noon
//! may still write at eleven), so an entry rejected now may be applied after an earlier
//! entry arrives, and the other way round.

use caucus_proto::EntryId;
use serde::Serialize;

/// What [`crate::State::insert`] did with an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The entry is part of the state now.
    Applied,
    /// An entry with this id was already held; nothing changed.
    Duplicate,
    /// The entry is held (it may become valid after a re-fold) but has no effect.
    Rejected(Reason),
}

/// Why an entry has no effect on the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, thiserror::Error)]
#[non_exhaustive]
pub enum Reason {
    /// The operation breaks a protocol limit (normally refused earlier, when decoding).
    #[error("invalid operation: {0}")]
    Invalid(&'static str),
    /// The author's identity is not a member of the group at that point.
    #[error("the author is not a member of the group")]
    NotAMember,
    /// The signing device is not linked to the author's identity.
    #[error("the signing device is not linked to the author")]
    DeviceNotLinked,
    /// The signing device has been revoked.
    #[error("the signing device has been revoked")]
    DeviceRevoked,
    /// The operation needs the admin role.
    #[error("only an admin may {0}")]
    AdminOnly(&'static str),
    /// An organizer acted on something that belongs to another member.
    #[error("an organizer may only {0} their own")]
    NotTheirOwn(&'static str),
    /// The member acted on is not a current member.
    #[error("the member acted on is not a current member")]
    TargetNotAMember,
    /// The device acted on was never linked.
    #[error("unknown device")]
    UnknownDevice,
    /// The device is already linked to another identity.
    #[error("the device is linked to another member")]
    DeviceOfAnotherMember,
    /// A revoked device can never be linked again; a new device key is needed.
    #[error("the device was revoked and cannot be linked again")]
    DeviceWasRevoked,
    /// The notice acted on has not been posted (at that point in the order).
    #[error("unknown notice")]
    UnknownNotice,
    /// The follow-up acted on has not been set (at that point in the order).
    #[error("unknown follow-up")]
    UnknownFollowup,
    /// Written by a device after its cut: its member was removed or it was revoked, and
    /// the entry is not one the remover had seen (whatever its clock or epoch).
    #[error("written after its device was cut off (member removed or device revoked)")]
    BeyondCut,
    /// The device wrote two different entries at one place of its chain.
    #[error("its device wrote two different entries at one place of its chain")]
    Forked,
    /// Names authority entries (heads) not held yet.
    #[error("waits for the authority entries it was made on")]
    AwaitingAuthority,
    /// A device introducing itself when its identity already has a device here.
    #[error("only an identity's first device may introduce itself")]
    NotFirstDevice,
    /// A device key linked again with another certificate: a changed key is a new device.
    #[error("a device is linked with one certificate for good; a new key is a new device")]
    DeviceKeyChanged,
    /// A cut that names less of a device's chain than its writer's past shows.
    #[error("a cut names less of a device's chain than its writer had seen")]
    CutBelowSeen,
    /// An epoch delivery that is not for the epoch after its past's current one, or not
    /// sealed under that current one.
    #[error("an epoch key must be for the next epoch, sealed under the current one")]
    EpochNotNext,
    /// An epoch delivery that does not reach exactly its past's current devices.
    #[error("an epoch key must reach exactly the current devices")]
    WrongRecipients,
    /// An epoch delivery made without every concurrent delivery of the epoch before it.
    #[error("an epoch key must follow every concurrent change of the epoch before it")]
    EpochNotSettled,
}

impl Reason {
    /// Whether the rejection is about who wrote the entry (membership, device, role),
    /// as opposed to what it refers to.
    pub fn is_authorization(self) -> bool {
        matches!(
            self,
            Reason::NotAMember
                | Reason::DeviceNotLinked
                | Reason::DeviceRevoked
                | Reason::AdminOnly(_)
                | Reason::NotTheirOwn(_)
                | Reason::BeyondCut
                | Reason::Forked
                | Reason::NotFirstDevice
        )
    }

    /// Whether the entry may count once more entries arrive (it waits for the authority
    /// entries it names), as opposed to refused as it stands.
    pub fn is_waiting(self) -> bool {
        matches!(self, Reason::AwaitingAuthority)
    }
}

/// A rejected entry, for diagnostics: id, operation kind and reason, no content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// The entry.
    pub id: EntryId,
    /// The operation's short name (`Operation::kind`).
    pub kind: &'static str,
    /// Why it has no effect.
    pub reason: Reason,
}
