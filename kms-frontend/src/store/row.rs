//! An object as both backends write and read it: [`Row`] (its columns,
//! JSON columns encoded) and [`RawRow`] (a row read back, before its
//! checks). The SQL of each backend is in its own file.

use super::{LocateQuery, ObjectType, State, StoreError, StoredObject, WrappedMaterial};

/// Unix seconds now (0 before 1970, which a sane clock never says).
pub(super) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// An object as its row's values, owned (SQLite's go to the blocking pool).
pub(super) struct Row {
    pub(super) uid: String,
    pub(super) object_type: &'static str,
    pub(super) owner: String,
    pub(super) state: &'static str,
    pub(super) algorithm: Option<String>,
    pub(super) names: String,
    pub(super) tags: String,
    pub(super) attributes: String,
    pub(super) material: Option<WrappedMaterial>,
    /// The version the write expects to replace ([`ObjectStore::update`]).
    pub(super) version: i64,
}

impl Row {
    /// The values of `obj`.
    ///
    /// Errors: [`StoreError::Encode`] when a JSON column cannot be written.
    pub(super) fn of(obj: &StoredObject) -> Result<Self, StoreError> {
        let json = |what: &'static str, r: serde_json::Result<String>| {
            r.map_err(|source| StoreError::Encode {
                uid: obj.uid.clone(),
                what,
                source,
            })
        };
        Ok(Self {
            uid: obj.uid.clone(),
            object_type: obj.object_type.name(),
            owner: obj.owner.clone(),
            state: obj.state.name(),
            algorithm: obj.algorithm.clone(),
            names: json("names", serde_json::to_string(&obj.names))?,
            tags: json("tags", serde_json::to_string(&obj.tags))?,
            attributes: json("attributes", serde_json::to_string(&obj.attributes))?,
            material: obj.material.clone(),
            version: obj.version,
        })
    }
}

/// The JSON columns of a row, as text.
pub(super) struct Metadata {
    pub(super) names: String,
    pub(super) tags: String,
    pub(super) attributes: String,
}

/// A row as read by [`ObjectStore::get`], before its checks.
pub(super) struct RawRow {
    pub(super) object_type: String,
    pub(super) owner: String,
    pub(super) state: String,
    pub(super) algorithm: Option<String>,
    /// The JSON columns (names, tags, attributes) as text; None when not
    /// selected ([`ObjectStore::get_for_use`]): empty lists and null then,
    /// with nothing to parse on the per-request path.
    pub(super) metadata: Option<Metadata>,
    pub(super) wrapping_key: Option<String>,
    pub(super) mechanism: Option<String>,
    pub(super) format: Option<String>,
    pub(super) blob: Option<Vec<u8>>,
    pub(super) version: i64,
}

impl RawRow {
    /// The object `uid` this row holds.
    ///
    /// Errors: [`StoreError::Corrupt`] saying what is wrong with it.
    pub(super) fn object(self, uid: String) -> Result<StoredObject, StoreError> {
        let corrupt = |what: String| StoreError::Corrupt {
            uid: uid.clone(),
            what,
        };
        let object_type = ObjectType::from_name(&self.object_type)
            .ok_or_else(|| corrupt("its object type is not one this KMS stores".into()))?;
        let state = State::from_name(&self.state)
            .ok_or_else(|| corrupt("its state is not a KMIP state name".into()))?;
        let list = |what: &str, text: &str| {
            serde_json::from_str::<Vec<String>>(text)
                .map_err(|e| corrupt(format!("its {what} are not a JSON array of strings ({e})")))
        };
        let (names, tags, attributes) = match &self.metadata {
            None => (Vec::new(), Vec::new(), serde_json::Value::Null),
            Some(m) => (
                list("names", &m.names)?,
                list("tags", &m.tags)?,
                serde_json::from_str(&m.attributes)
                    .map_err(|e| corrupt(format!("its attributes are not JSON ({e})")))?,
            ),
        };
        let material = match (self.wrapping_key, self.mechanism, self.format, self.blob) {
            (None, None, None, None) => None,
            (Some(wrapping_key), Some(mechanism), Some(format), Some(blob)) => {
                Some(WrappedMaterial {
                    wrapping_key,
                    mechanism,
                    format,
                    blob,
                })
            }
            _ => {
                return Err(corrupt(
                    "its material columns are neither all set nor all empty".into(),
                ))
            }
        };
        Ok(StoredObject {
            uid,
            object_type,
            owner: self.owner,
            state,
            algorithm: self.algorithm,
            names,
            tags,
            attributes,
            material,
            version: self.version,
        })
    }
}

/// What a Locate query says differently on each backend.
pub(super) struct LocateDialect {
    /// The parameter sign: `?` (SQLite, `?1`) or `$` (PostgreSQL, `$1`).
    pub(super) placeholder: char,
    /// The condition "`names` holds the parameter `?`".
    pub(super) has_name: &'static str,
    /// The condition "`tags` holds the parameter `?`".
    pub(super) has_tag: &'static str,
    /// The ORDER BY list: creation, then insertion order.
    pub(super) order: &'static str,
}

/// The query and parameters of `q` in dialect `d` (every value a
/// parameter, never spliced into the SQL).
pub(super) fn locate_sql(q: &LocateQuery, d: &LocateDialect) -> (String, Vec<String>) {
    let mut sql = String::from("SELECT uid, owner FROM objects WHERE 1 = 1");
    let mut args = Vec::new();
    let mut arg = |sql: &mut String, clause: &str, value: &str| {
        args.push(value.to_owned());
        sql.push_str(" AND ");
        sql.push_str(&clause.replace('?', &format!("{}{}", d.placeholder, args.len())));
    };
    if let Some(name) = &q.name {
        arg(&mut sql, d.has_name, name);
    }
    for tag in &q.tags {
        arg(&mut sql, d.has_tag, tag);
    }
    if let Some(t) = q.object_type {
        arg(&mut sql, "object_type = ?", t.name());
    }
    if let Some(a) = &q.algorithm {
        arg(&mut sql, "algorithm = ?", a);
    }
    if let Some(s) = q.state {
        arg(&mut sql, "state = ?", s.name());
    }
    sql.push_str(" ORDER BY ");
    sql.push_str(d.order);
    (sql, args)
}
