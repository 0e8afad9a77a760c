//! `GET /health` (ours): is hsmd reachable, which slots are up, and does
//! the database (SQLite or PostgreSQL) answer. 200 when hsmd answers, every
//! configured slot is ready and the database answers, else 503; the body
//! says which. Needs no credentials and tells nothing about keys.

use super::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The health handler. Body: `{"hsmd": "reachable"|"unreachable",
/// "model", "slots": [{"slot", "state", "last_error"}] | "reason",
/// "database": "reachable"|"unreachable", "database_reason"}`.
pub async fn health(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Value>) {
    let (hsmd, mut body) = match state.hsmd.status().await {
        Ok(status) => {
            let slots: Vec<Value> = status
                .slots
                .iter()
                .map(|s| json!({"slot": s.slot, "state": s.state, "last_error": s.last_error}))
                .collect();
            let all_up = status.slots.iter().all(|s| s.state == "ready");
            (
                all_up,
                json!({"hsmd": "reachable", "model": status.model, "slots": slots}),
            )
        }
        Err(e) => (false, json!({"hsmd": "unreachable", "reason": e.message})),
    };
    let database = state.grants.ping().await;
    if let Some(fields) = body.as_object_mut() {
        add_database(fields, &database);
    }
    let code = if hsmd && database.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

/// The `database` fields of the answer.
fn add_database(
    fields: &mut Map<String, Value>,
    database: &Result<(), crate::access::store::StoreError>,
) {
    match database {
        Ok(()) => {
            fields.insert("database".into(), json!("reachable"));
        }
        Err(e) => {
            fields.insert("database".into(), json!("unreachable"));
            fields.insert(
                "database_reason".into(),
                json!(hsmd_protocol::error::bounded(crate::error::printable(
                    &e.to_string()
                ))),
            );
        }
    }
}
