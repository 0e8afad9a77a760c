//! Where slot PINs come from, highest precedence first:
//! 1. `--hsm-password` flags (visible in `ps`: for tests only),
//! 2. the environment variable `HSMD_HSM_PASSWORD`, comma-separated in slot order,
//! 3. the systemd credential `$CREDENTIALS_DIRECTORY/hsm_password`, one line per slot,
//! 4. `hsm_password` in the configuration file.
//!
//! The first source that has any PIN supplies all of them. `""` is a null PIN
//! (protected authentication path), `"<NO_LOGIN>"` means no login
//! ([`super::SlotPin::from_entry`]).

use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Environment variable holding comma-separated PINs.
pub const ENV_VAR: &str = "HSMD_HSM_PASSWORD";
/// Name of the systemd credential (`LoadCredential=hsm_password:...`).
pub const CREDENTIAL: &str = "hsm_password";

/// A PIN source that is there but cannot be used (the credential file is
/// unreadable, empty or not UTF-8); the message names it and what to do.
/// The configuration reports it as `ConfigError::Invalid`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PinSourceError(String);

/// The source the PINs were taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinSource {
    /// `--hsm-password`.
    Flags,
    /// `HSMD_HSM_PASSWORD`.
    Environment,
    /// `$CREDENTIALS_DIRECTORY/hsm_password`.
    Credential,
    /// `hsm_password` in the file.
    File,
    /// No source had any.
    None,
}

impl fmt::Display for PinSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Flags => "--hsm-password",
            Self::Environment => "the environment variable HSMD_HSM_PASSWORD",
            Self::Credential => "the systemd credential hsm_password",
            Self::File => "hsm_password in the configuration file",
            Self::None => {
                "no source (no --hsm-password, HSMD_HSM_PASSWORD, credential or hsm_password)"
            }
        })
    }
}

/// PINs found outside flags and file, read once at start-up.
#[derive(Default)]
pub struct PinSources {
    /// Value of `HSMD_HSM_PASSWORD`.
    pub env: Option<SecretString>,
    /// `$CREDENTIALS_DIRECTORY`.
    pub credentials_dir: Option<PathBuf>,
}

/// Removes `name` from the environment and overwrites every `name=value`
/// string it had with zeros in place.
///
/// `unsetenv(3)` only takes the pointer out of `environ`; the string stays
/// where it was, and for the environment hsmd was started with that is the
/// block at the top of the stack that the kernel shows as
/// `/proc/<pid>/environ` (proc(5)) for the life of the process.
///
/// Must run before any other thread exists (it reads and changes `environ`).
fn scrub_environ(name: &str) {
    use zeroize::Zeroize;
    extern "C" {
        static mut environ: *mut *mut std::ffi::c_char;
    }
    let prefix = format!("{name}=");
    let mut found: Vec<(*mut std::ffi::c_char, usize)> = Vec::new();
    // SAFETY: single-threaded (see above); `environ` is a NULL-terminated
    // array of NUL-terminated strings (POSIX), read before it is changed.
    unsafe {
        let mut entry = environ;
        if !entry.is_null() {
            while !(*entry).is_null() {
                let text = std::ffi::CStr::from_ptr(*entry).to_bytes();
                if text.starts_with(prefix.as_bytes()) {
                    found.push((*entry, text.len()));
                }
                entry = entry.add(1);
            }
        }
        std::env::remove_var(name);
        // No pointer to these strings is left in `environ`: nobody reads them.
        for (ptr, len) in found {
            std::slice::from_raw_parts_mut(ptr.cast::<u8>(), len).zeroize();
        }
    }
}

impl PinSources {
    /// Reads `HSMD_HSM_PASSWORD` and removes it from the environment (so child
    /// processes and later readers of `std::env` do not see it), overwriting
    /// its bytes where the kernel placed them (so `/proc/<pid>/environ` does
    /// not show it either), and notes `$CREDENTIALS_DIRECTORY`. Call before
    /// any thread is started.
    pub fn from_process_env() -> Self {
        let env = std::env::var(ENV_VAR).ok().map(SecretString::from);
        if env.is_some() {
            scrub_environ(ENV_VAR);
        }
        Self {
            env,
            credentials_dir: std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
        }
    }

    /// Chooses the PIN list from the highest source that has one.
    pub fn pick(
        self,
        flags: Vec<SecretString>,
        file: Option<Vec<SecretString>>,
    ) -> Result<(Vec<SecretString>, PinSource), PinSourceError> {
        if !flags.is_empty() {
            return Ok((flags, PinSource::Flags));
        }
        if let Some(env) = self.env {
            let list = env
                .expose_secret()
                .split(',')
                .map(|p| SecretString::from(p.to_owned()))
                .collect();
            return Ok((list, PinSource::Environment));
        }
        if let Some(dir) = self.credentials_dir {
            let path = dir.join(CREDENTIAL);
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let bytes = Zeroizing::new(bytes);
                    let text = std::str::from_utf8(&bytes).map_err(|_| {
                        PinSourceError(format!(
                            "the credential {} is not UTF-8 text",
                            path.display()
                        ))
                    })?;
                    if text.is_empty() {
                        return Err(PinSourceError(format!(
                            "the credential {} is empty: write one PIN per line, in hsm_slot order",
                            path.display()
                        )));
                    }
                    let list = text
                        .strip_suffix('\n')
                        .unwrap_or(text)
                        .split('\n')
                        .map(|l| SecretString::from(l.strip_suffix('\r').unwrap_or(l).to_owned()))
                        .collect();
                    return Ok((list, PinSource::Credential));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(PinSourceError(format!(
                        "cannot read the credential {}: {e}",
                        path.display()
                    )))
                }
            }
        }
        match file {
            Some(list) => Ok((list, PinSource::File)),
            None => Ok((Vec::new(), PinSource::None)),
        }
    }
}
