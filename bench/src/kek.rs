//! KMS keys wrapped by the HSM KEK (issue 14 item 7): kms-frontend runs
//! with `--key-encryption-key hsm::<slot>::bench-kek` ([`KEK_LABEL`], an
//! AES-256 key the bench creates on the token with its other keys), the
//! bench creates its KMS keys through KMIP Create (no wrapping key named:
//! the KEK wraps them), and the frontend then encrypts with them in
//! software from its unwrapped cache.
//!
//! Measured here: the cells of the "wrapped" path (the same KMIP Encrypt as
//! the frontend's HSM-key cells, with the KMS key [`KMS_KEY_UID`]), the
//! ratio of the two at each N, and the cost of a cache miss ([`miss_cost`]:
//! the first Encrypt of each of K fresh KMS keys, which unwraps it through
//! hsmd, against the second, served from the cache).

use crate::cell::{Cell, Mode};
use crate::frontend::{self, Connection};
use crate::procstat;
use crate::workload::Workload;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::StatusCode;
use serde::Serialize;
use std::time::Instant;

/// Label of the AES-256 HSM key kms-frontend uses as its
/// `key_encryption_key`.
pub const KEK_LABEL: &str = "bench-kek";
/// Unique Identifier of the KMS key (AES-256, wrapped by the KEK) the
/// wrapped cells encrypt with.
pub const KMS_KEY_UID: &str = "bench-kms-aes";
/// Fresh KMS keys [`miss_cost`] measures by default.
pub const MISS_KEYS: usize = 64;
/// Passes over the keys after the first (the hits).
const HIT_ROUNDS: usize = 10;

/// `--key-encryption-key` of the frontend on `slot`.
pub fn kek_uid(slot: u64) -> String {
    format!("hsm::{slot}::{KEK_LABEL}")
}

/// True for the workloads the wrapped path measures (its AES encryptions).
pub fn measures(w: Workload) -> bool {
    w.ciphertext_len().is_some()
}

/// Creates the KMS key `uid` through KMIP Create (AES-256, no wrapping key
/// named: the frontend wraps it with its KEK) on `c`.
///
/// Errors: the frontend refused it or answered something else than a
/// CreateResponse naming `uid`.
pub async fn create_kms_key(c: &mut Connection, uid: &str) -> Result<()> {
    let body = serde_json::json!({"tag": "Create", "value": [
        {"tag": "ObjectType", "type": "Enumeration", "value": "SymmetricKey"},
        {"tag": "Attributes", "value": [
            {"tag": "CryptographicAlgorithm", "type": "Enumeration", "value": "AES"},
            {"tag": "CryptographicLength", "type": "Integer", "value": 256},
            {"tag": "CryptographicUsageMask", "type": "Integer", "value": 2108},
            {"tag": "ObjectType", "type": "Enumeration", "value": "SymmetricKey"},
            {"tag": "UniqueIdentifier", "type": "TextString", "value": uid},
        ]},
    ]});
    let (status, answer) = frontend::post(c, Bytes::from(body.to_string())).await?;
    if status != StatusCode::OK {
        bail!(
            "KMIP Create of the KMS key {uid}: {}",
            frontend::status_line(status, &answer)
        );
    }
    let got = frontend::member(&answer, "CreateResponse", "UniqueIdentifier")?;
    if got != uid {
        bail!("KMIP Create of the KMS key {uid} answered the uid {got}");
    }
    Ok(())
}

/// The cost of an unwrapped-cache miss: K fresh KMS keys, encrypted with on
/// one connection (N = 1) one after the other, first each once (unwrapped
/// through hsmd: a miss), then each ten times more (from the cache: hits).
/// CPU times are the servers' threads' run times (`/proc/<pid>/task/*/schedstat`,
/// nanoseconds) around each pass.
#[derive(Debug, Clone, Serialize)]
pub struct MissCost {
    /// Workload of every Encrypt.
    pub workload: Workload,
    /// Fresh keys, K.
    pub keys: usize,
    /// Median latency of the first Encrypt of a key, microseconds.
    pub miss_p50_us: f64,
    /// Largest latency of a first Encrypt, microseconds.
    pub miss_max_us: f64,
    /// Median latency of the later Encrypts of a key, microseconds.
    pub hit_p50_us: f64,
    /// `miss_p50_us - hit_p50_us`: what a miss adds, microseconds.
    pub extra_us: f64,
    /// kms-frontend's CPU time per first Encrypt, microseconds.
    pub miss_frontend_cpu_us: f64,
    /// hsmd's CPU time per first Encrypt (the unwrap), microseconds.
    pub miss_hsmd_cpu_us: f64,
    /// kms-frontend's CPU time per later Encrypt, microseconds.
    pub hit_frontend_cpu_us: f64,
    /// hsmd's CPU time per later Encrypt (0 when the cache serves it), microseconds.
    pub hit_hsmd_cpu_us: f64,
}

/// CPU seconds of (frontend, hsmd), to the nanosecond.
fn cpu_of(frontend_pid: i32, hsmd_pid: i32) -> Result<(f64, f64)> {
    Ok((
        procstat::run_seconds(frontend_pid)?,
        procstat::run_seconds(hsmd_pid)?,
    ))
}

/// Sends each of `requests` once, in turn, on `c`; the latency histogram
/// (ns) and the servers' CPU per request (µs, frontend then hsmd).
async fn pass(
    c: &mut Connection,
    requests: &[frontend::Kmip],
    pids: (i32, i32),
) -> Result<(Histogram<u64>, f64, f64)> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 100_000_000_000, 3)?;
    let (f0, h0) = cpu_of(pids.0, pids.1)?;
    for r in requests {
        let t0 = Instant::now();
        if let Some(e) = r.send(c).await? {
            bail!("an Encrypt with a fresh KMS key failed: {e}");
        }
        hist.saturating_record(t0.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64);
    }
    let (f1, h1) = cpu_of(pids.0, pids.1)?;
    let per = |s: f64| s * 1e6 / requests.len().max(1) as f64;
    Ok((hist, per(f1 - f0), per(h1 - h0)))
}

/// Creates `keys` fresh KMS keys `<prefix>-<i>` on `c` and measures a miss
/// against a hit ([`MissCost`]) with `workload`; `pids` are kms-frontend's
/// and hsmd's, whose CPU time is read around each pass.
///
/// Errors: a Create or an Encrypt failed.
pub async fn miss_cost(
    c: &mut Connection,
    workload: Workload,
    keys: usize,
    prefix: &str,
    pids: (i32, i32),
) -> Result<MissCost> {
    let mut requests = Vec::with_capacity(keys);
    for i in 0..keys {
        let uid = format!("{prefix}-{i}");
        create_kms_key(c, &uid).await?;
        requests.push(frontend::request(workload, &uid).context("an encryption workload")?);
    }
    // Every key once (each a miss), then every key HIT_ROUNDS times more
    // (each a hit: the cache holds them all).
    let (misses, mf, mh) = pass(c, &requests, pids).await?;
    let mut hits = Histogram::<u64>::new_with_bounds(1, 100_000_000_000, 3)?;
    let (mut hf, mut hh) = (0.0, 0.0);
    for _ in 0..HIT_ROUNDS {
        let (h, f, cpu_h) = pass(c, &requests, pids).await?;
        hits.add(&h)?;
        (hf, hh) = (hf + f / HIT_ROUNDS as f64, hh + cpu_h / HIT_ROUNDS as f64);
    }
    let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1e3;
    Ok(MissCost {
        workload,
        keys,
        miss_p50_us: us(&misses, 0.5),
        miss_max_us: misses.max() as f64 / 1e3,
        hit_p50_us: us(&hits, 0.5),
        extra_us: us(&misses, 0.5) - us(&hits, 0.5),
        miss_frontend_cpu_us: mf,
        miss_hsmd_cpu_us: mh,
        hit_frontend_cpu_us: hf,
        hit_hsmd_cpu_us: hh,
    })
}

/// Prints a [`MissCost`] as one line under the table.
pub fn print_miss(rig: &str, m: &MissCost) {
    println!(
        "{rig}: cache miss, {} fresh KMS keys ({}, N = 1): first Encrypt p50 {:.1} µs (max {:.1}), later ones p50 {:.1} µs: a miss adds {:.1} µs; CPU per first/later Encrypt: kms {:.1}/{:.1} µs, hsmd {:.1}/{:.1} µs",
        m.keys,
        m.workload.name(),
        m.miss_p50_us,
        m.miss_max_us,
        m.hit_p50_us,
        m.extra_us,
        m.miss_frontend_cpu_us,
        m.hit_frontend_cpu_us,
        m.miss_hsmd_cpu_us,
        m.hit_hsmd_cpu_us
    );
}

/// The wrapped path against the HSM-key path at one N.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    /// Where: `"softhsm2"` or `"card"`.
    pub rig: &'static str,
    /// HTTP connections.
    pub n: usize,
    /// Workload of the wrapped cell.
    pub wrapped: Workload,
    /// Its ops/s.
    pub wrapped_ops_per_sec: f64,
    /// Workload of the HSM-key cell (AES-CBC on the card, which has no GCM).
    pub hsm_key: Workload,
    /// Its ops/s.
    pub hsm_key_ops_per_sec: f64,
    /// `wrapped_ops_per_sec / hsm_key_ops_per_sec`.
    pub ratio: f64,
}

/// The ratios of `cells`: each [`Mode::Wrapped`] cell of `wrapped` against
/// the [`Mode::Frontend`] cell of `hsm_key` at the same N.
pub fn ratios(
    rig: &'static str,
    cells: &[Cell],
    wrapped: Workload,
    hsm_key: Workload,
) -> Vec<Ratio> {
    cells
        .iter()
        .filter(|c| c.mode == Mode::Wrapped && c.workload == wrapped)
        .filter_map(|w| {
            let h = cells
                .iter()
                .find(|c| c.mode == Mode::Frontend && c.workload == hsm_key && c.n == w.n)?;
            Some(Ratio {
                rig,
                n: w.n,
                wrapped,
                wrapped_ops_per_sec: w.ops_per_sec,
                hsm_key,
                hsm_key_ops_per_sec: h.ops_per_sec,
                ratio: if h.ops_per_sec > 0.0 {
                    w.ops_per_sec / h.ops_per_sec
                } else {
                    0.0
                },
            })
        })
        .collect()
}

/// Prints the ratios, one line each.
pub fn print_ratios(ratios: &[Ratio]) {
    for r in ratios {
        println!(
            "{}: N = {:<2} KMS key wrapped by the KEK ({}) {:.0} ops/s vs HSM key ({}) {:.0} ops/s: {:.1}x",
            r.rig,
            r.n,
            r.wrapped.name(),
            r.wrapped_ops_per_sec,
            r.hsm_key.name(),
            r.hsm_key_ops_per_sec,
            r.ratio
        );
    }
}
