//! The object store's schema, as versioned migrations (`rusqlite_migration`:
//! the version is SQLite's `PRAGMA user_version`, 0 for a database made by
//! the grant store alone). A migration, once released, is never edited: a
//! change of schema is a new one at the end of [`MIGRATIONS`].
//!
//! The grants table is not here: `crate::access::store` keeps its own
//! `CREATE TABLE IF NOT EXISTS`.

use rusqlite_migration::{Migrations, M};

/// Version 1: the `objects` table and its indexes.
///
/// One row per KMIP object. `uid` is the KMIP Unique Identifier; `names`
/// and `tags` are JSON arrays of strings (Locate reads them with
/// `json_each`), `attributes` the KMIP `Attributes` structure in JSON TTLV.
/// The material columns are all NULL (destroyed) or all set, and `blob` is
/// always wrapped by the HSM key `wrapping_key` with `mechanism`.
/// `created` and `updated` are unix seconds; Locate answers in the order of
/// (`created`, `rowid`).
const V1_OBJECTS: &str = "
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
";

/// Every migration, oldest first; the schema's version is their count.
const MIGRATIONS: &[M<'static>] = &[M::up(V1_OBJECTS)];

/// The migrations to run at open ([`Migrations::to_latest`]).
pub(super) fn migrations() -> Migrations<'static> {
    Migrations::from_slice(MIGRATIONS)
}

/// The schema version this build writes.
#[cfg(test)]
pub(super) const LATEST: usize = MIGRATIONS.len();
