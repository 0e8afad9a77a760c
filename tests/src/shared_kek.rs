//! One AES-256 KEK on two SoftHSMv2 tokens, without its value ever leaving
//! a token in clear: what a deployment of several frontends needs (issue 15:
//! "each with its own hsmd on its own token holding the same KEK").
//!
//! The steps ([`put_shared_kek`]), PKCS#11 v2.40 sections 5.13-5.14:
//! 1. a transport key (AES-256, `CKA_WRAP`/`CKA_UNWRAP` only, sensitive) is
//!    made on both tokens with `C_CreateObject` from the same value. It stands
//!    for the SmartCard-HSM's DKEK, which the cards assemble from key shares
//!    (`sc-hsm-tool --create-dkek-share` / `--import-dkek-share`) so that the
//!    same DKEK is on every card while no single share reveals it;
//! 2. the KEK is generated on token A (`C_GenerateKey`, `CKM_AES_KEY_GEN`)
//!    with the attributes hsmd gives the AES keys it creates (token object,
//!    `CKA_LABEL` = `CKA_ID` = the label, private, sensitive, `CKA_ENCRYPT`
//!    and `CKA_DECRYPT` only), except `CKA_EXTRACTABLE` true so it can be
//!    wrapped;
//! 3. `C_WrapKey` with the transport key, `CKM_AES_KEY_WRAP_PAD` (RFC 5649)
//!    when the token offers it, else `CKM_AES_KEY_WRAP` (RFC 3394); then
//!    `CKA_EXTRACTABLE` is set to false on A (PKCS#11 allows only that
//!    change) and A's transport key is destroyed;
//! 4. `C_UnwrapKey` on token B with the same label, `CKA_ID` and attributes,
//!    sensitive and not extractable; then B's transport key is destroyed.
//!
//! SoftHSMv2 2.6 leaves `CKA_VALUE_LEN` 0 on the unwrapped copy (its issue
//! 628; PKCS#11 forbids the attribute in the unwrap template), so hsmd
//! reports B's KEK as 0 bits; the key itself is the 32-byte one.
//!
//! hsmd serves the KEK as `hsm::<slot>::<label>` on either token; the slot
//! IDs of two SoftHSMv2 tokens differ (SoftHSMv2 derives them from the
//! token's random serial number), so the uid differs by its slot. KMS keys
//! name the HSM key that wrapped them by that uid, so frontends sharing a
//! database need their tokens in the same slot (as docs/scale-out.md asks
//! of the cards): [`twin`] makes token B a copy of a freshly initialized,
//! still empty token A, with the same serial and so the same slot ID, before
//! the KEK is generated on A and unwrapped on B.
//!
//! SoftHSMv2 reads its configuration (`SOFTHSM2_CONF`) once per process, so
//! each token's steps run in a process of their own: the helper binary
//! `hsmd-e2e-kek` ([`helper_main`]), given the token's configuration in its
//! environment and the request on stdin (the PIN and the transport key are
//! not on its command line). Only the wrapped KEK passes between the two.

use crate::{try_bin, HarnessError, Token, PIN, SOFTHSM_LIB};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};
use zeroize::Zeroizing;

/// The helper binary of this crate that runs one token's steps.
pub const HELPER: &str = "hsmd-e2e-kek";
/// Appended to the KEK's label for the transport key's `CKA_LABEL`.
pub const TRANSPORT_SUFFIX: &str = "-transport";

/// What [`put_shared_kek`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedKek {
    /// The KEK's `CKA_LABEL` and `CKA_ID` on both tokens.
    pub label: String,
    /// `hsm::<slot of A>::<label>`.
    pub uid_a: String,
    /// `hsm::<slot of B>::<label>`.
    pub uid_b: String,
    /// The wrapping mechanism used: `CKM_AES_KEY_WRAP_PAD` or `CKM_AES_KEY_WRAP`.
    pub mechanism: String,
    /// Length of the wrapped KEK in bytes (40 for AES-256 under either mechanism).
    pub wrapped_len: usize,
}

/// A second token in a test directory of its own, with the same serial
/// number, label, PINs and so slot ID as `a` (a copy of `a`'s token files,
/// made while `a` holds no key: call it before [`put_shared_kek`]). It
/// stands for a second card initialized for the same deployment.
///
/// Errors: the copy or the ownership change failed.
pub fn twin(a: &Token) -> Result<Token, HarnessError> {
    let dir = tempfile::Builder::new()
        .prefix("hsmd-e2e-")
        .tempdir()
        .map_err(|e| HarnessError::io("tempdir", e))?;
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .map_err(|e| HarnessError::io("chmod", e))?;
    let out = Command::new("cp")
        .arg("-a")
        .arg(a.path("tokens"))
        .arg(dir.path().join("tokens"))
        .output()
        .map_err(|e| HarnessError::io("cp", e))?;
    if !out.status.success() {
        return Err(HarnessError(format!(
            "cp -a of the token: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.path().join("tokens").display()
        ),
    )
    .map_err(|e| HarnessError::io("softhsm2.conf", e))?;
    let b = Token {
        dir,
        conf,
        slot: a.slot,
        owner: a.owner.clone(),
    };
    b.give_to_owner()?;
    Ok(b)
}

/// What a token says about one key ([`inspect`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFacts {
    /// `CKA_SENSITIVE`.
    pub sensitive: bool,
    /// `CKA_EXTRACTABLE`.
    pub extractable: bool,
    /// `CKA_ALWAYS_SENSITIVE`.
    pub always_sensitive: bool,
    /// `CKA_NEVER_EXTRACTABLE`.
    pub never_extractable: bool,
    /// `CKA_LOCAL` (generated on this token, not unwrapped or created).
    pub local: bool,
    /// `CKA_ID` (hsmd's convention: the label's bytes).
    pub id: Vec<u8>,
    /// `CKA_VALUE_LEN` in bytes.
    pub value_len: u64,
    /// Whether `C_GetAttributeValue` gave `CKA_VALUE` (it must not).
    pub value_readable: bool,
    /// How many token objects carry the transport key's label (0 after
    /// [`put_shared_kek`]).
    pub transport_keys: usize,
}

/// Puts one AES-256 KEK labelled `label` on tokens `a` and `b` (user PIN
/// [`PIN`]) as the module documentation describes; the directories are
/// given back to their owners afterwards (hsmd drops to them).
///
/// Errors: `label` taken on either token, a PKCS#11 failure (naming the
/// step and the `CKR_*`), or the helper binary not built.
pub fn put_shared_kek(a: &Token, b: &Token, label: &str) -> Result<SharedKek, HarnessError> {
    let transport = Zeroizing::new(crate::postgres::random_hex(32)?);
    let exported = run_helper(
        a,
        &json!({"step": "export", "label": label, "transport": transport.as_str()}),
    )?;
    let wrapped = text(&exported, "wrapped")?;
    let mechanism = text(&exported, "mechanism")?;
    run_helper(
        b,
        &json!({"step": "import", "label": label, "transport": transport.as_str(),
                "wrapped": wrapped, "mechanism": mechanism}),
    )?;
    for token in [a, b] {
        token.give_to_owner()?;
    }
    Ok(SharedKek {
        label: label.to_owned(),
        uid_a: format!("hsm::{}::{label}", a.slot),
        uid_b: format!("hsm::{}::{label}", b.slot),
        mechanism,
        wrapped_len: wrapped.len() / 2,
    })
}

/// The attributes of the key `label` on `token`, read through PKCS#11.
///
/// Errors: no such key, a PKCS#11 failure.
pub fn inspect(token: &Token, label: &str) -> Result<KeyFacts, HarnessError> {
    let v = run_helper(token, &json!({"step": "inspect", "label": label}))?;
    let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    let num = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    Ok(KeyFacts {
        sensitive: flag("sensitive"),
        extractable: flag("extractable"),
        always_sensitive: flag("always_sensitive"),
        never_extractable: flag("never_extractable"),
        local: flag("local"),
        id: unhex(&text(&v, "id")?)?,
        value_len: num("value_len"),
        value_readable: flag("value_readable"),
        transport_keys: usize::try_from(num("transport_keys")).unwrap_or(usize::MAX),
    })
}

/// AES-CBC-PAD (`CKM_AES_CBC_PAD`) with the key `label` on `token`:
/// encrypts `input` when `encrypt`, else decrypts it; `iv` is 16 bytes.
///
/// Errors: no such key, a PKCS#11 failure (e.g. bad padding on decrypt).
pub fn cbc_pad(
    token: &Token,
    label: &str,
    encrypt: bool,
    iv: &[u8; 16],
    input: &[u8],
) -> Result<Vec<u8>, HarnessError> {
    let v = run_helper(
        token,
        &json!({"step": if encrypt { "encrypt" } else { "decrypt" }, "label": label,
                "iv": hex(iv), "input": hex(input)}),
    )?;
    unhex(&text(&v, "output")?)
}

/// Runs the helper for `token` with `request` (the slot and PIN added);
/// its JSON answer.
fn run_helper(token: &Token, request: &Value) -> Result<Value, HarnessError> {
    let mut request = request.clone();
    request["slot"] = json!(token.slot);
    request["pin"] = json!(PIN);
    let body = Zeroizing::new(request.to_string());
    let mut child = Command::new(try_bin(HELPER)?)
        .env("SOFTHSM2_CONF", &token.conf)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| HarnessError::io(format!("spawn {HELPER}"), e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(body.as_bytes())
            .map_err(|e| HarnessError::io(format!("write to {HELPER}"), e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| HarnessError::io(format!("wait for {HELPER}"), e))?;
    if !out.status.success() {
        return Err(HarnessError(format!(
            "{HELPER} on slot {}: {}",
            token.slot,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| HarnessError(format!("{HELPER} answered something other than JSON: {e}")))
}

/// The string field `key` of `v`.
fn text(v: &Value, key: &str) -> Result<String, HarnessError> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| HarnessError(format!("{HELPER} answered without {key:?}: {v}")))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Result<Vec<u8>, HarnessError> {
    let bad = || HarnessError(format!("not hex: {:.40}", s));
    if !s.len().is_multiple_of(2) {
        return Err(bad());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(bad)
        })
        .collect()
}

// ------------------------------------------------------------ the helper

/// The helper's entry point: reads one JSON request on stdin, runs its
/// step on the slot in `SOFTHSM2_CONF`'s SoftHSMv2 and prints the JSON
/// answer; on failure prints one line to stderr and exits 1.
pub fn helper_main() -> std::process::ExitCode {
    let mut input = Zeroizing::new(String::new());
    let answer = std::io::Read::read_to_string(&mut std::io::stdin(), &mut input)
        .map_err(|e| HarnessError::io("read the request", e))
        .and_then(|_| {
            serde_json::from_str::<Value>(&input)
                .map_err(|e| HarnessError(format!("the request is not JSON: {e}")))
        })
        .and_then(|req| step(&req));
    match answer {
        Ok(v) => {
            println!("{v}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `what` failed with `e` (a PKCS#11 error names its `CKR_*`).
fn p11(what: &'static str) -> impl Fn(cryptoki::error::Error) -> HarnessError {
    move |e| HarnessError(format!("{what}: {e}"))
}

/// Runs one request on a logged-in session of its slot.
fn step(req: &Value) -> Result<Value, HarnessError> {
    let slot_id = req
        .get("slot")
        .and_then(Value::as_u64)
        .ok_or_else(|| HarnessError("the request has no slot".into()))?;
    let label = text(req, "label")?;
    let pin = Zeroizing::new(text(req, "pin")?);
    let p = Pkcs11::new(SOFTHSM_LIB).map_err(p11("load SoftHSMv2"))?;
    p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(p11("C_Initialize"))?;
    let slot = p
        .get_slots_with_token()
        .map_err(p11("C_GetSlotList"))?
        .into_iter()
        .find(|s| s.id() == slot_id)
        .ok_or_else(|| HarnessError(format!("no token in slot {slot_id}")))?;
    let s = p.open_rw_session(slot).map_err(p11("C_OpenSession"))?;
    s.login(UserType::User, Some(&AuthPin::new(pin.as_str().into())))
        .map_err(p11("C_Login"))?;
    match text(req, "step")?.as_str() {
        "export" => {
            let mechs = p
                .get_mechanism_list(slot)
                .map_err(p11("C_GetMechanismList"))?;
            export(
                &s,
                &mechs,
                &label,
                &Zeroizing::new(unhex(&text(req, "transport")?)?),
            )
        }
        "import" => import(
            &s,
            &label,
            &Zeroizing::new(unhex(&text(req, "transport")?)?),
            &unhex(&text(req, "wrapped")?)?,
            &text(req, "mechanism")?,
        ),
        "inspect" => inspect_key(&s, &label),
        "encrypt" | "decrypt" => {
            let iv: [u8; 16] = unhex(&text(req, "iv")?)?
                .try_into()
                .map_err(|_| HarnessError("the IV must be 16 bytes".into()))?;
            let key = one(&s, &label)?;
            let input = unhex(&text(req, "input")?)?;
            let mech = Mechanism::AesCbcPad(iv);
            let output = if text(req, "step")? == "encrypt" {
                s.encrypt(&mech, key, &input).map_err(p11("C_Encrypt"))?
            } else {
                s.decrypt(&mech, key, &input).map_err(p11("C_Decrypt"))?
            };
            Ok(json!({"output": hex(&output)}))
        }
        other => Err(HarnessError(format!(
            "unknown step {other:.20}: export, import, inspect, encrypt or decrypt"
        ))),
    }
}

/// The token objects labelled `label`.
fn labelled(s: &Session, label: &str) -> Result<Vec<ObjectHandle>, HarnessError> {
    s.find_objects(&[Attribute::Token(true), Attribute::Label(label.into())])
        .map_err(p11("C_FindObjects"))
}

/// The one token object labelled `label`.
fn one(s: &Session, label: &str) -> Result<ObjectHandle, HarnessError> {
    match labelled(s, label)?.as_slice() {
        [h] => Ok(*h),
        found => Err(HarnessError(format!(
            "{} objects labelled {label:?}, expected one",
            found.len()
        ))),
    }
}

/// Refuses when `label` is already taken on the token.
fn ensure_free(s: &Session, label: &str) -> Result<(), HarnessError> {
    if labelled(s, label)?.is_empty() {
        Ok(())
    } else {
        Err(HarnessError(format!(
            "the token already holds an object labelled {label:?}; pick a free label"
        )))
    }
}

/// The attributes hsmd gives an AES key it creates for encryption
/// (hsmd/src/pkcs11/keys.rs `secret_attrs`, generate.rs `usages`), with
/// `CKA_EXTRACTABLE` = `extractable` and `CKA_SENSITIVE` true.
fn kek_template(label: &str, extractable: bool) -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::Label(label.into()),
        Attribute::Id(label.into()),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(extractable),
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Derive(false),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Verify(false),
        Attribute::Sign(false),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
    ]
}

/// Creates the transport key from `value` (a token object, so its
/// destruction is observable).
fn create_transport(s: &Session, label: &str, value: &[u8]) -> Result<ObjectHandle, HarnessError> {
    let transport = format!("{label}{TRANSPORT_SUFFIX}");
    ensure_free(s, &transport)?;
    s.create_object(&[
        Attribute::Token(true),
        Attribute::Label(transport.into()),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Value(value.to_vec()),
        Attribute::Wrap(true),
        Attribute::Unwrap(true),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Derive(false),
    ])
    .map_err(p11("C_CreateObject (transport key)"))
}

/// The wrapping mechanism by its name.
fn wrap_mechanism(name: &str) -> Result<Mechanism<'static>, HarnessError> {
    match name {
        "CKM_AES_KEY_WRAP_PAD" => Ok(Mechanism::AesKeyWrapPad),
        "CKM_AES_KEY_WRAP" => Ok(Mechanism::AesKeyWrap),
        other => Err(HarnessError(format!(
            "wrapping mechanism {other:.30}: CKM_AES_KEY_WRAP_PAD or CKM_AES_KEY_WRAP"
        ))),
    }
}

/// Token A's steps: transport key, KEK generated, wrapped, made
/// non-extractable, transport key destroyed.
fn export(
    s: &Session,
    mechs: &[MechanismType],
    label: &str,
    transport_value: &[u8],
) -> Result<Value, HarnessError> {
    ensure_free(s, label)?;
    let name = if mechs.contains(&MechanismType::AES_KEY_WRAP_PAD) {
        "CKM_AES_KEY_WRAP_PAD"
    } else if mechs.contains(&MechanismType::AES_KEY_WRAP) {
        "CKM_AES_KEY_WRAP"
    } else {
        return Err(HarnessError(
            "the token offers neither CKM_AES_KEY_WRAP_PAD nor CKM_AES_KEY_WRAP".into(),
        ));
    };
    let transport = create_transport(s, label, transport_value)?;
    let mut template = kek_template(label, true);
    template.push(Attribute::ValueLen(32.into()));
    let kek = s
        .generate_key(&Mechanism::AesKeyGen, &template)
        .map_err(p11("C_GenerateKey (KEK)"))?;
    let wrapped = s
        .wrap_key(&wrap_mechanism(name)?, transport, kek)
        .map_err(p11("C_WrapKey"))?;
    s.update_attributes(kek, &[Attribute::Extractable(false)])
        .map_err(p11("C_SetAttributeValue (CKA_EXTRACTABLE false)"))?;
    s.destroy_object(transport)
        .map_err(p11("C_DestroyObject (transport key)"))?;
    Ok(json!({"wrapped": hex(&wrapped), "mechanism": name}))
}

/// Token B's steps: transport key, KEK unwrapped, transport key destroyed.
fn import(
    s: &Session,
    label: &str,
    transport_value: &[u8],
    wrapped: &[u8],
    mechanism: &str,
) -> Result<Value, HarnessError> {
    ensure_free(s, label)?;
    let mech = wrap_mechanism(mechanism)?;
    let transport = create_transport(s, label, transport_value)?;
    // No CKA_VALUE_LEN: PKCS#11 v2.40 section 2.8 has the AES key's length
    // come from the unwrapped value, and SoftHSMv2 refuses it in the
    // template (CKR_ATTRIBUTE_READ_ONLY). SoftHSMv2 2.6 then leaves
    // CKA_VALUE_LEN 0 on the new key (softhsm/SoftHSMv2 issue 628).
    let unwrapped = s.unwrap_key(&mech, transport, wrapped, &kek_template(label, false));
    // The transport key goes whether or not the unwrap worked.
    let destroyed = s.destroy_object(transport);
    unwrapped.map_err(p11("C_UnwrapKey"))?;
    destroyed.map_err(p11("C_DestroyObject (transport key)"))?;
    Ok(json!({}))
}

/// The facts of [`KeyFacts`] about the key `label`.
fn inspect_key(s: &Session, label: &str) -> Result<Value, HarnessError> {
    let key = one(s, label)?;
    let attrs = s
        .get_attributes(
            key,
            &[
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::AlwaysSensitive,
                AttributeType::NeverExtractable,
                AttributeType::Local,
                AttributeType::Id,
                AttributeType::ValueLen,
                AttributeType::Value,
            ],
        )
        .map_err(p11("C_GetAttributeValue"))?;
    let mut v = json!({"value_readable": false});
    for a in attrs {
        match a {
            Attribute::Sensitive(b) => v["sensitive"] = json!(b),
            Attribute::Extractable(b) => v["extractable"] = json!(b),
            Attribute::AlwaysSensitive(b) => v["always_sensitive"] = json!(b),
            Attribute::NeverExtractable(b) => v["never_extractable"] = json!(b),
            Attribute::Local(b) => v["local"] = json!(b),
            Attribute::Id(id) => v["id"] = json!(hex(&id)),
            Attribute::ValueLen(n) => v["value_len"] = json!(u64::from(n)),
            // cryptoki leaves out what the token refuses (CKR_ATTRIBUTE_SENSITIVE).
            Attribute::Value(_) => v["value_readable"] = json!(true),
            _ => {}
        }
    }
    v["transport_keys"] = json!(labelled(s, &format!("{label}{TRANSPORT_SUFFIX}"))?.len());
    Ok(v)
}
