//! Request bodies: a `Content-Length` above `max_body_bytes` is refused
//! before any of the body is read, a body is read within
//! [`BODY_READ_TIMEOUT`], and parsed as JSON.

use crate::error::KmsError;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};

/// How long a client may take to send a request's body once its headers
/// are in.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

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
/// [`axum::extract::DefaultBodyLimit`] instead).
pub async fn refuse_large(
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
