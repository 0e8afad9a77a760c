//! Access rights (grants): which KMS user may use which key for which
//! operation. One row per (key uid, user, operation); rows of a key are
//! removed when the key is destroyed through the frontend. In SQLite (the
//! file of the object store) or PostgreSQL (shared by several frontends);
//! the table is `crate::store`'s schema version 2.
//!
//! Every check reads the table (no cache), so a grant or revocation made
//! through any frontend holds at once on all of them.

use crate::database_file::FileError;
use crate::error::KmsError;
use crate::postgres::{failure, read_retrying};
use rusqlite::{params, Connection};
use sqlx::postgres::PgPool;
use sqlx::Row as _;
use std::path::Path;
use std::sync::Mutex;
use thiserror::Error;

/// A database failure (503 when the database is unreachable, else 500 for
/// the caller, the cause in the log).
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database's directory could not be created.
    #[error("cannot create the access rights database directory {dir}: {source}")]
    Directory {
        /// The directory.
        dir: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A new database file could not be created.
    #[error("cannot create the access rights database {path}: {source}")]
    Create {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// SQLite failed.
    #[error("access rights database {what}: {source}")]
    Sqlite {
        /// The step (open, schema, insert, ...).
        what: &'static str,
        /// Why.
        source: rusqlite::Error,
    },
    /// PostgreSQL failed, or cannot be reached now
    /// ([`crate::postgres::PgFailure::is_unreachable`]: 503 for the caller).
    #[error("access rights {0}")]
    Postgres(#[from] crate::postgres::PgFailure),
}

impl From<StoreError> for KmsError {
    /// 503 naming the database when it is unreachable, else 500.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Postgres(f) if f.is_unreachable() => KmsError::database_unavailable(f),
            other => KmsError::internal(other),
        }
    }
}

fn db(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sqlite { what, source }
}

/// Where the grants are.
enum Backend {
    Sqlite(Mutex<Connection>),
    Postgres {
        pool: PgPool,
        /// The database as messages name it.
        server: String,
    },
}

/// The grants table.
pub struct GrantStore {
    backend: Backend,
}

/// Every (key, operations) or (user, operations), grouped from rows
/// sorted by their first column.
fn grouped(rows: impl IntoIterator<Item = (String, String)>) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (k, op) in rows {
        match out.last_mut() {
            Some((last, ops)) if *last == k => ops.push(op),
            _ => out.push((k, vec![op])),
        }
    }
    out
}

const BY_KEY: &str =
    "SELECT user_id, operation FROM grants WHERE uid = $1 ORDER BY user_id, operation";
const BY_USER: &str =
    "SELECT DISTINCT uid, operation FROM grants WHERE user_id IN ($1, '*') ORDER BY uid, operation";

impl GrantStore {
    /// Opens (creating when missing, mode 0600, with its directory, mode
    /// 0700: `crate::database_file`) the SQLite database file `path`.
    ///
    /// Errors: [`StoreError`] naming the failing step.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        crate::database_file::create_private(path).map_err(|e| match e {
            FileError::Directory { dir, source } => StoreError::Directory { dir, source },
            FileError::Create { path, source } => StoreError::Create { path, source },
        })?;
        let conn = Connection::open(path).map_err(db("open"))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS grants (
                 uid TEXT NOT NULL,
                 user_id TEXT NOT NULL,
                 operation TEXT NOT NULL,
                 PRIMARY KEY (uid, user_id, operation)
             );",
        )
        .map_err(db("schema"))?;
        Ok(Self {
            backend: Backend::Sqlite(Mutex::new(conn)),
        })
    }

    /// The grants in PostgreSQL through `pool` (the database `server`, for
    /// messages), whose schema `crate::store::PgStore::open` migrated.
    pub fn postgres(pool: PgPool, server: String) -> Self {
        Self {
            backend: Backend::Postgres { pool, server },
        }
    }

    /// Runs `f` on the SQLite connection, inline (one indexed statement).
    fn with<T>(c: &Mutex<Connection>, f: impl FnOnce(&Connection) -> T) -> T {
        f(&c.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Maps a PostgreSQL error met while doing `what`.
    fn pg<'a>(server: &'a str, what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError + 'a {
        move |source| StoreError::Postgres(failure(server, what)(source))
    }

    /// Grants `operations` on `uid` to `user`. Returns how many were new.
    pub async fn grant(
        &self,
        uid: &str,
        user: &str,
        operations: &[&str],
    ) -> Result<usize, StoreError> {
        match &self.backend {
            Backend::Sqlite(c) => Self::with(c, |c| {
                let mut n = 0;
                for op in operations {
                    n += c
                        .execute(
                            "INSERT OR IGNORE INTO grants (uid, user_id, operation) VALUES (?1, ?2, ?3)",
                            params![uid, user, op],
                        )
                        .map_err(db("insert"))?;
                }
                Ok(n)
            }),
            Backend::Postgres { pool, server } => sqlx::query(
                "INSERT INTO grants (uid, user_id, operation) \
                 SELECT $1, $2, unnest($3::text[]) ON CONFLICT DO NOTHING",
            )
            .bind(uid)
            .bind(user)
            .bind(operations)
            .execute(pool)
            .await
            .map(|d| usize::try_from(d.rows_affected()).unwrap_or(usize::MAX))
            .map_err(Self::pg(server, "insert")),
        }
    }

    /// Revokes `operations` on `uid` from `user`. Returns how many existed.
    pub async fn revoke(
        &self,
        uid: &str,
        user: &str,
        operations: &[&str],
    ) -> Result<usize, StoreError> {
        match &self.backend {
            Backend::Sqlite(c) => Self::with(c, |c| {
                let mut n = 0;
                for op in operations {
                    n += c
                        .execute(
                            "DELETE FROM grants WHERE uid = ?1 AND user_id = ?2 AND operation = ?3",
                            params![uid, user, op],
                        )
                        .map_err(db("delete"))?;
                }
                Ok(n)
            }),
            Backend::Postgres { pool, server } => sqlx::query(
                "DELETE FROM grants WHERE uid = $1 AND user_id = $2 AND operation = ANY($3::text[])",
            )
            .bind(uid)
            .bind(user)
            .bind(operations)
            .execute(pool)
            .await
            .map(|d| usize::try_from(d.rows_affected()).unwrap_or(usize::MAX))
            .map_err(Self::pg(server, "delete")),
        }
    }

    /// Operations granted to `user` on `uid` (including those granted to
    /// `*`, every user), sorted, each once.
    pub async fn operations(&self, uid: &str, user: &str) -> Result<Vec<String>, StoreError> {
        match &self.backend {
            Backend::Sqlite(c) => Self::with(c, |c| {
                let mut st = c
                    .prepare_cached(
                        "SELECT DISTINCT operation FROM grants WHERE uid = ?1 AND user_id IN (?2, '*') ORDER BY operation",
                    )
                    .map_err(db("select"))?;
                let rows = st
                    .query_map(params![uid, user], |r| r.get(0))
                    .map_err(db("select"))?;
                rows.collect::<Result<_, _>>().map_err(db("select"))
            }),
            // PostgreSQL text cannot hold NUL: no grant names such a key or user.
            Backend::Postgres { .. } if uid.contains('\0') || user.contains('\0') => Ok(Vec::new()),
            Backend::Postgres { pool, server } => read_retrying(|| {
                sqlx::query_scalar(
                    "SELECT DISTINCT operation FROM grants WHERE uid = $1 AND user_id IN ($2, '*') ORDER BY operation",
                )
                .bind(uid)
                .bind(user)
                .fetch_all(pool)
            })
            .await
            .map_err(Self::pg(server, "select")),
        }
    }

    /// Every (user, operations) with a grant on `uid`, by user.
    pub async fn by_key(&self, uid: &str) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        self.grouped(BY_KEY, uid).await
    }

    /// Every (key uid, operations) granted to `user` (or to `*`), by uid.
    pub async fn by_user(&self, user: &str) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        self.grouped(BY_USER, user).await
    }

    /// The pairs of `sql` (one parameter, `$1`: SQLite reads it as `?1`).
    async fn grouped(
        &self,
        sql: &'static str,
        arg: &str,
    ) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        let pairs: Vec<(String, String)> = match &self.backend {
            Backend::Sqlite(c) => Self::with(c, |c| {
                let mut st = c.prepare_cached(sql).map_err(db("select"))?;
                let rows = st
                    .query_map(params![arg], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(db("select"))?;
                rows.collect::<Result<_, _>>().map_err(db("select"))
            })?,
            Backend::Postgres { .. } if arg.contains('\0') => Vec::new(),
            Backend::Postgres { pool, server } => {
                let rows = read_retrying(|| sqlx::query(sql).bind(arg).fetch_all(pool))
                    .await
                    .map_err(Self::pg(server, "select"))?;
                rows.iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(Self::pg(server, "select"))?
            }
        };
        Ok(grouped(pairs))
    }

    /// Checks the database answers (`SELECT 1`), for `/health`.
    ///
    /// Errors: [`StoreError::Postgres`] (unreachable when PostgreSQL cannot
    /// be reached), else as the other methods.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(c) => Self::with(c, |c| {
                c.query_row("SELECT 1", [], |_| Ok(()))
                    .map_err(db("select"))
            }),
            Backend::Postgres { pool, server } => {
                read_retrying(|| sqlx::query("SELECT 1").execute(pool))
                    .await
                    .map(drop)
                    .map_err(Self::pg(server, "select"))
            }
        }
    }

    /// Removes every grant on `uid` (the key was destroyed).
    pub async fn forget(&self, uid: &str) -> Result<usize, StoreError> {
        match &self.backend {
            Backend::Sqlite(c) => Self::with(c, |c| {
                c.execute("DELETE FROM grants WHERE uid = ?1", params![uid])
                    .map_err(db("delete"))
            }),
            Backend::Postgres { .. } if uid.contains('\0') => Ok(0),
            Backend::Postgres { pool, server } => sqlx::query("DELETE FROM grants WHERE uid = $1")
                .bind(uid)
                .execute(pool)
                .await
                .map(|d| usize::try_from(d.rows_affected()).unwrap_or(usize::MAX))
                .map_err(Self::pg(server, "delete")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_new_database_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kms.db");
        let s = GrantStore::open(&path).expect("open");
        s.grant("hsm::1::k", "bob", &["encrypt"])
            .await
            .expect("grant");
        for file in ["kms.db", "kms.db-wal", "kms.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(file))
                .expect(file)
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}: {mode:o}");
        }
    }

    #[tokio::test]
    async fn grants_survive_reopening_and_are_forgotten_with_their_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/kms.db");
        {
            let s = GrantStore::open(&path).expect("open");
            assert_eq!(
                s.grant("hsm::1::k", "bob", &["encrypt", "decrypt"])
                    .await
                    .expect("grant"),
                2
            );
            assert_eq!(
                s.grant("hsm::1::k", "bob", &["encrypt"])
                    .await
                    .expect("again"),
                0
            );
            s.grant("hsm::1::j", "bob", &["sign"]).await.expect("grant");
            s.grant("hsm::1::k", "carol", &["get"])
                .await
                .expect("grant");
        }
        let s = GrantStore::open(&path).expect("reopen");
        assert_eq!(
            s.operations("hsm::1::k", "bob").await.expect("ops"),
            ["decrypt", "encrypt"]
        );
        assert_eq!(
            s.by_key("hsm::1::k").await.expect("by key"),
            vec![
                (
                    "bob".to_owned(),
                    vec!["decrypt".to_owned(), "encrypt".to_owned()]
                ),
                ("carol".to_owned(), vec!["get".to_owned()])
            ]
        );
        assert_eq!(s.by_user("bob").await.expect("by user").len(), 2);
        assert_eq!(
            s.revoke("hsm::1::k", "bob", &["decrypt", "sign"])
                .await
                .expect("revoke"),
            1
        );
        assert_eq!(s.forget("hsm::1::k").await.expect("forget"), 2);
        assert!(s.by_key("hsm::1::k").await.expect("empty").is_empty());
        assert_eq!(
            s.by_user("bob").await.expect("j left"),
            vec![("hsm::1::j".to_owned(), vec!["sign".to_owned()])]
        );
    }

    #[test]
    fn start_up_errors_say_each_cause_once() {
        let io = std::io::Error::from_raw_os_error(13);
        let e = anyhow::Error::new(StoreError::Directory {
            dir: "/var/lib/kms-frontend".into(),
            source: io,
        })
        .context("cannot start");
        assert_eq!(
            crate::error::one_line(&e),
            "cannot start: cannot create the access rights database directory /var/lib/kms-frontend: Permission denied (os error 13)"
        );
        // What the binary printed before.
        assert!(format!("{e:#}").ends_with("(os error 13): Permission denied (os error 13)"));
    }
}
