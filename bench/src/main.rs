//! `hsmd-bench`: what hsmd and the KMS frontend cost on top of the PKCS#11
//! token, measured side by side in one run on one SoftHSMv2 token.
//!
//! For every workload and every N it measures **direct** (in-process cryptoki
//! calls from N threads, each with its own logged-in session: the limit),
//! **via hsmd** (N client connections, each pipelining up to D requests) and
//! **via the frontend** (N HTTP/1.1 keep-alive connections to kms-frontend,
//! one KMIP request at a time each), and reports operations per second,
//! p50/p99 latency, CPU time per operation of each process, the ratio to
//! direct at the same N, and the servers' RSS. The table goes to stdout, the
//! same data as JSON to `--out` (default `target/bench/latest.json`). See
//! `docs/performance.md`.
//!
//! The frontend runs with the HSM KEK `bench-kek` as its
//! `--key-encryption-key`; beside each of its AES cells the bench measures
//! the same KMIP Encrypt with a KMS key wrapped by that KEK (the `wrapped`
//! path, issue 14), the ratio of the two, and the cost of an unwrapped-cache
//! miss (the `kek` module). `--card` repeats that comparison on the
//! emulated SmartCard-HSM (the `card` module).
//!
//! `hsmd-bench soak` instead runs hsmd and kms-frontend under a mixed load
//! (admins creating and destroying, users encrypting, signing and listing)
//! for a given number of minutes: see the `soak` module and
//! `docs/reliability.md`.

// No unwrap, expect or panic outside tests: bad input gets an answer, never
// a crash (docs/design.md "Rules").
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod card;
mod cell;
mod direct;
mod frontend;
mod kek;
mod procstat;
mod remote;
mod report;
mod rowread;
mod scaleout;
mod servers;
mod soak;
mod workload;

use anyhow::{bail, Context, Result};
use cell::{Cell, Mode, Phase, Servers, ThreadStats};
use clap::Parser;
use servers::{Hsmd, HsmdOptions, KmsFrontend};
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use workload::Workload;

/// Command line of `hsmd-bench`.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "Benchmark hsmd against direct PKCS#11 calls on one SoftHSMv2 token"
)]
struct Args {
    /// `soak`: a long mixed load instead of the benchmark.
    #[command(subcommand)]
    command: Option<Command>,
    /// Numbers of threads (direct) and client connections (hsmd).
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    n: Vec<usize>,
    /// Requests in flight per hsmd connection.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    depth: Vec<usize>,
    /// Workloads to run (default: all).
    #[arg(long, value_delimiter = ',')]
    workload: Vec<Workload>,
    /// Measuring window of each cell, in milliseconds.
    #[arg(long, default_value_t = 800)]
    duration_ms: u64,
    /// Warm-up before each window, in milliseconds.
    #[arg(long, default_value_t = 200)]
    warmup_ms: u64,
    /// hsmd's `sessions_per_slot`; default: N, the direct mode's session count.
    #[arg(long)]
    sessions_per_slot: Option<usize>,
    /// `HSMD_LOG` for hsmd (its default, `info`, logs one audit line per request).
    #[arg(long, default_value = "info")]
    hsmd_log: String,
    /// Worker threads of the clients' tokio runtime (default: the core count).
    #[arg(long)]
    client_threads: Option<usize>,
    /// The PKCS#11 module.
    #[arg(long, default_value = "/usr/lib/softhsm/libsofthsm2.so")]
    module: PathBuf,
    /// The hsmd binary (default: `hsmd` beside this program).
    #[arg(long)]
    hsmd: Option<PathBuf>,
    /// The kms-frontend binary (default: `kms-frontend` beside this program).
    #[arg(long)]
    kms_frontend: Option<PathBuf>,
    /// Skip the frontend mode.
    #[arg(long)]
    no_frontend: bool,
    /// Fresh KMS keys whose first Encrypt measures a cache miss (0: none).
    #[arg(long, default_value_t = kek::MISS_KEYS)]
    miss_keys: usize,
    /// Also measure on the emulated SmartCard-HSM (skipped with one line
    /// when the rig is absent).
    #[arg(long)]
    card: bool,
    /// The card rig's directory [default: $CARD_STACK, else ../shared/card-stack].
    #[arg(long)]
    card_rig: Option<PathBuf>,
    /// The card emulator's delay per APDU, ms (`CARD_DELAY_MS`).
    #[arg(long, default_value_t = 25)]
    card_delay_ms: u64,
    /// Measuring window of each card cell, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    card_duration_ms: u64,
    /// Warm-up before each card window, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    card_warmup_ms: u64,
    /// Only the card section (no SoftHSMv2 token; implies --card).
    #[arg(long)]
    card_only: bool,
    /// Where to write the JSON report.
    #[arg(long, default_value = "target/bench/latest.json")]
    out: PathBuf,
    /// Instead of the benchmark: one frontend on SQLite, one on PostgreSQL
    /// and two on the same PostgreSQL, KMIP Encrypt with a KEK-wrapped KMS
    /// key at each --n (skipped with one line without PostgreSQL's server
    /// binaries); see the `scaleout` module.
    #[arg(long)]
    scale_out: bool,
    /// Measuring window of each scale-out cell, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    scale_out_duration_ms: u64,
    /// Warm-up before each scale-out window, in milliseconds.
    #[arg(long, default_value_t = 500)]
    scale_out_warmup_ms: u64,
    /// Queries of each direct database read of the scale-out section.
    #[arg(long, default_value_t = 20_000)]
    scale_out_queries: usize,
    /// Where to write the scale-out section's JSON report.
    #[arg(long, default_value = "target/bench/scale-out.json")]
    scale_out_report: PathBuf,
}

/// What to run instead of the benchmark.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// hsmd and kms-frontend under 64 clients (admins creating and
    /// destroying keys, users encrypting, signing and listing) for a given
    /// number of minutes; operations, errors by code and RSS each minute.
    Soak(soak::SoakArgs),
}

/// hsmd's memory over the run, KiB.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Memory {
    /// `VmRSS` of each hsmd instance once listening, before any connection,
    /// as (N, sessions_per_slot, KiB).
    pub idle_kib: Vec<(usize, usize, u64)>,
    /// Largest `VmRSS` at the end of an N = 64 window (all workloads and depths).
    pub n64_rss_max_kib: Option<u64>,
    /// `VmHWM` (peak RSS) of the N = 64 instance when it stopped.
    pub n64_peak_kib: Option<u64>,
    /// `VmRSS` of each instance after its clients disconnected, as (N, KiB).
    pub after_kib: Vec<(usize, u64)>,
}

fn main() -> Result<()> {
    let mut args = Args::parse();
    if let Some(Command::Soak(soak_args)) = args.command.take() {
        let hsmd_bin = binary(args.hsmd.as_ref(), "hsmd")?;
        let frontend_bin = binary(args.kms_frontend.as_ref(), "kms-frontend")?;
        return soak::run(soak_args, hsmd_bin, frontend_bin);
    }
    if args.scale_out {
        return scale_out(&args);
    }
    let started = Instant::now();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workloads = if args.workload.is_empty() {
        Workload::ALL.to_vec()
    } else {
        args.workload.clone()
    };
    let hsmd_bin = binary(args.hsmd.as_ref(), "hsmd")?;
    let frontend_bin = if args.no_frontend {
        None
    } else {
        Some(binary(args.kms_frontend.as_ref(), "kms-frontend")?)
    };
    let warmup = Duration::from_millis(args.warmup_ms);
    let duration = Duration::from_millis(args.duration_ms);

    let token = servers::token("hsmd-bench")?;
    // The direct mode loads the module in this process: it must see the same token.
    // SAFETY-free: no other thread exists yet.
    std::env::set_var("SOFTHSM2_CONF", &token.conf);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.unwrap_or(cores))
        .thread_name("bench-client")
        .enable_all()
        .build()?;

    let meta = report::Meta::collect(cores, &args, &workloads, token.dir.path());
    report::print_header(&meta);

    let mut cells: Vec<Cell> = Vec::new();
    let mut memory = Memory::default();
    let mut fe_memory = report::FrontendMemory::default();
    let mut direct: Option<direct::Direct> = None;
    let mut miss: Option<kek::MissCost> = None;
    let kek_uid = kek::kek_uid(token.slot);
    let softhsm_ns: &[usize] = if args.card_only { &[] } else { &args.n };
    for (i, &n) in softhsm_ns.iter().enumerate() {
        let sessions = args.sessions_per_slot.unwrap_or(n);
        let hsmd = Hsmd::start(
            &token,
            &HsmdOptions {
                binary: &hsmd_bin,
                sessions,
                log_level: &args.hsmd_log,
                // The frontend's connections, and one spare (the key creation's).
                connections: n + frontend::HSMD_CONNECTIONS + 1,
            },
        )?;
        std::thread::sleep(Duration::from_millis(200));
        memory
            .idle_kib
            .push((n, sessions, procstat::rss_kib(hsmd.pid)?.0));
        if i == 0 {
            rt.block_on(remote::create_keys(&hsmd.socket, token.slot))?;
        }
        let direct = match &direct {
            Some(d) => d,
            None => direct.insert(direct::Direct::open(&args.module, token.slot)?),
        };
        let clients = rt.block_on(remote::connect(&hsmd.socket, n))?;
        let kms = match &frontend_bin {
            Some(bin) => {
                let f = KmsFrontend::start(bin, &token, &hsmd.socket, n, Some(&kek_uid))?;
                fe_memory.idle_kib.push((n, procstat::rss_kib(f.pid)?.0));
                if i == 0 {
                    let mut one = rt.block_on(frontend::connect(f.addr, 1))?;
                    let c = one.first_mut().context("no frontend connection")?;
                    rt.block_on(kek::create_kms_key(c, kek::KMS_KEY_UID))?;
                    if args.miss_keys > 0 {
                        let m = rt.block_on(kek::miss_cost(
                            c,
                            Workload::AesGcm1k,
                            args.miss_keys,
                            "bench-miss",
                            (f.pid, hsmd.pid),
                        ))?;
                        kek::print_miss("softhsm2", &m);
                        miss = Some(m);
                    }
                }
                Some(f)
            }
            None => None,
        };
        for &w in &workloads {
            let d = run_direct(direct, w, n, warmup, duration)?;
            report::print_cell(&d);
            let base = d.ops_per_sec;
            cells.push(d);
            for &depth in &args.depth {
                let mut c = run_hsmd(&rt, &clients, &hsmd, token.slot, w, depth, warmup, duration)?;
                c.ratio_to_direct = Some(if base > 0.0 {
                    c.ops_per_sec / base
                } else {
                    0.0
                });
                if n == 64 {
                    memory.n64_rss_max_kib = memory.n64_rss_max_kib.max(c.hsmd_rss_kib);
                }
                report::print_cell(&c);
                cells.push(c);
            }
            if let Some(f) = kms.as_ref() {
                if !frontend::serves(w) {
                    report::print_na(w, n, frontend::RANDOM_NOTE);
                    continue;
                }
                let servers = Servers {
                    hsmd: Some(hsmd.pid),
                    frontend: Some(f.pid),
                    second_frontend: None,
                };
                // Fresh connections for each workload: the frontend closes
                // keep-alive connections idle for longer than its header
                // read timeout, as long as the other modes' cells may take.
                let mut conns = Some(rt.block_on(frontend::connect(f.addr, n))?);
                let mut plan = vec![(Mode::Frontend, frontend::hsm_uid(w, token.slot))];
                if kek::measures(w) {
                    plan.push((Mode::Wrapped, kek::KMS_KEY_UID.to_owned()));
                }
                for (mode, uid) in plan {
                    let request = frontend::request(w, &uid).context("a served workload")?;
                    let taken = conns.take().context("frontend connections")?;
                    let (mut c, back) = run_frontend(
                        &rt,
                        taken,
                        servers,
                        Arc::new(request),
                        (w, mode),
                        warmup,
                        duration,
                    )?;
                    conns = Some(back);
                    c.ratio_to_direct = Some(if base > 0.0 {
                        c.ops_per_sec / base
                    } else {
                        0.0
                    });
                    report::print_cell(&c);
                    cells.push(c);
                }
            }
        }
        if let Some(f) = kms {
            std::thread::sleep(Duration::from_millis(100));
            let (rss, hwm) = procstat::rss_kib(f.pid)?;
            fe_memory.after_kib.push((n, rss));
            fe_memory.peak_kib.push((n, hwm));
            f.stop()?;
        }
        drop(clients);
        std::thread::sleep(Duration::from_millis(200));
        let (rss, hwm) = procstat::rss_kib(hsmd.pid)?;
        memory.after_kib.push((n, rss));
        if n == 64 {
            memory.n64_peak_kib = Some(hwm);
        }
        hsmd.stop()?;
    }
    let mut ratios = Vec::new();
    for &w in workloads.iter().filter(|w| kek::measures(**w)) {
        ratios.extend(kek::ratios("softhsm2", &cells, w, w));
    }
    kek::print_ratios(&ratios);
    let card = match (&frontend_bin, args.card || args.card_only) {
        (Some(bin), true) => {
            let rig = card::rig_dir(args.card_rig.as_ref());
            let c = card::run(
                &rt,
                &card::CardOptions {
                    rig: &rig,
                    delay_ms: args.card_delay_ms,
                    n: &args.n,
                    warmup: Duration::from_millis(args.card_warmup_ms),
                    duration: Duration::from_millis(args.card_duration_ms),
                    hsmd: &hsmd_bin,
                    kms_frontend: bin,
                },
            )?;
            kek::print_ratios(&c.ratios);
            Some(c)
        }
        _ => None,
    };
    let frontend = report::Frontend::new(frontend_bin.is_some(), fe_memory);
    let kek = report::KekReport::new(kek_uid, miss, ratios, card);
    let report = report::Report::new(meta, frontend, cells, memory, kek, started.elapsed());
    report.print_summary();
    report.write(&args.out)?;
    println!("JSON report: {}", args.out.display());
    Ok(())
}

/// `--scale-out`: the `scaleout` module's run; its JSON to
/// `--scale-out-report`.
fn scale_out(args: &Args) -> Result<()> {
    let hsmd = binary(args.hsmd.as_ref(), "hsmd")?;
    let kms_frontend = binary(args.kms_frontend.as_ref(), "kms-frontend")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.unwrap_or(cores))
        .thread_name("bench-client")
        .enable_all()
        .build()?;
    let opts = scaleout::ScaleOutOptions {
        ns: &args.n,
        warmup: Duration::from_millis(args.scale_out_warmup_ms),
        duration: Duration::from_millis(args.scale_out_duration_ms),
        queries: args.scale_out_queries,
        hsmd: &hsmd,
        hsmd_log: &args.hsmd_log,
        kms_frontend: &kms_frontend,
    };
    if let Some(report) = scaleout::run(&rt, &opts)? {
        let path = &args.scale_out_report;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("write {}", path.display()))?;
        println!("JSON report: {}", path.display());
    }
    Ok(())
}

/// `given`, or `name` beside this program; it must exist.
fn binary(given: Option<&PathBuf>, name: &str) -> Result<PathBuf> {
    let path = match given {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory beside this program")?
            .join(name),
    };
    if !path.is_file() {
        bail!(
            "{} is not built: cargo build --release -p {name} (scripts/bench does)",
            path.display()
        );
    }
    Ok(path)
}

fn run_direct(
    direct: &direct::Direct,
    w: Workload,
    n: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<Cell> {
    let phase = Arc::new(Phase::default());
    let ready = Arc::new(Barrier::new(n + 1));
    let threads = direct.spawn(w, n, phase.clone(), ready.clone());
    ready.wait();
    let window = cell::window(&phase, warmup, duration, Servers::default())?;
    let mut stats = ThreadStats::new();
    for t in threads {
        let s = t
            .join()
            .map_err(|_| anyhow::anyhow!("a direct thread panicked"))??;
        stats.merge(s);
    }
    Ok(cell::finish(w, Mode::Direct, n, None, window, stats))
}

#[allow(clippy::too_many_arguments)]
fn run_hsmd(
    rt: &tokio::runtime::Runtime,
    clients: &[hsmd_protocol::Client],
    hsmd: &Hsmd,
    slot: u64,
    w: Workload,
    depth: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<Cell> {
    let phase = Arc::new(Phase::default());
    let lanes = remote::spawn(rt, clients, depth, w, slot, phase.clone());
    let servers = Servers {
        hsmd: Some(hsmd.pid),
        frontend: None,
        second_frontend: None,
    };
    let window = cell::window(&phase, warmup, duration, servers)?;
    let mut stats = ThreadStats::new();
    for lane in lanes {
        stats.merge(rt.block_on(lane)??);
    }
    Ok(cell::finish(
        w,
        Mode::Hsmd,
        clients.len(),
        Some(depth),
        window,
        stats,
    ))
}

/// One frontend cell of `workload` (its `mode`: the HSM key or the
/// wrapped KMS key of `request`): a lane per connection; gives the
/// connections back.
pub(crate) fn run_frontend(
    rt: &tokio::runtime::Runtime,
    connections: Vec<frontend::Connection>,
    servers: Servers,
    request: Arc<frontend::Kmip>,
    (workload, mode): (Workload, Mode),
    warmup: Duration,
    duration: Duration,
) -> Result<(Cell, Vec<frontend::Connection>)> {
    let n = connections.len();
    let phase = Arc::new(Phase::default());
    let lanes = frontend::spawn(rt, connections, request, phase.clone());
    let window = cell::window(&phase, warmup, duration, servers)?;
    let mut stats = ThreadStats::new();
    let mut back = Vec::with_capacity(n);
    for lane in lanes {
        let (c, s) = rt.block_on(lane)??;
        back.push(c);
        stats.merge(s);
    }
    let cell = cell::finish(workload, mode, n, Some(1), window, stats);
    Ok((cell, back))
}
