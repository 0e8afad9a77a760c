//! `kms-frontend`: the unprivileged KMS of the hsmd key service. It speaks
//! the Cosmian KMS's client protocol (KMIP 2.1 JSON TTLV over HTTP, access
//! rights endpoints), authenticates KMS users, keeps their access rights in
//! SQLite and asks hsmd (docs/protocol.md, as a `frontends` peer with `as_user`)
//! to do every key operation. It never reads a PIN nor loads PKCS#11.

// No unwrap, expect or panic outside tests: bad input gets an answer, never
// a crash (docs/design.md "Rules").
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod access;
pub mod auth;
pub mod config;
pub mod error;
pub mod hsm;
pub mod http;
pub mod kmip;
pub mod logging;
pub mod ttlv;
