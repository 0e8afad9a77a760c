//! The HTTP API: `POST /kmip/2_1` (KMIP JSON TTLV), the access-rights
//! endpoints, `GET /version` and `GET /health`. Every route but `/health`
//! runs behind authentication ([`crate::auth::middleware`]); bodies larger
//! than `max_body_bytes` are refused with 413 before they are read.

pub mod health;

use crate::access::routes as access;
use crate::access::store::GrantStore;
use crate::auth::{self, Authenticator, User};
use crate::error::KmsError;
use crate::hsm::Hsmd;
use crate::kmip::{self, Ctx};
use crate::ttlv::Ttlv;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use std::sync::Arc;

/// What every request handler shares.
pub struct AppState {
    /// The hsmd connection pool.
    pub hsmd: Hsmd,
    /// Access rights.
    pub grants: GrantStore,
}

/// The router of the whole API.
pub fn router(state: Arc<AppState>, auth: Arc<Authenticator>, max_body_bytes: usize) -> Router {
    let authenticated = Router::new()
        .route("/kmip/2_1", post(kmip_route))
        .route("/access/grant", post(access::grant))
        .route("/access/revoke", post(access::revoke))
        .route("/access/list/{uid}", get(access::list))
        .route("/access/owned", get(access::owned))
        .route("/access/obtained", get(access::obtained))
        .route("/version", get(version))
        .route_layer(middleware::from_fn_with_state(auth, auth::middleware));
    Router::new()
        .merge(authenticated)
        .route("/health", get(health::health))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn_with_state(max_body_bytes, refuse_large))
        .with_state(state)
}

fn too_large(max: usize) -> KmsError {
    KmsError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: format!(
            "request body too large: it exceeds max_body_bytes ({max} bytes, see --max-body-bytes)"
        ),
    }
}

/// Answers 413 at once to a request whose `Content-Length` exceeds `max`,
/// before any of its body is read (a chunked body is cut at `max` by
/// [`DefaultBodyLimit`] instead).
async fn refuse_large(
    State(max): State<usize>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match announced {
        Some(len) if len > max as u64 => too_large(max).into_response(),
        _ => next.run(request).await,
    }
}

/// A request body, or the refusal of one that is too large (413) or broken.
pub fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, KmsError> {
    body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            KmsError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                message: "request body too large: it exceeds max_body_bytes (see --max-body-bytes)"
                    .into(),
            }
        } else {
            KmsError::bad_request(format!("cannot read the request body: {r}"))
        }
    })
}

/// Parses a JSON body.
pub fn json(bytes: &[u8]) -> Result<serde_json::Value, KmsError> {
    serde_json::from_slice(bytes)
        .map_err(|e| KmsError::bad_request(format!("the body is not JSON: {e}")))
}

async fn kmip_route(
    State(state): State<Arc<AppState>>,
    Extension(User(user)): Extension<User>,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let value = json(&body(raw)?)?;
        let req = Ttlv::from_json(&value)?;
        let ctx = Ctx {
            state: &state,
            user: &user,
        };
        kmip::handle(&ctx, &req).await
    }
    .await;
    match result {
        Ok(ttlv) => (
            [(header::CONTENT_TYPE, "application/json")],
            ttlv.to_json().to_string(),
        )
            .into_response(),
        Err(e) => {
            tracing::info!(user = %user, status = e.status.as_u16(), "KMIP request refused: {e}");
            e.into_response()
        }
    }
}

async fn version() -> Json<String> {
    Json(concat!(env!("CARGO_PKG_VERSION"), " (hsmd kms-frontend, KMIP 2.1)").to_owned())
}
