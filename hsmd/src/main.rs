//! `hsmd`: loads the configuration and the PINs, opens the PKCS#11 library,
//! logs in to every configured slot, binds its socket, drops every privilege,
//! then serves docs/protocol.md until SIGTERM/SIGINT (the steps are
//! `hsmd::startup`). Exits non-zero with one sentence on any start-up error:
//! 3 when a PIN was refused or is locked, else 1.

use clap::Parser;
use hsmd::config::cli::Cli;
use hsmd::pin::sources::PinSources;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Read (and scrub) HSMD_HSM_PASSWORD before any thread exists.
    let sources = PinSources::from_process_env();
    let cli = Cli::parse();
    hsmd::logging::init();
    // Writes out the log thread's lines however start-up ends, a panic included.
    struct FlushLog;
    impl Drop for FlushLog {
        fn drop(&mut self) {
            hsmd::logging::flush();
        }
    }
    let flush_log = FlushLog;
    let result = hsmd::startup::run(cli, sources);
    drop(flush_log);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if hsmd::logging::stderr_is_journal() {
                tracing::error!("{e:#}");
            } else {
                eprintln!("hsmd: {e:#}");
            }
            ExitCode::from(hsmd::startup::exit_status(&e))
        }
    }
}
