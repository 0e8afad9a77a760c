//! Start-up step 5, `hsmd --check` only: the token store proved for the user
//! hsmd would run as, the library finalized, and one line on stdout.

use super::store::{store_user_of, this_user};
use super::LibraryGuard;
use crate::config::Config;
use crate::pkcs11::storage::{self, Check};
use crate::privilege;
use anyhow::{Context, Result};
use std::path::PathBuf;

/// Finishes `--check` once every slot is logged in: proves the token store
/// `store` (SoftHSMv2's configuration file and token directory, if any), as
/// root for the user hsmd would drop to, else as this process; finalizes the
/// library; prints what was proved.
///
/// As root, the user must exist to be checked for; when it does not,
/// `--check` says so instead of failing (a real start fails on it).
///
/// Errors: the token store is not readable and writable ("cannot start: ...").
pub fn check(
    token: LibraryGuard,
    config: &Config,
    store: Option<&(PathBuf, PathBuf)>,
    root: bool,
) -> Result<()> {
    let user = if root {
        privilege::resolve(&config.user, &config.group, &config.keep_groups)
            .map(|t| (store_user_of(&t), Check::ModeBits))
            .map_err(|e| format!("{e:#}"))
    } else {
        Ok((this_user(), Check::AsThisProcess))
    };
    let proof = match (store, user) {
        (None, _) => Ok(None),
        (Some(_), Err(why)) => Ok(Some(Err(why))),
        (Some((conf, dir)), Ok((user, check))) => storage::prove(conf, dir, &user, check)
            .map(|n| Some(Ok(n)))
            .map_err(|e| *e),
    };
    drop(token);
    match proof.context("cannot start")? {
        Some(Ok(_)) => {
            println!("hsmd: configuration, library, slots, logins and the token store are fine")
        }
        Some(Err(why)) => println!(
            "hsmd: configuration, library, slots and logins are fine; the token store was not checked ({why})"
        ),
        None => println!("hsmd: configuration, library, slots and logins are fine"),
    }
    Ok(())
}
