//! The reference server's access-rights endpoints (not KMIP), with its
//! bodies: `POST /access/grant` and `/access/revoke` take
//! `{"unique_identifier", "user_id", "operation_types": [...]}`;
//! `GET /access/list/<uid>`, `/access/owned`, `/access/obtained` answer
//! JSON arrays. Only HSM admins grant, revoke and list.

use super::{json, read_body, AppState};
use crate::access::policy;
use crate::auth::User;
use crate::error::{echo, KmsError};
use crate::kmip::attributes;
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

/// 401 unless `user` is an HSM admin: only they own HSM keys.
async fn require_owner(state: &AppState, user: &str, uid: &str) -> Result<(), KmsError> {
    let admins = state.hsmd.hello().await?.admins.clone();
    if policy::is_admin(user, &admins) {
        return Ok(());
    }
    Err(KmsError::admin_only(format!(
        "Access denied: Object with uid `{uid}` is not owned by owner `{user}`: HSM keys are owned by the HSM admins ({})",
        admins.join(", ")
    )))
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
    existing(&state, &user, &b.unique_identifier).await?;
    state
        .grants
        .grant(&b.unique_identifier, &b.user_id, &ops)
        .map_err(KmsError::internal)?;
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
    KeyUid::parse(&b.unique_identifier)?;
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
        .map_err(KmsError::internal)?;
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
    KeyUid::parse(&id)?;
    require_owner(&state, &user, &id).await?;
    let rows = state.grants.by_key(&id).map_err(KmsError::internal)?;
    Ok(Json(Value::Array(
        rows.into_iter()
            .map(|(u, ops)| json!({"user_id": u, "operations": ops}))
            .collect(),
    )))
}

/// `GET /access/owned`: every HSM key for an admin, nothing for others.
pub async fn owned(
    State(state): State<Arc<AppState>>,
    Extension(User(user)): Extension<User>,
) -> Result<Json<Value>, KmsError> {
    let admins = state.hsmd.hello().await?.admins.clone();
    if !policy::is_admin(&user, &admins) {
        return Ok(Json(json!([])));
    }
    let keys = state
        .hsmd
        .call(&user, "access owned", &ListKeys::default())
        .await?
        .keys;
    Ok(Json(Value::Array(
        keys.iter()
            .map(|k| {
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
            })
            .collect(),
    )))
}

/// `GET /access/obtained`: the caller's grants, owner `hsm`.
pub async fn obtained(
    State(state): State<Arc<AppState>>,
    Extension(User(user)): Extension<User>,
) -> Result<Json<Value>, KmsError> {
    let rows = state.grants.by_user(&user).map_err(KmsError::internal)?;
    Ok(Json(Value::Array(
        rows.into_iter()
            .map(|(id, ops)| json!({"object_id": id, "owner_id": "hsm", "state": "Active", "operations": ops}))
            .collect(),
    )))
}
