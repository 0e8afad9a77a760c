//! `status` of one slot: token presence, label, serial, PIN flags, login
//! state, mechanisms, hsmd's state of the slot and its last error (`C_GetSlotInfo`, `C_GetTokenInfo`, PKCS#11 v2.40 section 5.5).

use super::slot::Worker;
use cryptoki::session::SessionState;
use hsmd_protocol::SlotStatus;

/// Reads the state of the worker's slot. Never fails: an absent token or a
/// failing call shows as `present: false` / `logged_in: false`.
pub fn slot_status(w: &mut Worker) -> SlotStatus {
    let ctx = w.ctx();
    let id = ctx.id;
    let present = ctx
        .pkcs11
        .get_slot_info(ctx.slot)
        .map(|i| i.token_present())
        .unwrap_or(false);
    let token = if present {
        ctx.pkcs11.get_token_info(ctx.slot).ok()
    } else {
        None
    };
    let mechanisms = ctx.mechanisms.names();
    let no_login = ctx.login.is_no_login();
    let logged_in = present
        && !no_login
        && w.with_session(|s, _| Ok(s.get_session_info()?.session_state()))
            .map(|st| matches!(st, SessionState::RoUser | SessionState::RwUser))
            .unwrap_or(false);
    let (state, last_error) = w.ctx().health();
    SlotStatus {
        slot: id,
        token_label: token
            .as_ref()
            .map(|t| t.label().trim().to_owned())
            .unwrap_or_default(),
        serial: token
            .as_ref()
            .map(|t| t.serial_number().trim().to_owned())
            .unwrap_or_default(),
        present,
        logged_in,
        pin_count_low: token.as_ref().is_some_and(|t| t.user_pin_count_low()),
        pin_final_try: token.as_ref().is_some_and(|t| t.user_pin_final_try()),
        pin_locked: token.as_ref().is_some_and(|t| t.user_pin_locked()),
        mechanisms,
        state: state.as_str().to_owned(),
        last_error,
    }
}
