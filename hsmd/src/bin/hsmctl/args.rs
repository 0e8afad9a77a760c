//! The command line of hsmctl: the clap types, the value parsers, and the
//! conversions of argument text into protocol values.

use crate::show::shown;
use anyhow::{Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use clap::builder::TypedValueParser;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Parser, Subcommand, ValueEnum};
use hsmd_protocol::b64::SecretBytes;
use hsmd_protocol::{Curve, KeyKind, KeyUid, UidError};
use std::path::PathBuf;

/// Local client of hsmd.
#[derive(Debug, Parser)]
#[command(name = "hsmctl", version)]
pub(crate) struct Args {
    /// hsmd socket.
    #[arg(
        long,
        global = true,
        default_value = "/run/hsmd/hsmd.sock",
        env = "HSMD_SOCKET"
    )]
    pub(crate) socket: PathBuf,
    /// Print results as JSON (the protocol's result objects).
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Act for this KMS user (only for peers listed in hsmd's frontends).
    #[arg(long, global = true)]
    pub(crate) as_user: Option<String>,
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub(crate) enum KindArg {
    Aes,
    RsaPrivate,
    RsaPublic,
    EcPrivate,
    EcPublic,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum CurveArg {
    P256,
    P384,
    P521,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CreateCmd {
    /// AES key.
    Aes {
        #[arg(long)]
        slot: u64,
        #[arg(long)]
        label: String,
        /// 128, 192 or 256.
        #[arg(long, default_value_t = 256)]
        bits: u32,
        #[arg(long)]
        extractable: bool,
    },
    /// RSA key pair (private LABEL, public LABEL_pk).
    Rsa {
        #[arg(long)]
        slot: u64,
        #[arg(long)]
        label: String,
        /// 2048, 3072 or 4096.
        #[arg(long, default_value_t = 2048)]
        bits: u32,
        #[arg(long)]
        extractable: bool,
    },
    /// EC key pair (private LABEL, public LABEL_pk).
    Ec {
        #[arg(long)]
        slot: u64,
        #[arg(long)]
        label: String,
        #[arg(long, value_enum, default_value = "p256")]
        curve: CurveArg,
        #[arg(long)]
        extractable: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum Cmd {
    /// Library, slots, tokens, PIN flags.
    Status,
    /// Configured slots as the hello reports them, and who hsmd thinks you are.
    Slots,
    /// List keys.
    Keys {
        #[arg(long)]
        slot: Option<u64>,
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
    },
    /// Show one key.
    Key {
        #[arg(value_parser = UidArg)]
        uid: String,
    },
    /// Create a key (hsm_admin only).
    #[command(subcommand)]
    Create(CreateCmd),
    /// Encrypt; data from --data (UTF-8) or --data-b64, else stdin.
    Encrypt(EncryptArgs),
    /// Decrypt; prints the plaintext (raw bytes unless --json).
    Decrypt(DecryptArgs),
    /// Sign; data from --data (UTF-8) or --data-b64, else stdin.
    Sign(SignArgs),
    /// Verify a signature; exit 0 when valid, 1 when not.
    Verify(VerifyArgs),
    /// Export a key: PEM for public keys, base64 otherwise.
    Export {
        #[arg(value_parser = UidArg)]
        uid: String,
    },
    /// Random bytes from the token, base64.
    Random {
        #[arg(default_value_t = 32)]
        len: u32,
        #[arg(long)]
        slot: Option<u64>,
    },
    /// Destroy a key (hsm_admin only).
    Destroy {
        #[arg(value_parser = UidArg)]
        uid: String,
    },
    /// Any operation of the protocol by its name, with its params as a JSON
    /// object (docs/protocol.md "Operations"); prints the result as JSON.
    /// Reaches every operation hsmd serves, also those without a command
    /// of their own here.
    Call {
        /// The operation's name, e.g. get_key.
        op: String,
        /// Its params, e.g. '{"uid":"hsm::0::payroll"}'; default {}.
        params: Option<String>,
    },
}

// The arguments of the subcommands that have many; no doc comments on the
// structs, so the help shows the variant's text only.

#[derive(Debug, clap::Args)]
pub(crate) struct EncryptArgs {
    #[arg(value_parser = UidArg)]
    pub(crate) uid: String,
    /// aes_gcm, aes_cbc_pad, rsa_oaep_sha256, rsa_oaep_sha1, rsa_pkcs1v15.
    #[arg(long, default_value = "aes_gcm")]
    pub(crate) algorithm: String,
    #[arg(long)]
    pub(crate) data: Option<String>,
    #[arg(long)]
    pub(crate) data_b64: Option<String>,
    #[arg(long)]
    pub(crate) aad_b64: Option<String>,
    #[arg(long)]
    pub(crate) iv_b64: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct DecryptArgs {
    #[arg(value_parser = UidArg)]
    pub(crate) uid: String,
    #[arg(long, default_value = "aes_gcm")]
    pub(crate) algorithm: String,
    #[arg(long)]
    pub(crate) ciphertext_b64: String,
    #[arg(long)]
    pub(crate) iv_b64: Option<String>,
    #[arg(long)]
    pub(crate) tag_b64: Option<String>,
    #[arg(long)]
    pub(crate) aad_b64: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct SignArgs {
    #[arg(value_parser = UidArg)]
    pub(crate) uid: String,
    /// rsa_pkcs1v15_sha256|384|512, rsa_pss_sha256|384|512, ecdsa_sha256|384|512.
    #[arg(long)]
    pub(crate) algorithm: String,
    #[arg(long)]
    pub(crate) data: Option<String>,
    #[arg(long)]
    pub(crate) data_b64: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    #[arg(value_parser = UidArg)]
    pub(crate) uid: String,
    #[arg(long)]
    pub(crate) algorithm: String,
    #[arg(long)]
    pub(crate) data: Option<String>,
    #[arg(long)]
    pub(crate) data_b64: Option<String>,
    #[arg(long)]
    pub(crate) signature_b64: String,
}

pub(crate) fn b64(s: &str, what: &str) -> Result<Vec<u8>> {
    STANDARD
        .decode(s.trim())
        .with_context(|| format!("--{what} is not standard base64"))
}

pub(crate) fn opt_b64(s: &Option<String>, what: &str) -> Result<Option<Vec<u8>>> {
    s.as_deref().map(|v| b64(v, what)).transpose()
}

pub(crate) fn input(data: &Option<String>, data_b64: &Option<String>) -> Result<SecretBytes> {
    Ok(SecretBytes::new(match (data, data_b64) {
        (Some(d), _) => d.as_bytes().to_vec(),
        (None, Some(b)) => b64(b, "data-b64")?,
        (None, None) => {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
                .context("cannot read stdin")?;
            buf
        }
    }))
}

pub(crate) fn enum_arg<T: serde::de::DeserializeOwned>(v: &str, what: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(v.to_owned()))
        .map_err(|e| anyhow::anyhow!("--{what}: {e}"))
}

pub(crate) fn kind(k: KindArg) -> KeyKind {
    match k {
        KindArg::Aes => KeyKind::Aes,
        KindArg::RsaPrivate => KeyKind::RsaPrivate,
        KindArg::RsaPublic => KeyKind::RsaPublic,
        KindArg::EcPrivate => KeyKind::EcPrivate,
        KindArg::EcPublic => KeyKind::EcPublic,
    }
}

pub(crate) fn curve(c: CurveArg) -> Curve {
    match c {
        CurveArg::P256 => Curve::P256,
        CurveArg::P384 => Curve::P384,
        CurveArg::P521 => Curve::P521,
    }
}

/// A key uid argument, checked as hsmd checks it (docs/protocol.md "Keys").
pub(crate) fn uid_arg(text: &str) -> Result<String, UidError> {
    KeyUid::parse(text).map(|u| u.to_string())
}

/// The value parser of a key uid argument: [`uid_arg`], with the refused
/// text in clap's message shown escaped ([`shown`]) instead of raw, so a
/// control character (an ESC sequence) never reaches the terminal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UidArg;

impl TypedValueParser for UidArg {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        uid_arg.parse_ref(cmd, arg, value).map_err(|mut e| {
            if let (ErrorKind::ValueValidation, Some(text)) = (e.kind(), value.to_str()) {
                e.insert(ContextKind::InvalidValue, ContextValue::String(shown(text)));
            }
            e
        })
    }
}
