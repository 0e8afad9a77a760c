//! End-to-end test harness: a SoftHSMv2 token in a directory of the test's
//! own (`SOFTHSM2_CONF`), the real `hsmd` binary started on it, the real
//! socket, and helpers to run `hsmctl` and `pkcs11-tool`, as root or as a
//! second unix user created for the test run.
//!
//! Readiness is taken from hsmd's own "listening" log line, never from a sleep.
//!
//! The bench (`bench/`, hsmd-bench) starts its servers through this harness
//! too, with the fallible `try_*` forms and a [`Launch`] of its own (release
//! binaries, a log file, its log level).

use hsmd_protocol::Client;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tempfile::TempDir;

pub mod at_rest;
pub mod card;
pub mod frontend;
pub mod kmip;
pub mod postgres;
mod process;
pub mod replay;
pub mod shared_kek;
pub use frontend::{
    expect, frontend_hsmd_config, https_client, run_frontend_to_exit, Frontend, Reply,
};
pub use process::{drain_lines, HarnessError, Launch};
use process::{terminate, Stderr};

/// SoftHSMv2's module path on Debian.
pub const SOFTHSM_LIB: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// User PIN of test tokens (the seed's example PIN).
pub const PIN: &str = "648219";
/// SO PIN of test tokens (the seed's example SO PIN).
pub const SO_PIN: &str = "3537363231383830";
/// The unix user test daemons drop to (created by the test run).
pub const DAEMON_USER: &str = "hsmd-e2e-daemon";

/// How long hsmd may take to start or stop in a test before it counts as hung.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A built binary of this workspace (`target/<profile>/<name>`).
pub fn bin(name: &str) -> PathBuf {
    try_bin(name).unwrap_or_else(|e| panic!("{e}"))
}

/// [`bin`], or why it is not there.
pub fn try_bin(name: &str) -> Result<PathBuf, HarnessError> {
    let exe = std::env::current_exe().map_err(|e| HarnessError::io("test executable path", e))?;
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| HarnessError(format!("no target dir above {}", exe.display())))?;
    let path = dir.join(name);
    if !path.is_file() {
        return Err(HarnessError(format!(
            "{} is not built: run `cargo build --workspace --bins` first (scripts/test does)",
            path.display()
        )));
    }
    Ok(path)
}

/// A fresh SoftHSMv2 token directory with one initialized token.
pub struct Token {
    /// Holds the token directory, the softhsm2.conf and everything the test writes.
    pub dir: TempDir,
    /// `SOFTHSM2_CONF` for processes that should see this token.
    pub conf: PathBuf,
    /// The slot ID SoftHSMv2 assigned to the token.
    pub slot: u64,
    /// The unix user the directory is given to (hsmd drops to it); `None`:
    /// it stays with this process's user.
    owner: Option<TestUser>,
}

impl Token {
    /// Initializes a token labelled `label` with [`PIN`] / [`SO_PIN`], in a
    /// directory given to [`DAEMON_USER`].
    pub fn new(label: &str) -> Self {
        Self::try_new(label, Some(test_user(DAEMON_USER))).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Token::new`] with the directory given to `owner` (`None`: kept by
    /// this process's user), or why the token could not be made.
    pub fn try_new(label: &str, owner: Option<TestUser>) -> Result<Self, HarnessError> {
        let dir = tempfile::Builder::new()
            .prefix("hsmd-e2e-")
            .tempdir()
            .map_err(|e| HarnessError::io("tempdir", e))?;
        // Let a second unix user reach the socket inside.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| HarnessError::io("chmod", e))?;
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).map_err(|e| HarnessError::io("token dir", e))?;
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .map_err(|e| HarnessError::io("softhsm2.conf", e))?;
        let mut token = Self {
            dir,
            conf,
            slot: 0,
            owner,
        };
        token.slot = token.try_init_token(label)?;
        Ok(token)
    }

    /// A test directory without a SoftHSMv2 token (for hsmd on another
    /// module, e.g. the card rig), owned by [`DAEMON_USER`]; `slot` is the
    /// slot the test uses.
    pub fn scratch(slot: u64) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("hsmd-e2e-")
            .tempdir()
            .expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let conf = dir.path().join("softhsm2.conf");
        let token = Self {
            dir,
            conf,
            slot,
            owner: Some(test_user(DAEMON_USER)),
        };
        token.give_to_owner().unwrap_or_else(|e| panic!("{e}"));
        token
    }

    /// Gives the test directory (tokens, socket) to its owner ([`DAEMON_USER`]
    /// unless made by [`Token::try_new`]), the user hsmd drops to after
    /// logging in, as the package gives /var/lib/softhsm and /run/hsmd to
    /// the hsmd user; nothing without an owner. Again after this process
    /// wrote in it (the bench's direct mode opens the token as root).
    pub fn give_to_owner(&self) -> Result<(), HarnessError> {
        let Some(user) = &self.owner else {
            return Ok(());
        };
        let out = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", user.uid, user.gid))
            .arg(self.dir.path())
            .output()
            .map_err(|e| HarnessError::io("chown", e))?;
        if !out.status.success() {
            return Err(HarnessError(format!(
                "chown: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }

    /// Initializes one more token in the same directory; returns its slot ID.
    pub fn init_token(&self, label: &str) -> u64 {
        self.try_init_token(label).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Token::init_token`], or why it failed.
    pub fn try_init_token(&self, label: &str) -> Result<u64, HarnessError> {
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &self.conf)
            .args([
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                PIN,
                "--so-pin",
                SO_PIN,
            ])
            .output()
            .map_err(|e| HarnessError::io("softhsm2-util (install softhsm2)", e))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(HarnessError(format!(
                "softhsm2-util --init-token failed: {text}"
            )));
        }
        self.give_to_owner()?;
        // "The token has been initialized and is reassigned to slot 1147832486"
        text.split_whitespace()
            .last()
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| HarnessError(format!("no slot ID in softhsm2-util output: {text}")))
    }

    /// Path inside the test directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `pkcs11-tool` on this token's slot, logged in, with `args`.
    pub fn pkcs11_tool(&self, args: &[&str]) -> String {
        let slot = self.slot.to_string();
        let out = Command::new("pkcs11-tool")
            .env("SOFTHSM2_CONF", &self.conf)
            .args([
                "--module",
                SOFTHSM_LIB,
                "--slot",
                &slot,
                "--login",
                "--pin",
                PIN,
            ])
            .args(args)
            .output()
            .expect("pkcs11-tool (install opensc)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "pkcs11-tool {args:?} failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }
}

/// A running hsmd.
pub struct Daemon {
    child: Option<Child>,
    /// Its socket.
    pub socket: PathBuf,
    /// Every stderr line so far (empty when [`Launch::log_file`] took them).
    pub log: Arc<Mutex<Vec<String>>>,
    stderr: Stderr,
}

/// The TOML of a test hsmd on `token`: softhsm2, the token's slot and PIN,
/// admin root, socket in the test dir with mode 0666, dropping to
/// [`DAEMON_USER`]; `extra` is appended.
pub fn base_config(token: &Token, extra: &str) -> String {
    config_with_admins(token, "\"root\"", extra)
}

/// [`base_config`] with `hsm_admin = <admins>` (a TOML value: `"root"`,
/// `["admin"]`) instead of root.
pub fn config_with_admins(token: &Token, admins: &str, extra: &str) -> String {
    hsmd_config(
        token,
        &HsmdConfig {
            admins,
            socket_mode: "0666",
            drop_to: Some((DAEMON_USER, DAEMON_USER)),
            extra,
        },
    )
}

/// What varies between the hsmd configurations of the tests and the bench.
pub struct HsmdConfig<'a> {
    /// `hsm_admin`, a TOML value: `"root"`, `["admin"]`, `"*"`.
    pub admins: &'a str,
    /// `socket_mode`, octal: `0666` (tests: a second user connects), `0600`.
    pub socket_mode: &'a str,
    /// `user` and `group` hsmd drops to after logging in; `None`: it stays.
    pub drop_to: Option<(&'a str, &'a str)>,
    /// Appended as is (more settings, each line ending in a newline).
    pub extra: &'a str,
}

/// The TOML of an hsmd on `token`: softhsm2, the token's slot and PIN, the
/// socket `hsmd.sock` in the token's directory, and `c`.
pub fn hsmd_config(token: &Token, c: &HsmdConfig<'_>) -> String {
    let drop_to = c
        .drop_to
        .map(|(user, group)| format!("user = \"{user}\"\ngroup = \"{group}\"\n"))
        .unwrap_or_default();
    format!(
        "hsm_model = \"softhsm2\"\nhsm_admin = {}\nhsm_slot = [{}]\nhsm_password = [\"{PIN}\"]\nsocket_path = \"{}\"\nsocket_mode = \"{}\"\n{drop_to}{}\n",
        c.admins,
        token.slot,
        token.path("hsmd.sock").display(),
        c.socket_mode,
        c.extra
    )
}

/// Starts `hsmd --config <file with toml>` on `token`, with `args` appended,
/// without waiting for it. Used directly by start-up failure tests.
pub fn spawn_hsmd(token: &Token, toml: &str, args: &[&str]) -> Child {
    spawn_hsmd_env(token, toml, args, &[])
}

/// [`spawn_hsmd`] with extra environment variables for hsmd.
pub fn spawn_hsmd_env(token: &Token, toml: &str, args: &[&str], env: &[(String, String)]) -> Child {
    let launch = Launch {
        env: env.to_vec(),
        ..Launch::default()
    };
    hsmd_command(token, toml, args, &launch)
        .and_then(|mut cmd| {
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| HarnessError::io("spawn hsmd", e))
        })
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Writes `toml` to `hsmd.toml` in the token's directory; the command that
/// starts hsmd on it with `args` and `launch`'s binary and environment.
fn hsmd_command(
    token: &Token,
    toml: &str,
    args: &[&str],
    launch: &Launch,
) -> Result<Command, HarnessError> {
    let config = token.path("hsmd.toml");
    std::fs::write(&config, toml).map_err(|e| HarnessError::io("write config", e))?;
    let mut cmd = Command::new(launch.binary("hsmd")?);
    cmd.env("HSMD_LOG", "info")
        // Not another process's socket activation (a caller may set them).
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .arg("--config")
        .arg(&config)
        .args(args)
        .env("SOFTHSM2_CONF", &token.conf)
        .env_remove("HSMD_HSM_PASSWORD")
        .env_remove("CREDENTIALS_DIRECTORY");
    Ok(cmd)
}

/// The fault-injecting PKCS#11 module (`tests/pkcs11-faults`) of one test:
/// its control file (what to inject, changed while hsmd runs) and its
/// counter file (what it saw), both in the token's directory where the
/// daemon user can read and write them.
pub struct Faults {
    /// The control file (`PKCS11_FAULTS_CONTROL`).
    pub control: PathBuf,
    /// The counter file (`PKCS11_FAULTS_COUNTERS`).
    pub counters: PathBuf,
}

/// The built fault module (a dev-dependency of this crate, so `cargo test` builds it).
pub fn fault_module() -> PathBuf {
    let top = bin("hsmd").with_file_name("libpkcs11_faults.so");
    let deps = bin("hsmd")
        .with_file_name("deps")
        .join("libpkcs11_faults.so");
    // `cargo test` refreshes the dependency's copy under deps/; the top-level
    // one is only rebuilt by a `cargo build` of the whole workspace: take the newer.
    [top, deps]
        .into_iter()
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p)
        .expect("libpkcs11_faults.so is not built: run `cargo test --workspace`")
}

impl Faults {
    /// A control file for `token` holding `control`.
    pub fn new(token: &Token, control: &str) -> Self {
        let f = Self {
            control: token.path("faults.ctl"),
            counters: token.path("faults.counters"),
        };
        f.set(control);
        f
    }

    /// Replaces the control file atomically (hsmd reads it on every PKCS#11 call).
    pub fn set(&self, control: &str) {
        let tmp = self.control.with_extension("tmp");
        std::fs::write(&tmp, control).expect("write control");
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        std::fs::rename(&tmp, &self.control).expect("rename control");
    }

    /// A counter of the module (0 before it wrote any).
    pub fn counter(&self, name: &str) -> u64 {
        std::fs::read_to_string(&self.counters)
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == name).then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0)
    }

    /// The environment hsmd needs to load the module over SoftHSMv2.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("PKCS11_FAULTS_MODULE".into(), SOFTHSM_LIB.into()),
            (
                "PKCS11_FAULTS_CONTROL".into(),
                self.control.display().to_string(),
            ),
            (
                "PKCS11_FAULTS_COUNTERS".into(),
                self.counters.display().to_string(),
            ),
        ]
    }

    /// [`base_config`] with `hsm_model = model` on the fault module.
    pub fn config(&self, token: &Token, model: &str, extra: &str) -> String {
        base_config(token, extra).replace(
            "hsm_model = \"softhsm2\"\n",
            &format!(
                "hsm_model = \"{model}\"\nhsm_library = \"{}\"\n",
                fault_module().display()
            ),
        )
    }

    /// Starts hsmd on the fault module and waits until it listens.
    pub fn start(&self, token: &Token, model: &str, extra: &str) -> Daemon {
        Daemon::start_with_env(token, &self.config(token, model, extra), &[], &self.env())
    }

    /// Runs hsmd on the fault module to its exit (start-up failures).
    pub fn run_to_exit(&self, token: &Token, toml: &str) -> (ExitStatus, String) {
        let out = spawn_hsmd_env(token, toml, &[], &self.env())
            .wait_with_output()
            .expect("wait hsmd");
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// Runs hsmd to completion (for configurations that must fail), returning
/// its exit status and stderr.
pub fn run_hsmd_to_exit(token: &Token, toml: &str, args: &[&str]) -> (ExitStatus, String) {
    let child = spawn_hsmd(token, toml, args);
    let out = child.wait_with_output().expect("wait hsmd");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Daemon {
    /// Starts hsmd with [`base_config`] plus `extra` and waits until it listens.
    pub fn start(token: &Token, extra: &str) -> Self {
        Self::start_with(token, &base_config(token, extra), &[])
    }

    /// Starts hsmd with the full `toml` and extra `args`; waits until it listens.
    /// Panics with hsmd's log when it exits or does not listen in time.
    pub fn start_with(token: &Token, toml: &str, args: &[&str]) -> Self {
        Self::start_with_env(token, toml, args, &[])
    }

    /// [`Daemon::start_with`] with extra environment variables for hsmd
    /// (`HSMD_LOG` is `info` unless they set it).
    pub fn start_with_env(
        token: &Token,
        toml: &str,
        args: &[&str],
        env: &[(String, String)],
    ) -> Self {
        let launch = Launch {
            env: env.to_vec(),
            ..Launch::default()
        };
        Self::try_start(token, toml, args, &launch).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts hsmd with the full `toml`, extra `args` and `launch`; waits
    /// until it listens. Errors with hsmd's log when it cannot start, exits
    /// or does not listen within [`START_TIMEOUT`].
    pub fn try_start(
        token: &Token,
        toml: &str,
        args: &[&str],
        launch: &Launch,
    ) -> Result<Self, HarnessError> {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut cmd = hsmd_command(token, toml, args, launch)?;
        let (child, stderr) = launch.spawn(&mut cmd, "hsmd", &log)?;
        let socket = toml
            .lines()
            .find_map(|l| l.strip_prefix("socket_path = \""))
            .map(|rest| PathBuf::from(rest.trim_end_matches('"')))
            .unwrap_or_else(|| token.path("hsmd.sock"));
        let mut d = Self {
            child: Some(child),
            socket,
            log,
            stderr,
        };
        let probe = launch.ready_on_connect.then(|| d.socket.clone());
        d.try_wait_until("listening", || {
            probe
                .as_ref()
                .is_some_and(|s| std::os::unix::net::UnixStream::connect(s).is_ok())
        })?;
        Ok(d)
    }

    /// Blocks until hsmd logs a line containing `needle`; panics with the log
    /// if hsmd exits first or [`START_TIMEOUT`] passes.
    pub fn wait_for_line(&mut self, needle: &str) -> String {
        self.try_wait_until(needle, || false)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Daemon::wait_for_line`], or until `ready()` (then the line is empty).
    fn try_wait_until(
        &mut self,
        needle: &str,
        ready: impl FnMut() -> bool,
    ) -> Result<String, HarnessError> {
        let child = self
            .child
            .as_mut()
            .ok_or_else(|| HarnessError("hsmd is not running".into()))?;
        // One deadline for the whole wait: a chatty daemon must not extend it.
        self.stderr
            .wait_for(child, "hsmd", needle, START_TIMEOUT, &self.log, ready)
    }

    /// hsmd's stderr so far.
    pub fn log_text(&self) -> String {
        self.stderr.text(&self.log)
    }

    /// hsmd's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Connects a protocol client (as the test's own user).
    pub async fn client(&self) -> Client {
        Client::connect(&self.socket, "hsmd-e2e/1")
            .await
            .unwrap_or_else(|e| panic!("connect: {e}\n{}", self.log_text()))
    }

    /// Sends `signal` and waits for hsmd to exit, and for its log to be
    /// read to the end (hsmd's log thread writes its last lines on the way
    /// out); returns its status.
    pub fn stop_with(&mut self, signal: nix::sys::signal::Signal) -> ExitStatus {
        let mut child = self.child.take().expect("hsmd running");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal)
            .expect("kill");
        let status = child.wait().expect("wait hsmd");
        // The reader ends at end of file, which closes the channel.
        if let Stderr::Pipe { lines } = &self.stderr {
            while lines.recv().is_ok() {}
        }
        status
    }

    /// SIGTERM and wait at most `timeout` (then SIGKILL and an error).
    pub fn try_stop(&mut self, timeout: Duration) -> Result<ExitStatus, HarnessError> {
        let child = self
            .child
            .take()
            .ok_or_else(|| HarnessError("hsmd is not running".into()))?;
        terminate(child, "hsmd", timeout)
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) -> ExitStatus {
        self.stop_with(nix::sys::signal::Signal::SIGTERM)
    }

    /// Runs `hsmctl --socket <socket> args`, as `user` when given.
    pub fn hsmctl(&self, user: Option<&TestUser>, args: &[&str]) -> Output {
        hsmctl(&self.socket, user, args)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs hsmctl against `socket`, as `user` when given.
pub fn hsmctl(socket: &Path, user: Option<&TestUser>, args: &[&str]) -> Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(bin("hsmctl"));
    cmd.arg("--socket").arg(socket).args(args);
    if let Some(u) = user {
        cmd.uid(u.uid).gid(u.gid).env("HOME", "/");
    }
    cmd.output().expect("run hsmctl")
}

/// A child process killed (SIGKILL) and reaped when dropped, so a failing
/// test never leaves a daemon behind.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// A unix user created for the test run (tests run as root).
#[derive(Debug, Clone)]
pub struct TestUser {
    /// Name.
    pub name: String,
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
}

/// Creates (once) the system user `name` with `useradd`, and returns it.
/// Panics unless the tests run as root, which they must for this.
pub fn test_user(name: &str) -> TestUser {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root to create the second unix user {name}: run it through scripts/test"
    );
    let lookup = || nix::unistd::User::from_name(name).ok().flatten();
    if lookup().is_none() {
        let out = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ])
            .output()
            .expect("useradd");
        // A parallel test may have created it meanwhile.
        assert!(
            out.status.success() || lookup().is_some(),
            "useradd {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let u = lookup().expect("user exists");
    TestUser {
        name: name.into(),
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
    }
}

/// Stdout of a successful command; panics with stderr otherwise.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stderr of a failed command; panics if it succeeded.
pub fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "command unexpectedly succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Raw protocol frames, for tests that must control exactly what is on the
/// socket (hostile input, a burst written in one go).
pub mod raw {
    use serde_json::Value;
    use tokio::io::{AsyncRead, AsyncReadExt};

    /// A frame: 4-byte big-endian length, then `body`.
    pub fn frame(body: &[u8]) -> Vec<u8> {
        let len = u32::try_from(body.len()).expect("frame fits u32");
        let mut out = len.to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    /// The next frame as JSON, or None on a clean end of stream between frames.
    pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Option<Value> {
        let mut len = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            let n = r.read(&mut len[got..]).await.expect("read frame length");
            if n == 0 {
                assert_eq!(got, 0, "hsmd closed the stream inside a frame header");
                return None;
            }
            got += n;
        }
        let len = u32::from_be_bytes(len) as usize;
        assert!(
            (1..=1024 * 1024).contains(&len),
            "hsmd sent a frame of length {len}"
        );
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).await.expect("read frame body");
        Some(serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "hsmd sent a frame that is not JSON ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        }))
    }
}
