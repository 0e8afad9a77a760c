//! Error codes and error bodies (docs/protocol.md "Error codes").

use serde::{Deserialize, Serialize};

/// What went wrong, for programs to branch on. Serialized in snake_case
/// (`"bad_request"`, `"hsm_error"`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame or a field of it is malformed; the message names the field.
    BadRequest,
    /// The peer may not connect at all (sent once, then the connection closes).
    Unauthorized,
    /// The acting identity may not do this (e.g. create without being an hsm_admin).
    Forbidden,
    /// No key with that uid, or no such slot.
    NotFound,
    /// A key with that label and class already exists in the slot.
    AlreadyExists,
    /// The uid names two or more keys the operation could use (e.g. two
    /// secret keys with one `CKA_LABEL`, made by another tool); the message
    /// names their `CKA_ID`s and how to fix it. hsmd never picks one.
    Ambiguous,
    /// The token does not offer the mechanism or parameter asked for.
    Unsupported,
    /// The slot's token is absent (`CKR_DEVICE_REMOVED`, `CKR_TOKEN_NOT_PRESENT`).
    TokenNotPresent,
    /// The slot is not logged in (configured `<NO_LOGIN>`, or its login failed).
    NotLoggedIn,
    /// The user PIN is locked, or on its final try; an operator must act.
    PinLocked,
    /// The slot is shutting down (a full queue makes requests wait instead).
    Busy,
    /// The PKCS#11 module returned an error; `ckr` names it.
    HsmError,
    /// The token failed in a way a retry may cure (`CKR_GENERAL_ERROR`,
    /// `CKR_FUNCTION_FAILED`, `CKR_DEVICE_ERROR`); `ckr` names it. Retry
    /// after a short wait (docs/protocol.md "Error codes").
    HsmUnavailable,
    /// The announced frame length exceeds `max_frame_len`.
    FrameTooLarge,
    /// No protocol version is shared with the client.
    UnsupportedVersion,
    /// A fault inside hsmd; details are in its log.
    Internal,
    /// A code this client does not know (sent by a newer server).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The wire name, e.g. `"bad_request"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::Ambiguous => "ambiguous",
            Self::Unsupported => "unsupported",
            Self::TokenNotPresent => "token_not_present",
            Self::NotLoggedIn => "not_logged_in",
            Self::PinLocked => "pin_locked",
            Self::Busy => "busy",
            Self::HsmError => "hsm_error",
            Self::HsmUnavailable => "hsm_unavailable",
            Self::FrameTooLarge => "frame_too_large",
            Self::UnsupportedVersion => "unsupported_version",
            Self::Internal => "internal",
            Self::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `error` object of a response: `{"code", "message", "ckr"}`.
///
/// `message` is one sentence for people; `ckr` is the PKCS#11 return value name
/// (e.g. `"CKR_DATA_LEN_RANGE"`) when the module produced the error, else null.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ErrorBody {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation naming what was wrong and what is accepted.
    pub message: String,
    /// PKCS#11 `CKR_*` name, when there is one.
    #[serde(default)]
    pub ckr: Option<String>,
}

/// Longest error message, in bytes, before [`bounded`] cuts it. Messages
/// quote client input (uids, names, decoder messages); whatever each quote's
/// own limit, no answer or log line repeats more than this of it.
pub const MESSAGE_MAX: usize = 1024;

/// `message` cut to [`MESSAGE_MAX`] bytes (at a character boundary) and
/// followed by `... (<n> bytes in all)` when longer; unchanged otherwise.
pub fn bounded(message: String) -> String {
    bounded_to(message, MESSAGE_MAX)
}

/// [`bounded`] with the limit `max` (bytes).
pub fn bounded_to(mut message: String, max: usize) -> String {
    if message.len() <= max {
        return message;
    }
    let total = message.len();
    let mut cut = max;
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    message.truncate(cut);
    message.push_str(&format!("... ({total} bytes in all)"));
    message
}

impl ErrorBody {
    /// An error without a `ckr`; the message is [`bounded`].
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: bounded(message.into()),
            ckr: None,
        }
    }

    /// A `bad_request` error.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_cut_with_their_full_length_stated() {
        let uid = "é".repeat(1_000_000);
        let e = ErrorBody::new(ErrorCode::NotFound, format!("no key {uid}"));
        assert!(e.message.len() <= MESSAGE_MAX + 32, "{}", e.message.len());
        assert!(
            e.message.ends_with("... (2000007 bytes in all)"),
            "{}",
            &e.message[1000..]
        );
        assert_eq!(ErrorBody::bad_request("short").message, "short");
        assert_eq!(bounded_to("abcdef".into(), 6), "abcdef");
        assert_eq!(
            bounded_to("abcdefg".into(), 6),
            "abcdef... (7 bytes in all)"
        );
    }
}
