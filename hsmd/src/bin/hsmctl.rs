//! `hsmctl`: the operator's local client of hsmd (docs/protocol.md). Human-readable
//! output by default, `--json` for scripts. Exits 0 on success, 1 with the
//! error code and message on stderr otherwise.

// No unwrap, expect or panic outside tests: bad input gets an answer, never
// a crash (docs/design.md "Rules").
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use anyhow::{Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use clap::builder::TypedValueParser;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Parser, Subcommand, ValueEnum};
use hsmd_protocol::b64::SecretBytes;
use hsmd_protocol::*;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Local client of hsmd.
#[derive(Debug, Parser)]
#[command(name = "hsmctl", version)]
struct Args {
    /// hsmd socket.
    #[arg(
        long,
        global = true,
        default_value = "/run/hsmd/hsmd.sock",
        env = "HSMD_SOCKET"
    )]
    socket: PathBuf,
    /// Print results as JSON (the protocol's result objects).
    #[arg(long, global = true)]
    json: bool,
    /// Act for this KMS user (only for peers listed in hsmd's frontends).
    #[arg(long, global = true)]
    as_user: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
enum KindArg {
    Aes,
    RsaPrivate,
    RsaPublic,
    EcPrivate,
    EcPublic,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CurveArg {
    P256,
    P384,
    P521,
}

#[derive(Debug, Subcommand)]
enum CreateCmd {
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
enum Cmd {
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
struct EncryptArgs {
    #[arg(value_parser = UidArg)]
    uid: String,
    /// aes_gcm, aes_cbc_pad, rsa_oaep_sha256, rsa_oaep_sha1, rsa_pkcs1v15.
    #[arg(long, default_value = "aes_gcm")]
    algorithm: String,
    #[arg(long)]
    data: Option<String>,
    #[arg(long)]
    data_b64: Option<String>,
    #[arg(long)]
    aad_b64: Option<String>,
    #[arg(long)]
    iv_b64: Option<String>,
}

#[derive(Debug, clap::Args)]
struct DecryptArgs {
    #[arg(value_parser = UidArg)]
    uid: String,
    #[arg(long, default_value = "aes_gcm")]
    algorithm: String,
    #[arg(long)]
    ciphertext_b64: String,
    #[arg(long)]
    iv_b64: Option<String>,
    #[arg(long)]
    tag_b64: Option<String>,
    #[arg(long)]
    aad_b64: Option<String>,
}

#[derive(Debug, clap::Args)]
struct SignArgs {
    #[arg(value_parser = UidArg)]
    uid: String,
    /// rsa_pkcs1v15_sha256|384|512, rsa_pss_sha256|384|512, ecdsa_sha256|384|512.
    #[arg(long)]
    algorithm: String,
    #[arg(long)]
    data: Option<String>,
    #[arg(long)]
    data_b64: Option<String>,
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    #[arg(value_parser = UidArg)]
    uid: String,
    #[arg(long)]
    algorithm: String,
    #[arg(long)]
    data: Option<String>,
    #[arg(long)]
    data_b64: Option<String>,
    #[arg(long)]
    signature_b64: String,
}

fn b64(s: &str, what: &str) -> Result<Vec<u8>> {
    STANDARD
        .decode(s.trim())
        .with_context(|| format!("--{what} is not standard base64"))
}

fn opt_b64(s: &Option<String>, what: &str) -> Result<Option<Vec<u8>>> {
    s.as_deref().map(|v| b64(v, what)).transpose()
}

fn input(data: &Option<String>, data_b64: &Option<String>) -> Result<SecretBytes> {
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

fn enum_arg<T: serde::de::DeserializeOwned>(v: &str, what: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(v.to_owned()))
        .map_err(|e| anyhow::anyhow!("--{what}: {e}"))
}

fn kind(k: KindArg) -> KeyKind {
    match k {
        KindArg::Aes => KeyKind::Aes,
        KindArg::RsaPrivate => KeyKind::RsaPrivate,
        KindArg::RsaPublic => KeyKind::RsaPublic,
        KindArg::EcPrivate => KeyKind::EcPrivate,
        KindArg::EcPublic => KeyKind::EcPublic,
    }
}

fn curve(c: CurveArg) -> Curve {
    match c {
        CurveArg::P256 => Curve::P256,
        CurveArg::P384 => Curve::P384,
        CurveArg::P521 => Curve::P521,
    }
}

/// A key uid argument, checked as hsmd checks it (docs/protocol.md "Keys").
fn uid_arg(text: &str) -> Result<String, UidError> {
    KeyUid::parse(text).map(|u| u.to_string())
}

/// The value parser of a key uid argument: [`uid_arg`], with the refused
/// text in clap's message shown escaped ([`shown`]) instead of raw, so a
/// control character (an ESC sequence) never reaches the terminal.
#[derive(Debug, Clone, Copy)]
struct UidArg;

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

/// Text from hsmd made safe for a terminal: control and invisible
/// formatting characters are shown escaped (`\u{1b}`), never raw.
fn shown(text: &str) -> String {
    text.chars()
        .map(|c| {
            if hsmd_protocol::uid::needs_escape(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn print_json<T: Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// The protocol's spelling of an enum value (`rsa_private`, `encrypt`, `p256`).
fn wire_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn key_line(k: &KeyInfo) -> String {
    let size = match k.curve {
        Some(c) => wire_name(&c),
        None => format!("{} bits", k.bits),
    };
    let flags = match (k.sensitive, k.extractable) {
        (true, _) => "sensitive",
        (false, true) => "extractable",
        (false, false) => "non-extractable",
    };
    let usages: Vec<String> = k.usages.iter().map(wire_name).collect();
    format!(
        "{:<40} {:<12} {:<10} {:<16} {}",
        shown(&k.uid),
        wire_name(&k.kind),
        size,
        flags,
        usages.join(",")
    )
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----"));
    out
}

/// What every subcommand needs: the connection, the KMS user to act for
/// (`--as-user`) and the output form (`--json`).
struct Ctl<'a> {
    client: &'a Client,
    who: Option<&'a str>,
    json: bool,
}

/// Connects to hsmd at `socket`; a failed connect names the fixes
/// (start hsmd, or point hsmctl at another socket).
async fn connect(socket: &std::path::Path) -> Result<Client> {
    Client::connect(socket, concat!("hsmctl/", env!("CARGO_PKG_VERSION")))
        .await
        .map_err(|e| match e {
            ClientError::Connect { .. } => anyhow::anyhow!(
                "{e}; is hsmd running? (`systemctl status hsmd`), or point hsmctl at another socket with --socket PATH or HSMD_SOCKET=PATH"
            ),
            e => e.into(),
        })
}

/// Runs one subcommand. `Ok(false)` only for `verify` of a signature
/// that is not valid; errors carry hsmd's code and message.
async fn run(args: Args) -> Result<bool> {
    let client = connect(&args.socket).await?;
    let ctl = Ctl {
        client: &client,
        who: args.as_user.as_deref(),
        json: args.json,
    };
    match args.cmd {
        Cmd::Status => status(&ctl).await?,
        Cmd::Slots => slots(&ctl)?,
        Cmd::Keys { slot, kind } => keys(&ctl, slot, kind).await?,
        Cmd::Key { uid } => key(&ctl, uid).await?,
        Cmd::Create(c) => create(&ctl, c).await?,
        Cmd::Encrypt(a) => encrypt(&ctl, a).await?,
        Cmd::Decrypt(a) => decrypt(&ctl, a).await?,
        Cmd::Sign(a) => sign(&ctl, a).await?,
        Cmd::Verify(a) => return verify(&ctl, a).await,
        Cmd::Export { uid } => export(&ctl, uid).await?,
        Cmd::Random { len, slot } => random(&ctl, len, slot).await?,
        Cmd::Destroy { uid } => destroy(&ctl, uid).await?,
        Cmd::Call { op, params } => call(&ctl, &op, params).await?,
    }
    Ok(true)
}

/// `status`: the PKCS#11 library and each slot's token and PIN flags.
async fn status(ctl: &Ctl<'_>) -> Result<()> {
    let s = ctl.client.call(ctl.who, &Status {}).await?;
    if ctl.json {
        return print_json(&s);
    }
    println!("model    {}", shown(&s.model));
    println!(
        "library  {} ({} {}, version {})",
        shown(&s.library.path),
        shown(&s.library.manufacturer),
        shown(&s.library.description),
        shown(&s.library.version)
    );
    for slot in s.slots {
        println!(
            "slot {}: state={} token {:?} serial {:?} present={} logged_in={} pin_count_low={} pin_final_try={} pin_locked={} ({} mechanisms){}",
            slot.slot, slot.state, slot.token_label, slot.serial, slot.present, slot.logged_in, slot.pin_count_low, slot.pin_final_try, slot.pin_locked, slot.mechanisms.len(),
            slot.last_error.as_deref().map(|e| format!("; last error: {}", shown(e))).unwrap_or_default()
        );
    }
    Ok(())
}

/// `slots`: the configured slots as hsmd's hello reports them, the admins,
/// and who hsmd thinks the caller is. Asks hsmd nothing beyond the hello.
fn slots(ctl: &Ctl<'_>) -> Result<()> {
    let h = ctl.client.server_hello();
    if ctl.json {
        return print_json(h);
    }
    println!(
        "server {} (protocol {}), model {}",
        shown(&h.server),
        h.version,
        shown(&h.model)
    );
    println!(
        "slots  {}",
        h.slots
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("admins {}", shown(&h.admins.join(", ")));
    println!(
        "you    {}{}",
        shown(&h.identity),
        if h.may_act_as_others {
            " (frontend)"
        } else {
            ""
        }
    );
    Ok(())
}

/// `keys`: one line per key, optionally of one slot and one kind.
async fn keys(ctl: &Ctl<'_>, slot: Option<u64>, k: Option<KindArg>) -> Result<()> {
    let r = ctl
        .client
        .call(
            ctl.who,
            &ListKeys {
                slot,
                kind: k.map(kind),
            },
        )
        .await?;
    if ctl.json {
        return print_json(&r);
    }
    for k in &r.keys {
        println!("{}", key_line(k));
    }
    Ok(())
}

/// `key UID`: the one key's line.
async fn key(ctl: &Ctl<'_>, uid: String) -> Result<()> {
    let k = ctl.client.call(ctl.who, &GetKey(KeyRef { uid })).await?;
    if ctl.json {
        return print_json(&k);
    }
    println!("{}", key_line(&k));
    Ok(())
}

/// `create aes|rsa|ec`: generates the key (or key pair) and prints a
/// `created` line for each key made.
async fn create(ctl: &Ctl<'_>, c: CreateCmd) -> Result<()> {
    let infos = generate(ctl, c).await?;
    if ctl.json {
        return print_json(&infos);
    }
    for k in &infos {
        println!("created {}", key_line(k));
    }
    Ok(())
}

/// Asks hsmd for the key `create` names: `generate_key` for AES (one key),
/// `generate_key_pair` for RSA and EC (the private key, then the public).
async fn generate(ctl: &Ctl<'_>, c: CreateCmd) -> Result<Vec<KeyInfo>> {
    let p = match c {
        CreateCmd::Aes {
            slot,
            label,
            bits,
            extractable,
        } => {
            let p = GenerateKey {
                slot,
                label,
                algorithm: SecretKeyAlgorithm::Aes,
                bits,
                extractable,
            };
            return Ok(vec![ctl.client.call(ctl.who, &p).await?]);
        }
        CreateCmd::Rsa {
            slot,
            label,
            bits,
            extractable,
        } => GenerateKeyPair {
            slot,
            label,
            algorithm: KeyPairAlgorithm::Rsa,
            bits: Some(bits),
            curve: None,
            extractable,
        },
        CreateCmd::Ec {
            slot,
            label,
            curve: c,
            extractable,
        } => GenerateKeyPair {
            slot,
            label,
            algorithm: KeyPairAlgorithm::Ec,
            bits: None,
            curve: Some(curve(c)),
            extractable,
        },
    };
    let r = ctl.client.call(ctl.who, &p).await?;
    Ok(vec![r.private, r.public])
}

/// `encrypt`: the ciphertext, and the IV and tag when the mechanism has
/// them, each base64.
async fn encrypt(ctl: &Ctl<'_>, a: EncryptArgs) -> Result<()> {
    let p = Encrypt {
        uid: a.uid,
        algorithm: enum_arg(&a.algorithm, "algorithm")?,
        plaintext: input(&a.data, &a.data_b64)?,
        aad: opt_b64(&a.aad_b64, "aad-b64")?,
        iv: opt_b64(&a.iv_b64, "iv-b64")?,
    };
    let r = ctl.client.call(ctl.who, &p).await?;
    if ctl.json {
        return print_json(&r);
    }
    println!("ciphertext {}", STANDARD.encode(&r.ciphertext));
    if let Some(iv) = &r.iv {
        println!("iv         {}", STANDARD.encode(iv));
    }
    if let Some(tag) = &r.tag {
        println!("tag        {}", STANDARD.encode(tag));
    }
    Ok(())
}

/// `decrypt`: the plaintext's raw bytes on stdout (no newline).
async fn decrypt(ctl: &Ctl<'_>, a: DecryptArgs) -> Result<()> {
    let p = Decrypt {
        uid: a.uid,
        algorithm: enum_arg(&a.algorithm, "algorithm")?,
        ciphertext: b64(&a.ciphertext_b64, "ciphertext-b64")?,
        iv: opt_b64(&a.iv_b64, "iv-b64")?,
        tag: opt_b64(&a.tag_b64, "tag-b64")?,
        aad: opt_b64(&a.aad_b64, "aad-b64")?,
    };
    let r = ctl.client.call(ctl.who, &p).await?;
    if ctl.json {
        return print_json(&r);
    }
    std::io::stdout().write_all(r.plaintext.expose())?;
    Ok(())
}

/// `sign`: the signature, base64.
async fn sign(ctl: &Ctl<'_>, a: SignArgs) -> Result<()> {
    let p = Sign {
        uid: a.uid,
        algorithm: enum_arg(&a.algorithm, "algorithm")?,
        data: input(&a.data, &a.data_b64)?,
    };
    let r = ctl.client.call(ctl.who, &p).await?;
    if ctl.json {
        return print_json(&r);
    }
    println!("{}", STANDARD.encode(&r.signature));
    Ok(())
}

/// `verify`: prints `valid` or `invalid`; `Ok(false)` when invalid, so
/// hsmctl exits 1.
async fn verify(ctl: &Ctl<'_>, a: VerifyArgs) -> Result<bool> {
    let p = Verify {
        uid: a.uid,
        algorithm: enum_arg(&a.algorithm, "algorithm")?,
        data: input(&a.data, &a.data_b64)?,
        signature: b64(&a.signature_b64, "signature-b64")?,
    };
    let r = ctl.client.call(ctl.who, &p).await?;
    if ctl.json {
        print_json(&r)?;
    } else {
        println!("{}", if r.valid { "valid" } else { "invalid" });
    }
    Ok(r.valid)
}

/// `export UID`: PEM for SPKI and PKCS#8 DER, base64 for raw key bytes.
async fn export(ctl: &Ctl<'_>, uid: String) -> Result<()> {
    let r = ctl.client.call(ctl.who, &Export(KeyRef { uid })).await?;
    if ctl.json {
        return print_json(&r);
    }
    match r.format {
        ExportFormat::SpkiDer => println!("{}", pem("PUBLIC KEY", r.data.expose())),
        ExportFormat::Pkcs8Der => println!("{}", pem("PRIVATE KEY", r.data.expose())),
        ExportFormat::Raw => println!("{}", STANDARD.encode(r.data.expose())),
    }
    Ok(())
}

/// `random LEN`: LEN bytes from the token, base64.
async fn random(ctl: &Ctl<'_>, len: u32, slot: Option<u64>) -> Result<()> {
    let r = ctl.client.call(ctl.who, &Random { len, slot }).await?;
    if ctl.json {
        return print_json(&r);
    }
    println!("{}", STANDARD.encode(r.bytes.expose()));
    Ok(())
}

/// `destroy UID`: names the key destroyed.
async fn destroy(ctl: &Ctl<'_>, uid: String) -> Result<()> {
    let r = ctl.client.call(ctl.who, &Destroy(KeyRef { uid })).await?;
    if ctl.json {
        return print_json(&r);
    }
    println!("destroyed {}", shown(&r.uid));
    Ok(())
}

/// `call OP [PARAMS]`: any operation by name, params checked as hsmd
/// checks them before sending; the result always as JSON.
async fn call(ctl: &Ctl<'_>, op: &str, params: Option<String>) -> Result<()> {
    let params: serde_json::Value = match params {
        Some(text) => serde_json::from_str(&text).context("params: not JSON")?,
        None => serde_json::Value::Object(serde_json::Map::new()),
    };
    // Checked here as hsmd checks it, for the same message sooner.
    hsmd_protocol::message::Operation::decode(op, Some(params.clone()))
        .map_err(ClientError::Server)?;
    let result = ctl
        .client
        .call_raw(op, ctl.who, &params)
        .await?
        .into_result::<serde_json::Value>()
        .map_err(ClientError::Server)?;
    print_json(&result)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hsmctl: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            match e.downcast_ref::<ClientError>().and_then(|c| match c {
                ClientError::Server(b) | ClientError::Refused(b) => Some(b.clone()),
                _ => None,
            }) {
                Some(body) => eprintln!("hsmctl: {}: {}", body.code, shown(&body.message)),
                None => eprintln!("hsmctl: {}", shown(&format!("{e:#}"))),
            }
            ExitCode::FAILURE
        }
    }
}
