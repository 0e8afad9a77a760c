//! kms-frontend's log output: human-readable lines on stderr (the journal
//! under systemd), filtered by `KMS_LOG`.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Parses a filter: the rules of hsmd's `HSMD_LOG`
/// ([`hsmd_protocol::log_filter::parse`]); the error as one phrase.
pub fn parse_filter(value: &str) -> Result<Targets, String> {
    hsmd_protocol::log_filter::parse(value).map_err(|e| e.to_string())
}

/// Installs the subscriber: stderr, filtered by `KMS_LOG` (default `info`,
/// PostgreSQL's notices at `warn`).
/// A value that does not parse is reported in one warning, and `info` is
/// used.
pub fn init() {
    // sqlx logs PostgreSQL's notices at info; the only one the frontend
    // meets is "relation already exists, skipping" when frontends start
    // together: not news.
    let default = || {
        Targets::new()
            .with_default(LevelFilter::INFO)
            .with_target("sqlx::postgres::notice", LevelFilter::WARN)
    };
    let (targets, refused) = match std::env::var("KMS_LOG") {
        Err(std::env::VarError::NotPresent) => (default(), None),
        Err(std::env::VarError::NotUnicode(_)) => {
            (default(), Some("KMS_LOG is not UTF-8; logging at info".to_owned()))
        }
        Ok(value) => match parse_filter(&value) {
            Ok(targets) => (targets, None),
            Err(e) => (
                default(),
                Some(format!(
                    "KMS_LOG={value:?} is not a log filter ({e}); expected e.g. \"debug\" or \"warn,kms_frontend=debug\"; logging at info"
                )),
            ),
        },
    };
    // A fmt *layer* on a registry: `tracing_subscriber::fmt()` would cap the
    // level at info whatever `targets` allows.
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false),
        )
        .with(targets)
        .try_init();
    if let Some(reason) = refused {
        tracing::warn!("{reason}");
    }
}
