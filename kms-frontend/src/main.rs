//! `kms-frontend` binary: reads the configuration, opens the database
//! (SQLite, or PostgreSQL with its change feed), and serves the KMS API
//! (see the library's documentation) until SIGTERM or SIGINT. Exit status 1
//! with one sentence on a start-up error.

// No unwrap, expect or panic outside tests: bad input gets an answer, never
// a crash (docs/design.md "Rules").
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use anyhow::{Context, Result};
use clap::Parser;
use kms_frontend::access::store::GrantStore;
use kms_frontend::auth::{self, Authenticator};
use kms_frontend::config::{self, Config, Database};
use kms_frontend::hsm::Hsmd;
use kms_frontend::http::{self, AppState};
use kms_frontend::store::{Changes, ObjectStore, PgStore, SqliteStore};
use kms_frontend::vault::Vault;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

fn main() {
    kms_frontend::logging::init();
    let result = config::load(config::Args::parse())
        .map_err(anyhow::Error::from)
        .and_then(|config| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?
                .block_on(run(config))
        });
    if let Err(e) = result {
        tracing::error!("{}", kms_frontend::error::one_line(&e));
        std::process::exit(1);
    }
}

async fn run(config: Config) -> Result<()> {
    kms_frontend::vault::memory::protect();
    let (grants, store, changes) = open_database(&config.database).await?;
    let vault = Vault::new(store, config.kms_keys.clone());
    let auth = Arc::new(Authenticator::new(&config).await?);
    if auth.authenticates() {
        tracing::info!("{}", auth.describe());
    } else {
        tracing::warn!("{}", auth.describe());
    }
    let tls = auth::tls::server_config(&config)?;
    let hsmd = Hsmd::new(
        config.hsmd_socket.clone(),
        config.hsmd_connections,
        config.hsmd_max_in_flight,
    );
    if let Err(e) = hsmd.client().await {
        tracing::warn!(
            "{e}; requests get 503 until hsmd is back, the frontend reconnects by itself"
        );
    }
    let state = Arc::new(AppState {
        hsmd,
        grants,
        vault,
        max_body_bytes: config.max_body_bytes,
    });
    tokio::spawn(sweep_unwrapped(state.clone()));
    if let Some(changes) = changes {
        let state = state.clone();
        tokio::spawn(async move { state.vault.follow(changes).await });
    }
    let app = http::router(state, auth, config.max_body_bytes);
    let addr = format!("{}:{}", config.hostname, config.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr().context("listening address")?;
    let shutdown = CancellationToken::new();
    tokio::spawn(on_signal(shutdown.clone()));
    // Under systemd (Type=notify): ready once the socket listens.
    if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
        tracing::warn!("cannot notify systemd: {e}");
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!("listening on {scheme}://{local}");
    let limits = http::serve::ConnectionLimits {
        max_connections: config.max_connections,
        max_per_peer: config.max_connections_per_peer,
        max_pending_per_peer: config.max_pending_per_peer,
    };
    http::serve::serve(listener, tls, app, limits, shutdown).await;
    tracing::info!("stopped");
    Ok(())
}

/// The grant store, the object store and (PostgreSQL only) the feed of
/// changes other frontends make, on `database`: its schema migrated.
async fn open_database(
    database: &Database,
) -> Result<(GrantStore, Arc<dyn ObjectStore>, Option<Changes>)> {
    match database {
        Database::Sqlite(file) => Ok((
            GrantStore::open(file)?,
            Arc::new(SqliteStore::open(file)?),
            None,
        )),
        Database::Postgres(url) => {
            let options = kms_frontend::postgres::options(url)?;
            let server = kms_frontend::postgres::describe(&options);
            let pool = kms_frontend::postgres::connect(options).await?;
            let store = PgStore::open(pool.clone(), server.clone())
                .await
                .with_context(|| {
                    format!("cannot prepare the KMS database {server} (a first start creates its tables: the role must own the database, or hold CREATE on its schema)")
                })?;
            let changes = store
                .changes()
                .await
                .with_context(|| format!("cannot listen for key changes on {server}"))?;
            tracing::info!("KMS database: {server}");
            Ok((
                GrantStore::postgres(pool, server),
                Arc::new(store),
                Some(changes),
            ))
        }
    }
}

/// Cancels `token` on the first SIGTERM or SIGINT.
async fn on_signal(token: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::info!("shutting down");
            if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]) {
                tracing::warn!("cannot notify systemd: {e}");
            }
            token.cancel();
        }
        (Err(e), _) | (_, Err(e)) => tracing::error!("cannot handle signals: {e}"),
    }
}

/// Drops expired unwrapped keys once a minute, so their material is
/// zeroized on time even when no request touches the cache.
async fn sweep_unwrapped(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tick.tick().await;
        state.vault.cache().sweep().await;
    }
}
