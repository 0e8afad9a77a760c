//! Log output. When systemd connects stderr to the journal (`JOURNAL_STREAM`
//! names stderr's device and inode, systemd.exec(5)), records go to journald
//! with structured fields (`SLOT=`, `OP=`, `KEY_UID=`, `PEER_UID=`,
//! `PEER_PID=`, `ACTING_USER=`, `RESULT=`); otherwise human-readable lines go
//! to stderr, written by one log thread once the privileges are dropped
//! ([`buffer_stderr`]). What is logged comes from `HSMD_LOG` (levels and
//! `target=level` directives, see `filter.rs`; default `info`; the PKCS#11
//! binding's mechanism-conversion noise is off at every level). Never PINs, key material or plaintext:
//! only ids, names, codes and outcomes are logged.

mod filter;
mod writer;

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

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

/// Records go to the journal, not through the log thread. Process-wide as
/// the subscriber it describes is (`tracing` has one global subscriber per
/// process); set once by [`init`].
static TO_JOURNAL: AtomicBool = AtomicBool::new(false);

/// Installs the subscriber; safe to call once per process. A refused
/// `HSMD_LOG`, or one that leaves out the audit records, is reported in a
/// warning (on stderr as it is when the filter itself would drop it).
pub fn init() {
    let (targets, notes) = filter::from_env();
    // The notes are about the filter: it must not hide them.
    let shown = targets.would_enable(module_path!(), &tracing::Level::WARN);
    install(targets);
    for note in notes {
        if shown {
            tracing::warn!("{note}");
        } else {
            eprintln!("hsmd: {note}");
        }
    }
}

fn install(targets: Targets) {
    if stderr_is_journal() {
        if let Ok(journald) = tracing_journald::layer() {
            let journald = journald
                .with_field_prefix(None)
                .with_syslog_identifier("hsmd".into());
            if tracing_subscriber::registry()
                .with(journald)
                .with(targets.clone())
                .try_init()
                .is_ok()
            {
                TO_JOURNAL.store(true, Ordering::Release);
                return;
            }
        }
    }
    // A fmt *layer* on a registry: `tracing_subscriber::fmt()` would cap the
    // level at info whatever `targets` allows.
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(writer::StderrWriter)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_target(false),
        )
        .with(targets)
        .try_init();
}

/// From now on, lines for stderr (not the journal) are written by one log
/// thread, `hsmd-log`, in batches: one `write(2)` for the lines that arrived
/// while it wrote the previous ones, instead of one per audit record on the
/// request's own thread. No line is dropped: past 4,096 waiting lines,
/// logging waits. Call once, after the privilege drop (the thread inherits
/// the dropped credentials), and [`flush`] before the process exits.
///
/// Errors: the thread cannot be created.
pub fn buffer_stderr() -> std::io::Result<()> {
    if TO_JOURNAL.load(Ordering::Acquire) {
        return Ok(());
    }
    writer::start()
}

/// Waits until the log thread has written every line it was given, and
/// stops it; later lines go straight to stderr.
pub fn flush() {
    writer::stop();
}

/// For warnings a peer can trigger at will (refused connections, failed
/// accepts): true at most once per second, so the log cannot be flooded.
pub fn allow_every_second() -> bool {
    use std::sync::atomic::{AtomicU64, Ordering};
    // Process-wide on purpose: the flood it guards against is of the one
    // log, whichever connection or thread triggers it.
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    LAST.swap(now, Ordering::Relaxed) != now
}
