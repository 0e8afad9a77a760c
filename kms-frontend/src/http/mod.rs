//! The HTTP API: `POST /kmip/2_1` (KMIP JSON TTLV), the access-rights
//! endpoints, `GET /version` and `GET /health`. Every route but `/health`
//! runs behind authentication ([`crate::auth::middleware`]); bodies larger
//! than `max_body_bytes` are refused with 413 before they are read.

pub mod health;
pub mod peers;
pub mod serve;

use crate::access::routes as access;
use crate::access::store::GrantStore;
use crate::auth::{self, Authenticator, User};
use crate::error::KmsError;
use crate::hsm::Hsmd;
use crate::kmip::{self, Ctx};
use crate::ttlv::Ttlv;
use axum::body::{Body, Bytes};
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
    /// Largest request body, bytes (`max_body_bytes`).
    pub max_body_bytes: usize,
}

/// How long a client may take to send a request's body once its headers
/// are in.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

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
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(max_body_bytes, refuse_large))
        .with_state(state)
}

fn too_large_error(max: usize) -> KmsError {
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
        Some(len) if len > max as u64 => too_large_error(max).into_response(),
        _ => next.run(request).await,
    }
}

/// Reads a request body of at most `max` bytes within [`BODY_READ_TIMEOUT`].
///
/// Errors: 413 past `max` (a `Content-Length` above it was already refused
/// by [`refuse_large`]), 408 when the body does not arrive in time, 400
/// when the connection breaks.
pub async fn read_body(body: Body, max: usize) -> Result<Bytes, KmsError> {
    match tokio::time::timeout(BODY_READ_TIMEOUT, axum::body::to_bytes(body, max)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                Err(too_large_error(max))
            } else {
                Err(KmsError::bad_request(format!(
                    "cannot read the request body: {e}"
                )))
            }
        }
        Err(_) => Err(KmsError {
            status: StatusCode::REQUEST_TIMEOUT,
            message: format!(
                "the request body did not arrive within {} s",
                BODY_READ_TIMEOUT.as_secs()
            ),
        }),
    }
}

/// Parses a JSON body.
pub fn json(bytes: &[u8]) -> Result<serde_json::Value, KmsError> {
    serde_json::from_slice(bytes).map_err(|e| {
        KmsError::bad_request(format!(
            "the body is not JSON, or nests deeper than 128 levels: {e}"
        ))
    })
}

async fn kmip_route(
    State(state): State<Arc<AppState>>,
    Extension(User(user)): Extension<User>,
    raw: Body,
) -> Response {
    let result = async {
        let value = json(&read_body(raw, state.max_body_bytes).await?)?;
        let req = Ttlv::from_json(&value)?;
        let ctx = Ctx {
            state: &state,
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
            tracing::info!(user = %crate::error::echo(&user), status = e.status.as_u16(), "KMIP request refused: {e}");
            e.into_response()
        }
    }
}

async fn version() -> Json<String> {
    Json(concat!(env!("CARGO_PKG_VERSION"), " (hsmd kms-frontend, KMIP 2.1)").to_owned())
}
