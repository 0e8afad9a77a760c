//! One function per hsmctl subcommand: the request to hsmd and the printing
//! of its answer.

use crate::args::{
    b64, curve, enum_arg, input, kind, opt_b64, CreateCmd, DecryptArgs, EncryptArgs, KindArg,
    SignArgs, VerifyArgs,
};
use crate::show::{key_line, pem, print_json, shown};
use anyhow::{Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hsmd_protocol::*;
use std::io::Write;

/// What every subcommand needs: the connection, the KMS user to act for
/// (`--as-user`) and the output form (`--json`).
pub(crate) struct Ctl<'a> {
    pub(crate) client: &'a Client,
    pub(crate) who: Option<&'a str>,
    pub(crate) json: bool,
}

/// `status`: the PKCS#11 library and each slot's token and PIN flags.
pub(crate) async fn status(ctl: &Ctl<'_>) -> Result<()> {
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
pub(crate) fn slots(ctl: &Ctl<'_>) -> Result<()> {
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
pub(crate) async fn keys(ctl: &Ctl<'_>, slot: Option<u64>, k: Option<KindArg>) -> Result<()> {
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
pub(crate) async fn key(ctl: &Ctl<'_>, uid: String) -> Result<()> {
    let k = ctl.client.call(ctl.who, &GetKey(KeyRef { uid })).await?;
    if ctl.json {
        return print_json(&k);
    }
    println!("{}", key_line(&k));
    Ok(())
}

/// `create aes|rsa|ec`: generates the key (or key pair) and prints a
/// `created` line for each key made.
pub(crate) async fn create(ctl: &Ctl<'_>, c: CreateCmd) -> Result<()> {
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
pub(crate) async fn generate(ctl: &Ctl<'_>, c: CreateCmd) -> Result<Vec<KeyInfo>> {
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
pub(crate) async fn encrypt(ctl: &Ctl<'_>, a: EncryptArgs) -> Result<()> {
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
pub(crate) async fn decrypt(ctl: &Ctl<'_>, a: DecryptArgs) -> Result<()> {
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
pub(crate) async fn sign(ctl: &Ctl<'_>, a: SignArgs) -> Result<()> {
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
pub(crate) async fn verify(ctl: &Ctl<'_>, a: VerifyArgs) -> Result<bool> {
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
pub(crate) async fn export(ctl: &Ctl<'_>, uid: String) -> Result<()> {
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
pub(crate) async fn random(ctl: &Ctl<'_>, len: u32, slot: Option<u64>) -> Result<()> {
    let r = ctl.client.call(ctl.who, &Random { len, slot }).await?;
    if ctl.json {
        return print_json(&r);
    }
    println!("{}", STANDARD.encode(r.bytes.expose()));
    Ok(())
}

/// `destroy UID`: names the key destroyed.
pub(crate) async fn destroy(ctl: &Ctl<'_>, uid: String) -> Result<()> {
    let r = ctl.client.call(ctl.who, &Destroy(KeyRef { uid })).await?;
    if ctl.json {
        return print_json(&r);
    }
    println!("destroyed {}", shown(&r.uid));
    Ok(())
}

/// `call OP [PARAMS]`: any operation by name, params checked as hsmd
/// checks them before sending; the result always as JSON.
pub(crate) async fn call(ctl: &Ctl<'_>, op: &str, params: Option<String>) -> Result<()> {
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
