//! A [`KmsError`] as an HTTP answer: its status, and its message as a
//! plain-text body.

use crate::error::KmsError;
use axum::http::header;
use axum::response::{IntoResponse, Response};

impl IntoResponse for KmsError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.message,
        )
            .into_response()
    }
}
