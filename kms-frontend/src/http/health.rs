//! `GET /health` (ours): is hsmd reachable, and which slots are up. 200 when
//! hsmd answers and every configured slot is ready, else 503; the body says
//! which. Needs no credentials and tells nothing about keys.

use super::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

/// The health handler.
pub async fn health(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Value>) {
    match state.hsmd.status().await {
        Ok(status) => {
            let slots: Vec<Value> = status
                .slots
                .iter()
                .map(|s| json!({"slot": s.slot, "state": s.state, "last_error": s.last_error}))
                .collect();
            let all_up = status.slots.iter().all(|s| s.state == "ready");
            let code = if all_up {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (
                code,
                Json(json!({"hsmd": "reachable", "model": status.model, "slots": slots})),
            )
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"hsmd": "unreachable", "reason": e.message})),
        ),
    }
}
