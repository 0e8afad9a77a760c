//! hsmd: the privilege-separated PKCS#11 daemon. It alone opens the PKCS#11
//! library and holds the slot PINs, and serves the operations of the hsmd
//! wire protocol (crate `hsmd_protocol`) on a Unix socket.

// No unwrap, expect or panic outside tests: bad input gets an answer, never
// a crash (docs/design.md "Rules").
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod config;
pub mod logging;
pub mod notify;
pub mod pin;
pub mod pkcs11;
pub mod privilege;
pub mod server;
pub mod startup;
