//! Refusals and faults as HTTP answers. The status classes are the
//! reference server's where its CLI depends on them (401 admin-only, 422
//! not found / not granted / sensitive, 503 when hsmd is unreachable); the
//! plain-text body always names the real cause. 500 is kept for real
//! faults: the cause goes to the log, the body carries a correlation id.
//!
//! The bottom layer (see the map in the crate's documentation): it uses no
//! other module of the crate. The lower layers' own errors become a
//! [`KmsError`] where they arise (`crate::kmip` converts a TTLV error,
//! callers of the grant store map its errors to 500), and `crate::http`
//! turns a [`KmsError`] into the plain-text answer.

use axum::http::StatusCode;
use hsmd_protocol::{ClientError, ErrorCode};

/// A request that cannot be served, with the HTTP status it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsError {
    /// HTTP status.
    pub status: StatusCode,
    /// One sentence for the caller (never secrets).
    pub message: String,
}

impl std::fmt::Display for KmsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for KmsError {}

impl KmsError {
    /// Every constructor goes through here: the message is made
    /// [`printable`], then cut to `hsmd_protocol::error::MESSAGE_MAX` bytes
    /// with its full length stated (`... (<n> bytes in all)`), so no answer
    /// or log line repeats more of what a caller sent.
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: hsmd_protocol::error::bounded(printable(&message.into())),
        }
    }

    /// 401: only an HSM admin may do this.
    pub fn admin_only(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 422: the request is understood but refused (not found, not granted,
    /// sensitive, unsupported, invalid value).
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    /// 400: the body is not JSON at all.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 503: hsmd (or the token behind it) cannot serve now.
    pub fn unavailable(reason: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("HSM service unavailable: {reason}"),
        )
    }

    /// 409: the key changed under a read-modify-write (the request may be
    /// sent again).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// True for [`KmsError::conflict`]'s answers.
    pub fn is_conflict(&self) -> bool {
        self.status == StatusCode::CONFLICT
    }

    /// 503: the KMS database (PostgreSQL) cannot be reached now; the
    /// frontend resumes by itself once it is back.
    pub fn database_unavailable(reason: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("KMS database unavailable: {reason}; retry later (the frontend reconnects by itself)"),
        )
    }

    /// 500: a fault of ours. Logs `cause` with a fresh correlation id and
    /// answers only the id.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let id = uuid::Uuid::new_v4();
        tracing::error!(correlation_id = %id, "internal error: {}", hsmd_protocol::error::bounded(printable(&cause.to_string())));
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error (correlation id {id}; the cause is in the kms-frontend log)"),
        )
    }

    /// Maps an hsmd client error met while doing `what` (e.g. "Encrypt with
    /// hsm::0::k1") to the answer the caller gets.
    pub fn from_hsmd(what: &str, e: ClientError) -> Self {
        let body = match &e {
            ClientError::Server(b) => b,
            ClientError::Refused(b) => {
                return Self::unavailable(format!(
                    "hsmd refused this frontend's connection ({}): list the frontend's unix user in hsmd's `frontends`",
                    b.message
                ))
            }
            ClientError::Encode(err) => return Self::internal(format!("{what}: {err}")),
            ClientError::TooLarge { len, max } => {
                // Byte strings travel base64-encoded: about 3/4 of the frame.
                return Self {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    message: format!(
                        "{what}: the data is too large for one hsmd request ({len} bytes encoded, hsmd's max_frame_len is {max}); send at most about {} bytes of data per request",
                        (max / 4 * 3).saturating_sub(1024)
                    ),
                };
            }
            ClientError::Connect { .. } | ClientError::Handshake(_) | ClientError::Closed(_) => {
                return Self::unavailable(e)
            }
        };
        let msg = format!("{what}: {}", body.message);
        match body.code {
            ErrorCode::NotFound => Self::unprocessable(format!("Item not found: {msg}")),
            ErrorCode::Ambiguous => Self::unprocessable(format!("Ambiguous key: {msg}")),
            ErrorCode::Forbidden => Self::admin_only(format!("Access denied: {msg}")),
            ErrorCode::Unauthorized => Self::unavailable(format!(
                "hsmd does not accept this frontend: {}",
                body.message
            )),
            ErrorCode::BadRequest
            | ErrorCode::AlreadyExists
            | ErrorCode::Unsupported
            | ErrorCode::HsmError => Self::unprocessable(msg),
            ErrorCode::TokenNotPresent
            | ErrorCode::NotLoggedIn
            | ErrorCode::PinLocked
            | ErrorCode::Busy
            | ErrorCode::HsmUnavailable => Self::unavailable(msg),
            _ => Self::internal(format!("{what}: hsmd answered {e}")),
        }
    }
}

impl From<hsmd_protocol::UidError> for KmsError {
    /// 422 naming the uid, what is wrong with it and the accepted form.
    fn from(e: hsmd_protocol::UidError) -> Self {
        Self::unprocessable(format!("{e}; this KMS holds HSM keys only"))
    }
}

/// Longest caller-chosen value (a uid, a user name) repeated in a log
/// record or a success answer, in bytes.
pub const ECHO_MAX: usize = 160;

/// A caller-chosen `value` for a log record or an answer: [`printable`], cut
/// to [`ECHO_MAX`] bytes with its full length stated (`... (<n> bytes in
/// all)`).
pub fn echo(value: &str) -> String {
    hsmd_protocol::error::bounded_to(printable(value), ECHO_MAX)
}

/// `text` with control characters (newline, NUL, ESC, ...) escaped as
/// `\u{..}`: messages quote caller-chosen names, which must not forge log
/// lines or terminal output.
pub fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The start-up error `e` as one line: its causes joined with `": "`, each
/// cause left out when the text before it already says it (errors that
/// print their source, as most `thiserror` types do, would otherwise
/// repeat it: "...: Permission denied (os error 13): Permission denied
/// (os error 13)").
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    printable(&line)
}

#[cfg(test)]
mod tests {
    #[test]
    fn echoes_are_cut_with_their_full_length_stated() {
        let uid = "x".repeat(2_000_000);
        let e = super::KmsError::unprocessable(format!("Item not found: Encrypt with {uid}"));
        assert!(e.message.len() < 1100, "{}", e.message.len());
        assert!(
            e.message.ends_with("... (2000029 bytes in all)"),
            "{}",
            e.message
        );
        let short = super::echo(&uid);
        assert_eq!(short, format!("{}... (2000000 bytes in all)", &uid[..160]));
        assert_eq!(super::echo("bob\n"), "bob\\u{a}");
    }
    /// A token fault a retry may cure is 503 (clients retry), never 422.
    #[test]
    fn a_retryable_token_fault_is_503() {
        let body = hsmd_protocol::ErrorBody {
            code: hsmd_protocol::ErrorCode::HsmUnavailable,
            message: "C_GenerateKey on slot 1 failed with CKR_GENERAL_ERROR".into(),
            ckr: Some("CKR_GENERAL_ERROR".into()),
        };
        let e = super::KmsError::from_hsmd("Create", hsmd_protocol::ClientError::Server(body));
        assert_eq!(e.status.as_u16(), 503);
        assert_eq!(
            e.message,
            "HSM service unavailable: Create: C_GenerateKey on slot 1 failed with CKR_GENERAL_ERROR"
        );
    }

    #[test]
    fn caller_text_cannot_break_lines() {
        let e = super::KmsError::unprocessable("no key hsm::1::x\n2026 INFO forged\u{1b}[31m");
        assert_eq!(
            e.message,
            "no key hsm::1::x\\u{a}2026 INFO forged\\u{1b}[31m"
        );
    }
}
