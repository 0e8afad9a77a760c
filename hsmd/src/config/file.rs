//! The TOML configuration file (`/etc/hsmd/hsmd.toml`). Keys are the seed's
//! (`hsm_model`, `hsm_admin`, `hsm_slot`, `hsm_password`, `hsm_library`) plus
//! hsmd's own; see `docs/configuration.md`. Unknown keys are refused.

use super::Model;
use secrecy::SecretString;
use serde::Deserialize;
use std::path::PathBuf;

/// One name or a list of names (`hsm_admin = "admin"` or `["a", "b"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OneOrMany {
    /// A single name.
    One(String),
    /// A list.
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a user name or a list of user names (\"*\" for everyone)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut v = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    v.push(name);
                }
                Ok(OneOrMany::Many(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl OneOrMany {
    /// As a list.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

/// Every key the file may hold; all optional, flags override them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `smartcardhsm`, `softhsm2` or `other`.
    pub hsm_model: Option<Model>,
    /// Path of the PKCS#11 module, overriding the model's default.
    pub hsm_library: Option<PathBuf>,
    /// Who may create and destroy keys; `"*"` = every acting identity.
    pub hsm_admin: Option<OneOrMany>,
    /// PKCS#11 slot IDs.
    pub hsm_slot: Option<Vec<u64>>,
    /// Tokens instead of slot IDs: `"serial:<serial>"` or `"label:<label>"`
    /// (`CK_TOKEN_INFO`, PKCS#11 v2.40 section 3.2), paired with `hsm_password`.
    pub hsm_token: Option<Vec<String>>,
    /// User PINs, in `hsm_slot` order; `""` = null PIN, `"<NO_LOGIN>"` = no login.
    pub hsm_password: Option<Vec<SecretString>>,
    /// Socket path (default `/run/hsmd/hsmd.sock`).
    pub socket_path: Option<PathBuf>,
    /// Group owning the socket.
    pub socket_group: Option<String>,
    /// Socket permission bits as an octal string (default `"0660"`).
    pub socket_mode: Option<String>,
    /// Unix users and `@groups` allowed to connect (root always is).
    pub clients: Option<Vec<String>>,
    /// Unix users that may act for KMS users with `as_user`.
    pub frontends: Option<Vec<String>>,
    /// Sessions (and threads) per slot (default 1 for smartcardhsm, else 4).
    pub sessions_per_slot: Option<usize>,
    /// Largest frame body in bytes (default 1 MiB).
    pub max_frame_len: Option<usize>,
    /// Requests in flight per connection (default 64).
    pub max_in_flight: Option<usize>,
    /// Seconds a client has to send its hello (default 5).
    pub handshake_timeout_secs: Option<u64>,
    /// Seconds a started frame may take to arrive completely (default 10).
    pub frame_timeout_secs: Option<u64>,
    /// Connections at once, all peers together (default 128).
    pub max_connections: Option<usize>,
    /// Connections at once from one unix user (default 32).
    pub max_connections_per_user: Option<usize>,
    /// Bytes of requests in flight per connection (default 4 MiB).
    pub max_in_flight_bytes: Option<usize>,
    /// Seconds SIGTERM waits for connections to take their answers (default 10).
    pub shutdown_timeout_secs: Option<u64>,
    /// Jobs waiting per slot before senders wait (default 256).
    pub queue_depth: Option<usize>,
    /// User hsmd switches to when started as root (default `hsmd`).
    pub user: Option<String>,
    /// Group hsmd switches to when started as root (default `hsmd`).
    pub group: Option<String>,
    /// Supplementary groups kept after the switch, e.g. to reach pcscd (default none).
    pub keep_groups: Option<Vec<String>>,
}
