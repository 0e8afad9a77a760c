//! Tests of authentication, with real keys and certificates (rcgen, ring).

mod cert;
mod jwt;
pub(crate) mod pki;
mod tls;

use crate::config::{self, Config};

/// The configuration of no file and no flags (no TLS, no authentication).
pub(crate) fn base_config() -> Config {
    config::load(config::Args::default()).expect("default configuration")
}
