//! The log thread: writes stderr's lines in batches once it runs, so that a
//! request does not wait for its audit record's `write(2)`, and no line is
//! lost when hsmd exits. The queue is crossbeam's: its receiver spins and
//! yields a little before it sleeps, so lines that arrive close together
//! are written together (with std's channel the thread woke, and wrote,
//! for nearly every line: 7 % of hsmd's CPU at 33,000 requests a second,
//! against 2 to 4 % with this queue).

use crossbeam_channel::{bounded, Receiver, Sender};
use std::io::Write;
use std::sync::{Mutex, RwLock};
use std::thread::JoinHandle;
use tracing_subscriber::fmt::MakeWriter;

/// Lines that may wait for the log thread; past them, logging waits. The
/// queue is allocated whole (about 32 bytes a line). 4,096 lines is about
/// 0.1 s of audit records at the highest request rates docs/performance.md
/// measures (40,000/s); the log thread writes them out much faster.
const QUEUE_LINES: usize = 4096;

/// Bytes gathered before one `write(2)` (fewer when the queue runs empty).
const BATCH_BYTES: usize = 64 * 1024;

/// The log thread's queue while it runs. Every line in flight holds a clone
/// of the sender, so the thread ends only once each of them is written.
/// Process-wide because the writer it feeds is: the global `tracing`
/// subscriber's fmt layer reaches it through [`StderrWriter`], which holds
/// no state of its own.
static QUEUE: RwLock<Option<Sender<Vec<u8>>>> = RwLock::new(None);
/// The log thread, for [`stop`] to wait for.
static THREAD: Mutex<Option<JoinHandle<()>>> = Mutex::new(None);

/// Where the fmt layer writes: to the log thread while it runs, else
/// straight to stderr.
pub struct StderrWriter;

impl<'a> MakeWriter<'a> for StderrWriter {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        match QUEUE.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(queue) => Line::Queued(queue.clone(), Vec::new()),
            None => Line::Direct(std::io::stderr()),
        }
    }
}

/// One record on its way: gathered, then queued whole when dropped (the fmt
/// layer writes a record with one `write_all` and then drops its writer).
pub enum Line {
    /// For the log thread.
    Queued(Sender<Vec<u8>>, Vec<u8>),
    /// Straight to stderr.
    Direct(std::io::Stderr),
}

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Queued(_, line) => {
                line.extend_from_slice(buf);
                Ok(buf.len())
            }
            Self::Direct(stderr) => stderr.write(buf),
        }
    }

    /// Straight to stderr: under stderr's lock for the whole record, so that
    /// other threads' records cannot come in between.
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Queued(_, line) => {
                line.extend_from_slice(buf);
                Ok(())
            }
            Self::Direct(stderr) => stderr.write_all(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Queued(..) => Ok(()),
            Self::Direct(stderr) => stderr.flush(),
        }
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if let Self::Queued(queue, line) = self {
            if line.is_empty() {
                return;
            }
            // The thread is gone only if it could not be kept (see `run`):
            // write the line here rather than lose it.
            if let Err(crossbeam_channel::SendError(line)) = queue.send(std::mem::take(line)) {
                let _ = std::io::stderr().write_all(&line);
            }
        }
    }
}

/// Starts the log thread. It inherits this thread's credentials: call it
/// after the privilege drop.
///
/// Errors: the thread cannot be created (e.g. `RLIMIT_NPROC`).
pub fn start() -> std::io::Result<()> {
    let (queue, lines) = bounded(QUEUE_LINES);
    let thread = std::thread::Builder::new()
        .name("hsmd-log".into())
        .spawn(move || run(lines))?;
    *THREAD.lock().unwrap_or_else(|p| p.into_inner()) = Some(thread);
    *QUEUE.write().unwrap_or_else(|p| p.into_inner()) = Some(queue);
    Ok(())
}

/// Writes what arrives, one `write(2)` per batch: the lines that arrived
/// while it wrote the previous batch, up to [`BATCH_BYTES`]. Ends once no
/// sender is left and every line is written. A failed write (stderr closed)
/// drops that batch and goes on, so that logging never waits for ever.
fn run(lines: Receiver<Vec<u8>>) {
    let stderr = std::io::stderr();
    let mut batch = Vec::with_capacity(BATCH_BYTES);
    while let Ok(line) = lines.recv() {
        batch.extend_from_slice(&line);
        while batch.len() < BATCH_BYTES {
            match lines.try_recv() {
                Ok(line) => batch.extend_from_slice(&line),
                Err(_) => break,
            }
        }
        let _ = stderr.lock().write_all(&batch);
        batch.clear();
        batch.shrink_to(BATCH_BYTES);
    }
}

/// Stops taking lines, and waits until the log thread has written every
/// line given to it; later lines go straight to stderr, after those (a
/// thread that logs meanwhile waits). Waits as long as stderr's reader
/// takes: only a signal hsmd does not handle ends it sooner.
pub fn stop() {
    let mut queue = QUEUE.write().unwrap_or_else(|p| p.into_inner());
    drop(queue.take());
    let thread = THREAD.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(thread) = thread {
        let _ = thread.join();
    }
    drop(queue);
}
