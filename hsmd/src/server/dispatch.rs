//! One request to one response: authorization (acting identity, admin-only
//! operations), routing to the slot worker named by the uid or `slot`, and
//! one log line per key operation.

use super::peer::{Peer, Policy};
use crate::pkcs11::slot::SlotHandle;
use crate::pkcs11::uid::KeyUid;
use crate::pkcs11::{cipher, export, generate, keys, signature, status};
use hsmd_protocol::message::Operation;
use hsmd_protocol::{
    ErrorBody, ErrorCode, LibraryInfo, ListKeysResult, RandomResult, Request, Response,
    StatusResult, MAX_RANDOM_LEN,
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
        self.slots.iter().find(|s| s.ctx.id == id).ok_or_else(|| {
            let ids: Vec<String> = self.slots.iter().map(|s| s.ctx.id.to_string()).collect();
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
        self.slots.iter().map(|s| s.ctx.id).collect()
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

/// Runs `f` on the slot's worker with a session, mapping errors to bodies.
async fn on_slot<T: Serialize + Send + 'static>(
    slot: &SlotHandle,
    f: impl FnMut(
            &cryptoki::session::Session,
            &crate::pkcs11::slot::SlotContext,
        ) -> Result<T, crate::pkcs11::error::OpError>
        + Send
        + 'static,
) -> Result<Value, ErrorBody> {
    let id = slot.ctx.id;
    let result = slot
        .run(move |w| w.with_session(f).map_err(|e| e.into_body(id)))
        .await??;
    to_value(result)
}

async fn execute(
    state: &State,
    policy: &Policy,
    identity: &str,
    op: Operation,
) -> Result<Value, ErrorBody> {
    match op {
        Operation::Status(_) => {
            let mut slots = Vec::with_capacity(state.slots.len());
            for s in &state.slots {
                slots.push(s.run(status::slot_status).await?);
            }
            to_value(StatusResult {
                model: state.model.clone(),
                library: state.library.clone(),
                slots,
            })
        }
        Operation::ListKeys(p) => {
            let targets: Vec<&SlotHandle> = match p.slot {
                Some(id) => vec![state.slot(id)?],
                None => state.slots.iter().collect(),
            };
            let mut all = Vec::new();
            for s in targets {
                let id = s.ctx.id;
                let found = s
                    .run(move |w| {
                        w.with_session(|sess, _| keys::list(sess, id))
                            .map_err(|e| e.into_body(id))
                    })
                    .await??;
                all.extend(
                    found
                        .into_iter()
                        .filter(|k| p.kind.is_none_or(|want| k.kind == want)),
                );
            }
            to_value(ListKeysResult { keys: all })
        }
        Operation::GetKey(p) => {
            let uid = KeyUid::parse(&p.0.uid)?;
            on_slot(state.slot(uid.slot)?, move |s, ctx| {
                let obj = keys::resolve(s, &uid, keys::Want::Any)?;
                keys::key_info(s, ctx.id, &obj)?.ok_or_else(|| {
                    ErrorBody::new(
                        ErrorCode::Unsupported,
                        format!(
                            "key {} is of a type hsmd does not serve",
                            KeyUid::format(uid.slot, &uid.label)
                        ),
                    )
                    .into()
                })
            })
            .await
        }
        Operation::GenerateKey(p) => {
            policy.require_admin(identity, "create keys")?;
            on_slot(state.slot(p.slot)?, move |s, ctx| {
                let _guard = ctx.create_lock.lock().unwrap_or_else(|e| e.into_inner());
                ctx.keys.clear();
                generate::generate_key(s, &ctx.mechanisms, &p)
            })
            .await
        }
        Operation::GenerateKeyPair(p) => {
            policy.require_admin(identity, "create keys")?;
            on_slot(state.slot(p.slot)?, move |s, ctx| {
                let _guard = ctx.create_lock.lock().unwrap_or_else(|e| e.into_inner());
                ctx.keys.clear();
                generate::generate_key_pair(s, &ctx.mechanisms, &p)
            })
            .await
        }
        Operation::Destroy(p) => {
            policy.require_admin(identity, "destroy keys")?;
            let uid = KeyUid::parse(&p.0.uid)?;
            on_slot(state.slot(uid.slot)?, move |s, ctx| {
                let _guard = ctx.create_lock.lock().unwrap_or_else(|e| e.into_inner());
                let destroyed = generate::destroy(s, &uid);
                ctx.keys.clear();
                destroyed
            })
            .await
        }
        Operation::Export(p) => {
            let uid = KeyUid::parse(&p.0.uid)?;
            on_slot(state.slot(uid.slot)?, move |s, _| export::export(s, &uid)).await
        }
        Operation::Encrypt(p) => {
            let uid = KeyUid::parse(&p.uid)?;
            on_slot(state.slot(uid.slot)?, move |s, ctx| {
                ctx.keys
                    .retry_stale(|| cipher::encrypt(s, &ctx.mechanisms, &ctx.keys, &uid, &p))
            })
            .await
        }
        Operation::Decrypt(p) => {
            let uid = KeyUid::parse(&p.uid)?;
            on_slot(state.slot(uid.slot)?, move |s, ctx| {
                ctx.keys
                    .retry_stale(|| cipher::decrypt(s, &ctx.mechanisms, &ctx.keys, &uid, &p))
            })
            .await
        }
        Operation::Sign(p) => {
            let uid = KeyUid::parse(&p.uid)?;
            on_slot(state.slot(uid.slot)?, move |s, ctx| {
                ctx.keys
                    .retry_stale(|| signature::sign(s, &ctx.mechanisms, &ctx.keys, &uid, &p))
            })
            .await
        }
        Operation::Verify(p) => {
            let uid = KeyUid::parse(&p.uid)?;
            on_slot(state.slot(uid.slot)?, move |s, ctx| {
                ctx.keys
                    .retry_stale(|| signature::verify(s, &ctx.mechanisms, &ctx.keys, &uid, &p))
            })
            .await
        }
        Operation::Random(p) => {
            if p.len == 0 || p.len > MAX_RANDOM_LEN {
                return Err(ErrorBody::bad_request(format!(
                    "len: random takes 1 to {MAX_RANDOM_LEN} bytes, got {}",
                    p.len
                )));
            }
            let slot = match p.slot {
                Some(id) => state.slot(id)?,
                None => state
                    .slots
                    .first()
                    .ok_or_else(|| ErrorBody::new(ErrorCode::Internal, "no slot configured"))?,
            };
            let len = p.len;
            on_slot(slot, move |s, _| {
                Ok(RandomResult {
                    bytes: s.generate_random_vec(len)?.into(),
                })
            })
            .await
        }
    }
}

/// Handles one decoded request from `peer`.
pub async fn handle(state: &State, peer: &Peer, req: Request) -> Response {
    let op_name = req.op.name();
    let key_uid = req.op.key_uid();
    let identity = match state.policy.acting(peer, req.as_user.as_deref()) {
        Ok(i) => i,
        Err(e) => {
            // The claim was refused: the record names the peer, not the claim.
            audit(peer, &peer.name, op_name, key_uid.as_deref(), Err(&e));
            return Response::err(Some(req.id), e);
        }
    };
    let result = execute(state, &state.policy, &identity, req.op).await;
    audit(
        peer,
        &identity,
        op_name,
        key_uid.as_deref(),
        result.as_ref().map(|_| ()),
    );
    match result {
        Ok(v) => Response::ok(req.id, v),
        Err(e) => Response::err(Some(req.id), e),
    }
}

/// One record per request: who, what, which key, the outcome. Never params.
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
    let slot = crate::pkcs11::uid::KeyUid::parse(&uid).ok().map(|u| u.slot);
    match result {
        Ok(()) => tracing::info!(
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
