//! The listening socket: bound at `socket_path` (parent created, mode and
//! group applied, a stale file replaced) or inherited from systemd socket
//! activation (`LISTEN_FDS`, sd_listen_fds(3)).

use crate::config::SocketConfig;
use anyhow::{bail, Context, Result};
use nix::sys::stat::{umask, Mode};
use nix::unistd::{chown, Group};
use std::os::fd::FromRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

/// First file descriptor passed by systemd.
const SD_LISTEN_FDS_START: i32 = 3;

/// The listening socket (a std listener: it is opened before the async
/// runtime and before privileges are dropped) and whether hsmd owns its file.
pub struct Listener {
    /// The socket.
    pub listener: UnixListener,
    /// The path hsmd created (removed on exit); None when inherited.
    pub owned_path: Option<PathBuf>,
}

/// Takes the socket systemd passed, if `LISTEN_PID` is this process and
/// `LISTEN_FDS` is at least 1. Clears the variables either way.
fn inherited() -> Result<Option<UnixListener>> {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let fds = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok())
        .unwrap_or(0);
    // SAFETY: called at start-up before other threads read the environment.
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    if !pid_ok || fds < 1 {
        return Ok(None);
    }
    if fds > 1 {
        bail!("systemd passed {fds} sockets; hsmd.socket must have exactly one ListenStream=");
    }
    // SAFETY: systemd guarantees fd 3 is an open listening socket owned by us.
    let std_listener = unsafe { UnixListener::from_raw_fd(SD_LISTEN_FDS_START) };
    std_listener
        .set_nonblocking(true)
        .context("cannot make the inherited socket non-blocking")?;
    Ok(Some(std_listener))
}

fn remove_stale(path: &Path) -> Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        bail!(
            "{} exists and is not a socket; remove it or choose another socket_path",
            path.display()
        );
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        bail!(
            "another process is already serving {}; stop it or choose another socket_path",
            path.display()
        );
    }
    std::fs::remove_file(path)
        .with_context(|| format!("cannot remove the stale socket {}", path.display()))
}

/// Opens the socket: inherited from systemd, else bound at `cfg.path`. A
/// socket directory hsmd creates is given to `owner` (the user hsmd will
/// become), so that it can remove its socket on exit.
pub fn open(
    cfg: &SocketConfig,
    owner: Option<(nix::unistd::Uid, nix::unistd::Gid)>,
) -> Result<Listener> {
    if let Some(listener) = inherited()? {
        return Ok(Listener {
            listener,
            owned_path: None,
        });
    }
    let path = &cfg.path;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            std::fs::create_dir(parent).with_context(|| {
                format!("cannot create the socket directory {}", parent.display())
            })?;
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("cannot set the mode of {}", parent.display()))?;
            if let Some((uid, gid)) = owner {
                chown(parent, Some(uid), Some(gid)).with_context(|| {
                    format!("cannot give {} to the hsmd user", parent.display())
                })?;
            }
        }
    }
    remove_stale(path)?;
    // Create the socket file with no more than the configured bits from the start.
    let old = umask(Mode::from_bits_truncate(0o777 & !cfg.mode));
    let bound = UnixListener::bind(path);
    umask(old);
    let listener = bound.with_context(|| format!("cannot bind the socket {}", path.display()))?;
    listener
        .set_nonblocking(true)
        .context("cannot make the socket non-blocking")?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(cfg.mode))
        .with_context(|| format!("cannot set mode {:o} on {}", cfg.mode, path.display()))?;
    if let Some(group) = &cfg.group {
        let g = Group::from_name(group)
            .with_context(|| format!("cannot look up socket_group {group:?}"))?
            .with_context(|| format!("socket_group {group:?} is not a unix group on this host"))?;
        chown(path, None, Some(g.gid))
            .with_context(|| format!("cannot give {} to group {group}", path.display()))?;
    }
    Ok(Listener {
        listener,
        owned_path: Some(path.clone()),
    })
}
