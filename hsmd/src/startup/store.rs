//! The users the token store is proved for (SoftHSMv2's token directory,
//! `crate::pkcs11::storage`): by `--check` and after the privilege drop.

use crate::pkcs11::storage::StoreUser;
use crate::privilege::Target;

/// The user this process runs as.
pub fn this_user() -> StoreUser {
    use nix::unistd::{getgid, getgroups, getuid, User};
    let uid = getuid();
    let mut gids = vec![getgid().as_raw()];
    gids.extend(getgroups().unwrap_or_default().iter().map(|g| g.as_raw()));
    StoreUser {
        name: User::from_uid(uid)
            .ok()
            .flatten()
            .map_or_else(|| uid.to_string(), |u| u.name),
        uid: uid.as_raw(),
        gids,
    }
}

/// The user hsmd drops to, with its group and kept groups.
pub fn store_user_of(t: &Target) -> StoreUser {
    let mut gids = vec![t.group.1.as_raw()];
    gids.extend(t.keep.iter().map(|(_, g)| g.as_raw()));
    StoreUser {
        name: t.user.0.clone(),
        uid: t.user.1.as_raw(),
        gids,
    }
}
