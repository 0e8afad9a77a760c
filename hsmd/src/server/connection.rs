//! One client connection: peer check, hello, then pipelined requests with a
//! bound on requests in flight (back-pressure: past it, the socket is not
//! read), and a graceful end on shutdown (stop reading, answer what is in
//! flight, close).

use super::dispatch::{self, Answer, State};
use super::gate::Gate;
use super::peer::Peer;
use bytes::Bytes;
use futures::{FutureExt, SinkExt, StreamExt};
use hsmd_protocol::codec::{frame_codec, is_frame_too_large};
use hsmd_protocol::message::HelloFrame;
use hsmd_protocol::{
    ClientHello, ErrorBody, ErrorCode, Request, Response, ServerHello, PROTOCOL_VERSION,
};
use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore, SemaphorePermit};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

/// Per-connection limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Requests in flight (read and not yet answered on the socket).
    pub max_in_flight: usize,
    /// Request bytes in flight.
    pub max_in_flight_bytes: usize,
    /// Time for the hello.
    pub handshake_timeout: Duration,
    /// Time a frame may take to arrive once its first byte has; also the
    /// time the socket may accept no byte of pending answers before the
    /// connection is closed.
    pub frame_timeout: Duration,
}

/// What holds a request's place until its answer is on the socket: its
/// connection's `max_in_flight` and `max_in_flight_bytes`, and its share of
/// [`REQUEST_BUDGET`] (none for a request let through alone, see there).
type Permits = (
    OwnedSemaphorePermit,
    OwnedSemaphorePermit,
    Option<SemaphorePermit<'static>>,
);

/// Request bytes that all connections together may hold read, in flight and
/// answered but not yet written, in KiB. Past it, connections stop reading
/// until earlier answers are written: back-pressure, as `max_in_flight` and
/// `max_in_flight_bytes` give per connection, so that memory stays bounded
/// however many clients there are (64 connections with 16 requests of 64 KiB
/// each in flight held 60 MiB and more). 4 MiB is some 45 requests of 64 KiB,
/// or thousands of small ones: far more than a token's sessions take at once.
///
/// Clients that never read their answers must not hold it and stall
/// everyone else, so two rules go with it:
/// - a request that is the only one of its connection in flight (every
///   earlier answer written) never waits for the budget: it takes its share
///   if the share is free and goes on without one otherwise. A client that
///   waits for each answer is therefore never held back by others, and this
///   adds at most one frame per connection to the bound;
/// - a connection whose socket accepts no byte of its pending answers for
///   `frame_timeout` is closed, and its unwritten answers are dropped with
///   their shares (see [`write_frames`]).
const REQUEST_BUDGET_KIB: usize = 4 * 1024;

/// The budget of [`REQUEST_BUDGET_KIB`]. Process-wide on purpose: it bounds
/// the memory of the whole process across every connection (what it is
/// for), and its permits live as long as the answers that hold them, which
/// outlive any one connection's state; a `'static` semaphore gives those
/// permits without reference counting on every request.
static REQUEST_BUDGET: Semaphore = Semaphore::const_new(REQUEST_BUDGET_KIB);

/// The share of [`REQUEST_BUDGET`] a frame of `len` bytes takes.
fn budget_units(len: usize) -> u32 {
    (len / 1024 + 1).min(REQUEST_BUDGET_KIB) as u32
}

/// The writer of a connection gave up (see [`write_frames`]).
struct WriterGone;

/// Takes `units` of [`REQUEST_BUDGET`] for a request. Waits for them, unless
/// the request is or becomes the only one of its connection in flight
/// (`in_flight`, of `max_in_flight` permits, has all the others back): then
/// takes them only if they are free, and goes on without otherwise.
async fn budget_share(
    units: u32,
    in_flight: &Semaphore,
    max_in_flight: usize,
    writer_gone: Pin<&mut impl Future<Output = ()>>,
) -> Result<Option<SemaphorePermit<'static>>, WriterGone> {
    let others = u32::try_from(max_in_flight.saturating_sub(1)).unwrap_or(u32::MAX);
    if in_flight.available_permits() >= others as usize {
        return Ok(REQUEST_BUDGET.try_acquire_many(units).ok());
    }
    tokio::select! {
        p = REQUEST_BUDGET.acquire_many(units) => Ok(p.ok()),
        Ok(_alone) = in_flight.acquire_many(others) => Ok(REQUEST_BUDGET.try_acquire_many(units).ok()),
        _ = writer_gone => Err(WriterGone),
    }
}

/// Turns `held` (a share reserved before the frame was read, maybe `None`)
/// into exactly `units` of [`REQUEST_BUDGET`]: gives back the excess, or takes
/// the rest as [`budget_share`] does.
async fn top_up(
    mut held: Option<SemaphorePermit<'static>>,
    units: u32,
    in_flight: &Semaphore,
    max_in_flight: usize,
    writer_gone: Pin<&mut impl Future<Output = ()>>,
) -> Result<Option<SemaphorePermit<'static>>, WriterGone> {
    let units = units as usize;
    let have = held.as_ref().map_or(0, SemaphorePermit::num_permits);
    if have >= units {
        if let Some(p) = held.as_mut() {
            drop(p.split(have - units));
        }
        return Ok(held);
    }
    let more = u32::try_from(units - have).unwrap_or(u32::MAX);
    let more = budget_share(more, in_flight, max_in_flight, writer_gone).await?;
    Ok(match (held, more) {
        (Some(mut h), Some(m)) => {
            h.merge(m);
            Some(h)
        }
        (h, m) => h.or(m),
    })
}

/// Most answer frames written with one `writev`.
const WRITE_BATCH: usize = 32;

/// Writes `frames`, each as its 4-byte big-endian length then its body
/// (the framing of [`frame_codec`]), with vectored writes straight from the
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
type Outgoing = (Bytes, Option<Permits>);

/// Why [`next_frame`] returned without a frame.
enum Stop {
    /// End of stream, a read error, or the writer gave up.
    Closed,
    /// A frame started and made no progress for `frame_timeout`.
    Stalled,
    /// hsmd is shutting down.
    Shutdown,
}

fn encode(resp: &Response) -> Bytes {
    match serde_json::to_vec(resp) {
        Ok(v) => Bytes::from(v),
        Err(e) => {
            tracing::error!("cannot encode a response: {e}");
            Bytes::from_static(br#"{"id":null,"error":{"code":"internal","message":"cannot encode the response","ckr":null}}"#)
        }
    }
}

/// Encodes an answer that must fit in `max` bytes: a larger result is
/// replaced by a `frame_too_large` error with the request's id, so the
/// client gets an answer and the connection stays usable.
fn encode_bounded(answer: Answer, op: &str, max: usize) -> Bytes {
    let (id, bytes) = match answer {
        Answer::Response(resp) => (resp.id, encode(&resp)),
        Answer::Frame { id, body } => (Some(id), Bytes::from(body)),
    };
    if bytes.len() <= max {
        return bytes;
    }
    tracing::warn!(
        op,
        size = bytes.len(),
        max,
        "result larger than max_frame_len"
    );
    encode(&Response::err(
        id,
        ErrorBody::new(
            ErrorCode::FrameTooLarge,
            format!(
                "the result of {op} is {} bytes, more than max_frame_len ({max} bytes); ask for less, or raise max_frame_len in hsmd's configuration",
                bytes.len()
            ),
        ),
    ))
}

async fn send_and_close(
    mut writer: FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>,
    id: Option<u64>,
    e: ErrorBody,
) {
    let _ = writer.send(encode(&Response::err(id, e))).await;
    let _ = SinkExt::<Bytes>::close(&mut writer).await;
}

/// Serves one accepted connection until the peer leaves, breaks framing, or
/// `shutdown` fires.
pub async fn serve(
    stream: UnixStream,
    state: Arc<State>,
    gate: Arc<Gate>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let cred = match stream.peer_cred() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("cannot read SO_PEERCRED of a new connection: {e}");
            return;
        }
    };
    let (uid, gid, pid) = (cred.uid(), cred.gid(), cred.pid());
    let (rd, wr) = stream.into_split();
    let mut reader = FramedRead::new(rd, frame_codec(state.max_frame_len));
    let mut writer = FramedWrite::new(wr, frame_codec(state.max_frame_len));
    let _ticket = match gate.enter(uid) {
        Ok(t) => t,
        Err(e) => {
            if crate::logging::allow_every_second() {
                tracing::warn!(
                    peer_uid = uid,
                    peer_pid = pid,
                    result = "busy",
                    "refused connection: {}",
                    e.message
                );
            }
            return send_and_close(writer, None, e).await;
        }
    };
    let policy = state.policy.clone();
    let admitted = tokio::task::spawn_blocking(move || policy.admit(uid, gid, pid)).await;
    let peer = match admitted {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            tracing::warn!(
                peer_uid = uid,
                peer_pid = pid,
                result = "unauthorized",
                "refused connection: {}",
                e.message
            );
            return send_and_close(writer, None, e).await;
        }
        Err(e) => {
            tracing::error!("peer check failed: {e}");
            return send_and_close(
                writer,
                None,
                ErrorBody::new(ErrorCode::Internal, "peer check failed"),
            )
            .await;
        }
    };
    let first = tokio::select! {
        f = tokio::time::timeout(limits.handshake_timeout, reader.next()) => f,
        _ = shutdown.cancelled() => return,
    };
    let refuse = |writer, e: ErrorBody| {
        log_refusal(uid, pid, &e);
        send_and_close(writer, None, e)
    };
    let frame = match first {
        Err(_) => {
            let msg = format!("no hello within {} s; send {{\"hello\": {{\"versions\": [1], \"client\": \"name/version\"}}}} first", limits.handshake_timeout.as_secs());
            return refuse(writer, ErrorBody::bad_request(msg)).await;
        }
        Ok(None) => return,
        Ok(Some(Err(e))) if is_frame_too_large(&e) => {
            return refuse(writer, too_large(state.max_frame_len)).await;
        }
        Ok(Some(Err(_))) => return,
        Ok(Some(Ok(f))) => f,
    };
    let hello = match decode_hello(&frame) {
        Ok(h) => h,
        Err(e) => return refuse(writer, e).await,
    };
    if !hello.versions.contains(&PROTOCOL_VERSION) {
        let e = ErrorBody::new(
            ErrorCode::UnsupportedVersion,
            format!(
                "hsmd speaks protocol version {PROTOCOL_VERSION}; the client offered {:?}",
                hello.versions
            ),
        );
        return refuse(writer, e).await;
    }
    let reply = HelloFrame {
        hello: ServerHello {
            version: PROTOCOL_VERSION,
            server: concat!("hsmd/", env!("CARGO_PKG_VERSION")).into(),
            model: state.model.clone(),
            slots: state.slot_ids(),
            admins: state.policy.admins.names.clone(),
            max_frame_len: state.max_frame_len,
            identity: peer.name.clone(),
            may_act_as_others: peer.is_frontend,
        },
    };
    let Ok(hello_bytes) = serde_json::to_vec(&reply) else {
        return;
    };
    if writer.send(Bytes::from(hello_bytes)).await.is_err() {
        return;
    }
    tracing::debug!(peer_uid = uid, peer_pid = pid, client = %hello.client, "client connected");
    requests(reader, writer, state, Arc::new(peer), limits, shutdown).await;
}

/// Longest client-influenced refusal message written to the log, in
/// characters (as the request records, docs/configuration.md "Logging").
const LOG_ECHO_MAX: usize = 160;

/// Logs, at `warn`, an error frame that ends a connection: a refused or
/// missing hello, a frame longer than `max_frame_len`. The message may
/// quote client input: it is cut to [`LOG_ECHO_MAX`] characters (with the
/// full length stated) and escaped, so it cannot forge log lines.
fn log_refusal(uid: u32, pid: Option<i32>, e: &ErrorBody) {
    let total = e.message.chars().count();
    let mut message: String = e.message.chars().take(LOG_ECHO_MAX).collect();
    if total > LOG_ECHO_MAX {
        message.push_str(&format!("... ({total} characters)"));
    }
    tracing::warn!(
        peer_uid = uid,
        peer_pid = pid,
        result = e.code.as_str(),
        "refused connection: {}",
        message.escape_debug()
    );
}

/// Decodes the client's first frame, `{"hello": {"versions": [..], "client": ".."}}`
/// (docs/protocol.md "Handshake"); unknown members are refused.
///
/// Errors: the `bad_request` body sent back before the connection is
/// closed, showing the expected shape and serde's reason.
pub fn decode_hello(frame: &[u8]) -> Result<ClientHello, ErrorBody> {
    serde_json::from_slice::<HelloFrame<ClientHello>>(frame)
        .map(|h| h.hello)
        .map_err(|e| {
            ErrorBody::bad_request(format!(
                "the first frame must be {{\"hello\": {{\"versions\": [1], \"client\": ...}}}}: {e}"
            ))
        })
}

fn too_large(max: usize) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::FrameTooLarge,
        format!("frame longer than max_frame_len ({max} bytes); the connection is closed"),
    )
}

/// Waits for the next complete frame. A frame whose bytes stop arriving for
/// about `frame_timeout` (checked at half-periods, with no frame decoded in
/// between) ends the connection, so half-sent frames cannot pin memory. So
/// does `writer_gone` (the writer gave up: nobody would write the answers).
/// A share of the request budget `reserved` for the frame is given back if
/// every other request of the connection is answered on the socket
/// meanwhile (`in_flight` has `others` permits free): an idle connection
/// holds none.
#[allow(clippy::too_many_arguments)] // the read loop's state, borrowed
async fn next_frame(
    reader: &mut FramedRead<tokio::net::unix::OwnedReadHalf, LengthDelimitedCodec>,
    ticker: &mut tokio::time::Interval,
    stalled_ticks: &mut u8,
    shutdown: &CancellationToken,
    mut writer_gone: Pin<&mut impl Future<Output = ()>>,
    reserved: &mut Option<SemaphorePermit<'static>>,
    in_flight: &Semaphore,
    others: u32,
) -> Result<Result<Bytes, std::io::Error>, Stop> {
    loop {
        tokio::select! {
            n = reader.next() => {
                *stalled_ticks = 0;
                return match n {
                    Some(Ok(f)) => Ok(Ok(f.freeze())),
                    Some(Err(e)) => Ok(Err(e)),
                    None => Err(Stop::Closed),
                };
            }
            _ = ticker.tick() => {
                if reader.read_buffer().is_empty() {
                    *stalled_ticks = 0;
                } else {
                    *stalled_ticks += 1;
                    if *stalled_ticks > 2 {
                        return Err(Stop::Stalled);
                    }
                }
            }
            _ = shutdown.cancelled() => return Err(Stop::Shutdown),
            _ = writer_gone.as_mut() => return Err(Stop::Closed),
            Ok(_alone) = in_flight.acquire_many(others), if reserved.is_some() => {
                *reserved = None;
            }
        }
    }
}

async fn requests(
    mut reader: FramedRead<tokio::net::unix::OwnedReadHalf, LengthDelimitedCodec>,
    writer: FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>,
    state: Arc<State>,
    peer: Arc<Peer>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight));
    let budget = limits.max_in_flight_bytes.min(Semaphore::MAX_PERMITS) as u32;
    let in_flight_bytes = Arc::new(Semaphore::new(budget as usize));
    let (tx, mut rx) = mpsc::channel::<Outgoing>(limits.max_in_flight + 1);
    // The hello went out with a flush: nothing is left in the codec's buffer.
    let mut wr = writer.into_inner();
    let writer_peer = peer.clone();
    let write_task = tokio::spawn(async move {
        // Permits are released only once the answer is written: a client that
        // does not read its answers stops being read (back-pressure). One
        // whose socket takes no byte for frame_timeout is closed: returning
        // drops `rx`, the answers waiting in it and in `batch`, and their
        // permits (shares of REQUEST_BUDGET among them); the read loop sees
        // `tx` closed and stops.
        let mut batch = Vec::with_capacity(WRITE_BATCH);
        while let Some(first) = rx.recv().await {
            batch.push(first);
            while batch.len() < WRITE_BATCH {
                match rx.try_recv() {
                    Ok(more) => batch.push(more),
                    Err(_) => break,
                }
            }
            if let Err(e) = write_frames(&mut wr, &batch, limits.frame_timeout).await {
                if e.kind() == std::io::ErrorKind::TimedOut {
                    tracing::warn!(
                        peer_uid = writer_peer.uid,
                        peer_pid = writer_peer.pid,
                        result = "timeout",
                        "{} (uid {}) read none of its answers for {} s (frame_timeout_secs): the connection is closed and the {} answers waiting to be written are dropped",
                        writer_peer.name.escape_debug(),
                        writer_peer.uid,
                        limits.frame_timeout.as_secs(),
                        batch.len() + rx.len()
                    );
                }
                return;
            }
            // Frees the written frames and their requests' permits.
            batch.clear();
        }
        let _ = wr.shutdown().await;
    });
    let mut ticker = tokio::time::interval(limits.frame_timeout / 2);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stalled_ticks = 0u8;
    {
        // Resolves once the writer has given up (and then stays pending: fused);
        // made once, not for every frame.
        let mut writer_gone = std::pin::pin!(tx.closed().fuse());
        let others = u32::try_from(limits.max_in_flight.saturating_sub(1)).unwrap_or(u32::MAX);
        // This connection's share of REQUEST_BUDGET for its next request,
        // taken before the request is read (sized as its last one), and the
        // size of the last one.
        let mut reserved: Option<SemaphorePermit<'static>> = None;
        let mut last_units = 1u32;
        loop {
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                break;
            };
            if tx.is_closed() {
                break;
            }
            // With other requests in flight, wait for room in the budget
            // before reading: past it, requests wait in the socket, not in
            // hsmd's memory. Alone in flight, read at once (see REQUEST_BUDGET).
            if reserved.is_none()
                && !shutdown.is_cancelled()
                && in_flight.available_permits() < others as usize
            {
                tokio::select! {
                    p = REQUEST_BUDGET.acquire_many(last_units) => reserved = p.ok(),
                    Ok(_alone) = in_flight.acquire_many(others) => {}
                    _ = writer_gone.as_mut() => break,
                }
            }
            // On shutdown, take only the requests already received (buffered in
            // the socket), then stop reading: every request read is answered.
            let next = if shutdown.is_cancelled() {
                match reader.next().now_or_never() {
                    Some(Some(n)) => n.map(|f| f.freeze()),
                    _ => break,
                }
            } else {
                match next_frame(
                    &mut reader,
                    &mut ticker,
                    &mut stalled_ticks,
                    &shutdown,
                    writer_gone.as_mut(),
                    &mut reserved,
                    &in_flight,
                    others,
                )
                .await
                {
                    Ok(n) => n,
                    Err(Stop::Closed) => break,
                    Err(Stop::Shutdown) => continue,
                    Err(Stop::Stalled) => {
                        let msg = format!(
                            "a frame started but did not arrive within {} s; the connection is closed",
                            limits.frame_timeout.as_secs()
                        );
                        tracing::warn!(
                            peer_uid = peer.uid,
                            peer_pid = peer.pid,
                            result = "bad_request",
                            "{msg}"
                        );
                        let _ = tx
                            .send((
                                encode(&Response::err(None, ErrorBody::bad_request(msg))),
                                None,
                            ))
                            .await;
                        break;
                    }
                }
            };
            let frame = match next {
                Err(e) if is_frame_too_large(&e) => {
                    let e = too_large(state.max_frame_len);
                    log_refusal(peer.uid, peer.pid, &e);
                    let _ = tx.send((encode(&Response::err(None, e)), None)).await;
                    break;
                }
                Err(_) => break,
                Ok(f) => f,
            };
            let want = (frame.len().max(1) as u64).min(u64::from(budget)) as u32;
            let Ok(bytes_permit) = in_flight_bytes.clone().acquire_many_owned(want).await else {
                break;
            };
            last_units = budget_units(frame.len());
            let Ok(shared) = top_up(
                reserved.take(),
                last_units,
                &in_flight,
                limits.max_in_flight,
                writer_gone.as_mut(),
            )
            .await
            else {
                break;
            };
            if tx.is_closed() {
                // The writer gave up while this request waited for its permits.
                break;
            }
            let permits = Some((permit, bytes_permit, shared));
            let decoded = match super::hot::decode_hot(&frame) {
                Some(r) => Ok(r),
                None => Request::decode(&frame),
            };
            let req = match decoded {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(
                        peer_uid = peer.uid,
                        peer_pid = peer.pid,
                        result = "bad_request",
                        "{}",
                        e.error.message.escape_debug()
                    );
                    if tx
                        .send((encode(&Response::err(e.id, e.error)), permits))
                        .await
                        .is_err()
                    {
                        break;
                    }
                    continue;
                }
            };
            drop(frame);
            let (state, peer, tx) = (state.clone(), peer.clone(), tx.clone());
            tokio::spawn(async move {
                let op = req.op.name();
                let resp = dispatch::handle(&state, &peer, req).await;
                let _ = tx
                    .send((encode_bounded(resp, op, state.max_frame_len), permits))
                    .await;
            });
        }
    }
    // Answer everything in flight before closing.
    let _ = in_flight.acquire_many(limits.max_in_flight as u32).await;
    drop(tx);
    let _ = write_task.await;
}
