//! One client connection: peer check, hello, then pipelined requests with a
//! bound on requests in flight (back-pressure: past it, the socket is not
//! read), and a graceful end on shutdown (stop reading, answer what is in
//! flight, close).

use super::dispatch::{self, State};
use super::peer::Peer;
use bytes::Bytes;
use futures::{FutureExt, SinkExt, StreamExt};
use hsmd_protocol::codec::{frame_codec, is_frame_too_large};
use hsmd_protocol::message::HelloFrame;
use hsmd_protocol::{
    ClientHello, ErrorBody, ErrorCode, Request, Response, ServerHello, PROTOCOL_VERSION,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

/// Per-connection limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Requests in flight.
    pub max_in_flight: usize,
    /// Time for the hello.
    pub handshake_timeout: Duration,
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

/// Encodes a response that must fit in `max` bytes: a larger result is
/// replaced by a `frame_too_large` error with the request's id, so the
/// client gets an answer and the connection stays usable.
fn encode_bounded(resp: &Response, op: &str, max: usize) -> Bytes {
    let bytes = encode(resp);
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
        resp.id,
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
    let frame = match first {
        Err(_) => {
            let msg = format!("no hello within {} s; send {{\"hello\": {{\"versions\": [1], \"client\": \"name/version\"}}}} first", limits.handshake_timeout.as_secs());
            return send_and_close(writer, None, ErrorBody::bad_request(msg)).await;
        }
        Ok(None) => return,
        Ok(Some(Err(e))) if is_frame_too_large(&e) => {
            return send_and_close(writer, None, too_large(state.max_frame_len)).await;
        }
        Ok(Some(Err(_))) => return,
        Ok(Some(Ok(f))) => f,
    };
    let hello = match serde_json::from_slice::<HelloFrame<ClientHello>>(&frame) {
        Ok(h) => h.hello,
        Err(e) => {
            let msg = format!("the first frame must be {{\"hello\": {{\"versions\": [1], \"client\": ...}}}}: {e}");
            return send_and_close(writer, None, ErrorBody::bad_request(msg)).await;
        }
    };
    if !hello.versions.contains(&PROTOCOL_VERSION) {
        let e = ErrorBody::new(
            ErrorCode::UnsupportedVersion,
            format!(
                "hsmd speaks protocol version {PROTOCOL_VERSION}; the client offered {:?}",
                hello.versions
            ),
        );
        return send_and_close(writer, None, e).await;
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

fn too_large(max: usize) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::FrameTooLarge,
        format!("frame longer than max_frame_len ({max} bytes); the connection is closed"),
    )
}

async fn requests(
    mut reader: FramedRead<tokio::net::unix::OwnedReadHalf, LengthDelimitedCodec>,
    mut writer: FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>,
    state: Arc<State>,
    peer: Arc<Peer>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight));
    let (tx, mut rx) = mpsc::channel::<Bytes>(limits.max_in_flight + 1);
    let write_task = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if writer.feed(frame).await.is_err() {
                return;
            }
            while let Ok(more) = rx.try_recv() {
                if writer.feed(more).await.is_err() {
                    return;
                }
            }
            if SinkExt::<Bytes>::flush(&mut writer).await.is_err() {
                return;
            }
        }
        let _ = SinkExt::<Bytes>::close(&mut writer).await;
    });
    loop {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        // On shutdown, take only the requests already received (buffered in
        // the socket), then stop reading: every request read is answered.
        let next = if shutdown.is_cancelled() {
            match reader.next().now_or_never() {
                Some(n) => n,
                None => break,
            }
        } else {
            tokio::select! {
                n = reader.next() => n,
                _ = shutdown.cancelled() => continue,
            }
        };
        let frame = match next {
            None => break,
            Some(Err(e)) if is_frame_too_large(&e) => {
                let _ = tx
                    .send(encode(&Response::err(None, too_large(state.max_frame_len))))
                    .await;
                break;
            }
            Some(Err(_)) => break,
            Some(Ok(f)) => f,
        };
        let req = match Request::decode(&frame) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(
                    peer_uid = peer.uid,
                    peer_pid = peer.pid,
                    result = "bad_request",
                    "{}",
                    e.error.message
                );
                if tx
                    .send(encode(&Response::err(e.id, e.error)))
                    .await
                    .is_err()
                {
                    break;
                }
                continue;
            }
        };
        let (state, peer, tx) = (state.clone(), peer.clone(), tx.clone());
        tokio::spawn(async move {
            let op = req.op.name();
            let resp = dispatch::handle(&state, &peer, req).await;
            let _ = tx
                .send(encode_bounded(&resp, op, state.max_frame_len))
                .await;
            drop(permit);
        });
    }
    // Answer everything in flight before closing.
    let _ = in_flight.acquire_many(limits.max_in_flight as u32).await;
    drop(tx);
    let _ = write_task.await;
}
