//! What the per-request consistency check costs on each database, measured
//! on the database directly (issue 15 item 6): the point select of a key's
//! row that kms-frontend's `get_for_use` runs on every use of a KMS key
//! (state and wrapped material, by primary key), and the grant lookup it
//! runs when the caller is not the key's owner. The same SQL as
//! `kms-frontend/src/store/{sqlite,postgres}.rs` and
//! `kms-frontend/src/access/store.rs`, through the same drivers (rusqlite
//! with a cached prepared statement; sqlx through a pool), one query after
//! the other on one connection, against the database the frontend under
//! test uses (its SQLite file, or the PostgreSQL cluster over loopback TCP).

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};

/// The key-row read of `get_for_use` on SQLite (`RawRow::SELECT_FOR_USE`).
const SQLITE_ROW: &str = "SELECT object_type, owner, state, algorithm, \
     wrapping_key, mechanism, format, blob FROM objects WHERE uid = ?1";
/// The grant lookup of a caller who is not the owner, on SQLite.
const SQLITE_GRANTS: &str = "SELECT DISTINCT operation FROM grants \
     WHERE uid = ?1 AND user_id IN (?2, '*') ORDER BY operation";
/// The key-row read of `get_for_use` on PostgreSQL (`SELECT_FOR_USE`).
const PG_ROW: &str = "SELECT object_type, owner, state, algorithm, \
     wrapping_key, mechanism, format, blob FROM objects WHERE uid = $1";
/// The grant lookup of a caller who is not the owner, on PostgreSQL.
const PG_GRANTS: &str = "SELECT DISTINCT operation FROM grants \
     WHERE uid = $1 AND user_id IN ($2, '*') ORDER BY operation";
/// The user whose grants the lookup reads (none granted: the lookup reads
/// the index and finds nothing, as for a caller without rights).
const GRANTEE: &str = "bench-grantee";
/// Queries run before the measured ones (statement preparation, caches).
const WARMUP_QUERIES: usize = 200;

/// Latency of one query kind, microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct QueryCost {
    /// Queries measured.
    pub queries: usize,
    /// Median, µs.
    pub p50_us: f64,
    /// Mean, µs.
    pub mean_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
}

/// The two reads of the consistency check on one database.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RowReadCost {
    /// The key's row (state, wrapped material) by primary key.
    pub key_row: QueryCost,
    /// The caller's grants on the key.
    pub grant_lookup: QueryCost,
}

/// Latencies of one query kind as they are measured.
struct Samples {
    hist: Histogram<u64>,
    total: Duration,
    count: usize,
}

impl Samples {
    fn new() -> Result<Self> {
        Ok(Self {
            hist: Histogram::new_with_bounds(1, 10_000_000_000, 3)?,
            total: Duration::ZERO,
            count: 0,
        })
    }

    fn record(&mut self, dt: Duration) {
        self.total += dt;
        self.count += 1;
        self.hist
            .saturating_record(dt.as_nanos().min(u128::from(u64::MAX)) as u64);
    }

    fn cost(&self) -> QueryCost {
        let us = |q: f64| self.hist.value_at_quantile(q) as f64 / 1e3;
        QueryCost {
            queries: self.count,
            p50_us: us(0.5),
            mean_us: self.total.as_secs_f64() * 1e6 / self.count.max(1) as f64,
            p99_us: us(0.99),
        }
    }
}

/// Runs `query` `count` times after a warm-up; its latency.
fn measure(count: usize, mut query: impl FnMut() -> Result<()>) -> Result<QueryCost> {
    for _ in 0..WARMUP_QUERIES {
        query()?;
    }
    let mut samples = Samples::new()?;
    for _ in 0..count {
        let t0 = Instant::now();
        query()?;
        samples.record(t0.elapsed());
    }
    Ok(samples.cost())
}

/// The reads of the key `uid` in the frontend's SQLite file `path`
/// (opened read-only beside the running frontend, in WAL mode as it is).
///
/// Errors: the file cannot be opened, or the key's row is missing.
pub fn sqlite(path: &Path, uid: &str, count: usize) -> Result<RowReadCost> {
    use rusqlite::{params, OpenFlags, OptionalExtension};
    let c = rusqlite::Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("open {}", path.display()))?;
    let key_row = measure(count, || {
        let mut st = c.prepare_cached(SQLITE_ROW)?;
        let row = st
            .query_row(params![uid], |r| {
                let mut values = Vec::with_capacity(8);
                for i in 0..8 {
                    values.push(r.get::<_, rusqlite::types::Value>(i)?);
                }
                Ok(values)
            })
            .optional()?;
        if row.is_none() {
            bail!("the KMS key {uid} has no row in {}", path.display());
        }
        Ok(())
    })?;
    let grant_lookup = measure(count, || {
        let mut st = c.prepare_cached(SQLITE_GRANTS)?;
        let ops = st
            .query_map(params![uid, GRANTEE], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        drop(ops);
        Ok(())
    })?;
    Ok(RowReadCost {
        key_row,
        grant_lookup,
    })
}

/// The reads of the key `uid` in the PostgreSQL database at `url`, through
/// a sqlx pool of one connection (the frontend's pool holds up to 16).
///
/// Errors: the database cannot be reached, or the key's row is missing.
pub fn postgres(
    rt: &tokio::runtime::Runtime,
    url: &str,
    uid: &str,
    count: usize,
) -> Result<RowReadCost> {
    rt.block_on(async {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .context("connect to the bench's PostgreSQL")?;
        let pool = &pool;
        let key_row = measure_async(count, || async move {
            let row = sqlx::query(PG_ROW).bind(uid).fetch_optional(pool).await?;
            if row.is_none() {
                bail!("the KMS key {uid} has no row in PostgreSQL");
            }
            Ok(())
        })
        .await?;
        let grant_lookup = measure_async(count, || async move {
            let rows = sqlx::query(PG_GRANTS)
                .bind(uid)
                .bind(GRANTEE)
                .fetch_all(pool)
                .await?;
            drop(rows);
            Ok(())
        })
        .await?;
        pool.close().await;
        Ok(RowReadCost {
            key_row,
            grant_lookup,
        })
    })
}

/// [`measure`] of an async query.
async fn measure_async<F, Fut>(count: usize, mut query: F) -> Result<QueryCost>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    for _ in 0..WARMUP_QUERIES {
        query().await?;
    }
    let mut samples = Samples::new()?;
    for _ in 0..count {
        let t0 = Instant::now();
        query().await?;
        samples.record(t0.elapsed());
    }
    Ok(samples.cost())
}
