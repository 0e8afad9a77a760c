//! The frontend's configuration: flags ([`cli::Args`]) over the TOML file
//! ([`file::FileConfig`]) over defaults, checked once at start-up. Every
//! mistake is one sentence naming the key, the value and what is accepted.

pub mod cli;
pub mod file;

use secrecy::SecretString;
use std::path::{Path, PathBuf};
use thiserror::Error;

pub use cli::Args;

/// Default TCP port, as the reference server.
pub const DEFAULT_PORT: u16 = 9998;
/// Default listening address: loopback, so that an unconfigured frontend
/// (every caller acting as the default user) is reachable from this host only.
pub const DEFAULT_HOSTNAME: &str = "127.0.0.1";
/// Default `max_connections_per_peer`: a quarter of the default
/// `max_connections` (512).
pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: usize = 128;
/// Default `max_pending_per_peer`: room for a client that opens 64
/// connections at once (the benchmark's and the soak's largest).
pub const DEFAULT_MAX_PENDING_PER_PEER: usize = 64;
/// Default hsmd socket.
pub const DEFAULT_HSMD_SOCKET: &str = "/run/hsmd/hsmd.sock";
/// Where hsmd's own configuration lives (named in refusals).
pub const HSMD_CONFIG: &str = "/etc/hsmd/hsmd.toml";

/// A configuration the frontend refuses to start with.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: std::io::Error,
    },
    /// The file is not valid TOML or holds an unknown or ill-typed key.
    #[error("configuration file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong (from the TOML parser; never quotes values).
        message: String,
    },
    /// The file holds one of the reference server's HSM keys.
    #[error("configuration file {path} holds `{key}`: PINs, slots and the HSM model belong to hsmd's configuration now ({HSMD_CONFIG}); remove `{key}` from {path}, the frontend never sees them")]
    HsmKey {
        /// The file.
        path: PathBuf,
        /// The key found.
        key: String,
    },
    /// A value is out of its accepted range.
    #[error("{0}")]
    Invalid(String),
    /// No authentication is configured and the address is not loopback:
    /// anyone reaching the port would act as the default user.
    #[error("no authentication is configured, so every caller would act as {user:?}, and {hostname} is not a loopback address: configure authentication (clients_ca_cert_file with HTTPS, or jwt_auth_provider), or listen on loopback (hostname = \"127.0.0.1\" in [http], or --hostname 127.0.0.1)")]
    OpenToTheNetwork {
        /// The configured listening address.
        hostname: String,
        /// The default user every caller would be.
        user: String,
    },
}

/// How HTTPS is set up, if at all.
#[derive(Debug, Clone)]
pub enum TlsIdentity {
    /// Plain HTTP.
    None,
    /// A PKCS#12 file and its password.
    P12 {
        /// The file.
        file: PathBuf,
        /// Its password (never logged).
        password: SecretString,
    },
    /// PEM certificate, key and optional chain.
    Pem {
        /// Server certificate.
        cert: PathBuf,
        /// Server private key.
        key: PathBuf,
        /// Intermediate certificates.
        chain: Option<PathBuf>,
    },
}

/// One `--jwt-auth-provider ISSUER,JWKS_URI[,AUDIENCE]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtProvider {
    /// Expected `iss` claim.
    pub issuer: String,
    /// `https://` URL or local file of the provider's JWKS.
    pub jwks_uri: String,
    /// Expected `aud` claim, when given.
    pub audience: Option<String>,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub hostname: String,
    /// TCP port.
    pub port: u16,
    /// User of unauthenticated requests when no authentication is configured.
    pub default_username: String,
    /// Act as the default user even for authenticated callers.
    pub force_default_username: bool,
    /// HTTPS identity.
    pub tls: TlsIdentity,
    /// CA of client certificates, when mTLS identifies users.
    pub clients_ca_cert_file: Option<PathBuf>,
    /// JWT providers.
    pub jwt_providers: Vec<JwtProvider>,
    /// Where access rights and KMS keys are kept.
    pub database: Database,
    /// hsmd's socket.
    pub hsmd_socket: PathBuf,
    /// Connections to hsmd.
    pub hsmd_connections: usize,
    /// Requests in flight to hsmd at once.
    pub hsmd_max_in_flight: usize,
    /// HTTP connections open at once.
    pub max_connections: usize,
    /// HTTP connections of one client address at once.
    pub max_connections_per_peer: usize,
    /// HTTP connections of one client address that have not sent their
    /// first request's headers.
    pub max_pending_per_peer: usize,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// KMS keys: the server KEK, unwrap defaults, the unwrapped cache.
    pub kms_keys: KmsKeysConfig,
}

/// Where access rights and KMS objects are kept (`[db] database_type`).
#[derive(Clone)]
pub enum Database {
    /// SQLite: this file (one frontend).
    Sqlite(PathBuf),
    /// PostgreSQL at this URL (several frontends). The URL may hold a
    /// password: Debug does not show it.
    Postgres(SecretString),
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Database::Postgres(_) => f.write_str("Postgres(<database_url>)"),
        }
    }
}

/// How KMS keys (keys kept in the database, wrapped by HSM keys) are
/// wrapped, exported and cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsKeysConfig {
    /// The server key encryption key, `hsm::<slot>::<label>`, if any.
    pub key_encryption_key: Option<String>,
    /// KMIP Object Type names a Get returns unwrapped by default.
    pub default_unwrap_type: Vec<String>,
    /// How long an unwrapped key stays cached after its unwrap.
    pub unwrapped_cache_max_age: std::time::Duration,
    /// How many unwrapped keys are cached at once.
    pub unwrapped_cache_max_size: u64,
}

/// The object types `default_unwrap_type` may name (KMIP 2.1 section 11.26).
pub const UNWRAP_TYPES: &[&str] = &["SymmetricKey", "SecretData", "PrivateKey", "PublicKey"];

/// Reads `args.config` (when given) and merges the flags over it.
///
/// Errors: [`ConfigError`], one sentence each.
pub fn load(args: Args) -> Result<Config, ConfigError> {
    let file = match &args.config {
        Some(path) => read_file(path)?,
        None => file::FileConfig::default(),
    };
    merge(args, file)
}

fn read_file(path: &Path) -> Result<file::FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|reason| ConfigError::Read {
        path: path.to_owned(),
        reason,
    })?;
    parse_file(path, &text)
}

/// Parses the TOML `text` of `path`: refuses the reference's `hsm_*` keys
/// first, then unknown keys.
pub fn parse_file(path: &Path, text: &str) -> Result<file::FileConfig, ConfigError> {
    let parse_error = |e: toml::de::Error| ConfigError::Parse {
        path: path.to_owned(),
        // The line number and the message only: TOML errors quote the
        // offending line, which may hold a password.
        message: match e.span() {
            Some(span) => {
                let start = span.start.min(text.len());
                let line = text[..start].lines().count().max(1);
                // A type error quotes the value: never when it is a password.
                let on_password = text[start..]
                    .lines()
                    .next()
                    .into_iter()
                    .chain(text[..start].lines().last())
                    .any(|l| l.contains("password"));
                if on_password {
                    format!("line {line}: tls_p12_password must be a string (in quotes)")
                } else {
                    format!("line {line}: {}", e.message())
                }
            }
            None => e.message().to_owned(),
        },
    };
    let table: toml::Table = toml::from_str(text).map_err(parse_error)?;
    if let Some(key) = table.keys().find(|k| k.starts_with("hsm_")) {
        return Err(ConfigError::HsmKey {
            path: path.to_owned(),
            key: key.clone(),
        });
    }
    toml::from_str(text).map_err(parse_error)
}

/// Merges the flags `args` over the parsed file `file` and checks the
/// result (what [`load`] does after [`parse_file`]); reads no file.
///
/// Sections are checked in this order: `[db]`, `[tls]`, `[idp_auth]`,
/// `[http]` with the default user, the connection limits, hsmd.
///
/// Errors: [`ConfigError::Invalid`], one sentence naming the key and what
/// would be accepted.
pub fn merge(mut args: Args, mut file: file::FileConfig) -> Result<Config, ConfigError> {
    let mut db = file.db.take().unwrap_or_default();
    let kms_keys = merge_kms_keys(&mut args, &mut file, &mut db)?;
    let database = merge_db(&mut args, db)?;
    let (tls, clients_ca_cert_file) = merge_tls(&mut args, file.tls.take().unwrap_or_default())?;
    let jwt_providers = merge_idp_auth(&mut args, file.idp_auth.take().unwrap_or_default())?;
    let authenticated = clients_ca_cert_file.is_some() || !jwt_providers.is_empty();
    let (hostname, port, default_username) = merge_http(&mut args, &mut file, authenticated)?;
    let (max_connections, max_connections_per_peer, max_pending_per_peer) =
        merge_connection_limits(&args, &file)?;
    let (hsmd_socket, hsmd_connections, hsmd_max_in_flight) = merge_hsmd(&mut args, &mut file)?;
    Ok(Config {
        hostname,
        port,
        default_username,
        force_default_username: args.force_default_username
            || file.force_default_username.unwrap_or(false),
        tls,
        clients_ca_cert_file,
        jwt_providers,
        database,
        hsmd_socket,
        hsmd_connections,
        hsmd_max_in_flight,
        max_connections,
        max_connections_per_peer,
        max_pending_per_peer,
        max_body_bytes: positive(
            "max_body_bytes",
            args.max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(2 << 20),
        )?,
        kms_keys,
    })
}

/// The KMS keys' settings: `key_encryption_key` (an `hsm::<slot>::<label>`
/// uid), `default_unwrap_type` (names of [`UNWRAP_TYPES`]; flags replace the
/// file's list), and from `[db]` `unwrapped_cache_max_age` (minutes, default
/// 15, at least 1) and `unwrapped_cache_max_size` (default 1000, at least 1).
fn merge_kms_keys(
    args: &mut Args,
    file: &mut file::FileConfig,
    db: &mut file::DbSection,
) -> Result<KmsKeysConfig, ConfigError> {
    let key_encryption_key = args
        .key_encryption_key
        .take()
        .or(file.key_encryption_key.take());
    if let Some(kek) = &key_encryption_key {
        // The uid must parse as hsmd parses it (a label with a raw control
        // character or of more than 128 bytes would be accepted here and
        // then fail every Create and Import with a 422 blaming the caller).
        hsmd_protocol::KeyUid::parse(kek).map_err(|e| {
            ConfigError::Invalid(format!(
                "key_encryption_key {:?} is not an HSM key's uid: {e}",
                kek.chars().take(80).collect::<String>()
            ))
        })?;
    }
    let default_unwrap_type = if args.default_unwrap_type.is_empty() {
        file.default_unwrap_type.take().unwrap_or_default()
    } else {
        std::mem::take(&mut args.default_unwrap_type)
    };
    if let Some(bad) = default_unwrap_type
        .iter()
        .find(|t| !UNWRAP_TYPES.contains(&t.as_str()))
    {
        return Err(ConfigError::Invalid(format!(
            "default_unwrap_type {:?} is not an object type this KMS stores; accepted: {}",
            bad.chars().take(40).collect::<String>(),
            UNWRAP_TYPES.join(", ")
        )));
    }
    let minutes = positive(
        "unwrapped_cache_max_age",
        args.unwrapped_cache_max_age
            .or(db.unwrapped_cache_max_age)
            .unwrap_or(15) as usize,
    )?;
    let size = positive(
        "unwrapped_cache_max_size",
        args.unwrapped_cache_max_size
            .or(db.unwrapped_cache_max_size)
            .unwrap_or(1000) as usize,
    )?;
    Ok(KmsKeysConfig {
        key_encryption_key,
        default_unwrap_type,
        unwrapped_cache_max_age: std::time::Duration::from_secs(
            (minutes as u64).saturating_mul(60),
        ),
        unwrapped_cache_max_size: size as u64,
    })
}

/// `v`, or [`ConfigError::Invalid`] naming `name` when `v` is 0.
fn positive(name: &str, v: usize) -> Result<usize, ConfigError> {
    if v == 0 {
        Err(ConfigError::Invalid(format!(
            "{name} must be at least 1, got 0"
        )))
    } else {
        Ok(v)
    }
}

/// `[db]`: `database_type` `sqlite` (the default) with the file `kms.db`
/// in `sqlite_path` (default `./sqlite-data`) unless `sqlite_path` itself
/// ends in `.db`; or `postgresql` with `database_url` (the reference's
/// keys). Errors on another type, a missing or stray `database_url`, or
/// `sqlite_path` naming another regular file.
fn merge_db(args: &mut Args, db: file::DbSection) -> Result<Database, ConfigError> {
    let database_type = args
        .database_type
        .take()
        .or(db.database_type)
        .unwrap_or_else(|| "sqlite".into());
    let url = args.database_url.take().or(db.database_url);
    match (database_type.as_str(), url) {
        ("postgresql", Some(url)) => Ok(Database::Postgres(SecretString::from(url))),
        ("postgresql", None) => Err(ConfigError::Invalid(
            "database_type \"postgresql\" needs database_url = \"postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE\" (in [db] or --database-url)".into(),
        )),
        ("sqlite", Some(_)) => Err(ConfigError::Invalid(
            "database_url is set but database_type is \"sqlite\": set database_type = \"postgresql\" to use it, or remove it".into(),
        )),
        ("sqlite", None) => {
            let sqlite_path = args
                .sqlite_path
                .take()
                .or(db.sqlite_path)
                .unwrap_or_else(|| PathBuf::from("./sqlite-data"));
            sqlite_file(sqlite_path).map(Database::Sqlite)
        }
        (other, _) => Err(ConfigError::Invalid(format!(
            "database_type {:?} is not supported: use \"sqlite\" (one frontend) or \"postgresql\" (several frontends on one database)",
            crate::error::printable(other)
        ))),
    }
}

/// The SQLite file of `sqlite_path`: itself when it ends in `.db`, else
/// `kms.db` in that directory. Errors when it names another regular file.
fn sqlite_file(sqlite_path: PathBuf) -> Result<PathBuf, ConfigError> {
    if sqlite_path.extension().is_some_and(|e| e == "db") {
        Ok(sqlite_path)
    } else if sqlite_path.is_file() {
        Err(ConfigError::Invalid(format!(
            "sqlite_path {} is a regular file, not a directory: give the directory the database kms.db lives in, or a file name ending in .db",
            sqlite_path.display()
        )))
    } else {
        Ok(sqlite_path.join("kms.db"))
    }
}

/// `[tls]`: the server identity (see [`tls_identity`]) and the CA of client
/// certificates. Errors on an incomplete or doubled identity, and on
/// `clients_ca_cert_file` without HTTPS.
fn merge_tls(
    args: &mut Args,
    tls: file::TlsSection,
) -> Result<(TlsIdentity, Option<PathBuf>), ConfigError> {
    let tls_identity = tls_identity(
        args.tls_p12_file.take().or(tls.tls_p12_file),
        args.tls_p12_password.take().or(tls.tls_p12_password),
        args.tls_cert_file.take().or(tls.tls_cert_file),
        args.tls_key_file.take().or(tls.tls_key_file),
        args.tls_chain_file.take().or(tls.tls_chain_file),
    )?;
    let clients_ca_cert_file = args
        .clients_ca_cert_file
        .take()
        .or(tls.clients_ca_cert_file);
    if clients_ca_cert_file.is_some() && matches!(tls_identity, TlsIdentity::None) {
        return Err(ConfigError::Invalid(
            "clients_ca_cert_file needs HTTPS: also give tls_p12_file (with tls_p12_password) or tls_cert_file and tls_key_file".into(),
        ));
    }
    Ok((tls_identity, clients_ca_cert_file))
}

/// `[idp_auth]`: the JWT providers (flags replace the file's list), each
/// parsed by [`parse_jwt_provider`].
fn merge_idp_auth(args: &mut Args, idp: file::IdpSection) -> Result<Vec<JwtProvider>, ConfigError> {
    let providers = if args.jwt_auth_provider.is_empty() {
        idp.jwt_auth_provider.unwrap_or_default()
    } else {
        std::mem::take(&mut args.jwt_auth_provider)
    };
    providers
        .iter()
        .map(|p| parse_jwt_provider(p))
        .collect::<Result<Vec<_>, _>>()
}

/// `[http]` and `default_username`: the listening address (default
/// [`DEFAULT_HOSTNAME`]), port (default [`DEFAULT_PORT`]) and the default
/// user (default `admin`). Errors with [`ConfigError::OpenToTheNetwork`]
/// when nothing is `authenticated` and the address is not loopback.
fn merge_http(
    args: &mut Args,
    file: &mut file::FileConfig,
    authenticated: bool,
) -> Result<(String, u16, String), ConfigError> {
    let http = file.http.take().unwrap_or_default();
    let hostname = args
        .hostname
        .take()
        .or(http.hostname)
        .unwrap_or_else(|| DEFAULT_HOSTNAME.into());
    let port = args.port.or(http.port).unwrap_or(DEFAULT_PORT);
    let default_username = args
        .default_username
        .take()
        .or(file.default_username.take())
        .unwrap_or_else(|| "admin".into());
    if !authenticated && !is_loopback(&hostname, port) {
        return Err(ConfigError::OpenToTheNetwork {
            hostname,
            user: default_username,
        });
    }
    Ok((hostname, port, default_username))
}

/// `max_connections` (default 512), `max_connections_per_peer` (default
/// [`DEFAULT_MAX_CONNECTIONS_PER_PEER`], at most `max_connections`) and
/// `max_pending_per_peer` (default [`DEFAULT_MAX_PENDING_PER_PEER`], at most
/// `max_connections_per_peer`). Errors when one is 0.
fn merge_connection_limits(
    args: &Args,
    file: &file::FileConfig,
) -> Result<(usize, usize, usize), ConfigError> {
    let max_connections = positive(
        "max_connections",
        args.max_connections.or(file.max_connections).unwrap_or(512),
    )?;
    let max_connections_per_peer = positive(
        "max_connections_per_peer",
        args.max_connections_per_peer
            .or(file.max_connections_per_peer)
            .unwrap_or(DEFAULT_MAX_CONNECTIONS_PER_PEER)
            .min(max_connections),
    )?;
    let max_pending_per_peer = positive(
        "max_pending_per_peer",
        args.max_pending_per_peer
            .or(file.max_pending_per_peer)
            .unwrap_or(DEFAULT_MAX_PENDING_PER_PEER)
            .min(max_connections_per_peer),
    )?;
    Ok((
        max_connections,
        max_connections_per_peer,
        max_pending_per_peer,
    ))
}

/// hsmd: its socket (default [`DEFAULT_HSMD_SOCKET`]), the connections to
/// it (default 4) and the requests in flight to it (default 256). Errors
/// when a count is 0.
fn merge_hsmd(
    args: &mut Args,
    file: &mut file::FileConfig,
) -> Result<(PathBuf, usize, usize), ConfigError> {
    let hsmd_socket = args
        .hsmd_socket
        .take()
        .or(file.hsmd_socket.take())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_HSMD_SOCKET));
    let hsmd_connections = positive(
        "hsmd_connections",
        args.hsmd_connections.or(file.hsmd_connections).unwrap_or(4),
    )?;
    let hsmd_max_in_flight = positive(
        "hsmd_max_in_flight",
        args.hsmd_max_in_flight
            .or(file.hsmd_max_in_flight)
            .unwrap_or(256),
    )?;
    Ok((hsmd_socket, hsmd_connections, hsmd_max_in_flight))
}

/// True when every address `hostname` names is a loopback address
/// (127.0.0.0/8, ::1; `localhost` resolved by the system). A name that does
/// not resolve counts as not loopback.
pub fn is_loopback(hostname: &str, port: u16) -> bool {
    use std::net::{IpAddr, ToSocketAddrs};
    let bare = hostname.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return ip.is_loopback();
    }
    match (hostname, port).to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<_> = addrs.collect();
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
        }
        Err(_) => false,
    }
}

fn tls_identity(
    p12: Option<PathBuf>,
    p12_password: Option<SecretString>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    chain: Option<PathBuf>,
) -> Result<TlsIdentity, ConfigError> {
    match (p12, cert, key) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(ConfigError::Invalid(
            "give the server identity either as tls_p12_file or as tls_cert_file + tls_key_file, not both".into(),
        )),
        (Some(file), None, None) => Ok(TlsIdentity::P12 {
            file,
            password: p12_password.unwrap_or_else(|| SecretString::from("")),
        }),
        (None, Some(cert), Some(key)) => Ok(TlsIdentity::Pem { cert, key, chain }),
        (None, Some(_), None) => Err(ConfigError::Invalid(
            "tls_cert_file needs tls_key_file (the server's private key, PEM)".into(),
        )),
        (None, None, Some(_)) => Err(ConfigError::Invalid(
            "tls_key_file needs tls_cert_file (the server's certificate, PEM)".into(),
        )),
        (None, None, None) if chain.is_some() => Err(ConfigError::Invalid(
            "tls_chain_file needs tls_cert_file and tls_key_file".into(),
        )),
        (None, None, None) => Ok(TlsIdentity::None),
    }
}

/// Parses `ISSUER,JWKS_URI[,AUDIENCE]`.
///
/// Errors: [`ConfigError::Invalid`] naming the value and the expected shape.
pub fn parse_jwt_provider(value: &str) -> Result<JwtProvider, ConfigError> {
    let parts: Vec<&str> = value.split(',').map(str::trim).collect();
    match parts.as_slice() {
        [issuer, jwks] | [issuer, jwks, ""] if !issuer.is_empty() && !jwks.is_empty() => {
            Ok(JwtProvider {
                issuer: (*issuer).into(),
                jwks_uri: (*jwks).into(),
                audience: None,
            })
        }
        [issuer, jwks, audience] if !issuer.is_empty() && !jwks.is_empty() => Ok(JwtProvider {
            issuer: (*issuer).into(),
            jwks_uri: (*jwks).into(),
            audience: Some((*audience).into()),
        }),
        _ => Err(ConfigError::Invalid(format!(
            "jwt_auth_provider {value:?} is not ISSUER,JWKS_URI[,AUDIENCE] (e.g. \"https://idp.example/,https://idp.example/.well-known/jwks.json,kms\")"
        ))),
    }
}

#[cfg(test)]
mod tests;
