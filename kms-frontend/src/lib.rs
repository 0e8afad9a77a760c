//! `kms-frontend`: the unprivileged KMS of the hsmd key service. It speaks
//! the Cosmian KMS's client protocol (KMIP 2.1 JSON TTLV over HTTP, access
//! rights endpoints), authenticates KMS users, keeps their access rights
//! and its KMS keys in SQLite or PostgreSQL, and asks hsmd (docs/protocol.md,
//! as a `frontends` peer with `as_user`) to do every key operation. It never
//! reads a PIN nor loads PKCS#11.
//!
//! # Map
//!
//! Layers, top to bottom; a module uses only those below it
//! (`scripts/module-graph kms-frontend` checks there is no cycle):
//!
//! ```text
//! http    every route (/kmip/2_1, /access/*, /version, /health), AppState,
//!   |     body limits, the authentication middleware, KmsError -> HTTP
//!   |     answer, the accept loop
//!   +--> auth     who is calling: TLS client certificates, JWT (no HTTP)
//!   v
//! kmip    one file per KMIP operation family; KMIP and TTLV, no HTTP types;
//!   |     kmip/stored: the same operations on KMS keys
//!   +--> vault    KMS keys: wrap/unwrap through hsmd, the unwrapped cache,
//!   |             memory protection (uses store, crypto, hsm)
//!   +--> access   access policy and grant store (SQLite or PostgreSQL),
//!   |             no routes
//!   +--> store    KMIP objects in the database (SQLite or PostgreSQL),
//!   |             material only wrapped; one async interface; the
//!   |             change feed between frontends (PostgreSQL NOTIFY)
//!   +--> hsm      the hsmd client (connection pool)
//!   +--> crypto   software operations on clear KMS keys (aws-lc-rs), no I/O
//!   +--> ttlv     KMIP JSON TTLV values
//!   v
//! error   KmsError (the status class and message of a refusal), echo
//! config  the configuration (CLI, file); logging: the log output
//! database_file  the SQLite file's creation (0600), for access and store
//! postgres       the PostgreSQL pool (URL, TLS, "unreachable"), for both
//! ```
//!
//! The audit records (a key created or destroyed, a grant or revocation, a
//! refused KMIP request, each naming the user) log with the target `audit`
//! wherever they are written (`KMS_LOG=audit=info` selects them).
//!

// No unwrap, expect or panic outside tests: bad input gets an answer, never
// a crash (docs/design.md "Rules").
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod access;
pub mod auth;
pub mod config;
pub mod crypto;
pub mod database_file;
pub mod error;
pub mod hsm;
pub mod http;
pub mod kmip;
pub mod logging;
pub mod postgres;
pub mod store;
pub mod ttlv;
pub mod vault;
