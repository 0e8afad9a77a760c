//! Log output. When systemd connects stderr to the journal (`JOURNAL_STREAM`
//! names stderr's device and inode, systemd.exec(5)), records go to journald
//! with structured fields (`SLOT=`, `OP=`, `KEY_UID=`, `PEER_UID=`,
//! `PEER_PID=`, `ACTING_USER=`, `RESULT=`); otherwise human-readable lines go
//! to stderr, written by one log thread once the privileges are dropped
//! ([`buffer_stderr`]). The level comes from `HSMD_LOG` (comma-separated
//! `level` and `target=level` directives, tracing-subscriber's `Targets`
//! syntax; default `info,cryptoki::mechanism=off`). Never PINs, key material
//! or plaintext: only ids, names, codes and outcomes are logged.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use tracing_appender::non_blocking::{NonBlocking, WorkerGuard};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::writer::{EitherWriter, MakeWriter};
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

/// The default filter: `info`, without the PKCS#11 binding's harmless
/// "Mechanism type N is not supported" line per vendor mechanism.
const DEFAULT_FILTER: &str = "info,cryptoki::mechanism=off";

/// `HSMD_LOG` parsed as `Targets`, or the default filter with the reason it
/// was not used (an unset variable is not a reason).
fn filter() -> (Targets, Option<String>) {
    let default = || DEFAULT_FILTER.parse().unwrap_or_default();
    match std::env::var("HSMD_LOG") {
        Err(std::env::VarError::NotPresent) => (default(), None),
        Err(std::env::VarError::NotUnicode(_)) => (
            default(),
            Some("HSMD_LOG is not UTF-8; logging at the default level".into()),
        ),
        Ok(value) => match value.parse() {
            Ok(targets) => (targets, None),
            Err(e) => (
                default(),
                Some(format!(
                    "HSMD_LOG={value:?} is not a log filter ({e}); expected e.g. \
                     \"debug\" or \"warn,cryptoki::mechanism=off\"; logging at {DEFAULT_FILTER:?}"
                )),
            ),
        },
    }
}

/// Installs the subscriber; safe to call once per process.
pub fn init() {
    let (targets, refused) = filter();
    install(targets);
    if let Some(reason) = refused {
        tracing::warn!("{reason}");
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
    let _ = tracing_subscriber::fmt()
        .with_writer(StderrWriter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .finish()
        .with(targets)
        .try_init();
}

/// stderr's writer thread, once [`buffer_stderr`] started it.
static BUFFERED: OnceLock<NonBlocking> = OnceLock::new();
/// Flushes and stops that thread when dropped ([`flush`]).
static GUARD: Mutex<Option<WorkerGuard>> = Mutex::new(None);
/// Set by [`flush`]: the writer thread is gone, write straight to stderr.
static FLUSHED: AtomicBool = AtomicBool::new(false);
/// Records go to the journal, not through [`StderrWriter`].
static TO_JOURNAL: AtomicBool = AtomicBool::new(false);

/// Where the human-readable lines go: straight to stderr until
/// [`buffer_stderr`], then to its writer thread.
struct StderrWriter;

impl<'a> MakeWriter<'a> for StderrWriter {
    type Writer = EitherWriter<NonBlocking, std::io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        match BUFFERED.get() {
            Some(buffered) if !FLUSHED.load(Ordering::Acquire) => EitherWriter::A(buffered.clone()),
            _ => EitherWriter::B(std::io::stderr()),
        }
    }
}

/// Lines that may wait for the log thread. Its queue is allocated whole at
/// start (about 32 bytes a line): tracing-appender's default of 128,000
/// lines cost 4 MiB of RSS. 4,096 lines is about 0.1 s of audit records at
/// the highest request rates docs/performance.md measures (40,000/s); the
/// log thread writes them out much faster than that.
const LOG_QUEUE_LINES: usize = 4096;

/// From now on, lines for stderr (not the journal) are handed to one writer
/// thread, which writes them in batches: one `write(2)` for all the lines
/// that arrived while it wrote the previous ones, instead of one per audit
/// record on the request's own thread. Never drops a line: a full queue
/// ([`LOG_QUEUE_LINES`]) makes the logging thread wait. Call once, after the
/// privilege drop (the thread inherits the dropped credentials), and
/// [`flush`] before the process exits.
pub fn buffer_stderr() {
    if TO_JOURNAL.load(Ordering::Acquire) {
        return;
    }
    let (buffered, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .lossy(false)
        .thread_name("hsmd-log")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    if BUFFERED.set(buffered).is_ok() {
        *GUARD.lock().unwrap_or_else(|p| p.into_inner()) = Some(guard);
    }
}

/// Writes out every line handed to the writer thread and stops it (waits
/// for it at most 1 s); later lines go straight to stderr again.
pub fn flush() {
    let guard = GUARD.lock().unwrap_or_else(|p| p.into_inner()).take();
    FLUSHED.store(true, Ordering::Release);
    drop(guard);
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
