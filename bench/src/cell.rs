//! One cell of the table: a workload, a mode, N (and D for hsmd), run for a
//! warm-up and then a fixed measuring window. Throughput counts the
//! operations that completed inside the window; latencies are those of the
//! same operations; CPU time is read from `/proc/<pid>/stat` at both ends of
//! the window, for the bench process, hsmd and the KMS frontend.

use crate::procstat;
use crate::workload::Workload;
use anyhow::Result;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

/// Where a cell is: warming up (the default), measuring, or stopping.
/// Shared by its workers.
#[derive(Debug, Default)]
pub struct Phase(AtomicU8);

const _: () = assert!(WARMUP == 0, "Phase::default() is the warm-up");

impl Phase {
    /// True while the window is open: completions now are counted.
    pub fn measuring(&self) -> bool {
        self.0.load(Ordering::Relaxed) == MEASURE
    }

    /// True once workers must stop.
    pub fn stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed) == STOP
    }

    fn set(&self, v: u8) {
        self.0.store(v, Ordering::Relaxed);
    }
}

/// What one worker (thread or pipelining lane) saw inside the window.
pub struct ThreadStats {
    hist: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
}

impl Default for ThreadStats {
    fn default() -> Self {
        Self::new()
    }
}

impl ThreadStats {
    /// Empty statistics; latencies in nanoseconds from 1 ns to 100 s, 3
    /// significant digits.
    #[allow(clippy::expect_used)] // constant bounds that new_with_bounds accepts
    pub fn new() -> Self {
        Self {
            hist: Histogram::new_with_bounds(1, 100_000_000_000, 3)
                .expect("valid histogram bounds"),
            errors: 0,
            first_error: None,
        }
    }

    /// Counts one completed operation of `latency` when `measuring`.
    pub fn record(&mut self, measuring: bool, latency: Duration) {
        if measuring {
            self.hist
                .saturating_record(latency.as_nanos().min(u64::MAX as u128) as u64);
        }
    }

    /// Counts one failed operation when `measuring` (keeps the first message).
    pub fn error(&mut self, measuring: bool, message: &str) {
        if measuring {
            self.errors += 1;
        }
        if self.first_error.is_none() {
            self.first_error = Some(message.to_owned());
        }
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: ThreadStats) {
        // Histograms of the same bounds always add up.
        let _ = self.hist.add(&other.hist);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// How a cell reached the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// In-process cryptoki calls.
    Direct,
    /// Through hsmd's socket.
    Hsmd,
    /// Through kms-frontend (KMIP over HTTP/1.1) and hsmd, with an HSM key.
    Frontend,
    /// Through kms-frontend with a KMS key wrapped by the HSM KEK: unwrapped
    /// once through hsmd, then in software from the frontend's cache.
    Wrapped,
}

/// CPU time per operation, in microseconds, of each process of the cell.
#[derive(Debug, Clone, Serialize)]
pub struct CpuPerOp {
    /// The bench process: the direct mode's token work, or the hsmd or
    /// HTTP clients.
    pub bench_us: f64,
    /// hsmd (null in direct cells).
    pub hsmd_us: Option<f64>,
    /// kms-frontend (frontend and wrapped cells only).
    pub frontend_us: Option<f64>,
}

/// One measured cell.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    /// Workload id.
    pub workload: Workload,
    /// Workload name as the table shows it.
    pub name: &'static str,
    /// Mode.
    pub mode: Mode,
    /// Threads (direct), client connections (hsmd) or HTTP connections
    /// (frontend, wrapped).
    pub n: usize,
    /// Requests in flight per connection (hsmd and frontend cells).
    pub depth: Option<usize>,
    /// Operations completed in the window.
    pub ops: u64,
    /// Length of the window, in seconds.
    pub seconds: f64,
    /// Operations per second.
    pub ops_per_sec: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// CPU time per operation.
    pub cpu_per_op: CpuPerOp,
    /// ops/s divided by the direct cell's ops/s at the same N.
    pub ratio_to_direct: Option<f64>,
    /// hsmd's resident set at the end of the window, KiB (hsmd and frontend cells).
    pub hsmd_rss_kib: Option<u64>,
    /// kms-frontend's resident set at the end of the window, KiB (frontend cells).
    pub frontend_rss_kib: Option<u64>,
    /// Failed operations in the window.
    pub errors: u64,
    /// The first failure's message, if any.
    pub first_error: Option<String>,
}

/// What the window measured, before the workers' statistics are in.
pub struct Window {
    seconds: f64,
    cpu_bench: f64,
    cpu_hsmd: Option<f64>,
    cpu_frontend: Option<f64>,
    rss_hsmd_kib: Option<u64>,
    rss_frontend_kib: Option<u64>,
}

/// The server processes of a cell, whose CPU time and RSS it reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct Servers {
    /// hsmd's pid (hsmd and frontend cells).
    pub hsmd: Option<i32>,
    /// kms-frontend's pid (frontend cells).
    pub frontend: Option<i32>,
    /// A second kms-frontend sharing the load (the scale-out cells): its
    /// CPU time is added to the first's, its RSS is not read.
    pub second_frontend: Option<i32>,
}

/// Warms up for `warmup`, opens the window for `duration`, then stops the
/// workers; reads CPU time of the bench and of the `servers` around the
/// window, and their RSS at its end.
pub fn window(
    phase: &Phase,
    warmup: Duration,
    duration: Duration,
    servers: Servers,
) -> Result<Window> {
    let own = procstat::own_pid();
    let cpu = |pid: Option<i32>| pid.map(procstat::cpu_seconds).transpose();
    let rss = |pid: Option<i32>| -> Result<Option<u64>> {
        Ok(pid.map(procstat::rss_kib).transpose()?.map(|(rss, _)| rss))
    };
    std::thread::sleep(warmup);
    let b0 = procstat::cpu_seconds(own)?;
    let both = |a: Option<f64>, b: Option<f64>| a.map(|a| a + b.unwrap_or(0.0));
    let (h0, f0) = (
        cpu(servers.hsmd)?,
        both(cpu(servers.frontend)?, cpu(servers.second_frontend)?),
    );
    let t0 = Instant::now();
    phase.set(MEASURE);
    std::thread::sleep(duration);
    phase.set(STOP);
    let seconds = t0.elapsed().as_secs_f64();
    let b1 = procstat::cpu_seconds(own)?;
    let (h1, f1) = (
        cpu(servers.hsmd)?,
        both(cpu(servers.frontend)?, cpu(servers.second_frontend)?),
    );
    Ok(Window {
        seconds,
        cpu_bench: b1 - b0,
        cpu_hsmd: h0.zip(h1).map(|(a, b)| b - a),
        cpu_frontend: f0.zip(f1).map(|(a, b)| b - a),
        rss_hsmd_kib: rss(servers.hsmd)?,
        rss_frontend_kib: rss(servers.frontend)?,
    })
}

/// Puts the window and the workers' statistics together.
pub fn finish(
    workload: Workload,
    mode: Mode,
    n: usize,
    depth: Option<usize>,
    w: Window,
    stats: ThreadStats,
) -> Cell {
    let ops = stats.hist.len();
    let per_op = |cpu: f64| {
        if ops == 0 {
            0.0
        } else {
            cpu * 1e6 / ops as f64
        }
    };
    let us = |q: f64| {
        if ops == 0 {
            0.0
        } else {
            stats.hist.value_at_quantile(q) as f64 / 1e3
        }
    };
    Cell {
        workload,
        name: workload.name(),
        mode,
        n,
        depth,
        ops,
        seconds: w.seconds,
        ops_per_sec: ops as f64 / w.seconds,
        p50_us: us(0.50),
        p99_us: us(0.99),
        cpu_per_op: CpuPerOp {
            bench_us: per_op(w.cpu_bench),
            hsmd_us: w.cpu_hsmd.map(per_op),
            frontend_us: w.cpu_frontend.map(per_op),
        },
        ratio_to_direct: None,
        hsmd_rss_kib: w.rss_hsmd_kib,
        frontend_rss_kib: w.rss_frontend_kib,
        errors: stats.errors,
        first_error: stats.first_error,
    }
}
