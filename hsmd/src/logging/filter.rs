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
/// request succeeded, `warn` when it was refused): named `audit` explicitly
/// by the records themselves, not a module path.
const AUDIT_TARGET: &str = "audit";

/// Parses a filter (the rules shared with kms-frontend's `KMS_LOG`:
/// [`hsmd_protocol::log_filter::parse`]); the error as one phrase.
pub fn parse(value: &str) -> Result<Targets, String> {
    hsmd_protocol::log_filter::parse(value).map_err(|e| e.to_string())
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
    fn the_audit_records_pass_at_debug() {
        assert!(parse("debug")
            .expect("debug")
            .would_enable(AUDIT_TARGET, &Level::DEBUG));
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
}
