//! `hsmd-bench soak`: hsmd and kms-frontend on one SoftHSMv2 token under a
//! mixed load for a given number of minutes, then stopped.
//!
//! Half the clients speak hsmd's protocol on its socket, half KMIP 2.1 over
//! HTTP to kms-frontend on 127.0.0.1 (nothing listens beyond the machine).
//! On each side one client in eight is an admin creating, using and
//! destroying keys of its own; the others are users encrypting, signing and
//! listing with the bench keys. Every minute it prints the operations, the
//! errors by code and both servers' RSS; at the end the totals, the check
//! that no key was left behind, and the JSON report (`--out`). It exits
//! non-zero on any error. See docs/reliability.md "Soak".

mod http;
mod socket;
mod tally;

use crate::frontend::HSMD_CONNECTIONS;
use crate::procstat::rss_kib;
use crate::report::{command_line, loadavg};
use crate::servers::{Hsmd, HsmdOptions, KmsFrontend};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tally::{Counts, Tally};

/// Command line of `hsmd-bench soak`.
#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// How long the load runs, in minutes.
    #[arg(long, default_value_t = 10)]
    minutes: u64,
    /// Seconds in a reporting period ("minute"; shorter for a quick try).
    #[arg(long, default_value_t = 60, hide = true)]
    minute_secs: u64,
    /// Clients: half on hsmd's socket, half over HTTP; one in eight of each an admin.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// No admins: every client a user (nothing is created or destroyed), to
    /// tell hsmd's memory from the token library's per-object records.
    #[arg(long)]
    no_churn: bool,
    /// hsmd's `sessions_per_slot` (its default for softhsm2 is 4).
    #[arg(long, default_value_t = 4)]
    sessions_per_slot: usize,
    /// `HSMD_LOG` for hsmd (its default, `info`: one audit line per request).
    #[arg(long, default_value = "info")]
    hsmd_log: String,
    /// Worker threads of the clients' runtime.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Where to write the JSON report.
    #[arg(long, default_value = "target/soak/latest.json")]
    out: PathBuf,
}

/// One reporting period.
#[derive(Debug, Serialize)]
struct Minute {
    /// 1-based.
    minute: u64,
    /// What the clients did in it.
    counts: Counts,
    /// hsmd's `VmRSS` at its end, KiB.
    hsmd_rss_kib: u64,
    /// kms-frontend's `VmRSS` at its end, KiB.
    frontend_rss_kib: u64,
}

/// The JSON report.
#[derive(Debug, Serialize)]
struct Report {
    git_commit: String,
    git_dirty: bool,
    softhsm: String,
    minutes: u64,
    minute_secs: u64,
    clients: usize,
    socket_admins: usize,
    socket_users: usize,
    http_admins: usize,
    http_users: usize,
    sessions_per_slot: usize,
    hsmd_log: String,
    loadavg_start: String,
    loadavg_end: String,
    per_minute: Vec<Minute>,
    total: Counts,
    first_error_messages: BTreeMap<String, String>,
    hsmd_peak_kib: u64,
    frontend_peak_kib: u64,
    keys_left_behind: Vec<String>,
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn print_minute(m: &Minute) {
    let side = |prefix: &str| -> u64 {
        m.counts
            .ops
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    };
    println!(
        "minute {:>3}: {:>7} operations (socket {}, http {}), {} errors; RSS hsmd {}, kms-frontend {}",
        m.minute,
        m.counts.total_ops(),
        side("hsmd"),
        side("kmip"),
        m.counts.total_errors(),
        mib(m.hsmd_rss_kib),
        mib(m.frontend_rss_kib)
    );
    for (kind, n) in &m.counts.errors {
        println!("             {n:>7} x {kind}");
    }
}

/// Splits `n` clients of one side into (admins, users): one in eight an
/// admin, none when `churn` is false.
fn split(n: usize, churn: bool) -> (usize, usize) {
    let admins = match churn {
        true => n.div_ceil(8).min(n),
        false => 0,
    };
    (admins, n - admins)
}

/// Runs the soak. Errors: a server does not start, or the run saw errors
/// or left keys behind (after printing and writing everything).
pub fn run(args: SoakArgs, hsmd_bin: PathBuf, frontend_bin: PathBuf) -> Result<()> {
    if args.minutes == 0 || args.clients < 2 || args.minute_secs == 0 {
        bail!("--minutes and --minute-secs must be at least 1, --clients at least 2");
    }
    let socket_clients = args.clients - args.clients / 2;
    let (socket_admins, socket_users) = split(socket_clients, !args.no_churn);
    let (http_admins, http_users) = split(args.clients / 2, !args.no_churn);
    let token = crate::servers::token("hsmd-soak")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .thread_name("soak-client")
        .enable_all()
        .build()?;
    let hsmd = Hsmd::start(
        &token,
        &HsmdOptions {
            binary: &hsmd_bin,
            sessions: args.sessions_per_slot,
            log_level: &args.hsmd_log,
            connections: socket_clients + HSMD_CONNECTIONS + 2,
        },
    )?;
    rt.block_on(crate::remote::create_keys(&hsmd.socket, token.slot))?;
    let frontend = KmsFrontend::start(&frontend_bin, &token, &hsmd.socket, args.clients, None)?;
    let softhsm = command_line("softhsm2-util", &["--version"]).unwrap_or_default();
    println!(
        "hsmd-bench soak: {} minutes, {} clients (socket: {socket_admins} admins, {socket_users} users; http: {http_admins} admins, {http_users} users), sessions_per_slot {}, HSMD_LOG {}, SoftHSM {softhsm}, load {}",
        args.minutes,
        args.clients,
        args.sessions_per_slot,
        args.hsmd_log,
        loadavg()
    );
    let loadavg_start = loadavg();
    let minute = Duration::from_secs(args.minute_secs);
    let start = Instant::now();
    let deadline = start + minute * u32::try_from(args.minutes).context("--minutes")?;
    let tally = Arc::new(Tally::default());
    let mut tasks = Vec::new();
    for n in 0..socket_clients {
        let lane = socket::Lane {
            socket: hsmd.socket.clone(),
            slot: token.slot,
            n,
            tally: tally.clone(),
            deadline,
        };
        tasks.push(match n < socket_admins {
            true => rt.spawn(lane.admin()),
            false => rt.spawn(lane.user()),
        });
    }
    for n in 0..args.clients / 2 {
        let lane = http::Lane {
            addr: frontend.addr,
            slot: token.slot,
            n,
            tally: tally.clone(),
            deadline,
        };
        tasks.push(match n < http_admins {
            true => rt.spawn(lane.admin()),
            false => rt.spawn(lane.user()),
        });
    }
    let mut per_minute = Vec::new();
    for m in 1..=args.minutes {
        let end = start + minute * u32::try_from(m).context("--minutes")?;
        std::thread::sleep(end.saturating_duration_since(Instant::now()));
        let mut counts = tally.take_minute();
        if m == args.minutes {
            // The operations under way at the deadline end this minute.
            for t in tasks.drain(..) {
                rt.block_on(t)?;
            }
            let rest = tally.take_minute();
            for (k, v) in rest.ops {
                *counts.ops.entry(k).or_default() += v;
            }
            for (k, v) in rest.errors {
                *counts.errors.entry(k).or_default() += v;
            }
        }
        let sample = Minute {
            minute: m,
            counts,
            hsmd_rss_kib: rss_kib(hsmd.pid)?.0,
            frontend_rss_kib: rss_kib(frontend.pid)?.0,
        };
        print_minute(&sample);
        per_minute.push(sample);
    }
    let total = tally.total();
    let keys_left_behind: Vec<String> = rt
        .block_on(socket::labels(&hsmd.socket, token.slot))?
        .into_iter()
        .filter(|l| l.starts_with("soak-"))
        .collect();
    let hsmd_peak_kib = rss_kib(hsmd.pid)?.1;
    let frontend_peak_kib = rss_kib(frontend.pid)?.1;
    frontend.stop()?;
    hsmd.stop()?;
    let report = Report {
        git_commit: command_line("git", &["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into()),
        git_dirty: command_line("git", &["status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|s| !s.is_empty()),
        softhsm,
        minutes: args.minutes,
        minute_secs: args.minute_secs,
        clients: args.clients,
        socket_admins,
        socket_users,
        http_admins,
        http_users,
        sessions_per_slot: args.sessions_per_slot,
        hsmd_log: args.hsmd_log.clone(),
        loadavg_start,
        loadavg_end: loadavg(),
        per_minute,
        total,
        first_error_messages: tally.first_messages(),
        hsmd_peak_kib,
        frontend_peak_kib,
        keys_left_behind,
    };
    print_summary(&report);
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!("JSON report: {}", args.out.display());
    let errors = report.total.total_errors();
    if errors > 0 || !report.keys_left_behind.is_empty() {
        bail!(
            "the soak saw {errors} errors and left {} keys behind",
            report.keys_left_behind.len()
        );
    }
    Ok(())
}

fn print_summary(r: &Report) {
    let secs = (r.minutes * r.minute_secs) as f64;
    println!(
        "total: {} operations in {} minutes ({:.0}/s), {} errors",
        r.total.total_ops(),
        r.minutes,
        r.total.total_ops() as f64 / secs,
        r.total.total_errors()
    );
    for (op, n) in &r.total.ops {
        println!("  {n:>9}  {op}");
    }
    for (kind, n) in &r.total.errors {
        let first = r.first_error_messages.get(kind).map_or("", String::as_str);
        println!("  error {n:>7} x {kind}: {first}");
    }
    let after_first = |f: fn(&Minute) -> u64| -> Option<(u64, u64)> {
        let v: Vec<u64> = r.per_minute.iter().skip(1).map(f).collect();
        Some((*v.iter().min()?, *v.iter().max()?))
    };
    for (name, range, peak) in [
        ("hsmd", after_first(|m| m.hsmd_rss_kib), r.hsmd_peak_kib),
        (
            "kms-frontend",
            after_first(|m| m.frontend_rss_kib),
            r.frontend_peak_kib,
        ),
    ] {
        match range {
            Some((lo, hi)) => println!(
                "RSS {name} after the first minute: {} to {} (spread {}), peak {}",
                mib(lo),
                mib(hi),
                mib(hi - lo),
                mib(peak)
            ),
            None => println!("RSS {name}: peak {}", mib(peak)),
        }
    }
    println!(
        "keys left behind by the admins: {}",
        match r.keys_left_behind.is_empty() {
            true => "none".to_owned(),
            false => r.keys_left_behind.join(", "),
        }
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_client_in_eight_is_an_admin() {
        assert_eq!(super::split(32, true), (4, 28));
        assert_eq!(super::split(1, true), (1, 0));
        assert_eq!(super::split(9, true), (2, 7));
        assert_eq!(super::split(32, false), (0, 32));
    }
}
