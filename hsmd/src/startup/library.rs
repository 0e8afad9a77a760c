//! Start-up step 3: the PKCS#11 library, opened and initialized, and the
//! guard that finalizes it on every way out (PKCS#11 v2.40 section 5.4).

use crate::config::Config;
use crate::notify;
use crate::pkcs11::library::{Library, LibraryError};
use crate::pkcs11::slot::OpenSlot;
use hsmd_protocol::LibraryInfo;

/// The initialized PKCS#11 library and the slots logged in on it that no
/// worker has taken yet.
///
/// Dropping it closes those slots' sessions, then calls `C_Finalize` (in that
/// order: some modules deadlock otherwise), whatever path start-up leaves by;
/// no caller finalizes by hand. Slots already handed to workers must be shut
/// down before it drops (`crate::pkcs11::slot::SlotHandle::shutdown`).
pub struct LibraryGuard {
    lib: Library,
    /// Slots opened and logged in, in configuration order, until their
    /// workers start.
    pub opened: Vec<OpenSlot>,
    /// False once [`LibraryGuard::skip_finalize`] was called.
    finalize: bool,
}

impl LibraryGuard {
    /// Raises the open-files limit for `max_connections`, then loads and
    /// initializes the configured library.
    ///
    /// Errors: the library is missing, not a PKCS#11 module, or `C_Initialize` failed.
    pub fn open(config: &Config) -> Result<Self, LibraryError> {
        notify::status("loading the PKCS#11 library");
        raise_nofile(config.max_connections);
        let lib = Library::open(&config.library, config.model.install_hint())?;
        Ok(Self {
            lib,
            opened: Vec::with_capacity(config.slots.len()),
            finalize: true,
        })
    }

    /// The library.
    pub fn library(&self) -> &Library {
        &self.lib
    }

    /// Leaves the library initialized when the guard drops: for when
    /// connections still hold the slots after the shutdown deadline.
    pub fn skip_finalize(&mut self) {
        self.finalize = false;
    }

    /// The library's `C_GetInfo`, as the hello reports it
    /// ([`Library::info`]).
    pub fn info(&self) -> LibraryInfo {
        self.lib.info()
    }
}

impl Drop for LibraryGuard {
    fn drop(&mut self) {
        self.opened.clear();
        if self.finalize {
            if let Err(e) = self.lib.clone().finalize() {
                tracing::warn!("C_Finalize failed: {e}");
            }
        }
    }
}

/// Raises the soft open-files limit to the hard one, so max_connections
/// cannot run hsmd out of descriptors before its own cap refuses peers.
fn raise_nofile(max_connections: usize) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if soft < hard {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
    let now = getrlimit(Resource::RLIMIT_NOFILE)
        .map(|l| l.0)
        .unwrap_or(soft);
    if now < max_connections as u64 + 64 {
        tracing::warn!("the open-files limit ({now}) is below max_connections ({max_connections}) + 64: lower max_connections or raise LimitNOFILE=");
    }
}
