//! Start-up step 4: every configured slot found (by ID, serial or label) and
//! logged in, on the calling thread, so privileges can drop before any
//! worker thread starts. The PIN safety rules are the engine's
//! (`crate::pkcs11::login`); the PIN itself stays in `crate::pin`.

use super::load::Loaded;
use super::LibraryGuard;
use crate::config::{SlotConfig, SlotRef};
use crate::notify;
use crate::pkcs11::slot::OpenSlot;
use anyhow::{bail, Result};

/// Opens and logs in to each of `slots` in order, adding it to `token.opened`.
///
/// Errors ("cannot start: ..."): a slot or token that is not there, one
/// slot configured twice (by two names), a refused or locked PIN (naming
/// where the PINs came from), PKCS#11 failures.
pub fn log_in(token: &mut LibraryGuard, slots: Vec<SlotConfig>, loaded: &Loaded) -> Result<()> {
    for sc in slots {
        let id = token
            .library()
            .resolve(&sc.slot)
            .map_err(|e| anyhow::Error::new(e).context("cannot start"))?;
        if !matches!(sc.slot, SlotRef::Id(_)) {
            tracing::info!(slot = id, "{} is in slot {id}", sc.slot);
        }
        if token.opened.iter().any(|o: &OpenSlot| o.ctx().id == id) {
            bail!(
                "cannot start: {} is in slot {id}, which is configured twice",
                sc.slot
            );
        }
        notify::status(&format!("logging in to slot {id}"));
        match OpenSlot::open(token.library(), id, sc.pin, loaded.profile) {
            Ok(o) => token.opened.push(o),
            Err(e) => {
                let hint = if e.pin_problem {
                    format!(" (the PINs came from {})", loaded.config.pin_source)
                } else {
                    String::new()
                };
                return Err(anyhow::Error::new(e).context(format!("cannot start{hint}")));
            }
        }
    }
    Ok(())
}
