//! The log filter both daemons read from their environment (hsmd's
//! `HSMD_LOG`, kms-frontend's `KMS_LOG`; docs/configuration.md "Logging"):
//! one parser, so the two accept exactly the same text. Built with the
//! `log-filter` feature.

use tracing_subscriber::filter::{LevelFilter, Targets};

/// Why a filter was refused; each message quotes the directive at fault and
/// says what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogFilterError {
    /// Only blanks and commas.
    #[error("it has no directive")]
    NoDirective,
    /// `level` is not one of the six level names.
    #[error("{item:?}: {level:?} is not a level (off, error, warn, info, debug, trace)")]
    NotALevel {
        /// The whole directive.
        item: String,
        /// Its level part.
        level: String,
    },
    /// `target` is not a module path.
    #[error(
        "{item:?}: {target:?} is not a module path such as hsmd::server or kms_frontend::http"
    )]
    NotAModulePath {
        /// The whole directive.
        item: String,
        /// Its target part.
        target: String,
    },
}

/// Parses a filter: comma-separated directives, each a level (`off`,
/// `error`, `warn`, `info`, `debug`, `trace`, in any case) for everything,
/// or `target=level` for one module path and what is below it. Blanks
/// around directives and empty ones are ignored; a later directive for the
/// same target wins.
///
/// Errors: no directive at all, or the first directive that is neither form
/// (a typo such as `inf` or `warning` is refused, not taken for a target).
pub fn parse(value: &str) -> Result<Targets, LogFilterError> {
    let mut targets = Targets::new();
    let mut any = false;
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        any = true;
        let (target, level) = match item.split_once('=') {
            Some((t, l)) => (Some(t.trim()), l.trim()),
            None => (None, item),
        };
        let level = level_named(level).ok_or_else(|| LogFilterError::NotALevel {
            item: item.into(),
            level: level.into(),
        })?;
        targets = match target {
            None => targets.with_default(level),
            Some(t) if is_module_path(t) => targets.with_target(t, level),
            Some(t) => {
                return Err(LogFilterError::NotAModulePath {
                    item: item.into(),
                    target: t.into(),
                })
            }
        };
    }
    if any {
        Ok(targets)
    } else {
        Err(LogFilterError::NoDirective)
    }
}

/// One of the six level names, in any case (`LevelFilter`'s own parser also
/// takes digits, and an empty string for `error`).
fn level_named(name: &str) -> Option<LevelFilter> {
    [
        LevelFilter::OFF,
        LevelFilter::ERROR,
        LevelFilter::WARN,
        LevelFilter::INFO,
        LevelFilter::DEBUG,
        LevelFilter::TRACE,
    ]
    .into_iter()
    .find(|l| l.to_string().eq_ignore_ascii_case(name))
}

/// A module path: letters, digits, `_` and `::` between non-empty parts.
fn is_module_path(t: &str) -> bool {
    !t.is_empty()
        && t.split("::").all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn levels_and_targets_parse_with_blanks_and_empty_items() {
        let t = parse(" info , cryptoki::mechanism = off ,, hsmd::server=debug,").expect("parses");
        assert!(t.would_enable("hsmd::pkcs11", &Level::INFO));
        assert!(!t.would_enable("hsmd::pkcs11", &Level::DEBUG));
        assert!(t.would_enable("hsmd::server::dispatch", &Level::DEBUG));
        assert!(!t.would_enable("cryptoki::mechanism", &Level::ERROR));
        assert!(parse("TRACE")
            .expect("case")
            .would_enable("x", &Level::TRACE));
        let t = parse(" warn , kms_frontend = debug ,").expect("parses");
        assert!(t.would_enable("kms_frontend::http", &Level::DEBUG));
        assert!(!t.would_enable("hyper", &Level::INFO));
    }

    #[test]
    fn typos_and_empty_filters_are_refused() {
        for bad in [
            "inf",
            "warning",
            "info,x=loud",
            "=info",
            "=debug",
            "a b=info",
            "x::=info",
            "x=",
            "3",
            "",
            " , ",
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(!e.to_string().is_empty(), "{bad}");
        }
        assert_eq!(parse(" , "), Err(LogFilterError::NoDirective));
        assert!(parse("warning")
            .expect_err("typo")
            .to_string()
            .contains("is not a level"));
        assert!(parse("a b=info")
            .expect_err("blank")
            .to_string()
            .contains("module path"));
    }
}
