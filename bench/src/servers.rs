//! The bench's token, hsmd and kms-frontend, made, started and stopped by
//! the end-to-end harness (hsmd-e2e: `tests/src/lib.rs`,
//! `tests/src/frontend.rs`) with the bench's settings: the release binaries
//! beside this program, `sessions_per_slot`, `HSMD_LOG`, the connection
//! limit, dropping to `nobody` when root, each server's log in a file of
//! the bench directory (a run logs more than memory should hold).

use anyhow::{Context, Result};
use hsmd_e2e::{hsmd_config, Daemon, Frontend, HsmdConfig, Launch, TestUser, Token};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use hsmd_e2e::PIN;

/// How long a server may take to stop after SIGTERM (then SIGKILL).
const STOP_TIMEOUT: std::time::Duration = hsmd_e2e::START_TIMEOUT;

/// The unix user hsmd drops to after logging in when the bench runs as
/// root (as it drops to `hsmd` in production), and its primary group's
/// name; `None` when the bench does not run as root.
fn daemon_user() -> Result<Option<(TestUser, String)>> {
    use nix::unistd::{geteuid, Group, User};
    if !geteuid().is_root() {
        return Ok(None);
    }
    let user = User::from_name("nobody")?.context("no user nobody to run hsmd as")?;
    let group = Group::from_gid(user.gid)?.context("nobody's primary group has no name")?;
    let user = TestUser {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
    };
    Ok(Some((user, group.name)))
}

/// A fresh SoftHSMv2 token labelled `label` with the harness's PIN, in a
/// directory given to `nobody` when the bench runs as root.
pub fn token(label: &str) -> Result<Token> {
    let owner = daemon_user()?.map(|(user, _)| user);
    Ok(Token::try_new(label, owner)?)
}

/// `frontends = ["<the bench's unix user>"]`: the kms-frontend the bench
/// starts runs as the bench's user and acts for its KMS user (`as_user`).
fn frontends() -> Result<String> {
    use nix::unistd::{geteuid, User};
    let me = User::from_uid(geteuid())?.context("the bench's uid has no user name")?;
    Ok(format!("frontends = [\"{}\"]\n", me.name))
}

/// What the bench configures in hsmd.
pub struct HsmdOptions<'a> {
    /// The hsmd binary.
    pub binary: &'a Path,
    /// `sessions_per_slot`.
    pub sessions: usize,
    /// `HSMD_LOG` (hsmd's default is `info`: one audit line per request).
    pub log_level: &'a str,
    /// Client connections the run opens at once, the frontend's included
    /// (`max_connections_per_user` is raised to it when hsmd's default, 32,
    /// is lower).
    pub connections: usize,
}

/// A running hsmd.
pub struct Hsmd {
    daemon: Daemon,
    /// Its process id.
    pub pid: i32,
    /// Its socket.
    pub socket: PathBuf,
}

impl Hsmd {
    /// Starts hsmd on `token` and waits until it listens (its log says so,
    /// or its socket accepts: a quieter `HSMD_LOG` hides the line).
    ///
    /// The configuration: model softhsm2, the token's slot and PIN, every
    /// acting identity an admin (the bench creates its keys through hsmd),
    /// the bench's own user as a frontend (for kms-frontend), a socket in
    /// the bench directory (mode 0600), `sessions_per_slot` from `opts`,
    /// `max_connections_per_user` at least N, as root the user `nobody` to
    /// drop to, and hsmd's defaults for everything else (`max_in_flight` 64,
    /// `max_in_flight_bytes` 4 MiB, `queue_depth` 256). Its log goes to
    /// `hsmd-<sessions>.log` in the bench directory.
    pub fn start(token: &Token, opts: &HsmdOptions<'_>) -> Result<Self> {
        let socket = token.path("hsmd.sock");
        let _ = std::fs::remove_file(&socket);
        // The direct mode opened the token as this process's user since the
        // last start: give the directory to hsmd's user again.
        token.give_to_owner()?;
        let drop_to = daemon_user()?;
        let extra = format!(
            "sessions_per_slot = {}\nmax_connections_per_user = {}\n{}",
            opts.sessions,
            opts.connections.max(32),
            frontends()?
        );
        let toml = hsmd_config(
            token,
            &HsmdConfig {
                admins: "\"*\"",
                socket_mode: "0600",
                drop_to: drop_to.as_ref().map(|(u, g)| (u.name.as_str(), g.as_str())),
                extra: &extra,
            },
        );
        let launch = Launch {
            binary: Some(opts.binary.to_owned()),
            env: vec![("HSMD_LOG".into(), opts.log_level.into())],
            log_file: Some(token.path(&format!("hsmd-{}.log", opts.sessions))),
            ready_on_connect: true,
        };
        let daemon = Daemon::try_start(token, &toml, &[], &launch)?;
        Ok(Self {
            pid: i32::try_from(daemon.pid())?,
            socket: daemon.socket.clone(),
            daemon,
        })
    }

    /// Sends SIGTERM and waits for hsmd to exit (SIGKILL and an error after
    /// the harness's timeout).
    pub fn stop(mut self) -> Result<()> {
        self.daemon.try_stop(STOP_TIMEOUT)?;
        Ok(())
    }
}

/// A running kms-frontend.
pub struct KmsFrontend {
    frontend: Frontend,
    /// Its process id.
    pub pid: i32,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl KmsFrontend {
    /// Starts `binary` in front of the hsmd at `socket`, without
    /// authentication as [`crate::frontend::KMS_USER`], with
    /// [`crate::frontend::HSMD_CONNECTIONS`] connections to hsmd, on
    /// 127.0.0.1 on a port of the kernel's choice, its grants database and
    /// its log (`kms-frontend-<n>.log`) in the bench directory, and `kek`
    /// as its `--key-encryption-key` when given; waits for its "listening
    /// on http://ADDR" line.
    pub fn start(
        binary: &Path,
        token: &Token,
        socket: &Path,
        n: usize,
        kek: Option<&str>,
    ) -> Result<Self> {
        let mut flags = Vec::new();
        if let Some(kek) = kek {
            flags.extend(["--key-encryption-key", kek]);
        }
        Self::start_with(binary, token, socket, &format!("{n}"), &flags)
    }

    /// [`KmsFrontend::start`] with `extra` flags (e.g. `--database-type
    /// postgresql --database-url <url>`, the KEK) and its log in
    /// `kms-frontend-<log_name>.log` of the bench directory.
    pub fn start_with(
        binary: &Path,
        token: &Token,
        socket: &Path,
        log_name: &str,
        extra: &[&str],
    ) -> Result<Self> {
        let connections = crate::frontend::HSMD_CONNECTIONS.to_string();
        let mut flags = vec![
            "--default-username",
            crate::frontend::KMS_USER,
            "--hsmd-connections",
            &connections,
        ];
        flags.extend_from_slice(extra);
        let launch = Launch {
            binary: Some(binary.to_owned()),
            log_file: Some(token.path(&format!("kms-frontend-{log_name}.log"))),
            ..Launch::default()
        };
        let frontend = Frontend::try_start(token, socket, &flags, launch)?;
        let addr = frontend
            .addr()
            .parse()
            .with_context(|| format!("kms-frontend listens on {}", frontend.addr()))?;
        Ok(Self {
            pid: i32::try_from(frontend.pid())?,
            addr,
            frontend,
        })
    }

    /// Sends SIGTERM and waits for the frontend to exit (SIGKILL and an
    /// error after the harness's timeout).
    pub fn stop(mut self) -> Result<()> {
        self.frontend.try_stop(STOP_TIMEOUT)?;
        Ok(())
    }
}
