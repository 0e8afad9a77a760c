//! The slot PINs, in one room from the moment they are read to the login.
//!
//! - [`sources`] reads them (`--hsm-password`, `HSMD_HSM_PASSWORD`, the
//!   systemd credential `hsm_password`, `hsm_password` in the file, in that
//!   order of precedence) and scrubs `HSMD_HSM_PASSWORD` from the process.
//! - [`SlotPin`] holds one slot's PIN, zeroized on drop (`secrecy`), never in
//!   `Debug` or a message.
//! - [`lock_in_memory`] locks the PIN pages with mlock(2) before hsmd drops
//!   its privileges (docs/design.md "hsmd").
//! - [`SlotPin::login`] hands the PIN to `C_Login` (PKCS#11 v2.40 section 5.6).
//!
//! Why a room of its own: the PIN's bytes are exposed nowhere else. The
//! configuration (`config/`) merges flags and file into [`SlotPin`]s through
//! [`sources`]; the engine (`pkcs11/login.rs`) decides whether to log in (the
//! token's PIN flags; a PIN refused once is never tried again) and then calls
//! [`SlotPin::login`]; start-up locks the pages. None of them sees the secret.
//! This room imports nothing from the rest of hsmd, so both the configuration
//! and the engine depend on it, and the engine on the configuration, never
//! the other way round.

pub mod sources;

use cryptoki::session::{Session, UserType};
use secrecy::{ExposeSecret, SecretString};

/// The password value that means "do not log in".
pub const NO_LOGIN: &str = "<NO_LOGIN>";

/// How hsmd authenticates to a slot (`hsm_password` entry).
pub enum SlotPin {
    /// `"<NO_LOGIN>"`: open sessions without logging in (public objects only).
    NoLogin,
    /// `""`: `C_Login` with a null PIN (protected authentication path, PIN pad).
    Null,
    /// A user PIN.
    Pin(SecretString),
}

impl std::fmt::Debug for SlotPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NoLogin => "NoLogin",
            Self::Null => "NullPin",
            Self::Pin(_) => "Pin([redacted])",
        })
    }
}

impl SlotPin {
    /// Interprets one password entry: `"<NO_LOGIN>"` (exactly) is no login,
    /// `""` the null PIN, anything else a user PIN.
    pub fn from_entry(pw: SecretString) -> Self {
        match pw.expose_secret() {
            NO_LOGIN => Self::NoLogin,
            "" => Self::Null,
            _ => Self::Pin(pw),
        }
    }

    /// True for `"<NO_LOGIN>"`.
    pub fn is_no_login(&self) -> bool {
        matches!(self, Self::NoLogin)
    }

    /// `C_Login` as the user (`CKU_USER`) on `session`: with the PIN, with a
    /// null PIN for [`SlotPin::Null`], and no call at all for
    /// [`SlotPin::NoLogin`]. PKCS#11 v2.40 section 5.6.
    ///
    /// Errors: the token's answer, unchanged (the caller reads the `CKR_*`).
    pub fn login(&self, session: &Session) -> Result<(), cryptoki::error::Error> {
        match self {
            Self::NoLogin => Ok(()),
            Self::Null => session.login(UserType::User, None),
            Self::Pin(pin) => session.login(UserType::User, Some(pin)),
        }
    }

    /// The PIN's bytes, for locking their pages (never for logs).
    fn bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Pin(p) => Some(p.expose_secret().as_bytes()),
            _ => None,
        }
    }
}

/// Locks the pages of every user PIN in `pins` in memory with mlock(2), so
/// they are never written to swap. Call before dropping privileges (an
/// unprivileged process may lock little or nothing, `RLIMIT_MEMLOCK`).
///
/// Returns how many PINs were locked; errors: why not (the first mlock that
/// failed), which start-up logs rather than refusing to start.
pub fn lock_in_memory<'a>(pins: impl IntoIterator<Item = &'a SlotPin>) -> Result<usize, String> {
    let mut locked = 0;
    for pin in pins
        .into_iter()
        .filter_map(SlotPin::bytes)
        .filter(|p| !p.is_empty())
    {
        let ptr = std::ptr::NonNull::new(pin.as_ptr() as *mut std::ffi::c_void)
            .ok_or("null PIN buffer")?;
        // SAFETY: the range is a live allocation owned by the slot's login
        // state for the life of the process; mlock does not touch its contents.
        unsafe { nix::sys::mman::mlock(ptr, pin.len()) }.map_err(|e| format!("mlock: {e}"))?;
        locked += 1;
    }
    Ok(locked)
}
