//! Who is on the other end: `SO_PEERCRED` (unix(7)) mapped to a user name, and
//! the rules of docs/protocol.md "Identities and authorization": who may connect,
//! who may act for others (`as_user`), who may create and destroy keys.

use crate::config::{Admins, ClientRule};
use hsmd_protocol::{ErrorBody, ErrorCode};
use nix::unistd::{getgrouplist, Gid, Group, Uid, User};
use std::ffi::CString;

/// A connected, admitted peer.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Peer uid from `SO_PEERCRED`.
    pub uid: u32,
    /// Peer pid from `SO_PEERCRED`, if known.
    pub pid: Option<i32>,
    /// Unix user name (or the uid in decimal when it has none).
    pub name: String,
    /// Listed in `frontends`: may send `as_user`.
    pub is_frontend: bool,
}

/// The access rules.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `clients`.
    pub clients: Vec<ClientRule>,
    /// `frontends`.
    pub frontends: Vec<String>,
    /// `hsm_admin`.
    pub admins: Admins,
}

fn in_group(name: &str, gid: u32, group: &str) -> bool {
    let Ok(Some(g)) = Group::from_name(group) else {
        return false;
    };
    if g.gid.as_raw() == gid || g.mem.iter().any(|m| m == name) {
        return true;
    }
    CString::new(name)
        .ok()
        .and_then(|c| getgrouplist(&c, Gid::from_raw(gid)).ok())
        .is_some_and(|groups| groups.contains(&g.gid))
}

impl Policy {
    /// `clients` and `frontends` entries that name no unix user or group on
    /// this host (typos), for a start-up warning.
    pub fn unknown_entries(&self) -> Vec<String> {
        let user_missing = |u: &str| !matches!(User::from_name(u), Ok(Some(_)));
        let mut out: Vec<String> = self
            .clients
            .iter()
            .filter(|r| match r {
                ClientRule::User(u) => user_missing(u),
                ClientRule::Group(g) => !matches!(Group::from_name(g), Ok(Some(_))),
            })
            .map(|r| match r {
                ClientRule::User(u) => format!("clients: user {u:?}"),
                ClientRule::Group(g) => format!("clients: group \"@{g}\""),
            })
            .collect();
        out.extend(
            self.frontends
                .iter()
                .filter(|f| user_missing(f))
                .map(|f| format!("frontends: user {f:?}")),
        );
        out
    }

    /// Decides whether the peer `uid`/`gid` may connect. Blocking (name
    /// service lookups): call from a blocking thread.
    ///
    /// Errors: the `unauthorized` body to send before closing.
    pub fn admit(&self, uid: u32, gid: u32, pid: Option<i32>) -> Result<Peer, ErrorBody> {
        // A failed lookup (e.g. no file descriptor left for NSS) must not turn
        // a listed user into an unlisted one, nor root into "0".
        let name = match User::from_uid(Uid::from_raw(uid)) {
            Ok(Some(u)) => u.name,
            Ok(None) => uid.to_string(),
            Err(e) => {
                return Err(ErrorBody::new(
                    ErrorCode::Busy,
                    format!("hsmd cannot look up uid {uid} right now ({e}); retry later"),
                ))
            }
        };
        let is_frontend = self.frontends.contains(&name);
        let allowed = uid == 0
            || is_frontend
            || self.clients.iter().any(|rule| match rule {
                ClientRule::User(u) => *u == name,
                ClientRule::Group(g) => in_group(&name, gid, g),
            });
        if !allowed {
            return Err(ErrorBody::new(
                ErrorCode::Unauthorized,
                format!("unix user {name} (uid {uid}) may not use hsmd: it is not root and not listed in clients or frontends"),
            ));
        }
        Ok(Peer {
            uid,
            pid,
            name,
            is_frontend,
        })
    }

    /// The acting identity of a request: `as_user` for a frontend, else the
    /// peer's user name.
    ///
    /// Errors: `forbidden` when a non-frontend names another user, or
    /// `bad_request` for an empty `as_user`.
    pub fn acting(&self, peer: &Peer, as_user: Option<&str>) -> Result<String, ErrorBody> {
        match as_user {
            None => Ok(peer.name.clone()),
            Some("") => Err(ErrorBody::bad_request("as_user: must not be empty")),
            Some(u) if u == peer.name => Ok(peer.name.clone()),
            Some(u) if peer.is_frontend => Ok(u.to_owned()),
            Some(u) => {
                let shown: String = u.chars().take(64).collect();
                Err(ErrorBody::new(
                    ErrorCode::Forbidden,
                    format!(
                        "{} is not a frontend and may not act as {shown:?}: leave as_user out or set it to {:?}",
                        peer.name, peer.name
                    ),
                ))
            }
        }
    }

    /// Ok when `identity` is an hsm_admin, else `forbidden` saying who is.
    pub fn require_admin(&self, identity: &str, what: &str) -> Result<(), ErrorBody> {
        if self.admins.contains(identity) {
            return Ok(());
        }
        Err(ErrorBody::new(
            ErrorCode::Forbidden,
            format!(
                "only an hsm_admin may {what}; {identity} is not one (hsm_admin = {})",
                self.admins.names.join(", ")
            ),
        ))
    }
}
