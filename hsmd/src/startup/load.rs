//! Start-up step 1: the configuration (file, flags, PIN sources) and what the
//! model's profile makes of it.

use crate::config::cli::Cli;
use crate::config::Config;
use crate::notify;
use crate::pin::sources::PinSources;
use crate::pkcs11::profile::Profile;

/// The checked configuration and the model's profile.
pub struct Loaded {
    /// The configuration (its `slots` are taken by the login step).
    pub config: Config,
    /// The model's profile.
    pub profile: Profile,
    /// Sessions per slot: `sessions_per_slot`, lowered when the model's
    /// library runs one call at a time.
    pub sessions: usize,
}

/// Reads and checks the configuration, logs where the PINs came from, and
/// picks the model's profile.
///
/// Errors: a configuration mistake (`crate::config::ConfigError`).
pub fn load(cli: Cli, sources: PinSources) -> Result<Loaded, crate::config::ConfigError> {
    notify::status("reading the configuration");
    let config = Config::load(cli, sources)?;
    tracing::info!(
        model = config.model.as_str(),
        library = %config.library.display(),
        slots = config.slots.len(),
        "starting; PINs from {}",
        config.pin_source
    );
    let profile = Profile::for_model(config.model);
    let sessions = profile.sessions(config.sessions_per_slot);
    if sessions < config.sessions_per_slot {
        tracing::warn!(
            "sessions_per_slot = {} lowered to {sessions}: the {} library runs one call at a time, more sessions would only queue inside it",
            config.sessions_per_slot,
            profile.model
        );
    }
    Ok(Loaded {
        config,
        profile,
        sessions,
    })
}
