//! One replica of a group, wired by hand from the layers: a device's keys, the group's
//! keyring, an encrypted store in its own home directory, and the fold of its entries.
//!
//! Shared by `examples/campaign_tour.rs` and `tests/layers.rs` (the example includes this
//! file with `#[path]`). It is the job `caucus-node` will do, minus the network: [`sync`]
//! runs two `caucus_sync::Session`s in this process and hands their frames across as
//! byte vectors. Nothing here opens a socket.
//!
//! The path of an entry, both for a device's own writes and for what it receives:
//!
//! ```text
//! write:   Operation ─seal (crypto)─► envelope bytes ─► receive
//! receive: bytes ─decode (proto, bounded)─► open + verify (crypto, batch)
//!          ─► store the ciphertext (SQLCipher, one durable transaction) ─► fold (model)
//! ```
//!
//! An entry that cannot be opened *yet* (its device's `DeviceLinked` or its epoch key has
//! not arrived) waits in memory and is tried again on every later receive; one that can
//! never be opened (bad proof, altered ciphertext, forged signature…) is refused and
//! recorded with its [`OpenError`], and the state does not change.

// Each includer uses its own subset of these helpers.
#![allow(dead_code)]

use anyhow::{Context, Result, bail, ensure};
use caucus::crypto::at_rest::{KdfParams, WrappedSecret};
use caucus::crypto::delivery::{DeliveryError, open_delivery};
use caucus::crypto::seal::DeviceDirectory;
use caucus::crypto::{DeviceKeys, Keyring, OpenError, open_batch, seal};
use caucus::model::{OpenedEntry, Outcome, State};
use caucus::proto::{DeviceKey, EntryId, Envelope, Hlc, IdentityKey, Operation};
use caucus::store::{DbKey, GroupState, Incoming, Store, StoredEntry, VerifiedBody};
use caucus::sync::{AcceptAll, Config, Event, Role, Session};
use rand_core::CryptoRng;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The database file in a home directory.
const DB_FILE: &str = "caucus.db";
/// The database key, wrapped under the passphrase, beside the database.
const DB_KEY_FILE: &str = "db-key.wrapped";
/// Purposes of the wrapped secrets (checked on unwrap).
const DB_KEY_PURPOSE: &str = "database key";
const DEVICE_PURPOSE: &str = "device keys";
const KEYRING_PURPOSE: &str = "group keyring";
/// Most frame exchanges one sync may take before it counts as stalled.
const MAX_SYNC_TURNS: usize = 1_000;

/// How secrets are kept at rest: the organizer's passphrase and the Argon2id cost.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AtRest {
    /// The passphrase (the CLI will prompt for it).
    pub(crate) passphrase: &'static [u8],
    /// Argon2id parameters for every wrapped secret.
    pub(crate) params: KdfParams,
}

/// The crypto layer's device directory, answered by the model's fold.
struct Directory<'a>(&'a State);

impl DeviceDirectory for Directory<'_> {
    fn identity_of(&self, device: &DeviceKey) -> Option<IdentityKey> {
        self.0.identity_of(device)
    }
}

/// An entry received but not opened yet.
#[derive(Debug)]
struct Pending {
    envelope: Envelope,
    bytes: Vec<u8>,
    last_error: OpenError,
}

/// One device's replica of one group.
#[derive(Debug)]
pub(crate) struct Replica {
    /// Short label for messages ("dana-phone"); never content.
    pub(crate) label: &'static str,
    /// This device's keys.
    pub(crate) device: DeviceKeys,
    /// The group's epoch secrets this device holds.
    pub(crate) keyring: Keyring,
    /// The fold of every entry opened so far, kept by the store with its views.
    group: GroupState,
    store: Store,
    home: PathBuf,
    clock: Hlc,
    pending: BTreeMap<EntryId, Pending>,
    refused: BTreeMap<EntryId, OpenError>,
    not_for_me: BTreeSet<u64>,
    /// Valid epoch deliveries already looked at.
    taken: BTreeSet<EntryId>,
}

/// What one [`Replica::receive`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Received {
    /// Entries opened, verified, stored and folded.
    pub(crate) opened: usize,
    /// Entries still waiting for a device link or an epoch key.
    pub(crate) pending: usize,
    /// Entries refused for good.
    pub(crate) refused: usize,
}

/// What one [`sync`] moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Synced {
    /// Bytes of every frame, both ways.
    pub(crate) bytes: u64,
    /// Envelopes fetched, both ways.
    pub(crate) entries: u64,
    /// Reconciliation rounds.
    pub(crate) rounds: u32,
}

fn wrap<R: CryptoRng + ?Sized>(
    at_rest: &AtRest,
    purpose: &str,
    secret: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>> {
    let wrapped = WrappedSecret::wrap(at_rest.passphrase, purpose, secret, at_rest.params, rng)?;
    Ok(wrapped.to_bytes()?)
}

fn unwrap(at_rest: &AtRest, purpose: &str, bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    Ok(WrappedSecret::from_bytes(bytes)?.unwrap(at_rest.passphrase, purpose)?)
}

impl Replica {
    /// A new replica in `home` (created if missing): a fresh random database key, wrapped
    /// under the passphrase beside a new SQLCipher database.
    pub(crate) fn create<R: CryptoRng + ?Sized>(
        label: &'static str,
        home: &Path,
        device: DeviceKeys,
        keyring: Keyring,
        founder: IdentityKey,
        at_rest: &AtRest,
        rng: &mut R,
    ) -> Result<Replica> {
        fs::create_dir_all(home).with_context(|| format!("creating {}", home.display()))?;
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut *key);
        fs::write(
            home.join(DB_KEY_FILE),
            wrap(at_rest, DB_KEY_PURPOSE, &*key, rng)?,
        )?;
        let mut store = Store::open(&home.join(DB_FILE), &DbKey::from_bytes(*key))?;
        // The founder is not in the ticket or the welcome: the caller knows it out of band.
        store.add_group(keyring.group(), founder)?;
        let group = store.load_group(&keyring.group())?;
        Ok(Replica {
            label,
            device,
            keyring,
            group,
            store,
            home: home.to_owned(),
            clock: Hlc::default(),
            pending: BTreeMap::new(),
            refused: BTreeMap::new(),
            not_for_me: BTreeSet::new(),
            taken: BTreeSet::new(),
        })
    }

    /// Wraps the device keys and the keyring into the store, checkpoints and closes it.
    pub(crate) fn close<R: CryptoRng + ?Sized>(self, at_rest: &AtRest, rng: &mut R) -> Result<()> {
        let mut store = self.store;
        let device = wrap(at_rest, DEVICE_PURPOSE, &self.device.to_secret_bytes(), rng)?;
        store.put_wrapped_key(DEVICE_PURPOSE, &device)?;
        let keyring = wrap(
            at_rest,
            KEYRING_PURPOSE,
            &self.keyring.to_secret_bytes()?,
            rng,
        )?;
        store.put_wrapped_key(KEYRING_PURPOSE, &keyring)?;
        store.checkpoint()?;
        Ok(())
    }

    /// Opens a closed replica again from its home and the passphrase alone: the store
    /// folds the stored bodies (no cryptography: they were verified before they were
    /// stored); envelopes stored without a body are tried again. [`Replica::reverify`]
    /// opens every envelope anew.
    pub(crate) fn reopen(label: &'static str, home: &Path, at_rest: &AtRest) -> Result<Replica> {
        let key = unwrap(at_rest, DB_KEY_PURPOSE, &fs::read(home.join(DB_KEY_FILE))?)?;
        let key: [u8; 32] = key.as_slice().try_into().context("database key length")?;
        let store = Store::open_existing(&home.join(DB_FILE), &DbKey::from_bytes(key))?;
        let wrapped = |purpose| -> Result<Zeroizing<Vec<u8>>> {
            let bytes = store
                .wrapped_key(purpose)?
                .with_context(|| format!("no {purpose} in the store"))?;
            unwrap(at_rest, purpose, &bytes)
        };
        let device = DeviceKeys::from_secret_bytes(&wrapped(DEVICE_PURPOSE)?)?;
        let keyring = Keyring::from_secret_bytes(&wrapped(KEYRING_PURPOSE)?)?;
        let group = store.load_group(&keyring.group())?;
        let unopened = store.unopened(&keyring.group())?;
        let mut replica = Replica {
            label,
            device,
            keyring,
            group,
            store,
            home: home.to_owned(),
            clock: Hlc::default(),
            pending: BTreeMap::new(),
            refused: BTreeMap::new(),
            not_for_me: BTreeSet::new(),
            taken: BTreeSet::new(),
        };
        for e in unopened {
            let envelope = Envelope::decode(&e.envelope)?;
            replica.pending.insert(
                e.id,
                Pending {
                    envelope,
                    bytes: e.envelope,
                    last_error: OpenError::UnknownDevice,
                },
            );
        }
        replica.receive(Vec::new())?;
        Ok(replica)
    }

    /// The home directory.
    pub(crate) fn home(&self) -> &Path {
        &self.home
    }

    /// Entries in the store.
    pub(crate) fn stored(&self) -> Result<u64> {
        Ok(self.store.entry_count(&self.keyring.group())?)
    }

    /// Every stored envelope, encoded, in id order.
    pub(crate) fn envelopes(&self) -> Result<Vec<Vec<u8>>> {
        let entries = self.store.entries(&self.keyring.group())?;
        Ok(entries.into_iter().map(|e| e.envelope).collect())
    }

    /// The fold.
    pub(crate) fn state(&self) -> &State {
        self.group.state()
    }

    /// The store (its views answer the organizer's queries without a fold).
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// The canonical hash of the fold.
    pub(crate) fn state_hash(&self) -> [u8; 32] {
        self.state().state_hash()
    }

    /// Opens every stored envelope again with the crypto layer and folds the bodies
    /// into a fresh state: (entries opened, state hash). Entries this device cannot read
    /// (an epoch it never got) stay out, as they did when they arrived.
    pub(crate) fn reverify(&self) -> Result<(usize, [u8; 32])> {
        let mut state = State::new(self.state().founder());
        let mut left = Vec::new();
        for e in self.store.entries(&self.keyring.group())? {
            left.push((e.id, Envelope::decode(&e.envelope)?));
        }
        let mut count = 0;
        loop {
            let envelopes: Vec<Envelope> = left.iter().map(|(_, e)| e.clone()).collect();
            let results = open_batch(&envelopes, &self.keyring, &Directory(&state));
            let mut opened = Vec::new();
            let mut rest = Vec::new();
            for ((id, envelope), result) in left.into_iter().zip(results) {
                match result {
                    Ok(body) => opened.push(OpenedEntry::new(id, body.epoch, body.body)),
                    Err(OpenError::UnknownDevice | OpenError::UnknownEpoch { .. }) => {
                        rest.push((id, envelope));
                    }
                    Err(e) => bail!("{}: stored entry {id} does not verify: {e}", self.label),
                }
            }
            if opened.is_empty() {
                break;
            }
            count += opened.len();
            state.extend(opened);
            left = rest;
        }
        Ok((count, state.state_hash()))
    }

    /// Why an entry is still unread, if it is waiting.
    pub(crate) fn pending_error(&self, id: &EntryId) -> Option<&OpenError> {
        self.pending.get(id).map(|p| &p.last_error)
    }

    /// Entries refused for good, with the reason.
    pub(crate) fn refused(&self) -> &BTreeMap<EntryId, OpenError> {
        &self.refused
    }

    /// Epochs whose delivery this device saw but was not a recipient of.
    pub(crate) fn not_for_me(&self) -> &BTreeSet<u64> {
        &self.not_for_me
    }

    /// Writes one operation as this device: seals it under the model's current epoch and takes
    /// it through [`Replica::receive`] like any entry. Fails unless the fold applies it.
    pub(crate) fn write<R: CryptoRng + ?Sized>(
        &mut self,
        op: Operation,
        now_ms: u64,
        rng: &mut R,
    ) -> Result<EntryId> {
        let kind = op.kind();
        // The model's epoch (the keyring may hold a later one that did not win), at this
        // device's next place in its chain.
        let keys = self
            .keyring
            .get(self.state().current_epoch())
            .context("no key of the current epoch to seal with")?;
        let chain = self.state().next_chain(&self.device.device_key(), &op);
        self.clock = self.clock.tick(now_ms);
        let envelope = seal(
            &self.keyring.group(),
            keys,
            &self.device,
            chain,
            self.clock,
            op,
            rng,
        )?;
        let bytes = envelope.encode()?;
        let id = EntryId::of_encoded(&bytes);
        self.receive([bytes])?;
        match self.state().status(&id) {
            Some(Outcome::Applied) => Ok(id),
            other => bail!("{}: own {kind} entry not applied: {other:?}", self.label),
        }
    }

    /// Takes encoded envelopes from anywhere (own writes, a peer): decodes, opens and
    /// verifies them in batches, stores and folds the ones that open (`Store::apply`:
    /// envelope, body, fold and views in one durable transaction), and picks up epoch
    /// keys delivered to this device. Retries waiting entries while any progress is made;
    /// what still cannot be opened is stored without a body (sync offers it on).
    pub(crate) fn receive(
        &mut self,
        envelopes: impl IntoIterator<Item = Vec<u8>>,
    ) -> Result<Received> {
        let mut out = Received::default();
        let mut fresh = BTreeSet::new();
        for bytes in envelopes {
            let id = EntryId::of_encoded(&bytes);
            if self.state().contains(&id) || self.pending.contains_key(&id) {
                continue;
            }
            match Envelope::decode(&bytes) {
                Ok(envelope) => {
                    fresh.insert(id);
                    self.pending.insert(
                        id,
                        Pending {
                            envelope,
                            bytes,
                            last_error: OpenError::UnknownDevice,
                        },
                    );
                }
                Err(e) => {
                    let e = OpenError::MalformedBody(e);
                    self.refused.insert(id, e);
                    out.refused += 1;
                }
            }
        }
        loop {
            let ids: Vec<EntryId> = self.pending.keys().copied().collect();
            let envelopes: Vec<Envelope> =
                self.pending.values().map(|p| p.envelope.clone()).collect();
            let results = open_batch(&envelopes, &self.keyring, &Directory(self.state()));
            let mut opened = Vec::new();
            let mut batch = Vec::new();
            for (id, result) in ids.into_iter().zip(results) {
                match result {
                    Ok(body) => {
                        if let Some(p) = self.pending.remove(&id) {
                            opened.push(OpenedEntry::new(id, body.epoch, body.body.clone()));
                            batch.push(Incoming {
                                entry: stored_entry(id, &p),
                                body: Some(VerifiedBody {
                                    body_id: body.body_id.0,
                                    body: body.body,
                                }),
                            });
                        }
                    }
                    Err(e @ (OpenError::UnknownDevice | OpenError::UnknownEpoch { .. })) => {
                        if let Some(p) = self.pending.get_mut(&id) {
                            p.last_error = e;
                        }
                    }
                    Err(e) => {
                        self.pending.remove(&id);
                        self.refused.insert(id, e);
                        out.refused += 1;
                    }
                }
            }
            if opened.is_empty() {
                break;
            }
            out.opened += opened.len();
            for e in &opened {
                self.clock = self.clock.observe(e.hlc);
            }
            // Durable before it counts: stored, folded and the views updated, in one go.
            self.store
                .apply(&mut self.group, batch, self.clock.wall_ms)?;
            // Every valid delivery not taken yet: one received now, or one an entry
            // received now made valid (it waited for the authority entries it names).
            let deliveries: Vec<(u64, EntryId, DeviceKey, Operation)> = (self.state())
                .epoch_deliveries()
                .iter()
                .flat_map(|(epoch, ds)| ds.iter().map(move |d| (*epoch, d)))
                .filter(|(_, d)| !self.taken.contains(&d.entry))
                .map(|(epoch, d)| {
                    let op = Operation::EpochKeyDelivered {
                        epoch,
                        deliveries: d.deliveries.clone(),
                    };
                    (epoch, d.entry, d.author.device, op)
                })
                .collect();
            for (epoch, entry, author, op) in deliveries {
                self.taken.insert(entry);
                self.take_epoch_key(epoch, entry, &author, &op)?;
            }
        }
        let waiting: Vec<Incoming> = (self.pending.iter())
            .filter(|(id, _)| fresh.contains(*id))
            .map(|(id, p)| Incoming {
                entry: stored_entry(*id, p),
                body: None,
            })
            .collect();
        if !waiting.is_empty() {
            self.store
                .apply(&mut self.group, waiting, self.clock.wall_ms)?;
        }
        out.pending = self.pending.len();
        Ok(out)
    }

    /// Opens this device's share of an `EpochKeyDelivered` the fold accepted (an admin's).
    fn take_epoch_key(
        &mut self,
        epoch: u64,
        entry: EntryId,
        author: &DeviceKey,
        op: &Operation,
    ) -> Result<()> {
        if self.state().status(&entry) != Some(Outcome::Applied) {
            return Ok(());
        }
        let group = self.keyring.group();
        match open_delivery(&group, author, op, &self.device) {
            Ok((opened, secret)) => {
                ensure!(
                    opened == epoch,
                    "{}: delivery for another epoch",
                    self.label
                );
                self.keyring.insert(epoch, secret)?;
            }
            Err(DeliveryError::NotARecipient) => {
                self.not_for_me.insert(epoch);
            }
            Err(e) => bail!("{}: epoch delivery does not open: {e}", self.label),
        }
        Ok(())
    }
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

/// Reconciles two replicas with a real `caucus_sync::Session` on each side, each reading
/// its own SQLite store through `caucus_store::GroupIndex`, frames passed in memory; every fetched envelope then goes through [`Replica::receive`].
///
/// Both hellos carry an empty proof checked by `AcceptAll`: the crypto layer has no
/// hello proof yet, and the network layer will authenticate the connection.
pub(crate) fn sync(a: &mut Replica, b: &mut Replica) -> Result<Synced> {
    let group = a.keyring.group();
    ensure!(group == b.keyring.group(), "replicas of different groups");
    let config = Config::new(group, Vec::new());
    let mut sa = Session::new(Role::Initiator, config.clone(), Box::new(AcceptAll), 0);
    let mut sb = Session::new(Role::Responder, config, Box::new(AcceptAll), 0);
    let (mut to_a, mut to_b) = (Vec::new(), Vec::new());
    {
        // Each session reads its side's SQLite store directly (`caucus_store::GroupIndex`).
        let (index_a, index_b) = (a.store.index(group), b.store.index(group));
        for _ in 0..MAX_SYNC_TURNS {
            if sa.is_done() && sb.is_done() {
                break;
            }
            let mut moved = false;
            while let Some(frame) = sa.poll_transmit() {
                moved = true;
                sb.handle_message(0, &frame, &index_b)?;
            }
            while let Some(frame) = sb.poll_transmit() {
                moved = true;
                sa.handle_message(0, &frame, &index_a)?;
            }
            for (session, inbox) in [(&mut sa, &mut to_a), (&mut sb, &mut to_b)] {
                while let Some(event) = session.poll_event() {
                    if let Event::Entry { bytes, .. } = event {
                        inbox.push(bytes);
                    }
                }
            }
            ensure!(moved || (sa.is_done() && sb.is_done()), "sync stalled");
        }
        for index in [&index_a, &index_b] {
            if let Some(e) = index.take_error() {
                bail!("store error during sync: {e}");
            }
        }
    }
    ensure!(sa.is_done() && sb.is_done(), "sync did not finish");
    let (stats_a, stats_b) = (sa.stats(), sb.stats());
    a.receive(to_a)?;
    b.receive(to_b)?;
    Ok(Synced {
        bytes: stats_a.bytes_sent + stats_b.bytes_sent,
        entries: stats_a.entries_received + stats_b.entries_received,
        rounds: stats_a.rounds.max(stats_b.rounds),
    })
}

/// Scans every file under `dir` for `marker`: (files, bytes scanned, hits).
pub(crate) fn scan_for(dir: &Path, marker: &[u8]) -> Result<(usize, u64, usize)> {
    let (mut files, mut bytes, mut hits) = (0, 0, 0);
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            let (f, b, h) = scan_for(&path, marker)?;
            files += f;
            bytes += b;
            hits += h;
        } else {
            let data = fs::read(&path)?;
            files += 1;
            bytes += data.len() as u64;
            hits += data.windows(marker.len()).filter(|w| *w == marker).count();
        }
    }
    Ok((files, bytes, hits))
}

/// Argon2id parameters of the tour: the OWASP minimum (19 MiB, t = 2), so the whole
/// story runs in seconds; the node will use [`KdfParams::recommended`].
pub(crate) fn tour_kdf() -> Result<KdfParams> {
    Ok(KdfParams::new(19 * 1024, 2, 1)?)
}
