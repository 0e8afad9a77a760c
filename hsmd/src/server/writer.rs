//! The write side of a connection: a task that writes the answers handed to
//! it, in batches with vectored writes, and releases each request's place
//! only once its answer is on the socket.

use super::peer::Peer;
use bytes::Bytes;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{mpsc, OwnedSemaphorePermit, SemaphorePermit};

/// What holds a request's place until its answer is on the socket: its
/// connection's `max_in_flight` and `max_in_flight_bytes`, and its share of
/// [`REQUEST_BUDGET`](super::connection::REQUEST_BUDGET) (none for a request let through alone, see there).
pub(super) type Permits = (
    OwnedSemaphorePermit,
    OwnedSemaphorePermit,
    Option<SemaphorePermit<'static>>,
);

/// Most answer frames written with one `writev`.
const WRITE_BATCH: usize = 32;

/// Writes `frames`, each as its 4-byte big-endian length then its body
/// (the framing of [`frame_codec`](hsmd_protocol::codec::frame_codec)), with vectored writes straight from the
/// frames: no copy into a buffer of the connection's own. Fails with
/// [`std::io::ErrorKind::TimedOut`] when the socket accepts no byte for
/// `stall`: the client is not reading its answers.
async fn write_frames(
    wr: &mut OwnedWriteHalf,
    frames: &[(Bytes, Option<Permits>)],
    stall: Duration,
) -> std::io::Result<()> {
    let heads: Vec<[u8; 4]> = frames
        .iter()
        .map(|(f, _)| u32::try_from(f.len()).unwrap_or(u32::MAX).to_be_bytes())
        .collect();
    let mut slices: Vec<IoSlice<'_>> = heads
        .iter()
        .zip(frames)
        .flat_map(|(h, (f, _))| [IoSlice::new(h), IoSlice::new(f)])
        .collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let n = match tokio::time::timeout(stall, wr.write_vectored(rest)).await {
            Ok(n) => n?,
            Err(_) => return Err(std::io::ErrorKind::TimedOut.into()),
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

/// An answer frame for the writer, with what holds its request's place
/// (`None` for errors that answer no request).
pub(super) type Outgoing = (Bytes, Option<Permits>);

/// The writer task of a connection: writes the answers sent on `rx`, up to
/// [`WRITE_BATCH`] at a time (what is waiting), with [`write_frames`], then
/// shuts the socket's write side down once every sender is gone.
///
/// Permits are released only once the answer is written: a client that
/// does not read its answers stops being read (back-pressure). One whose
/// socket takes no byte for `stall` (frame_timeout) is closed: returning
/// drops `rx`, the answers waiting in it and in the batch, and their permits
/// (shares of [`REQUEST_BUDGET`](super::connection::REQUEST_BUDGET) among them); the read loop sees its sender
/// closed and stops.
pub(super) async fn write_answers(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Outgoing>,
    peer: Arc<Peer>,
    stall: Duration,
) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        if let Err(e) = write_frames(&mut wr, &batch, stall).await {
            if e.kind() == std::io::ErrorKind::TimedOut {
                tracing::warn!(
                    peer_uid = peer.uid,
                    peer_pid = peer.pid,
                    result = "timeout",
                    "{} (uid {}) read none of its answers for {} s (frame_timeout_secs): the connection is closed and the {} answers waiting to be written are dropped",
                    peer.name.escape_debug(),
                    peer.uid,
                    stall.as_secs(),
                    batch.len() + rx.len()
                );
            }
            return;
        }
        // Frees the written frames and their requests' permits.
        batch.clear();
    }
    let _ = wr.shutdown().await;
}
