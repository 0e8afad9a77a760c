//! `hsmd`: loads the configuration and the PINs, opens the PKCS#11 library,
//! logs in to every configured slot, then serves PROTOCOL.md on a Unix socket
//! until SIGTERM/SIGINT. Exits non-zero with one sentence on any start-up error.

use anyhow::{Context, Result};
use clap::Parser;
use hsmd::config::cli::Cli;
use hsmd::config::pins::PinSources;
use hsmd::config::Config;
use hsmd::pkcs11::library::Library;
use hsmd::pkcs11::slot::SlotHandle;
use hsmd::server::connection::{self, Limits};
use hsmd::server::dispatch::State;
use hsmd::server::listener;
use hsmd::server::peer::Policy;
use hsmd_protocol::LibraryInfo;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn main() -> ExitCode {
    // Read (and scrub) HSMD_HSM_PASSWORD before any thread exists.
    let sources = PinSources::from_process_env();
    let cli = Cli::parse();
    hsmd::logging::init();
    match run(cli, sources) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("hsmd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn library_info(lib: &Library) -> LibraryInfo {
    let info = lib.pkcs11.get_library_info().ok();
    LibraryInfo {
        path: lib.path.display().to_string(),
        manufacturer: info
            .as_ref()
            .map(|i| i.manufacturer_id().trim().to_owned())
            .unwrap_or_default(),
        description: info
            .as_ref()
            .map(|i| i.library_description().trim().to_owned())
            .unwrap_or_default(),
        version: info
            .as_ref()
            .map(|i| {
                format!(
                    "{}.{}",
                    i.library_version().major(),
                    i.library_version().minor()
                )
            })
            .unwrap_or_default(),
    }
}

fn shutdown_slots(slots: &[SlotHandle], lib: Library) {
    for s in slots {
        s.shutdown();
    }
    if let Err(e) = lib.finalize() {
        tracing::warn!("C_Finalize failed: {e}");
    }
}

fn run(cli: Cli, sources: PinSources) -> Result<()> {
    let check_only = cli.check;
    let config = Config::load(cli, sources)?;
    tracing::info!(
        model = config.model.as_str(),
        library = %config.library.display(),
        slots = config.slots.len(),
        "starting; PINs from {}",
        config.pin_source
    );
    let lib = Library::open(&config.library, config.model.install_hint())?;
    let mut slots = Vec::with_capacity(config.slots.len());
    for sc in config.slots {
        let id = sc.id;
        match SlotHandle::start(
            &lib,
            id,
            sc.pin,
            config.sessions_per_slot,
            config.queue_depth,
        ) {
            Ok(h) => {
                tracing::info!(
                    slot = id,
                    "slot ready ({} sessions)",
                    config.sessions_per_slot
                );
                slots.push(h);
            }
            Err(e) => {
                shutdown_slots(&slots, lib);
                return Err(e.into());
            }
        }
    }
    if check_only {
        shutdown_slots(&slots, lib);
        println!("hsmd: configuration, library, slots and logins are fine");
        return Ok(());
    }
    let state = Arc::new(State {
        model: config.model.as_str().to_owned(),
        library: library_info(&lib),
        slots,
        policy: Policy {
            clients: config.clients,
            frontends: config.frontends,
            admins: config.admins,
        },
        max_frame_len: config.max_frame_len,
    });
    let limits = Limits {
        max_in_flight: config.max_in_flight,
        handshake_timeout: config.handshake_timeout,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("hsmd-io")
        .build()
        .context("cannot start the async runtime")?;
    let socket = config.socket;
    let served = runtime.block_on(async {
        let listener = listener::open(&socket)?;
        let address = listener
            .listener
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
            .unwrap_or_else(|| "(unnamed)".into());
        tracing::info!(socket = %address, inherited = listener.owned_path.is_none(), "listening");
        serve(listener.listener, state.clone(), limits).await?;
        Ok::<_, anyhow::Error>(listener.owned_path)
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    let state = Arc::try_unwrap(state)
        .map_err(|_| anyhow::anyhow!("connections still hold the state after shutdown"));
    match state {
        Ok(state) => shutdown_slots(&state.slots, lib),
        Err(e) => tracing::warn!("{e}; skipping C_Finalize"),
    }
    if let Some(path) = served? {
        let _ = std::fs::remove_file(&path);
    }
    tracing::info!("stopped");
    Ok(())
}

async fn serve(
    listener: tokio::net::UnixListener,
    state: Arc<State>,
    limits: Limits,
) -> Result<()> {
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tracker.spawn(connection::serve(stream, state.clone(), limits, shutdown.clone()));
                }
                Err(e) => tracing::warn!("accept failed: {e}"),
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("shutting down: answering requests in flight");
    drop(listener);
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    Ok(())
}
