//! The synchronous heart of a node: one device, its encrypted store, and the groups it
//! belongs to. No sockets and no tasks here; [`crate::running`] puts it on the network.
//!
//! The path of an entry, for the device's own writes and for what peers send alike:
//!
//! ```text
//! write:   Operation ─seal (crypto)─► envelope bytes ─► receive
//! receive: bytes ─decode (proto, bounded)─► open + verify (crypto, batch)
//!          ─► store + fold + views (caucus-store, one durable transaction)
//! ```
//!
//! An entry that cannot be opened *yet* (its device's `DeviceLinked` or its epoch key
//! has not arrived) is stored without a body (sync still offers it on) and tried again
//! once what it waits for may have come: a key of its epoch, new authority entries (its
//! device's link), or, for an entry stamped more than [`MAX_CLOCK_AHEAD_MS`] ahead of
//! this device's wall clock, its time. One that can never be opened (bad proof, altered
//! ciphertext, forged signature) is dropped and counted, and the state does not change.
//! Only entries the fold applies move this device's clock.
//!
//! **Sealing.** New entries take their place in this device's chain
//! ([`State::next_chain`]) and are sealed under the epoch the *model* resolved (the
//! winning delivery of [`State::current_epoch`]), not the highest epoch the keyring
//! holds: a concurrent epoch change this device saw first may have lost.

use crate::NodeError;
use crate::home::{Home, Vault};
use caucus_crypto::at_rest::KdfParams;
use caucus_crypto::delivery::{DeliveryError, Recipient, deliver_epoch, open_delivery};
use caucus_crypto::invite::{
    History, InviteId, InviteTicket, Joiner, accept_join, hello_invite_id,
};
use caucus_crypto::link::{LinkHost, LinkNewDevice, PairingCode};
use caucus_crypto::seal::DeviceDirectory;
use caucus_crypto::{
    DeviceKeys, EpochSecret, IdentityKeypair, KeyId, Keyring, OpenError, open_batch, seal_event,
    session_proof_epoch,
};
use caucus_model::{OpenedEntry, Outcome, Reason, State};
use caucus_proto::{
    Chain, DeviceCert, DeviceKey, EntryId, Envelope, GroupId, Hlc, IdentityKey, NoticeId,
    Operation, Role,
};
use caucus_store::{DbKey, Durability, GroupState, Incoming, Store, StoredEntry, VerifiedBody};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use zeroize::Zeroizing;

/// Where a running node hands its own new entry to be published (see
/// [`Node::write_publishing`]).
pub(crate) type Publish<'a> = &'a mut dyn FnMut(&GroupId, &[u8]);

/// Settings-table prefix of stored invites (the ticket, secret included).
const INVITE_PREFIX: &str = "invite/";
/// Settings-table prefix of used or revoked invite ids.
const REVOKED_PREFIX: &str = "invite-revoked/";
/// Wrapped-keys-table prefix of group keyrings.
const KEYRING_PREFIX: &str = "keyring/";

/// The crypto layer's device directory, answered by the model's fold.
struct Directory<'a>(&'a State);

impl DeviceDirectory for Directory<'_> {
    fn identity_of(&self, device: &DeviceKey) -> Option<IdentityKey> {
        self.0.identity_of(device)
    }
}

/// How far ahead of this device's wall clock an entry may be stamped and still be
/// applied: 10 minutes. One stamped further ahead is held (stored without a body) until
/// the wall clock comes within this bound of it, so a device with a clock set ahead
/// cannot drag every clock in the group (nor sort its entries after everyone's).
pub const MAX_CLOCK_AHEAD_MS: u64 = 600_000;

/// The write refused to a device that the current epoch's key was not sealed to.
const NOT_GIVEN_EPOCH: &str =
    "this device was not given the current epoch's key: it was removed or revoked";
/// The write refused to a non-admin while concurrent epoch changes are unresolved.
const EPOCH_UNSETTLED: &str = "the group's epoch is being settled after concurrent changes; an admin's next action settles it";

/// What a pending entry waits for before it is tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    /// Not tried yet (just received, or loaded when the home opened).
    Untried,
    /// A key of this epoch.
    Epoch(u64),
    /// Its device's link: tried again once authority entries arrived after the group's
    /// authority generation it was last tried at.
    Device(u64),
    /// Its clock: tried again once the wall clock reaches this (Unix ms).
    Time(u64),
}

/// An entry received but not opened yet.
#[derive(Debug)]
struct Pending {
    envelope: Envelope,
    bytes: Vec<u8>,
    wait: Wait,
}

impl Pending {
    fn new(envelope: Envelope, bytes: Vec<u8>) -> Pending {
        Pending {
            envelope,
            bytes,
            wait: Wait::Untried,
        }
    }
}

/// One group as this device holds it.
#[derive(Debug)]
pub(crate) struct GroupCore {
    pub(crate) keyring: Keyring,
    pub(crate) state: GroupState,
    pending: BTreeMap<EntryId, Pending>,
    /// Counts the batches that brought authority entries (which may link devices).
    authority_generation: u64,
    /// Valid epoch deliveries whose share for this device was already looked at.
    deliveries_taken: BTreeSet<EntryId>,
    /// The winning delivery last sealed under and the key it gave.
    sealing: Option<(EntryId, KeyId)>,
    /// Members whose receipts for this device's urgent notices came in and are not yet
    /// recorded in a `NoticeDelivered` entry (see `receipts.rs`).
    pub(crate) receipts: BTreeMap<NoticeId, BTreeSet<IdentityKey>>,
}

impl GroupCore {
    fn new(keyring: Keyring, state: GroupState) -> GroupCore {
        GroupCore {
            keyring,
            state,
            pending: BTreeMap::new(),
            authority_generation: 0,
            deliveries_taken: BTreeSet::new(),
            sealing: None,
            receipts: BTreeMap::new(),
        }
    }

    /// Whether what `p` waits for may have come.
    fn due(&self, p: &Pending, now: u64) -> bool {
        match p.wait {
            Wait::Untried => true,
            Wait::Epoch(epoch) => !self.keyring.candidates(epoch).is_empty(),
            Wait::Device(generation) => self.authority_generation > generation,
            Wait::Time(at) => now >= at,
        }
    }
}

/// What [`Node::revoke_device`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Revoked {
    /// The epoch the group moved to (the revoked device does not get it).
    pub epoch: u64,
    /// The identity the device was certified to.
    pub identity: IdentityKey,
    /// The device was its identity's first device, the one holding the identity key:
    /// whoever holds it can certify new devices, so the identity is compromised (remove
    /// the member and invite them again under a new identity).
    pub identity_compromised: bool,
}

/// One entry [`Node::receive`] opened, stored and folded: enough for the running node
/// to react (acknowledge an urgent notice, report an ack), no content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenedSummary {
    /// The entry.
    pub id: EntryId,
    /// Its operation's short name.
    pub kind: &'static str,
    /// The author's identity.
    pub author: IdentityKey,
    /// For a posted notice: its id and whether it is urgent.
    pub notice: Option<(NoticeId, bool)>,
    /// For an acknowledgement or a delivery record: the notice it is about.
    pub ack: Option<NoticeId>,
}

/// What one [`Node::receive`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// Entries opened, verified, stored and folded, in the order they were opened.
    pub opened: Vec<OpenedSummary>,
    /// Envelopes new to this node (opened or not).
    pub new: usize,
    /// Entries still waiting: for a device link, an epoch key, or (stamped too far
    /// ahead of this clock) their time.
    pub pending: usize,
    /// Entries refused for good (malformed, forged, altered).
    pub refused: usize,
}

/// A group, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInfo {
    /// The group id.
    pub id: GroupId,
    /// The committee's name for itself.
    pub name: String,
    /// Current members.
    pub members: usize,
    /// Entries held.
    pub entries: u64,
    /// The epoch new entries are sealed under.
    pub epoch: u64,
    /// This organizer's role, if a current member.
    pub role: Option<Role>,
}

/// An invite as listed.
#[derive(Clone, Debug)]
pub struct InviteInfo {
    /// Its public id.
    pub id: InviteId,
    /// The group.
    pub group: GroupId,
    /// Expiry (Unix ms).
    pub expires_at_ms: u64,
    /// Used or revoked.
    pub revoked: bool,
}

/// One organizer's device: keys, store, groups.
pub struct Node {
    home: Home,
    pub(crate) store: Store,
    /// The database key, for a second (reader) connection; zeroized on drop.
    db_key: DbKey,
    pub(crate) device: DeviceKeys,
    identity: Option<IdentityKeypair>,
    cert: DeviceCert,
    name: String,
    clock: Hlc,
    pub(crate) groups: BTreeMap<GroupId, GroupCore>,
    /// This device's own entries not yet handed to the network (see [`Node::take_outbox`]).
    outbox: Vec<(GroupId, Vec<u8>)>,
    /// Set when this device took a new epoch key: relays need the new token.
    rotated: bool,
    /// Entries refused since this node started, by reason (see [`Node::refused_counts`]).
    refused: Refusals,
    /// Entries opened (decrypted and verified) since this node started.
    opened: u64,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("home", &self.home.dir())
            .field("groups", &self.groups.len())
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn random16() -> [u8; 16] {
    use rand::Rng;
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b
}

fn keyring_name(group: &GroupId) -> String {
    format!("{KEYRING_PREFIX}{}", hex::encode(group.as_bytes()))
}

impl Node {
    /// Sets up a new organizer in `home`: an identity, this device's keys certified by
    /// it, an empty encrypted store, and the vault wrapped under `passphrase`.
    pub fn init(
        home: &Path,
        passphrase: &[u8],
        name: &str,
        device_label: &str,
        params: KdfParams,
    ) -> Result<Node, NodeError> {
        let home = Home::new(home);
        if home.is_initialized() {
            return Err(NodeError::AlreadyInitialized(home.dir().to_path_buf()));
        }
        check_label("name", name)?;
        check_label("device label", device_label)?;
        let mut rng = rand::rng();
        let identity = IdentityKeypair::generate(&mut rng);
        let device = DeviceKeys::generate(identity.public(), &mut rng);
        let cert = identity
            .certify(&device.public(), device_label)
            .map_err(|e| NodeError::Crypto(e.to_string()))?;
        Self::create(home, passphrase, params, device, Some(identity), cert, name)
    }

    fn create(
        home: Home,
        passphrase: &[u8],
        params: KdfParams,
        device: DeviceKeys,
        identity: Option<IdentityKeypair>,
        cert: DeviceCert,
        name: &str,
    ) -> Result<Node, NodeError> {
        use rand::Rng;
        home.create_dir()?;
        let mut db_key = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(&mut *db_key);
        let vault = Vault {
            version: 1,
            db_key: *db_key,
            device: device.to_secret_bytes().to_vec(),
            identity: identity.as_ref().map(|i| *i.to_secret_bytes()),
            cert: cert.clone(),
            name: name.to_owned(),
        };
        // The database first: a vault without its database would be a broken home.
        let store = Store::open(&home.db_file(), &DbKey::from_bytes(*db_key))?;
        home.write_vault(&vault, passphrase, params)?;
        Ok(Node {
            home,
            store,
            db_key: DbKey::from_bytes(*db_key),
            device,
            identity,
            cert,
            name: name.to_owned(),
            clock: Hlc::default(),
            groups: BTreeMap::new(),
            outbox: Vec::new(),
            rotated: false,
            refused: Refusals::default(),
            opened: 0,
        })
    }

    /// Opens an existing home with the passphrase: one Argon2id, then every group is
    /// loaded from its stored bodies (no cryptography: they were verified when stored)
    /// and envelopes stored without a body are tried again.
    pub fn open(home: &Path, passphrase: &[u8]) -> Result<Node, NodeError> {
        let home = Home::new(home);
        let unlocked = home.unlock(passphrase)?;
        let db_key = DbKey::from_bytes(*unlocked.db_key);
        let store = Store::open_existing(&home.db_file(), &db_key).map_err(|e| match e {
            caucus_store::StoreError::Unreadable { .. } => NodeError::Corrupt(
                "the database does not open with this home's key (damaged or replaced)".into(),
            ),
            // Its own one line, which says what to do.
            old @ caucus_store::StoreError::OldEntryFormat => NodeError::Refused(old.to_string()),
            other => other.into(),
        })?;
        let mut node = Node {
            home,
            store,
            db_key,
            device: unlocked.device,
            identity: unlocked.identity,
            cert: unlocked.cert,
            name: unlocked.name,
            clock: Hlc::default(),
            groups: BTreeMap::new(),
            outbox: Vec::new(),
            rotated: false,
            refused: Refusals::default(),
            opened: 0,
        };
        for (group, _founder) in node.store.groups()? {
            node.load(group)?;
        }
        Ok(node)
    }

    fn load(&mut self, group: GroupId) -> Result<(), NodeError> {
        let bytes = self
            .store
            .wrapped_key(&keyring_name(&group))?
            .ok_or_else(|| NodeError::Corrupt("a group without its keyring".into()))?;
        let keyring = Keyring::from_secret_bytes(&Zeroizing::new(bytes))
            .map_err(|e| NodeError::Corrupt(e.to_string()))?;
        let state = self.store.load_group(&group)?;
        // What the fold applied moves the clock, and this device's own entries always
        // (its clock never runs back behind what it wrote).
        let me = self.device.device_key();
        for e in state.state().entries() {
            if e.author.device == me || state.state().status(&e.id) == Some(Outcome::Applied) {
                self.clock = self.clock.observe(e.hlc);
            }
        }
        let mut core = GroupCore::new(keyring, state);
        for e in self.store.unopened(&group)? {
            if let Ok(envelope) = Envelope::decode(&e.envelope) {
                core.pending
                    .insert(e.id, Pending::new(envelope, e.envelope));
            }
        }
        self.groups.insert(group, core);
        // Keys of deliveries a later entry made valid (a re-fold) are taken here.
        self.take_epoch_keys(&group)?;
        if !self
            .groups
            .get(&group)
            .is_some_and(|g| g.pending.is_empty())
        {
            self.receive(&group, Vec::new())?;
        }
        Ok(())
    }

    /// The home directory.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// A read-only second connection to this node's database (see
    /// [`Store::open_reader`]).
    pub fn open_reader(&self) -> Result<Store, NodeError> {
        Ok(self.store.reader(&self.db_key)?)
    }

    /// The store (its views answer the organizer's queries without a fold).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The organizer's name, as given at init.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The organizer's identity key.
    pub fn identity(&self) -> IdentityKey {
        self.cert.identity
    }

    /// This device's signing key.
    pub fn device_key(&self) -> DeviceKey {
        self.device.device_key()
    }

    /// This device's certificate.
    pub fn cert(&self) -> &DeviceCert {
        &self.cert
    }

    /// Whether this device holds the identity key (the organizer's first device), so it
    /// can link further devices.
    pub fn holds_identity(&self) -> bool {
        self.identity.is_some()
    }

    /// The groups this device belongs to.
    pub fn group_ids(&self) -> Vec<GroupId> {
        self.groups.keys().copied().collect()
    }

    /// The folded state of a group.
    pub fn state(&self, group: &GroupId) -> Result<&State, NodeError> {
        Ok(self.core(group)?.state.state())
    }

    /// The keyring of a group.
    pub fn keyring(&self, group: &GroupId) -> Result<&Keyring, NodeError> {
        Ok(&self.core(group)?.keyring)
    }

    pub(crate) fn core(&self, group: &GroupId) -> Result<&GroupCore, NodeError> {
        self.groups.get(group).ok_or(NodeError::UnknownGroup)
    }

    /// The groups, with names and counts.
    pub fn groups(&self) -> Result<Vec<GroupInfo>, NodeError> {
        let me = self.identity();
        let mut out = Vec::new();
        for (id, g) in &self.groups {
            let state = g.state.state();
            out.push(GroupInfo {
                id: *id,
                name: state.group_name().unwrap_or("").to_owned(),
                members: state.current_members().count(),
                entries: self.store.entry_count(id)?,
                epoch: state.current_epoch(),
                role: state.member(&me).filter(|m| m.is_current()).map(|m| m.role),
            });
        }
        Ok(out)
    }

    /// Picks a group by id (hex, or a prefix of it) or by name (case-insensitive);
    /// with no selector, the only group.
    pub fn select_group(&self, selector: Option<&str>) -> Result<GroupId, NodeError> {
        let groups = self.groups()?;
        let Some(sel) = selector else {
            return match groups.as_slice() {
                [one] => Ok(one.id),
                [] => Err(NodeError::Usage(
                    "this device is in no group yet: `caucus group create NAME` or `caucus join TICKET`"
                        .into(),
                )),
                _ => Err(NodeError::Usage(
                    "this device is in several groups: say which with --group".into(),
                )),
            };
        };
        let lower = sel.to_lowercase();
        let by_name: Vec<&GroupInfo> = groups
            .iter()
            .filter(|g| g.name.to_lowercase() == lower)
            .collect();
        if let [one] = by_name.as_slice() {
            return Ok(one.id);
        }
        let by_prefix: Vec<&GroupInfo> = groups
            .iter()
            .filter(|g| {
                g.name.to_lowercase().starts_with(&lower)
                    || (sel.len() >= 4 && hex::encode(g.id.as_bytes()).starts_with(&lower))
            })
            .collect();
        match by_prefix.as_slice() {
            [one] => Ok(one.id),
            [] => Err(NodeError::Usage(format!("no group matches \"{sel}\""))),
            _ => Err(NodeError::Usage(format!(
                "\"{sel}\" matches several groups: give more of the name or id"
            ))),
        }
    }

    /// Founds a group: a fresh id and epoch-1 secret, this organizer as founder and
    /// admin, this device linked, the name recorded.
    pub fn create_group(&mut self, name: &str) -> Result<GroupId, NodeError> {
        check_label("group name", name)?;
        if self.identity.is_none() {
            return Err(NodeError::Usage(
                "only an organizer's first device (the one that ran init) can found a group".into(),
            ));
        }
        let group = GroupId(random16());
        let mut keyring = Keyring::new(group);
        keyring
            .insert(1, EpochSecret::generate(&mut rand::rng()))
            .map_err(|e| NodeError::Crypto(e.to_string()))?;
        keyring.set_founder(self.identity());
        self.add_group(keyring)?;
        self.write(
            &group,
            Operation::DeviceLinked {
                cert: self.cert.clone(),
            },
        )?;
        self.write(
            &group,
            Operation::GroupNamed {
                name: name.to_owned(),
            },
        )?;
        Ok(group)
    }

    /// Registers a group whose keyring (with its founder) this device now holds.
    fn add_group(&mut self, keyring: Keyring) -> Result<(), NodeError> {
        let group = keyring.group();
        let founder = keyring
            .founder()
            .ok_or_else(|| NodeError::Crypto("the keyring does not name the founder".into()))?;
        self.store.add_group(group, founder)?;
        self.save_keyring(&keyring)?;
        let state = self.store.load_group(&group)?;
        self.groups.insert(group, GroupCore::new(keyring, state));
        Ok(())
    }

    fn save_keyring(&mut self, keyring: &Keyring) -> Result<(), NodeError> {
        let bytes = keyring
            .to_secret_bytes()
            .map_err(|e| NodeError::Crypto(e.to_string()))?;
        self.store
            .put_wrapped_key(&keyring_name(&keyring.group()), &bytes)?;
        Ok(())
    }

    /// Seals `op` as this device under the group's current epoch and takes it through
    /// [`Node::receive`]. Fails, with the model's reason, unless the fold applies it.
    pub fn write(&mut self, group: &GroupId, op: Operation) -> Result<EntryId, NodeError> {
        Ok(self.write_sealed(group, op)?.0)
    }

    /// [`Node::write`], also returning the encoded envelope (to publish).
    pub fn write_sealed(
        &mut self,
        group: &GroupId,
        op: Operation,
    ) -> Result<(EntryId, Vec<u8>), NodeError> {
        let (id, bytes, _) = self.write_received(group, op)?;
        Ok((id, bytes))
    }

    /// [`Node::write_sealed`], also returning what the receive did.
    pub(crate) fn write_received(
        &mut self,
        group: &GroupId,
        op: Operation,
    ) -> Result<(EntryId, Vec<u8>, Received), NodeError> {
        self.write_publishing(group, op, None)
    }

    /// [`Node::write_received`], handing the entry to `publish` (when given) as soon as
    /// it is folded and applied, before its commit waits for the disk, instead of to the
    /// outbox: the network does not wait for this device's fsync. The write still
    /// returns only once the entry is durable.
    pub(crate) fn write_publishing(
        &mut self,
        group: &GroupId,
        op: Operation,
        mut publish: Option<Publish<'_>>,
    ) -> Result<(EntryId, Vec<u8>, Received), NodeError> {
        let (epoch, key_id) = self.ready_to_seal(group, &op)?;
        let core = self.groups.get(group).ok_or(NodeError::UnknownGroup)?;
        let state = core.state.state();
        let op = with_current_cuts(state, op);
        let chain = state.next_chain(&self.device.device_key(), &op);
        let keys = sealing_keys(&core.keyring, epoch, key_id)?;
        self.clock = self.clock.tick(now_ms());
        let (envelope, _) = seal_event(
            group,
            keys,
            &self.device,
            chain,
            self.clock,
            op,
            &mut rand::rng(),
        )
        .map_err(|e| NodeError::Refused(e.to_string()))?;
        let bytes = envelope
            .encode()
            .map_err(|e| NodeError::Refused(e.to_string()))?;
        let id = EntryId::of_encoded(&bytes);
        let mut published = false;
        let received =
            self.receive_with(group, vec![bytes.clone()], Durability::Full, &mut |state| {
                if let Some(publish) = publish.as_mut()
                    && !published
                    && state.status(&id) == Some(Outcome::Applied)
                {
                    publish(group, &bytes);
                    published = true;
                }
            })?;
        match self.state(group)?.status(&id) {
            Some(Outcome::Applied) => {
                if !published {
                    self.outbox.push((*group, bytes.clone()));
                }
                Ok((id, bytes, received))
            }
            Some(Outcome::Rejected(reason)) => Err(NodeError::Refused(reason.to_string())),
            other => Err(NodeError::Refused(format!(
                "own entry not applied: {other:?}"
            ))),
        }
    }

    /// Before sealing `op`: settles the epoch if concurrent epoch changes left it
    /// unsettled (an admin rotates first; anyone else is refused), then picks the key
    /// to seal with (see [`Node::sealing_key`]).
    fn ready_to_seal(
        &mut self,
        group: &GroupId,
        op: &Operation,
    ) -> Result<(u64, KeyId), NodeError> {
        // A delivery is what settles the epoch: it is sealed as it stands.
        if !matches!(op, Operation::EpochKeyDelivered { .. }) && !self.state(group)?.epoch_settled()
        {
            if !self.is_admin(group)? {
                return Err(NodeError::Refused(EPOCH_UNSETTLED.into()));
            }
            tracing::info!(group = %group, "settling the epoch after concurrent changes");
            self.rotate_epoch(group)?;
            if !self.state(group)?.epoch_settled() {
                return Err(NodeError::Refused(EPOCH_UNSETTLED.into()));
            }
        }
        self.sealing_key(group)
    }

    /// Whether this organizer is a current admin of the group.
    pub(crate) fn is_admin(&self, group: &GroupId) -> Result<bool, NodeError> {
        Ok(self
            .state(group)?
            .member(&self.identity())
            .is_some_and(|m| m.is_current() && m.role == Role::Admin))
    }

    /// The epoch and key new entries are sealed with: the model's current epoch, under
    /// the key of its winning delivery ([`State::epoch_winner`]), opened from this
    /// device's share of it (and made the keyring's preferred candidate); the founding
    /// key for epoch 1. A device linked or joined after that delivery (so not one of its
    /// recipients, but a current device) seals with the key its grant or welcome gave.
    /// A device neither given the key nor current is refused: it was removed or revoked.
    pub(crate) fn sealing_key(&mut self, group: &GroupId) -> Result<(u64, KeyId), NodeError> {
        let me = self.device.device_key();
        let core = self.groups.get_mut(group).ok_or(NodeError::UnknownGroup)?;
        let state = core.state.state();
        let epoch = state.current_epoch();
        let Some(winner) = state.epoch_winner() else {
            let keys = core
                .keyring
                .get(1)
                .ok_or_else(|| NodeError::Crypto("no epoch key to seal with".into()))?;
            return Ok((keys.epoch(), keys.key_id()));
        };
        if let Some((entry, key_id)) = core.sealing
            && entry == winner.entry
        {
            return Ok((epoch, key_id));
        }
        let Some(mine) = winner.deliveries.iter().find(|d| d.device == me) else {
            let current = state.current_devices().any(|c| c.device == me);
            return match core.keyring.get(epoch) {
                Some(keys) if current => Ok((epoch, keys.key_id())),
                _ => Err(NodeError::Refused(NOT_GIVEN_EPOCH.into())),
            };
        };
        let op = Operation::EpochKeyDelivered {
            epoch,
            deliveries: vec![mine.clone()],
        };
        let (opened, secret) = open_delivery(group, &winner.author.device, &op, &self.device)
            .map_err(|e| NodeError::Crypto(format!("the current epoch's key: {e}")))?;
        if opened != epoch {
            return Err(NodeError::Crypto(
                "the current epoch's key was delivered for another epoch".into(),
            ));
        }
        let winner_entry = winner.entry;
        let held = core.keyring.candidates(epoch).len();
        let key_id = core
            .keyring
            .insert(epoch, secret)
            .map_err(|e| NodeError::Crypto(e.to_string()))?;
        let preferred = core.keyring.get(epoch).map(|k| k.key_id()) == Some(key_id);
        core.keyring.prefer(epoch, key_id);
        core.sealing = Some((winner_entry, key_id));
        let new_key = core.keyring.candidates(epoch).len() != held;
        if !preferred || new_key {
            let bytes = core
                .keyring
                .to_secret_bytes()
                .map_err(|e| NodeError::Crypto(e.to_string()))?;
            self.store.put_wrapped_key(&keyring_name(group), &bytes)?;
            // A key not held before: relays need its token.
            self.rotated |= new_key;
        }
        Ok((epoch, key_id))
    }

    /// Entries refused since this node started (opened by it: a bad proof, signature or
    /// certificate; or refused by the fold: written beyond a cut, forked, not a member
    /// ...), counted by reason. Entries waiting for earlier ones are not counted.
    pub fn refused_counts(&self) -> &BTreeMap<&'static str, u64> {
        &self.refused.counts
    }

    /// Entries opened (decrypted, verified, folded) since this node started, its own
    /// writes included: what receiving costs, counted.
    pub fn opened_count(&self) -> u64 {
        self.opened
    }

    /// This device's entries written since the last call, to publish. A running node
    /// drains it after every operation; offline, entries go out by sync later.
    pub fn take_outbox(&mut self) -> Vec<(GroupId, Vec<u8>)> {
        std::mem::take(&mut self.outbox)
    }

    /// Whether a new epoch key arrived since the last call.
    pub(crate) fn take_rotated(&mut self) -> bool {
        std::mem::take(&mut self.rotated)
    }

    /// Seals many operations as this device and stores them in **one** durable
    /// transaction, all or nothing (a spreadsheet import): `progress(done, total)` is
    /// called as entries are stored. Entries go to the outbox like any write.
    pub fn write_many(
        &mut self,
        group: &GroupId,
        ops: Vec<Operation>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Vec<EntryId>, NodeError> {
        let Some(first) = ops.first() else {
            return Ok(Vec::new());
        };
        let (epoch, key_id) = self.ready_to_seal(group, first)?;
        let device = self.device.device_key();
        let core = self.groups.get_mut(group).ok_or(NodeError::UnknownGroup)?;
        let keys = sealing_keys(&core.keyring, epoch, key_id)?;
        let mut envelopes = Vec::with_capacity(ops.len());
        let mut encoded = Vec::with_capacity(ops.len());
        let mut rng = rand::rng();
        // One chain: each entry after the first names the one before it.
        let mut prev: Option<(u64, caucus_proto::EventId)> = None;
        let mut authority = false;
        for op in ops {
            let state = core.state.state();
            let op = with_current_cuts(state, op);
            authority |= op.is_authority();
            let chain = match prev {
                Some((seq, event)) => Chain {
                    seq: seq.saturating_add(1),
                    prev: Some(event),
                    heads: if op.is_authority() {
                        state.authority_heads().to_vec()
                    } else {
                        Vec::new()
                    },
                },
                None => state.next_chain(&device, &op),
            };
            let seq = chain.seq;
            self.clock = self.clock.tick(now_ms());
            // Record `i` of a `Records` entry is stamped `clock.nth(i)`: the next entry
            // must sort after the last of them.
            let records = op.each().len() as u32;
            let (envelope, event) =
                seal_event(group, keys, &self.device, chain, self.clock, op, &mut rng)
                    .map_err(|e| NodeError::Refused(e.to_string()))?;
            prev = Some((seq, event));
            self.clock = self.clock.nth(records.saturating_sub(1));
            encoded.push(
                envelope
                    .encode()
                    .map_err(|e| NodeError::Refused(e.to_string()))?,
            );
            envelopes.push(envelope);
        }
        // Our own signatures, checked in one batch like any received entries.
        let results = open_batch(&envelopes, &core.keyring, &Directory(core.state.state()));
        let mut batch = Vec::with_capacity(envelopes.len());
        let mut ids = Vec::with_capacity(envelopes.len());
        for ((envelope, bytes), result) in envelopes.iter().zip(&encoded).zip(results) {
            let body = result.map_err(|e| NodeError::Refused(e.to_string()))?;
            let id = EntryId::of_encoded(bytes);
            ids.push(id);
            batch.push(Incoming {
                entry: StoredEntry {
                    id,
                    group: *group,
                    epoch: envelope.header.epoch,
                    envelope: bytes.clone(),
                },
                body: Some(VerifiedBody {
                    body_id: body.body_id.0,
                    body: body.body,
                }),
            });
        }
        self.store.apply_with_progress(
            &mut core.state,
            batch,
            now_ms(),
            Durability::Full,
            progress,
        )?;
        let rejected = ids
            .iter()
            .filter(|id| core.state.state().status(id) != Some(Outcome::Applied))
            .count();
        if authority {
            core.authority_generation += 1;
            self.take_epoch_keys(group)?;
        }
        if rejected > 0 {
            return Err(NodeError::Refused(format!(
                "{rejected} of {} entries were stored but have no effect (permissions?)",
                ids.len()
            )));
        }
        for bytes in encoded {
            self.outbox.push((*group, bytes));
        }
        Ok(ids)
    }

    /// A session proof for `/caucus/sync/1`, if this device is in the group. It is made
    /// with the **oldest** epoch held, the one every member and the relay also hold: a
    /// peer that has not yet received the newest epoch key must still be able to sync
    /// (that is how it receives the key). The cost: a removed member, who keeps the old
    /// epochs, can still fetch ciphertext it cannot open (`proto/THREATS.md`).
    pub fn session_proof(&self, group: &GroupId, binding: &[u8]) -> Option<Vec<u8>> {
        let core = self.groups.get(group)?;
        let oldest = core.keyring.epochs().next()?;
        Some(core.keyring.get(oldest)?.sign_session(binding))
    }

    /// Whether a peer's session proof is by a holder of any epoch of the group this
    /// device knows.
    pub fn verify_session_proof(&self, group: &GroupId, binding: &[u8], proof: &[u8]) -> bool {
        let Some(core) = self.groups.get(group) else {
            return false;
        };
        let Some(epoch) = session_proof_epoch(proof) else {
            return false;
        };
        // A member's proof, or the office relay's (its credential for that epoch).
        core.keyring.candidates(epoch).iter().any(|k| {
            k.relay_token().verify_session(binding, proof) || k.verify_relay_session(binding, proof)
        })
    }

    /// Tries again the entries that waited for their time (stamped too far ahead of this
    /// clock) and whose time has come; returns how many groups it looked at. A running
    /// node calls it now and then, so a held entry is applied in a quiet group too.
    pub fn retry_due(&mut self) -> Result<usize, NodeError> {
        let now = now_ms();
        let due: Vec<GroupId> = (self.groups.iter())
            .filter(|(_, g)| {
                g.pending
                    .values()
                    .any(|p| matches!(p.wait, Wait::Time(at) if at <= now))
            })
            .map(|(id, _)| *id)
            .collect();
        for group in &due {
            self.receive(group, Vec::new())?;
        }
        Ok(due.len())
    }

    /// Takes encoded envelopes from anywhere (own writes, a peer): decodes, opens and
    /// verifies them in batches, stores and folds the ones that open (one durable
    /// transaction per batch), and picks up epoch keys delivered to this device. Retries
    /// waiting entries while any progress is made; what still cannot be opened is stored
    /// without a body.
    pub fn receive(
        &mut self,
        group: &GroupId,
        envelopes: Vec<Vec<u8>>,
    ) -> Result<Received, NodeError> {
        self.receive_with(group, envelopes, Durability::Full, &mut |_| {})
    }

    /// [`Node::receive`] for envelopes from a peer (gossip, sync): each batch is
    /// committed before it is reported, so it survives a kill of the process, but not
    /// waited onto the disk ([`Durability::Received`]): after a power cut the last
    /// batches may have to be fetched again from the peers that hold them.
    pub fn receive_from_peer(
        &mut self,
        group: &GroupId,
        envelopes: Vec<Vec<u8>>,
    ) -> Result<Received, NodeError> {
        self.receive_with(group, envelopes, Durability::Received, &mut |_| {})
    }

    fn receive_with(
        &mut self,
        group: &GroupId,
        envelopes: Vec<Vec<u8>>,
        durability: Durability,
        before_commit: &mut dyn FnMut(&caucus_model::State),
    ) -> Result<Received, NodeError> {
        let mut out = Received::default();
        let mut fresh = BTreeSet::new();
        {
            let core = self.groups.get_mut(group).ok_or(NodeError::UnknownGroup)?;
            for bytes in envelopes {
                let id = EntryId::of_encoded(&bytes);
                if core.state.state().contains(&id) || core.pending.contains_key(&id) {
                    continue;
                }
                match Envelope::decode(&bytes) {
                    Ok(envelope) if envelope.header.group == *group => {
                        fresh.insert(id);
                        core.pending.insert(id, Pending::new(envelope, bytes));
                    }
                    Ok(_) => {
                        count_refusal(&mut self.refused, &id, "another group");
                        out.refused += 1;
                    }
                    Err(_) => {
                        count_refusal(&mut self.refused, &id, "malformed envelope");
                        out.refused += 1;
                    }
                }
            }
        }
        loop {
            let now = now_ms();
            let core = self.groups.get_mut(group).ok_or(NodeError::UnknownGroup)?;
            // Only the entries whose wait may be over: the rest would fail as before.
            let (ids, envelopes): (Vec<EntryId>, Vec<Envelope>) = core
                .pending
                .iter()
                .filter(|(_, p)| core.due(p, now))
                .map(|(id, p)| (*id, p.envelope.clone()))
                .unzip();
            if ids.is_empty() {
                break;
            }
            let results = open_batch(&envelopes, &core.keyring, &Directory(core.state.state()));
            let generation = core.authority_generation;
            let mut opened = Vec::new();
            let mut batch = Vec::new();
            for (id, result) in ids.into_iter().zip(results) {
                let wait = match result {
                    Ok(body) if body.body.hlc.wall_ms > now.saturating_add(MAX_CLOCK_AHEAD_MS) => {
                        tracing::debug!(entry = %id, "entry stamped ahead of this clock: held until its time");
                        Wait::Time(body.body.hlc.wall_ms - MAX_CLOCK_AHEAD_MS)
                    }
                    Ok(body) => {
                        if let Some(p) = core.pending.remove(&id) {
                            opened.push(OpenedEntry::with_event(
                                id,
                                body.epoch,
                                body.body_id.event_id(),
                                body.body.clone(),
                            ));
                            batch.push(Incoming {
                                entry: stored_entry(id, &p),
                                body: Some(VerifiedBody {
                                    body_id: body.body_id.0,
                                    body: body.body,
                                }),
                            });
                        }
                        continue;
                    }
                    Err(OpenError::UnknownDevice) => Wait::Device(generation),
                    Err(OpenError::UnknownEpoch { epoch }) => Wait::Epoch(epoch),
                    Err(e) => {
                        count_refusal(&mut self.refused, &id, open_error_name(&e));
                        core.pending.remove(&id);
                        fresh.remove(&id);
                        out.refused += 1;
                        continue;
                    }
                };
                if let Some(p) = core.pending.get_mut(&id) {
                    p.wait = wait;
                }
            }
            if opened.is_empty() {
                break;
            }
            // Committed before it counts: stored, folded and the views updated, in one go.
            self.store.apply_with(
                &mut core.state,
                batch,
                now,
                durability,
                &mut |_, _| {},
                before_commit,
            )?;
            let mut authority = false;
            self.opened += opened.len() as u64;
            for e in &opened {
                authority |= e.op.is_authority();
                match core.state.state().status(&e.id) {
                    // Only what the fold applied moves this device's clock.
                    Some(Outcome::Applied) => self.clock = self.clock.observe(e.last_hlc()),
                    Some(Outcome::Rejected(reason)) if !reason.is_waiting() => {
                        count_refusal(&mut self.refused, &e.id, reason_name(reason));
                    }
                    _ => {}
                }
            }
            if authority {
                core.authority_generation += 1;
            }
            out.opened.extend(opened.iter().map(|e| OpenedSummary {
                id: e.id,
                kind: e.op.kind(),
                author: e.author.identity,
                notice: match &e.op {
                    Operation::NoticePosted { notice, content } => Some((*notice, content.urgent)),
                    _ => None,
                },
                ack: match &e.op {
                    Operation::NoticeAcked { notice }
                    | Operation::NoticeDelivered { notice, .. } => Some(*notice),
                    _ => None,
                },
            }));
            if authority {
                self.take_epoch_keys(group)?;
            }
        }
        let core = self.groups.get_mut(group).ok_or(NodeError::UnknownGroup)?;
        let waiting: Vec<Incoming> = (core.pending.iter())
            .filter(|(id, _)| fresh.contains(*id))
            .map(|(id, p)| Incoming {
                entry: stored_entry(*id, p),
                body: None,
            })
            .collect();
        if !waiting.is_empty() {
            self.store.apply_with_progress(
                &mut core.state,
                waiting,
                now_ms(),
                durability,
                &mut |_, _| {},
            )?;
        }
        out.new = fresh.len();
        out.pending = core.pending.len();
        Ok(out)
    }

    /// Takes this device's share of every valid epoch delivery not looked at yet: the
    /// ones just received, and ones an entry received later made valid. Only deliveries
    /// the fold applied count, each for the epoch the model lists it under.
    fn take_epoch_keys(&mut self, group: &GroupId) -> Result<(), NodeError> {
        let me = self.device.device_key();
        let core = self.groups.get_mut(group).ok_or(NodeError::UnknownGroup)?;
        let state = core.state.state();
        let mut taken = Vec::new();
        for (epoch, deliveries) in state.epoch_deliveries() {
            for d in deliveries {
                if core.deliveries_taken.contains(&d.entry)
                    || state.status(&d.entry) != Some(Outcome::Applied)
                {
                    continue;
                }
                core.deliveries_taken.insert(d.entry);
                let Some(mine) = d.deliveries.iter().find(|k| k.device == me) else {
                    tracing::info!(epoch, "an epoch change this device was not given a key for");
                    continue;
                };
                let op = Operation::EpochKeyDelivered {
                    epoch: *epoch,
                    deliveries: vec![mine.clone()],
                };
                match open_delivery(group, &d.author.device, &op, &self.device) {
                    Ok((opened, secret)) if opened == *epoch => taken.push((opened, secret)),
                    Ok(_) => tracing::warn!(epoch, "epoch delivery for another epoch"),
                    Err(DeliveryError::NotARecipient) => {}
                    Err(e) => tracing::warn!(epoch, "epoch delivery does not open: {e}"),
                }
            }
        }
        let mut changed = false;
        for (epoch, secret) in taken {
            let held = core.keyring.candidates(epoch).len();
            core.keyring
                .insert(epoch, secret)
                .map_err(|e| NodeError::Crypto(e.to_string()))?;
            if core.keyring.candidates(epoch).len() != held {
                changed = true;
                tracing::info!(epoch, "new epoch key received");
            }
        }
        if changed {
            let bytes = core
                .keyring
                .to_secret_bytes()
                .map_err(|e| NodeError::Crypto(e.to_string()))?;
            self.store.put_wrapped_key(&keyring_name(group), &bytes)?;
            self.rotated = true;
        }
        Ok(())
    }

    /// Starts a new epoch: a fresh secret sealed to every current device of the group
    /// (after a removal or revocation, the removed ones are no longer current), for the
    /// epoch after the model's current one and sealed under it. After concurrent epoch
    /// changes this is also what settles the epoch (it names them all in its past).
    pub fn rotate_epoch(&mut self, group: &GroupId) -> Result<u64, NodeError> {
        let state = self.state(group)?;
        let next = state
            .current_epoch()
            .checked_add(1)
            .ok_or_else(|| NodeError::Refused("the group has no epoch numbers left".into()))?;
        let recipients: Vec<Recipient> = state
            .current_devices()
            .map(|c| Recipient {
                device: c.device,
                dh: c.dh,
            })
            .collect();
        let secret = EpochSecret::generate(&mut rand::rng());
        let op = deliver_epoch(
            group,
            next,
            &secret,
            &self.device.device_key(),
            &recipients,
            &mut rand::rng(),
        )
        .map_err(|e| NodeError::Crypto(e.to_string()))?;
        self.write(group, op)?;
        Ok(next)
    }

    /// Removes a member and moves the group to a new epoch they do not get. The removal
    /// cuts each of their devices at the last entry of it this device holds: every node
    /// refuses what those devices write beyond it, and they are never linked again.
    pub fn remove_member(
        &mut self,
        group: &GroupId,
        member: IdentityKey,
    ) -> Result<u64, NodeError> {
        let cuts = self.state(group)?.cuts_of(&member);
        self.write(group, Operation::MemberRemoved { member, cuts })?;
        self.rotate_epoch(group)
    }

    /// Revokes a device (cut at the last entry of it this device holds) and moves the
    /// group to a new epoch it does not get. Reports whether the device held its
    /// identity's key (see [`Revoked::identity_compromised`]).
    pub fn revoke_device(
        &mut self,
        group: &GroupId,
        device: DeviceKey,
    ) -> Result<Revoked, NodeError> {
        let state = self.state(group)?;
        let known = state
            .device(&device)
            .ok_or_else(|| NodeError::Usage("that device was never linked in this group".into()))?;
        let identity = known.cert.identity;
        let identity_compromised = known.first;
        let cut = state.cut_of(&device);
        self.write(group, Operation::DeviceRevoked { cut })?;
        let epoch = self.rotate_epoch(group)?;
        if identity_compromised {
            tracing::warn!(device = %hex::encode(device.0), "the revoked device held its identity's key");
        }
        Ok(Revoked {
            epoch,
            identity,
            identity_compromised,
        })
    }

    // ---- invites -------------------------------------------------------------------

    /// Creates an invite to `group`, valid until `expires_at_ms`, naming `addresses` to
    /// reach an online member. Kept (secret included) in the encrypted store so that the
    /// running node can answer the join.
    pub fn create_invite(
        &mut self,
        group: &GroupId,
        addresses: Vec<String>,
        expires_at_ms: u64,
    ) -> Result<InviteTicket, NodeError> {
        self.core(group)?;
        let ticket = InviteTicket::create(*group, addresses, expires_at_ms, &mut rand::rng())
            .map_err(|e| NodeError::Usage(e.to_string()))?;
        let bytes = ticket
            .to_bytes()
            .map_err(|e| NodeError::Crypto(e.to_string()))?;
        self.store.put_setting(
            &format!("{INVITE_PREFIX}{}", hex::encode(ticket.id().0)),
            &bytes,
        )?;
        Ok(ticket)
    }

    /// Marks an invite used or revoked (by id, or a unique prefix of its hex).
    pub fn revoke_invite(&mut self, selector: &str) -> Result<InviteId, NodeError> {
        let lower = selector.to_lowercase();
        let matching: Vec<InviteInfo> = self
            .invites()?
            .into_iter()
            .filter(|i| hex::encode(i.id.0).starts_with(&lower))
            .collect();
        match matching.as_slice() {
            [one] => {
                self.mark_invite_used(&one.id)?;
                Ok(one.id)
            }
            [] => Err(NodeError::Usage(format!("no invite with id {selector}"))),
            _ => Err(NodeError::Usage(format!(
                "{selector} matches several invites: give more of the id"
            ))),
        }
    }

    fn mark_invite_used(&mut self, id: &InviteId) -> Result<(), NodeError> {
        self.store
            .put_setting(&format!("{REVOKED_PREFIX}{}", hex::encode(id.0)), &[1])?;
        Ok(())
    }

    /// Invites created on this device.
    pub fn invites(&self) -> Result<Vec<InviteInfo>, NodeError> {
        let mut out = Vec::new();
        for (name, bytes) in self.store.settings_with_prefix(INVITE_PREFIX)? {
            let Ok(ticket) = InviteTicket::from_bytes(&Zeroizing::new(bytes)) else {
                continue;
            };
            let revoked = self
                .store
                .setting(&format!("{REVOKED_PREFIX}{}", &name[INVITE_PREFIX.len()..]))?
                .is_some();
            out.push(InviteInfo {
                id: ticket.id(),
                group: ticket.group(),
                expires_at_ms: ticket.expires_at_ms(),
                revoked,
            });
        }
        Ok(out)
    }

    /// The member side of a join: finds the invite the hello names, checks it, runs the
    /// handshake, records the new member and their device, and returns the welcome.
    pub fn accept_join(&mut self, hello: &[u8]) -> Result<(GroupId, Vec<u8>), NodeError> {
        let id = hello_invite_id(hello).map_err(|e| NodeError::Refused(e.to_string()))?;
        let bytes = self
            .store
            .setting(&format!("{INVITE_PREFIX}{}", hex::encode(id.0)))?
            .ok_or_else(|| NodeError::Refused("unknown invite".into()))?;
        let ticket = InviteTicket::from_bytes(&Zeroizing::new(bytes))
            .map_err(|e| NodeError::Corrupt(e.to_string()))?;
        let group = ticket.group();
        let mut revoked = BTreeSet::new();
        if self
            .store
            .setting(&format!("{REVOKED_PREFIX}{}", hex::encode(id.0)))?
            .is_some()
        {
            revoked.insert(id);
        }
        let core = self.core(&group)?;
        let (accepted, welcome) = accept_join(
            hello,
            &ticket,
            now_ms(),
            &revoked,
            &core.keyring,
            History::Full,
            &mut rand::rng(),
        )
        .map_err(|e| NodeError::Refused(e.to_string()))?;
        // One-time: used before anything is recorded, so a replayed hello is refused.
        self.mark_invite_used(&id)?;
        for op in accepted.operations(Role::Organizer) {
            self.write(&group, op)?;
        }
        tracing::info!(group = %group, "a new member joined with an invite");
        Ok((group, welcome))
    }

    /// The host side of linking a device: certifies the new device with this
    /// organizer's identity, hands it every group's keyring, and records it in every
    /// group. Returns the grant to send back.
    pub fn accept_link(
        &mut self,
        host: LinkHost,
        request: &[u8],
    ) -> Result<(DeviceCert, Vec<u8>), NodeError> {
        let identity = self.identity.as_ref().ok_or_else(|| {
            NodeError::Usage("only the device that ran init can link new devices".into())
        })?;
        let rings: Vec<&Keyring> = self.groups.values().map(|g| &g.keyring).collect();
        let (issued, grant) = host
            .respond(request, identity, &rings)
            .map_err(|e| NodeError::Refused(e.to_string()))?;
        for group in self.group_ids() {
            self.write(
                &group,
                Operation::DeviceLinked {
                    cert: issued.cert.clone(),
                },
            )?;
        }
        Ok((issued.cert, grant))
    }

    /// Sets up a fresh home as a new device of an organizer, from the host's grant.
    /// `finish` completes the Noise handshake with the grant bytes.
    pub fn create_linked(
        home: &Path,
        passphrase: &[u8],
        params: KdfParams,
        device: DeviceKeys,
        waiting: LinkNewDevice,
        grant: &[u8],
    ) -> Result<Node, NodeError> {
        let home = Home::new(home);
        if home.is_initialized() {
            return Err(NodeError::AlreadyInitialized(home.dir().to_path_buf()));
        }
        let linked = waiting
            .finish(grant)
            .map_err(|e| NodeError::Refused(e.to_string()))?;
        let device = device.with_identity(linked.identity);
        let mut node = Self::create(home, passphrase, params, device, None, linked.cert, "")?;
        for ring in linked.keyrings {
            node.add_group(ring)?;
        }
        Ok(node)
    }

    /// The joiner side, after the welcome: registers the group with its keyring.
    pub fn finish_join(&mut self, joiner: Joiner, welcome: &[u8]) -> Result<GroupId, NodeError> {
        let keyring = joiner
            .finish(welcome)
            .map_err(|e| NodeError::Refused(e.to_string()))?;
        let group = keyring.group();
        if self.groups.contains_key(&group) {
            return Err(NodeError::Usage(
                "this device is already in that group".into(),
            ));
        }
        self.add_group(keyring)?;
        Ok(group)
    }

    /// Starts a join: the hello to send to a member holding the invite.
    pub fn start_join(&self, ticket: &InviteTicket) -> Result<(Joiner, Vec<u8>), NodeError> {
        let name = if self.name.is_empty() {
            "organizer"
        } else {
            &self.name
        };
        Joiner::start(ticket, &self.cert, name, now_ms(), &mut rand::rng())
            .map_err(|e| NodeError::Refused(e.to_string()))
    }

    /// A pairing code and the host state waiting for the new device.
    pub fn start_link_host(&self) -> Result<(PairingCode, LinkHost), NodeError> {
        if self.identity.is_none() {
            return Err(NodeError::Usage(
                "only the device that ran init can link new devices".into(),
            ));
        }
        let code = PairingCode::generate(&mut rand::rng());
        let host =
            LinkHost::new(&code, &mut rand::rng()).map_err(|e| NodeError::Crypto(e.to_string()))?;
        Ok((code, host))
    }

    /// The gossip topic of a group: derived from its lowest-epoch secret, so it is
    /// opaque to anyone without the group's keys and stable across epoch changes.
    pub fn topic(&self, group: &GroupId) -> Result<String, NodeError> {
        let core = self.core(group)?;
        let first = core
            .keyring
            .epochs()
            .next()
            .and_then(|e| core.keyring.get(e))
            .ok_or_else(|| NodeError::Crypto("no epoch key".into()))?;
        Ok(hex::encode(first.topic()))
    }

    /// What the office relay needs to serve a group: its relay tokens, relay credentials
    /// and gossip topic, for every epoch held. No content key.
    pub fn relay_grant(&self, group: &GroupId) -> Result<crate::relay::RelayGrant, NodeError> {
        let core = self.core(group)?;
        let mut tokens = Vec::new();
        let mut credentials = Vec::new();
        for epoch in core.keyring.epochs() {
            for k in core.keyring.candidates(epoch) {
                tokens.push(k.relay_token());
                let b = k.relay_credential().to_secret_bytes();
                let mut seed = [0u8; 32];
                seed.copy_from_slice(&b[8..]);
                credentials.push((epoch, seed));
            }
        }
        Ok(crate::relay::RelayGrant {
            version: 1,
            group: *group,
            topic: self.topic(group)?,
            tokens,
            credentials,
        })
    }

    /// Relay token updates for every epoch after the oldest held, each vouched for by
    /// the previous epoch's membership key, so a relay holding the oldest token can
    /// follow the group to its current epoch (see `caucus_crypto::RelayTokenUpdate`).
    pub fn token_updates(&self, group: &GroupId) -> Vec<caucus_crypto::RelayTokenUpdate> {
        let Some(core) = self.groups.get(group) else {
            return Vec::new();
        };
        let epochs: Vec<u64> = core.keyring.epochs().collect();
        let mut out = Vec::new();
        for pair in epochs.windows(2) {
            let Some(parent) = core.keyring.get(pair[0]) else {
                continue;
            };
            for new in core.keyring.candidates(pair[1]) {
                out.push(caucus_crypto::RelayTokenUpdate::new(parent, new));
            }
        }
        out
    }

    /// Flushes the write-ahead log into the database file.
    pub fn checkpoint(&self) -> Result<(), NodeError> {
        self.store.checkpoint()?;
        Ok(())
    }
}

/// Refuses empty, overlong or multi-line labels.
fn check_label(what: &str, s: &str) -> Result<(), NodeError> {
    if s.trim().is_empty() {
        return Err(NodeError::Usage(format!("{what} must not be empty")));
    }
    if s.len() > caucus_proto::limits::MAX_SHORT_TEXT || s.contains(['\n', '\r']) {
        return Err(NodeError::Usage(format!(
            "{what} must be one line of at most {} bytes",
            caucus_proto::limits::MAX_SHORT_TEXT
        )));
    }
    Ok(())
}

/// The store's row for a received envelope.
fn stored_entry(id: EntryId, p: &Pending) -> StoredEntry {
    StoredEntry {
        id,
        group: p.envelope.header.group,
        epoch: p.envelope.header.epoch,
        envelope: p.bytes.clone(),
    }
}

/// `op` with the cuts this device's state gives now, for a removal, revocation or role
/// change: a cut records what *its writer* had seen of each device when writing, so it
/// is taken at sealing time (an operation handed over the control socket was made on the
/// caller's possibly older view).
fn with_current_cuts(state: &State, op: Operation) -> Operation {
    match op {
        Operation::MemberRemoved { member, .. } => Operation::MemberRemoved {
            member,
            cuts: state.cuts_of(&member),
        },
        Operation::RoleChanged { member, role, .. } => Operation::RoleChanged {
            member,
            role,
            cuts: state.cuts_of(&member),
        },
        Operation::DeviceRevoked { cut } => Operation::DeviceRevoked {
            cut: state.cut_of(&cut.device),
        },
        other => other,
    }
}

/// The keys of `epoch` with `key_id` in `keyring`.
pub(crate) fn sealing_keys(
    keyring: &Keyring,
    epoch: u64,
    key_id: KeyId,
) -> Result<&caucus_crypto::EpochKeys, NodeError> {
    keyring
        .candidates(epoch)
        .iter()
        .find(|k| k.key_id() == key_id)
        .ok_or_else(|| NodeError::Crypto("no epoch key to seal with".into()))
}

/// Entry ids remembered as refused, so that one sync keeps offering (an entry refused
/// when opening is not stored) is counted and logged once; forgotten all at once when
/// full.
const REFUSED_REMEMBERED: usize = 4096;

/// Entries refused, counted by reason.
#[derive(Debug, Default)]
struct Refusals {
    counts: BTreeMap<&'static str, u64>,
    seen: BTreeSet<EntryId>,
}

/// Counts a refused entry under `reason` and logs it once: id and reason, no content.
fn count_refusal(refused: &mut Refusals, id: &EntryId, reason: &'static str) {
    if refused.seen.len() >= REFUSED_REMEMBERED {
        refused.seen.clear();
    }
    if refused.seen.insert(*id) {
        tracing::info!(entry = %id, reason, "entry refused");
        *refused.counts.entry(reason).or_default() += 1;
    }
}

/// A short stable name for why an entry did not open.
fn open_error_name(e: &OpenError) -> &'static str {
    match e {
        OpenError::UnsupportedVersion(_) => "unsupported envelope version",
        OpenError::WrongGroup => "another group",
        OpenError::UnknownEpoch { .. } => "unknown epoch",
        OpenError::BadProof => "bad membership proof",
        OpenError::Aead => "altered ciphertext",
        OpenError::MalformedBody(_) => "malformed body",
        OpenError::BadSignature => "bad signature",
        OpenError::AuthorMismatch => "author mismatch",
        OpenError::UnknownDevice => "unknown device",
        OpenError::BadCertificate => "bad certificate",
        OpenError::Replayed { .. } => "replayed",
        _ => "does not open",
    }
}

/// A short stable name for why the fold refused an entry.
fn reason_name(reason: Reason) -> &'static str {
    match reason {
        Reason::Invalid(_) => "invalid operation",
        Reason::NotAMember => "not a member",
        Reason::DeviceNotLinked => "device not linked",
        Reason::DeviceRevoked => "device revoked",
        Reason::AdminOnly(_) => "admin only",
        Reason::NotTheirOwn(_) => "not their own",
        Reason::TargetNotAMember => "target not a member",
        Reason::UnknownDevice => "unknown device",
        Reason::DeviceOfAnotherMember => "device of another member",
        Reason::DeviceWasRevoked => "device was revoked",
        Reason::UnknownNotice => "unknown notice",
        Reason::UnknownFollowup => "unknown follow-up",
        Reason::BeyondCut => "beyond cut",
        Reason::Forked => "forked",
        Reason::AwaitingAuthority => "awaiting authority",
        Reason::NotFirstDevice => "not first device",
        Reason::DeviceKeyChanged => "device key changed",
        Reason::CutBelowSeen => "cut below seen",
        Reason::EpochNotNext => "epoch not next",
        Reason::WrongRecipients => "wrong recipients",
        Reason::EpochNotSettled => "epoch not settled",
        _ => "refused",
    }
}
