//! The handshake of a connection (docs/protocol.md "Handshake"): the
//! client's hello read and checked, hsmd's hello sent back.

use super::dispatch::State;
use super::peer::Peer;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hsmd_protocol::codec::is_frame_too_large;
use hsmd_protocol::message::HelloFrame;
use hsmd_protocol::{ClientHello, ErrorBody, ErrorCode, ServerHello, PROTOCOL_VERSION};
use std::time::Duration;
use tokio::net::unix::OwnedWriteHalf;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

/// Why [`read_hello`] returned no hello.
pub(super) enum NoHello {
    /// The error frame to send (and log) before closing.
    Refused(ErrorBody),
    /// Close without an answer: the client left, a read error, or hsmd is
    /// shutting down.
    Gone,
}

/// Reads and checks the client's hello, the first frame, which must arrive
/// within `timeout` (docs/protocol.md "Handshake").
///
/// Errors: [`NoHello`]; a refusal for a missing or malformed hello, a frame
/// longer than `max_frame_len`, or no version in common.
pub(super) async fn read_hello(
    reader: &mut FramedRead<tokio::net::unix::OwnedReadHalf, LengthDelimitedCodec>,
    state: &State,
    timeout: Duration,
    shutdown: &CancellationToken,
) -> Result<ClientHello, NoHello> {
    let first = tokio::select! {
        f = tokio::time::timeout(timeout, reader.next()) => f,
        _ = shutdown.cancelled() => return Err(NoHello::Gone),
    };
    let frame = match first {
        Err(_) => {
            let msg = format!("no hello within {} s; send {{\"hello\": {{\"versions\": [1], \"client\": \"name/version\"}}}} first", timeout.as_secs());
            return Err(NoHello::Refused(ErrorBody::bad_request(msg)));
        }
        Ok(None) => return Err(NoHello::Gone),
        Ok(Some(Err(e))) if is_frame_too_large(&e) => {
            return Err(NoHello::Refused(too_large(state.max_frame_len)));
        }
        Ok(Some(Err(_))) => return Err(NoHello::Gone),
        Ok(Some(Ok(f))) => f,
    };
    accept_hello(&frame).map_err(NoHello::Refused)
}

/// Decodes the hello `frame` and checks that it offers [`PROTOCOL_VERSION`].
///
/// Errors: the `bad_request` of [`decode_hello`], or `unsupported_version`.
fn accept_hello(frame: &[u8]) -> Result<ClientHello, ErrorBody> {
    let hello = decode_hello(frame)?;
    if !hello.versions.contains(&PROTOCOL_VERSION) {
        return Err(ErrorBody::new(
            ErrorCode::UnsupportedVersion,
            format!(
                "hsmd speaks protocol version {PROTOCOL_VERSION}; the client offered {:?}",
                hello.versions
            ),
        ));
    }
    Ok(hello)
}

/// Sends hsmd's hello to `peer` (docs/protocol.md "Handshake"), flushed.
/// Returns whether it was sent; if not, the connection is to be closed.
pub(super) async fn send_server_hello(
    writer: &mut FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>,
    state: &State,
    peer: &Peer,
) -> bool {
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
        return false;
    };
    writer.send(Bytes::from(hello_bytes)).await.is_ok()
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

/// The `frame_too_large` refusal of a frame longer than `max` bytes
/// (`max_frame_len`), as the hello or a request; sent before closing.
pub(super) fn too_large(max: usize) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::FrameTooLarge,
        format!("frame longer than max_frame_len ({max} bytes); the connection is closed"),
    )
}
