//! What kms-frontend keeps at rest, searched for key material in clear
//! ([`AtRest`]):
//! - SQLite: the database file with its `-wal` and `-journal` companions,
//!   byte for byte (free pages and not yet checkpointed frames included), and
//!   every value of every table read back through SQLite (the text a
//!   `sqlite3 .dump` prints, without its quoting: a long value that SQLite
//!   splits over overflow pages is whole there);
//! - PostgreSQL: every row of the frontend's tables as `COPY ... TO STDOUT`
//!   writes them (bytea as hex) and, for [`AtRest::assert_nowhere`], every
//!   file of the cluster's data directory (tables, and the WAL, which holds
//!   every committed change at once; some 40 MB, so searched once).
//!
//! A secret is searched raw, as hex (upper and lower case) and as base64
//! (standard and URL-safe alphabets, at each of the three alignments it
//! could have inside a longer encoded value), so neither the key nor any
//! encoding of a value holding it may appear.

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use std::path::Path;

/// Key material that must never be at rest in clear.
#[derive(Clone)]
pub struct Secret {
    /// What it is, for the failure message (e.g. "dek1 (Get NotWrapped)").
    pub what: String,
    /// The clear bytes.
    pub bytes: Vec<u8>,
}

impl Secret {
    /// `bytes`, described by `what`.
    pub fn new(what: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            what: what.into(),
            bytes: bytes.into(),
        }
    }
}

/// The shortest secret searched, bytes: shorter ones would be found by
/// chance (the smallest key, AES-128, has 16).
pub const MIN_SECRET: usize = 16;

/// Every form `bytes` is searched in: (name of the form, bytes to find).
pub fn forms(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let hex_upper: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
    let mut out = vec![
        ("raw".to_owned(), bytes.to_vec()),
        (
            "hex (lower case)".to_owned(),
            hex_upper.to_lowercase().into_bytes(),
        ),
        ("hex (upper case)".to_owned(), hex_upper.into_bytes()),
    ];
    // Base64 maps each aligned group of 3 bytes to 4 characters: inside a
    // longer value, bytes[skip..] starts a group for one skip in 0..3, and
    // its whole groups appear as they encode alone.
    for skip in 0..3 {
        let whole = (bytes.len().saturating_sub(skip)) / 3 * 3;
        let part = &bytes[skip..skip + whole];
        for (name, engine) in [
            ("base64", &STANDARD_NO_PAD),
            ("base64url", &URL_SAFE_NO_PAD),
        ] {
            out.push((
                format!("{name} (from byte {skip})"),
                engine.encode(part).into_bytes(),
            ));
        }
    }
    out
}

/// True when `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && memchr::memmem::find(haystack, needle).is_some()
}

/// Every value of every table of the SQLite database `db`, text as is and
/// blobs as bytes, one value after the other (read-only, beside a running
/// frontend).
pub fn table_values(db: &Path) -> Vec<u8> {
    use rusqlite::types::ValueRef;
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap_or_else(|e| panic!("open {}: {e}", db.display()));
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .expect("busy timeout");
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<_, _>>()
        })
        .unwrap_or_else(|e| panic!("list tables of {}: {e}", db.display()));
    let mut out = Vec::new();
    for table in tables {
        let sql = format!("SELECT * FROM \"{}\"", table.replace('"', "\"\""));
        let mut stmt = conn.prepare(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let columns = stmt.column_count();
        let mut rows = stmt.query([]).unwrap_or_else(|e| panic!("{sql}: {e}"));
        while let Some(row) = rows.next().unwrap_or_else(|e| panic!("{sql}: {e}")) {
            for i in 0..columns {
                match row.get_ref(i).unwrap_or_else(|e| panic!("{sql}: {e}")) {
                    ValueRef::Null => {}
                    ValueRef::Integer(n) => out.extend(n.to_string().bytes()),
                    ValueRef::Real(x) => out.extend(x.to_string().bytes()),
                    ValueRef::Text(t) | ValueRef::Blob(t) => out.extend_from_slice(t),
                }
                out.push(b'\n');
            }
        }
    }
    out
}

/// Where a frontend keeps its database.
pub enum AtRest<'a> {
    /// The SQLite file.
    Sqlite(&'a Path),
    /// The PostgreSQL cluster.
    Postgres(&'a crate::postgres::PgServer),
}

impl AtRest<'_> {
    /// Panics naming the secret, the form and the place when any of
    /// `secrets` is at rest here (SQLite: files and values; PostgreSQL: the
    /// rows); `when` says after what (for the message).
    pub fn assert_no_clear_material(&self, secrets: &[Secret], when: &str) {
        let places = match self {
            AtRest::Sqlite(db) => sqlite_places(db, when),
            AtRest::Postgres(pg) => postgres_rows(pg),
        };
        search(&places, secrets, when);
    }

    /// [`AtRest::assert_no_clear_material`], and for PostgreSQL every file
    /// of the data directory too.
    pub fn assert_nowhere(&self, secrets: &[Secret], when: &str) {
        self.assert_no_clear_material(secrets, when);
        if let AtRest::Postgres(pg) = self {
            search(&postgres_files(pg), secrets, when);
        }
    }
}

/// The frontend's tables' rows (`COPY`).
fn postgres_rows(pg: &crate::postgres::PgServer) -> Vec<(String, Vec<u8>)> {
    ["objects", "grants"]
        .iter()
        .map(|table| {
            let rows = pg
                .sql(&format!("COPY {table} TO STDOUT"))
                .unwrap_or_else(|e| panic!("COPY {table}: {e}"));
            (format!("the rows of {table}"), rows.into_bytes())
        })
        .collect()
}

/// Every file of the data directory.
fn postgres_files(pg: &crate::postgres::PgServer) -> Vec<(String, Vec<u8>)> {
    let mut places = Vec::new();
    let mut dirs = vec![pg.data_dir()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                places.push((path.display().to_string(), bytes));
            }
        }
    }
    assert!(
        places.len() > 100,
        "{} files in the data directory",
        places.len()
    );
    places
}

/// Panics naming the secret, the form and the place when any of `secrets`
/// is at rest in the database `db` (its file, `-wal`, `-journal`, or its
/// table values); `when` says after what (for the message).
pub fn assert_no_clear_material(db: &Path, secrets: &[Secret], when: &str) {
    AtRest::Sqlite(db).assert_no_clear_material(secrets, when);
}

/// The SQLite file, its companions and its table values.
fn sqlite_places(db: &Path, when: &str) -> Vec<(String, Vec<u8>)> {
    let mut places: Vec<(String, Vec<u8>)> = Vec::new();
    for suffix in ["", "-wal", "-journal"] {
        let path = format!("{}{suffix}", db.display());
        if let Ok(bytes) = std::fs::read(&path) {
            places.push((path, bytes));
        }
    }
    assert!(
        !places.is_empty(),
        "{when}: no database at {}",
        db.display()
    );
    places.push((
        format!("the table values of {}", db.display()),
        table_values(db),
    ));
    places
}

/// Panics when any form of any of `secrets` is in any of `places`.
fn search(places: &[(String, Vec<u8>)], secrets: &[Secret], when: &str) {
    for s in secrets {
        assert!(
            s.bytes.len() >= MIN_SECRET,
            "{}: {} bytes is too short to search for ({MIN_SECRET} at least)",
            s.what,
            s.bytes.len()
        );
        for (form, needle) in forms(&s.bytes) {
            for (place, haystack) in places {
                assert!(
                    !contains(haystack, &needle),
                    "{when}: the clear key material of {} is at rest, {form}, in {place}",
                    s.what
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_base64_alignment_of_a_key_inside_a_longer_value_is_found() {
        let key: Vec<u8> = (0x40..0x60).collect();
        for prefix in 0..3 {
            let mut value = vec![0xAAu8; prefix];
            value.extend(&key);
            value.extend([0x55u8; 5]);
            let encoded = base64::engine::general_purpose::STANDARD.encode(&value);
            assert!(
                forms(&key)
                    .iter()
                    .any(|(_, n)| contains(encoded.as_bytes(), n)),
                "prefix {prefix}: {encoded}"
            );
        }
    }

    #[test]
    fn hex_in_either_case_is_found_and_other_bytes_are_not() {
        let key: Vec<u8> = (0x40..0x60).collect();
        let text = b"{\"k\":\"404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f\"}";
        assert!(forms(&key).iter().any(|(_, n)| contains(text, n)));
        let other: Vec<u8> = (0x41..0x61).collect();
        assert!(!forms(&other).iter().any(|(_, n)| contains(text, n)));
    }
}
