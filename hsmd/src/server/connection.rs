//! One client connection: peer check, hello, then pipelined requests with a
//! bound on requests in flight (back-pressure: past it, the socket is not
//! read), and a graceful end on shutdown (stop reading, answer what is in
//! flight, close).

use super::dispatch::{self, Answer, State};
use super::gate::Gate;
use super::hello::{read_hello, send_server_hello, too_large, NoHello};
use super::peer::Peer;
use super::writer::{write_answers, Outgoing, Permits};
use bytes::Bytes;
use futures::{FutureExt, SinkExt, StreamExt};
use hsmd_protocol::codec::{frame_codec, is_frame_too_large};
use hsmd_protocol::{ErrorBody, ErrorCode, Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
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
///   their shares (see [`write_frames`](super::writer::write_frames)).
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

/// The writer of a connection gave up (see [`write_frames`](super::writer::write_frames)).
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

/// Why [`ReadLoop::next_frame`] returned without a frame.
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

/// Sends the error frame `e` (answering request `id`, if any) and closes the
/// connection.
async fn send_and_close(
    mut writer: FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>,
    id: Option<u64>,
    e: ErrorBody,
) {
    let _ = writer.send(encode(&Response::err(id, e))).await;
    let _ = SinkExt::<Bytes>::close(&mut writer).await;
}

/// Serves one accepted connection until the peer leaves, breaks framing, or
/// `shutdown` fires: reads its credentials, lets it through the connection
/// `gate` and the peer policy, exchanges the hello (docs/protocol.md
/// "Handshake"), then serves its requests.
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
    // Held until the connection ends, refusals included.
    let _ticket = match gate.enter(uid) {
        Ok(t) => t,
        Err(e) => {
            log_busy(uid, pid, &e);
            return send_and_close(writer, None, e).await;
        }
    };
    let peer = match admit_peer(&state, uid, gid, pid).await {
        Ok(p) => p,
        Err(e) => return send_and_close(writer, None, e).await,
    };
    let hello = match read_hello(&mut reader, &state, limits.handshake_timeout, &shutdown).await {
        Ok(h) => h,
        Err(NoHello::Refused(e)) => {
            log_refusal(uid, pid, &e);
            return send_and_close(writer, None, e).await;
        }
        Err(NoHello::Gone) => return,
    };
    if !send_server_hello(&mut writer, &state, &peer).await {
        return;
    }
    tracing::debug!(peer_uid = uid, peer_pid = pid, client = %hello.client, "client connected");
    requests(reader, writer, state, Arc::new(peer), limits, shutdown).await;
}

/// Logs, at `warn` and at most about once a second, a connection the gate
/// refused (too many connections).
fn log_busy(uid: u32, pid: Option<i32>, e: &ErrorBody) {
    if crate::logging::allow_every_second() {
        tracing::warn!(
            peer_uid = uid,
            peer_pid = pid,
            result = "busy",
            "refused connection: {}",
            e.message
        );
    }
}

/// Checks the peer `uid`/`gid`/`pid` (from SO_PEERCRED) against hsmd's peer
/// policy, off the runtime's threads (it may look the user up).
///
/// Errors: the refusal to send back, already logged (`unauthorized`, or
/// `internal` when the check itself failed).
async fn admit_peer(
    state: &State,
    uid: u32,
    gid: u32,
    pid: Option<i32>,
) -> Result<Peer, ErrorBody> {
    let policy = state.policy.clone();
    match tokio::task::spawn_blocking(move || policy.admit(uid, gid, pid)).await {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(e)) => {
            tracing::warn!(
                peer_uid = uid,
                peer_pid = pid,
                result = "unauthorized",
                "refused connection: {}",
                e.message
            );
            Err(e)
        }
        Err(e) => {
            tracing::error!("peer check failed: {e}");
            Err(ErrorBody::new(ErrorCode::Internal, "peer check failed"))
        }
    }
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

/// Serves the requests of a connection past its hello: reads them with the
/// [`ReadLoop`], answers them through the [`write_answers`] task, and closes.
async fn requests(
    reader: FramedRead<tokio::net::unix::OwnedReadHalf, LengthDelimitedCodec>,
    writer: FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>,
    state: Arc<State>,
    peer: Arc<Peer>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight));
    let budget = limits.max_in_flight_bytes.min(Semaphore::MAX_PERMITS) as u32;
    let in_flight_bytes = Arc::new(Semaphore::new(budget as usize));
    let (tx, rx) = mpsc::channel::<Outgoing>(limits.max_in_flight + 1);
    // The hello went out with a flush: nothing is left in the codec's buffer.
    let write_task = tokio::spawn(write_answers(
        writer.into_inner(),
        rx,
        peer.clone(),
        limits.frame_timeout,
    ));
    let mut ticker = tokio::time::interval(limits.frame_timeout / 2);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut read_loop = ReadLoop {
        reader,
        ticker,
        stalled_ticks: 0,
        state: &state,
        peer: &peer,
        limits,
        shutdown: &shutdown,
        tx: &tx,
        in_flight: &in_flight,
        in_flight_bytes: &in_flight_bytes,
        budget,
        others: u32::try_from(limits.max_in_flight.saturating_sub(1)).unwrap_or(u32::MAX),
        reserved: None,
        last_units: 1,
    };
    {
        // Resolves once the writer has given up (and then stays pending: fused);
        // made once, not for every frame.
        let writer_gone = std::pin::pin!(tx.closed().fuse());
        read_loop.run(writer_gone).await;
    }
    close(&in_flight, limits.max_in_flight, tx, write_task).await;
}

/// Ends a connection gracefully: waits until every request in flight is
/// answered (all of `in_flight`'s `max_in_flight` permits back), then drops
/// `tx`, the last sender, so that the writer task writes what is left,
/// shuts the socket's write side down and ends.
async fn close(
    in_flight: &Semaphore,
    max_in_flight: usize,
    tx: mpsc::Sender<Outgoing>,
    write_task: tokio::task::JoinHandle<()>,
) {
    let _ = in_flight.acquire_many(max_in_flight as u32).await;
    drop(tx);
    let _ = write_task.await;
}

/// The read side of a connection's request loop: reads frames while the
/// connection has room for them (`max_in_flight`, `max_in_flight_bytes`,
/// its share of [`REQUEST_BUDGET`]), decodes each and hands it to a task of
/// its own, whose answer goes to the writer task on `tx`.
struct ReadLoop<'a> {
    reader: FramedRead<tokio::net::unix::OwnedReadHalf, LengthDelimitedCodec>,
    /// Ticks every half `frame_timeout`, to find stalled frames.
    ticker: tokio::time::Interval,
    /// Ticks in a row that found a frame started and no frame decoded.
    stalled_ticks: u8,
    state: &'a Arc<State>,
    peer: &'a Arc<Peer>,
    limits: Limits,
    shutdown: &'a CancellationToken,
    /// Answers to the writer task.
    tx: &'a mpsc::Sender<Outgoing>,
    /// The connection's `max_in_flight` permits.
    in_flight: &'a Arc<Semaphore>,
    /// The connection's `max_in_flight_bytes` permits, `budget` of them.
    in_flight_bytes: &'a Arc<Semaphore>,
    budget: u32,
    /// `max_in_flight - 1`: the permits of `in_flight` free when a request
    /// is alone in flight.
    others: u32,
    /// This connection's share of [`REQUEST_BUDGET`] for its next request,
    /// taken before the request is read (sized as its last one).
    reserved: Option<SemaphorePermit<'static>>,
    /// The share of [`REQUEST_BUDGET`] the last request took.
    last_units: u32,
}

/// What [`ReadLoop::read_request`] got.
enum Next {
    /// A request frame.
    Frame(Bytes),
    /// Nothing yet: hsmd began shutting down; read what is already received.
    Again,
    /// Stop reading.
    End,
}

impl ReadLoop<'_> {
    /// Reads and starts requests, one `max_in_flight` permit each, until the
    /// connection ends (see [`Next`]) or the writer gives up (`writer_gone`).
    async fn run(&mut self, mut writer_gone: Pin<&mut impl Future<Output = ()>>) {
        loop {
            let Ok(permit) = self.in_flight.clone().acquire_owned().await else {
                break;
            };
            if self.tx.is_closed() {
                break;
            }
            if !self.reserve_budget(writer_gone.as_mut()).await {
                break;
            }
            let frame = match self.read_request(writer_gone.as_mut()).await {
                Next::Frame(f) => f,
                Next::Again => continue,
                Next::End => break,
            };
            let Some(permits) = self
                .take_permits(permit, frame.len(), writer_gone.as_mut())
                .await
            else {
                break;
            };
            if !self.start_request(frame, permits).await {
                break;
            }
        }
        // No next request: its share goes back before the last answers.
        self.reserved = None;
    }

    /// With other requests in flight, waits for room in the budget before
    /// reading (a share sized as the last request): past it, requests wait
    /// in the socket, not in hsmd's memory. Alone in flight, reads at once
    /// (see [`REQUEST_BUDGET`]). Returns `false` if the writer gave up.
    async fn reserve_budget(&mut self, writer_gone: Pin<&mut impl Future<Output = ()>>) -> bool {
        if self.reserved.is_none()
            && !self.shutdown.is_cancelled()
            && self.in_flight.available_permits() < self.others as usize
        {
            tokio::select! {
                p = REQUEST_BUDGET.acquire_many(self.last_units) => self.reserved = p.ok(),
                Ok(_alone) = self.in_flight.acquire_many(self.others) => {}
                _ = writer_gone => return false,
            }
        }
        true
    }

    /// Reads the next request frame. On shutdown, takes only the requests
    /// already received (buffered in the socket), then stops reading: every
    /// request read is answered. A stalled frame or one longer than
    /// `max_frame_len` is answered with an error frame and ends the reading.
    async fn read_request(&mut self, writer_gone: Pin<&mut impl Future<Output = ()>>) -> Next {
        let next = if self.shutdown.is_cancelled() {
            match self.reader.next().now_or_never() {
                Some(Some(n)) => n.map(|f| f.freeze()),
                _ => return Next::End,
            }
        } else {
            match self.next_frame(writer_gone).await {
                Ok(n) => n,
                Err(Stop::Closed) => return Next::End,
                Err(Stop::Shutdown) => return Next::Again,
                Err(Stop::Stalled) => {
                    self.refuse_stalled().await;
                    return Next::End;
                }
            }
        };
        match next {
            Err(e) if is_frame_too_large(&e) => {
                let e = too_large(self.state.max_frame_len);
                log_refusal(self.peer.uid, self.peer.pid, &e);
                let _ = self.tx.send((encode(&Response::err(None, e)), None)).await;
                Next::End
            }
            Err(_) => Next::End,
            Ok(f) => Next::Frame(f),
        }
    }

    /// Logs and answers (`bad_request`, no id) a frame that started and did
    /// not arrive within `frame_timeout`.
    async fn refuse_stalled(&self) {
        let msg = format!(
            "a frame started but did not arrive within {} s; the connection is closed",
            self.limits.frame_timeout.as_secs()
        );
        tracing::warn!(
            peer_uid = self.peer.uid,
            peer_pid = self.peer.pid,
            result = "bad_request",
            "{msg}"
        );
        let _ = self
            .tx
            .send((
                encode(&Response::err(None, ErrorBody::bad_request(msg))),
                None,
            ))
            .await;
    }

    /// Waits for the next complete frame. A frame whose bytes stop arriving
    /// for about `frame_timeout` (checked at half-periods, with no frame
    /// decoded in between) ends the connection, so half-sent frames cannot
    /// pin memory. So does `writer_gone` (the writer gave up: nobody would
    /// write the answers). A share of the request budget `reserved` for the
    /// frame is given back if every other request of the connection is
    /// answered on the socket meanwhile (`in_flight` has `others` permits
    /// free): an idle connection holds none.
    async fn next_frame(
        &mut self,
        mut writer_gone: Pin<&mut impl Future<Output = ()>>,
    ) -> Result<Result<Bytes, std::io::Error>, Stop> {
        loop {
            tokio::select! {
                n = self.reader.next() => {
                    self.stalled_ticks = 0;
                    return match n {
                        Some(Ok(f)) => Ok(Ok(f.freeze())),
                        Some(Err(e)) => Ok(Err(e)),
                        None => Err(Stop::Closed),
                    };
                }
                _ = self.ticker.tick() => {
                    if self.reader.read_buffer().is_empty() {
                        self.stalled_ticks = 0;
                    } else {
                        self.stalled_ticks += 1;
                        if self.stalled_ticks > 2 {
                            return Err(Stop::Stalled);
                        }
                    }
                }
                _ = self.shutdown.cancelled() => return Err(Stop::Shutdown),
                _ = writer_gone.as_mut() => return Err(Stop::Closed),
                Ok(_alone) = self.in_flight.acquire_many(self.others), if self.reserved.is_some() => {
                    self.reserved = None;
                }
            }
        }
    }

    /// Takes what holds the place of a request of `len` bytes besides its
    /// `permit` of `max_in_flight`: its `max_in_flight_bytes` and its exact
    /// share of [`REQUEST_BUDGET`] (from the share reserved before reading).
    /// `None` if the writer gave up meanwhile.
    async fn take_permits(
        &mut self,
        permit: OwnedSemaphorePermit,
        len: usize,
        writer_gone: Pin<&mut impl Future<Output = ()>>,
    ) -> Option<Permits> {
        let want = (len.max(1) as u64).min(u64::from(self.budget)) as u32;
        let Ok(bytes_permit) = self.in_flight_bytes.clone().acquire_many_owned(want).await else {
            return None;
        };
        self.last_units = budget_units(len);
        let held = self.reserved.take();
        let max_in_flight = self.limits.max_in_flight;
        let Ok(shared) = top_up(
            held,
            self.last_units,
            self.in_flight,
            max_in_flight,
            writer_gone,
        )
        .await
        else {
            return None;
        };
        if self.tx.is_closed() {
            // The writer gave up while this request waited for its permits.
            return None;
        }
        Some((permit, bytes_permit, shared))
    }

    /// Decodes `frame` and hands the request, with its `permits`, to a task
    /// that handles it and sends the answer to the writer; a frame that is
    /// no request is answered `bad_request` (and logged). Returns `false`
    /// if the writer is gone.
    async fn start_request(&self, frame: Bytes, permits: Permits) -> bool {
        let permits = Some(permits);
        let decoded = match super::hot::decode_hot(&frame) {
            Some(r) => Ok(r),
            None => Request::decode(&frame),
        };
        let req = match decoded {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(
                    peer_uid = self.peer.uid,
                    peer_pid = self.peer.pid,
                    result = "bad_request",
                    "{}",
                    e.error.message.escape_debug()
                );
                let answer = (encode(&Response::err(e.id, e.error)), permits);
                return self.tx.send(answer).await.is_ok();
            }
        };
        drop(frame);
        let (state, peer, tx) = (self.state.clone(), self.peer.clone(), self.tx.clone());
        tokio::spawn(async move {
            let op = req.op.name();
            let resp = dispatch::handle(&state, &peer, req).await;
            let _ = tx
                .send((encode_bounded(resp, op, state.max_frame_len), permits))
                .await;
        });
        true
    }
}
