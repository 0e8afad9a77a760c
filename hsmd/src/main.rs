//! `hsmd`: loads the configuration and the PINs, opens the PKCS#11 library,
//! logs in to every configured slot, binds its socket, drops every privilege,
//! then serves docs/protocol.md until SIGTERM/SIGINT. Exits non-zero with one
//! sentence on any start-up error.

// No unwrap, expect or panic outside tests: bad input gets an answer, never
// a crash (docs/design.md "Rules").
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use anyhow::{Context, Result};
use clap::Parser;
use hsmd::config::cli::Cli;
use hsmd::config::Config;
use hsmd::pin::sources::PinSources;
use hsmd::pkcs11::library::Library;
use hsmd::pkcs11::slot::{OpenSlot, SlotHandle};
use hsmd::server::connection::{self, Limits};
use hsmd::server::dispatch::State;
use hsmd::server::gate::Gate;
use hsmd::server::listener;
use hsmd::server::peer::Policy;
use hsmd::{notify, privilege};
use hsmd_protocol::LibraryInfo;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Exit status when a PIN was refused or the token forbids another try:
/// hsmd.service lists it in RestartPreventExitStatus=, because restarting
/// would spend the PIN's remaining tries.
const EXIT_PIN: u8 = 3;

fn main() -> ExitCode {
    // Read (and scrub) HSMD_HSM_PASSWORD before any thread exists.
    let sources = PinSources::from_process_env();
    let cli = Cli::parse();
    hsmd::logging::init();
    // Writes out the log thread's lines however `run` ends, a panic included.
    struct FlushLog;
    impl Drop for FlushLog {
        fn drop(&mut self) {
            hsmd::logging::flush();
        }
    }
    let flush_log = FlushLog;
    let result = run(cli, sources);
    drop(flush_log);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if hsmd::logging::stderr_is_journal() {
                tracing::error!("{e:#}");
            } else {
                eprintln!("hsmd: {e:#}");
            }
            let pin = e
                .downcast_ref::<hsmd::pkcs11::slot::SlotStartError>()
                .is_some_and(|s| s.pin_problem);
            ExitCode::from(if pin { EXIT_PIN } else { 1 })
        }
    }
}

/// Raises the soft open-files limit to the hard one, so max_connections
/// cannot run hsmd out of descriptors before its own cap refuses peers.
fn raise_nofile(max_connections: usize) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if soft < hard {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
    let now = getrlimit(Resource::RLIMIT_NOFILE)
        .map(|l| l.0)
        .unwrap_or(soft);
    if now < max_connections as u64 + 64 {
        tracing::warn!("the open-files limit ({now}) is below max_connections ({max_connections}) + 64: lower max_connections or raise LimitNOFILE=");
    }
}

/// The user this process runs as, for the token-store proof.
fn this_user() -> hsmd::pkcs11::storage::StoreUser {
    use nix::unistd::{getgid, getgroups, getuid, User};
    let uid = getuid();
    let mut gids = vec![getgid().as_raw()];
    gids.extend(getgroups().unwrap_or_default().iter().map(|g| g.as_raw()));
    hsmd::pkcs11::storage::StoreUser {
        name: User::from_uid(uid)
            .ok()
            .flatten()
            .map_or_else(|| uid.to_string(), |u| u.name),
        uid: uid.as_raw(),
        gids,
    }
}

/// The user hsmd drops to, for the token-store proof of `--check`.
fn store_user_of(t: &privilege::Target) -> hsmd::pkcs11::storage::StoreUser {
    let mut gids = vec![t.group.1.as_raw()];
    gids.extend(t.keep.iter().map(|(_, g)| g.as_raw()));
    hsmd::pkcs11::storage::StoreUser {
        name: t.user.0.clone(),
        uid: t.user.1.as_raw(),
        gids,
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

/// Closes sessions before `C_Finalize` (some modules deadlock otherwise).
fn finalize(opened: Vec<OpenSlot>, lib: Library) {
    drop(opened);
    if let Err(e) = lib.finalize() {
        tracing::warn!("C_Finalize failed: {e}");
    }
}

fn run(cli: Cli, sources: PinSources) -> Result<()> {
    let check_only = cli.check;
    notify::status("reading the configuration");
    let config = Config::load(cli, sources)?;
    tracing::info!(
        model = config.model.as_str(),
        library = %config.library.display(),
        slots = config.slots.len(),
        "starting; PINs from {}",
        config.pin_source
    );
    let profile = hsmd::pkcs11::profile::Profile::for_model(config.model);
    let sessions = profile.sessions(config.sessions_per_slot);
    if sessions < config.sessions_per_slot {
        tracing::warn!(
            "sessions_per_slot = {} lowered to {sessions}: the {} library runs one call at a time, more sessions would only queue inside it",
            config.sessions_per_slot,
            profile.model
        );
    }
    // Started as root: look the target user up before touching the token.
    let root = nix::unistd::getuid().is_root();
    let target = match root && !check_only {
        true => Some(privilege::resolve(
            &config.user,
            &config.group,
            &config.keep_groups,
        )?),
        false => None,
    };
    notify::status("loading the PKCS#11 library");
    raise_nofile(config.max_connections);
    let lib = Library::open(&config.library, config.model.install_hint())?;
    let mut opened = Vec::with_capacity(config.slots.len());
    for sc in config.slots {
        let id = match lib.resolve(&sc.slot) {
            Ok(id) => id,
            Err(e) => {
                finalize(opened, lib);
                return Err(anyhow::Error::new(e).context("cannot start"));
            }
        };
        if !matches!(sc.slot, hsmd::config::SlotRef::Id(_)) {
            tracing::info!(slot = id, "{} is in slot {id}", sc.slot);
        }
        if opened.iter().any(|o: &OpenSlot| o.ctx().id == id) {
            finalize(opened, lib);
            anyhow::bail!(
                "cannot start: {} is in slot {id}, which is configured twice",
                sc.slot
            );
        }
        notify::status(&format!("logging in to slot {id}"));
        match OpenSlot::open(&lib, id, sc.pin, profile) {
            Ok(o) => opened.push(o),
            Err(e) => {
                finalize(opened, lib);
                let hint = if e.pin_problem {
                    format!(" (the PINs came from {})", config.pin_source)
                } else {
                    String::new()
                };
                return Err(anyhow::Error::new(e).context(format!("cannot start{hint}")));
            }
        }
    }
    let store = hsmd::pkcs11::storage::softhsm_store(config.model, &config.library);
    if check_only {
        // As root: for the user hsmd would drop to; else as this process.
        // As root, the user must exist to be checked for; when it does not,
        // --check says so instead of failing (a real start fails on it).
        let user = if root {
            privilege::resolve(&config.user, &config.group, &config.keep_groups)
                .map(|t| (store_user_of(&t), hsmd::pkcs11::storage::Check::ModeBits))
                .map_err(|e| format!("{e:#}"))
        } else {
            Ok((this_user(), hsmd::pkcs11::storage::Check::AsThisProcess))
        };
        let proof = match (&store, user) {
            (None, _) => Ok(None),
            (Some(_), Err(why)) => Ok(Some(Err(why))),
            (Some((conf, dir)), Ok((user, check))) => {
                hsmd::pkcs11::storage::prove(conf, dir, &user, check)
                    .map(|n| Some(Ok(n)))
                    .map_err(|e| *e)
            }
        };
        finalize(opened, lib);
        match proof.context("cannot start")? {
            Some(Ok(_)) => println!(
                "hsmd: configuration, library, slots, logins and the token store are fine"
            ),
            Some(Err(why)) => println!(
                "hsmd: configuration, library, slots and logins are fine; the token store was not checked ({why})"
            ),
            None => println!("hsmd: configuration, library, slots and logins are fine"),
        }
        return Ok(());
    }
    notify::status("opening the socket");
    let owner = target.as_ref().map(|t| (t.user.1, t.group.1));
    let listener = match listener::open(&config.socket, owner) {
        Ok(l) => l,
        Err(e) => {
            finalize(opened, lib);
            return Err(e);
        }
    };
    // Still one thread: capabilities and no_new_privs are per thread.
    let pins_locked = hsmd::pin::lock_in_memory(opened.iter().map(|o| o.ctx().login.pin()));
    let report = privilege::drop(target.as_ref())?;
    let st = privilege::verify(target.as_ref(), &report)?;
    // The first thread after the drop: it runs with the dropped credentials.
    hsmd::logging::buffer_stderr().context("cannot start the log thread")?;
    tracing::info!(
        "privileges dropped: Uid {:?} Gid {:?} Groups {:?} CapEff {:016x} CapPrm {:016x} CapBnd {:016x} NoNewPrivs {}; PIN pages locked: {}",
        st.uid,
        st.gid,
        st.groups,
        st.caps[2],
        st.caps[1],
        st.caps[3],
        u8::from(st.no_new_privs),
        match &pins_locked {
            Ok(n) => format!("{n}"),
            Err(e) => format!("no ({e})"),
        }
    );
    // As the user hsmd now runs as: the token's files must be its to use.
    if let Some((conf, dir)) = &store {
        let user = this_user();
        let check = hsmd::pkcs11::storage::Check::AsThisProcess;
        match hsmd::pkcs11::storage::prove(conf, dir, &user, check) {
            Ok(n) => tracing::info!(
                "token store {} ({n} entries) readable and writable by {}",
                dir.display(),
                user.name
            ),
            Err(e) => {
                finalize(opened, lib);
                return Err(anyhow::Error::new(*e).context("cannot start"));
            }
        }
    }
    let mut slots = Vec::with_capacity(opened.len());
    for o in opened {
        slots.push(o.spawn(sessions, config.queue_depth)?);
        tracing::info!(
            slot = slots.last().map(SlotHandle::id),
            "slot ready ({sessions} sessions)"
        );
    }
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
        library: library_info(&lib),
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
    let shutdown_timeout = config.shutdown_timeout;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("hsmd-io")
        .build()
        .context("cannot start the async runtime")?;
    let owned_path = listener.owned_path.clone();
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
        tracing::info!(socket = %address, inherited = owned_path.is_none(), "listening");
        notify::ready(&format!(
            "serving {} slot(s) on {address}",
            state.slots.len()
        ));
        serve(
            listener,
            signals,
            state.clone(),
            gate,
            limits,
            shutdown_timeout,
        )
        .await
    });
    // Drops connections still open after the shutdown deadline.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match Arc::try_unwrap(state) {
        Ok(state) => {
            for s in &state.slots {
                s.shutdown();
            }
            drop(state);
            if let Err(e) = lib.finalize() {
                tracing::warn!("C_Finalize failed: {e}");
            }
        }
        Err(_) => {
            tracing::warn!("connections still hold the state after shutdown; skipping C_Finalize")
        }
    }
    if let Some(path) = owned_path {
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!("cannot remove the socket {}: {e}", path.display());
        }
    }
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGTERM and SIGINT streams, installed before hsmd says it is ready.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

async fn serve(
    listener: tokio::net::UnixListener,
    Signals { mut term, mut int }: Signals,
    state: Arc<State>,
    gate: Arc<Gate>,
    limits: Limits,
    shutdown_timeout: std::time::Duration,
) -> Result<()> {
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
                    if hsmd::logging::allow_every_second() {
                        tracing::warn!("accept failed: {e}");
                    }
                    // Out of descriptors: give connections a moment to close.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
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
    Ok(())
}
