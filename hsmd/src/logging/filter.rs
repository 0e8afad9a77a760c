//! `HSMD_LOG`: which records are logged.

use tracing::Level;
use tracing_subscriber::filter::{LevelFilter, Targets};

/// The default filter.
pub const DEFAULT: &str = "info";

/// The PKCS#11 binding's module that logs `ERROR Mechanism type N is not
/// supported.` for every mechanism a token lists that the binding has no
/// name for (some 30 on SoftHSMv2): hsmd keeps those as numbers
/// (`CKM_0x...`), so the line is noise that reads as a failure. It is
/// dropped at every level, whatever `HSMD_LOG` says.
pub const SILENCED: &str = "cryptoki::mechanism";

/// `targets` with [`SILENCED`] turned off (a later directive for the same
/// target wins, so this overrides any the filter had).
pub fn silence(targets: Targets) -> Targets {
    targets.with_target(SILENCED, LevelFilter::OFF)
}

/// The target of the audit records (one per request, at `info` when the
/// request succeeded, `warn` when it was refused).
const AUDIT_TARGET: &str = "hsmd::server::dispatch";

/// Parses a filter: comma-separated directives, each a level (`off`,
/// `error`, `warn`, `info`, `debug`, `trace`) for everything, or
/// `target=level` for one module path and what is below it. Blanks around
/// directives and empty ones are ignored; a later directive for the same
/// target wins.
///
/// Errors: no directive at all, or the first directive that is neither form
/// (a typo such as `inf` or `warning` is refused, not taken for a target).
pub fn parse(value: &str) -> Result<Targets, String> {
    let mut targets = Targets::new();
    let mut any = false;
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        any = true;
        let (target, level) = match item.split_once('=') {
            Some((t, l)) => (Some(t.trim()), l.trim()),
            None => (None, item),
        };
        let level = level_named(level).ok_or_else(|| {
            format!("{item:?}: {level:?} is not a level (off, error, warn, info, debug, trace)")
        })?;
        targets = match target {
            None => targets.with_default(level),
            Some(t) if is_target(t) => targets.with_target(t, level),
            Some(t) => {
                return Err(format!(
                    "{item:?}: {t:?} is not a module path such as hsmd::server"
                ))
            }
        };
    }
    if any {
        Ok(targets)
    } else {
        Err("it has no directive".into())
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

/// A module path: letters, digits, `_` and `::`.
fn is_target(t: &str) -> bool {
    !t.is_empty()
        && t.split("::").all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// `HSMD_LOG` parsed, or the default with the reason it was not used (an
/// unset variable is no reason); plus a note when the filter leaves out the
/// audit records of successful requests.
pub fn from_env() -> (Targets, Vec<String>) {
    let default = || parse(DEFAULT).unwrap_or_default();
    let mut notes = Vec::new();
    let targets = match std::env::var("HSMD_LOG") {
        Err(std::env::VarError::NotPresent) => default(),
        Err(std::env::VarError::NotUnicode(_)) => {
            notes.push(format!("HSMD_LOG is not UTF-8; logging with {DEFAULT:?}"));
            default()
        }
        Ok(value) => match parse(&value) {
            Ok(targets) => targets,
            Err(e) => {
                notes.push(format!(
                    "HSMD_LOG={value:?} is not a log filter ({e}); expected e.g. \"debug\" or \"warn,hsmd::server=debug\"; logging with {DEFAULT:?}"
                ));
                default()
            }
        },
    };
    let targets = silence(targets);
    if !targets.would_enable(AUDIT_TARGET, &Level::WARN) {
        notes.push(
            "with this HSMD_LOG, no request is recorded (the audit records are at info, refusals at warn)"
                .into(),
        );
    } else if !targets.would_enable(AUDIT_TARGET, &Level::INFO) {
        notes.push(
            "with this HSMD_LOG, successful requests are not recorded (their audit records are at info)"
                .into(),
        );
    }
    (targets, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_targets_parse_with_blanks_and_empty_items() {
        let t = parse(" info , cryptoki::mechanism = off ,, hsmd::server=debug,").expect("parses");
        assert!(t.would_enable("hsmd::pkcs11", &Level::INFO));
        assert!(!t.would_enable("hsmd::pkcs11", &Level::DEBUG));
        assert!(t.would_enable("hsmd::server::dispatch", &Level::DEBUG));
        assert!(!t.would_enable("cryptoki::mechanism", &Level::ERROR));
        assert!(parse("debug")
            .expect("debug")
            .would_enable(AUDIT_TARGET, &Level::DEBUG));
        assert!(parse("TRACE")
            .expect("case")
            .would_enable("x", &Level::TRACE));
    }

    #[test]
    fn the_mechanism_conversion_noise_is_off_at_every_level() {
        for filter in [
            "trace",
            "debug",
            "info",
            "error",
            "info,cryptoki::mechanism=trace",
        ] {
            let t = silence(parse(filter).expect(filter));
            assert!(!t.would_enable(SILENCED, &Level::ERROR), "{filter}");
            assert!(
                t.would_enable("cryptoki::context", &Level::ERROR),
                "{filter}"
            );
        }
    }

    #[test]
    fn typos_and_empty_filters_are_refused() {
        for bad in [
            "inf",
            "warning",
            "info,x=loud",
            "=info",
            "a b=info",
            "x::=info",
            "",
            " , ",
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(!e.is_empty(), "{bad}");
        }
        assert!(parse("warning")
            .expect_err("typo")
            .contains("is not a level"));
        assert!(parse("a b=info")
            .expect_err("blank")
            .contains("module path"));
    }
}
