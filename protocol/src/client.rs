//! Async client of protocol version 1: one Unix-socket connection, many
//! requests in flight (pipelining), responses matched by `id`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), hsmd_protocol::ClientError> {
//! use hsmd_protocol::{Client, Random};
//! let client = Client::connect("/run/hsmd/hsmd.sock", "example/1").await?;
//! let r = client.call(None, &Random { len: 32, slot: None }).await?;
//! assert_eq!(r.bytes.len(), 32);
//! # Ok(()) }
//! ```

use crate::codec::{frame_codec, is_frame_too_large, DEFAULT_MAX_FRAME_LEN};
use crate::error::{ErrorBody, ErrorCode};
use crate::message::{ClientHello, HelloFrame, Response, ServerHello};
use crate::ops::Op;
use crate::PROTOCOL_VERSION;
use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite};

/// Errors of [`Client`].
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be reached.
    #[error("cannot connect to hsmd at {path}: {reason}")]
    Connect {
        /// Socket path.
        path: PathBuf,
        /// Why.
        reason: std::io::Error,
    },
    /// The server refused the connection or the handshake (e.g. `unauthorized`).
    #[error("hsmd refused the connection: {0}")]
    Refused(ErrorBody),
    /// The handshake did not complete.
    #[error("handshake with hsmd failed: {0}")]
    Handshake(String),
    /// The server answered the request with an error.
    #[error("{0}")]
    Server(ErrorBody),
    /// The connection is gone; in-flight requests fail with this.
    #[error("connection to hsmd closed: {0}")]
    Closed(String),
    /// The encoded request is longer than the server's `max_frame_len`; it
    /// was not sent and the connection stays usable.
    #[error("the request is {len} bytes encoded, more than hsmd's max_frame_len of {max} bytes")]
    TooLarge {
        /// Encoded length, bytes.
        len: usize,
        /// The server's limit, bytes.
        max: usize,
    },
    /// The request could not be encoded.
    #[error("cannot encode request: {0}")]
    Encode(#[from] serde_json::Error),
}

impl ClientError {
    /// The protocol error code, when the server sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Refused(e) | Self::Server(e) => Some(e.code),
            _ => None,
        }
    }
}

/// A response frame as the read loop hands it to its caller: checked to be
/// a response (an object with an optional `id` and a well-formed `error`,
/// exactly what [`Response`] accepts), the result left unparsed so that
/// [`Client::call`] decodes it straight into its type.
struct Answer {
    error: Option<ErrorBody>,
    frame: BytesMut,
}

/// What the read loop reads of each frame.
#[derive(Deserialize)]
struct Peek {
    id: Option<u64>,
    #[serde(default)]
    error: Option<ErrorBody>,
    // Checked to be JSON; left for the caller.
    #[serde(default, rename = "result")]
    _result: Option<serde::de::IgnoredAny>,
}

/// The result of a response, decoded as the operation's result type.
#[derive(Deserialize)]
struct TypedResult<T> {
    #[serde(default = "none")]
    result: Option<T>,
}

fn none<T>() -> Option<T> {
    None
}

impl Answer {
    /// The result as `T`, or the server's error, with the same meaning as
    /// [`Response::into_result`].
    fn into_result<T: DeserializeOwned>(self) -> Result<T, ErrorBody> {
        if let Some(e) = self.error {
            return Err(e);
        }
        match serde_json::from_slice::<TypedResult<T>>(&self.frame) {
            Ok(TypedResult { result: Some(r) }) => Ok(r),
            Ok(TypedResult { result: None }) => Err(ErrorBody::new(
                ErrorCode::Internal,
                "response has neither result nor error",
            )),
            Err(e) => Err(ErrorBody::new(
                ErrorCode::Internal,
                format!("result has an unexpected shape: {e}"),
            )),
        }
    }

    /// The whole response.
    fn into_response(self) -> Result<Response, ClientError> {
        serde_json::from_slice(&self.frame).map_err(|e| {
            ClientError::Closed(format!("hsmd sent a frame that is not a response: {e}"))
        })
    }
}

type Pending = HashMap<u64, oneshot::Sender<Answer>>;

struct Shared {
    pending: Mutex<Result<Pending, String>>,
}

impl Shared {
    fn fail_all(&self, reason: String) {
        let mut guard = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        // Dropping the senders wakes every waiter with "closed".
        *guard = Err(reason);
    }

    fn closed_reason(&self) -> String {
        match &*self.pending.lock().unwrap_or_else(|p| p.into_inner()) {
            Err(r) => r.clone(),
            Ok(_) => "connection closed".into(),
        }
    }
}

/// A connection to hsmd. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct Client {
    frames: mpsc::Sender<Bytes>,
    shared: Arc<Shared>,
    next_id: Arc<AtomicU64>,
    hello: Arc<ServerHello>,
}

impl Client {
    /// Connects to the socket at `path` and performs the hello exchange,
    /// announcing `client_name` (e.g. `"hsmctl/0.1.0"`).
    ///
    /// Errors: [`ClientError::Connect`] when the socket is unreachable,
    /// [`ClientError::Refused`] when hsmd answers the hello with an error frame
    /// (`unauthorized`, `unsupported_version`), [`ClientError::Handshake`] otherwise.
    pub async fn connect(path: impl AsRef<Path>, client_name: &str) -> Result<Self, ClientError> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path)
            .await
            .map_err(|reason| ClientError::Connect {
                path: path.to_owned(),
                reason,
            })?;
        Self::handshake(stream, client_name, DEFAULT_MAX_FRAME_LEN).await
    }

    /// Performs the hello exchange on an open stream; frames from the server
    /// may be at most `max_frame_len` bytes.
    pub async fn handshake(
        stream: UnixStream,
        client_name: &str,
        max_frame_len: usize,
    ) -> Result<Self, ClientError> {
        let (rd, wr) = stream.into_split();
        let mut reader = FramedRead::new(rd, frame_codec(max_frame_len));
        let mut writer = FramedWrite::new(wr, frame_codec(max_frame_len));
        let hello = HelloFrame {
            hello: ClientHello {
                versions: vec![PROTOCOL_VERSION],
                client: client_name.to_owned(),
            },
        };
        let sent = writer.send(Bytes::from(serde_json::to_vec(&hello)?)).await;
        let answer = reader.next().await;
        if let Err(e) = sent {
            // The server may have refused us (from SO_PEERCRED) before reading
            // the hello: its error frame is then already waiting.
            if let Some(Ok(frame)) = &answer {
                if let Ok(Response {
                    error: Some(body), ..
                }) = serde_json::from_slice(frame)
                {
                    return Err(ClientError::Refused(body));
                }
            }
            return Err(ClientError::Handshake(format!("cannot send hello: {e}")));
        }
        let frame = match answer {
            Some(Ok(f)) => f,
            Some(Err(e)) => return Err(ClientError::Handshake(format!("cannot read hello: {e}"))),
            None => {
                return Err(ClientError::Handshake(
                    "hsmd closed the connection before answering the hello".into(),
                ))
            }
        };
        let hello = decode_server_hello(&frame)?;
        // Accept frames as large as the server says it may send.
        reader
            .decoder_mut()
            .set_max_frame_length(hello.max_frame_len.max(max_frame_len));
        if hello.version != PROTOCOL_VERSION {
            return Err(ClientError::Handshake(format!(
                "hsmd chose protocol version {}, but this client offered only {PROTOCOL_VERSION}",
                hello.version
            )));
        }
        let shared = Arc::new(Shared {
            pending: Mutex::new(Ok(HashMap::new())),
        });
        let (tx, rx) = mpsc::channel::<Bytes>(256);
        tokio::spawn(write_loop(writer, rx, shared.clone()));
        tokio::spawn(read_loop(reader, shared.clone()));
        Ok(Self {
            frames: tx,
            shared,
            next_id: Arc::new(AtomicU64::new(1)),
            hello: Arc::new(hello),
        })
    }

    /// The server's hello (version, model, slots, admins, identity, ...).
    pub fn server_hello(&self) -> &ServerHello {
        &self.hello
    }

    /// The server's hello, shared (no copy): for callers that keep it past
    /// the client's borrow.
    pub fn shared_hello(&self) -> Arc<ServerHello> {
        self.hello.clone()
    }

    /// True once the connection is gone (the server closed it or an I/O
    /// error ended it): every further call fails with [`ClientError::Closed`],
    /// so a pool should connect anew.
    pub fn is_closed(&self) -> bool {
        self.frames.is_closed()
            || self
                .shared
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_err()
    }

    /// Sends `params` as operation `O::NAME`, acting for `as_user` when given
    /// (only a frontend may name another user), and waits for its result.
    ///
    /// Many calls may run at once on one client; they are pipelined.
    /// Errors: [`ClientError::Server`] with the server's error body, or
    /// [`ClientError::Closed`] when the connection drops first.
    pub async fn call<O: Op>(
        &self,
        as_user: Option<&str>,
        params: &O,
    ) -> Result<O::Output, ClientError> {
        let answer = self.send(O::NAME, as_user, params).await?;
        answer.into_result().map_err(ClientError::Server)
    }

    /// Sends any operation name with any serializable params and returns the
    /// raw response (for tools and tests exercising the server's checks).
    pub async fn call_raw<P: Serialize + ?Sized>(
        &self,
        op: &str,
        as_user: Option<&str>,
        params: &P,
    ) -> Result<Response, ClientError> {
        self.send(op, as_user, params).await?.into_response()
    }

    async fn send<P: Serialize + ?Sized>(
        &self,
        op: &str,
        as_user: Option<&str>,
        params: &P,
    ) -> Result<Answer, ClientError> {
        #[derive(Serialize)]
        struct Wire<'a, P: ?Sized> {
            id: u64,
            op: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            as_user: Option<&'a str>,
            params: &'a P,
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = serde_json::to_vec(&Wire {
            id,
            op,
            as_user,
            params,
        })?;
        // Refused here, before it is queued: sent, it would end the
        // connection (and every request in flight on it).
        if frame.len() > self.hello.max_frame_len {
            return Err(ClientError::TooLarge {
                len: frame.len(),
                max: self.hello.max_frame_len,
            });
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut guard = self
                .shared
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match &mut *guard {
                Ok(map) => {
                    map.insert(id, tx);
                }
                Err(reason) => return Err(ClientError::Closed(reason.clone())),
            }
        }
        if self.frames.send(Bytes::from(frame)).await.is_err() {
            return Err(ClientError::Closed(self.shared.closed_reason()));
        }
        rx.await
            .map_err(|_| ClientError::Closed(self.shared.closed_reason()))
    }
}

async fn write_loop(
    mut writer: FramedWrite<
        tokio::net::unix::OwnedWriteHalf,
        tokio_util::codec::LengthDelimitedCodec,
    >,
    mut rx: mpsc::Receiver<Bytes>,
    shared: Arc<Shared>,
) {
    while let Some(frame) = rx.recv().await {
        // Batch what is already queued into one flush.
        if let Err(e) = writer.feed(frame).await {
            shared.fail_all(format!("write failed: {e}"));
            return;
        }
        while let Ok(more) = rx.try_recv() {
            if let Err(e) = writer.feed(more).await {
                shared.fail_all(format!("write failed: {e}"));
                return;
            }
        }
        if let Err(e) = SinkExt::<Bytes>::flush(&mut writer).await {
            shared.fail_all(format!("write failed: {e}"));
            return;
        }
    }
}

/// The server's answer to the hello: its hello, or the error it refused us with.
fn decode_server_hello(frame: &[u8]) -> Result<ServerHello, ClientError> {
    match serde_json::from_slice::<HelloFrame<ServerHello>>(frame) {
        Ok(h) => Ok(h.hello),
        Err(hello_err) => match serde_json::from_slice::<Response>(frame) {
            Ok(Response { error: Some(e), .. }) => Err(ClientError::Refused(e)),
            _ => Err(ClientError::Handshake(format!(
                "unexpected answer to hello: {hello_err}"
            ))),
        },
    }
}

/// What the read loop makes of one frame: the waiter's id and its answer,
/// or why the connection ends.
fn read_answer(frame: BytesMut) -> Result<(u64, Answer), String> {
    // A frame is UTF-8 JSON (docs/protocol.md "Transport and framing").
    // serde_json checks UTF-8 only in the strings it reads, not in those
    // `Peek` skips (the result): a frame with bytes that are not UTF-8 in
    // its result was taken here and refused later as a whole `Response`
    // (found by fuzz/ target client_answer).
    if let Err(e) = std::str::from_utf8(&frame) {
        return Err(format!(
            "hsmd sent a frame that is not a response: it is not UTF-8 ({e})"
        ));
    }
    let peek: Peek = match serde_json::from_slice(&frame) {
        Ok(r) => r,
        Err(e) => return Err(format!("hsmd sent a frame that is not a response: {e}")),
    };
    // serde also reads a struct from an array, as its fields in order:
    // `[7]` would be id 7 here but the result 7 to `call`.
    if frame.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err("hsmd sent a frame that is not a response: a response is a JSON object".into());
    }
    match peek.id {
        Some(id) => Ok((
            id,
            Answer {
                error: peek.error,
                frame,
            },
        )),
        None => Err(match peek.error {
            Some(e) => format!("hsmd ended the connection: {e}"),
            None => "hsmd sent a response without id".to_owned(),
        }),
    }
}

async fn read_loop(
    mut reader: FramedRead<
        tokio::net::unix::OwnedReadHalf,
        tokio_util::codec::LengthDelimitedCodec,
    >,
    shared: Arc<Shared>,
) {
    let reason = loop {
        let frame = match reader.next().await {
            Some(Ok(f)) => f,
            Some(Err(e)) if is_frame_too_large(&e) => {
                break format!("hsmd sent a frame larger than the client's limit: {e}")
            }
            Some(Err(e)) => break format!("read failed: {e}"),
            None => break "hsmd closed the connection".to_owned(),
        };
        let (id, answer) = match read_answer(frame) {
            Ok(a) => a,
            Err(reason) => break reason,
        };
        let waiter = match &mut *shared.pending.lock().unwrap_or_else(|p| p.into_inner()) {
            Ok(map) => map.remove(&id),
            Err(_) => None,
        };
        if let Some(w) = waiter {
            let _ = w.send(answer);
        }
    };
    shared.fail_all(reason);
}

/// Entry points for the fuzz targets (`fuzz/` at the repository root), not
/// an API: the client's decoding of the frames hsmd sends, exactly as
/// [`Client::handshake`], the read loop and [`Client::call`] /
/// [`Client::call_raw`] run it.
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    /// The answer to the hello: the server's hello or its refusal.
    pub fn server_hello(frame: &[u8]) -> Result<ServerHello, ClientError> {
        decode_server_hello(frame)
    }

    /// One response frame as a call sees it: the id it is matched by, then
    /// the typed result (as [`Client::call`] decodes it) and the whole
    /// response (as [`Client::call_raw`] does). `Err` is why the read loop
    /// would end the connection.
    #[allow(clippy::type_complexity)]
    pub fn answer<T: DeserializeOwned>(
        frame: &[u8],
    ) -> Result<(u64, Result<T, ErrorBody>, Result<Response, ClientError>), String> {
        let (id, answer) = read_answer(BytesMut::from(frame))?;
        let whole = read_answer(BytesMut::from(frame))?.1.into_response();
        Ok((id, answer.into_result(), whole))
    }
}
