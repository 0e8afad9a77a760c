//! Errors of the PKCS#11 engine and their mapping to protocol error codes
//! (PKCS#11 v2.40 section 5.1 for the `CKR_*` return values).

use cryptoki::error::{Error as CkError, RvError};
use hsmd_protocol::{ErrorBody, ErrorCode};

/// An operation's failure inside a slot worker.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// A PKCS#11 call failed.
    #[error("{0}")]
    Pkcs11(#[from] CkError),
    /// A refusal or failure already phrased for the client.
    #[error("{0}")]
    Refused(ErrorBody),
}

impl From<ErrorBody> for OpError {
    fn from(e: ErrorBody) -> Self {
        Self::Refused(e)
    }
}

impl OpError {
    /// A refusal with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Refused(ErrorBody::new(code, message))
    }

    /// The PKCS#11 return value, when the module produced this error.
    pub fn rv(&self) -> Option<RvError> {
        match self {
            Self::Pkcs11(CkError::Pkcs11(rv, _)) => Some(*rv),
            _ => None,
        }
    }

    /// The error body sent to the client, with the slot named in PKCS#11 failures.
    pub fn into_body(self, slot: u64) -> ErrorBody {
        match self {
            Self::Refused(body) => body,
            Self::Pkcs11(CkError::Pkcs11(rv, function)) => {
                let ckr = ckr_name(rv);
                let (code, hint) = match rv {
                    RvError::DeviceRemoved | RvError::TokenNotPresent => (
                        ErrorCode::TokenNotPresent,
                        "; the token was removed from the reader",
                    ),
                    RvError::UserNotLoggedIn => (ErrorCode::NotLoggedIn, ""),
                    RvError::PinLocked => (ErrorCode::PinLocked, ""),
                    RvError::MechanismInvalid | RvError::MechanismParamInvalid => {
                        (ErrorCode::Unsupported, "")
                    }
                    RvError::GeneralError | RvError::FunctionFailed | RvError::DeviceError => (
                        ErrorCode::HsmUnavailable,
                        "; the token failed, retry in a moment",
                    ),
                    _ => (ErrorCode::HsmError, ""),
                };
                ErrorBody {
                    code,
                    message: format!("C_{function:?} on slot {slot} failed with {ckr}{hint}"),
                    ckr: Some(ckr),
                }
            }
            Self::Pkcs11(other) => ErrorBody::new(
                ErrorCode::Internal,
                format!("PKCS#11 binding error on slot {slot}: {other}"),
            ),
        }
    }
}

/// The `CKR_*` name of a return value, e.g. `RvError::DataLenRange` →
/// `"CKR_DATA_LEN_RANGE"` (derived from the variant name, which follows the
/// specification's spelling).
pub fn ckr_name(rv: RvError) -> String {
    match rv {
        RvError::VendorDefined(code) => format!("CKR_VENDOR_DEFINED({code:#x})"),
        RvError::UnknownErrorCode(code) => format!("CKR_UNKNOWN({code:#x})"),
        other => {
            let camel = format!("{other:?}");
            let mut out = String::from("CKR");
            for c in camel.chars() {
                if c.is_ascii_uppercase() {
                    out.push('_');
                }
                out.push(c.to_ascii_uppercase());
            }
            out
        }
    }
}

/// True for return values after which a fresh session (and possibly a new
/// login) may succeed: the session or its login is gone, not the request bad.
pub fn is_session_lost(rv: RvError) -> bool {
    matches!(
        rv,
        RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::UserNotLoggedIn
            | RvError::DeviceRemoved
            | RvError::TokenNotPresent
            | RvError::DeviceError
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_specification() {
        assert_eq!(ckr_name(RvError::DataLenRange), "CKR_DATA_LEN_RANGE");
        assert_eq!(ckr_name(RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(ckr_name(RvError::SlotIdInvalid), "CKR_SLOT_ID_INVALID");
        assert_eq!(
            ckr_name(RvError::UserAlreadyLoggedIn),
            "CKR_USER_ALREADY_LOGGED_IN"
        );
        assert_eq!(
            ckr_name(RvError::VendorDefined(0x8000_0001)),
            "CKR_VENDOR_DEFINED(0x80000001)"
        );
    }

    /// Token faults a retry may cure get the retryable code; a refusal of
    /// the request itself stays `hsm_error`.
    #[test]
    fn token_faults_are_retryable() {
        for rv in [
            RvError::GeneralError,
            RvError::FunctionFailed,
            RvError::DeviceError,
        ] {
            let e = OpError::Pkcs11(CkError::Pkcs11(
                rv,
                cryptoki::context::Function::GenerateKey,
            ));
            let body = e.into_body(1);
            assert_eq!(body.code, ErrorCode::HsmUnavailable, "{rv:?}");
            assert_eq!(
                body.message,
                format!(
                    "C_GenerateKey on slot 1 failed with {}; the token failed, retry in a moment",
                    ckr_name(rv)
                )
            );
        }
        let e = OpError::Pkcs11(CkError::Pkcs11(
            RvError::DataLenRange,
            cryptoki::context::Function::Encrypt,
        ));
        assert_eq!(e.into_body(1).code, ErrorCode::HsmError);
    }

    #[test]
    fn removal_maps_to_token_not_present() {
        let e = OpError::Pkcs11(CkError::Pkcs11(
            RvError::DeviceRemoved,
            cryptoki::context::Function::Sign,
        ));
        let body = e.into_body(3);
        assert_eq!(body.code, ErrorCode::TokenNotPresent);
        assert_eq!(body.ckr.as_deref(), Some("CKR_DEVICE_REMOVED"));
        assert!(body.message.contains("slot 3"), "{}", body.message);
    }
}
