//! A throw-away PostgreSQL cluster per test: Debian's server binaries
//! (`/usr/lib/postgresql/<version>/bin`, the highest version, else
//! `pg_config --bindir`; never PATH), `initdb` in a temporary directory of
//! the test's own, `postgres` started as a child of the test on a free
//! loopback port and on a unix socket in that directory, one database and
//! one login role for the application, stopped (fast shutdown) or killed by
//! the test and never outliving it.
//!
//! initdb and postgres refuse to run as root: when the test runs as root
//! (as scripts/test does) the cluster belongs to `nobody:nogroup` and every
//! server binary runs as that user, with no supplementary groups.
//!
//! Authentication: the application role `kms` logs in over TCP with
//! SCRAM-SHA-256 and a password generated for the cluster, as a production
//! server would ask of kms-frontend, so the `postgresql://` URL the tests
//! hand to the frontend carries a real password and a wrong one is refused;
//! the unix socket (in a 0700 directory of `nobody`) trusts its peer, so the
//! harness's own `psql` needs no password. With TLS
//! ([`PgServer::start_tls`]) every TCP connection must use TLS (`hostssl`,
//! and `hostnossl ... reject`); the server certificate is for `127.0.0.1`
//! and `localhost`, issued by a CA made for the cluster
//! ([`PgServer::ca_pem`]), so `sslmode=verify-full` works.
//!
//! Readiness is the server's own "ready to accept connections" log line
//! (after a start and after crash recovery), never a sleep.
//!
//! When the binaries are missing, [`or_skip`] turns the start into one
//! "skipped" line outside CI, and into a failure naming the Debian package
//! in CI (`CI` set).

use crate::process::Stderr;
use crate::{HarnessError, Launch, START_TIMEOUT};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The Debian package that holds the server binaries.
pub const PACKAGE: &str = "postgresql";
/// Where Debian installs the server binaries, one directory per major version.
pub const DEBIAN_LIB: &str = "/usr/lib/postgresql";
/// The database made for the application.
pub const DATABASE: &str = "kms";
/// The application's login role (owner of [`DATABASE`]).
pub const APP_USER: &str = "kms";
/// The superuser made by initdb (reached on the unix socket only).
pub const SUPERUSER: &str = "postgres";
/// What the server logs once it accepts connections.
const READY: &str = "database system is ready to accept connections";
/// How long a fast shutdown may take before the cluster is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a cluster could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The server binaries are not installed; the text names where they
    /// were looked for.
    #[error("{0}; install the Debian package {PACKAGE} (scripts/test does)")]
    Missing(String),
    /// A step failed; the text names it and carries the server's log.
    #[error(transparent)]
    Failed(#[from] HarnessError),
}

/// Turns the result of [`PgServer::start`] / [`PgServer::start_tls`] into
/// the cluster, or `None` after printing one "skipped" line when the binaries
/// are missing outside CI. Panics on any other failure, and in CI (`CI`
/// set) when the binaries are missing, naming the package to install.
pub fn or_skip(test: &str, started: Result<PgServer, PgError>) -> Option<PgServer> {
    match started {
        Ok(pg) => Some(pg),
        Err(PgError::Missing(why)) if std::env::var_os("CI").is_none_or(|v| v.is_empty()) => {
            eprintln!("{test}: skipped: {why} (install the Debian package {PACKAGE})");
            None
        }
        Err(e) => panic!("{test}: {e}"),
    }
}

/// The directory holding a PostgreSQL installation's server binaries.
#[derive(Debug, Clone)]
pub struct PgBin {
    /// E.g. `/usr/lib/postgresql/15/bin`.
    pub dir: PathBuf,
}

impl PgBin {
    /// The highest version's `bin` under [`DEBIAN_LIB`] holding `initdb`
    /// and `postgres`, else `pg_config --bindir` when that holds them.
    ///
    /// Errors: [`PgError::Missing`] naming both places.
    pub fn find() -> Result<Self, PgError> {
        let complete = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
        let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(DEBIAN_LIB)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let version = name
                    .split('.')
                    .map(str::parse)
                    .collect::<Result<Vec<u32>, _>>()
                    .ok()?;
                let dir = e.path().join("bin");
                complete(&dir).then_some((version, dir))
            })
            .collect();
        versions.sort();
        if let Some((_, dir)) = versions.pop() {
            return Ok(Self { dir });
        }
        let from_pg_config = Command::new("pg_config")
            .arg("--bindir")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
            .filter(|dir| complete(dir));
        from_pg_config.map(|dir| Self { dir }).ok_or_else(|| {
            PgError::Missing(format!(
                "no PostgreSQL server binaries (initdb, postgres) in {DEBIAN_LIB}/*/bin nor in `pg_config --bindir`"
            ))
        })
    }

    /// The path of the program `name` in this directory.
    pub fn program(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// The unix user the cluster's files and processes belong to.
#[derive(Debug, Clone, Copy)]
struct Owner {
    uid: u32,
    gid: u32,
}

impl Owner {
    /// `nobody:nogroup` when this process is root (initdb refuses root),
    /// else `None`: the cluster runs as this process's user.
    fn for_cluster() -> Result<Option<Self>, HarnessError> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(None);
        }
        let user = nix::unistd::User::from_name("nobody")
            .ok()
            .flatten()
            .ok_or_else(|| HarnessError("no user nobody to run PostgreSQL as".into()))?;
        let gid = nix::unistd::Group::from_name("nogroup")
            .ok()
            .flatten()
            .map_or(user.gid.as_raw(), |g| g.gid.as_raw());
        Ok(Some(Self {
            uid: user.uid.as_raw(),
            gid,
        }))
    }

    /// Gives `path` to this owner.
    fn chown(&self, path: &Path) -> Result<(), HarnessError> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .map_err(|e| HarnessError::io(format!("chown {}", path.display()), e))
    }
}

/// A running (or stopped) throw-away PostgreSQL cluster.
pub struct PgServer {
    bin: PgBin,
    owner: Option<Owner>,
    /// Holds `data/`, `socket/`, the TLS files; removed on drop.
    dir: TempDir,
    port: u16,
    password: String,
    tls: bool,
    child: Option<Child>,
    log: Arc<Mutex<Vec<String>>>,
    stderr: Option<Stderr>,
}

impl PgServer {
    /// A new cluster without TLS (`sslmode=disable` in [`PgServer::url`]),
    /// started, with database [`DATABASE`] owned by role [`APP_USER`].
    ///
    /// Errors: [`PgError::Missing`] without the server binaries; otherwise
    /// the step that failed with the server's log.
    pub fn start() -> Result<Self, PgError> {
        Self::start_with(false)
    }

    /// [`PgServer::start`] with TLS required on every TCP connection
    /// (`sslmode=verify-full` against [`PgServer::ca_pem`] in the URL).
    pub fn start_tls() -> Result<Self, PgError> {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Result<Self, PgError> {
        let bin = PgBin::find()?;
        let owner = Owner::for_cluster()?;
        let dir = tempfile::Builder::new()
            .prefix("hsmd-e2e-pg-")
            .tempdir()
            .map_err(|e| HarnessError::io("tempdir", e))?;
        // The server user must reach data/ and socket/; the CA must be
        // readable by the frontend's user.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| HarnessError::io("chmod", e))?;
        let mut pg = Self {
            bin,
            owner,
            dir,
            port: 0,
            password: random_hex(16)?,
            tls,
            child: None,
            log: Arc::new(Mutex::new(Vec::new())),
            stderr: None,
        };
        for sub in ["data", "socket"] {
            let path = pg.dir.path().join(sub);
            std::fs::create_dir(&path).map_err(|e| HarnessError::io(sub, e))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| HarnessError::io("chmod", e))?;
            pg.give(&path)?;
        }
        pg.initdb()?;
        if tls {
            pg.write_tls_files()?;
        }
        pg.write_hba()?;
        pg.start_on_free_port()?;
        pg.sql_on(
            "postgres",
            &format!("CREATE ROLE {APP_USER} LOGIN PASSWORD '{}'", pg.password),
        )?;
        pg.sql_on(
            "postgres",
            &format!("CREATE DATABASE {DATABASE} OWNER {APP_USER}"),
        )?;
        Ok(pg)
    }

    /// Gives `path` to the cluster's owner (nothing when not root).
    fn give(&self, path: &Path) -> Result<(), HarnessError> {
        self.owner.map_or(Ok(()), |o| o.chown(path))
    }

    /// A command running `program` of the installation as the cluster's
    /// owner, with no PG* variables of the caller's and the C locale.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.program(program));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("PG") {
                cmd.env_remove(k);
            }
        }
        // HOME: libpq looks for ~/.postgresql/ (client certificates, a CA).
        cmd.env("LC_ALL", "C")
            .env("HOME", self.dir.path())
            .current_dir(self.dir.path());
        if let Some(o) = self.owner {
            // std clears the supplementary groups when root sets a uid.
            cmd.uid(o.uid).gid(o.gid);
        }
        cmd
    }

    /// Runs `cmd` (`what`) to completion; its stdout, or an error with its output.
    fn run(mut cmd: Command, what: &str) -> Result<String, HarnessError> {
        let out = cmd
            .output()
            .map_err(|e| HarnessError::io(format!("run {what}"), e))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(HarnessError(format!(
                "{what} failed ({}): {stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(stdout)
    }

    fn initdb(&self) -> Result<(), HarnessError> {
        let pwfile = self.dir.path().join("superuser.pw");
        std::fs::write(&pwfile, format!("{}\n", random_hex(16)?))
            .map_err(|e| HarnessError::io("superuser password file", e))?;
        self.give(&pwfile)?;
        let mut cmd = self.command("initdb");
        cmd.arg("--pgdata")
            .arg(self.data_dir())
            .args(["--username", SUPERUSER, "--encoding", "UTF8", "--no-locale"])
            .args(["--auth-local", "trust", "--auth-host", "scram-sha-256"])
            .arg("--pwfile")
            .arg(&pwfile)
            // A test cluster: what the OS caches is enough.
            .arg("--no-sync");
        Self::run(cmd, "initdb")?;
        std::fs::remove_file(&pwfile).map_err(|e| HarnessError::io("remove password file", e))
    }

    /// pg_hba.conf: the socket trusts its peer; TCP on loopback asks for
    /// SCRAM-SHA-256, over TLS only when the cluster has TLS.
    fn write_hba(&self) -> Result<(), HarnessError> {
        let tcp = if self.tls {
            "hostssl all all 127.0.0.1/32 scram-sha-256\nhostnossl all all all reject\n"
        } else {
            "host all all 127.0.0.1/32 scram-sha-256\n"
        };
        let path = self.data_dir().join("pg_hba.conf");
        std::fs::write(&path, format!("local all all trust\n{tcp}"))
            .map_err(|e| HarnessError::io("write pg_hba.conf", e))?;
        self.give(&path)
    }

    /// A CA and a server certificate for 127.0.0.1 and localhost signed by
    /// it, as PEM: `ca.pem` (0644) beside the data directory, the server's
    /// `server.crt` and `server.key` (0600, the server's user) inside it.
    fn write_tls_files(&self) -> Result<(), HarnessError> {
        use rcgen::{
            BasicConstraints, CertificateParams, DistinguishedName, DnType,
            ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType,
        };
        let tls = |e: rcgen::Error| HarnessError(format!("making the test certificates: {e}"));
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = DistinguishedName::new();
        // A name of its own: a client given another cluster's CA must fail
        // on the issuer, not find a namesake and fail on its signature.
        ca_params.distinguished_name.push(
            DnType::CommonName,
            format!("hsmd-e2e PostgreSQL test CA {}", random_hex(4)?),
        );
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().map_err(tls)?;
        let ca = ca_params.self_signed(&ca_key).map_err(tls)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        params.subject_alt_names = vec![
            SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
            SanType::DnsName("localhost".try_into().map_err(tls)?),
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().map_err(tls)?;
        let cert = params.signed_by(&key, &ca, &ca_key).map_err(tls)?;
        let write = |path: PathBuf, text: String, mode: u32| -> Result<(), HarnessError> {
            std::fs::write(&path, text)
                .map_err(|e| HarnessError::io(format!("write {}", path.display()), e))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| HarnessError::io("chmod", e))?;
            self.give(&path)
        };
        write(self.ca_pem(), ca.pem(), 0o644)?;
        write(self.data_dir().join("server.crt"), cert.pem(), 0o600)?;
        write(
            self.data_dir().join("server.key"),
            key.serialize_pem(),
            0o600,
        )?;
        let conf = self.data_dir().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf)
            .map_err(|e| HarnessError::io("read postgresql.conf", e))?;
        text.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(&conf, text).map_err(|e| HarnessError::io("write postgresql.conf", e))
    }

    /// Starts the server on a free loopback port; a port taken between the
    /// probe and the server's bind is retried with another (a few times).
    fn start_on_free_port(&mut self) -> Result<(), HarnessError> {
        let mut last = None;
        for _ in 0..5 {
            self.port = free_port()?;
            match self.spawn() {
                Ok(()) => return Ok(()),
                Err(e) if e.0.contains("could not bind") || e.0.contains("in use") => {
                    last = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| HarnessError("no free port for PostgreSQL".into())))
    }

    /// Spawns `postgres` on the data directory and port and waits for its
    /// ready line.
    fn spawn(&mut self) -> Result<(), HarnessError> {
        if self.child.is_some() {
            return Err(HarnessError("PostgreSQL is already running".into()));
        }
        let mut cmd = self.command("postgres");
        cmd.arg("-D")
            .arg(self.data_dir())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.socket_dir())
            .args(["-c", "listen_addresses=127.0.0.1"])
            // A test cluster: no flush to disk (a killed server still
            // recovers from the OS's cache), small shared memory.
            .args(["-c", "fsync=off", "-c", "shared_buffers=16MB"]);
        let (mut child, mut stderr) = Launch::default().spawn(&mut cmd, "postgres", &self.log)?;
        let waited = stderr.wait_for(
            &mut child,
            "postgres",
            READY,
            START_TIMEOUT,
            &self.log,
            || false,
        );
        self.child = Some(child);
        self.stderr = Some(stderr);
        if let Err(e) = waited {
            self.kill();
            return Err(e);
        }
        Ok(())
    }

    /// The data directory (`PGDATA`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory of the server's unix socket (`host=` for libpq).
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("socket")
    }

    /// The CA certificate (PEM) that issued the server's certificate; the
    /// file exists only for a cluster started with [`PgServer::start_tls`].
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The TCP port on 127.0.0.1 (the same after [`PgServer::start_again`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The application role's password (32 hex digits, made for this cluster).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The postmaster's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's processes now: the postmaster and every process it
    /// started (backends, checkpointer, ...); empty when it is not running.
    pub fn processes(&self) -> Vec<Proc> {
        let Some(pid) = self.pid() else {
            return Vec::new();
        };
        Proc::of(pid)
            .into_iter()
            .chain(Proc::children_of(pid))
            .collect()
    }

    /// `postgresql://kms:<password>@127.0.0.1:<port>/kms`, without query.
    pub fn url_base(&self) -> String {
        format!(
            "postgresql://{APP_USER}:{}@127.0.0.1:{}/{DATABASE}",
            self.password, self.port
        )
    }

    /// The URL for kms-frontend's `--database-url`: [`PgServer::url_base`]
    /// with `?sslmode=disable`, or with TLS
    /// `?sslmode=verify-full&sslrootcert=<ca.pem>`.
    pub fn url(&self) -> String {
        if self.tls {
            format!(
                "{}?sslmode=verify-full&sslrootcert={}",
                self.url_base(),
                self.ca_pem().display()
            )
        } else {
            format!("{}?sslmode=disable", self.url_base())
        }
    }

    /// Runs `statement` as the superuser on database [`DATABASE`] through
    /// the unix socket with the installation's `psql -X -At`; its output
    /// (rows one a line, columns separated by `|`), trimmed.
    ///
    /// Errors: psql's message when the statement fails or the server is down.
    pub fn sql(&self, statement: &str) -> Result<String, HarnessError> {
        self.sql_on(DATABASE, statement)
    }

    /// [`PgServer::sql`] on the database `database`.
    pub fn sql_on(&self, database: &str, statement: &str) -> Result<String, HarnessError> {
        let mut cmd = self.command("psql");
        cmd.args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.socket_dir())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
                "-d",
                database,
            ])
            .args(["-c", statement]);
        Self::run(cmd, "psql").map(|s| s.trim().to_owned())
    }

    /// Runs `statement` through `url` (TCP, as the URL's role: what a
    /// client given that URL gets), with `psql -X -At`; its output, trimmed.
    ///
    /// Errors: psql's message, e.g. a refused password or TLS mode.
    pub fn sql_url(&self, url: &str, statement: &str) -> Result<String, HarnessError> {
        let mut cmd = self.command("psql");
        cmd.args([
            "-X",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            statement,
        ]);
        Self::run(cmd, "psql").map(|s| s.trim().to_owned())
    }

    /// Fast shutdown (SIGINT: clients disconnected, in-flight transactions
    /// rolled back, a checkpoint written) and waits for the server to exit;
    /// killed after 30 s (then an error). Nothing when it is not running.
    pub fn stop(&mut self) -> Result<(), HarnessError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let stopped = crate::process::signal_and_wait(
            &mut child,
            nix::sys::signal::Signal::SIGINT,
            "PostgreSQL",
            STOP_TIMEOUT,
        );
        if !matches!(stopped, Ok(Some(_))) {
            kill_group(&mut child);
            return Err(HarnessError(format!(
                "PostgreSQL did not stop within {STOP_TIMEOUT:?} of a fast shutdown; its log:\n{}",
                self.log_text()
            )));
        }
        // Backends exit before the postmaster; nothing of the group remains.
        kill_group(&mut child);
        Ok(())
    }

    /// SIGKILL to the server and every process it started (a crash: the next start
    /// recovers from the write-ahead log). Nothing when it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
    }

    /// Starts the stopped (or killed) cluster again on the same data
    /// directory and port; returns once it accepts connections.
    ///
    /// Errors: the port was taken meanwhile, or the server's log.
    pub fn start_again(&mut self) -> Result<(), HarnessError> {
        self.spawn()
    }

    /// The server's log so far (every start of this cluster).
    pub fn log_text(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n")
    }
}

impl Drop for PgServer {
    /// Fast shutdown, else SIGKILL to the server and its children: no server or backend
    /// outlives the test; then the temporary directory goes.
    fn drop(&mut self) {
        if self.stop().is_err() {
            self.kill();
        }
    }
}

/// SIGKILL to the postmaster `child` and every process it started, then
/// reaps `child` and waits (at most [`STOP_TIMEOUT`]) until none of them
/// runs, so a start on the same data directory finds no backend still
/// attached to the old shared memory. The postmaster is stopped (SIGSTOP)
/// first so it forks nothing new meanwhile; its children are found by
/// parent pid (each calls setsid(), so a process group does not hold them).
fn kill_group(child: &mut Child) {
    use nix::sys::signal::{kill, Signal};
    let postmaster = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = kill(postmaster, Signal::SIGSTOP);
    let children = Proc::children_of(child.id());
    for c in &children {
        let _ = kill(nix::unistd::Pid::from_raw(c.pid as i32), Signal::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
    let deadline = Instant::now() + STOP_TIMEOUT;
    while children.iter().any(Proc::runs) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One process, by pid and start time (so a reused pid is not taken for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    /// Its pid.
    pub pid: u32,
    /// Its start time after boot, in clock ticks (`/proc/<pid>/stat` field 22).
    pub start: u64,
}

impl Proc {
    /// (state, ppid, start time) of `pid` from `/proc/<pid>/stat`.
    fn stat(pid: u32) -> Option<(String, u32, u64)> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // "pid (comm) state ppid ...": the fields after the last ')' from 3 on.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        Some((
            (*fields.first()?).to_owned(),
            fields.get(1)?.parse().ok()?,
            fields.get(19)?.parse().ok()?,
        ))
    }

    /// The process `pid` as it is now, if it exists.
    pub fn of(pid: u32) -> Option<Self> {
        Self::stat(pid).map(|(_, _, start)| Self { pid, start })
    }

    /// The processes whose parent is `pid`.
    pub fn children_of(pid: u32) -> Vec<Self> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(|p| {
                let (_, ppid, start) = Self::stat(p)?;
                (ppid == pid).then_some(Self { pid: p, start })
            })
            .collect()
    }

    /// True while this process runs: its pid exists with the same start
    /// time and is not a zombie (dead, waiting for its reaper: backends
    /// orphaned by a killed postmaster go to init).
    pub fn runs(&self) -> bool {
        Self::stat(self.pid)
            .is_some_and(|(state, _, start)| start == self.start && state != "Z" && state != "X")
    }
}

/// A TCP port on 127.0.0.1 free at the time of asking.
fn free_port() -> Result<u16, HarnessError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| HarnessError::io("bind a probe port", e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| HarnessError::io("probe port address", e))?;
    Ok(addr.port())
}

/// `bytes` random bytes from the OS, as lowercase hex.
pub(crate) fn random_hex(bytes: usize) -> Result<String, HarnessError> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| HarnessError::io("read /dev/urandom", e))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}
