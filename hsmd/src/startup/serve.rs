//! Start-up step 8: the slot workers, the shared state, the async runtime,
//! `READY=1` and the watchdog (`crate::notify`), the accept loop until
//! SIGTERM or SIGINT, and the orderly stop: requests in flight answered, slot
//! workers stopped, library finalized, socket removed.

use super::load::Loaded;
use super::LibraryGuard;
use crate::notify;
use crate::pkcs11::slot::SlotHandle;
use crate::server::connection::{self, Limits};
use crate::server::dispatch::State;
use crate::server::gate::Gate;
use crate::server::listener::Listener;
use crate::server::peer::Policy;
use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Starts the slot workers and serves `listener` until SIGTERM or SIGINT,
/// then stops: connections get `shutdown_timeout_secs`, the workers finish
/// their queues and log out, `token` finalizes the library (unless
/// connections still hold the slots), and a socket hsmd created is removed.
///
/// Errors: a worker thread, the runtime, the socket's registration or a
/// signal handler cannot be set up.
pub fn serve(mut token: LibraryGuard, loaded: Loaded, listener: Listener) -> Result<()> {
    let Loaded {
        config, sessions, ..
    } = loaded;
    let slots = spawn_slots(&mut token, sessions, config.queue_depth)?;
    let policy = Policy {
        clients: config.clients,
        frontends: config.frontends,
        admins: config.admins,
    };
    for entry in policy.unknown_entries() {
        tracing::warn!("{entry} does not exist on this host; nobody matches that entry");
    }
    let state = Arc::new(State {
        model: config.model.as_str().to_owned(),
        library: token.info(),
        slots,
        policy,
        max_frame_len: config.max_frame_len,
    });
    let limits = Limits {
        max_in_flight: config.max_in_flight,
        max_in_flight_bytes: config.max_in_flight_bytes,
        handshake_timeout: config.handshake_timeout,
        frame_timeout: config.frame_timeout,
    };
    let gate = Gate::new(config.max_connections, config.max_connections_per_user);
    let owned_path = listener.owned_path.clone();
    let served = run_until_signal(
        listener,
        state.clone(),
        gate,
        limits,
        config.shutdown_timeout,
    );
    match Arc::try_unwrap(state) {
        Ok(state) => {
            for s in &state.slots {
                s.shutdown();
            }
        }
        Err(_) => {
            tracing::warn!("connections still hold the state after shutdown; skipping C_Finalize");
            token.skip_finalize();
        }
    }
    drop(token);
    if let Some(path) = owned_path {
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!("cannot remove the socket {}: {e}", path.display());
        }
    }
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// Hands every slot of `token.opened` to `sessions` worker threads; when one
/// cannot start, stops those already started.
fn spawn_slots(
    token: &mut LibraryGuard,
    sessions: usize,
    queue_depth: usize,
) -> Result<Vec<SlotHandle>> {
    let mut slots: Vec<SlotHandle> = Vec::with_capacity(token.opened.len());
    for o in std::mem::take(&mut token.opened) {
        match o.spawn(sessions, queue_depth) {
            Ok(s) => slots.push(s),
            Err(e) => {
                slots.iter().for_each(SlotHandle::shutdown);
                return Err(e.into());
            }
        }
        tracing::info!(
            slot = slots.last().map(SlotHandle::id),
            "slot ready ({sessions} sessions)"
        );
    }
    Ok(slots)
}

/// Builds the async runtime and serves on it until a signal; then drops
/// connections still open a second after the shutdown deadline.
fn run_until_signal(
    listener: Listener,
    state: Arc<State>,
    gate: Arc<Gate>,
    limits: Limits,
    shutdown_timeout: Duration,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("hsmd-io")
        .build()
        .context("cannot start the async runtime")?;
    let inherited = listener.owned_path.is_none();
    let served = runtime.block_on(async {
        let address = listener
            .listener
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
            .unwrap_or_else(|| "(unnamed)".into());
        let listener = tokio::net::UnixListener::from_std(listener.listener)
            .context("cannot register the socket")?;
        // Handlers first: a SIGTERM right after READY=1 must stop hsmd cleanly.
        let signals = Signals {
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
        };
        tracing::info!(socket = %address, inherited, "listening");
        notify::ready(&format!(
            "serving {} slot(s) on {address}",
            state.slots.len()
        ));
        accept_loop(listener, signals, state, gate, limits, shutdown_timeout).await;
        Ok(())
    });
    // Drops connections still open after the shutdown deadline.
    runtime.shutdown_timeout(Duration::from_secs(1));
    served
}

/// SIGTERM and SIGINT streams, installed before hsmd says it is ready.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

/// Accepts connections until the first SIGTERM or SIGINT, feeds the systemd
/// watchdog while every slot answers, then lets the connections answer what
/// they read for up to `shutdown_timeout` (a second signal ends that wait).
async fn accept_loop(
    listener: tokio::net::UnixListener,
    Signals { mut term, mut int }: Signals,
    state: Arc<State>,
    gate: Arc<Gate>,
    limits: Limits,
    shutdown_timeout: Duration,
) {
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    if let Some(every) = notify::watchdog_interval() {
        let (state, stop) = (state.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            while tokio::select! { _ = tick.tick() => true, _ = stop.cancelled() => false } {
                match state.slots.iter().find(|s| !s.is_answering()) {
                    None => notify::watchdog(),
                    Some(s) => tracing::warn!(
                        slot = s.id(),
                        "slot {} made no progress with requests queued: withholding WATCHDOG=1",
                        s.id()
                    ),
                }
            }
        });
    }
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tracker.spawn(connection::serve(stream, state.clone(), gate.clone(), limits, shutdown.clone()));
                }
                Err(e) => {
                    if crate::logging::allow_every_second() {
                        tracing::warn!("accept failed: {e}");
                    }
                    // Out of descriptors: give connections a moment to close.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    notify::stopping();
    tracing::info!("shutting down: answering requests in flight");
    drop(listener);
    shutdown.cancel();
    tracker.close();
    tokio::select! {
        _ = tracker.wait() => {}
        _ = tokio::time::sleep(shutdown_timeout) => tracing::warn!(
            "{} connection(s) still open after shutdown_timeout_secs ({} s), e.g. a client not reading its answers: closing them",
            tracker.len(),
            shutdown_timeout.as_secs()
        ),
        _ = term.recv() => tracing::warn!("second SIGTERM: closing every connection now"),
        _ = int.recv() => tracing::warn!("second SIGINT: closing every connection now"),
    }
}
