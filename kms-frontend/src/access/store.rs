//! Access rights (grants) in SQLite: which KMS user may use which key for
//! which operation. One row per (key uid, user, operation); rows of a key
//! are removed when the key is destroyed through the frontend.

use crate::database_file::FileError;
use rusqlite::{params, Connection};
use std::path::Path;
use std::sync::Mutex;
use thiserror::Error;

/// A database failure (500 for the caller, the cause in the log).
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
}

fn db(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sqlite { what, source }
}

/// The grants table.
pub struct GrantStore {
    conn: Mutex<Connection>,
}

impl GrantStore {
    /// Opens (creating when missing, mode 0600, with its directory, mode
    /// 0700: `crate::database_file`) the database file `path`.
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
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        f(&self.conn.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Grants `operations` on `uid` to `user`. Returns how many were new.
    pub fn grant(&self, uid: &str, user: &str, operations: &[&str]) -> Result<usize, StoreError> {
        self.with(|c| {
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
        })
    }

    /// Revokes `operations` on `uid` from `user`. Returns how many existed.
    pub fn revoke(&self, uid: &str, user: &str, operations: &[&str]) -> Result<usize, StoreError> {
        self.with(|c| {
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
        })
    }

    /// Operations granted to `user` on `uid` (including those granted to
    /// `*`, every user), sorted, each once.
    pub fn operations(&self, uid: &str, user: &str) -> Result<Vec<String>, StoreError> {
        self.with(|c| {
            let mut st = c
                .prepare_cached(
                    "SELECT DISTINCT operation FROM grants WHERE uid = ?1 AND user_id IN (?2, '*') ORDER BY operation",
                )
                .map_err(db("select"))?;
            let rows = st
                .query_map(params![uid, user], |r| r.get(0))
                .map_err(db("select"))?;
            rows.collect::<Result<_, _>>().map_err(db("select"))
        })
    }

    /// Every (user, operations) with a grant on `uid`, by user.
    pub fn by_key(&self, uid: &str) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        self.grouped(
            "SELECT user_id, operation FROM grants WHERE uid = ?1 ORDER BY user_id, operation",
            uid,
        )
    }

    /// Every (key uid, operations) granted to `user` (or to `*`), by uid.
    pub fn by_user(&self, user: &str) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        self.grouped(
            "SELECT DISTINCT uid, operation FROM grants WHERE user_id IN (?1, '*') ORDER BY uid, operation",
            user,
        )
    }

    fn grouped(&self, sql: &str, arg: &str) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare_cached(sql).map_err(db("select"))?;
            let rows = st
                .query_map(params![arg], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(db("select"))?;
            let mut out: Vec<(String, Vec<String>)> = Vec::new();
            for row in rows {
                let (k, op) = row.map_err(db("select"))?;
                match out.last_mut() {
                    Some((last, ops)) if *last == k => ops.push(op),
                    _ => out.push((k, vec![op])),
                }
            }
            Ok(out)
        })
    }

    /// Removes every grant on `uid` (the key was destroyed).
    pub fn forget(&self, uid: &str) -> Result<usize, StoreError> {
        self.with(|c| {
            c.execute("DELETE FROM grants WHERE uid = ?1", params![uid])
                .map_err(db("delete"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_database_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kms.db");
        let s = GrantStore::open(&path).expect("open");
        s.grant("hsm::1::k", "bob", &["encrypt"]).expect("grant");
        for file in ["kms.db", "kms.db-wal", "kms.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(file))
                .expect(file)
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}: {mode:o}");
        }
    }

    #[test]
    fn grants_survive_reopening_and_are_forgotten_with_their_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/kms.db");
        {
            let s = GrantStore::open(&path).expect("open");
            assert_eq!(
                s.grant("hsm::1::k", "bob", &["encrypt", "decrypt"])
                    .expect("grant"),
                2
            );
            assert_eq!(s.grant("hsm::1::k", "bob", &["encrypt"]).expect("again"), 0);
            s.grant("hsm::1::j", "bob", &["sign"]).expect("grant");
            s.grant("hsm::1::k", "carol", &["get"]).expect("grant");
        }
        let s = GrantStore::open(&path).expect("reopen");
        assert_eq!(
            s.operations("hsm::1::k", "bob").expect("ops"),
            ["decrypt", "encrypt"]
        );
        assert_eq!(
            s.by_key("hsm::1::k").expect("by key"),
            vec![
                (
                    "bob".to_owned(),
                    vec!["decrypt".to_owned(), "encrypt".to_owned()]
                ),
                ("carol".to_owned(), vec!["get".to_owned()])
            ]
        );
        assert_eq!(s.by_user("bob").expect("by user").len(), 2);
        assert_eq!(
            s.revoke("hsm::1::k", "bob", &["decrypt", "sign"])
                .expect("revoke"),
            1
        );
        assert_eq!(s.forget("hsm::1::k").expect("forget"), 2);
        assert!(s.by_key("hsm::1::k").expect("empty").is_empty());
        assert_eq!(
            s.by_user("bob").expect("j left"),
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
