//! The database schema, as one list of versioned migrations for both
//! backends ([`MIGRATIONS`]): version `n` is the `n`-th entry, written once
//! in SQLite's dialect and once in PostgreSQL's, with the same tables and
//! columns. A migration, once released, is never edited: a change of schema
//! is a new entry at the end.
//!
//! - SQLite: `rusqlite_migration`; the version is `PRAGMA user_version`
//!   (0 for a database made by the grant store alone, before version 2).
//! - PostgreSQL: sqlx's migrator; the versions applied are rows of
//!   `_sqlx_migrations`, and it holds a PostgreSQL advisory lock while it
//!   runs, so frontends started together apply each migration once.

use rusqlite_migration::{Migrations, M};
use std::borrow::Cow;

/// One schema version.
pub(super) struct Migration {
    /// What it does, in a few words (sqlx records it).
    pub description: &'static str,
    /// The SQL for SQLite.
    pub sqlite: &'static str,
    /// The SQL for PostgreSQL.
    pub postgres: &'static str,
}

/// Version 1: the `objects` table and its indexes.
///
/// One row per KMIP object. `uid` is the KMIP Unique Identifier; `names`
/// and `tags` are JSON arrays of strings (Locate searches them),
/// `attributes` the KMIP `Attributes` structure in JSON TTLV. The material
/// columns are all NULL (destroyed) or all set, and `blob` is always wrapped
/// by the HSM key `wrapping_key` with `mechanism`. `created` and `updated`
/// are unix seconds; Locate answers in the order of (`created`, insertion).
///
/// PostgreSQL also gets `seq` (the insertion order SQLite's `rowid` gives)
/// and a trigger that sends `NOTIFY kms_objects, '<uid>'` when a row is
/// updated or deleted: every frontend's unwrapped-key cache listens
/// (`super::postgres::changes`).
const V1_OBJECTS: Migration = Migration {
    description: "objects",
    sqlite: "
CREATE TABLE objects (
    uid TEXT NOT NULL PRIMARY KEY,
    object_type TEXT NOT NULL,
    owner TEXT NOT NULL,
    state TEXT NOT NULL,
    algorithm TEXT,
    names TEXT NOT NULL CHECK (json_type(names) = 'array'),
    tags TEXT NOT NULL CHECK (json_type(tags) = 'array'),
    attributes TEXT NOT NULL CHECK (json_valid(attributes)),
    wrapping_key TEXT,
    mechanism TEXT,
    format TEXT,
    blob BLOB,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    CHECK ((wrapping_key IS NULL) = (mechanism IS NULL)
       AND (wrapping_key IS NULL) = (format IS NULL)
       AND (wrapping_key IS NULL) = (blob IS NULL))
);
CREATE INDEX objects_by_creation ON objects (created);
CREATE INDEX objects_by_owner ON objects (owner);
CREATE INDEX objects_by_type ON objects (object_type, algorithm, state);
",
    postgres: "
CREATE TABLE objects (
    uid TEXT NOT NULL PRIMARY KEY,
    seq BIGSERIAL NOT NULL,
    object_type TEXT NOT NULL,
    owner TEXT NOT NULL,
    state TEXT NOT NULL,
    algorithm TEXT,
    names JSONB NOT NULL CHECK (jsonb_typeof(names) = 'array'),
    tags JSONB NOT NULL CHECK (jsonb_typeof(tags) = 'array'),
    attributes JSON NOT NULL,
    wrapping_key TEXT,
    mechanism TEXT,
    format TEXT,
    blob BYTEA,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    CHECK ((wrapping_key IS NULL) = (mechanism IS NULL)
       AND (wrapping_key IS NULL) = (format IS NULL)
       AND (wrapping_key IS NULL) = (blob IS NULL))
);
CREATE INDEX objects_by_creation ON objects (created, seq);
CREATE INDEX objects_by_owner ON objects (owner);
CREATE INDEX objects_by_type ON objects (object_type, algorithm, state);
CREATE FUNCTION kms_objects_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('kms_objects', OLD.uid);
    RETURN NULL;
END;
$$;
CREATE TRIGGER objects_changed AFTER UPDATE OR DELETE ON objects
    FOR EACH ROW EXECUTE FUNCTION kms_objects_notify();
",
};

/// Version 2: the `grants` table (`crate::access::store`): one row per
/// (key uid, user, operation). In SQLite, older grant stores made it
/// before there were versions, hence `IF NOT EXISTS` there.
const V2_GRANTS: Migration = Migration {
    description: "grants",
    sqlite: "
CREATE TABLE IF NOT EXISTS grants (
    uid TEXT NOT NULL,
    user_id TEXT NOT NULL,
    operation TEXT NOT NULL,
    PRIMARY KEY (uid, user_id, operation)
);
",
    postgres: "
CREATE TABLE grants (
    uid TEXT NOT NULL,
    user_id TEXT NOT NULL,
    operation TEXT NOT NULL,
    PRIMARY KEY (uid, user_id, operation)
);
CREATE INDEX grants_by_user ON grants (user_id);
",
};

/// Version 3: `objects.version`, a random number at insert (the stores set
/// it) and one more at each update. An
/// update writes only over the version it read (compare-and-set), so two
/// read-modify-writes of one key (a Revoke and an attribute change, through
/// one frontend or two) never silently undo each other.
const V3_VERSION: Migration = Migration {
    description: "objects version",
    sqlite: "ALTER TABLE objects ADD COLUMN version INTEGER NOT NULL DEFAULT 0;",
    postgres: "ALTER TABLE objects ADD COLUMN version BIGINT NOT NULL DEFAULT 0;",
};

/// Every migration, oldest first; the schema's version is their count.
pub(super) const MIGRATIONS: &[Migration] = &[V1_OBJECTS, V2_GRANTS, V3_VERSION];

/// The SQLite migrations to run at open ([`Migrations::to_latest`]).
pub(super) fn sqlite() -> Migrations<'static> {
    Migrations::new(MIGRATIONS.iter().map(|m| M::up(m.sqlite)).collect())
}

/// The PostgreSQL migrations, as sqlx's migrator runs them (version `n`
/// for the `n`-th entry, each in its own transaction).
#[derive(Debug)]
pub(super) struct Postgres;

impl sqlx::migrate::MigrationSource<'static> for Postgres {
    fn resolve(
        self,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<Vec<sqlx::migrate::Migration>, sqlx::error::BoxDynError>,
                > + Send,
        >,
    > {
        let migrations = MIGRATIONS
            .iter()
            .zip(1_i64..)
            .map(|(m, version)| {
                sqlx::migrate::Migration::new(
                    version,
                    Cow::Borrowed(m.description),
                    sqlx::migrate::MigrationType::Simple,
                    sqlx::SqlStr::from_static(m.postgres),
                    false,
                )
            })
            .collect();
        Box::pin(std::future::ready(Ok(migrations)))
    }
}

/// The schema version this build writes.
#[cfg(test)]
pub(super) const LATEST: usize = MIGRATIONS.len();
