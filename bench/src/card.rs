//! The card section (`--card`): the same comparison as on SoftHSMv2 on the
//! emulated SmartCard-HSM (the rig of `../shared/card-stack`, its README;
//! docs/smartcard-hsm.md "Testing on the card"), with the emulator's
//! per-APDU delay `CARD_DELAY_MS` (default 25 ms, closer to a physical
//! card).
//!
//! Under the rig's lock (`/tmp/card-rig.lock`, taken here and held until
//! the section ends; the lock's descriptor is closed in the rig's daemons):
//! a fresh card (`STATE=initialized up.sh`), hsmd on it with `hsm_model =
//! "smartcardhsm"`, an AES-256 HSM key and the AES-256 KEK created on the
//! card through hsmd, kms-frontend with `--key-encryption-key
//! hsm::1::bench-kek`, the KMS key created through KMIP Create (wrapped on
//! the card with `aes_cbc_pad`: the card has no AES-GCM). Then, at each N,
//! the frontend's AES-CBC 1 KiB Encrypt with the HSM key (the card's own
//! AES) and AES-GCM and AES-CBC 1 KiB with the KMS key, and the cost of a
//! cache miss. `down.sh` stops the rig at the end.

use crate::cell::{Mode, Servers};
use crate::frontend::{self, Connection};
use crate::kek;
use crate::report::{self, CardReport};
use crate::servers::KmsFrontend;
use crate::workload::{Workload, AES_LABEL};
use anyhow::{bail, Context, Result};
use hsmd_e2e::card::{CARD_LIB, CARD_SLOT};
use hsmd_e2e::{Daemon, Launch, Token, DAEMON_USER, PIN};
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The rig's lock file, shared with `scripts/card-test`.
const LOCK: &str = "/tmp/card-rig.lock";
/// Fresh KMS keys the card's miss measurement creates (each miss is an
/// unwrap on the card, tens of milliseconds).
const MISS_KEYS: usize = 8;

/// What `--card` asks for.
pub struct CardOptions<'a> {
    /// The rig's directory (`up.sh`, `down.sh`).
    pub rig: &'a Path,
    /// The emulator's delay per APDU, ms.
    pub delay_ms: u64,
    /// Numbers of HTTP connections.
    pub n: &'a [usize],
    /// Warm-up before each window.
    pub warmup: Duration,
    /// Measuring window of each cell.
    pub duration: Duration,
    /// The hsmd binary.
    pub hsmd: &'a Path,
    /// The kms-frontend binary.
    pub kms_frontend: &'a Path,
}

impl CardReport {
    fn skipped(why: String, o: &CardOptions<'_>) -> Self {
        println!("card: skipped: {why}");
        Self {
            measured: false,
            skipped: Some(why),
            card_delay_ms: o.delay_ms,
            warmup_ms: o.warmup.as_millis() as u64,
            duration_ms: o.duration.as_millis() as u64,
            cells: Vec::new(),
            ratios: Vec::new(),
            miss: None,
        }
    }
}

/// The rig's lock, held while it lives (`flock(2)` on [`LOCK`], released
/// when the file closes; opened close-on-exec, so the rig's daemons do not
/// keep it).
struct RigLock(#[allow(dead_code)] Flock<File>);

impl RigLock {
    fn take() -> Result<Self> {
        let open = || {
            File::options()
                .create(true)
                .append(true)
                .open(LOCK)
                .with_context(|| format!("cannot open {LOCK}"))
        };
        match Flock::lock(open()?, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Self(lock)),
            Err((file, _)) => {
                println!("card: waiting for the rig's lock {LOCK} (another user of the rig)");
                Flock::lock(file, FlockArg::LockExclusive)
                    .map(Self)
                    .map_err(|(_, e)| anyhow::anyhow!("flock {LOCK}: {e}"))
            }
        }
    }
}

/// Runs one of the rig's scripts with `env`.
///
/// Errors: it failed (its output in the message).
fn script(rig: &Path, name: &str, env: &[(&str, String)]) -> Result<()> {
    let out = Command::new(rig.join(name))
        .envs(env.iter().map(|(k, v)| (k, v.as_str())))
        .output()
        .with_context(|| format!("cannot run {}", rig.join(name).display()))?;
    if !out.status.success() {
        bail!(
            "{name} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Stops the rig when dropped (also on an error), then releases the lock.
struct RigUp<'a> {
    rig: &'a Path,
    _lock: RigLock,
}

impl Drop for RigUp<'_> {
    fn drop(&mut self) {
        let _ = script(self.rig, "down.sh", &[]);
    }
}

/// hsmd's configuration on the card: model smartcardhsm, slot 0x1 with the
/// card's user PIN, every acting identity an admin (as on SoftHSMv2), this
/// process's user a frontend, dropping to the harness's daemon user.
fn hsmd_toml(dir: &Token, n_max: usize) -> Result<String> {
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())?
        .context("the bench's uid has no user name")?;
    Ok(format!(
        "hsm_model = \"smartcardhsm\"\nhsm_library = \"{CARD_LIB}\"\nhsm_admin = \"*\"\n\
         hsm_slot = [{CARD_SLOT}]\nhsm_password = [\"{PIN}\"]\nsocket_path = \"{}\"\n\
         socket_mode = \"0600\"\nuser = \"{DAEMON_USER}\"\ngroup = \"{DAEMON_USER}\"\n\
         max_connections_per_user = {}\nfrontends = [\"{}\"]\n",
        dir.path("hsmd.sock").display(),
        (n_max + frontend::HSMD_CONNECTIONS + 1).max(32),
        me.name
    ))
}

/// The card section; a [`CardReport`] saying why when the rig is absent.
///
/// Errors: the rig, hsmd or the frontend failed once started.
pub fn run(rt: &tokio::runtime::Runtime, o: &CardOptions<'_>) -> Result<CardReport> {
    if !o.rig.join("up.sh").is_file() {
        return Ok(CardReport::skipped(
            format!(
                "no card rig at {} (shared/card-stack next to the repository, or --card-rig <dir>)",
                o.rig.display()
            ),
            o,
        ));
    }
    if !Path::new(CARD_LIB).is_file() {
        return Ok(CardReport::skipped(
            format!(
                "the rig is not built ({CARD_LIB} is missing): run {}",
                o.rig.join("build.sh").display()
            ),
            o,
        ));
    }
    if !nix::unistd::geteuid().is_root() {
        return Ok(CardReport::skipped(
            "the rig starts pcscd: run the bench as root".into(),
            o,
        ));
    }
    let started = Instant::now();
    let lock = RigLock::take()?;
    let env = [
        ("STATE", "initialized".to_owned()),
        ("CARD_DELAY_MS", o.delay_ms.to_string()),
    ];
    script(o.rig, "up.sh", &env)?;
    let _up = RigUp {
        rig: o.rig,
        _lock: lock,
    };
    println!(
        "card: fresh card up with CARD_DELAY_MS={} in {:.1} s",
        o.delay_ms,
        started.elapsed().as_secs_f64()
    );
    measure(rt, o)
}

/// Everything between the rig's start and its stop.
fn measure(rt: &tokio::runtime::Runtime, o: &CardOptions<'_>) -> Result<CardReport> {
    let dir = Token::scratch(CARD_SLOT);
    let n_max = o.n.iter().copied().max().unwrap_or(1);
    let toml = hsmd_toml(&dir, n_max)?;
    let launch = Launch {
        binary: Some(o.hsmd.to_owned()),
        env: vec![("HSMD_LOG".into(), "info".into())],
        log_file: Some(dir.path("hsmd-card.log")),
        ready_on_connect: true,
    };
    let mut hsmd = Daemon::try_start(&dir, &toml, &[], &launch)?;
    let hsmd_pid = i32::try_from(hsmd.pid())?;
    let t = Instant::now();
    rt.block_on(crate::remote::create_aes_keys(
        &hsmd.socket,
        CARD_SLOT,
        &[AES_LABEL, kek::KEK_LABEL],
    ))?;
    println!(
        "card: HSM key and KEK generated on the card in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let kek_uid = kek::kek_uid(CARD_SLOT);
    let f = KmsFrontend::start(o.kms_frontend, &dir, &hsmd.socket, 0, Some(&kek_uid))?;
    let mut one = rt.block_on(frontend::connect(f.addr, 1))?;
    let first = one.first_mut().context("no connection")?;
    let t = Instant::now();
    rt.block_on(kek::create_kms_key(first, kek::KMS_KEY_UID))?;
    println!(
        "card: KMS key created (wrapped on the card) in {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let miss = rt.block_on(kek::miss_cost(
        first,
        Workload::AesGcm1k,
        MISS_KEYS,
        "bench-card-miss",
        (f.pid, hsmd_pid),
    ))?;
    kek::print_miss("card", &miss);
    let servers = Servers {
        hsmd: Some(hsmd_pid),
        frontend: Some(f.pid),
        second_frontend: None,
    };
    let hsm_uid = format!("hsm::{CARD_SLOT}::{AES_LABEL}");
    let mut cells = Vec::new();
    drop(one);
    for &n in o.n {
        // Fresh connections for each N: the frontend closes keep-alive
        // connections idle for longer than its header read timeout.
        let mut conns = rt.block_on(frontend::connect(f.addr, n))?;
        let plan = [
            (Mode::Frontend, Workload::AesCbc1k, hsm_uid.as_str()),
            (Mode::Wrapped, Workload::AesGcm1k, kek::KMS_KEY_UID),
            (Mode::Wrapped, Workload::AesCbc1k, kek::KMS_KEY_UID),
        ];
        for (mode, w, uid) in plan {
            let request = frontend::request(w, uid).context("an encryption workload")?;
            let taken: Vec<Connection> = std::mem::take(&mut conns);
            let (c, back) = crate::run_frontend(
                rt,
                taken,
                servers,
                Arc::new(request),
                (w, mode),
                o.warmup,
                o.duration,
            )?;
            conns.extend(back);
            report::print_cell(&c);
            cells.push(c);
        }
    }
    let mut ratios = kek::ratios("card", &cells, Workload::AesGcm1k, Workload::AesCbc1k);
    ratios.extend(kek::ratios(
        "card",
        &cells,
        Workload::AesCbc1k,
        Workload::AesCbc1k,
    ));
    f.stop()?;
    hsmd.try_stop(hsmd_e2e::START_TIMEOUT)?;
    Ok(CardReport {
        measured: true,
        skipped: None,
        card_delay_ms: o.delay_ms,
        warmup_ms: o.warmup.as_millis() as u64,
        duration_ms: o.duration.as_millis() as u64,
        cells,
        ratios,
        miss: Some(miss),
    })
}

/// The rig's directory: `given`, else `$CARD_STACK`, else
/// `../shared/card-stack` from the working directory (the repository's
/// root under `scripts/bench`), as `scripts/card-test` finds it.
pub fn rig_dir(given: Option<&PathBuf>) -> PathBuf {
    given
        .cloned()
        .or_else(|| std::env::var_os("CARD_STACK").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("../shared/card-stack"))
}
