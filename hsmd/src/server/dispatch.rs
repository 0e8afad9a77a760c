//! One request to one response: authorization (acting identity, admin-only
//! operations), routing to the slot worker named by the uid or `slot`, and
//! one log line per key operation.

use super::peer::{Peer, Policy};
use super::reply::{Encode, Reply};
use crate::pkcs11::engine::{Route, SlotOperation};
use crate::pkcs11::slot::SlotHandle;
use hsmd_protocol::message::Operation;
use hsmd_protocol::{
    ErrorBody, ErrorCode, LibraryInfo, ListKeys, ListKeysResult, Request, Response, Status,
    StatusResult,
};

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
