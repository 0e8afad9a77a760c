//! Command-line flags, named as the Cosmian KMS server names them (plus
//! `--hsmd-socket`). Every flag is optional here: [`super::load`] merges
//! them over the TOML file and applies the defaults.

use clap::Parser;
use secrecy::SecretString;
use std::path::PathBuf;

/// Keeps a password flag out of `Debug` output.
fn secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value))
}

/// `kms-frontend`: the unprivileged KMS (KMIP 2.1 JSON over HTTP) whose
/// keys live in hsmd's tokens.
#[derive(Debug, Default, Parser)]
#[command(name = "kms-frontend", version, about)]
pub struct Args {
    /// TOML configuration file (its keys mirror these flags).
    #[arg(short = 'c', long, env = "COSMIAN_KMS_CONF")]
    pub config: Option<PathBuf>,
    /// TCP port to listen on [default: 9998].
    #[arg(long)]
    pub port: Option<u16>,
    /// Address to listen on [default: 127.0.0.1]. Another than loopback
    /// needs authentication (`--clients-ca-cert-file` or
    /// `--jwt-auth-provider`).
    #[arg(long)]
    pub hostname: Option<String>,
    /// The user of requests that carry no credentials when no authentication
    /// is configured [default: admin].
    #[arg(long)]
    pub default_username: Option<String>,
    /// Authenticate callers but act as the default user for all of them.
    #[arg(long)]
    pub force_default_username: bool,
    /// Server certificate and key as a PKCS#12 file (enables HTTPS).
    #[arg(long)]
    pub tls_p12_file: Option<PathBuf>,
    /// Password of `--tls-p12-file`.
    #[arg(long, env = "KMS_TLS_P12_PASSWORD", hide_env_values = true, value_parser = secret)]
    pub tls_p12_password: Option<SecretString>,
    /// Server certificate, PEM (enables HTTPS; with `--tls-key-file`).
    #[arg(long)]
    pub tls_cert_file: Option<PathBuf>,
    /// Server private key, PEM (PKCS#8, PKCS#1 or SEC1).
    #[arg(long)]
    pub tls_key_file: Option<PathBuf>,
    /// Intermediate certificates sent after the server certificate, PEM.
    #[arg(long)]
    pub tls_chain_file: Option<PathBuf>,
    /// CA whose TLS client certificates identify users (subject CN, else
    /// the email SAN). Needs HTTPS.
    #[arg(long)]
    pub clients_ca_cert_file: Option<PathBuf>,
    /// JWT identity provider as `ISSUER,JWKS_URI[,AUDIENCE]`; repeatable.
    /// JWKS_URI is an `https://` URL or a local file path.
    #[arg(long)]
    pub jwt_auth_provider: Vec<String>,
    /// Database of access rights and KMS keys: `sqlite` (one frontend) or
    /// `postgresql` (several frontends on one database) [default: sqlite].
    #[arg(long)]
    pub database_type: Option<String>,
    /// PostgreSQL URL, with `database_type = postgresql`:
    /// `postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=verify-full&sslrootcert=CA.pem]`.
    /// Prefer the file's `[db] database_url` (0640) when it holds a password:
    /// command lines are visible to every local user.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Directory (or `.db` file) of the SQLite database [default: ./sqlite-data].
    #[arg(long)]
    pub sqlite_path: Option<PathBuf>,
    /// hsmd's Unix socket [default: /run/hsmd/hsmd.sock].
    #[arg(long)]
    pub hsmd_socket: Option<PathBuf>,
    /// Connections kept open to hsmd [default: 4].
    #[arg(long)]
    pub hsmd_connections: Option<usize>,
    /// Requests in flight to hsmd at once, over all connections, before
    /// HTTP requests wait [default: 256].
    #[arg(long)]
    pub hsmd_max_in_flight: Option<usize>,
    /// HTTP connections open at once; more wait in the listen backlog
    /// [default: 512].
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// HTTP connections one client address may hold at once; its further
    /// ones are closed at once [default: 128, at most max_connections].
    #[arg(long)]
    pub max_connections_per_peer: Option<usize>,
    /// HTTP connections one client address may hold before their first
    /// request's headers are in (TLS handshake included); its further ones
    /// are closed at once [default: 64, at most max_connections_per_peer].
    #[arg(long)]
    pub max_pending_per_peer: Option<usize>,
    /// Largest HTTP request body in bytes; larger ones get 413 [default: 2 MiB].
    #[arg(long)]
    pub max_body_bytes: Option<usize>,
    /// The server key encryption key, `hsm::<slot>::<label>`: every KMS key
    /// created or imported without a wrapping key of its own is stored
    /// wrapped by it (the reference's `key_encryption_key`).
    #[arg(long)]
    pub key_encryption_key: Option<String>,
    /// Object types a Get returns unwrapped even when the client asks for
    /// them as registered: `SymmetricKey`, `SecretData`, `PrivateKey`,
    /// `PublicKey` (repeat the flag; the reference's `default_unwrap_type`).
    #[arg(long)]
    pub default_unwrap_type: Vec<String>,
    /// Minutes an unwrapped KMS key stays in memory after its unwrap
    /// [default: 15].
    #[arg(long)]
    pub unwrapped_cache_max_age: Option<u64>,
    /// Unwrapped KMS keys kept in memory at once [default: 1000].
    #[arg(long)]
    pub unwrapped_cache_max_size: Option<u64>,
}
