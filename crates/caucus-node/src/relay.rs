//! The office relay's blind store: ciphertext only.
//!
//! A relay serves the groups it holds a [`RelayGrant`] for. A grant, made by any member
//! with `caucus relay grant`, carries per epoch the **relay token** (the public
//! membership key: the relay checks every envelope's proof with it) and the **relay
//! credential** (signs the relay's own sync-session proofs, so members sync with it),
//! plus the group's gossip topic. It carries no content key: the relay cannot open an
//! entry, and cannot make an envelope members would accept.
//!
//! The relay stores envelopes as they travel (`caucus-store`'s `entries` table, no
//! bodies, no views), serves catch-up sync from them, joins each group's topic to
//! forward gossip, and enforces a quota per group. Its database is SQLCipher like a
//! node's, under a random key kept in `relay.key` beside it (the relay runs unattended,
//! so there is no passphrase to ask for): what it holds is ciphertext in any case.

use crate::NodeError;
use caucus_crypto::{RelayCredential, RelayToken, session_proof_epoch};
use caucus_net::{Backend, BackendError, Multiaddr, PeerId, RelayLimits, Validation};
use caucus_proto::{EntryId, Envelope, GroupId, codec};
use caucus_store::{DbKey, Store, StoredEntry};
use caucus_sync::EntryIndex;
use data_encoding::BASE32_NOPAD;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use zeroize::Zeroizing;

/// Prefix of a grant's text form.
pub const GRANT_PREFIX: &str = "caucusrelay1-";
/// Largest grant, encoded.
const MAX_GRANT_BYTES: usize = 64 * 1024;
/// Settings-table prefix of the grants a relay holds.
const GRANT_SETTING: &str = "grant/";

/// What a relay needs to serve one group (see the module docs). Holds secrets (the relay
/// credentials): hand it to the relay operator like a key.
#[derive(Clone, Serialize, Deserialize)]
pub struct RelayGrant {
    /// Format version (1).
    pub version: u8,
    /// The group.
    pub group: GroupId,
    /// The group's gossip topic.
    pub topic: String,
    /// Relay tokens, one per epoch secret.
    pub tokens: Vec<RelayToken>,
    /// Relay credentials (epoch, seed), one per epoch secret.
    pub credentials: Vec<(u64, [u8; 32])>,
}

impl std::fmt::Debug for RelayGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayGrant")
            .field("group", &self.group)
            .field("epochs", &self.tokens.len())
            .finish_non_exhaustive()
    }
}

impl RelayGrant {
    /// The text form: `caucusrelay1-` and base32.
    pub fn to_text(&self) -> Result<Zeroizing<String>, NodeError> {
        let bytes = Zeroizing::new(
            codec::encode::<_, MAX_GRANT_BYTES>(self)
                .map_err(|e| NodeError::Crypto(e.to_string()))?,
        );
        Ok(Zeroizing::new(format!(
            "{GRANT_PREFIX}{}",
            BASE32_NOPAD.encode(&bytes).to_lowercase()
        )))
    }

    /// Parses [`RelayGrant::to_text`].
    pub fn parse(text: &str) -> Result<RelayGrant, NodeError> {
        let text = text.trim();
        let rest = text.strip_prefix(GRANT_PREFIX).ok_or_else(|| {
            NodeError::Usage("not a relay grant (expected caucusrelay1-…)".into())
        })?;
        let bytes = Zeroizing::new(
            BASE32_NOPAD
                .decode(rest.to_ascii_uppercase().as_bytes())
                .map_err(|_| {
                    NodeError::Usage("relay grant is not valid base32 (cut off?)".into())
                })?,
        );
        let grant: RelayGrant = codec::decode::<_, MAX_GRANT_BYTES>(&bytes)
            .map_err(|e| NodeError::Usage(format!("relay grant is malformed: {e}")))?;
        if grant.version != 1 || grant.tokens.iter().any(|t| t.group != grant.group) {
            return Err(NodeError::Usage("relay grant is malformed".into()));
        }
        Ok(grant)
    }
}

/// Per-group limits on a relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Most entries kept per group.
    pub max_entries: u64,
    /// Most envelope bytes kept per group.
    pub max_bytes: u64,
}

impl Default for Quota {
    fn default() -> Self {
        Quota {
            max_entries: 1_000_000,
            max_bytes: 2 << 30,
        }
    }
}

/// Usage of one group on a relay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Entries held.
    pub entries: u64,
    /// Envelope bytes held.
    pub bytes: u64,
    /// Entries refused by the quota since start.
    pub refused: u64,
}

struct RelayGroup {
    grant: RelayGrant,
    usage: Usage,
}

struct Inner {
    store: Store,
    groups: HashMap<GroupId, RelayGroup>,
}

/// The relay's store and its `caucus-net` backend.
pub struct Relay {
    dir: PathBuf,
    quota: Quota,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// Opens (creating if missing) the relay home at `dir`.
    pub fn open(dir: &Path, quota: Quota) -> Result<Relay, NodeError> {
        use rand::Rng;
        std::fs::create_dir_all(dir).map_err(|e| NodeError::io(dir, e))?;
        let key_path = dir.join("relay.key");
        let key: [u8; 32] = if key_path.exists() {
            let bytes =
                Zeroizing::new(std::fs::read(&key_path).map_err(|e| NodeError::io(&key_path, e))?);
            bytes.as_slice().try_into().map_err(|_| {
                NodeError::Corrupt(format!("{} is not a relay key", key_path.display()))
            })?
        } else {
            let mut k = [0u8; 32];
            rand::rng().fill_bytes(&mut k);
            write_private(&key_path, &k)?;
            k
        };
        let store = Store::open(&dir.join("relay.db"), &DbKey::from_bytes(key))?;
        let mut groups = HashMap::new();
        for (_, bytes) in store.settings_with_prefix(GRANT_SETTING)? {
            if bytes.is_empty() {
                continue; // revoked
            }
            let grant: RelayGrant = codec::decode::<_, MAX_GRANT_BYTES>(&Zeroizing::new(bytes))
                .map_err(|e| NodeError::Corrupt(format!("stored grant: {e}")))?;
            let usage = usage_of(&store, &grant.group)?;
            groups.insert(grant.group, RelayGroup { grant, usage });
        }
        Ok(Relay {
            dir: dir.to_path_buf(),
            quota,
            inner: Mutex::new(Inner { store, groups }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds (or extends, with new epochs) a group's grant.
    pub fn allow(&self, grant: RelayGrant) -> Result<GroupId, NodeError> {
        let mut inner = self.lock();
        let group = grant.group;
        let merged = match inner.groups.remove(&group) {
            Some(mut old) => {
                for (t, c) in grant.tokens.iter().zip(&grant.credentials) {
                    if !old.grant.tokens.contains(t) {
                        old.grant.tokens.push(*t);
                        old.grant.credentials.push(*c);
                    }
                }
                old.grant
            }
            None => grant,
        };
        let bytes = Zeroizing::new(
            codec::encode::<_, MAX_GRANT_BYTES>(&merged)
                .map_err(|e| NodeError::Crypto(e.to_string()))?,
        );
        inner.store.put_setting(
            &format!("{GRANT_SETTING}{}", hex::encode(group.as_bytes())),
            &bytes,
        )?;
        let usage = usage_of(&inner.store, &group)?;
        inner.groups.insert(
            group,
            RelayGroup {
                grant: merged,
                usage,
            },
        );
        Ok(group)
    }

    /// Stops serving a group (its token is revoked here); its envelopes stay until
    /// deleted by the operator.
    pub fn revoke(&self, group: &GroupId) -> Result<bool, NodeError> {
        let mut inner = self.lock();
        let had = inner.groups.remove(group).is_some();
        inner.store.put_setting(
            &format!("{GRANT_SETTING}{}", hex::encode(group.as_bytes())),
            &[],
        )?;
        Ok(had)
    }

    /// The groups served, with their topics.
    pub fn groups(&self) -> Vec<(GroupId, String)> {
        self.lock()
            .groups
            .values()
            .map(|g| (g.grant.group, g.grant.topic.clone()))
            .collect()
    }

    /// Usage per group.
    pub fn usage(&self) -> Vec<(GroupId, Usage)> {
        self.lock()
            .groups
            .iter()
            .map(|(g, r)| (*g, r.usage))
            .collect()
    }

    /// Usage of one group, if it is served here.
    pub fn group_usage(&self, group: &GroupId) -> Option<Usage> {
        self.lock().groups.get(group).map(|r| r.usage)
    }

    /// Applies relay token updates for a group served here: each must be vouched for by
    /// a token already held (its parent epoch). Returns how many tokens were new.
    pub fn apply_token_updates(
        &self,
        group: &GroupId,
        updates: &[caucus_crypto::RelayTokenUpdate],
    ) -> Result<usize, NodeError> {
        let mut inner = self.lock();
        let Some(g) = inner.groups.get_mut(group) else {
            return Err(NodeError::UnknownGroup);
        };
        let mut added = 0;
        for u in updates {
            if g.grant.tokens.contains(&u.token) {
                continue;
            }
            let vouched = g
                .grant
                .tokens
                .iter()
                .filter(|t| t.epoch == u.parent_epoch)
                .find_map(|t| u.verify(t).ok());
            if let Some(token) = vouched {
                g.grant.tokens.push(token);
                added += 1;
            }
        }
        if added > 0 {
            let bytes = Zeroizing::new(
                codec::encode::<_, MAX_GRANT_BYTES>(&g.grant)
                    .map_err(|e| NodeError::Crypto(e.to_string()))?,
            );
            inner.store.put_setting(
                &format!("{GRANT_SETTING}{}", hex::encode(group.as_bytes())),
                &bytes,
            )?;
            tracing::info!(group = %group, added, "relay tokens for new epochs accepted");
        }
        Ok(added)
    }

    /// Whether the relay holds entry `id` of `group`.
    pub fn holds(&self, group: &GroupId, id: &EntryId) -> bool {
        let inner = self.lock();
        inner.groups.contains_key(group) && inner.store.has_entry(id).unwrap_or(false)
    }

    /// The relay home.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Flushes the write-ahead log.
    pub fn checkpoint(&self) -> Result<(), NodeError> {
        Ok(self.lock().store.checkpoint()?)
    }
}

/// Decodes a relay's answer to a usage request.
pub fn decode_usage(bytes: &[u8]) -> Result<Usage, NodeError> {
    codec::decode::<_, 64>(bytes).map_err(|e| NodeError::Net(format!("malformed usage: {e}")))
}

/// Most token updates in one request.
const MAX_TOKEN_UPDATES: usize = 256;

/// Encodes a group's token updates for `/caucus/handshake/1`.
pub fn encode_token_updates(
    group: &GroupId,
    updates: &[caucus_crypto::RelayTokenUpdate],
) -> Result<Vec<u8>, NodeError> {
    let updates: Vec<_> = updates.iter().take(MAX_TOKEN_UPDATES).copied().collect();
    codec::encode::<_, MAX_GRANT_BYTES>(&(*group, updates))
        .map_err(|e| NodeError::Crypto(e.to_string()))
}

fn decode_token_updates(
    bytes: &[u8],
) -> Result<(GroupId, Vec<caucus_crypto::RelayTokenUpdate>), NodeError> {
    let (group, updates): (GroupId, Vec<caucus_crypto::RelayTokenUpdate>) =
        codec::decode::<_, MAX_GRANT_BYTES>(bytes)
            .map_err(|e| NodeError::Usage(format!("malformed token updates: {e}")))?;
    if updates.len() > MAX_TOKEN_UPDATES {
        return Err(NodeError::Usage("too many token updates".into()));
    }
    Ok((group, updates))
}

fn usage_of(store: &Store, group: &GroupId) -> Result<Usage, NodeError> {
    let entries = store.entry_count(group)?;
    let bytes = store.envelope_bytes(group)?;
    Ok(Usage {
        entries,
        bytes,
        refused: 0,
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), NodeError> {
    use std::io::Write;
    let mut opts = std::fs::File::options();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| NodeError::io(path, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| NodeError::io(path, e))
}

impl Backend for Relay {
    fn with_index(&self, group: &GroupId, f: &mut dyn FnMut(&dyn EntryIndex)) -> bool {
        let inner = self.lock();
        if !inner.groups.contains_key(group) {
            return false;
        }
        let index = inner.store.index(*group);
        f(&index);
        true
    }

    fn validate(&self, group: &GroupId, envelope: &Envelope) -> Validation {
        let inner = self.lock();
        let Some(g) = inner.groups.get(group) else {
            // A group not (or no longer) served: drop, without blaming its members.
            return Validation::Ignore;
        };
        caucus_net::validate_with_tokens(envelope, g.grant.tokens.iter().copied())
    }

    fn store(
        &self,
        group: &GroupId,
        entries: Vec<(EntryId, Vec<u8>)>,
    ) -> Result<usize, BackendError> {
        let mut inner = self.lock();
        let quota = self.quota;
        let Some(g) = inner.groups.get(group) else {
            return Err(BackendError::UnknownGroup);
        };
        let mut usage = g.usage;
        let mut batch = Vec::with_capacity(entries.len());
        for (id, envelope) in entries {
            let Ok(env) = Envelope::decode(&envelope) else {
                continue;
            };
            let size = envelope.len() as u64;
            if usage.entries + batch.len() as u64 >= quota.max_entries
                || usage.bytes + size > quota.max_bytes
            {
                usage.refused += 1;
                if usage.refused.is_power_of_two() {
                    tracing::warn!(
                        group = %group,
                        entries = usage.entries,
                        bytes = usage.bytes,
                        refused = usage.refused,
                        "group quota reached: entries refused"
                    );
                }
                continue;
            }
            usage.bytes += size;
            batch.push(StoredEntry {
                id,
                group: *group,
                epoch: env.header.epoch,
                envelope,
            });
        }
        let inserted = inner
            .store
            .insert_entries(&batch, crate::now_ms())
            .map_err(|e| BackendError::Store(e.to_string()))?;
        // Duplicates took no room.
        let new: std::collections::HashSet<&EntryId> = inserted.new.iter().collect();
        for e in &batch {
            if !new.contains(&e.id) {
                usage.bytes = usage.bytes.saturating_sub(e.envelope.len() as u64);
            }
        }
        usage.entries += inserted.new.len() as u64;
        if let Some(g) = inner.groups.get_mut(group) {
            g.usage = usage;
        }
        Ok(inserted.new.len())
    }

    fn session_proof(&self, group: &GroupId, binding: &[u8]) -> Option<Vec<u8>> {
        let inner = self.lock();
        let g = inner.groups.get(group)?;
        // The oldest epoch's credential: every member holds that epoch.
        let best = g
            .grant
            .credentials
            .iter()
            .map(|(epoch, seed)| {
                let mut b = Zeroizing::new([0u8; 40]);
                b[..8].copy_from_slice(&epoch.to_le_bytes());
                b[8..].copy_from_slice(seed);
                RelayCredential::from_secret_bytes(&b)
            })
            .min_by_key(RelayCredential::epoch)?;
        Some(best.sign_session(binding))
    }

    fn handshake(
        &self,
        kind: caucus_net::HandshakeKind,
        request: &[u8],
    ) -> Result<Vec<u8>, String> {
        if kind == caucus_net::HandshakeKind::Usage {
            let group = <[u8; 16]>::try_from(request)
                .map(GroupId)
                .map_err(|_| "malformed usage request".to_string())?;
            let usage = self
                .group_usage(&group)
                .ok_or_else(|| "group not served here".to_string())?;
            return codec::encode::<_, 64>(&usage).map_err(|e| e.to_string());
        }
        if kind != caucus_net::HandshakeKind::Tokens {
            return Err("a relay accepts no joins or device links".into());
        }
        let (group, updates) = decode_token_updates(request).map_err(|e| e.to_string())?;
        self.apply_token_updates(&group, &updates)
            .map(|n| vec![u8::try_from(n.min(255)).unwrap_or(255)])
            .map_err(|e| e.to_string())
    }

    fn verify_session_proof(&self, group: &GroupId, binding: &[u8], proof: &[u8]) -> bool {
        let inner = self.lock();
        let Some(g) = inner.groups.get(group) else {
            return false;
        };
        let Some(epoch) = session_proof_epoch(proof) else {
            return false;
        };
        g.grant
            .tokens
            .iter()
            .filter(|t| t.epoch == epoch)
            .any(|t| t.verify_session(binding, proof))
    }
}

/// How an office relay runs: where it listens, what it announces, its limits.
#[derive(Clone, Debug)]
pub struct RelayOptions {
    /// Listen here (default: TCP and QUIC on port 4001, any address; with `loopback`,
    /// 127.0.0.1 and a random port).
    pub listen: Vec<Multiaddr>,
    /// Addresses phones reach the relay at, if not a listen address (NAT, DNS).
    pub external: Vec<Multiaddr>,
    /// Announce every listen address as an external one (reservations hand these out).
    pub announce_listen_addresses: bool,
    /// Circuit relay limits.
    pub limits: RelayLimits,
    /// Most peers connected at once (`None`: the network's default).
    pub max_peers: Option<u32>,
    /// On 127.0.0.1 only (in-process stories, examples, benches).
    pub loopback: bool,
    /// Sync every group with its peers this often (default: the network's).
    pub resync_interval: Option<std::time::Duration>,
}

impl RelayOptions {
    /// A relay on 127.0.0.1, default limits, announcing nothing.
    pub fn loopback() -> RelayOptions {
        RelayOptions {
            listen: Vec::new(),
            external: Vec::new(),
            announce_listen_addresses: false,
            limits: RelayLimits::default(),
            max_peers: None,
            loopback: true,
            resync_interval: None,
        }
    }

    /// An office relay on the network: port 4001 unless told, listen addresses announced.
    pub fn office() -> RelayOptions {
        RelayOptions {
            announce_listen_addresses: true,
            loopback: false,
            ..RelayOptions::loopback()
        }
    }

    fn to_config(&self) -> Result<caucus_net::Config, NodeError> {
        let mut c = if self.loopback {
            caucus_net::Config::loopback()
        } else {
            let port = |a: &str| {
                a.parse::<Multiaddr>()
                    .map_err(|e| NodeError::Usage(format!("{a}: {e}")))
            };
            caucus_net::Config {
                listen: vec![
                    port("/ip4/0.0.0.0/tcp/4001")?,
                    port("/ip4/0.0.0.0/udp/4001/quic-v1")?,
                ],
                mdns: false,
                max_pending_incoming: 128,
                ..caucus_net::Config::default()
            }
        };
        if !self.listen.is_empty() {
            c.listen = self.listen.clone();
        }
        c.relay_server = Some(self.limits);
        if let Some(n) = self.max_peers {
            c.max_connections = n;
        }
        if let Some(every) = self.resync_interval {
            c.resync_interval = every;
        }
        Ok(c)
    }
}

/// Something a running relay reports (ids only).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayEvent {
    /// Listening on this address (ending in `/p2p/<peer id>`).
    Listening {
        /// The address.
        address: Multiaddr,
    },
    /// A peer was cut off for misbehaving.
    PeerPenalized {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: &'static str,
    },
    /// A limit refused a peer's reservation or circuit, or cut a circuit short.
    Limited {
        /// The peer.
        peer: PeerId,
        /// What was refused or cut.
        what: &'static str,
    },
}

/// Events buffered per relay subscriber.
const RELAY_EVENT_QUEUE: usize = 256;

/// The office relay on the network: its blind store ([`Relay`]) behind a `caucus-net`
/// swarm that serves circuits, catch-up sync and gossip. The one way caucus starts a
/// relay (the `caucus relay` command, the demo, the examples, the bench).
#[derive(Debug)]
pub struct RelayNode {
    relay: Arc<Relay>,
    net: caucus_net::Network,
    events: tokio::sync::broadcast::Sender<RelayEvent>,
}

impl RelayNode {
    /// Puts `relay` on the network with `options`: joins the topic of every group it
    /// serves and announces the external addresses. The receiver gets every event from
    /// the first listen address on.
    pub async fn start(
        relay: Relay,
        options: RelayOptions,
    ) -> Result<(RelayNode, tokio::sync::broadcast::Receiver<RelayEvent>), NodeError> {
        let relay = Arc::new(relay);
        let net_err = |e: caucus_net::NetError| NodeError::Net(e.to_string());
        let (net, mut net_events) =
            caucus_net::Network::spawn(options.to_config()?, relay.clone()).map_err(net_err)?;
        let (events, first) = tokio::sync::broadcast::channel(RELAY_EVENT_QUEUE);
        {
            let net = net.clone();
            let events = events.clone();
            let announce = options.announce_listen_addresses;
            tokio::spawn(async move {
                let peer = net.local_peer_id();
                while let Some(ev) = net_events.recv().await {
                    let ev = match ev {
                        caucus_net::NetEvent::Listening { address } => {
                            if announce {
                                // Reservations hand out the relay's external addresses.
                                if let Err(e) = net.add_external_address(address.clone()).await {
                                    tracing::warn!("relay address not announced: {e}");
                                }
                            }
                            RelayEvent::Listening {
                                address: address.with_p2p(peer).unwrap_or_else(|a| a),
                            }
                        }
                        caucus_net::NetEvent::PeerPenalized { peer, reason } => {
                            RelayEvent::PeerPenalized { peer, reason }
                        }
                        caucus_net::NetEvent::RelayLimited { peer, what } => {
                            RelayEvent::Limited { peer, what }
                        }
                        _ => continue,
                    };
                    let _ = events.send(ev);
                }
            });
        }
        for (group, topic) in relay.groups() {
            net.join(group, topic).await.map_err(net_err)?;
        }
        for a in options.external {
            net.add_external_address(a).await.map_err(net_err)?;
        }
        Ok((RelayNode { relay, net, events }, first))
    }

    /// The relay's store: grants, usage, what it holds.
    pub fn relay(&self) -> &Relay {
        &self.relay
    }

    /// The relay's transport identity.
    pub fn peer_id(&self) -> PeerId {
        self.net.local_peer_id()
    }

    /// Events from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<RelayEvent> {
        self.events.subscribe()
    }

    /// Serves a group from now on: stores its grant and joins its topic.
    pub async fn allow(&self, grant: RelayGrant) -> Result<GroupId, NodeError> {
        let topic = grant.topic.clone();
        let group = self.relay.allow(grant)?;
        self.net
            .join(group, topic)
            .await
            .map_err(|e| NodeError::Net(e.to_string()))?;
        Ok(group)
    }

    /// Stops serving a group: revokes its grant here and leaves its topic. Its
    /// envelopes stay until the operator deletes them. Whether it was served.
    pub async fn revoke(&self, group: &GroupId) -> Result<bool, NodeError> {
        let had = self.relay.revoke(group)?;
        self.net
            .leave(*group)
            .await
            .map_err(|e| NodeError::Net(e.to_string()))?;
        Ok(had)
    }

    /// Waits (at most `timeout`) for the first listen address, ending in `/p2p/<peer id>`.
    pub async fn wait_listening(
        &self,
        events: &mut tokio::sync::broadcast::Receiver<RelayEvent>,
        timeout: std::time::Duration,
    ) -> Result<Multiaddr, NodeError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Ok(RelayEvent::Listening { address })) => return Ok(address),
                Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(_)) | Err(_) => {
                    return Err(NodeError::Net("the relay did not start listening".into()));
                }
            }
        }
    }

    /// Flushes the store and stops the swarm.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        self.relay.checkpoint()?;
        let _ = self.net.shutdown().await;
        Ok(())
    }
}
