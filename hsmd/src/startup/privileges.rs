//! Start-up step 7: PIN pages locked, every privilege dropped and checked
//! (`crate::privilege`), the log thread started under the dropped
//! credentials, and the token store proved as the user hsmd now is.

use super::store::this_user;
use super::LibraryGuard;
use crate::pkcs11::storage::{self, Check};
use crate::privilege::{self, Target};
use anyhow::{Context, Result};
use std::path::PathBuf;

/// Locks the PIN pages of the opened slots, drops to `target` (None when
/// hsmd did not start as root) and verifies every thread, starts the log
/// thread, logs the result, then proves the token store `store` as this
/// process. Call while hsmd has one thread: capabilities and no_new_privs are
/// per thread.
///
/// Errors: a privilege step fails or is not as expected, the log thread
/// cannot start, the token store is not this user's to use ("cannot start: ...").
pub fn drop_privileges(
    token: &LibraryGuard,
    target: Option<&Target>,
    store: Option<&(PathBuf, PathBuf)>,
) -> Result<()> {
    let pins_locked = crate::pin::lock_in_memory(token.opened.iter().map(|o| o.ctx().login.pin()));
    let report = privilege::drop(target)?;
    let st = privilege::verify(target, &report)?;
    // The first thread after the drop: it runs with the dropped credentials.
    crate::logging::buffer_stderr().context("cannot start the log thread")?;
    tracing::info!(
        "privileges dropped: Uid {:?} Gid {:?} Groups {:?} CapEff {:016x} CapPrm {:016x} CapBnd {:016x} NoNewPrivs {}; PIN pages locked: {}",
        st.uid,
        st.gid,
        st.groups,
        st.caps[2],
        st.caps[1],
        st.caps[3],
        u8::from(st.no_new_privs),
        match &pins_locked {
            Ok(n) => format!("{n}"),
            Err(e) => format!("no ({e})"),
        }
    );
    // As the user hsmd now runs as: the token's files must be its to use.
    if let Some((conf, dir)) = store {
        let user = this_user();
        match storage::prove(conf, dir, &user, Check::AsThisProcess) {
            Ok(n) => tracing::info!(
                "token store {} ({n} entries) readable and writable by {}",
                dir.display(),
                user.name
            ),
            Err(e) => return Err(anyhow::Error::new(*e).context("cannot start")),
        }
    }
    Ok(())
}
