//! The hsmd under test: started on the bench token with a configuration of
//! the bench's own, its log in a file, stopped with SIGTERM.

use crate::token::{Token, PIN};
use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long hsmd may take to listen or to stop.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A running hsmd.
pub struct Hsmd {
    child: Option<Child>,
    /// Its process id.
    pub pid: i32,
    /// Its socket.
    pub socket: PathBuf,
    log: PathBuf,
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

/// `frontends = ["<the bench's unix user>"]`: the kms-frontend the bench
/// starts runs as the bench's user and acts for its KMS user (`as_user`).
fn frontends() -> Result<String> {
    use nix::unistd::{geteuid, User};
    let me = User::from_uid(geteuid())?.context("the bench's uid has no user name")?;
    Ok(format!("frontends = [\"{}\"]\n", me.name))
}

/// When the bench runs as root, hsmd drops to `nobody` after logging in (as
/// it drops to `hsmd` in production), and the bench directory is given to it:
/// `user = ...`, `group = ...` for the configuration.
fn drop_to(token: &Token) -> Result<String> {
    use nix::unistd::{geteuid, Group, User};
    if !geteuid().is_root() {
        return Ok(String::new());
    }
    let user = User::from_name("nobody")?.context("no user nobody to run hsmd as")?;
    let group = Group::from_gid(user.gid)?.context("nobody's primary group has no name")?;
    let out = Command::new("chown")
        .arg("-R")
        .arg(format!("{}:{}", user.uid, user.gid))
        .arg(token.root())
        .output()
        .context("chown")?;
    if !out.status.success() {
        bail!(
            "chown -R nobody {}: {}",
            token.root().display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(format!(
        "user = \"{}\"\ngroup = \"{}\"\n",
        user.name, group.name
    ))
}

impl Hsmd {
    /// Starts hsmd on `token` and waits until its log says it listens.
    ///
    /// The configuration: model softhsm2, the token's slot and PIN, every
    /// acting identity an admin (the bench creates its keys through hsmd),
    /// the bench's own user as a frontend (for kms-frontend), a socket in
    /// the bench directory, `sessions_per_slot` from `opts`,
    /// `max_connections_per_user` at least N, as root the user `nobody` to
    /// drop to, and hsmd's defaults for everything else (`max_in_flight` 64,
    /// `max_in_flight_bytes` 4 MiB, `queue_depth` 256).
    pub fn start(token: &Token, opts: &HsmdOptions<'_>) -> Result<Self> {
        let socket = token.path("hsmd.sock");
        let log = token.path(&format!("hsmd-{}.log", opts.sessions));
        let config = token.path("hsmd.toml");
        let _ = std::fs::remove_file(&socket);
        std::fs::write(
            &config,
            format!(
                "hsm_model = \"softhsm2\"\nhsm_admin = \"*\"\nhsm_slot = [{}]\nhsm_password = [\"{PIN}\"]\nsocket_path = \"{}\"\nsocket_mode = \"0600\"\nsessions_per_slot = {}\nmax_connections_per_user = {}\n{}{}",
                token.slot,
                socket.display(),
                opts.sessions,
                opts.connections.max(32),
                frontends()?,
                drop_to(token)?
            ),
        )?;
        let stderr = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let child = Command::new(opts.binary)
            .arg("--config")
            .arg(&config)
            .env("SOFTHSM2_CONF", &token.conf)
            .env("HSMD_LOG", opts.log_level)
            .env_remove("HSMD_HSM_PASSWORD")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot start {}", opts.binary.display()))?;
        let pid = child.id() as i32;
        let mut hsmd = Self {
            child: Some(child),
            pid,
            socket,
            log,
        };
        hsmd.wait_listening()?;
        Ok(hsmd)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until hsmd listens: its log says so, or its socket accepts.
    fn wait_listening(&mut self) -> Result<()> {
        let start = Instant::now();
        loop {
            // The "listening" line is logged at info; with a quieter HSMD_LOG,
            // a connection that is accepted says the same.
            if self.log_text().contains("listening")
                || std::os::unix::net::UnixStream::connect(&self.socket).is_ok()
            {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    bail!(
                        "hsmd exited ({status}) before listening; its log:\n{}",
                        self.log_text()
                    );
                }
            }
            if start.elapsed() > TIMEOUT {
                bail!(
                    "hsmd did not listen within {TIMEOUT:?}; its log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGTERM and waits for hsmd to exit (SIGKILL after the timeout).
    pub fn stop(mut self) -> Result<()> {
        match self.child.take() {
            Some(child) => stop_child(child, self.pid, "hsmd"),
            None => Ok(()),
        }
    }
}

/// Sends SIGTERM to `child` (`pid`, named `name` in errors) and waits for
/// it to exit; SIGKILL and an error after [`TIMEOUT`].
pub fn stop_child(mut child: Child, pid: i32, name: &str) -> Result<()> {
    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    let start = Instant::now();
    while child.try_wait()?.is_none() {
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{name} did not stop within {TIMEOUT:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

impl Drop for Hsmd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
