//! The running node's control socket: how CLI commands reach `caucus run`.
//!
//! `caucus run` holds the home's writer lock and listens on `<home>/caucus.sock`
//! (a Unix socket, mode 0600, in the owner-only home). A command that writes an entry
//! while the node runs sends the *operation* here instead of opening the store for
//! writing: the node seals it, stores it and publishes it at once, so there is exactly
//! one writer per home and a locally written entry is on the wire within milliseconds.
//! Reads never come here; commands read the store directly (SQLite WAL lets them).
//!
//! Wire: frames of a 4-byte big-endian length and a [`caucus_proto::codec`] value, at
//! most [`MAX_CONTROL_FRAME`] bytes. One [`Request`] per connection, answered by one
//! [`Reply`] (`Link` answers twice: the code, then the result).

use crate::{NodeError, Running};
use caucus_proto::{EntryId, GroupId, Operation, codec};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// Largest control frame (an import of a whole campaign is one frame; local socket only).
pub const MAX_CONTROL_FRAME: usize = 128 << 20;

/// Control connections served at once.
const MAX_CONTROL_CLIENTS: usize = 16;

/// What a command asks of the running node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Request {
    /// Seal, store and publish this operation in `group`.
    Write {
        /// The group.
        group: GroupId,
        /// The operation.
        op: Operation,
    },
    /// Several operations in one group, in order (an import).
    WriteMany {
        /// The group.
        group: GroupId,
        /// The operations.
        ops: Vec<Operation>,
    },
    /// Peers, addresses and the last sync of each group.
    Status,
    /// Show a pairing code for a new device and wait for it.
    Link,
    /// Start a new epoch in `group` (after removing a member or revoking a device).
    Rotate {
        /// The group.
        group: GroupId,
    },
    /// How many current members have acknowledged a notice.
    Delivery {
        /// The group.
        group: GroupId,
        /// The notice.
        notice: caucus_proto::NoticeId,
    },
}

/// The node's answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Reply {
    /// Written and published.
    Written {
        /// Entry ids, in order.
        ids: Vec<EntryId>,
    },
    /// The node's status.
    Status(StatusReply),
    /// The pairing code to type on the new device, and where to reach this node.
    LinkCode {
        /// The code.
        code: String,
        /// This node's addresses.
        addresses: Vec<String>,
    },
    /// The new device linked.
    Linked {
        /// Its label.
        label: String,
    },
    /// Acknowledgements of a notice.
    Delivery {
        /// Current members who acknowledged it.
        acked: u32,
        /// Current members.
        total: u32,
    },
    /// A new epoch started.
    Rotated {
        /// Its number.
        epoch: u64,
    },
    /// The request failed (one line).
    Error(String),
}

/// What `caucus status` shows of a running node.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StatusReply {
    /// The transport peer id.
    pub peer_id: String,
    /// Listen addresses.
    pub addresses: Vec<String>,
    /// Connected peers.
    pub peers: Vec<String>,
    /// Per group: id, time of the last finished sync (Unix ms), entries it stored.
    pub groups: Vec<(GroupId, Option<u64>, u64)>,
    /// Relays connected now and what they hold of each group: relay, group, entries,
    /// bytes, entries refused by its quota.
    pub relays: Vec<(String, GroupId, u64, u64, u64)>,
    /// Entries the node refused since it started, by reason (`Node::refused_counts`).
    pub refused: Vec<(String, u64)>,
}

async fn write_frame<T: Serialize>(s: &mut UnixStream, value: &T) -> Result<(), NodeError> {
    let bytes = codec::encode::<_, MAX_CONTROL_FRAME>(value)
        .map_err(|e| NodeError::Net(format!("control encode: {e}")))?;
    let len = u32::try_from(bytes.len()).map_err(|_| NodeError::Net("frame too large".into()))?;
    s.write_all(&len.to_be_bytes())
        .await
        .map_err(|e| NodeError::Net(e.to_string()))?;
    s.write_all(&bytes)
        .await
        .map_err(|e| NodeError::Net(e.to_string()))?;
    s.flush().await.map_err(|e| NodeError::Net(e.to_string()))
}

async fn read_frame<T: Serialize + serde::de::DeserializeOwned>(
    s: &mut UnixStream,
) -> Result<T, NodeError> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)
        .await
        .map_err(|e| NodeError::Net(format!("control socket: {e}")))?;
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > MAX_CONTROL_FRAME {
        return Err(NodeError::Net("control frame of a bad size".into()));
    }
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf)
        .await
        .map_err(|e| NodeError::Net(format!("control socket: {e}")))?;
    codec::decode::<_, MAX_CONTROL_FRAME>(&buf)
        .map_err(|e| NodeError::Net(format!("control decode: {e}")))
}

/// A connection to a running node's control socket.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
}

impl Client {
    /// Connects to the socket at `path`.
    pub async fn connect(path: &Path) -> Result<Client, NodeError> {
        let stream = UnixStream::connect(path).await.map_err(|e| {
            NodeError::Net(format!(
                "the node holds this home but its control socket does not answer ({e}); is `caucus run` starting or stuck?"
            ))
        })?;
        Ok(Client { stream })
    }

    /// Sends the request.
    pub async fn send(&mut self, request: &Request) -> Result<(), NodeError> {
        write_frame(&mut self.stream, request).await
    }

    /// Reads the next reply.
    pub async fn reply(&mut self) -> Result<Reply, NodeError> {
        read_frame(&mut self.stream).await
    }

    /// Sends one request and reads one reply, turning [`Reply::Error`] into an error.
    pub async fn call(path: &Path, request: &Request) -> Result<Reply, NodeError> {
        let mut c = Client::connect(path).await?;
        c.send(request).await?;
        match tokio::time::timeout(Duration::from_secs(120), c.reply()).await {
            Ok(Ok(Reply::Error(e))) => Err(NodeError::Refused(e)),
            Ok(r) => r,
            Err(_) => Err(NodeError::Net("the running node did not answer".into())),
        }
    }
}

/// Serves the control socket at `path` for `running` until the process ends. Replaces a
/// stale socket file (the caller holds the home's writer lock, so no node owns it).
pub fn serve(running: Arc<Running>, path: &Path) -> Result<(), NodeError> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).map_err(|e| NodeError::io(path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| NodeError::io(path, e))?;
    }
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONTROL_CLIENTS));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                continue;
            };
            let running = running.clone();
            tokio::spawn(async move {
                let _permit = permit;
                if let Err(e) = handle(&running, stream).await {
                    tracing::debug!("control connection: {e}");
                }
            });
        }
    });
    Ok(())
}

async fn handle(running: &Running, mut stream: UnixStream) -> Result<(), NodeError> {
    let request: Request = read_frame(&mut stream).await?;
    let reply = match request {
        Request::Write { group, op } => match running.write(&group, op).await {
            Ok(id) => Reply::Written { ids: vec![id] },
            Err(e) => Reply::Error(e.to_string()),
        },
        Request::WriteMany { group, ops } => match running.write_many(&group, ops).await {
            Ok(ids) => Reply::Written { ids },
            Err(e) => Reply::Error(e.to_string()),
        },
        Request::Status => Reply::Status(status(running).await),
        Request::Delivery { group, notice } => {
            running.with_node(|n| match n.delivery(&group, &notice) {
                Some(d) => Reply::Delivery {
                    acked: d.acked,
                    total: d.total,
                },
                None => Reply::Error("unknown notice".into()),
            })
        }
        Request::Rotate { group } => match running.with_node(|n| n.rotate_epoch(&group)) {
            Ok(epoch) => Reply::Rotated { epoch },
            Err(e) => Reply::Error(e.to_string()),
        },
        Request::Link => match running.host_link() {
            Ok((code, done)) => {
                let addresses = running
                    .listen_addrs()
                    .await
                    .unwrap_or_default()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                write_frame(
                    &mut stream,
                    &Reply::LinkCode {
                        code: code.reveal().to_string(),
                        addresses,
                    },
                )
                .await?;
                match tokio::time::timeout(crate::running::LINK_WINDOW, done).await {
                    Ok(Ok(cert)) => Reply::Linked { label: cert.label },
                    _ => Reply::Error("no device linked with the code in time".into()),
                }
            }
            Err(e) => Reply::Error(e.to_string()),
        },
    };
    write_frame(&mut stream, &reply).await
}

/// The status of a running node.
pub async fn status(running: &Running) -> StatusReply {
    let last = running.last_sync();
    let groups = running.with_node(|n| n.group_ids());
    let mut relays = Vec::new();
    for g in &groups {
        for (peer, u) in running.relay_usage(g).await {
            relays.push((peer.to_string(), *g, u.entries, u.bytes, u.refused));
        }
    }
    let refused = running.with_node(|n| {
        (n.refused_counts().iter())
            .map(|(reason, count)| ((*reason).to_owned(), *count))
            .collect()
    });
    StatusReply {
        relays,
        refused,
        peer_id: running.peer_id().to_string(),
        addresses: running
            .listen_addrs()
            .await
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect(),
        peers: running
            .connected_peers()
            .await
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect(),
        groups: groups
            .into_iter()
            .map(|g| {
                let s = last.get(&g);
                (g, s.map(|s| s.at_ms), s.map_or(0, |s| s.entries_stored))
            })
            .collect(),
    }
}
