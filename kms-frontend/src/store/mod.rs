//! The KMS object store: KMIP objects (KMS keys that are not HSM keys, their
//! attributes and states) kept in the database, behind one async interface,
//! [`ObjectStore`], so that another database (PostgreSQL, issue 15) can
//! stand in for SQLite: [`SqliteStore`] (in the file of the grants) or
//! [`PgStore`] (PostgreSQL, shared by several frontends).
//!
//! Key material reaches the store only wrapped by an HSM key
//! ([`WrappedMaterial`]): the wrapping and unwrapping are done by the caller
//! (through hsmd), and nothing here is ever handed clear key bytes.
//!
//! Uses `crate::database_file` (the SQLite file's creation) and
//! `crate::postgres` (the pool) and nothing else of the crate; nothing here knows KMIP operations, TTLV parsing or HTTP.

mod migrations;
mod postgres;
mod row;
mod sqlite;
#[cfg(test)]
mod tests;

pub use postgres::{Change, Changes, PgStore};
pub use sqlite::SqliteStore;

use thiserror::Error;

/// KMIP object types this KMS stores (KMIP 2.1 section 11.24 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectType {
    /// `SymmetricKey`: an AES key.
    SymmetricKey,
    /// `PrivateKey`: the private half of an RSA or EC key pair.
    PrivateKey,
    /// `PublicKey`: the public half of an RSA or EC key pair.
    PublicKey,
    /// `SecretData`: opaque secret bytes (a password, a seed).
    SecretData,
}

impl ObjectType {
    /// Every type, in the order of KMIP 2.1 section 11.24's table.
    pub const ALL: [ObjectType; 4] = [
        ObjectType::SymmetricKey,
        ObjectType::PublicKey,
        ObjectType::PrivateKey,
        ObjectType::SecretData,
    ];

    /// The KMIP name (`"SymmetricKey"`, `"PrivateKey"`, `"PublicKey"`,
    /// `"SecretData"`), as in JSON TTLV and in the database.
    pub fn name(self) -> &'static str {
        match self {
            ObjectType::SymmetricKey => "SymmetricKey",
            ObjectType::PrivateKey => "PrivateKey",
            ObjectType::PublicKey => "PublicKey",
            ObjectType::SecretData => "SecretData",
        }
    }

    /// The type named `name` (exactly one of [`ObjectType::name`]'s
    /// answers), or None.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// KMIP states (KMIP 2.1 section 11.42 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// `PreActive`: created, not yet usable for protection.
    PreActive,
    /// `Active`: usable.
    Active,
    /// `Deactivated`: revoked; may still process (decrypt, verify).
    Deactivated,
    /// `Compromised`: revoked as compromised.
    Compromised,
    /// `Destroyed`: the material is gone, the metadata stays.
    Destroyed,
    /// `Destroyed_Compromised`: destroyed after (or as) compromised.
    DestroyedCompromised,
}

impl State {
    /// Every state, in the order of KMIP 2.1 section 11.42's table.
    pub const ALL: [State; 6] = [
        State::PreActive,
        State::Active,
        State::Deactivated,
        State::Compromised,
        State::Destroyed,
        State::DestroyedCompromised,
    ];

    /// The KMIP name (`"PreActive"`, `"Active"`, `"Deactivated"`,
    /// `"Compromised"`, `"Destroyed"`, `"Destroyed_Compromised"`), as in
    /// JSON TTLV and in the database.
    pub fn name(self) -> &'static str {
        match self {
            State::PreActive => "PreActive",
            State::Active => "Active",
            State::Deactivated => "Deactivated",
            State::Compromised => "Compromised",
            State::Destroyed => "Destroyed",
            State::DestroyedCompromised => "Destroyed_Compromised",
        }
    }

    /// The state named `name` (exactly one of [`State::name`]'s answers),
    /// or None.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Key material as stored: always wrapped by an HSM key.
/// Debug shows the wrapping key, mechanism, format and the blob's LENGTH only.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedMaterial {
    /// The HSM key that wrapped it, `hsm::<slot>::<label>`.
    pub wrapping_key: String,
    /// The mechanism actually used: "aes_gcm" | "aes_cbc_pad" | "rsa_oaep_sha1" | "rsa_oaep_sha256"
    /// (hsmd's EncryptionAlgorithm names), so another token can unwrap it.
    pub mechanism: String,
    /// Format of the clear material inside: "raw" | "pkcs8" | "spki".
    pub format: String,
    /// The wrapped bytes: iv || ciphertext || tag for GCM, iv || ciphertext for CBC, the RSA ciphertext for OAEP.
    pub blob: Vec<u8>,
}

impl std::fmt::Debug for WrappedMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrappedMaterial")
            .field("wrapping_key", &self.wrapping_key)
            .field("mechanism", &self.mechanism)
            .field("format", &self.format)
            .field("blob_len", &self.blob.len())
            .finish()
    }
}

/// One stored KMIP object.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredObject {
    /// The KMIP Unique Identifier (the caller's choice or a UUID v4).
    pub uid: String,
    /// What the object is.
    pub object_type: ObjectType,
    /// The KMS user who created or imported it (owns it).
    pub owner: String,
    /// Its KMIP state.
    pub state: State,
    /// "AES", "RSA", "ECDSA"/"EC", or None (SecretData): the KMIP CryptographicAlgorithm name.
    pub algorithm: Option<String>,
    /// KMIP Name values (for Locate by Name).
    pub names: Vec<String>,
    /// The reference's tags (Cosmian vendor attribute `tag`), for Locate by tag.
    pub tags: Vec<String>,
    /// The KMIP `Attributes` structure in JSON TTLV (serde_json::Value): never key material.
    pub attributes: serde_json::Value,
    /// None once destroyed (the metadata stays, the material is gone).
    pub material: Option<WrappedMaterial>,
    /// The row's version as read: a random number when the row was
    /// inserted (so a uid removed and created again never repeats an old
    /// row's versions), one more at each update. [`ObjectStore::update`]
    /// writes only over this version; ignored by insert and upsert.
    pub version: i64,
}

/// What Locate filters on; every field that is Some/non-empty must match
/// (exactly, case included).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocateQuery {
    /// One of the object's [`StoredObject::names`].
    pub name: Option<String>,
    /// Tags the object must all carry (it may carry more).
    pub tags: Vec<String>,
    /// The object's type.
    pub object_type: Option<ObjectType>,
    /// The object's KMIP CryptographicAlgorithm name.
    pub algorithm: Option<String>,
    /// The object's state.
    pub state: Option<State>,
}

/// Longest part of a Unique Identifier that an error message repeats.
const UID_SHOWN: usize = 128;

/// `uid`, cut to [`UID_SHOWN`] characters with the cut said, for messages.
fn shown(uid: &str) -> String {
    match uid.char_indices().nth(UID_SHOWN) {
        None => uid.to_owned(),
        Some((end, _)) => format!("{}... ({} bytes in all)", &uid[..end], uid.len()),
    }
}

/// Why the object store could not do what was asked. No variant ever
/// carries key material.
#[derive(Debug, Error)]
pub enum StoreError {
    /// An insert of a uid that exists.
    #[error("an object with Unique Identifier {} already exists; choose another or leave it out for a UUID", shown(.0))]
    Exists(String),
    /// A value PostgreSQL cannot store: text with the NUL character.
    #[error(
        "{what} of {} holds the NUL character (U+0000), which the database cannot store; remove it",
        shown(uid)
    )]
    Unstorable {
        /// The object.
        uid: String,
        /// Which value (its uid, names, tags, attributes).
        what: &'static str,
    },
    /// The PostgreSQL schema was made by a newer kms-frontend.
    #[error("the KMS database's schema is at version {found}, made by a newer kms-frontend; this one knows versions up to {known}: upgrade this frontend")]
    NewerSchema {
        /// The highest version applied to the database.
        found: i64,
        /// The highest version this build knows.
        known: i64,
    },
    /// An update of an object that another request changed since it was
    /// read (its version moved on): nothing was written.
    #[error("the object {} was changed by another request while this one ran; nothing was written: retry", shown(.0))]
    Conflict(String),
    /// An update of a uid that does not exist.
    #[error("no object with Unique Identifier {} is in the store; only an existing object can be updated", shown(.0))]
    NotFound(String),
    /// The database file or its directory could not be created.
    #[error(transparent)]
    File(#[from] crate::database_file::FileError),
    /// The database failed (the cause, never material).
    #[error("object store {what}: {source}")]
    Database {
        /// The step (open, insert, select, ...).
        what: &'static str,
        /// Why.
        source: rusqlite::Error,
    },
    /// PostgreSQL failed, or cannot be reached now
    /// ([`crate::postgres::PgFailure::is_unreachable`]: 503 for the caller).
    #[error("object store: {0}")]
    Postgres(#[from] crate::postgres::PgFailure),
    /// The PostgreSQL schema could not be brought to the current version.
    #[error("object store schema migration (PostgreSQL): {source}")]
    PgMigration {
        /// Why.
        #[from]
        source: sqlx::migrate::MigrateError,
    },
    /// The schema could not be brought to the current version.
    #[error("object store schema migration: {source}")]
    Migration {
        /// Why.
        #[from]
        source: rusqlite_migration::Error,
    },
    /// An object's names, tags or attributes could not be written as JSON.
    #[error(
        "object store: cannot write the {what} of {} as JSON: {source}",
        shown(uid)
    )]
    Encode {
        /// The object.
        uid: String,
        /// Which column (names, tags, attributes).
        what: &'static str,
        /// Why.
        source: serde_json::Error,
    },
    /// A stored row is not what this version writes (changed by hand, or
    /// by a newer version).
    #[error(
        "object store: the stored object {} cannot be read: {what}",
        shown(uid)
    )]
    Corrupt {
        /// The object.
        uid: String,
        /// What is wrong with it.
        what: String,
    },
    /// The thread that runs the database call ended without an answer.
    #[error("object store: the database task failed: {source}")]
    Task {
        /// Why (a panic or the runtime shutting down).
        #[from]
        source: tokio::task::JoinError,
    },
}

impl From<StoreError> for crate::error::KmsError {
    /// "Already exists", "not found" and a value the database cannot hold
    /// are the caller's (422); a conflict is 409 (send it again); an
    /// unreachable database 503 naming it; anything else is ours (500).
    fn from(e: StoreError) -> Self {
        use crate::error::KmsError;
        match e {
            StoreError::Exists(_) | StoreError::NotFound(_) | StoreError::Unstorable { .. } => {
                KmsError::unprocessable(e.to_string())
            }
            StoreError::Postgres(ref f) if f.is_unreachable() => KmsError::database_unavailable(f),
            StoreError::Conflict(_) => KmsError::conflict(e.to_string()),
            other => KmsError::internal(other),
        }
    }
}

/// The object store; every method is one transaction.
///
/// Errors: every method may fail with [`StoreError::Database`] or
/// [`StoreError::Task`]; those that read rows with [`StoreError::Corrupt`];
/// those that write JSON columns with [`StoreError::Encode`].
#[async_trait::async_trait]
pub trait ObjectStore: Send + Sync {
    /// Adds `obj` (created and updated now).
    ///
    /// Errors: [`StoreError::Exists`] when its uid is taken.
    async fn insert(&self, obj: &StoredObject) -> Result<(), StoreError> {
        self.insert_all(std::slice::from_ref(obj)).await
    }
    /// Adds every object of `objs` (a key pair's two halves), all or none:
    /// one transaction, so no half of a pair is ever stored alone.
    ///
    /// Errors: [`StoreError::Exists`] naming the first uid taken (nothing
    /// is added then).
    async fn insert_all(&self, objs: &[StoredObject]) -> Result<(), StoreError>;
    /// Insert or overwrite an object of the same owner (KMIP Import with
    /// ReplaceExisting), owner check and write in one step. An overwritten
    /// object is a new one: created and updated now.
    ///
    /// Errors: [`StoreError::Exists`] when the uid is another owner's.
    async fn upsert(&self, obj: &StoredObject) -> Result<(), StoreError>;
    /// The object `uid`, or None.
    async fn get(&self, uid: &str) -> Result<Option<StoredObject>, StoreError>;
    /// The object `uid` as an operation with it needs it, or None: its
    /// type, owner, state, algorithm and material as stored now (read from
    /// the database on every call, so a Revoke or Destroy by any process
    /// counts at once), WITHOUT its metadata: `names` and `tags` empty,
    /// `attributes` null. For Encrypt, Decrypt, Sign and SignatureVerify,
    /// on every request: an implementation should make it cheap (the
    /// SQLite one reads the row inline, on its own read connection, without
    /// the JSON columns). The default is [`ObjectStore::get`].
    async fn get_for_use(&self, uid: &str) -> Result<Option<StoredObject>, StoreError> {
        self.get(uid).await
    }
    /// Overwrites an existing object's row (state, attributes, names, tags, material;
    /// owner, type and algorithm too), when it is still at `obj.version`:
    /// updated now, created stays, the version goes up by one.
    ///
    /// Errors: [`StoreError::NotFound`] when there is no object `obj.uid`,
    /// [`StoreError::Conflict`] when its version moved on since it was read.
    async fn update(&self, obj: &StoredObject) -> Result<(), StoreError>;
    /// Removes the row. Ok(false) when there was none.
    async fn remove(&self, uid: &str) -> Result<bool, StoreError>;
    /// Uids (with owners) of the objects matching `q`, in creation order.
    async fn locate(&self, q: &LocateQuery) -> Result<Vec<(String, String)>, StoreError>;
}
