//! What the harness shares between the servers it starts (hsmd,
//! kms-frontend): how a start is tuned beyond the tests' defaults
//! ([`Launch`]: the binary, environment, a log file), where a server's
//! stderr goes and how a line is awaited in it ([`Stderr`]), stopping with
//! SIGTERM within a deadline ([`terminate`]), and the error of the fallible
//! `try_*` starts ([`HarnessError`]).
//!
//! The tests call the panicking forms; the bench (`bench/`, hsmd-bench)
//! calls the `try_*` forms and reports the error in one sentence.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why the harness could not start, wait for or stop a server, or make a
/// token; the text names the step and carries the server's log.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HarnessError(pub String);

impl HarnessError {
    /// `what` failed because of `e`.
    pub fn io(what: impl std::fmt::Display, e: std::io::Error) -> Self {
        Self(format!("{what}: {e}"))
    }
}

/// How a server is started beyond its configuration and flags. The default
/// is the tests': this build's binary (`target/<profile>/<name>`), the
/// harness's log level, stderr read into memory.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// The binary; `None`: [`crate::bin`] of the server's name.
    pub binary: Option<PathBuf>,
    /// Environment variables set after the harness's own, so they win
    /// (`HSMD_LOG`, `KMS_LOG`: `info` unless set here).
    pub env: Vec<(String, String)>,
    /// Write stderr to this file instead of a pipe read into memory (a long
    /// run logs more than memory should hold); the readiness line is then
    /// read from the file.
    pub log_file: Option<PathBuf>,
    /// hsmd only: count it as listening once its socket accepts a
    /// connection, too (a log level quieter than `info` hides the
    /// "listening" line). The tests leave it off: a probe is a connection.
    pub ready_on_connect: bool,
}

impl Launch {
    /// The binary to start for the server `name`.
    pub(crate) fn binary(&self, name: &str) -> Result<PathBuf, HarnessError> {
        match &self.binary {
            Some(b) => Ok(b.clone()),
            None => crate::try_bin(name),
        }
    }

    /// Spawns `cmd` (the server `name`) with no stdin or stdout and stderr
    /// to [`Launch::log_file`], or to a pipe whose lines go to `log`.
    pub(crate) fn spawn(
        &self,
        cmd: &mut Command,
        name: &str,
        log: &Arc<Mutex<Vec<String>>>,
    ) -> Result<(Child, Stderr), HarnessError> {
        let (out, file) = match &self.log_file {
            Some(path) => {
                let (file, stderr) = log_file(path)?;
                (file.into(), Some(stderr))
            }
            None => (Stdio::piped(), None),
        };
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .map_err(|e| HarnessError::io(format!("spawn {name}"), e))?;
        let stderr = match (file, child.stderr.take()) {
            (Some(file), _) => file,
            (None, Some(pipe)) => Stderr::Pipe {
                lines: drain_lines(pipe, log.clone()),
            },
            (None, None) => return Err(HarnessError(format!("{name}'s stderr is not piped"))),
        };
        Ok((child, stderr))
    }
}

/// Where a running server's stderr goes, and the lines read so far.
pub(crate) enum Stderr {
    /// A pipe: a thread copies every line to the server's `log` and to
    /// `lines` ([`drain_lines`]).
    Pipe { lines: mpsc::Receiver<String> },
    /// A file, read when a line is awaited; `seen` lines already looked at.
    File { path: PathBuf, seen: usize },
}

impl Stderr {
    /// The server's stderr so far (`log` holds a pipe's lines).
    pub(crate) fn text(&self, log: &Mutex<Vec<String>>) -> String {
        match self {
            Self::Pipe { .. } => log.lock().unwrap_or_else(|p| p.into_inner()).join("\n"),
            Self::File { path, .. } => std::fs::read_to_string(path).unwrap_or_default(),
        }
    }

    /// Blocks until a line holding `needle` arrives after the lines already
    /// looked at, or `ready()` says the server is ready anyway (then the
    /// line is empty); one deadline, `timeout`, for the whole wait.
    /// Errors with `name`'s log when it exits first or time runs out.
    pub(crate) fn wait_for(
        &mut self,
        child: &mut Child,
        name: &str,
        needle: &str,
        timeout: Duration,
        log: &Mutex<Vec<String>>,
        mut ready: impl FnMut() -> bool,
    ) -> Result<String, HarnessError> {
        let deadline = Instant::now() + timeout;
        match self {
            Self::Pipe { lines, .. } => loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match lines.recv_timeout(left) {
                    Ok(line) if line.contains(needle) => return Ok(line),
                    Ok(_) => {}
                    Err(_) => break,
                }
            },
            Self::File { path, seen } => loop {
                let text = std::fs::read_to_string(&*path).unwrap_or_default();
                // Only whole lines: the last one may still be being written.
                let whole = text.rsplit_once('\n').map_or("", |(done, _)| done);
                for line in whole.lines().skip(*seen) {
                    *seen += 1;
                    if line.contains(needle) {
                        return Ok(line.to_owned());
                    }
                }
                if ready() {
                    return Ok(String::new());
                }
                let exited = child.try_wait().ok().flatten();
                if exited.is_some() || Instant::now() >= deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            },
        }
        Err(HarnessError(format!(
            "{name} did not log {needle:?}; its log:\n{}",
            self.text(log)
        )))
    }
}

/// Sends SIGTERM to `child` and waits for it to exit; after `timeout`,
/// SIGKILL and an error naming `name`.
pub(crate) fn terminate(
    mut child: Child,
    name: &str,
    timeout: Duration,
) -> Result<ExitStatus, HarnessError> {
    match signal_and_wait(&mut child, nix::sys::signal::Signal::SIGTERM, name, timeout)? {
        Some(status) => Ok(status),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(HarnessError(format!(
                "{name} did not stop within {timeout:?} of SIGTERM"
            )))
        }
    }
}

/// Sends `signal` to `child` and waits up to `timeout` for it to exit:
/// its status, or None when it still runs (waitpid has no timeout: the
/// exit is polled every 10 ms).
pub(crate) fn signal_and_wait(
    child: &mut Child,
    signal: nix::sys::signal::Signal,
    name: &str,
    timeout: Duration,
) -> Result<Option<ExitStatus>, HarnessError> {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, signal);
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(Some(status)),
            Ok(None) if start.elapsed() <= timeout => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => return Ok(None),
            Err(e) => return Err(HarnessError::io(format!("wait for {name}"), e)),
        }
    }
}

/// Opens `path` for a server's stderr (appending: a restart keeps the
/// previous start's lines); the [`Stderr`] that reads it from here on.
fn log_file(path: &Path) -> Result<(std::fs::File, Stderr), HarnessError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| HarnessError::io(format!("open {}", path.display()), e))?;
    let seen = std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .count();
    let stderr = Stderr::File {
        path: path.to_owned(),
        seen,
    };
    Ok((file, stderr))
}

/// Reads `stream` line by line on a thread of its own: every line goes to
/// `log` and to the returned channel (which ends when the stream does).
pub fn drain_lines(
    stream: impl std::io::Read + Send + 'static,
    log: Arc<Mutex<Vec<String>>>,
) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            log.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(line.clone());
            if tx.send(line).is_err() {
                // The test stopped listening; keep draining into the log.
            }
        }
    });
    rx
}
