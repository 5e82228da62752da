//! Length-prefixed frames on a byte stream, with a hard maximum checked before allocating.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes. Zero-length frames
//! and lengths above the caller's maximum are refused from the prefix alone, so a peer
//! can never make this side allocate more than the maximum. The body is read in chunks of
//! [`READ_CHUNK`] bytes and `progress` is called after each one (the sync driver uses it
//! to tell the session that a large frame is still arriving).

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes of the length prefix.
pub const PREFIX_BYTES: usize = 4;

/// Bytes read at a time from a frame body.
pub const READ_CHUNK: usize = 64 * 1024;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The stream ended cleanly before a frame started.
    #[error("stream closed")]
    Closed,
    /// The prefix announces more than the maximum.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The prefix announces an empty frame.
    #[error("empty frame")]
    Empty,
    /// The transport failed (or ended inside a frame).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame of at most `max` bytes, calling `progress(bytes_so_far)` after each
/// chunk of the body.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
    mut progress: impl FnMut(usize),
) -> Result<Vec<u8>, FrameError> {
    let mut prefix = [0u8; PREFIX_BYTES];
    let mut got = 0;
    while got < PREFIX_BYTES {
        let n = r.read(&mut prefix[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Err(FrameError::Closed)
            } else {
                Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()))
            };
        }
        got += n;
    }
    let len = u32::from_be_bytes(prefix) as usize;
    if len == 0 {
        return Err(FrameError::Empty);
    }
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let mut buf = Vec::with_capacity(len.min(READ_CHUNK));
    while buf.len() < len {
        let start = buf.len();
        let want = (len - start).min(READ_CHUNK);
        buf.resize(start + want, 0);
        r.read_exact(&mut buf[start..]).await?;
        progress(buf.len());
    }
    Ok(buf)
}

/// Writes one frame (the caller guarantees `frame.len()` fits the peer's maximum) and
/// flushes.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &[u8]) -> Result<(), FrameError> {
    let len = u32::try_from(frame.len()).map_err(|_| FrameError::TooLarge {
        len: frame.len(),
        max: u32::MAX as usize,
    })?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(frame).await?;
    w.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_limits() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"hello").await.unwrap();
        let mut r = futures::io::Cursor::new(buf);
        assert_eq!(read_frame(&mut r, 16, |_| {}).await.unwrap(), b"hello");
        assert!(matches!(
            read_frame(&mut r, 16, |_| {}).await,
            Err(FrameError::Closed)
        ));

        let mut r = futures::io::Cursor::new(u32::MAX.to_be_bytes().to_vec());
        assert!(matches!(
            read_frame(&mut r, 16, |_| {}).await,
            Err(FrameError::TooLarge { .. })
        ));
        let mut r = futures::io::Cursor::new(vec![0, 0, 0, 0]);
        assert!(matches!(
            read_frame(&mut r, 16, |_| {}).await,
            Err(FrameError::Empty)
        ));
        let mut r = futures::io::Cursor::new(vec![0, 0, 0, 9, 1, 2]);
        assert!(matches!(
            read_frame(&mut r, 16, |_| {}).await,
            Err(FrameError::Io(_))
        ));
    }
}
