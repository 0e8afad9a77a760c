//! Log output: human-readable lines on stderr, level from `HSMD_LOG`
//! (tracing-subscriber env-filter syntax, default `info`). Never PINs, key
//! material or plaintext: only ids, names, codes and outcomes are logged.

use tracing_subscriber::EnvFilter;

/// Installs the subscriber; safe to call once per process.
pub fn init() {
    let filter = EnvFilter::try_from_env("HSMD_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,cryptoki::mechanism=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
