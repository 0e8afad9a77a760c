//! Log output. When systemd connects stderr to the journal (`JOURNAL_STREAM`
//! names stderr's device and inode, systemd.exec(5)), records go to journald
//! with structured fields (`SLOT=`, `OP=`, `KEY_UID=`, `PEER_UID=`,
//! `PEER_PID=`, `ACTING_USER=`, `RESULT=`); otherwise human-readable lines go
//! to stderr. The level comes from `HSMD_LOG` (env-filter syntax, default
//! `info`). Never PINs, key material or plaintext: only ids, names, codes and
//! outcomes are logged.

use std::os::fd::AsRawFd;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// True when stderr is the journal stream systemd set up for this service.
pub fn stderr_is_journal() -> bool {
    let Some(var) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = var.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    match nix::sys::stat::fstat(std::io::stderr().as_raw_fd()) {
        Ok(st) => dev.parse() == Ok(st.st_dev) && ino.parse() == Ok(st.st_ino),
        Err(_) => false,
    }
}

fn filter() -> EnvFilter {
    EnvFilter::try_from_env("HSMD_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,cryptoki::mechanism=off"))
}

/// Installs the subscriber; safe to call once per process.
pub fn init() {
    if stderr_is_journal() {
        if let Ok(journald) = tracing_journald::layer() {
            let journald = journald
                .with_field_prefix(None)
                .with_syslog_identifier("hsmd".into());
            if tracing_subscriber::registry()
                .with(filter())
                .with(journald)
                .try_init()
                .is_ok()
            {
                return;
            }
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// For warnings a peer can trigger at will (refused connections, failed
/// accepts): true at most once per second, so the log cannot be flooded.
pub fn allow_every_second() -> bool {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    LAST.swap(now, Ordering::Relaxed) != now
}
