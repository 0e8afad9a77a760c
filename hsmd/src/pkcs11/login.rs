//! User login on a slot, with the PIN safety rules of docs/design.md: read the
//! token's PIN flags first and refuse on final-try or locked; after a rejected
//! PIN never try again on our own (a SmartCard-HSM locks after a few tries).
//! PKCS#11 v2.40 section 5.6. The PIN itself stays in `crate::pin`: this file
//! decides whether to log in, [`SlotPin::login`] does it.

use super::error::{ckr_name, OpError};
use crate::pin::SlotPin;
use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, SessionState};
use cryptoki::slot::Slot;
use hsmd_protocol::ErrorCode;
use std::sync::Mutex;

/// Login state of one slot, shared by its session threads.
pub struct Login {
    slot_id: u64,
    pin: SlotPin,
    /// Set once a PIN was refused or the flags forbade a try: never log in again.
    blocked: Mutex<Option<String>>,
}

impl Login {
    /// State for `slot_id` with its configured PIN.
    pub fn new(slot_id: u64, pin: SlotPin) -> Self {
        Self {
            slot_id,
            pin,
            blocked: Mutex::new(None),
        }
    }

    /// True when the slot is configured `<NO_LOGIN>`.
    pub fn is_no_login(&self) -> bool {
        self.pin.is_no_login()
    }

    /// The slot's PIN, for `crate::pin::lock_in_memory` at start-up.
    pub fn pin(&self) -> &SlotPin {
        &self.pin
    }

    /// Why the slot will not log in again, if it will not.
    pub fn blocked_reason(&self) -> Option<String> {
        self.blocked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Makes sure `session`'s application is logged in as the user.
    ///
    /// Does nothing for `<NO_LOGIN>` or when the session already shows a user
    /// state. Otherwise reads the token's PIN flags, refuses on final-try or
    /// locked, and calls `C_Login` once (`CKR_USER_ALREADY_LOGGED_IN` is
    /// success). A rejected PIN blocks the slot for good.
    ///
    /// Errors: `pin_locked` (flags say locked or final try, or
    /// `CKR_PIN_LOCKED`), `not_logged_in` (PIN rejected now or before), PKCS#11 failures.
    pub fn ensure(&self, pkcs11: &Pkcs11, slot: Slot, session: &Session) -> Result<(), OpError> {
        if self.is_no_login() {
            return Ok(());
        }
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(why) = blocked.as_ref() {
            return Err(OpError::new(ErrorCode::NotLoggedIn, why.clone()));
        }
        let state = session.get_session_info()?.session_state();
        if matches!(state, SessionState::RoUser | SessionState::RwUser) {
            return Ok(());
        }
        let info = pkcs11.get_token_info(slot)?;
        let id = self.slot_id;
        let unblock = "unblock it with the SO PIN (sc-hsm-tool --unlock-pin, or pkcs11-tool --init-pin --login --login-type so) and restart hsmd";
        if info.user_pin_locked() {
            let why =
                format!("the user PIN of slot {id} is locked (CKF_USER_PIN_LOCKED, no tries left); {unblock}");
            *blocked = Some(why.clone());
            return Err(OpError::new(ErrorCode::PinLocked, why));
        }
        if info.user_pin_final_try() {
            let why = format!(
                "the user PIN of slot {id} has one try left (CKF_USER_PIN_FINAL_TRY); hsmd will not spend it: check the PIN, then log in once by hand (pkcs11-tool --login --test) or {unblock}"
            );
            *blocked = Some(why.clone());
            return Err(OpError::new(ErrorCode::PinLocked, why));
        }
        match self.pin.login(session) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
            Err(CkError::Pkcs11(
                rv @ (RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange),
                _,
            )) => {
                let left = if info.user_pin_count_low() {
                    " (the token already reported failed tries before this one)"
                } else {
                    ""
                };
                let why = format!(
                    "the token in slot {id} rejected the configured user PIN with {}{left}; hsmd will not try it again: fix the configured PIN and restart",
                    ckr_name(rv)
                );
                *blocked = Some(why.clone());
                Err(OpError::new(ErrorCode::NotLoggedIn, why))
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => {
                let why =
                    format!("the user PIN of slot {id} is locked (CKR_PIN_LOCKED, no tries left); {unblock}");
                *blocked = Some(why.clone());
                Err(OpError::new(ErrorCode::PinLocked, why))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Logs the application out of the token (`C_Logout`), ignoring "not logged in".
    pub fn logout(&self, session: &Session) {
        if self.is_no_login() {
            return;
        }
        match session.logout() {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserNotLoggedIn, _)) => {}
            Err(e) => tracing::warn!(slot = self.slot_id, "C_Logout failed: {e}"),
        }
    }
}
