//! Command-line flags of `hsmd`. The seed's flags keep their names
//! (`--hsm-model`, `--hsm-admin`, `--hsm-slot N --hsm-password P` in pairs);
//! every flag overrides the same key of the file.

use super::Model;
use clap::Parser;
use secrecy::SecretString;
use std::path::PathBuf;

/// Default configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/hsmd/hsmd.toml";

/// hsmd: privilege-separated PKCS#11 daemon for SmartCard-HSM / Nitrokey HSM 2.
///
/// PINs may come, in order of precedence, from --hsm-password (visible in ps:
/// avoid), HSMD_HSM_PASSWORD (comma-separated, slot order), the systemd
/// credential $CREDENTIALS_DIRECTORY/hsm_password (one line per slot), or
/// hsm_password in the file.
#[derive(Debug, Parser)]
#[command(name = "hsmd", version)]
pub struct Cli {
    /// Configuration file (TOML). A missing default file is not an error.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// HSM model: selects the default library and the token profile.
    #[arg(long, value_enum)]
    pub hsm_model: Option<Model>,
    /// PKCS#11 library path, overriding the model's default.
    #[arg(long, value_name = "PATH")]
    pub hsm_library: Option<PathBuf>,
    /// Username allowed to create and destroy keys; repeat for several; "*" for everyone.
    #[arg(long, value_name = "NAME")]
    pub hsm_admin: Vec<String>,
    /// PKCS#11 slot ID; repeat, paired in order with --hsm-password.
    #[arg(long, value_name = "N")]
    pub hsm_slot: Vec<u64>,
    #[allow(rustdoc::invalid_html_tags)] // clap help text, not HTML
    /// Token instead of a slot ID: "serial:<serial>" or "label:<label>"; repeat, paired in order with --hsm-password.
    #[arg(long, value_name = "SEL")]
    pub hsm_token: Vec<String>,
    /// User PIN of the slot in the same position ("" = null PIN, "<NO_LOGIN>" = no login).
    #[arg(long, value_name = "P", value_parser = parse_secret, hide_env_values = true)]
    pub hsm_password: Vec<SecretString>,
    /// Unix socket path.
    #[arg(long, value_name = "PATH")]
    pub socket_path: Option<PathBuf>,
    /// Group that owns the socket.
    #[arg(long, value_name = "GROUP")]
    pub socket_group: Option<String>,
    /// Socket permission bits, octal (e.g. 0660).
    #[arg(long, value_name = "MODE")]
    pub socket_mode: Option<String>,
    /// Unix user (or @group) allowed to connect; repeat for several.
    #[arg(long = "client", value_name = "USER|@GROUP")]
    pub clients: Vec<String>,
    /// Unix user allowed to act for KMS users (as_user); repeat for several.
    #[arg(long = "frontend", value_name = "USER")]
    pub frontends: Vec<String>,
    /// Sessions (threads) per slot.
    #[arg(long, value_name = "N")]
    pub sessions_per_slot: Option<usize>,
    /// Largest frame body, in bytes.
    #[arg(long, value_name = "BYTES")]
    pub max_frame_len: Option<usize>,
    /// Requests in flight per connection.
    #[arg(long, value_name = "N")]
    pub max_in_flight: Option<usize>,
    /// User to switch to when started as root.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Group to switch to when started as root.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Check the configuration, the library, the slots and the logins, then exit.
    #[arg(long)]
    pub check: bool,
}

fn parse_secret(s: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(s.to_owned()))
}
