//! The TOML configuration file (`-c`, `COSMIAN_KMS_CONF`), laid out as the
//! Cosmian KMS lays out its `kms.toml`: top-level user keys, `[http]`,
//! `[tls]`, `[db]`, `[idp_auth]`, plus our `hsmd_socket`. Unknown keys are
//! refused; the reference's `hsm_*` keys are refused with a pointer to hsmd.

use serde::Deserialize;
use std::path::PathBuf;

/// Every key the file may hold; flags override them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See `--default-username`.
    pub default_username: Option<String>,
    /// See `--force-default-username`.
    pub force_default_username: Option<bool>,
    /// See `--hsmd-socket`.
    pub hsmd_socket: Option<PathBuf>,
    /// See `--hsmd-connections`.
    pub hsmd_connections: Option<usize>,
    /// See `--hsmd-max-in-flight`.
    pub hsmd_max_in_flight: Option<usize>,
    /// See `--max-connections`.
    pub max_connections: Option<usize>,
    /// See `--max-connections-per-peer`.
    pub max_connections_per_peer: Option<usize>,
    /// See `--max-pending-per-peer`.
    pub max_pending_per_peer: Option<usize>,
    /// See `--max-body-bytes`.
    pub max_body_bytes: Option<usize>,
    /// See `--key-encryption-key`.
    pub key_encryption_key: Option<String>,
    /// See `--default-unwrap-type`.
    pub default_unwrap_type: Option<Vec<String>>,
    /// `[http]`.
    pub http: Option<HttpSection>,
    /// `[tls]`.
    pub tls: Option<TlsSection>,
    /// `[db]`.
    pub db: Option<DbSection>,
    /// `[idp_auth]`.
    pub idp_auth: Option<IdpSection>,
}

/// `[http]`: where to listen.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// See `--port`.
    pub port: Option<u16>,
    /// See `--hostname`.
    pub hostname: Option<String>,
}

/// `[tls]`: server identity and client certificates.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// See `--tls-p12-file`.
    pub tls_p12_file: Option<PathBuf>,
    /// See `--tls-p12-password`.
    pub tls_p12_password: Option<secrecy::SecretString>,
    /// See `--tls-cert-file`.
    pub tls_cert_file: Option<PathBuf>,
    /// See `--tls-key-file`.
    pub tls_key_file: Option<PathBuf>,
    /// See `--tls-chain-file`.
    pub tls_chain_file: Option<PathBuf>,
    /// See `--clients-ca-cert-file`.
    pub clients_ca_cert_file: Option<PathBuf>,
}

/// `[db]`: the access-rights database.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbSection {
    /// See `--database-type`.
    pub database_type: Option<String>,
    /// See `--sqlite-path`.
    pub sqlite_path: Option<PathBuf>,
    /// See `--database-url`.
    pub database_url: Option<String>,
    /// See `--unwrapped-cache-max-age` (minutes).
    pub unwrapped_cache_max_age: Option<u64>,
    /// See `--unwrapped-cache-max-size`.
    pub unwrapped_cache_max_size: Option<u64>,
}

/// `[idp_auth]`: JWT identity providers.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdpSection {
    /// See `--jwt-auth-provider`.
    pub jwt_auth_provider: Option<Vec<String>>,
}
