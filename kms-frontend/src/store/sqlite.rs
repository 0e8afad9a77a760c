//! [`SqliteStore`]: the object store in the SQLite file of the grants
//! (config `sqlite_file`), on a connection of its own in WAL mode. Each call
//! runs on tokio's blocking pool (a commit waits for the disk), one at a
//! time on the connection, as one SQL statement: one transaction.
//!
//! The exception is [`ObjectStore::get_for_use`], read on every Encrypt,
//! Decrypt, Sign and SignatureVerify with a KMS key: it runs inline on the
//! calling thread, on one of a few read-only connections (in WAL mode a
//! reader never waits for a writer's commit), and selects no JSON column. A hop
//! to the blocking pool and back cost more than half of the frontend's CPU
//! per request under load (docs/performance.md, issue 14); the point
//! select of one row whose pages are in memory takes microseconds, as the
//! grant store's inline reads do.

use super::migrations;
use super::row::{locate_sql, now, LocateDialect, Metadata, RawRow, Row};
use super::{LocateQuery, ObjectStore, StoreError, StoredObject};
use rusqlite::{params, params_from_iter, Connection, OpenFlags, OptionalExtension};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a statement waits for the grant store's connection (or another
/// process) to release the database before it fails as busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The columns written by insert and upsert, in parameter order (`?1` ..
/// `?13`; `?13` is also `updated`; `version` starts at a random number, so
/// a uid removed and created again never continues the old row's versions
/// and a write over a read of the old row cannot land on the new one).
const COLUMNS: &str = "uid, object_type, owner, state, algorithm, names, tags, attributes, \
                       wrapping_key, mechanism, format, blob, created, updated, version";

fn db(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Database { what, source }
}

/// The object store in SQLite.
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// Read-only connections of [`ObjectStore::get_for_use`], used inline:
    /// a caller takes the first free one, so that a thread holding one (and
    /// descheduled by the kernel) never stalls the runtime's other workers.
    readers: Vec<Mutex<Connection>>,
}

/// Read-only connections of a store: more than the runtime's worker
/// threads on the machines this runs on, few enough to open quickly.
const READERS: usize = 4;

impl SqliteStore {
    /// Opens (creating when missing, mode 0600, with its directory, mode
    /// 0700: `crate::database_file`) the database file `path`, sets WAL
    /// mode and brings the schema to the current version (`super::migrations`;
    /// nothing to do when it is there already). The grants table, if any,
    /// is left as it is.
    ///
    /// Errors: [`StoreError::File`], [`StoreError::Database`] naming the
    /// failing step, [`StoreError::Migration`] (among them a database made
    /// by a newer version, whose schema this one does not know).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        crate::database_file::create_private(path)?;
        let mut conn = Connection::open(path).map_err(db("open"))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db("open"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db("WAL mode"))?;
        migrations::sqlite().to_latest(&mut conn)?;
        let readers = (0..READERS)
            .map(|_| {
                let reader = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(db("open for reading"))?;
                reader
                    .busy_timeout(BUSY_TIMEOUT)
                    .map_err(db("open for reading"))?;
                Ok(Mutex::new(reader))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            readers,
        })
    }

    /// Runs `f` inline on the first free read-only connection (on the
    /// first one, waiting, when all are taken).
    fn read_inline<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        use std::sync::TryLockError;
        for reader in &self.readers {
            match reader.try_lock() {
                Ok(c) => return f(&c),
                // A panic while holding it left no transaction open (each
                // call is one statement), so the connection is still sound.
                Err(TryLockError::Poisoned(p)) => return f(&p.into_inner()),
                Err(TryLockError::WouldBlock) => continue,
            }
        }
        match self.readers.first() {
            Some(reader) => f(&reader.lock().unwrap_or_else(|p| p.into_inner())),
            None => f(&self.conn.lock().unwrap_or_else(|p| p.into_inner())),
        }
    }

    /// Runs `f` on the connection, on the blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock left no transaction open (each
            // call is one statement), so the connection is still sound.
            let c = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&c)
        })
        .await?
    }
}

impl Row {
    /// Runs `sql` (parameters in [`COLUMNS`] order, then `?14` the version
    /// read, when the statement uses it) at `time`; the number of rows
    /// changed.
    fn execute(
        &self,
        c: &Connection,
        sql: &str,
        time: i64,
        what: &'static str,
    ) -> Result<usize, StoreError> {
        let m = self.material.as_ref();
        c.prepare_cached(sql)
            .and_then(|mut st| {
                let values = params![
                    self.uid,
                    self.object_type,
                    self.owner,
                    self.state,
                    self.algorithm,
                    self.names,
                    self.tags,
                    self.attributes,
                    m.map(|m| &m.wrapping_key),
                    m.map(|m| &m.mechanism),
                    m.map(|m| &m.format),
                    m.map(|m| &m.blob),
                    time,
                    self.version,
                ];
                // `?14` (the version read) only where the statement has it.
                let used = st.parameter_count().min(values.len());
                st.execute(&values[..used])
            })
            .map_err(db(what))
    }
}

impl RawRow {
    const SELECT: &'static str = "SELECT object_type, owner, state, algorithm, names, tags, \
         attributes, wrapping_key, mechanism, format, blob, version FROM objects WHERE uid = ?1";
    /// [`RawRow::SELECT`] without the JSON columns (names, tags, attributes).
    const SELECT_FOR_USE: &'static str = "SELECT object_type, owner, state, algorithm, \
         wrapping_key, mechanism, format, blob, version FROM objects WHERE uid = ?1";

    /// A row of [`RawRow::SELECT_FOR_USE`]: no names, no tags, null attributes.
    fn read_for_use(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            object_type: r.get(0)?,
            owner: r.get(1)?,
            state: r.get(2)?,
            algorithm: r.get(3)?,
            metadata: None,
            wrapping_key: r.get(4)?,
            mechanism: r.get(5)?,
            format: r.get(6)?,
            blob: r.get(7)?,
            version: r.get(8)?,
        })
    }

    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            object_type: r.get(0)?,
            owner: r.get(1)?,
            state: r.get(2)?,
            algorithm: r.get(3)?,
            metadata: Some(Metadata {
                names: r.get(4)?,
                tags: r.get(5)?,
                attributes: r.get(6)?,
            }),
            wrapping_key: r.get(7)?,
            mechanism: r.get(8)?,
            format: r.get(9)?,
            blob: r.get(10)?,
            version: r.get(11)?,
        })
    }
}

/// SQLite's Locate: names and tags are JSON arrays read with `json_each`;
/// the insertion order is `rowid`.
const LOCATE: LocateDialect = LocateDialect {
    placeholder: '?',
    has_name: "EXISTS (SELECT 1 FROM json_each(objects.names) WHERE json_each.value = ?)",
    has_tag: "EXISTS (SELECT 1 FROM json_each(objects.tags) WHERE json_each.value = ?)",
    order: "created, rowid",
};

#[async_trait::async_trait]
impl ObjectStore for SqliteStore {
    async fn insert_all(&self, objs: &[StoredObject]) -> Result<(), StoreError> {
        let rows = objs.iter().map(Row::of).collect::<Result<Vec<_>, _>>()?;
        self.run(move |c| {
            let sql = format!(
                "INSERT INTO objects ({COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13, random() & 4611686018427387903) \
                 ON CONFLICT (uid) DO NOTHING"
            );
            // Dropped without commit (on any error) it rolls back.
            let tx = c.unchecked_transaction().map_err(db("begin"))?;
            let time = now();
            for row in rows {
                if row.execute(&tx, &sql, time, "insert")? == 0 {
                    return Err(StoreError::Exists(row.uid));
                }
            }
            tx.commit().map_err(db("commit"))
        })
        .await
    }

    async fn upsert(&self, obj: &StoredObject) -> Result<(), StoreError> {
        let row = Row::of(obj)?;
        self.run(move |c| {
            let sql = format!(
                "INSERT INTO objects ({COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13, random() & 4611686018427387903) \
                 ON CONFLICT (uid) DO UPDATE SET object_type = excluded.object_type, \
                 owner = excluded.owner, state = excluded.state, algorithm = excluded.algorithm, \
                 names = excluded.names, tags = excluded.tags, attributes = excluded.attributes, \
                 wrapping_key = excluded.wrapping_key, mechanism = excluded.mechanism, \
                 format = excluded.format, blob = excluded.blob, created = excluded.created, \
                 updated = excluded.updated, version = objects.version + 1 \
                 WHERE objects.owner = excluded.owner"
            );
            // The owner is checked in the same statement as the write, so
            // no other user's object created in between is overwritten.
            match row.execute(c, &sql, now(), "upsert")? {
                0 => Err(StoreError::Exists(row.uid)),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn get(&self, uid: &str) -> Result<Option<StoredObject>, StoreError> {
        let uid = uid.to_owned();
        self.run(move |c| {
            let raw = c
                .prepare_cached(RawRow::SELECT)
                .and_then(|mut st| st.query_row(params![uid], RawRow::read).optional())
                .map_err(db("select"))?;
            raw.map(|r| r.object(uid)).transpose()
        })
        .await
    }

    async fn get_for_use(&self, uid: &str) -> Result<Option<StoredObject>, StoreError> {
        // Inline: see the module's documentation.
        let raw = self.read_inline(|c| {
            c.prepare_cached(RawRow::SELECT_FOR_USE)
                .and_then(|mut st| st.query_row(params![uid], RawRow::read_for_use).optional())
                .map_err(db("select"))
        })?;
        raw.map(|r| r.object(uid.to_owned())).transpose()
    }

    async fn update(&self, obj: &StoredObject) -> Result<(), StoreError> {
        let row = Row::of(obj)?;
        self.run(move |c| {
            // ?14: the version read; a row whose version moved on is
            // left as it is (compare-and-set).
            let sql = "UPDATE objects SET object_type = ?2, owner = ?3, state = ?4, \
                       algorithm = ?5, names = ?6, tags = ?7, attributes = ?8, \
                       wrapping_key = ?9, mechanism = ?10, format = ?11, blob = ?12, \
                       updated = ?13, version = version + 1 WHERE uid = ?1 AND version = ?14";
            if row.execute(c, sql, now(), "update")? > 0 {
                return Ok(());
            }
            let exists = c
                .prepare_cached("SELECT 1 FROM objects WHERE uid = ?1")
                .and_then(|mut st| st.exists(params![row.uid]))
                .map_err(db("update"))?;
            Err(if exists {
                StoreError::Conflict(row.uid)
            } else {
                StoreError::NotFound(row.uid)
            })
        })
        .await
    }

    async fn remove(&self, uid: &str) -> Result<bool, StoreError> {
        let uid = uid.to_owned();
        self.run(move |c| {
            c.prepare_cached("DELETE FROM objects WHERE uid = ?1")
                .and_then(|mut st| st.execute(params![uid]))
                .map(|n| n > 0)
                .map_err(db("delete"))
        })
        .await
    }

    async fn locate(&self, q: &LocateQuery) -> Result<Vec<(String, String)>, StoreError> {
        let (sql, args) = locate_sql(q, &LOCATE);
        self.run(move |c| {
            let mut st = c.prepare_cached(&sql).map_err(db("locate"))?;
            let rows = st
                .query_map(params_from_iter(args.iter()), |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .map_err(db("locate"))?;
            rows.collect::<Result<_, _>>().map_err(db("locate"))
        })
        .await
    }
}
