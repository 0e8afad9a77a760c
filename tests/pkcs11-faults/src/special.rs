#![allow(clippy::missing_safety_doc, clippy::too_many_arguments)]
//! The calls the fault module changes rather than only forwards (PKCS#11
//! v2.40 sections 5.5 slot and token, 5.6 sessions, 5.7 objects, 5.8-5.9
//! encryption and decryption). Each runs inside [`crate::call`].

use crate::{control, real, state, write_counters};
use cryptoki_sys::*;

macro_rules! fwd {
    ($name:ident($($a:expr),*)) => {
        match real().$name {
            Some(f) => f($($a),*),
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    };
}

/// With `pair_labels`, the public key gets the private template's
/// `CKA_LABEL` and `CKA_ID` whatever its own template says, as sc-hsm-embedded
/// V2.12 does on a SmartCard-HSM (measured: docs/smartcard-hsm.md).
pub unsafe fn C_GenerateKeyPair(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    public: *mut CK_ATTRIBUTE,
    public_len: CK_ULONG,
    private: *mut CK_ATTRIBUTE,
    private_len: CK_ULONG,
    public_key: *mut CK_OBJECT_HANDLE,
    private_key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    let forward = |public: *mut CK_ATTRIBUTE, public_len| {
        fwd!(C_GenerateKeyPair(
            session,
            mechanism,
            public,
            public_len,
            private,
            private_len,
            public_key,
            private_key
        ))
    };
    let as_slice = |p: *mut CK_ATTRIBUTE, n: CK_ULONG| -> &[CK_ATTRIBUTE] {
        if p.is_null() || n == 0 {
            &[]
        } else {
            std::slice::from_raw_parts(p, n as usize)
        }
    };
    if !control().pair_labels {
        return forward(public, public_len);
    }
    let from_private: Vec<CK_ATTRIBUTE> = as_slice(private, private_len)
        .iter()
        .filter(|a| a.type_ == CKA_LABEL || a.type_ == CKA_ID)
        .copied()
        .collect();
    let mut template: Vec<CK_ATTRIBUTE> = as_slice(public, public_len)
        .iter()
        .filter(|a| a.type_ != CKA_LABEL && a.type_ != CKA_ID)
        .copied()
        .collect();
    template.extend(from_private);
    forward(template.as_mut_ptr(), template.len() as CK_ULONG)
}

/// Clears `CKF_TOKEN_PRESENT` while the token is pulled.
pub unsafe fn C_GetSlotInfo(slot: CK_SLOT_ID, info: *mut CK_SLOT_INFO) -> CK_RV {
    let rv = fwd!(C_GetSlotInfo(slot, info));
    if rv == CKR_OK && !info.is_null() && control().removed.contains(&slot) {
        (*info).flags &= !CKF_TOKEN_PRESENT;
    }
    rv
}

/// Sets the user-PIN flags from the retry counter.
pub unsafe fn C_GetTokenInfo(slot: CK_SLOT_ID, info: *mut CK_TOKEN_INFO) -> CK_RV {
    let rv = fwd!(C_GetTokenInfo(slot, info));
    if rv == CKR_OK && !info.is_null() {
        let ctl = control();
        let left = state().pin_left;
        if let (Some(max), Some(left)) = (ctl.pin_tries, left) {
            let flags = &mut (*info).flags;
            *flags &= !(CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED);
            if left < max {
                *flags |= CKF_USER_PIN_COUNT_LOW;
            }
            if left == 1 {
                *flags |= CKF_USER_PIN_FINAL_TRY;
            }
            if left == 0 {
                *flags |= CKF_USER_PIN_LOCKED;
            }
        }
    }
    rv
}

/// Leaves the hidden mechanisms out.
pub unsafe fn C_GetMechanismList(
    slot: CK_SLOT_ID,
    list: *mut CK_MECHANISM_TYPE,
    count: *mut CK_ULONG,
) -> CK_RV {
    let hide = control().hide;
    if hide.is_empty() || count.is_null() {
        return fwd!(C_GetMechanismList(slot, list, count));
    }
    let mut n: CK_ULONG = 0;
    let rv = fwd!(C_GetMechanismList(slot, std::ptr::null_mut(), &mut n));
    if rv != CKR_OK {
        return rv;
    }
    let mut all = vec![0 as CK_MECHANISM_TYPE; n as usize];
    let rv = fwd!(C_GetMechanismList(slot, all.as_mut_ptr(), &mut n));
    if rv != CKR_OK {
        return rv;
    }
    all.truncate(n as usize);
    all.retain(|m| !hide.contains(m));
    let room = *count;
    *count = all.len() as CK_ULONG;
    if list.is_null() {
        return CKR_OK;
    }
    if (room as usize) < all.len() {
        return CKR_BUFFER_TOO_SMALL;
    }
    std::ptr::copy_nonoverlapping(all.as_ptr(), list, all.len());
    CKR_OK
}

/// Hidden mechanisms do not exist.
pub unsafe fn C_GetMechanismInfo(
    slot: CK_SLOT_ID,
    m: CK_MECHANISM_TYPE,
    info: *mut CK_MECHANISM_INFO,
) -> CK_RV {
    if control().hide.contains(&m) {
        return CKR_MECHANISM_INVALID;
    }
    fwd!(C_GetMechanismInfo(slot, m, info))
}

/// Remembers the session's slot (a reused handle is alive again).
pub unsafe fn C_OpenSession(
    slot: CK_SLOT_ID,
    flags: CK_FLAGS,
    app: *mut std::ffi::c_void,
    notify: CK_NOTIFY,
    session: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    let rv = fwd!(C_OpenSession(slot, flags, app, notify, session));
    if rv == CKR_OK && !session.is_null() {
        let mut st = state();
        st.sessions.insert(*session, slot);
        st.dead.remove(&*session);
    }
    rv
}

/// Applies the retry counter to user logins (counted in [`crate::call`]).
pub unsafe fn C_Login(
    session: CK_SESSION_HANDLE,
    user: CK_USER_TYPE,
    pin: *mut CK_UTF8CHAR,
    len: CK_ULONG,
) -> CK_RV {
    if user == CKU_USER && state().pin_left == Some(0) {
        return CKR_PIN_LOCKED;
    }
    let rv = fwd!(C_Login(session, user, pin, len));
    if user != CKU_USER {
        return rv;
    }
    let max = control().pin_tries;
    let mut st = state();
    match (rv, st.pin_left) {
        (CKR_PIN_INCORRECT, Some(left)) => {
            let left = left.saturating_sub(1);
            st.pin_left = Some(left);
            if left == 0 {
                return CKR_PIN_LOCKED;
            }
        }
        (CKR_OK | CKR_USER_ALREADY_LOGGED_IN, Some(_)) => st.pin_left = max,
        _ => {}
    }
    rv
}

/// At most `find_max` handles per call; counts calls and the largest answer.
pub unsafe fn C_FindObjects(
    session: CK_SESSION_HANDLE,
    objects: *mut CK_OBJECT_HANDLE,
    max: CK_ULONG,
    count: *mut CK_ULONG,
) -> CK_RV {
    let cap = control().find_max.map_or(max, |c| c.min(max));
    let rv = fwd!(C_FindObjects(session, objects, cap, count));
    if rv == CKR_OK && !count.is_null() {
        let mut st = state();
        st.counters.find_calls += 1;
        st.counters.find_max_returned = st.counters.find_max_returned.max(*count);
        write_counters(&st.counters);
    }
    rv
}

unsafe fn init_check(session: CK_SESSION_HANDLE, m: *mut CK_MECHANISM) -> Option<CK_RV> {
    if m.is_null() {
        return None;
    }
    let mech = (*m).mechanism;
    if control().hide.contains(&mech) {
        return Some(CKR_MECHANISM_INVALID);
    }
    let mut st = state();
    if mech == CKM_AES_CBC {
        st.cbc.insert(session);
    } else {
        st.cbc.remove(&session);
    }
    None
}

fn too_long(session: CK_SESSION_HANDLE, len: CK_ULONG) -> bool {
    control().cbc_max.is_some_and(|max| len > max) && state().cbc.contains(&session)
}

/// Refuses hidden mechanisms.
pub unsafe fn C_EncryptInit(
    s: CK_SESSION_HANDLE,
    m: *mut CK_MECHANISM,
    k: CK_OBJECT_HANDLE,
) -> CK_RV {
    match init_check(s, m) {
        Some(rv) => rv,
        None => fwd!(C_EncryptInit(s, m, k)),
    }
}

/// Refuses hidden mechanisms.
pub unsafe fn C_DecryptInit(
    s: CK_SESSION_HANDLE,
    m: *mut CK_MECHANISM,
    k: CK_OBJECT_HANDLE,
) -> CK_RV {
    match init_check(s, m) {
        Some(rv) => rv,
        None => fwd!(C_DecryptInit(s, m, k)),
    }
}

/// Ends the real operation (output discarded) so that, as the specification
/// says of a failed `C_Encrypt`, no operation stays active.
unsafe fn end_with(rv: CK_RV, run: impl FnOnce(*mut CK_BYTE, *mut CK_ULONG)) -> CK_RV {
    let mut scratch = vec![0u8; 1 << 20];
    let mut n = scratch.len() as CK_ULONG;
    run(scratch.as_mut_ptr(), &mut n);
    rv
}

/// AES-CBC input over `cbc_max` is refused (`CKR_DATA_LEN_RANGE`).
pub unsafe fn C_Encrypt(
    s: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    if too_long(s, len) {
        return end_with(CKR_DATA_LEN_RANGE, |o, n| {
            fwd!(C_Encrypt(s, data, len, o, n));
        });
    }
    fwd!(C_Encrypt(s, data, len, out, out_len))
}

/// AES-CBC input over `cbc_max` is refused (`CKR_DATA_LEN_RANGE`).
pub unsafe fn C_Decrypt(
    s: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    if too_long(s, len) {
        return end_with(CKR_DATA_LEN_RANGE, |o, n| {
            fwd!(C_Decrypt(s, data, len, o, n));
        });
    }
    fwd!(C_Decrypt(s, data, len, out, out_len))
}

/// AES-CBC input over `cbc_max` is refused (`CKR_DATA_LEN_RANGE`).
pub unsafe fn C_EncryptUpdate(
    s: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    if too_long(s, len) {
        return end_with(CKR_DATA_LEN_RANGE, |o, n| {
            fwd!(C_EncryptFinal(s, o, n));
        });
    }
    fwd!(C_EncryptUpdate(s, data, len, out, out_len))
}

/// AES-CBC input over `cbc_max` is refused (`CKR_DATA_LEN_RANGE`).
pub unsafe fn C_DecryptUpdate(
    s: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    if too_long(s, len) {
        return end_with(CKR_DATA_LEN_RANGE, |o, n| {
            fwd!(C_DecryptFinal(s, o, n));
        });
    }
    fwd!(C_DecryptUpdate(s, data, len, out, out_len))
}

/// Refuses hidden mechanisms.
pub unsafe fn C_WrapKey(
    s: CK_SESSION_HANDLE,
    m: *mut CK_MECHANISM,
    wk: CK_OBJECT_HANDLE,
    k: CK_OBJECT_HANDLE,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    if !m.is_null() && control().hide.contains(&(*m).mechanism) {
        return CKR_MECHANISM_INVALID;
    }
    fwd!(C_WrapKey(s, m, wk, k, out, out_len))
}

/// Refuses hidden mechanisms.
pub unsafe fn C_UnwrapKey(
    s: CK_SESSION_HANDLE,
    m: *mut CK_MECHANISM,
    uk: CK_OBJECT_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    t: *mut CK_ATTRIBUTE,
    n: CK_ULONG,
    out: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    if !m.is_null() && control().hide.contains(&(*m).mechanism) {
        return CKR_MECHANISM_INVALID;
    }
    fwd!(C_UnwrapKey(s, m, uk, data, len, t, n, out))
}
