//! hsmd configuration: the file ([`file::FileConfig`]), the flags
//! ([`cli::Cli`]) and the PIN sources (`crate::pin::sources`), merged and
//! checked into one [`Config`].
//! Every mistake is a [`ConfigError`] with one sentence for the operator.

pub mod cli;
pub mod file;

use crate::pin::sources::{PinSource, PinSourceError, PinSources};
use crate::pin::SlotPin;
use cli::Cli;
use file::FileConfig;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The HSM model (`hsm_model`), choosing the default library and profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    /// SmartCard-HSM 4K / Nitrokey HSM 2 via CardContact's sc-hsm-embedded.
    Smartcardhsm,
    /// SoftHSMv2 (tests, development).
    Softhsm2,
    /// Any other PKCS#11 module; needs `hsm_library`.
    Other,
}

impl Model {
    /// The wire and config name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Smartcardhsm => "smartcardhsm",
            Self::Softhsm2 => "softhsm2",
            Self::Other => "other",
        }
    }

    /// The model's default library path, if it has one.
    pub fn default_library(self) -> Option<&'static str> {
        match self {
            Self::Smartcardhsm => Some("/usr/local/lib/libsc-hsm-pkcs11.so"),
            Self::Softhsm2 => Some("/usr/lib/softhsm/libsofthsm2.so"),
            Self::Other => None,
        }
    }

    /// What to install when the library is missing.
    pub fn install_hint(self) -> &'static str {
        match self {
            Self::Smartcardhsm => "build and install CardContact's sc-hsm-embedded (version 2.12) from https://github.com/CardContact/sc-hsm-embedded",
            Self::Softhsm2 => "install SoftHSMv2 (apt-get install softhsm2, or dnf install softhsm)",
            Self::Other => "install your token's PKCS#11 module",
        }
    }

    /// Default sessions per slot: 1 for the SmartCard-HSM (one command at a time), else 4.
    pub fn default_sessions(self) -> usize {
        match self {
            Self::Smartcardhsm => 1,
            _ => 4,
        }
    }
}

/// Who may create and destroy keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admins {
    /// The configured names (as the hello reports them).
    pub names: Vec<String>,
}

impl Admins {
    /// True when `identity` is an admin (or the list is `"*"`).
    pub fn contains(&self, identity: &str) -> bool {
        self.names.iter().any(|n| n == "*" || n == identity)
    }
}

/// An entry of `clients`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientRule {
    /// A unix user name.
    User(String),
    /// `@group`: members of a unix group (primary or supplementary).
    Group(String),
}

/// How a configured slot is named: by PKCS#11 slot ID (`hsm_slot`) or by
/// the token in it (`hsm_token`, matched against `C_GetTokenInfo`'s
/// `serialNumber` or `label`, PKCS#11 v2.40 section 3.2 `CK_TOKEN_INFO`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotRef {
    /// `hsm_slot` entry.
    Id(u64),
    /// `hsm_token = "serial:..."`.
    Serial(String),
    /// `hsm_token = "label:..."`.
    Label(String),
}

impl SlotRef {
    /// Parses an `hsm_token` entry (`serial:X` or `label:X`).
    pub fn parse_token(text: &str) -> Result<Self, String> {
        let (kind, value) = text.split_once(':').unwrap_or(("", ""));
        let value = value.trim();
        match kind.trim() {
            "serial" if !value.is_empty() => Ok(Self::Serial(value.to_owned())),
            "label" if !value.is_empty() => Ok(Self::Label(value.to_owned())),
            _ => Err(format!(
                "hsm_token entry {text:?} is not \"serial:<token serial number>\" or \"label:<token label>\""
            )),
        }
    }

    /// True when a token with `label` and `serial` (as `C_GetTokenInfo`
    /// gives them, blank-padded) is the one this names; never for [`SlotRef::Id`].
    pub fn matches_token(&self, label: &str, serial: &str) -> bool {
        match self {
            Self::Id(_) => false,
            Self::Serial(s) => serial.trim() == s,
            Self::Label(l) => label.trim() == l,
        }
    }
}

impl std::fmt::Display for SlotRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Id(id) => write!(f, "slot {id}"),
            Self::Serial(s) => write!(f, "the token with serial {s:?}"),
            Self::Label(l) => write!(f, "the token labelled {l:?}"),
        }
    }
}

/// One configured slot.
#[derive(Debug)]
pub struct SlotConfig {
    /// The slot, or the token that names it.
    pub slot: SlotRef,
    /// How to log in.
    pub pin: SlotPin,
}

/// The socket hsmd listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketConfig {
    /// Path (used unless systemd passes a socket).
    pub path: PathBuf,
    /// Group to chown the socket to.
    pub group: Option<String>,
    /// Permission bits.
    pub mode: u32,
}

/// The complete, checked configuration.
#[derive(Debug)]
pub struct Config {
    /// HSM model.
    pub model: Model,
    /// PKCS#11 module path.
    pub library: PathBuf,
    /// hsm_admin.
    pub admins: Admins,
    /// Slots in configuration order.
    pub slots: Vec<SlotConfig>,
    /// Where the PINs came from (for the log, never the PINs).
    pub pin_source: PinSource,
    /// Socket.
    pub socket: SocketConfig,
    /// Who may connect directly (root always may).
    pub clients: Vec<ClientRule>,
    /// Unix users that may send `as_user`.
    pub frontends: Vec<String>,
    /// Sessions per slot.
    pub sessions_per_slot: usize,
    /// Largest frame body, bytes.
    pub max_frame_len: usize,
    /// Requests in flight per connection.
    pub max_in_flight: usize,
    /// Time allowed for the hello.
    pub handshake_timeout: Duration,
    /// Jobs queued per slot.
    pub queue_depth: usize,
    /// Time a started frame may take to arrive.
    pub frame_timeout: Duration,
    /// Connections at once.
    pub max_connections: usize,
    /// Connections at once per unix user.
    pub max_connections_per_user: usize,
    /// Request bytes in flight per connection.
    pub max_in_flight_bytes: usize,
    /// Time SIGTERM waits for connections.
    pub shutdown_timeout: Duration,
    /// User to switch to when started as root.
    pub user: String,
    /// Group to switch to when started as root.
    pub group: String,
    /// Supplementary groups kept after the switch.
    pub keep_groups: Vec<String>,
}

/// A configuration mistake; the message names the key and what is accepted.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {path}: {reason}")]
    Read {
        /// File.
        path: PathBuf,
        /// Why.
        reason: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or ill-typed keys.
    #[error("configuration file {path}: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// The parser's explanation (line, key, accepted values).
        message: String,
    },
    /// A value is not accepted.
    #[error("{0}")]
    Invalid(String),
}

impl From<PinSourceError> for ConfigError {
    fn from(e: PinSourceError) -> Self {
        Self::Invalid(e.to_string())
    }
}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

/// Reads and parses the file `path`. A missing file is an error only when
/// `required` (the operator named it with `--config`).
pub fn read_file(path: &Path, required: bool) -> Result<FileConfig, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(FileConfig::default())
        }
        Err(reason) => {
            return Err(ConfigError::Read {
                path: path.to_owned(),
                reason,
            })
        }
    };
    parse_file(path, &text)
}

/// Parses file text (unknown keys, wrong types and bad model names are errors).
///
/// The message names the key path (`hsm_slot[1]`) and the line, but never
/// quotes the file: a line may hold a PIN. Values of password keys are also
/// scrubbed from the parser's own words.
pub fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let place = inner
            .span()
            .map(|span| {
                let end = span.start.min(text.trim_end().len());
                let line = text[..end].matches('\n').count() + 1;
                format!("line {line}: ")
            })
            .unwrap_or_default();
        let key = if key == "." { String::new() } else { format!("{key}: ") };
        let mut message = format!("{place}{key}{}", inner.message().trim().replace('\n', " "));
        for secret in password_values(text) {
            message = message.replace(&secret, "[redacted]");
        }
        if inner.span().is_some() && key.is_empty() && message.contains("expected") {
            message.push_str(" (text values such as socket_mode = \"0660\" and every hsm_password must be quoted)");
        }
        ConfigError::Parse { path: path.to_owned(), message }
    })
}

/// Every scalar under a key that looks like a password, as text, so it can
/// be scrubbed from error messages. Best effort on files that do not parse.
fn password_values(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(table) = text.parse::<toml::Table>() {
        for (k, v) in &table {
            if k.contains("password") || k.contains("pin") {
                collect_scalars(v, &mut out);
            }
        }
    }
    // Lines that do not parse: take every token after `password ... =`.
    for line in text
        .lines()
        .filter(|l| l.contains("password") || l.contains("pin"))
    {
        if let Some((_, rhs)) = line.split_once('=') {
            out.extend(
                rhs.split(|c: char| matches!(c, '[' | ']' | ',' | '"' | '\'') || c.is_whitespace())
                    .filter(|t| t.len() >= 3)
                    .map(str::to_owned),
            );
        }
    }
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out
}

fn collect_scalars(v: &toml::Value, out: &mut Vec<String>) {
    match v {
        toml::Value::String(s) if !s.is_empty() => out.push(s.clone()),
        toml::Value::Array(a) => a.iter().for_each(|x| collect_scalars(x, out)),
        toml::Value::Table(_) | toml::Value::String(_) => {}
        other => out.push(other.to_string()),
    }
}

fn parse_mode(s: &str) -> Result<u32, ConfigError> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    let all_octal = !digits.is_empty() && digits.bytes().all(|b| (b'0'..=b'7').contains(&b));
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o777 && all_octal => Ok(m),
        _ => Err(invalid(format!(
            "socket_mode {:?} is not an octal permission like \"0660\" (at most 0777)",
            s.chars().take(8).collect::<String>()
        ))),
    }
}

fn entries(n: usize) -> String {
    if n == 1 {
        "1 entry".into()
    } else {
        format!("{n} entries")
    }
}

fn secs(
    name: &str,
    v: Option<u64>,
    default: u64,
    lo: u64,
    hi: u64,
) -> Result<Duration, ConfigError> {
    let v = v.unwrap_or(default);
    if (lo..=hi).contains(&v) {
        Ok(Duration::from_secs(v))
    } else {
        Err(invalid(format!(
            "{name} is {v}; accepted values are {lo} to {hi} seconds"
        )))
    }
}

fn bounded(name: &str, v: usize, lo: usize, hi: usize) -> Result<usize, ConfigError> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(invalid(format!(
            "{name} is {v}; accepted values are {lo} to {hi}"
        )))
    }
}

fn check_names(key: &str, names: &[String]) -> Result<(), ConfigError> {
    for n in names {
        let bare = n.strip_prefix('@').unwrap_or(n);
        if bare.is_empty()
            || bare
                .chars()
                .any(|c| c.is_whitespace() || c == ':' || c == ',')
        {
            return Err(invalid(format!(
                "{key} entry {n:?} is not a unix user name (or @group for clients)"
            )));
        }
    }
    Ok(())
}

/// The limits of [`Config`], resolved together by [`resolve_limits`].
struct Limits {
    sessions_per_slot: usize,
    max_frame_len: usize,
    max_in_flight: usize,
    handshake_timeout: Duration,
    queue_depth: usize,
    frame_timeout: Duration,
    max_connections: usize,
    max_connections_per_user: usize,
    max_in_flight_bytes: usize,
    shutdown_timeout: Duration,
}

/// `hsm_model` and `hsm_library` (flags over the file): the model
/// (default `smartcardhsm`) and the PKCS#11 module path (default the
/// model's). Errors when the model has no default library and none is given.
fn resolve_module(cli: &mut Cli, file: &mut FileConfig) -> Result<(Model, PathBuf), ConfigError> {
    let model = cli
        .hsm_model
        .or(file.hsm_model)
        .unwrap_or(Model::Smartcardhsm);
    let library = match cli.hsm_library.take().or(file.hsm_library.take()) {
        Some(p) => p,
        None => model.default_library().map(PathBuf::from).ok_or_else(|| {
            invalid("hsm_model \"other\" needs hsm_library (or --hsm-library): the path of the token's PKCS#11 module")
        })?,
    };
    Ok((model, library))
}

/// `hsm_admin` (flags over the file, default `"admin"`). Errors on an empty
/// list or an empty name.
fn resolve_admins(cli: &mut Cli, file: &mut FileConfig) -> Result<Admins, ConfigError> {
    let admins = if cli.hsm_admin.is_empty() {
        file.hsm_admin
            .take()
            .map(file::OneOrMany::into_vec)
            .unwrap_or_else(|| vec!["admin".into()])
    } else {
        std::mem::take(&mut cli.hsm_admin)
    };
    if admins.is_empty() {
        return Err(invalid(
            "hsm_admin is an empty list: name at least one user who may create keys (default \"admin\", \"*\" for everyone)",
        ));
    }
    if let Some(bad) = admins.iter().find(|a| a.trim().is_empty()) {
        return Err(invalid(format!(
            "hsm_admin contains the empty name {bad:?}; give user names or \"*\""
        )));
    }
    Ok(Admins { names: admins })
}

/// `hsm_slot` or `hsm_token` (flags over the file), each paired with its
/// `hsm_password` from the highest PIN source that has them (see
/// [`PinSources::pick`]). Errors when both or neither key is set, on a bad
/// `hsm_token` entry, a slot named twice, or a password count that differs.
fn resolve_slots(
    cli: &mut Cli,
    file: &mut FileConfig,
    sources: PinSources,
) -> Result<(Vec<SlotConfig>, PinSource), ConfigError> {
    let slot_ids = if cli.hsm_slot.is_empty() {
        file.hsm_slot.take().unwrap_or_default()
    } else {
        std::mem::take(&mut cli.hsm_slot)
    };
    let tokens = if cli.hsm_token.is_empty() {
        file.hsm_token.take().unwrap_or_default()
    } else {
        std::mem::take(&mut cli.hsm_token)
    };
    let (key, slot_refs) = slot_refs(slot_ids, &tokens)?;
    let (passwords, pin_source) = sources.pick(
        std::mem::take(&mut cli.hsm_password),
        file.hsm_password.take(),
    )?;
    if passwords.len() != slot_refs.len() {
        return Err(invalid(format!(
            "{key} has {} but hsm_password has {} (from {pin_source}): give exactly one password per slot, in the same order",
            entries(slot_refs.len()),
            entries(passwords.len())
        )));
    }
    let slots = slot_refs
        .into_iter()
        .zip(passwords)
        .map(|(slot, pw)| SlotConfig {
            slot,
            pin: SlotPin::from_entry(pw),
        })
        .collect();
    Ok((slots, pin_source))
}

/// The configured slots as [`SlotRef`]s, from `hsm_slot` IDs or `hsm_token`
/// entries, with the name of the key they came from. Errors when both or
/// neither is set, on a bad `hsm_token` entry, or a slot named twice.
fn slot_refs(
    slot_ids: Vec<u64>,
    tokens: &[String],
) -> Result<(&'static str, Vec<SlotRef>), ConfigError> {
    if !slot_ids.is_empty() && !tokens.is_empty() {
        return Err(invalid(
            "both hsm_slot and hsm_token are set: name the slots one way, by slot ID (hsm_slot) or by token (hsm_token = [\"serial:...\", \"label:...\"])",
        ));
    }
    let key = if tokens.is_empty() {
        "hsm_slot"
    } else {
        "hsm_token"
    };
    let slot_refs: Vec<SlotRef> = if tokens.is_empty() {
        slot_ids.into_iter().map(SlotRef::Id).collect()
    } else {
        tokens
            .iter()
            .map(|t| SlotRef::parse_token(t))
            .collect::<Result<_, _>>()
            .map_err(invalid)?
    };
    if slot_refs.is_empty() {
        return Err(invalid(
            "no slot is configured: set hsm_slot = [N, ...] (or hsm_token = [\"serial:...\"]) with hsm_password = [\"PIN\", ...], or --hsm-slot N --hsm-password P",
        ));
    }
    for (i, r) in slot_refs.iter().enumerate() {
        if slot_refs[..i].contains(r) {
            return Err(invalid(format!(
                "{key} lists {r} twice; each slot may be configured once"
            )));
        }
    }
    Ok((key, slot_refs))
}

/// `clients` and `frontends` (flags over the file, default none): who may
/// connect and who may send `as_user`. Errors on a name that is not a unix
/// user name (or `@group` for clients) and on a group among the frontends.
fn resolve_peers(
    cli: &mut Cli,
    file: &mut FileConfig,
) -> Result<(Vec<ClientRule>, Vec<String>), ConfigError> {
    let clients: Vec<String> = if cli.clients.is_empty() {
        file.clients.take().unwrap_or_default()
    } else {
        std::mem::take(&mut cli.clients)
    };
    check_names("clients", &clients)?;
    let frontends = if cli.frontends.is_empty() {
        file.frontends.take().unwrap_or_default()
    } else {
        std::mem::take(&mut cli.frontends)
    };
    check_names("frontends", &frontends)?;
    if let Some(f) = frontends.iter().find(|f| f.starts_with('@')) {
        return Err(invalid(format!(
            "frontends entry {f:?}: frontends are unix user names, not groups"
        )));
    }
    let clients = clients
        .into_iter()
        .map(|c| match c.strip_prefix('@') {
            Some(g) => ClientRule::Group(g.to_owned()),
            None => ClientRule::User(c),
        })
        .collect();
    Ok((clients, frontends))
}

/// `socket_path` (default `/run/hsmd/hsmd.sock`), `socket_group` and
/// `socket_mode` (default `"0660"`), flags over the file. Errors when the
/// mode is not an octal permission.
fn resolve_socket(cli: &mut Cli, file: &mut FileConfig) -> Result<SocketConfig, ConfigError> {
    let mode = parse_mode(
        cli.socket_mode
            .take()
            .or(file.socket_mode.take())
            .as_deref()
            .unwrap_or("0660"),
    )?;
    Ok(SocketConfig {
        path: cli
            .socket_path
            .take()
            .or(file.socket_path.take())
            .unwrap_or_else(|| PathBuf::from("/run/hsmd/hsmd.sock")),
        group: cli.socket_group.take().or(file.socket_group.take()),
        mode,
    })
}

/// The sessions, sizes, counts and timeouts (flags over the file where a
/// flag exists, then the defaults), each checked against its accepted range
/// in this order; `sessions_per_slot` defaults to the `model`'s.
fn resolve_limits(cli: &Cli, file: &FileConfig, model: Model) -> Result<Limits, ConfigError> {
    let sessions = cli
        .sessions_per_slot
        .or(file.sessions_per_slot)
        .unwrap_or(model.default_sessions());
    let frame_len = cli
        .max_frame_len
        .or(file.max_frame_len)
        .unwrap_or(hsmd_protocol::DEFAULT_MAX_FRAME_LEN);
    let in_flight = cli.max_in_flight.or(file.max_in_flight).unwrap_or(64);
    let handshake = file.handshake_timeout_secs.unwrap_or(5) as usize;
    let connections = file.max_connections.unwrap_or(128);
    let per_user = file.max_connections_per_user.unwrap_or(32);
    let in_flight_bytes = file.max_in_flight_bytes.unwrap_or(4 * 1024 * 1024);
    Ok(Limits {
        sessions_per_slot: bounded("sessions_per_slot", sessions, 1, 64)?,
        max_frame_len: bounded("max_frame_len", frame_len, 1024, 64 * 1024 * 1024)?,
        max_in_flight: bounded("max_in_flight", in_flight, 1, 65536)?,
        handshake_timeout: Duration::from_secs(
            bounded("handshake_timeout_secs", handshake, 1, 300)? as u64,
        ),
        queue_depth: bounded("queue_depth", file.queue_depth.unwrap_or(256), 1, 65536)?,
        frame_timeout: secs("frame_timeout_secs", file.frame_timeout_secs, 10, 1, 300)?,
        max_connections: bounded("max_connections", connections, 1, 65536)?,
        max_connections_per_user: bounded("max_connections_per_user", per_user, 1, 65536)?,
        max_in_flight_bytes: bounded(
            "max_in_flight_bytes",
            in_flight_bytes,
            1024,
            1024 * 1024 * 1024,
        )?,
        shutdown_timeout: secs(
            "shutdown_timeout_secs",
            file.shutdown_timeout_secs,
            10,
            1,
            3600,
        )?,
    })
}

impl Config {
    /// Merges flags over the file, takes the PINs from the highest source
    /// that has them, and checks everything that can be checked without the
    /// PKCS#11 module, section by section in this order: module, admins,
    /// slots and PINs, peers, socket, limits; the user and groups cannot fail.
    pub fn resolve(
        mut cli: Cli,
        mut file: FileConfig,
        sources: PinSources,
    ) -> Result<Self, ConfigError> {
        let (model, library) = resolve_module(&mut cli, &mut file)?;
        let admins = resolve_admins(&mut cli, &mut file)?;
        let (slots, pin_source) = resolve_slots(&mut cli, &mut file, sources)?;
        let (clients, frontends) = resolve_peers(&mut cli, &mut file)?;
        let socket = resolve_socket(&mut cli, &mut file)?;
        let limits = resolve_limits(&cli, &file, model)?;
        Ok(Config {
            model,
            library,
            admins,
            slots,
            pin_source,
            socket,
            clients,
            frontends,
            sessions_per_slot: limits.sessions_per_slot,
            max_frame_len: limits.max_frame_len,
            max_in_flight: limits.max_in_flight,
            handshake_timeout: limits.handshake_timeout,
            queue_depth: limits.queue_depth,
            frame_timeout: limits.frame_timeout,
            max_connections: limits.max_connections,
            max_connections_per_user: limits.max_connections_per_user,
            max_in_flight_bytes: limits.max_in_flight_bytes,
            shutdown_timeout: limits.shutdown_timeout,
            user: cli.user.or(file.user).unwrap_or_else(|| "hsmd".into()),
            group: cli.group.or(file.group).unwrap_or_else(|| "hsmd".into()),
            keep_groups: file.keep_groups.unwrap_or_default(),
        })
    }

    /// Loads everything: flags, the file they name (or the default), PIN sources.
    pub fn load(cli: Cli, sources: PinSources) -> Result<Self, ConfigError> {
        let (path, required) = match &cli.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from(cli::DEFAULT_CONFIG), false),
        };
        let file = read_file(&path, required)?;
        Self::resolve(cli, file, sources)
    }
}

#[cfg(test)]
mod tests;
