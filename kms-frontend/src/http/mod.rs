//! The HTTP API: `POST /kmip/2_1` (KMIP JSON TTLV, [`kmip`]), the
//! access-rights endpoints ([`access`]), `GET /version` and `GET /health`
//! ([`health`]). Every route but `/health` runs behind authentication
//! ([`authenticate`]); bodies larger than `max_body_bytes` are refused with
//! 413 before they are read ([`body`]). A [`crate::error::KmsError`]
//! becomes a plain-text answer with its status ([`error`]). [`serve`] is
//! the accept loop, [`peers`] its per-address caps.

pub mod access;
pub mod authenticate;
pub mod body;
pub mod error;
pub mod health;
pub mod kmip;
pub mod peers;
pub mod serve;

#[cfg(test)]
mod tests;

pub use body::{json, read_body, BODY_READ_TIMEOUT};

use crate::access::store::GrantStore;
use crate::auth::Authenticator;
use crate::hsm::Hsmd;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use std::sync::Arc;

/// What every request handler shares.
pub struct AppState {
    /// The hsmd connection pool.
    pub hsmd: Hsmd,
    /// Access rights.
    pub grants: GrantStore,
    /// KMS keys: the object store, wrapping, the unwrapped cache.
    pub vault: crate::vault::Vault,
    /// Largest request body, bytes (`max_body_bytes`).
    pub max_body_bytes: usize,
}

/// The router of the whole API.
pub fn router(state: Arc<AppState>, auth: Arc<Authenticator>, max_body_bytes: usize) -> Router {
    let authenticated = Router::new()
        .route("/kmip/2_1", post(kmip::handler))
        .route("/access/grant", post(access::grant))
        .route("/access/revoke", post(access::revoke))
        .route("/access/list/{uid}", get(access::list))
        .route("/access/owned", get(access::owned))
        .route("/access/obtained", get(access::obtained))
        .route("/version", get(version))
        .route_layer(middleware::from_fn_with_state(
            auth,
            authenticate::middleware,
        ));
    Router::new()
        .merge(authenticated)
        .route("/health", get(health::health))
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(
            max_body_bytes,
            body::refuse_large,
        ))
        .with_state(state)
}

async fn version() -> Json<String> {
    Json(concat!(env!("CARGO_PKG_VERSION"), " (hsmd kms-frontend, KMIP 2.1)").to_owned())
}
