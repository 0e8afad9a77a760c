//! A fault-injecting PKCS#11 module for hsmd's end-to-end tests.
//!
//! `C_GetFunctionList` (PKCS#11 v2.40 section 5.2) loads the real module named
//! by `PKCS11_FAULTS_MODULE` (SoftHSMv2 in the tests) and hands out a table of
//! forwarding functions ([`forward`]). Every call first reads the control file
//! named by `PKCS11_FAULTS_CONTROL` (`key = value` lines, changed by tests
//! while hsmd runs) and applies it:
//!
//! | key | effect |
//! |---|---|
//! | `profile = smartcardhsm` | `serialize`, `find_max = 16`, `cbc_max = 1024`, `pair_labels`, and hides what the card lacks (AES-GCM, AES-CBC-PAD, key wrap, ECDSA with SHA-2) |
//! | `pair_labels = 1` | `C_GenerateKeyPair` gives the public key the private template's `CKA_LABEL` and `CKA_ID`, ignoring the public template's, as sc-hsm-embedded V2.12 does on a SmartCard-HSM |
//! | `serialize = 1` | one call at a time, like sc-hsm-embedded |
//! | `delay_ms = N` | every session call takes N ms longer (a card command) |
//! | `hide = CKM_AES_GCM 0x1234` | mechanisms left out of `C_GetMechanismList`, refused by `C_GetMechanismInfo` and `C_*Init` |
//! | `find_max = N` | `C_FindObjects` returns at most N handles per call |
//! | `cbc_max = N` | `C_Encrypt`/`C_Decrypt`(`Update`) with `CKM_AES_CBC` refuse more than N bytes (`CKR_DATA_LEN_RANGE`) |
//! | `pin_tries = N` | a user-PIN retry counter of N: `CKF_USER_PIN_COUNT_LOW`/`FINAL_TRY`/`LOCKED` flags, `CKR_PIN_LOCKED` when none is left |
//! | `pin_left = N` | sets the tries left (applied whenever the value changes) |
//! | `removed = SLOT ...` | the token of SLOT is pulled: no `CKF_TOKEN_PRESENT`, `CKR_TOKEN_NOT_PRESENT` on slot calls, `CKR_DEVICE_REMOVED` on its sessions, which stay dead after it is put back |
//! | `fail = C_Name CKR_X N [tag]` | the next N calls of `C_Name` answer `CKR_X` without reaching the module |
//! | `device_error = TAG` | pcscd restarted: every call but `C_Initialize`/`C_Finalize`/`C_CloseSession`/`C_CloseAllSessions` answers `CKR_DEVICE_ERROR` until the next `C_Finalize` (a new TAG starts over) |
//!
//! Counters go to `PKCS11_FAULTS_COUNTERS` (default: control path + `.counters`)
//! as `name = value` lines: `logins` (every `C_Login`), `find_calls`,
//! `find_max_returned`, `max_overlap` (most calls in flight at once, counted
//! before `serialize`), `calls`, `finalizes`, and `finalize_open_sessions`
//! (sessions still open at a `C_Finalize`, summed).
//!
//! Test code, but it runs inside hsmd: every entry point catches panics and
//! answers `CKR_GENERAL_ERROR` instead of unwinding into the caller.

#![allow(non_snake_case)]

pub mod forward;
mod special;

use cryptoki_sys::*;
use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// Env var: path of the real module.
pub const ENV_MODULE: &str = "PKCS11_FAULTS_MODULE";
/// Env var: path of the control file.
pub const ENV_CONTROL: &str = "PKCS11_FAULTS_CONTROL";
/// Env var: path of the counter file.
pub const ENV_COUNTERS: &str = "PKCS11_FAULTS_COUNTERS";

/// What a call addresses (its first argument).
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// No slot or session.
    None,
    /// A slot ID.
    Slot(CK_SLOT_ID),
    /// A session handle.
    Session(CK_SESSION_HANDLE),
}

struct Real {
    _lib: libloading::Library,
    list: &'static CK_FUNCTION_LIST,
}

static REAL: OnceLock<Result<Real, String>> = OnceLock::new();

fn load_real() -> Result<Real, String> {
    let path = std::env::var_os(ENV_MODULE).ok_or(format!("{ENV_MODULE} is not set"))?;
    // SAFETY: loading a PKCS#11 module runs its initializers; that is the point.
    let lib = unsafe { libloading::Library::new(&path) }.map_err(|e| e.to_string())?;
    let mut list: CK_FUNCTION_LIST_PTR = std::ptr::null_mut();
    // SAFETY: C_GetFunctionList has this signature in every PKCS#11 module.
    let rv = unsafe {
        let get: libloading::Symbol<unsafe extern "C" fn(CK_FUNCTION_LIST_PTR_PTR) -> CK_RV> =
            lib.get(b"C_GetFunctionList\0").map_err(|e| e.to_string())?;
        get(&mut list)
    };
    if rv != CKR_OK || list.is_null() {
        return Err(format!("C_GetFunctionList of the real module: {rv:#x}"));
    }
    // SAFETY: the table lives as long as the library, which is never unloaded.
    let list = unsafe { &*list };
    Ok(Real { _lib: lib, list })
}

/// The real module's function table. Panics (caught by [`call`]) when it cannot be loaded.
pub(crate) fn real() -> &'static CK_FUNCTION_LIST {
    match REAL.get_or_init(load_real) {
        Ok(r) => r.list,
        Err(e) => panic!("pkcs11-faults: cannot load the real module: {e}"),
    }
}

/// PKCS#11 v2.40 section 5.2: hands out the forwarding table.
///
/// # Safety
/// `list` must be null or point to writable memory for one pointer.
#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionList(list: CK_FUNCTION_LIST_PTR_PTR) -> CK_RV {
    catch_unwind(|| {
        if list.is_null() {
            return CKR_ARGUMENTS_BAD;
        }
        if let Err(e) = REAL.get_or_init(load_real) {
            eprintln!("pkcs11-faults: {e}");
            return CKR_GENERAL_ERROR;
        }
        // SAFETY: checked non-null; callers never write through the table.
        unsafe { *list = &forward::TABLE as *const CK_FUNCTION_LIST as CK_FUNCTION_LIST_PTR };
        CKR_OK
    })
    .unwrap_or(CKR_GENERAL_ERROR)
}

/// The control file, parsed.
#[derive(Debug, Default, Clone)]
pub(crate) struct Control {
    pub serialize: bool,
    /// Public keys of new pairs take the private key's label and ID.
    pub pair_labels: bool,
    pub delay_ms: u64,
    pub hide: HashSet<CK_MECHANISM_TYPE>,
    pub find_max: Option<CK_ULONG>,
    pub cbc_max: Option<CK_ULONG>,
    pub pin_tries: Option<u32>,
    pub pin_left: Option<u32>,
    pub removed: HashSet<CK_SLOT_ID>,
    /// (whole value as key, function, rv, times)
    pub fails: Vec<(String, String, CK_RV, u32)>,
    /// `device_error` tag.
    pub device_error: Option<String>,
}

fn mechanism(name: &str) -> Option<CK_MECHANISM_TYPE> {
    Some(match name {
        "CKM_AES_GCM" => CKM_AES_GCM,
        "CKM_AES_CBC_PAD" => CKM_AES_CBC_PAD,
        "CKM_AES_KEY_WRAP" => CKM_AES_KEY_WRAP,
        "CKM_AES_KEY_WRAP_PAD" => CKM_AES_KEY_WRAP_PAD,
        "CKM_ECDSA_SHA224" => CKM_ECDSA_SHA224,
        "CKM_ECDSA_SHA256" => CKM_ECDSA_SHA256,
        "CKM_ECDSA_SHA384" => CKM_ECDSA_SHA384,
        "CKM_ECDSA_SHA512" => CKM_ECDSA_SHA512,
        other => return parse_num(other),
    })
}

fn parse_num(s: &str) -> Option<CK_ULONG> {
    match s.strip_prefix("0x") {
        Some(h) => CK_ULONG::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn ckr(name: &str) -> Option<CK_RV> {
    Some(match name {
        "CKR_SESSION_HANDLE_INVALID" => CKR_SESSION_HANDLE_INVALID,
        "CKR_SESSION_CLOSED" => CKR_SESSION_CLOSED,
        "CKR_DEVICE_ERROR" => CKR_DEVICE_ERROR,
        "CKR_DEVICE_REMOVED" => CKR_DEVICE_REMOVED,
        "CKR_TOKEN_NOT_PRESENT" => CKR_TOKEN_NOT_PRESENT,
        "CKR_USER_NOT_LOGGED_IN" => CKR_USER_NOT_LOGGED_IN,
        "CKR_GENERAL_ERROR" => CKR_GENERAL_ERROR,
        "CKR_PIN_INCORRECT" => CKR_PIN_INCORRECT,
        other => return parse_num(other),
    })
}

impl Control {
    fn parse(text: &str) -> Self {
        let mut c = Control::default();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let (k, v) = (k.trim(), v.trim());
            match k {
                "profile" if v == "smartcardhsm" => {
                    c.serialize = true;
                    c.pair_labels = true;
                    c.find_max.get_or_insert(16);
                    c.cbc_max.get_or_insert(1024);
                    c.hide.extend([
                        CKM_AES_GCM,
                        CKM_AES_CBC_PAD,
                        CKM_AES_KEY_WRAP,
                        CKM_AES_KEY_WRAP_PAD,
                        CKM_ECDSA_SHA224,
                        CKM_ECDSA_SHA256,
                        CKM_ECDSA_SHA384,
                        CKM_ECDSA_SHA512,
                    ]);
                }
                "serialize" => c.serialize = v == "1" || v == "true",
                "pair_labels" => c.pair_labels = v == "1" || v == "true",
                "delay_ms" => c.delay_ms = v.parse().unwrap_or(0),
                "hide" => c.hide.extend(v.split_whitespace().filter_map(mechanism)),
                "find_max" => c.find_max = parse_num(v),
                "cbc_max" => c.cbc_max = parse_num(v),
                "pin_tries" => c.pin_tries = v.parse().ok(),
                "pin_left" => c.pin_left = v.parse().ok(),
                "device_error" if !v.is_empty() => c.device_error = Some(v.to_owned()),
                "removed" => c.removed.extend(v.split_whitespace().filter_map(parse_num)),
                "fail" => {
                    let w: Vec<&str> = v.split_whitespace().collect();
                    if let (Some(f), Some(rv)) = (w.first(), w.get(1).and_then(|r| ckr(r))) {
                        let times = w.get(2).and_then(|t| t.parse().ok()).unwrap_or(1);
                        c.fails.push((v.to_owned(), (*f).to_owned(), rv, times));
                    }
                }
                _ => {}
            }
        }
        c
    }
}

/// Reads the control file (missing or unreadable: no faults).
pub(crate) fn control() -> Control {
    std::env::var_os(ENV_CONTROL)
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|t| Control::parse(&t))
        .unwrap_or_default()
}

/// Mutable state shared by all calls.
#[derive(Default)]
pub(crate) struct State {
    /// Open sessions and their slots.
    pub sessions: HashMap<CK_SESSION_HANDLE, CK_SLOT_ID>,
    /// Sessions of a pulled token: dead for good.
    pub dead: HashSet<CK_SESSION_HANDLE>,
    /// Slots whose removal was applied (real sessions closed).
    pub removed: HashSet<CK_SLOT_ID>,
    /// Sessions in an AES-CBC encrypt or decrypt operation.
    pub cbc: HashSet<CK_SESSION_HANDLE>,
    /// User-PIN tries left, when the counter is on.
    pub pin_left: Option<u32>,
    /// The `pin_left` control value last applied.
    pub pin_left_seen: Option<u32>,
    /// The `device_error` tag a `C_Finalize` cleared.
    pub device_error_cleared: Option<String>,
    /// Injected failures spent, by control value.
    pub fails_used: HashMap<String, u32>,
    /// Counters written to the counter file.
    pub counters: Counters,
}

/// What tests read back.
#[derive(Default, Debug, Clone, Copy)]
pub(crate) struct Counters {
    pub logins: u64,
    pub find_calls: u64,
    pub find_max_returned: u64,
    pub max_overlap: u64,
    pub calls: u64,
    pub finalizes: u64,
    pub finalize_open_sessions: u64,
}

static STATE: OnceLock<Mutex<State>> = OnceLock::new();
static SERIAL: Mutex<()> = Mutex::new(());
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn state() -> MutexGuard<'static, State> {
    STATE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Writes the counters (atomically, through a rename).
pub(crate) fn write_counters(c: &Counters) {
    let path = match std::env::var_os(ENV_COUNTERS) {
        Some(p) => PathBuf::from(p),
        None => match std::env::var_os(ENV_CONTROL) {
            Some(p) => {
                let mut p = p;
                p.push(".counters");
                PathBuf::from(p)
            }
            None => return,
        },
    };
    let text = format!(
        "logins = {}\nfind_calls = {}\nfind_max_returned = {}\nmax_overlap = {}\ncalls = {}\nfinalizes = {}\nfinalize_open_sessions = {}\n",
        c.logins, c.find_calls, c.find_max_returned, c.max_overlap, c.calls, c.finalizes, c.finalize_open_sessions
    );
    let mut tmp = path.clone().into_os_string();
    tmp.push(".tmp");
    if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path)) {
        eprintln!("pkcs11-faults: cannot write {}: {e}", path.display());
    }
}

struct InFlight;
impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs one forwarded call: counts overlap, serializes, applies pulled tokens,
/// injected failures and the delay, then `f`. Never unwinds.
pub(crate) fn call(name: &'static str, target: Target, f: impl FnOnce() -> CK_RV) -> CK_RV {
    catch_unwind(AssertUnwindSafe(|| guarded(name, target, f))).unwrap_or(CKR_GENERAL_ERROR)
}

fn guarded(name: &'static str, target: Target, f: impl FnOnce() -> CK_RV) -> CK_RV {
    let ctl = control();
    let now = IN_FLIGHT.fetch_add(1, Ordering::SeqCst) + 1;
    let _in_flight = InFlight;
    let _serial = ctl
        .serialize
        .then(|| SERIAL.lock().unwrap_or_else(|p| p.into_inner()));
    {
        let mut st = state();
        st.counters.calls += 1;
        if name == "C_Login" {
            // Counted before injected failures, which stand for the token's answers.
            st.counters.logins += 1;
        }
        st.counters.max_overlap = st.counters.max_overlap.max(now as u64);
        write_counters(&st.counters);
        // Pull tokens newly removed: their sessions die, the real login with them.
        let newly: Vec<CK_SLOT_ID> = ctl.removed.difference(&st.removed).copied().collect();
        for slot in newly {
            let gone: Vec<CK_SESSION_HANDLE> = st
                .sessions
                .iter()
                .filter(|(_, s)| **s == slot)
                .map(|(h, _)| *h)
                .collect();
            for h in gone {
                st.sessions.remove(&h);
                st.dead.insert(h);
            }
            if let Some(close_all) = real().C_CloseAllSessions {
                // SAFETY: forwarding to the real module with a plain slot ID.
                unsafe { close_all(slot) };
            }
        }
        st.removed = ctl.removed.clone();
        // The PIN counter.
        if ctl.pin_tries.is_some() {
            if ctl.pin_left != st.pin_left_seen {
                st.pin_left_seen = ctl.pin_left;
                st.pin_left = ctl.pin_left.or(ctl.pin_tries);
            }
            if st.pin_left.is_none() {
                st.pin_left = ctl.pin_tries;
            }
        } else {
            st.pin_left = None;
        }
        if name == "C_Finalize" {
            st.counters.finalizes += 1;
            st.counters.finalize_open_sessions += st.sessions.len() as u64;
            st.sessions.clear();
            st.device_error_cleared = ctl.device_error.clone();
            write_counters(&st.counters);
        } else if !matches!(
            name,
            "C_Initialize" | "C_CloseSession" | "C_CloseAllSessions"
        ) && ctl.device_error.is_some()
            && ctl.device_error != st.device_error_cleared
        {
            return CKR_DEVICE_ERROR;
        }
        for (key, func, rv, times) in &ctl.fails {
            if func == name {
                let used = st.fails_used.entry(key.clone()).or_insert(0);
                if *used < *times {
                    *used += 1;
                    return *rv;
                }
            }
        }
        match target {
            Target::Slot(s)
                if ctl.removed.contains(&s)
                    && !matches!(name, "C_GetSlotInfo" | "C_WaitForSlotEvent") =>
            {
                return CKR_TOKEN_NOT_PRESENT
            }
            Target::Session(h)
                if st.dead.contains(&h)
                    || st.sessions.get(&h).is_some_and(|s| ctl.removed.contains(s)) =>
            {
                return CKR_DEVICE_REMOVED
            }
            _ => {}
        }
    }
    if ctl.delay_ms > 0 && matches!(target, Target::Session(_)) {
        // Emulates a card command's duration (not test synchronization).
        std::thread::sleep(Duration::from_millis(ctl.delay_ms));
    }
    let rv = f();
    if let (Target::Session(h), "C_CloseSession", CKR_OK) = (target, name, rv) {
        state().sessions.remove(&h);
    }
    if let (Target::Slot(slot), "C_CloseAllSessions", CKR_OK) = (target, name, rv) {
        state().sessions.retain(|_, s| *s != slot);
    }
    rv
}
