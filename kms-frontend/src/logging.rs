//! kms-frontend's log output: human-readable lines on stderr (the journal
//! under systemd), filtered by `KMS_LOG`.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Parses a filter: comma-separated directives, each a level (`off`,
/// `error`, `warn`, `info`, `debug`, `trace`) for everything, or
/// `target=level` for one module path and what is below it; blanks around
/// directives and empty ones are ignored. The same rules as hsmd's
/// `HSMD_LOG`.
///
/// Errors: no directive at all, or the first directive that is neither form
/// (a typo such as `inf` is refused, not taken for a target).
pub fn parse_filter(value: &str) -> Result<Targets, String> {
    let mut targets = Targets::new();
    let mut any = false;
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        any = true;
        let (target, level) = item
            .split_once('=')
            .map_or((None, item), |(t, l)| (Some(t.trim()), l.trim()));
        // Names only: LevelFilter's parser also takes digits, and "" for error.
        let level = [
            LevelFilter::OFF,
            LevelFilter::ERROR,
            LevelFilter::WARN,
            LevelFilter::INFO,
            LevelFilter::DEBUG,
            LevelFilter::TRACE,
        ]
        .into_iter()
        .find(|l| l.to_string().eq_ignore_ascii_case(level))
        .ok_or_else(|| {
            format!("{item:?}: {level:?} is not a level (off, error, warn, info, debug, trace)")
        })?;
        let module_path = |t: &str| {
            t.split("::")
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        };
        targets = match target {
            None => targets.with_default(level),
            Some(t) if module_path(t) => targets.with_target(t, level),
            Some(t) => return Err(format!("{item:?}: {t:?} is not a module path")),
        };
    }
    any.then_some(targets)
        .ok_or_else(|| "it has no directive".to_owned())
}

/// Installs the subscriber: stderr, filtered by `KMS_LOG` (default `info`).
/// A value that does not parse is reported in one warning, and `info` is
/// used.
pub fn init() {
    let default = || Targets::new().with_default(LevelFilter::INFO);
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

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn filters_parse_and_typos_are_refused() {
        let t = parse_filter(" warn , kms_frontend = debug ,").expect("parses");
        assert!(t.would_enable("kms_frontend::http", &Level::DEBUG));
        assert!(!t.would_enable("hyper", &Level::INFO));
        for bad in ["inf", "warning", "", "=debug", "a b=info", "x=", "3"] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }
}
