//! `POST /kmip/2_1`: one KMIP operation in JSON TTLV (served by
//! [`crate::kmip::handle`]), its answer back as JSON.

use super::{json, read_body, AppState};
use crate::auth::User;
use crate::error::KmsError;
use crate::kmip;
use crate::ttlv::Ttlv;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The `/kmip/2_1` handler.
pub async fn handler(
    State(state): State<Arc<AppState>>,
    Extension(User(user)): Extension<User>,
    raw: Body,
) -> Response {
    let result = async {
        let value = json(&read_body(raw, state.max_body_bytes).await?)?;
        let req = Ttlv::from_json(&value)?;
        let ctx = kmip::Ctx {
            hsmd: &state.hsmd,
            grants: &state.grants,
            vault: &state.vault,
            user: &user,
        };
        kmip::handle(&ctx, &req).await
    }
    .await;
    match result {
        Ok(ttlv) => match serde_json::to_vec(&ttlv) {
            Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
            Err(e) => {
                KmsError::internal(format!("cannot encode the KMIP answer: {e}")).into_response()
            }
        },
        Err(e) => {
            tracing::info!(target: "audit", user = %crate::error::echo(&user), status = e.status.as_u16(), "KMIP request refused: {e}");
            e.into_response()
        }
    }
}
