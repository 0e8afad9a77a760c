//! One request to one response: authorization (acting identity, admin-only
//! operations), routing to the slot worker named by the uid or `slot`, and
//! one log line per key operation.

use super::peer::{Peer, Policy};
use crate::pkcs11::engine::{Route, SlotOperation};
use crate::pkcs11::slot::SlotHandle;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hsmd_protocol::message::Operation;
use hsmd_protocol::{
    DecryptResult, EncryptResult, ErrorBody, ErrorCode, ExportResult, KeyInfo, KeyPairResult,
    KeyRef, LibraryInfo, ListKeys, ListKeysResult, RandomResult, Request, Response, SignResult,
    Status, StatusResult, VerifyResult,
};
use serde::Serialize;
use serde_json::Value;

/// Everything a request handler needs, shared by all connections.
pub struct State {
    /// Configured `hsm_model` name.
    pub model: String,
    /// The module's `C_GetInfo`.
    pub library: LibraryInfo,
    /// Slot workers in configuration order.
    pub slots: Vec<SlotHandle>,
    /// Access rules.
    pub policy: Policy,
    /// Largest frame body.
    pub max_frame_len: usize,
}

impl State {
    /// The worker of slot `id`, or `not_found` listing the configured slots.
    pub fn slot(&self, id: u64) -> Result<&SlotHandle, ErrorBody> {
        self.slots.iter().find(|s| s.id() == id).ok_or_else(|| {
            let ids: Vec<String> = self.slots.iter().map(|s| s.id().to_string()).collect();
            ErrorBody::new(
                ErrorCode::NotFound,
                format!(
                    "slot {id} is not configured in hsmd; the configured slots are {}",
                    ids.join(", ")
                ),
            )
        })
    }

    /// Configured slot IDs.
    pub fn slot_ids(&self) -> Vec<u64> {
        self.slots.iter().map(|s| s.id()).collect()
    }
}

fn to_value<T: Serialize>(v: T) -> Result<Value, ErrorBody> {
    serde_json::to_value(v).map_err(|e| {
        ErrorBody::new(
            ErrorCode::Internal,
            format!("cannot encode the result: {e}"),
        )
    })
}

/// What a successful operation produced.
enum Reply {
    /// A result object, sent as `{"id": .., "result": ..}`.
    Value(Value),
    /// A complete response frame body (the hot operations).
    Frame(Vec<u8>),
}

/// A response ready for the wire.
pub enum Answer {
    /// A response to serialize.
    Response(Response),
    /// The body of a successful response frame, already serialized.
    Frame {
        /// The request's id.
        id: u64,
        /// `{"id":<id>,"result":{...}}`.
        body: Vec<u8>,
    },
}

/// A result of a hot operation, written as JSON straight into the response
/// frame: base64 encoded in place, nothing escaped (base64 needs none), the
/// buffer sized once. Byte for byte what serializing
/// `Response::ok(id, to_value(result))` gives (a `Value` object sorts its
/// keys, and these are written in that order); a test checks it.
trait HotResult {
    /// The bytes that go out as base64, for the buffer's size.
    fn payload_len(&self) -> usize;
    /// Writes the result object.
    fn write_json(&self, out: &mut Vec<u8>);
}

/// Appends `"<standard padded base64 of bytes>"`.
fn b64_field(out: &mut Vec<u8>, name: &str, bytes: Option<&[u8]>) {
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    let Some(bytes) = bytes else {
        out.extend_from_slice(b"null");
        return;
    };
    out.push(b'"');
    let start = out.len();
    out.resize(start + bytes.len().div_ceil(3) * 4, 0);
    // The slice is exactly the padded length: encoding cannot run short.
    let written = STANDARD.encode_slice(bytes, &mut out[start..]).unwrap_or(0);
    out.truncate(start + written);
    out.push(b'"');
}

impl HotResult for EncryptResult {
    fn payload_len(&self) -> usize {
        self.ciphertext.len() + 32
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        b64_field(out, "ciphertext", Some(&self.ciphertext));
        out.push(b',');
        b64_field(out, "iv", self.iv.as_deref());
        out.push(b',');
        b64_field(out, "tag", self.tag.as_deref());
        out.push(b'}');
    }
}

impl HotResult for DecryptResult {
    fn payload_len(&self) -> usize {
        self.plaintext.len()
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        b64_field(out, "plaintext", Some(self.plaintext.expose()));
        out.push(b'}');
    }
}

impl HotResult for SignResult {
    fn payload_len(&self) -> usize {
        self.signature.len()
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        b64_field(out, "signature", Some(&self.signature));
        out.push(b'}');
    }
}

impl HotResult for VerifyResult {
    fn payload_len(&self) -> usize {
        0
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(if self.valid {
            b"{\"valid\":true}"
        } else {
            b"{\"valid\":false}"
        });
    }
}

impl HotResult for RandomResult {
    fn payload_len(&self) -> usize {
        self.bytes.len()
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        b64_field(out, "bytes", Some(self.bytes.expose()));
        out.push(b'}');
    }
}

/// `{"id":<id>,"result":<result>}`.
fn result_frame<T: HotResult>(id: u64, result: &T) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::with_capacity(96 + result.payload_len().div_ceil(3) * 4);
    let _ = write!(out, "{{\"id\":{id},\"result\":");
    result.write_json(&mut out);
    out.push(b'}');
    out
}

/// How a result goes out: as a JSON value, or (the hot operations) written
/// straight into the response frame without a `Value` in between.
trait Encode {
    fn encode(self, request_id: u64) -> Result<Reply, ErrorBody>;
}

macro_rules! encode_as_value {
    ($($t:ty),* $(,)?) => {$(
        impl Encode for $t {
            fn encode(self, _: u64) -> Result<Reply, ErrorBody> {
                to_value(self).map(Reply::Value)
            }
        }
    )*};
}

macro_rules! encode_as_frame {
    ($($t:ty),* $(,)?) => {$(
        impl Encode for $t {
            fn encode(self, request_id: u64) -> Result<Reply, ErrorBody> {
                Ok(Reply::Frame(result_frame(request_id, &self)))
            }
        }
    )*};
}

encode_as_value!(
    StatusResult,
    ListKeysResult,
    KeyInfo,
    KeyPairResult,
    KeyRef,
    ExportResult
);
encode_as_frame!(
    EncryptResult,
    DecryptResult,
    SignResult,
    VerifyResult,
    RandomResult
);

/// One operation served: authorization, routing, the work, the reply.
trait Serve {
    async fn serve(
        self,
        state: &State,
        identity: &str,
        request_id: u64,
    ) -> Result<Reply, ErrorBody>;
}

/// An operation of one slot: admin-only ones are refused to others, then
/// it goes to the slot its parameters name ([`Route`]).
impl<O: SlotOperation> Serve for O
where
    O::Output: Encode,
{
    async fn serve(
        self,
        state: &State,
        identity: &str,
        request_id: u64,
    ) -> Result<Reply, ErrorBody> {
        if let Some(what) = O::ADMIN_ONLY {
            state.policy.require_admin(identity, what)?;
        }
        let (slot, uid) = match self.route()? {
            Route::Key(uid) => (state.slot(uid.slot)?, Some(uid)),
            Route::Slot(id) => (state.slot(id)?, None),
            Route::SlotOrFirst(Some(id)) => (state.slot(id)?, None),
            Route::SlotOrFirst(None) => (
                state
                    .slots
                    .first()
                    .ok_or_else(|| ErrorBody::new(ErrorCode::Internal, "no slot configured"))?,
                None,
            ),
        };
        slot.perform(self, uid).await?.encode(request_id)
    }
}

/// `status`: every slot's, with the model and the library.
impl Serve for Status {
    async fn serve(self, state: &State, _: &str, request_id: u64) -> Result<Reply, ErrorBody> {
        let mut slots = Vec::with_capacity(state.slots.len());
        for s in &state.slots {
            slots.push(s.status().await?);
        }
        StatusResult {
            model: state.model.clone(),
            library: state.library.clone(),
            slots,
        }
        .encode(request_id)
    }
}

/// `list_keys`: the keys of one slot, or of every slot in order.
impl Serve for ListKeys {
    async fn serve(self, state: &State, _: &str, request_id: u64) -> Result<Reply, ErrorBody> {
        let targets: Vec<&SlotHandle> = match self.slot {
            Some(id) => vec![state.slot(id)?],
            None => state.slots.iter().collect(),
        };
        let mut keys = Vec::new();
        for s in targets {
            keys.extend(s.list_keys(self.kind).await?);
        }
        ListKeysResult { keys }.encode(request_id)
    }
}

/// `match op { Operation::X(p) => p.serve(..).await, ... }` for every
/// operation of the protocol's list.
macro_rules! serve_every_operation {
    ($($op:ident),* $(,)?) => {
        async fn execute(
            state: &State,
            identity: &str,
            request_id: u64,
            op: Operation,
        ) -> Result<Reply, ErrorBody> {
            match op {
                $(Operation::$op(p) => p.serve(state, identity, request_id).await,)*
            }
        }
    };
}

hsmd_protocol::for_each_operation!(serve_every_operation);

/// Handles one decoded request from `peer`.
pub async fn handle(state: &State, peer: &Peer, req: Request) -> Answer {
    let op_name = req.op.name();
    let key_uid = req.op.key_uid();
    let identity = match state.policy.acting(peer, req.as_user.as_deref()) {
        Ok(i) => i,
        Err(e) => {
            // The claim was refused: the record names the peer, not the claim.
            audit(peer, &peer.name, op_name, key_uid.as_deref(), Err(&e));
            return Answer::Response(Response::err(Some(req.id), e));
        }
    };
    let result = execute(state, &identity, req.id, req.op).await;
    audit(
        peer,
        &identity,
        op_name,
        key_uid.as_deref(),
        result.as_ref().map(|_| ()),
    );
    match result {
        Ok(Reply::Value(v)) => Answer::Response(Response::ok(req.id, v)),
        Ok(Reply::Frame(body)) => Answer::Frame { id: req.id, body },
        Err(e) => Answer::Response(Response::err(Some(req.id), e)),
    }
}

/// One record per request: who, what, which key, the outcome. Never params.
/// Logged with the target `audit` (not this module's path), so `HSMD_LOG`
/// names the audit records as `audit=<level>` whatever file writes them.
/// Client-chosen text (uid, acting user, messages quoting them) is escaped
/// and cut, so a request cannot forge log lines.
fn audit(peer: &Peer, acting: &str, op: &str, uid: Option<&str>, result: Result<(), &ErrorBody>) {
    let clip = |s: &str| {
        s.chars()
            .take(160)
            .collect::<String>()
            .escape_debug()
            .to_string()
    };
    let uid = clip(uid.unwrap_or("-"));
    let acting = &clip(acting);
    let slot = hsmd_protocol::KeyUid::parse(&uid).ok().map(|u| u.slot);
    match result {
        Ok(()) => tracing::info!(
            target: "audit",
            slot,
            peer_uid = peer.uid,
            peer_pid = peer.pid,
            acting_user = acting.as_str(),
            op,
            key_uid = uid.as_str(),
            result = "ok",
            "{op} by {acting} (uid {}) on {uid}: ok",
            peer.uid
        ),
        Err(e) => tracing::warn!(
            target: "audit",
            slot,
            peer_uid = peer.uid,
            peer_pid = peer.pid,
            acting_user = acting.as_str(),
            op,
            key_uid = uid.as_str(),
            result = e.code.as_str(),
            "{op} by {acting} (uid {}) on {uid}: {}: {}",
            peer.uid,
            e.code,
            clip(&e.message)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsmd_protocol::b64::SecretBytes;

    fn general<T: Serialize>(id: u64, r: &T) -> Vec<u8> {
        let v = serde_json::to_value(r).unwrap();
        serde_json::to_vec(&Response::ok(id, v)).unwrap()
    }

    /// The hot encoding is byte for byte what the general one sends.
    #[test]
    fn hot_frames_are_the_general_bytes() {
        let bytes = |n: usize| (0..n).map(|i| i as u8).collect::<Vec<u8>>();
        let enc = EncryptResult {
            ciphertext: bytes(33),
            iv: Some(bytes(12)),
            tag: Some(bytes(16)),
        };
        let enc_cbc = EncryptResult {
            ciphertext: bytes(32),
            iv: Some(bytes(16)),
            tag: None,
        };
        let enc_rsa = EncryptResult {
            ciphertext: bytes(256),
            iv: None,
            tag: None,
        };
        assert_eq!(result_frame(7, &enc), general(7, &enc));
        assert_eq!(result_frame(0, &enc_cbc), general(0, &enc_cbc));
        assert_eq!(
            result_frame(u64::MAX, &enc_rsa),
            general(u64::MAX, &enc_rsa)
        );
        let dec = DecryptResult {
            plaintext: SecretBytes::new(bytes(5)),
        };
        assert_eq!(result_frame(9, &dec), general(9, &dec));
        let sig = SignResult {
            signature: bytes(71),
        };
        assert_eq!(result_frame(10, &sig), general(10, &sig));
        for valid in [true, false] {
            let v = VerifyResult { valid };
            assert_eq!(result_frame(11, &v), general(11, &v));
        }
        for n in 0..70 {
            let r = RandomResult {
                bytes: SecretBytes::new(bytes(n)),
            };
            assert_eq!(result_frame(n as u64, &r), general(n as u64, &r));
        }
    }
}
