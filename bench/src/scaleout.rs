//! `--scale-out`: two kms-frontends on one PostgreSQL against one frontend
//! on SQLite, in one run (issue 15 item 6).
//!
//! One SoftHSMv2 token and one hsmd holding the KEK `bench-kek`; every
//! frontend runs with it as `--key-encryption-key`. KMIP Encrypt (AES-GCM,
//! 1 KiB) with the KMS key [`kek::KMS_KEY_UID`] (created once per database
//! through the first frontend, wrapped by the KEK, used through every
//! frontend) at each N, for three set-ups:
//!
//! - `sqlite-1`: one frontend on SQLite (its file in the bench directory);
//! - `postgresql-1`: one frontend on a throw-away PostgreSQL cluster
//!   (`hsmd_e2e::postgres::PgServer`: loopback TCP, SCRAM password);
//! - `postgresql-2`: two frontends on that same cluster, the N connections
//!   split evenly over both (no load balancer: the bench opens N/2 to each).
//!
//! Both frontends share the one hsmd: with the key in their unwrapped
//! caches the hot path does not call hsmd, so a second hsmd and token would
//! change nothing measured here. Every Encrypt reads the key's row from the
//! database (the consistency check of issue 15 item 2); what that read and
//! the grant lookup cost on each database is measured directly as well
//! ([`rowread`]), and so is how soon a Revoke through frontend 1 holds on
//! frontend 2 ([`RevokeSeen`]).
//!
//! Without PostgreSQL's server binaries the section prints one "skipped"
//! line and measures nothing.

use crate::cell::{Cell, Mode, Servers};
use crate::frontend::{self, Connection};
use crate::kek;
use crate::remote;
use crate::report;
use crate::rowread::{self, RowReadCost};
use crate::servers::{self, Hsmd, HsmdOptions, KmsFrontend};
use crate::workload::Workload;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hsmd_e2e::postgres::{PgBin, PgServer};
use hyper::StatusCode;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The workload of every scale-out cell.
const WORKLOAD: Workload = Workload::AesGcm1k;
/// The KMS key the revoke check creates, uses through frontend 2 and revokes
/// through frontend 1.
const REVOKE_UID: &str = "bench-scaleout-revoke";
/// How long the revoke check waits for frontend 2 to refuse the key.
const REVOKE_DEADLINE: Duration = Duration::from_secs(5);

/// What `--scale-out` runs.
pub struct ScaleOutOptions<'a> {
    /// Client connections of each cell (in total over the frontends).
    pub ns: &'a [usize],
    /// Warm-up before each window.
    pub warmup: Duration,
    /// Measuring window of each cell.
    pub duration: Duration,
    /// Queries of each direct database read ([`rowread`]).
    pub queries: usize,
    /// The hsmd binary.
    pub hsmd: &'a Path,
    /// `HSMD_LOG` for hsmd.
    pub hsmd_log: &'a str,
    /// The kms-frontend binary.
    pub kms_frontend: &'a Path,
}

/// The frontends and database of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Setup {
    /// One frontend on SQLite.
    #[serde(rename = "sqlite-1")]
    Sqlite1,
    /// One frontend on PostgreSQL.
    #[serde(rename = "postgresql-1")]
    Postgres1,
    /// Two frontends on the same PostgreSQL, N/2 connections each.
    #[serde(rename = "postgresql-2")]
    Postgres2,
}

impl Setup {
    /// The set-up as the table shows it.
    pub fn label(self) -> &'static str {
        match self {
            Setup::Sqlite1 => "one frontend, SQLite",
            Setup::Postgres1 => "one frontend, PostgreSQL",
            Setup::Postgres2 => "two frontends, one PostgreSQL",
        }
    }
}

/// One measured cell of a set-up.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleOutCell {
    /// The set-up.
    pub setup: Setup,
    /// The cell (mode `wrapped`; its frontend CPU is the sum over the frontends).
    pub cell: Cell,
}

/// How soon a Revoke through frontend 1 holds on frontend 2, which had the
/// key in its unwrapped cache.
#[derive(Debug, Clone, Serialize)]
pub struct RevokeSeen {
    /// The Revoke's latency through frontend 1, µs.
    pub revoke_us: f64,
    /// From the Revoke's answer until frontend 2 refused an Encrypt with the key, µs.
    pub refused_after_us: f64,
    /// Encrypts sent to frontend 2 after the Revoke, the refused one included.
    pub encrypts_until_refused: usize,
    /// Frontend 2's refusal (status and the start of its body).
    pub refusal: String,
}

/// Everything `--scale-out` measured.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleOutReport {
    /// `git rev-parse HEAD`.
    pub git_commit: String,
    /// `/proc/loadavg` before the first cell.
    pub loadavg_before: String,
    /// `/proc/loadavg` after the last.
    pub loadavg_after: String,
    /// Logical cores.
    pub cores: usize,
    /// PostgreSQL's server binaries used.
    pub postgresql_bin: PathBuf,
    /// Measuring window of each cell, seconds.
    pub window_s: f64,
    /// The cells, set-up by set-up.
    pub cells: Vec<ScaleOutCell>,
    /// The consistency check's reads on the SQLite file.
    pub sqlite_reads: RowReadCost,
    /// The same reads on PostgreSQL.
    pub postgresql_reads: RowReadCost,
    /// A Revoke through frontend 1 against frontend 2.
    pub revoke: RevokeSeen,
}

/// Runs the scale-out section; `None` (after one "skipped" line) when
/// PostgreSQL's server binaries are missing.
///
/// Errors: a server did not start, a key could not be created, or a cell's
/// requests failed.
pub fn run(
    rt: &tokio::runtime::Runtime,
    opts: &ScaleOutOptions<'_>,
) -> Result<Option<ScaleOutReport>> {
    let pg_bin = match PgBin::find() {
        Ok(bin) => bin,
        Err(e) => {
            println!("scale-out: skipped: {e}");
            return Ok(None);
        }
    };
    let loadavg_before = report::loadavg();
    println!(
        "scale-out: KMIP Encrypt ({}) with a KMS key wrapped by the HSM KEK; PostgreSQL {}; load average {loadavg_before}",
        WORKLOAD.name(),
        pg_bin.dir.display()
    );
    let token = servers::token("hsmd-bench-scaleout")?;
    let hsmd = Hsmd::start(
        &token,
        &HsmdOptions {
            binary: opts.hsmd,
            sessions: frontend::HSMD_CONNECTIONS,
            log_level: opts.hsmd_log,
            // Two frontends' connections and the key creation's.
            connections: 2 * frontend::HSMD_CONNECTIONS + 1,
        },
    )?;
    rt.block_on(remote::create_aes_keys(
        &hsmd.socket,
        token.slot,
        &[kek::KEK_LABEL],
    ))?;
    let kek_uid = kek::kek_uid(token.slot);
    let mut cells = Vec::new();

    let sqlite = KmsFrontend::start_with(
        opts.kms_frontend,
        &token,
        &hsmd.socket,
        "scaleout-sqlite",
        &["--key-encryption-key", &kek_uid],
    )?;
    create_key(rt, &sqlite, kek::KMS_KEY_UID)?;
    for &n in opts.ns {
        cells.push(cell(rt, opts, Setup::Sqlite1, &[&sqlite], n, hsmd.pid)?);
    }
    let sqlite_reads = rowread::sqlite(&token.path("kms.db"), kek::KMS_KEY_UID, opts.queries)?;
    print_reads("SQLite", &sqlite_reads);
    sqlite.stop()?;

    let pg = PgServer::start()?;
    let url = pg.url();
    let flags = [
        "--database-type",
        "postgresql",
        "--database-url",
        &url,
        "--key-encryption-key",
        &kek_uid,
    ];
    let fe1 = KmsFrontend::start_with(
        opts.kms_frontend,
        &token,
        &hsmd.socket,
        "scaleout-pg-1",
        &flags,
    )?;
    create_key(rt, &fe1, kek::KMS_KEY_UID)?;
    for &n in opts.ns {
        cells.push(cell(rt, opts, Setup::Postgres1, &[&fe1], n, hsmd.pid)?);
    }
    let fe2 = KmsFrontend::start_with(
        opts.kms_frontend,
        &token,
        &hsmd.socket,
        "scaleout-pg-2",
        &flags,
    )?;
    for &n in opts.ns {
        if n < 2 {
            println!(
                "  {:<31} N={n:<3} n/a: one connection cannot be split over two frontends",
                Setup::Postgres2.label()
            );
            continue;
        }
        cells.push(cell(
            rt,
            opts,
            Setup::Postgres2,
            &[&fe1, &fe2],
            n,
            hsmd.pid,
        )?);
    }
    let postgresql_reads = rowread::postgres(rt, &url, kek::KMS_KEY_UID, opts.queries)?;
    print_reads("PostgreSQL", &postgresql_reads);
    let revoke = revoke_seen(rt, &fe1, &fe2)?;
    println!(
        "  Revoke through frontend 1: {:.0} µs; frontend 2 refused the key {:.0} µs after its answer, at Encrypt {} ({})",
        revoke.revoke_us, revoke.refused_after_us, revoke.encrypts_until_refused, revoke.refusal
    );
    fe2.stop()?;
    fe1.stop()?;
    drop(pg);
    hsmd.stop()?;
    let loadavg_after = report::loadavg();
    println!("scale-out: load average after: {loadavg_after}");
    Ok(Some(ScaleOutReport {
        git_commit: report::command_line("git", &["rev-parse", "HEAD"]).unwrap_or_default(),
        loadavg_before,
        loadavg_after,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        postgresql_bin: pg_bin.dir,
        window_s: opts.duration.as_secs_f64(),
        cells,
        sqlite_reads,
        postgresql_reads,
        revoke,
    }))
}

/// One cell: N connections split evenly over `frontends`, each sending
/// the Encrypt with the KMS key one request at a time.
fn cell(
    rt: &tokio::runtime::Runtime,
    opts: &ScaleOutOptions<'_>,
    setup: Setup,
    frontends: &[&KmsFrontend],
    n: usize,
    hsmd_pid: i32,
) -> Result<ScaleOutCell> {
    let mut connections: Vec<Connection> = Vec::with_capacity(n);
    let k = frontends.len().max(1);
    for (i, f) in frontends.iter().enumerate() {
        let share = n / k + usize::from(i < n % k);
        connections.extend(rt.block_on(frontend::connect(f.addr, share))?);
    }
    let request = frontend::request(WORKLOAD, kek::KMS_KEY_UID).context("a served workload")?;
    let servers = Servers {
        hsmd: Some(hsmd_pid),
        frontend: frontends.first().map(|f| f.pid),
        second_frontend: frontends.get(1).map(|f| f.pid),
    };
    let (cell, _) = crate::run_frontend(
        rt,
        connections,
        servers,
        Arc::new(request),
        (WORKLOAD, Mode::Wrapped),
        opts.warmup,
        opts.duration,
    )?;
    if cell.errors > 0 {
        bail!(
            "{} at N = {n}: {} Encrypts failed: {}",
            setup.label(),
            cell.errors,
            cell.first_error.as_deref().unwrap_or("")
        );
    }
    println!(
        "  {:<31} N={n:<3} {:>8.0} ops/s  p50 {:>7.0} µs  p99 {:>7.0} µs  frontend CPU {:>5.0} µs/op",
        setup.label(),
        cell.ops_per_sec,
        cell.p50_us,
        cell.p99_us,
        cell.cpu_per_op.frontend_us.unwrap_or(0.0)
    );
    Ok(ScaleOutCell { setup, cell })
}

/// Creates the KMS key `uid` (wrapped by the KEK) through `f`.
fn create_key(rt: &tokio::runtime::Runtime, f: &KmsFrontend, uid: &str) -> Result<()> {
    let mut one = rt.block_on(frontend::connect(f.addr, 1))?;
    let c = one.first_mut().context("no frontend connection")?;
    rt.block_on(kek::create_kms_key(c, uid))
}

/// One line of the direct database reads.
fn print_reads(database: &str, r: &RowReadCost) {
    println!(
        "  {database} reads ({} queries each): key row p50 {:.1} µs (mean {:.1}), grant lookup p50 {:.1} µs (mean {:.1})",
        r.key_row.queries, r.key_row.p50_us, r.key_row.mean_us, r.grant_lookup.p50_us, r.grant_lookup.mean_us
    );
}

/// Creates [`REVOKE_UID`] through `fe1`, encrypts with it through `fe2`
/// (which caches it unwrapped), revokes it through `fe1`, then encrypts
/// through `fe2` until refused.
///
/// Errors: a request failed, or `fe2` still encrypted after
/// [`REVOKE_DEADLINE`].
fn revoke_seen(
    rt: &tokio::runtime::Runtime,
    fe1: &KmsFrontend,
    fe2: &KmsFrontend,
) -> Result<RevokeSeen> {
    create_key(rt, fe1, REVOKE_UID)?;
    rt.block_on(async {
        let mut c1 = frontend::connect(fe1.addr, 1).await?;
        let mut c2 = frontend::connect(fe2.addr, 1).await?;
        let (c1, c2) = (
            c1.first_mut().context("no connection to frontend 1")?,
            c2.first_mut().context("no connection to frontend 2")?,
        );
        let encrypt = frontend::request(WORKLOAD, REVOKE_UID).context("a served workload")?;
        if let Some(e) = encrypt.send(c2).await? {
            bail!("an Encrypt through frontend 2 before the Revoke failed: {e}");
        }
        let revoke = serde_json::json!({"tag": "Revoke", "value": [
            {"tag": "UniqueIdentifier", "type": "TextString", "value": REVOKE_UID},
            {"tag": "RevocationReason", "value": [
                {"tag": "RevocationReasonCode", "type": "Enumeration", "value": "Unspecified"},
            ]},
        ]});
        let t0 = Instant::now();
        let (status, body) = frontend::post(c1, Bytes::from(revoke.to_string())).await?;
        let revoked = Instant::now();
        if status != StatusCode::OK {
            bail!("Revoke through frontend 1: {}", frontend::status_line(status, &body));
        }
        let mut sent = 0;
        loop {
            sent += 1;
            if let Some(refusal) = encrypt.send(c2).await? {
                return Ok(RevokeSeen {
                    revoke_us: (revoked - t0).as_secs_f64() * 1e6,
                    refused_after_us: revoked.elapsed().as_secs_f64() * 1e6,
                    encrypts_until_refused: sent,
                    refusal: refusal.chars().take(160).collect(),
                });
            }
            if revoked.elapsed() > REVOKE_DEADLINE {
                bail!(
                    "frontend 2 still encrypted with {REVOKE_UID} {} s after its Revoke through frontend 1",
                    REVOKE_DEADLINE.as_secs()
                );
            }
        }
    })
}
