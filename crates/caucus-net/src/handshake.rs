//! `/caucus/handshake/1`: one request, one reply, for joining a group and linking a device.
//!
//! The Noise handshakes of joining (an invite) and linking (a pairing code) live in
//! `caucus-crypto`; this module only carries their two messages between two nodes:
//!
//! ```text
//! opener -> server : frame [ kind (1 byte: 1 = join, 2 = link, 3 = relay tokens, 4 = usage) ‖ request ]
//! server -> opener : frame [ 0 ‖ reply ]          accepted
//!                    frame [ 1 ‖ reason (UTF-8) ]  refused (no secret in the reason)
//! ```
//!
//! Frames are those of [`crate::framing`], at most [`MAX_HANDSHAKE_FRAME`] bytes. The
//! server answers through [`Backend::handshake`]; at most [`MAX_HANDSHAKES`] run at once
//! and each has [`HANDSHAKE_TIMEOUT`] in all. What is inside is already encrypted and
//! authenticated by the Noise pattern (the invite secret or pairing code is the PSK), so
//! a network attacker can only make a handshake fail.

use crate::backend::Backend;
use crate::framing::{read_frame, write_frame};
use futures::AsyncWriteExt;
use libp2p::{PeerId, Stream, StreamProtocol};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The protocol name.
pub const HANDSHAKE_PROTOCOL: StreamProtocol = StreamProtocol::new("/caucus/handshake/1");

/// Largest request or reply frame (a join welcome carries every epoch secret).
pub const MAX_HANDSHAKE_FRAME: usize = 96 * 1024;

/// Handshakes served at once; more are refused by closing the stream.
pub const MAX_HANDSHAKES: usize = 8;

/// Longest one handshake may take, either side.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// What a handshake is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeKind {
    /// Joining a group with an invite ticket.
    Join,
    /// Linking a new device of an organizer with a pairing code.
    Link,
    /// Relay token updates for a group's newer epochs (public; a relay checks each
    /// against a token it already holds).
    Tokens,
    /// A relay's usage figures for one group (entries, bytes), asked by a member.
    Usage,
}

impl HandshakeKind {
    fn to_byte(self) -> u8 {
        match self {
            HandshakeKind::Join => 1,
            HandshakeKind::Link => 2,
            HandshakeKind::Tokens => 3,
            HandshakeKind::Usage => 4,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(HandshakeKind::Join),
            2 => Some(HandshakeKind::Link),
            3 => Some(HandshakeKind::Tokens),
            4 => Some(HandshakeKind::Usage),
            _ => None,
        }
    }
}

/// Why a handshake failed on the opener's side.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// No stream could be opened to the peer.
    #[error("could not reach the peer: {0}")]
    Unreachable(String),
    /// The peer refused, with its reason.
    #[error("refused by the peer: {0}")]
    Refused(String),
    /// The stream failed or the reply was malformed.
    #[error("handshake stream failed: {0}")]
    Stream(String),
    /// The peer did not answer in time.
    #[error("the peer did not answer within {0:?}")]
    Timeout(Duration),
}

/// Sends one request on an open stream and reads the reply.
pub(crate) async fn request(
    mut stream: Stream,
    kind: HandshakeKind,
    body: &[u8],
) -> Result<Vec<u8>, HandshakeError> {
    let run = async {
        let mut frame = Vec::with_capacity(body.len() + 1);
        frame.push(kind.to_byte());
        frame.extend_from_slice(body);
        if frame.len() > MAX_HANDSHAKE_FRAME {
            return Err(HandshakeError::Stream("request too large".into()));
        }
        write_frame(&mut stream, &frame)
            .await
            .map_err(|e| HandshakeError::Stream(e.to_string()))?;
        let reply = read_frame(&mut stream, MAX_HANDSHAKE_FRAME, |_| {})
            .await
            .map_err(|e| HandshakeError::Stream(e.to_string()))?;
        let _ = stream.close().await;
        match reply.split_first() {
            Some((0, rest)) => Ok(rest.to_vec()),
            Some((1, reason)) => Err(HandshakeError::Refused(
                String::from_utf8_lossy(reason).chars().take(200).collect(),
            )),
            _ => Err(HandshakeError::Stream("malformed reply".into())),
        }
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, run)
        .await
        .map_err(|_| HandshakeError::Timeout(HANDSHAKE_TIMEOUT))?
}

/// Serves inbound handshake streams until the stream of streams ends.
pub(crate) async fn accept_loop(
    mut incoming: libp2p_stream::IncomingStreams,
    backend: Arc<dyn Backend>,
) {
    use futures::StreamExt;
    let permits = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    while let Some((peer, stream)) = incoming.next().await {
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "handshake refused: too many at once");
            continue;
        };
        let backend = backend.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if tokio::time::timeout(HANDSHAKE_TIMEOUT, serve(peer, stream, backend))
                .await
                .is_err()
            {
                tracing::debug!(%peer, "handshake timed out");
            }
        });
    }
}

async fn serve(peer: PeerId, mut stream: Stream, backend: Arc<dyn Backend>) {
    let frame = match read_frame(&mut stream, MAX_HANDSHAKE_FRAME, |_| {}).await {
        Ok(f) => f,
        Err(e) => {
            tracing::debug!(%peer, "handshake request unreadable: {e}");
            return;
        }
    };
    // The backend answers on a blocking thread: a join writes to the store, and a
    // runtime worker held for that long stalls the swarm and every other session.
    let reply = match frame
        .split_first()
        .map(|(k, _)| HandshakeKind::from_byte(*k))
    {
        Some(Some(kind)) => {
            tokio::task::spawn_blocking(move || backend.handshake(kind, &frame[1..]))
                .await
                .unwrap_or_else(|_| Err("the handshake failed on this node".to_string()))
        }
        Some(None) => Err("unknown handshake kind".to_string()),
        None => Err("empty request".to_string()),
    };
    let out = match reply {
        Ok(bytes) => {
            tracing::info!(%peer, "handshake accepted");
            let mut v = vec![0];
            v.extend_from_slice(&bytes);
            v
        }
        Err(reason) => {
            tracing::info!(%peer, %reason, "handshake refused");
            let mut v = vec![1];
            v.extend_from_slice(reason.as_bytes());
            v
        }
    };
    if out.len() <= MAX_HANDSHAKE_FRAME && write_frame(&mut stream, &out).await.is_ok() {
        let _ = stream.close().await;
    }
}
