//! One sentence for each failure on the path from hsmd to a smart card:
//! library, pcscd, reader, card, token, PIN (docs/smartcard-hsm.md, "When
//! the card path fails"). A PC/SC-based module such as sc-hsm-embedded
//! reports most of them with a bare `CKR_DEVICE_ERROR` or an empty slot; the
//! functions here add what the operator needs to know and do.

use cryptoki::error::{Error as CkError, RvError};
use std::path::PathBuf;

/// pcsc-lite's default client socket (pcsc-lite 1.9, `PCSCLITE_CSOCK_NAME`).
pub const PCSCD_SOCKET: &str = "/run/pcscd/pcscd.comm";

/// The socket PC/SC clients reach pcscd on: the `PCSCLITE_CSOCK_NAME`
/// environment variable when set (pcsc-lite's own override), else
/// [`PCSCD_SOCKET`].
pub fn pcscd_socket() -> PathBuf {
    std::env::var_os("PCSCLITE_CSOCK_NAME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(PCSCD_SOCKET))
}

/// `Some(sentence)` when nothing answers on pcscd's socket (connect refused
/// or no socket file); `None` when pcscd accepts a connection.
pub fn pcscd_not_running() -> Option<String> {
    let socket = pcscd_socket();
    match std::os::unix::net::UnixStream::connect(&socket) {
        Ok(_) => None,
        Err(e) => Some(format!(
            "pcscd, the smart-card reader service, is not running (nothing answers on {}: {e}): start it (systemctl start pcscd.socket, or apt-get install pcscd)",
            socket.display()
        )),
    }
}

/// What `CKR_DEVICE_ERROR` means on the card path: pcscd is not running, or
/// (pcscd answers) the library lost its connection to it, as after a pcscd
/// restart, which `C_Finalize` + `C_Initialize` repair.
pub fn device_error_cause() -> String {
    pcscd_not_running().unwrap_or_else(|| {
        "pcscd answers, so the PKCS#11 library lost its connection to it (pcscd restarted, or the reader was unplugged; hsmd re-initializes the library and logs in again), or the card refused the command (a full SmartCard-HSM answers so to key generation)".into()
    })
}

/// The module could not be used as a PKCS#11 module: the reason, phrased
/// from the loader's error (not a shared library, or no `C_GetFunctionList`).
pub fn not_a_module(reason: &CkError) -> String {
    match reason {
        CkError::LibraryLoading(e) => {
            format!("it cannot be loaded as a shared library ({e})")
        }
        other => {
            let text = other.to_string();
            if text.contains("C_GetFunctionList") || matches!(other, CkError::NullFunctionPointer) {
                "it is a shared library without C_GetFunctionList, the entry point every PKCS#11 module exports".into()
            } else {
                text
            }
        }
    }
}

/// A slot whose reader holds no token, as the library sees it
/// (`CKF_TOKEN_PRESENT` clear). sc-hsm-embedded shows neither an empty
/// reader nor a SmartCard-HSM that was never initialized as a token.
pub fn no_token(slot: u64, reader: &str) -> String {
    format!(
        "no token in slot {slot} (reader \"{}\"): the reader holds no card, or a card the PKCS#11 library does not recognize (a SmartCard-HSM that was never initialized: sc-hsm-tool --initialize); opensc-tool -l shows whether pcscd sees a card",
        reader.trim()
    )
}

/// A present token whose `C_GetTokenInfo` flags say it cannot be used yet:
/// not initialized, or no user PIN set. `None` when both flags are set.
pub fn uninitialized(
    slot: u64,
    token_initialized: bool,
    user_pin_initialized: bool,
) -> Option<String> {
    if !token_initialized {
        return Some(format!(
            "the token in slot {slot} is not initialized (CKF_TOKEN_INITIALIZED is clear): initialize it (sc-hsm-tool --initialize --so-pin <SO PIN> --pin <user PIN>, or pkcs11-tool --init-token)"
        ));
    }
    if !user_pin_initialized {
        return Some(format!(
            "the token in slot {slot} has no user PIN (CKF_USER_PIN_INITIALIZED is clear): set one with the SO PIN (pkcs11-tool --init-pin --login --login-type so)"
        ));
    }
    None
}

/// The sentence for a failed PKCS#11 call on `slot` seen by `status` and the
/// logs: the function and `CKR_*`, and for `CKR_DEVICE_ERROR` its cause.
pub fn call_failed(slot: u64, e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, function) => {
            let base = format!(
                "C_{function:?} on slot {slot} failed with {}",
                super::error::ckr_name(*rv)
            );
            match rv {
                RvError::DeviceError => format!("{base}; {}", device_error_cause()),
                RvError::DeviceRemoved | RvError::TokenNotPresent => {
                    format!("{base}; the card was removed from the reader")
                }
                _ => base,
            }
        }
        other => format!("PKCS#11 binding error on slot {slot}: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uninitialized_names_the_flag_and_the_fix() {
        let t = uninitialized(1, false, false).unwrap_or_default();
        assert!(
            t.contains("CKF_TOKEN_INITIALIZED") && t.contains("sc-hsm-tool --initialize"),
            "{t}"
        );
        let p = uninitialized(1, true, false).unwrap_or_default();
        assert!(
            p.contains("CKF_USER_PIN_INITIALIZED") && p.contains("--init-pin"),
            "{p}"
        );
        assert_eq!(uninitialized(1, true, true), None);
    }

    #[test]
    fn a_missing_entry_point_is_named() {
        let t = not_a_module(&CkError::NullFunctionPointer);
        assert!(t.contains("C_GetFunctionList"), "{t}");
    }
}
