//! Authentication on every request but `/health`: the axum middleware
//! that asks [`Authenticator::identify`] who the caller is (from the
//! connection's [`PeerCertificate`] and the `Authorization` header) and
//! answers 401 when it cannot say.

use crate::auth::{AuthError, Authenticator, PeerCertificate, User};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The middleware: authenticates the request, stores [`User`] in its
/// extensions, or answers 401 with the reason as a plain-text body.
///
/// An `Authorization` header that is not UTF-8 is passed on lossily (so it
/// fails verification instead of counting as absent); several
/// `Authorization` headers are refused when callers authenticate.
pub async fn middleware(
    State(auth): State<Arc<Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    let certificate = request.extensions().get::<PeerCertificate>().cloned();
    let mut values = request
        .headers()
        .get_all(axum::http::header::AUTHORIZATION)
        .iter();
    let authorization = values
        .next()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    if auth.authenticates() && values.next().is_some() {
        return unauthorized(
            &auth,
            AuthError::Invalid("the request has several Authorization headers; send one".into()),
        );
    }
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
        Err(e) => unauthorized(&auth, e),
    }
}

/// 401 with the reason as body; `WWW-Authenticate: Bearer` when JWTs are
/// accepted (RFC 6750 section 3).
fn unauthorized(auth: &Authenticator, error: AuthError) -> Response {
    let reason = crate::error::printable(&error.to_string());
    tracing::debug!("request refused: {reason}");
    let mut response = (StatusCode::UNAUTHORIZED, reason).into_response();
    if auth.accepts_jwt() {
        response.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer"),
        );
    }
    response
}
