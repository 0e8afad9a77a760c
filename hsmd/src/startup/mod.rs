//! hsmd's start-up, one step per file, in the order the steps run:
//!
//! 1. [`load`]: the configuration and the PINs (`crate::config`,
//!    `crate::pin`), and what the model's profile makes of them.
//! 2. The user to drop to, looked up before the token is touched (as root).
//! 3. [`library`]: the open-files limit and the PKCS#11 library
//!    (`C_Initialize`), held by a [`LibraryGuard`].
//! 4. [`login`]: every configured slot found and logged in, on this thread.
//! 5. [`check`]: `hsmd --check` stops here, with the token-store proof and
//!    one line on stdout.
//! 6. The socket, bound (or taken from systemd) while hsmd may still chown it.
//! 7. [`privileges`]: PIN pages locked, every privilege dropped and verified,
//!    the log thread started, the token store proved as the user hsmd now is.
//! 8. [`serve`]: the slot workers, `READY=1`, docs/protocol.md until SIGTERM
//!    or SIGINT, then the orderly stop.
//!
//! Whatever step fails, and after a clean stop, the [`LibraryGuard`] closes
//! the slots' sessions and finalizes the library (`C_Finalize`) as start-up
//! returns (only connections still holding the slots after the shutdown
//! deadline leave it initialized); the error is one sentence, and
//! [`exit_status`] maps it to hsmd's exit status.

pub mod check;
pub mod library;
pub mod load;
pub mod login;
pub mod privileges;
pub mod serve;
pub mod store;

use crate::config::cli::Cli;
use crate::pin::sources::PinSources;
use crate::privilege;
use crate::server::listener;
use anyhow::Result;
pub use library::LibraryGuard;

/// Exit status when a PIN was refused or the token forbids another try:
/// hsmd.service lists it in RestartPreventExitStatus=, because restarting
/// would spend the PIN's remaining tries.
pub const EXIT_PIN: u8 = 3;

/// The exit status for a start-up error: [`EXIT_PIN`] when a slot's PIN was
/// refused or is locked, else 1.
pub fn exit_status(e: &anyhow::Error) -> u8 {
    let pin = e
        .downcast_ref::<crate::pkcs11::slot::SlotStartError>()
        .is_some_and(|s| s.pin_problem);
    if pin {
        EXIT_PIN
    } else {
        1
    }
}

/// Starts hsmd and serves until SIGTERM or SIGINT (or, with `--check`, proves
/// the configuration, library, slots, logins and token store, and returns).
///
/// `sources` are the PIN sources read before any thread started.
///
/// Errors: the first step that fails, as one sentence for the operator.
pub fn run(cli: Cli, sources: PinSources) -> Result<()> {
    let check_only = cli.check;
    let mut loaded = load::load(cli, sources)?;
    let config = &loaded.config;
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
    let mut token = LibraryGuard::open(config)?;
    let slots = std::mem::take(&mut loaded.config.slots);
    login::log_in(&mut token, slots, &loaded)?;
    let config = &loaded.config;
    let store = crate::pkcs11::storage::softhsm_store(config.model, &config.library);
    if check_only {
        return check::check(token, config, store.as_ref(), root);
    }
    crate::notify::status("opening the socket");
    let owner = target.as_ref().map(|t| (t.user.1, t.group.1));
    let listener = listener::open(&config.socket, owner)?;
    privileges::drop_privileges(&token, target.as_ref(), store.as_ref())?;
    serve::serve(token, loaded, listener)
}
