//! Tests of authentication, with real keys and certificates (rcgen, ring).

mod cert;
mod jwt;
mod middleware;
mod pki;
mod serve;
mod tls;

use crate::config::{self, Config};

/// The configuration of no file and no flags (no TLS, no authentication).
fn base_config() -> Config {
    config::load(config::Args::default()).expect("default configuration")
}
