//! Proof that the user hsmd runs as can read and write the token's storage.
//!
//! SoftHSMv2 keeps its tokens as files under `directories.tokendir` of its
//! configuration (`SOFTHSM2_CONF`, else `/etc/softhsm/softhsm2.conf`). When
//! they belong to another user than the one hsmd drops to, the token still
//! logs in (as root, before the drop), but afterwards lists no key and every
//! create fails with `CKR_GENERAL_ERROR`. So, for SoftHSMv2, hsmd checks the
//! token directory and everything in it: directories must be readable,
//! writable and searchable, files readable and writable, by that user.
//! Tokens without a file store (the SmartCard-HSM) are reached through
//! their sessions, which hsmd opens and logs in before it serves.

use crate::config::Model;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// SoftHSMv2's configuration file when `SOFTHSM2_CONF` is not set.
pub const SOFTHSM2_DEFAULT_CONF: &str = "/etc/softhsm/softhsm2.conf";

/// Most entries of the token store looked at (a bound, not a limit any
/// real store reaches).
const MAX_ENTRIES: usize = 100_000;

/// Who must be able to use the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUser {
    /// User name (or uid in decimal).
    pub name: String,
    /// uid.
    pub uid: u32,
    /// Primary and supplementary gids.
    pub gids: Vec<u32>,
}

/// How access is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// `access(2)` as the process itself (after the privilege drop, the
    /// user hsmd runs as): what the kernel would allow, ACLs included.
    AsThisProcess,
    /// The permission bits for [`StoreUser`] (`hsmd --check` as root, for
    /// the user hsmd would drop to).
    ModeBits,
}

/// The token store cannot be used by hsmd's user (one sentence).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An entry lacks a permission.
    #[error("the SoftHSMv2 token store {store} (directories.tokendir in {conf}) is not readable and writable by hsmd's user {user} (uid {uid}): {path} belongs to {owner} with mode {mode:04o} ({why}); give the store to that user (chown -R {user}: {store}) or run hsmd as its owner (user / group in hsmd.toml)")]
    Denied {
        /// The token directory.
        store: PathBuf,
        /// The SoftHSMv2 configuration file.
        conf: PathBuf,
        /// The user.
        user: String,
        /// Its uid.
        uid: u32,
        /// The first entry that is denied.
        path: PathBuf,
        /// Its owner as `user:group` (names, else numbers).
        owner: String,
        /// Its permission bits.
        mode: u32,
        /// What was refused: the `access(2)` error, or the permission bits.
        why: String,
    },
    /// The store or an entry cannot be examined.
    #[error("cannot examine the SoftHSMv2 token store {store} (directories.tokendir in {conf}): {path}: {reason}")]
    Unreadable {
        /// The token directory.
        store: PathBuf,
        /// The SoftHSMv2 configuration file.
        conf: PathBuf,
        /// The entry.
        path: PathBuf,
        /// Why.
        reason: std::io::Error,
    },
}

/// The SoftHSMv2 configuration file and its token directory, when `library`
/// of `model` is SoftHSMv2 and its configuration names one.
pub fn softhsm_store(model: Model, library: &Path) -> Option<(PathBuf, PathBuf)> {
    let is_softhsm = model == Model::Softhsm2
        || library
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains("softhsm"));
    if !is_softhsm {
        return None;
    }
    let conf = std::env::var_os("SOFTHSM2_CONF")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(SOFTHSM2_DEFAULT_CONF));
    let text = std::fs::read_to_string(&conf).ok()?;
    let dir = text.lines().find_map(|line| {
        let line = line.trim();
        let (key, value) = line.split_once('=')?;
        (key.trim() == "directories.tokendir").then(|| PathBuf::from(value.trim()))
    })?;
    Some((conf, dir))
}

/// Checks that `user` can read and write everything in the SoftHSMv2 token
/// directory `store` (named in `conf`) by `check`; returns how many entries
/// were looked at.
///
/// Errors (boxed): [`StorageError::Denied`] naming the first entry `user` cannot
/// use, its owner and mode; [`StorageError::Unreadable`] when an entry
/// cannot be examined at all.
pub fn prove(
    conf: &Path,
    store: &Path,
    user: &StoreUser,
    check: Check,
) -> Result<usize, Box<StorageError>> {
    let unreadable = |path: &Path, reason| {
        Box::new(StorageError::Unreadable {
            store: store.to_owned(),
            conf: conf.to_owned(),
            path: path.to_owned(),
            reason,
        })
    };
    let mut pending = vec![store.to_owned()];
    let mut seen = 0;
    while let Some(path) = pending.pop() {
        seen += 1;
        if seen > MAX_ENTRIES {
            break;
        }
        let meta = std::fs::symlink_metadata(&path).map_err(|e| unreadable(&path, e))?;
        if meta.file_type().is_symlink() {
            continue;
        }
        let dir = meta.is_dir();
        if let Err(why) = allowed(&path, &meta, dir, user, check) {
            return Err(Box::new(StorageError::Denied {
                why,
                store: store.to_owned(),
                conf: conf.to_owned(),
                user: user.name.clone(),
                uid: user.uid,
                path,
                owner: owner_of(&meta),
                mode: meta.mode() & 0o7777,
            }));
        }
        if dir {
            for entry in std::fs::read_dir(&path).map_err(|e| unreadable(&path, e))? {
                pending.push(entry.map_err(|e| unreadable(&path, e))?.path());
            }
        }
    }
    Ok(seen)
}

/// Read and write (and search, for a directory) for `user`, or what refuses it.
fn allowed(
    path: &Path,
    meta: &std::fs::Metadata,
    dir: bool,
    user: &StoreUser,
    check: Check,
) -> Result<(), String> {
    let what = if dir {
        "read, write and search"
    } else {
        "read and write"
    };
    match check {
        Check::AsThisProcess => {
            use nix::unistd::{access, AccessFlags};
            let mut want = AccessFlags::R_OK | AccessFlags::W_OK;
            if dir {
                want |= AccessFlags::X_OK;
            }
            access(path, want).map_err(|e| format!("{what}: {}", e.desc()))
        }
        Check::ModeBits => {
            if user.uid == 0 {
                return Ok(());
            }
            let need = if dir { 0o7 } else { 0o6 };
            let mode = meta.mode();
            let bits = if meta.uid() == user.uid {
                (mode >> 6) & 0o7
            } else if user.gids.contains(&meta.gid()) {
                (mode >> 3) & 0o7
            } else {
                mode & 0o7
            };
            if bits & need == need {
                Ok(())
            } else {
                Err(format!("the permission bits do not allow {what}"))
            }
        }
    }
}

fn owner_of(meta: &std::fs::Metadata) -> String {
    let user = nix::unistd::User::from_uid(meta.uid().into())
        .ok()
        .flatten()
        .map_or_else(|| meta.uid().to_string(), |u| u.name);
    let group = nix::unistd::Group::from_gid(meta.gid().into())
        .ok()
        .flatten()
        .map_or_else(|| meta.gid().to_string(), |g| g.name);
    format!("{user}:{group}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn user(uid: u32, gids: &[u32]) -> StoreUser {
        StoreUser {
            name: format!("u{uid}"),
            uid,
            gids: gids.to_vec(),
        }
    }

    #[test]
    fn mode_bits_decide_for_another_user() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("tokens");
        let token = store.join("t1");
        std::fs::create_dir_all(&token).expect("dirs");
        std::fs::write(token.join("token.object"), b"x").expect("file");
        let meta = std::fs::metadata(&store).expect("meta");
        let (owner, group) = (meta.uid(), meta.gid());
        let conf = Path::new("/x/softhsm2.conf");
        // The owner may; root may.
        assert_eq!(
            prove(conf, &store, &user(owner, &[]), Check::ModeBits).expect("owner"),
            3
        );
        prove(conf, &store, &user(0, &[]), Check::ModeBits).expect("root");
        // Another user may not, until the group may.
        let other = user(owner + 4242, &[group]);
        std::fs::set_permissions(token.join("token.object"), PermissionsExt::from_mode(0o600))
            .expect("chmod");
        for d in [&store, &token] {
            std::fs::set_permissions(d, PermissionsExt::from_mode(0o770)).expect("chmod");
        }
        let e = prove(conf, &store, &other, Check::ModeBits)
            .expect_err("other")
            .to_string();
        assert!(
            e.contains("token.object belongs to") && e.contains("mode 0600"),
            "{e}"
        );
        assert!(
            e.contains(&format!("chown -R u{}: {}", owner + 4242, store.display())),
            "{e}"
        );
        std::fs::set_permissions(token.join("token.object"), PermissionsExt::from_mode(0o660))
            .expect("chmod");
        prove(conf, &store, &other, Check::ModeBits).expect("group");
    }

    #[test]
    fn the_store_is_read_from_the_softhsm_configuration() {
        assert_eq!(
            softhsm_store(
                Model::Smartcardhsm,
                Path::new("/usr/local/lib/libsc-hsm-pkcs11.so")
            ),
            None
        );
    }
}
