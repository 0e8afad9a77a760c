//! The table on stdout, the targets of the performance issue, and the JSON
//! report (`target/bench/latest.json`).

use crate::cell::{Cell, Mode};
use crate::kek::{MissCost, Ratio};
use crate::workload::Workload;
use crate::{Args, Memory};
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// How the frontend mode is run.
pub const FRONTEND_NOTE: &str = "via the frontend: kms-frontend in front of the same hsmd (no authentication, its default 4 connections to hsmd, --key-encryption-key hsm::<slot>::bench-kek), N HTTP/1.1 keep-alive connections, one KMIP request at a time each (D = 1); path frontend: the HSM key; path wrapped: a KMS key wrapped by the KEK (software, from the unwrapped cache); random bytes: n/a (no KMIP operation for them)";

/// Where and how the run was made.
#[derive(Debug, Clone, Serialize)]
pub struct Meta {
    /// `git rev-parse HEAD` of the working directory.
    pub git_commit: String,
    /// True when tracked files differ from that commit.
    pub git_dirty: bool,
    /// Cores available to the bench.
    pub cores: usize,
    /// CPU model (`/proc/cpuinfo`).
    pub cpu: String,
    /// Kernel release.
    pub kernel: String,
    /// `softhsm2-util --version`.
    pub softhsm: String,
    /// Seconds since the epoch at the start.
    pub started_unix: u64,
    /// N values.
    pub n: Vec<usize>,
    /// D values.
    pub depth: Vec<usize>,
    /// Workloads run.
    pub workloads: Vec<Workload>,
    /// Measuring window per cell, ms.
    pub duration_ms: u64,
    /// Warm-up per cell, ms.
    pub warmup_ms: u64,
    /// hsmd's `sessions_per_slot`: `"N"` (same as the direct mode) or a number.
    pub sessions_per_slot: String,
    /// `HSMD_LOG` given to hsmd.
    pub hsmd_log: String,
    /// Worker threads of the clients' runtime.
    pub client_threads: usize,
    /// `/proc/loadavg` when the run started (other work on the machine).
    pub loadavg_start: String,
    /// `/proc/loadavg` when the run ended.
    pub loadavg_end: String,
}

/// `/proc/loadavg` (1, 5, 15 minute load averages, runnable/total tasks, last pid).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// The trimmed stdout of `cmd args`, None when it cannot run or fails.
pub fn command_line(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl Meta {
    /// Collects the machine's and the repository's facts.
    pub fn collect(cores: usize, args: &Args, workloads: &[Workload], token_dir: &Path) -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_default();
        let softhsm = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", token_dir.join("softhsm2.conf"))
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        Self {
            git_commit: command_line("git", &["rev-parse", "HEAD"])
                .unwrap_or_else(|| "unknown".into()),
            git_dirty: command_line("git", &["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty()),
            cores,
            cpu,
            kernel: command_line("uname", &["-r"]).unwrap_or_default(),
            softhsm,
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            n: args.n.clone(),
            depth: args.depth.clone(),
            workloads: workloads.to_vec(),
            duration_ms: args.duration_ms,
            warmup_ms: args.warmup_ms,
            sessions_per_slot: args
                .sessions_per_slot
                .map_or_else(|| "N".to_owned(), |s| s.to_string()),
            hsmd_log: args.hsmd_log.clone(),
            client_threads: args.client_threads.unwrap_or(cores),
            loadavg_start: loadavg(),
            loadavg_end: String::new(),
        }
    }
}

/// Prints what the run is and the table's header.
pub fn print_header(m: &Meta) {
    println!(
        "hsmd-bench: commit {}{}, {} cores ({}), SoftHSM {}, kernel {}",
        short(&m.git_commit),
        if m.git_dirty {
            " (with local changes)"
        } else {
            ""
        },
        m.cores,
        m.cpu,
        m.softhsm,
        m.kernel
    );
    println!(
        "each cell: {} ms warm-up, {} ms measured; hsmd sessions_per_slot = {}, HSMD_LOG = {}, client runtime {} threads",
        m.warmup_ms, m.duration_ms, m.sessions_per_slot, m.hsmd_log, m.client_threads
    );
    println!("{FRONTEND_NOTE}");
    println!("load average at the start: {}", m.loadavg_start);
    println!();
    println!(
        "{:<19} {:>3} {:<8} {:>3} {:>10} {:>9} {:>9} {:>11} {:>9} {:>9} {:>7}",
        "workload",
        "N",
        "path",
        "D",
        "ops/s",
        "p50 µs",
        "p99 µs",
        "cpu/op µs",
        "hsmd µs",
        "kms µs",
        "vs dir"
    );
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// Prints one row.
pub fn print_cell(c: &Cell) {
    let mode = match c.mode {
        Mode::Direct => "direct",
        Mode::Hsmd => "hsmd",
        Mode::Frontend => "frontend",
        Mode::Wrapped => "wrapped",
    };
    let depth = c.depth.map_or_else(|| "-".to_owned(), |d| d.to_string());
    let us = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    let ratio = match (c.mode, c.ratio_to_direct) {
        (Mode::Direct, _) => "1".to_owned(),
        (_, Some(r)) => format!("{r:.3}"),
        // The card's cells have no direct cell to compare with.
        (_, None) => "-".to_owned(),
    };
    let errors = if c.errors > 0 {
        format!(
            "  ({} errors: {})",
            c.errors,
            c.first_error.as_deref().unwrap_or("")
        )
    } else {
        String::new()
    };
    println!(
        "{:<19} {:>3} {:<8} {:>3} {:>10.0} {:>9.1} {:>9.1} {:>11.1} {:>9} {:>9} {:>7}{errors}",
        c.name,
        c.n,
        mode,
        depth,
        c.ops_per_sec,
        c.p50_us,
        c.p99_us,
        c.cpu_per_op.bench_us,
        us(c.cpu_per_op.hsmd_us),
        us(c.cpu_per_op.frontend_us),
        ratio
    );
}

/// Prints the row of a cell that cannot be measured, with why.
pub fn print_na(w: Workload, n: usize, why: &str) {
    println!("{:<19} {:>3} {:<8} {:>3} {why}", w.name(), n, "frontend", 1);
}

/// One target of the issue and how the run did.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// What is measured.
    pub what: String,
    /// The goal, e.g. ">= 0.90".
    pub goal: String,
    /// The measured value.
    pub value: f64,
    /// Whether the goal is met.
    pub met: bool,
}

/// Everything the run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The run.
    pub meta: Meta,
    /// The frontend mode: how it ran, its memory (its cells are in `cells`).
    pub frontend: Frontend,
    /// Every cell, in run order.
    pub cells: Vec<Cell>,
    /// hsmd's RSS.
    pub hsmd_memory: Memory,
    /// KMS keys wrapped by the HSM KEK against HSM keys (issue 14).
    pub kek: KekReport,
    /// The targets of the performance issues.
    pub targets: Vec<Target>,
    /// Wall time of the run, seconds.
    pub wall_seconds: f64,
}

/// The frontend mode.
#[derive(Debug, Clone, Serialize)]
pub struct Frontend {
    /// False when the run skipped it (`--no-frontend`).
    pub measured: bool,
    /// How it is run.
    pub note: &'static str,
    /// The frontend's `--hsmd-connections`.
    pub hsmd_connections: usize,
    /// Requests per HTTP connection at a time.
    pub depth: usize,
    /// Workloads without a frontend cell, and why.
    pub not_measured: Vec<(Workload, &'static str)>,
    /// kms-frontend's RSS.
    pub memory: FrontendMemory,
}

impl Frontend {
    /// The frontend mode's description and memory.
    pub fn new(measured: bool, memory: FrontendMemory) -> Self {
        Self {
            measured,
            note: FRONTEND_NOTE,
            hsmd_connections: crate::frontend::HSMD_CONNECTIONS,
            depth: 1,
            not_measured: Workload::ALL
                .into_iter()
                .filter(|w| !crate::frontend::serves(*w))
                .map(|w| (w, crate::frontend::RANDOM_NOTE))
                .collect(),
            memory,
        }
    }
}

/// kms-frontend's memory over the run, KiB, per instance (one per N), as (N, KiB).
#[derive(Debug, Clone, Default, Serialize)]
pub struct FrontendMemory {
    /// `VmRSS` once listening, before any HTTP connection.
    pub idle_kib: Vec<(usize, u64)>,
    /// `VmRSS` after its HTTP clients disconnected.
    pub after_kib: Vec<(usize, u64)>,
    /// `VmHWM` (peak RSS) when it stopped.
    pub peak_kib: Vec<(usize, u64)>,
}

/// KMS keys wrapped by the HSM KEK (issue 14 item 7): the wrapped cells
/// are in [`Report::cells`] (mode `wrapped`), the card's in `card`.
#[derive(Debug, Clone, Serialize)]
pub struct KekReport {
    /// The frontend's `--key-encryption-key` on SoftHSMv2.
    pub key_encryption_key: String,
    /// The KMS key of the wrapped cells.
    pub kms_key: &'static str,
    /// The cost of a cache miss on SoftHSMv2.
    pub miss: Option<MissCost>,
    /// Wrapped against HSM key, per AES workload and N, on SoftHSMv2.
    pub ratios: Vec<Ratio>,
    /// The same on the emulated SmartCard-HSM (`--card`).
    pub card: Option<CardReport>,
}

impl KekReport {
    /// The section from its parts.
    pub fn new(
        key_encryption_key: String,
        miss: Option<MissCost>,
        ratios: Vec<Ratio>,
        card: Option<CardReport>,
    ) -> Self {
        Self {
            key_encryption_key,
            kms_key: crate::kek::KMS_KEY_UID,
            miss,
            ratios,
            card,
        }
    }

    /// The issue's targets: at N = 8, the wrapped key's AES-GCM 1 KiB rate
    /// at least 3 times the HSM key's on SoftHSMv2, and at least 30 times
    /// the card's AES-CBC 1 KiB rate on the card rig.
    fn targets(&self) -> Vec<Target> {
        let card = self.card.iter().flat_map(|c| &c.ratios);
        self.ratios
            .iter()
            .chain(card)
            .filter(|r| r.n == 8 && r.wrapped == Workload::AesGcm1k)
            .map(|r| {
                let goal = if r.rig == "card" { 30.0 } else { 3.0 };
                Target {
                    what: format!(
                        "{}: KMS key wrapped by the KEK ({}) vs HSM key ({}), N = 8",
                        r.rig,
                        r.wrapped.name(),
                        r.hsm_key.name()
                    ),
                    goal: format!(">= {goal:.0}"),
                    value: r.ratio,
                    met: r.ratio >= goal,
                }
            })
            .collect()
    }
}

fn ratio_targets(cells: &[Cell], w: Workload, n: Option<usize>, goal: f64) -> Vec<Target> {
    cells
        .iter()
        .filter(|c| c.mode == Mode::Hsmd && c.workload == w && n.is_none_or(|n| c.n == n))
        .map(|c| Target {
            what: format!(
                "{} via hsmd, N = {}, D = {}: ops/s vs direct",
                c.name,
                c.n,
                c.depth.unwrap_or(1)
            ),
            goal: format!(">= {goal:.2}"),
            value: c.ratio_to_direct.unwrap_or(0.0),
            met: c.ratio_to_direct.unwrap_or(0.0) >= goal,
        })
        .collect()
}

impl Report {
    /// Assembles the report and evaluates the targets.
    pub fn new(
        mut meta: Meta,
        frontend: Frontend,
        cells: Vec<Cell>,
        memory: Memory,
        kek: KekReport,
        wall: Duration,
    ) -> Self {
        meta.loadavg_end = loadavg();
        let mut targets = ratio_targets(&cells, Workload::AesGcm1k, Some(8), 0.90);
        targets.extend(ratio_targets(&cells, Workload::EcdsaP256, None, 0.97));
        for &(n, sessions, kib) in &memory.idle_kib {
            targets.push(Target {
                what: format!("hsmd RSS idle (started for N = {n}, {sessions} sessions), MiB"),
                goal: "<= 15".into(),
                value: kib as f64 / 1024.0,
                met: kib <= 15 * 1024,
            });
        }
        if let Some(kib) = memory.n64_peak_kib {
            targets.push(Target {
                what: "hsmd peak RSS (VmHWM) over the N = 64 cells, MiB".into(),
                goal: "<= 40".into(),
                value: kib as f64 / 1024.0,
                met: kib <= 40 * 1024,
            });
        }
        targets.extend(kek.targets());
        Self {
            meta,
            frontend,
            cells,
            hsmd_memory: memory,
            kek,
            targets,
            wall_seconds: wall.as_secs_f64(),
        }
    }

    /// Prints hsmd's memory and the targets.
    pub fn print_summary(&self) {
        println!();
        let m = &self.hsmd_memory;
        for (n, sessions, kib) in &m.idle_kib {
            println!(
                "hsmd RSS for N = {n:<2} ({sessions} sessions): idle {:.1} MiB",
                *kib as f64 / 1024.0
            );
        }
        for (n, kib) in &m.after_kib {
            println!(
                "hsmd RSS after the N = {n} cells, clients gone: {:.1} MiB",
                *kib as f64 / 1024.0
            );
        }
        if let (Some(max), Some(peak)) = (m.n64_rss_max_kib, m.n64_peak_kib) {
            println!(
                "hsmd RSS at N = 64: largest at a window's end {:.1} MiB, peak (VmHWM) {:.1} MiB",
                max as f64 / 1024.0,
                peak as f64 / 1024.0
            );
        }
        let f = &self.frontend.memory;
        for ((n, idle), ((_, after), (_, peak))) in
            f.idle_kib.iter().zip(f.after_kib.iter().zip(&f.peak_kib))
        {
            println!(
                "kms-frontend RSS for N = {n:<2}: idle {:.1} MiB, peak {:.1} MiB, after its clients left {:.1} MiB",
                *idle as f64 / 1024.0,
                *peak as f64 / 1024.0,
                *after as f64 / 1024.0
            );
        }
        let failed: u64 = self.cells.iter().map(|c| c.errors).sum();
        if failed > 0 {
            println!("FAILED operations in the windows: {failed} (see the rows marked errors)");
        }
        println!();
        println!("targets:");
        for t in &self.targets {
            println!(
                "  {} {:<68} {:>7.3} (goal {})",
                if t.met { "met    " } else { "MISSED " },
                t.what,
                t.value,
                t.goal
            );
        }
        println!(
            "run took {:.0} s; load average at the start {}, at the end {}",
            self.wall_seconds, self.meta.loadavg_start, self.meta.loadavg_end
        );
    }

    /// Writes the JSON report to `path`, creating its directory.
    pub fn write(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let json = serde_json::to_vec_pretty(self)?;
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// The card section's results.
#[derive(Debug, Clone, Serialize)]
pub struct CardReport {
    /// False when it did not run; then `skipped` says why.
    pub measured: bool,
    /// Why it did not run.
    pub skipped: Option<String>,
    /// `CARD_DELAY_MS` of the emulator.
    pub card_delay_ms: u64,
    /// Warm-up and window of each card cell, ms.
    pub warmup_ms: u64,
    /// Window of each card cell, ms.
    pub duration_ms: u64,
    /// The cells: HSM key (AES-CBC through the card) and KMS key wrapped by
    /// the card's KEK (AES-GCM and AES-CBC in software), at each N.
    pub cells: Vec<Cell>,
    /// The wrapped key's AES-GCM 1 KiB against the card's AES-CBC 1 KiB, and
    /// AES-CBC against AES-CBC, at each N.
    pub ratios: Vec<Ratio>,
    /// The cost of a cache miss (an unwrap on the card).
    pub miss: Option<MissCost>,
}
