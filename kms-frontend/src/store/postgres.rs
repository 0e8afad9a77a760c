//! [`PgStore`]: the object store in PostgreSQL (`database_type =
//! "postgresql"`), shared by every frontend on the database. Each method is
//! one statement (one transaction), [`ObjectStore::insert_all`] one explicit
//! transaction.
//!
//! Consistency between frontends: every operation with a key reads its row
//! ([`ObjectStore::get_for_use`]), so a Revoke or Destroy made through
//! another frontend holds at once; and each UPDATE or DELETE of a row sends
//! `NOTIFY kms_objects, '<uid>'` (a trigger, `super::migrations`), which
//! [`Changes`] turns into [`Change`]s so that every frontend's unwrapped
//! cache forgets the key within moments.

use super::migrations;
use super::row::{locate_sql, now, LocateDialect, Metadata, RawRow, Row};
use super::{LocateQuery, ObjectStore, StoreError, StoredObject};
use crate::postgres::{failure, read_retrying};
use sqlx::postgres::{PgListener, PgPool, PgRow};
use sqlx::{AssertSqlSafe, Row as _};
use std::time::Duration;

/// The channel of the `objects` trigger.
const CHANNEL: &str = "kms_objects";

/// How long [`Changes::next`] waits between attempts to listen again while
/// the database is unreachable.
const RELISTEN_EVERY: Duration = Duration::from_millis(500);

/// The columns written by insert and upsert, in parameter order (`$1` ..
/// `$13`; `$13` is also `updated`; `version` starts at a random number, as
/// in `super::sqlite`).
const COLUMNS: &str = "uid, object_type, owner, state, algorithm, names, tags, attributes, \
                       wrapping_key, mechanism, format, blob, created, updated, version";

/// The values of [`COLUMNS`], JSON columns cast from text.
const VALUES: &str =
    "$1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8::json, $9, $10, $11, $12, $13, $13, \
     floor(random() * 4611686018427387903)::bigint";

/// The object store in PostgreSQL.
pub struct PgStore {
    pool: PgPool,
    /// The database as messages name it (`crate::postgres::describe`).
    server: String,
}

impl PgStore {
    /// The store on `pool` (the database `server`, for messages), after
    /// bringing the schema to the current version (`super::migrations`,
    /// under sqlx's advisory lock: frontends starting together apply each
    /// migration once; nothing to do when it is there already).
    ///
    /// Errors: [`StoreError::NewerSchema`] for a database migrated by a
    /// newer kms-frontend; [`StoreError::PgMigration`] when a migration
    /// fails (a role without CREATE on the schema, the first time);
    /// [`StoreError::Postgres`].
    pub async fn open(pool: PgPool, server: String) -> Result<Self, StoreError> {
        let store = Self { pool, server };
        // Up to date already: nothing to write, so a role with no CREATE
        // right on the schema (only SELECT, INSERT, UPDATE, DELETE on the
        // tables) starts.
        let known = i64::try_from(migrations::MIGRATIONS.len()).unwrap_or(i64::MAX);
        match store.applied().await? {
            Some(found) if found > known => Err(StoreError::NewerSchema { found, known }),
            Some(found) if found == known => Ok(store),
            _ => {
                sqlx::migrate::Migrator::new(migrations::Postgres)
                    .await?
                    .run(&store.pool)
                    .await?;
                Ok(store)
            }
        }
    }

    /// The highest schema version applied, or None on a database without
    /// any (no `_sqlx_migrations` table).
    async fn applied(&self) -> Result<Option<i64>, StoreError> {
        let table: Option<String> =
            sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
                .fetch_one(&self.pool)
                .await
                .map_err(self.error("schema version"))?;
        if table.is_none() {
            return Ok(None);
        }
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&self.pool)
            .await
            .map_err(self.error("schema version"))
    }

    /// The feed of changed objects (listening already when this returns, so
    /// no change after it is missed).
    ///
    /// Errors: [`StoreError::Postgres`].
    pub async fn changes(&self) -> Result<Changes, StoreError> {
        let listener = listen(&self.pool).await.map_err(self.error("listen"))?;
        Ok(Changes {
            pool: self.pool.clone(),
            listener: Some(listener),
        })
    }

    /// Maps a sqlx error met while doing `what`.
    fn error(&self, what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
        move |source| StoreError::Postgres(failure(&self.server, what)(source))
    }
}

/// A listener on [`CHANNEL`].
async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// What changed in the store, as [`Changes::next`] tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The object with this uid was updated or removed (by any frontend).
    Object(String),
    /// The feed was interrupted, or has just resumed after one: changes
    /// in between are unknown, so anything may have changed.
    Lost,
}

/// The feed of changed objects: PostgreSQL `LISTEN kms_objects`.
pub struct Changes {
    pool: PgPool,
    /// None while the database is unreachable.
    listener: Option<PgListener>,
}

impl Changes {
    /// The next change. When the listening connection drops, answers
    /// [`Change::Lost`] at once, then tries to listen again every
    /// [`RELISTEN_EVERY`] and answers [`Change::Lost`] again once it does
    /// (what changed in the gap is unknown). Never fails.
    pub async fn next(&mut self) -> Change {
        loop {
            let Some(listener) = self.listener.as_mut() else {
                match listen(&self.pool).await {
                    Ok(l) => {
                        self.listener = Some(l);
                        tracing::info!("listening again for key changes on the KMS database");
                        return Change::Lost;
                    }
                    Err(_) => {
                        tokio::time::sleep(RELISTEN_EVERY).await;
                        continue;
                    }
                }
            };
            match listener.try_recv().await {
                Ok(Some(n)) => return Change::Object(n.payload().to_owned()),
                Ok(None) | Err(_) => {
                    self.listener = None;
                    tracing::warn!("lost the key-change feed of the KMS database; unwrapped keys are forgotten and it is listened to again");
                    return Change::Lost;
                }
            }
        }
    }
}

/// Binds `row` (and `time`) to `sql`'s `$1` .. `$13`.
fn bind<'q>(
    sql: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    row: &'q Row,
    time: i64,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let m = row.material.as_ref();
    sql.bind(&row.uid)
        .bind(row.object_type)
        .bind(&row.owner)
        .bind(row.state)
        .bind(&row.algorithm)
        .bind(&row.names)
        .bind(&row.tags)
        .bind(&row.attributes)
        .bind(m.map(|m| &m.wrapping_key))
        .bind(m.map(|m| &m.mechanism))
        .bind(m.map(|m| &m.format))
        .bind(m.map(|m| &m.blob))
        .bind(time)
}

/// [`bind`], and `$14`: the version read.
fn bind_versioned<'q>(
    sql: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    row: &'q Row,
    time: i64,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    bind(sql, row, time).bind(row.version)
}

/// `SELECT` of a whole row.
const SELECT: &str = "SELECT object_type, owner, state, algorithm, names::text, tags::text, \
     attributes::text, wrapping_key, mechanism, format, blob, version FROM objects WHERE uid = $1";

/// [`SELECT`] without the JSON columns (names, tags, attributes).
const SELECT_FOR_USE: &str = "SELECT object_type, owner, state, algorithm, \
     wrapping_key, mechanism, format, blob, version FROM objects WHERE uid = $1";

/// A row of [`SELECT`].
fn read(r: &PgRow) -> Result<RawRow, sqlx::Error> {
    Ok(RawRow {
        object_type: r.try_get(0)?,
        owner: r.try_get(1)?,
        state: r.try_get(2)?,
        algorithm: r.try_get(3)?,
        metadata: Some(Metadata {
            names: r.try_get(4)?,
            tags: r.try_get(5)?,
            attributes: r.try_get(6)?,
        }),
        wrapping_key: r.try_get(7)?,
        mechanism: r.try_get(8)?,
        format: r.try_get(9)?,
        blob: r.try_get(10)?,
        version: r.try_get(11)?,
    })
}

/// A row of [`SELECT_FOR_USE`]: no names, no tags, null attributes.
fn read_for_use(r: &PgRow) -> Result<RawRow, sqlx::Error> {
    Ok(RawRow {
        object_type: r.try_get(0)?,
        owner: r.try_get(1)?,
        state: r.try_get(2)?,
        algorithm: r.try_get(3)?,
        metadata: None,
        wrapping_key: r.try_get(4)?,
        mechanism: r.try_get(5)?,
        format: r.try_get(6)?,
        blob: r.try_get(7)?,
        version: r.try_get(8)?,
    })
}

/// PostgreSQL's Locate: names and tags are JSONB arrays (containment);
/// the insertion order is `seq`.
const LOCATE: LocateDialect = LocateDialect {
    placeholder: '$',
    has_name: "names @> jsonb_build_array(?::text)",
    has_tag: "tags @> jsonb_build_array(?::text)",
    order: "created, seq",
};

/// PostgreSQL's `text` and `json` cannot hold NUL (U+0000): a uid with one
/// names no stored object.
fn has_nul(text: &str) -> bool {
    text.contains('\0')
}

/// `row`, refused when one of its values holds NUL, which PostgreSQL cannot
/// store (SQLite can: the same request is answered, not failed, there).
fn storable(row: Row) -> Result<Row, StoreError> {
    let what = if has_nul(&row.uid) {
        "the Unique Identifier"
    } else if row.names.contains("\\u0000") {
        "a Name"
    } else if row.tags.contains("\\u0000") {
        "a tag"
    } else if row.attributes.contains("\\u0000") || has_nul(&row.owner) {
        "an attribute"
    } else {
        return Ok(row);
    };
    Err(StoreError::Unstorable { uid: row.uid, what })
}

#[async_trait::async_trait]
impl ObjectStore for PgStore {
    async fn insert_all(&self, objs: &[StoredObject]) -> Result<(), StoreError> {
        let rows = objs
            .iter()
            .map(|o| Row::of(o).and_then(storable))
            .collect::<Result<Vec<_>, _>>()?;
        let sql = format!(
            "INSERT INTO objects ({COLUMNS}) VALUES ({VALUES}) ON CONFLICT (uid) DO NOTHING"
        );
        // Dropped without commit (on any error) it rolls back.
        let mut tx = self.pool.begin().await.map_err(self.error("begin"))?;
        let time = now();
        for row in &rows {
            let done = bind(sqlx::query(AssertSqlSafe(sql.as_str())), row, time)
                .execute(&mut *tx)
                .await
                .map_err(self.error("insert"))?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Exists(row.uid.clone()));
            }
        }
        tx.commit().await.map_err(self.error("commit"))
    }

    async fn upsert(&self, obj: &StoredObject) -> Result<(), StoreError> {
        let row = storable(Row::of(obj)?)?;
        let sql = format!(
            "INSERT INTO objects ({COLUMNS}) VALUES ({VALUES}) \
             ON CONFLICT (uid) DO UPDATE SET object_type = excluded.object_type, \
             owner = excluded.owner, state = excluded.state, algorithm = excluded.algorithm, \
             names = excluded.names, tags = excluded.tags, attributes = excluded.attributes, \
             wrapping_key = excluded.wrapping_key, mechanism = excluded.mechanism, \
             format = excluded.format, blob = excluded.blob, created = excluded.created, \
             updated = excluded.updated, version = objects.version + 1 \
             WHERE objects.owner = excluded.owner"
        );
        // The owner is checked in the same statement as the write, so no
        // other user's object created in between is overwritten.
        let done = bind(sqlx::query(AssertSqlSafe(sql)), &row, now())
            .execute(&self.pool)
            .await
            .map_err(self.error("upsert"))?;
        match done.rows_affected() {
            0 => Err(StoreError::Exists(row.uid)),
            _ => Ok(()),
        }
    }

    async fn get(&self, uid: &str) -> Result<Option<StoredObject>, StoreError> {
        if has_nul(uid) {
            return Ok(None);
        }
        let row = read_retrying(|| sqlx::query(SELECT).bind(uid).fetch_optional(&self.pool))
            .await
            .map_err(self.error("select"))?;
        row.map(|r| read(&r).map_err(self.error("select")))
            .transpose()?
            .map(|r| r.object(uid.to_owned()))
            .transpose()
    }

    async fn get_for_use(&self, uid: &str) -> Result<Option<StoredObject>, StoreError> {
        if has_nul(uid) {
            return Ok(None);
        }
        let row = read_retrying(|| {
            sqlx::query(SELECT_FOR_USE)
                .bind(uid)
                .fetch_optional(&self.pool)
        })
        .await
        .map_err(self.error("select"))?;
        row.map(|r| read_for_use(&r).map_err(self.error("select")))
            .transpose()?
            .map(|r| r.object(uid.to_owned()))
            .transpose()
    }

    async fn update(&self, obj: &StoredObject) -> Result<(), StoreError> {
        let row = storable(Row::of(obj)?)?;
        // $14: the version read; a row whose version moved on is left as
        // it is (compare-and-set).
        let sql = "UPDATE objects SET object_type = $2, owner = $3, state = $4, \
                   algorithm = $5, names = $6::jsonb, tags = $7::jsonb, attributes = $8::json, \
                   wrapping_key = $9, mechanism = $10, format = $11, blob = $12, \
                   updated = $13, version = version + 1 WHERE uid = $1 AND version = $14";
        let done = bind_versioned(sqlx::query(sql), &row, now())
            .execute(&self.pool)
            .await
            .map_err(self.error("update"))?;
        if done.rows_affected() > 0 {
            return Ok(());
        }
        let exists = sqlx::query("SELECT 1 FROM objects WHERE uid = $1")
            .bind(&row.uid)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.error("update"))?
            .is_some();
        Err(if exists {
            StoreError::Conflict(row.uid)
        } else {
            StoreError::NotFound(row.uid)
        })
    }

    async fn remove(&self, uid: &str) -> Result<bool, StoreError> {
        if has_nul(uid) {
            return Ok(false);
        }
        sqlx::query("DELETE FROM objects WHERE uid = $1")
            .bind(uid)
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected() > 0)
            .map_err(self.error("delete"))
    }

    async fn locate(&self, q: &LocateQuery) -> Result<Vec<(String, String)>, StoreError> {
        let (sql, args) = locate_sql(q, &LOCATE);
        if args.iter().any(|a| has_nul(a)) {
            return Ok(Vec::new());
        }
        let rows = read_retrying(|| {
            let mut query = sqlx::query(AssertSqlSafe(sql.as_str()));
            for a in &args {
                query = query.bind(a);
            }
            query.fetch_all(&self.pool)
        })
        .await
        .map_err(self.error("locate"))?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(self.error("locate"))
    }
}
