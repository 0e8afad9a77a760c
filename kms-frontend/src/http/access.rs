//! The reference server's access-rights endpoints (not KMIP), with its
//! bodies: `POST /access/grant` and `/access/revoke` take
//! `{"unique_identifier", "user_id", "operation_types": [...]}`;
//! `GET /access/list/<uid>`, `/access/owned`, `/access/obtained` answer
//! JSON arrays. On an HSM key (`hsm::…`) only HSM admins grant, revoke and
//! list; on a KMS key (any other uid) only its owner, the user who created
//! or imported it (HSM admins have no rights on KMS keys they do not own).

use super::{json, read_body, AppState};
use crate::access::policy;
use crate::auth::User;
use crate::error::{echo, KmsError};
use crate::kmip::attributes;
use crate::kmip::stored;
use crate::store::StoredObject;
use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::Json;
use hsmd_protocol::KeyUid;
use hsmd_protocol::{GetKey, KeyRef, ListKeys};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// The body of grant and revoke.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessBody {
    unique_identifier: String,
    user_id: String,
    operation_types: Vec<String>,
}

async fn access_body(state: &AppState, raw: Body) -> Result<AccessBody, KmsError> {
    serde_json::from_value(json(&read_body(raw, state.max_body_bytes).await?)?).map_err(|e| {
        KmsError::unprocessable(format!(
            "access body: {e}; expected {{\"unique_identifier\": \"hsm::<slot>::<label>\", \"user_id\": \"...\", \"operation_types\": [\"encrypt\", ...]}}"
        ))
    })
}

/// The "not owned" refusal, in the reference's words (401).
fn not_owner(uid: &str, user: &str, why: &str) -> KmsError {
    KmsError::admin_only(format!(
        "Access denied: Object with uid `{}` is not owned by owner `{}`: {why}",
        echo(uid),
        echo(user)
    ))
}

/// The KMS key `uid` when `user` owns it.
///
/// Errors: 422 "Item not found" when there is none or `user` holds no
/// grant on it (the same answer, so the existence of another user's key
/// does not leak), 401 when another user owns it and shared it with
/// `user`, 500 on a database failure.
async fn owned_kms_key(state: &AppState, user: &str, uid: &str) -> Result<StoredObject, KmsError> {
    let not_found = || {
        KmsError::unprocessable(format!(
            "Item not found: {}: no such KMS key, or it is not shared with {} (HSM keys are named hsm::<slot>::<label>)",
            echo(uid),
            echo(user)
        ))
    };
    let obj = state.vault.store().get(uid).await?.ok_or_else(not_found)?;
    if obj.owner != user && state.grants.operations(uid, user).await?.is_empty() {
        return Err(not_found());
    }
    if obj.owner != user {
        return Err(not_owner(
            uid,
            user,
            "only the user who created or imported a KMS key grants and revokes on it",
        ));
    }
    Ok(obj)
}

/// Checks `user` may grant, revoke and list on `uid`: the owner of a KMS
/// key; an HSM admin for an existing HSM key.
///
/// Errors: 422 for a malformed HSM uid or a key that does not exist, 401
/// when `user` is not the owner, 503 when hsmd is unreachable.
async fn require_owner(state: &AppState, user: &str, uid: &str) -> Result<(), KmsError> {
    if !stored::is_hsm(uid) {
        return owned_kms_key(state, user, uid).await.map(drop);
    }
    KeyUid::parse(uid)?;
    let admins = state.hsmd.hello().await?.admins.clone();
    if policy::is_admin(user, &admins) {
        return Ok(());
    }
    Err(not_owner(
        uid,
        user,
        &format!(
            "HSM keys are owned by the HSM admins ({})",
            admins.join(", ")
        ),
    ))
}

/// Checks `uid` names an existing HSM key (as `user` sees it in hsmd).
async fn existing(state: &AppState, user: &str, uid: &str) -> Result<(), KmsError> {
    KeyUid::parse(uid)?;
    state
        .hsmd
        .call(
            user,
            &format!("access rights on {uid}"),
            &GetKey(KeyRef { uid: uid.into() }),
        )
        .await
        .map(drop)
}

/// `POST /access/grant`.
pub async fn grant(
    State(state): State<Arc<AppState>>,
    Extension(User(user)): Extension<User>,
    raw: Body,
) -> Result<Json<Value>, KmsError> {
    let b = access_body(&state, raw).await?;
    let ops = policy::grantable(&b.operation_types)?;
    policy::grantee(&b.user_id)?;
    require_owner(&state, &user, &b.unique_identifier).await?;
    if stored::is_hsm(&b.unique_identifier) {
        existing(&state, &user, &b.unique_identifier).await?;
    }
    state
        .grants
        .grant(&b.unique_identifier, &b.user_id, &ops)
        .await?;
    tracing::info!(target: "audit", user = %echo(&user), uid = %echo(&b.unique_identifier), to = %echo(&b.user_id), ops = ?ops, "granted");
    Ok(Json(
        json!({"success": format!("Access for {} successfully added", echo(&b.user_id))}),
    ))
}

/// `POST /access/revoke`.
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    Extension(User(user)): Extension<User>,
    raw: Body,
) -> Result<Json<Value>, KmsError> {
    let b = access_body(&state, raw).await?;
    let mut ops = policy::grantable(&b.operation_types)?;
    policy::grantee(&b.user_id)?;
    require_owner(&state, &user, &b.unique_identifier).await?;
    // `get` and `export` imply each other: revoking one revokes both.
    if ops.iter().any(|o| matches!(*o, "get" | "export")) {
        ops.extend(["get", "export"]);
        ops.sort_unstable();
        ops.dedup();
    }
    state
        .grants
        .revoke(&b.unique_identifier, &b.user_id, &ops)
        .await?;
    tracing::info!(target: "audit", user = %echo(&user), uid = %echo(&b.unique_identifier), from = %echo(&b.user_id), ops = ?ops, "revoked");
    Ok(Json(
        json!({"success": format!("Access for {} successfully deleted", echo(&b.user_id))}),
    ))
}

/// `GET /access/list/<uid>`: `[{"user_id", "operations"}]`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(User(user)): Extension<User>,
    Path(id): Path<String>,
) -> Result<Json<Value>, KmsError> {
    require_owner(&state, &user, &id).await?;
    let rows = state.grants.by_key(&id).await?;
    Ok(Json(Value::Array(
        rows.into_iter()
            .map(|(u, ops)| json!({"user_id": u, "operations": ops}))
            .collect(),
    )))
}

/// `GET /access/owned`: the caller's KMS keys, and every HSM key for an
/// HSM admin: `[{"object_id", "state", "attributes": {...}}]`.
pub async fn owned(
    State(state): State<Arc<AppState>>,
    Extension(User(user)): Extension<User>,
) -> Result<Json<Value>, KmsError> {
    let admins = state.hsmd.hello().await?.admins.clone();
    let mut out = Vec::new();
    if policy::is_admin(&user, &admins) {
        let keys = state
            .hsmd
            .call(&user, "access owned", &ListKeys::default())
            .await?
            .keys;
        out.extend(keys.iter().map(|k| {
            json!({
                "object_id": k.uid,
                "state": "Active",
                "attributes": {
                    "CryptographicAlgorithm": attributes::algorithm(k.kind),
                    "CryptographicLength": k.bits,
                    "KeyFormatType": attributes::default_format(k.kind),
                    "ObjectType": attributes::object_type(k.kind),
                }
            })
        }));
    }
    let store = state.vault.store();
    let all = store.locate(&crate::store::LocateQuery::default()).await?;
    for (uid, owner) in all {
        if owner != user {
            continue;
        }
        if let Some(obj) = store.get(&uid).await? {
            out.push(owned_entry(&obj)?);
        }
    }
    Ok(Json(Value::Array(out)))
}

/// One KMS key of `/access/owned`, shaped like the reference's
/// `ObjectOwnedResponse` (its `Attributes` as serde JSON, the four
/// identifying ones).
fn owned_entry(obj: &StoredObject) -> Result<Value, KmsError> {
    let attrs = stored::attributes::stored(obj)?;
    let mut a = serde_json::Map::new();
    if let Some(alg) = attrs.enum_of("CryptographicAlgorithm")? {
        a.insert("CryptographicAlgorithm".into(), json!(alg));
    }
    if let Some(bits) = attrs.int_of("CryptographicLength")? {
        a.insert("CryptographicLength".into(), json!(bits));
    }
    if let Some(format) = attrs.enum_of("KeyFormatType")? {
        a.insert("KeyFormatType".into(), json!(format));
    }
    a.insert("ObjectType".into(), json!(obj.object_type.name()));
    Ok(json!({"object_id": obj.uid, "state": obj.state.name(), "attributes": a}))
}

/// `GET /access/obtained`: the caller's grants, with the owner and state of
/// a KMS key, owner `hsm` and state Active for an HSM key (a grant on a KMS
/// key no longer stored is left out).
pub async fn obtained(
    State(state): State<Arc<AppState>>,
    Extension(User(user)): Extension<User>,
) -> Result<Json<Value>, KmsError> {
    let rows = state.grants.by_user(&user).await?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, ops) in rows {
        let (owner, key_state) = if stored::is_hsm(&id) {
            ("hsm".to_owned(), "Active")
        } else {
            match state.vault.store().get(&id).await? {
                Some(obj) => (obj.owner, obj.state.name()),
                None => continue,
            }
        };
        out.push(
            json!({"object_id": id, "owner_id": owner, "state": key_state, "operations": ops}),
        );
    }
    Ok(Json(Value::Array(out)))
}
