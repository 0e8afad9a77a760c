//! KMIP Import (KMIP 2.1 section 6.1.24) of KMS keys: symmetric keys,
//! secret data, private keys (PKCS#8, PKCS#1) and public keys
//! (SubjectPublicKeyInfo, PKCS#1), in clear or wrapped by an HSM key.
//!
//! - Clear material is wrapped at once by the caller's `wrapping_key_id` or
//!   the server KEK (refused with neither: nothing is stored in clear).
//! - Wrapped material (`KeyWrappingData` naming an HSM key) is stored as it
//!   came, checked to unwrap; with `KeyWrapType NotWrapped` it is unwrapped
//!   and wrapped again by the caller's wrapping key or the KEK (with
//!   neither, it stays wrapped by the HSM key it came with, where the
//!   reference would store it in clear). Importing wrapped material needs
//!   the right to decrypt with that HSM key (an HSM admin, or a `decrypt`
//!   grant): otherwise Import and Get would decrypt, for anybody, whatever
//!   that key encrypted. The reference's blobs record no mechanism: they
//!   are read as it writes them (AES-GCM for AES keys, OAEP SHA-1 for RSA).

use super::attributes::{self, Shape};
use super::create::{new_object, wrapping_key};
use super::{is_hsm, Ctx};
use crate::access::policy::Need;
use crate::crypto::{ClearKey, MaterialFormat};
use crate::error::{echo, KmsError};
use crate::store::{ObjectType, WrappedMaterial};
use crate::ttlv::{Ttlv, TtlvValue};
use crate::vault::wrap;
use hsmd_protocol::EncryptionAlgorithm as Alg;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
use zeroize::Zeroizing;

/// The object types Import takes.
const TYPES: &[&str] = &["SymmetricKey", "SecretData", "PrivateKey", "PublicKey"];

fn object_type_of(name: &str) -> Result<ObjectType, KmsError> {
    Ok(match name {
        "SymmetricKey" => ObjectType::SymmetricKey,
        "SecretData" => ObjectType::SecretData,
        "PrivateKey" => ObjectType::PrivateKey,
        "PublicKey" => ObjectType::PublicKey,
        other => {
            return Err(KmsError::unprocessable(format!(
                "Import: ObjectType {other} is not offered: use one of {}",
                TYPES.join(", ")
            )))
        }
    })
}

/// The stored format of material registered as KMIP `format`.
fn material_format(t: ObjectType, format: &str) -> Result<MaterialFormat, KmsError> {
    let refuse = |offered: &str| {
        KmsError::unprocessable(format!(
            "Import: KeyFormatType {format} is not offered for a {}: use {offered}",
            t.name()
        ))
    };
    match (t, format) {
        (ObjectType::SymmetricKey, "Raw" | "TransparentSymmetricKey") => Ok(MaterialFormat::Raw),
        (ObjectType::SymmetricKey, _) => Err(refuse("Raw or TransparentSymmetricKey")),
        (ObjectType::SecretData, "Raw" | "Opaque") => Ok(MaterialFormat::Raw),
        (ObjectType::SecretData, _) => Err(refuse("Raw or Opaque")),
        (ObjectType::PrivateKey, "PKCS8" | "PKCS1") => Ok(MaterialFormat::Pkcs8),
        (ObjectType::PrivateKey, _) => Err(refuse("PKCS8 or PKCS1 (DER)")),
        (ObjectType::PublicKey, "PKCS8" | "X509" | "PKCS1") => Ok(MaterialFormat::Spki),
        (ObjectType::PublicKey, _) => Err(refuse("PKCS8 (SubjectPublicKeyInfo) or PKCS1 (DER)")),
    }
}

/// The clear bytes of an unwrapped `KeyValue`, in the stored format
/// (PKCS#1 converted to PKCS#8 or SubjectPublicKeyInfo).
fn clear_material(
    t: ObjectType,
    format: &str,
    key_value: &Ttlv,
) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    let material = key_value
        .child("KeyMaterial")
        .ok_or_else(|| KmsError::unprocessable("Import: KeyValue has no KeyMaterial"))?;
    let bytes = match &material.value {
        TtlvValue::ByteString(b) => b.as_slice(),
        TtlvValue::Structure(_) => material.bytes_of("Key")?.ok_or_else(|| {
            KmsError::unprocessable(
                "Import: KeyMaterial is a structure without Key: only TransparentSymmetricKey material is taken as a structure",
            )
        })?,
        _ => {
            return Err(KmsError::unprocessable(
                "Import: KeyMaterial must be a ByteString (or {Key} for TransparentSymmetricKey)",
            ))
        }
    };
    let bad = |e: &dyn std::fmt::Display| {
        KmsError::unprocessable(format!(
            "Import: the {format} key material does not parse: {e}"
        ))
    };
    Ok(match (t, format) {
        (ObjectType::PrivateKey, "PKCS1") => {
            let k = rsa::RsaPrivateKey::from_pkcs1_der(bytes).map_err(|e| bad(&e))?;
            Zeroizing::new(k.to_pkcs8_der().map_err(|e| bad(&e))?.as_bytes().to_vec())
        }
        (ObjectType::PublicKey, "PKCS1") => {
            let k = rsa::RsaPublicKey::from_pkcs1_der(bytes).map_err(|e| bad(&e))?;
            k.to_public_key_der()
                .map_err(|e| bad(&e))?
                .into_vec()
                .into()
        }
        _ => Zeroizing::new(bytes.to_vec()),
    })
}

/// The mechanism named by wrapped material's `CryptographicParameters`
/// when it is one this KMS writes; else the reference's for the HSM key.
async fn mechanism(ctx: &Ctx<'_>, eki: &Ttlv, hsm_uid: &str) -> Result<Alg, KmsError> {
    if let Some(p) = eki.struct_of("CryptographicParameters")? {
        let named = match (
            p.enum_of("BlockCipherMode")?,
            p.enum_of("PaddingMethod")?,
            p.enum_of("HashingAlgorithm")?,
        ) {
            (Some("GCM"), _, _) => Some(Alg::AesGcm),
            (Some("CBC"), _, _) => Some(Alg::AesCbcPad),
            (None, Some("OAEP"), Some("SHA256")) => Some(Alg::RsaOaepSha256),
            (None, Some("OAEP"), _) => Some(Alg::RsaOaepSha1),
            _ => None,
        };
        if let Some(n) = named {
            return Ok(n);
        }
    }
    let kind = wrap::hsm_key_kind(ctx.hsmd(), ctx.user, hsm_uid).await?;
    wrap::reference_mechanism(hsm_uid, kind)
}

/// The private key of the pair when `uid` names an RSA public HSM key
/// (`hsm::S::L_pk` gives `hsm::S::L`); else `uid`.
fn pair_private(uid: &str) -> String {
    wrap::decrypting_key(uid, Alg::RsaOaepSha1)
}

/// The wrapped material of a `KeyBlock` with `KeyWrappingData`.
async fn wrapped_material(
    ctx: &Ctx<'_>,
    block: &Ttlv,
    format: MaterialFormat,
) -> Result<WrappedMaterial, KmsError> {
    let wd = block
        .struct_of("KeyWrappingData")?
        .ok_or_else(|| KmsError::unprocessable("Import: KeyWrappingData is not a structure"))?;
    if let Some(m) = wd.enum_of("WrappingMethod")?.filter(|m| *m != "Encrypt") {
        return Err(KmsError::unprocessable(format!(
            "Import: WrappingMethod {m} is not offered: only Encrypt"
        )));
    }
    if let Some(e) = wd.enum_of("EncodingOption")?.filter(|e| *e != "NoEncoding") {
        return Err(KmsError::unprocessable(format!(
            "Import: wrapped material with EncodingOption {e} is not offered (the reference wraps key pairs as TTLV): export the key unwrapped and import that"
        )));
    }
    let eki = wd.struct_of("EncryptionKeyInformation")?.ok_or_else(|| {
        KmsError::unprocessable(
            "Import: KeyWrappingData has no EncryptionKeyInformation naming the wrapping key",
        )
    })?;
    let hsm_uid = eki.text_of("UniqueIdentifier")?.unwrap_or_default();
    if !is_hsm(hsm_uid) {
        return Err(KmsError::unprocessable(format!(
            "Import: the material is wrapped by {:?}, not by an HSM key: only material wrapped by an hsm::<slot>::<label> key can be imported wrapped",
            hsm_uid.chars().take(80).collect::<String>()
        )));
    }
    // Whoever imports wrapped material may make the KMS decrypt it, so the
    // caller must hold `decrypt` on the key that decrypts: for a blob
    // "wrapped by" an RSA public key `hsm::S::L_pk`, that is the private key
    // `hsm::S::L`, whatever the caller holds on the public one. A first
    // check on either, before hsmd is asked the key's kind, keeps the
    // existence of HSM keys from a caller with no right on them.
    if ctx.check(hsm_uid, Need::Decrypt).await.is_err() {
        ctx.check(&pair_private(hsm_uid), Need::Decrypt).await?;
    }
    let alg = mechanism(ctx, eki, hsm_uid).await?;
    ctx.check(&wrap::decrypting_key(hsm_uid, alg), Need::Decrypt)
        .await?;
    let blob = match &block.child("KeyValue").map(|v| &v.value) {
        Some(TtlvValue::ByteString(b)) => b.clone(),
        _ => {
            return Err(KmsError::unprocessable(
                "Import: wrapped material must be a ByteString KeyValue",
            ))
        }
    };
    Ok(WrappedMaterial {
        wrapping_key: hsm_uid.to_owned(),
        mechanism: wrap::mechanism_name(alg).to_owned(),
        format: format.name().to_owned(),
        blob,
    })
}

/// KMIP Import of a KMS key.
///
/// Errors: 422 (type or format not offered, bad material, no wrapping key,
/// not allowed to unwrap with the HSM key, uid taken without
/// `ReplaceExisting`), 401 replacing another user's key, 503.
pub async fn import(ctx: &Ctx<'_>, req: &Ttlv) -> Result<Ttlv, KmsError> {
    let mut allowed = vec![
        "UniqueIdentifier",
        "ObjectType",
        "ReplaceExisting",
        "KeyWrapType",
        "Attributes",
    ];
    allowed.extend(TYPES);
    crate::kmip::allow_only(req, &allowed)?;
    let uid = match req.text_of("UniqueIdentifier")? {
        Some(u) if !u.is_empty() => u.to_owned(),
        _ => uuid::Uuid::new_v4().to_string(),
    };
    super::check_new_uid(&uid, "Import")?;
    if is_hsm(&uid) {
        return Err(KmsError::unprocessable(format!(
            "Import: {uid} is an HSM key's uid; keys are not imported into the HSM: import under another uid to keep it as a KMS key"
        )));
    }
    let type_name = req.enum_of("ObjectType")?.unwrap_or_default();
    let t = object_type_of(type_name)?;
    let object = req.struct_of(type_name)?.ok_or_else(|| {
        KmsError::unprocessable(format!("Import: the request has no {type_name} object"))
    })?;
    let block = object.struct_of("KeyBlock")?.ok_or_else(|| {
        KmsError::unprocessable(format!("Import: the {type_name} has no KeyBlock"))
    })?;
    let registered = block.enum_of("KeyFormatType")?.unwrap_or("Raw");
    let format = material_format(t, registered)?;
    let empty = Ttlv::structure("Attributes", vec![]);
    let req_attrs = req.struct_of("Attributes")?.unwrap_or(&empty);
    let unwrap_asked = req.enum_of("KeyWrapType")? == Some("NotWrapped");
    let (material, bits, value_attrs) = if block.child("KeyWrappingData").is_some() {
        let mut m = wrapped_material(ctx, block, format).await?;
        let clear = wrap::unwrap(ctx.hsmd(), ctx.user, &m).await?;
        let key = ClearKey::from_material(format, clear.clone(), t == ObjectType::SymmetricKey)
            .map_err(|e| {
                KmsError::unprocessable(format!("Import: the unwrapped material is unusable: {e}"))
            })?;
        let asked = attributes::vendor(req_attrs, "wrapping_key_id");
        let rewrap =
            unwrap_asked && (asked.is_some() || ctx.vault.config().key_encryption_key.is_some());
        if rewrap {
            let kek = wrapping_key(ctx, &[req_attrs], "Import").await?;
            m = ctx
                .vault
                .seal(ctx.hsmd(), ctx.user, &kek, &clear, format)
                .await?;
        }
        (m, i64::from(key.bits()), None)
    } else {
        let value = block.struct_of("KeyValue")?.ok_or_else(|| {
            KmsError::unprocessable(
                "Import: KeyValue must be a structure {KeyMaterial, Attributes?} for material in clear",
            )
        })?;
        let clear = clear_material(t, registered, value)?;
        let key = ClearKey::from_material(format, clear.clone(), t == ObjectType::SymmetricKey)
            .map_err(|e| {
                KmsError::unprocessable(format!("Import: the key material is unusable: {e}"))
            })?;
        let kek = wrapping_key(ctx, &[req_attrs], "Import").await?;
        let m = ctx
            .vault
            .seal(ctx.hsmd(), ctx.user, &kek, &clear, format)
            .await?;
        (m, i64::from(key.bits()), value.struct_of("Attributes")?)
    };
    let mut layers = vec![req_attrs];
    layers.extend(value_attrs);
    let algorithm = block
        .enum_of("CryptographicAlgorithm")?
        .or(layers
            .iter()
            .find_map(|l| l.enum_of("CryptographicAlgorithm").ok().flatten()))
        .map(str::to_owned);
    let stored_format = match format {
        MaterialFormat::Raw if t == ObjectType::SymmetricKey => "TransparentSymmetricKey",
        MaterialFormat::Raw => "Opaque",
        _ => "PKCS8",
    };
    let shape = Shape {
        uid: &uid,
        object_type: t.name(),
        algorithm: algorithm.as_deref(),
        // The material's own size, not what the request declares: ReKey
        // makes a key of the recorded length, and Locate finds by it.
        bits,
        curve: None,
        usage_mask: match t {
            ObjectType::SymmetricKey => 2108,
            ObjectType::PrivateKey => 41,
            ObjectType::PublicKey => 22,
            ObjectType::SecretData => 0,
        },
        format: stored_format,
        links: vec![("WrappingKeyLink", material.wrapping_key.clone())],
    };
    let attrs = attributes::initial(&shape, &layers)?;
    let obj = new_object(ctx, t, algorithm.as_deref(), &attrs, material)?;
    let store = ctx.vault.store();
    if req.bool_of("ReplaceExisting")?.unwrap_or(false) {
        if let Some(old) = store.get(&uid).await? {
            if old.owner != ctx.user {
                return Err(KmsError::admin_only(format!(
                    "Access denied: Import with ReplaceExisting: {uid} belongs to another user"
                )));
            }
        }
        store.upsert(&obj).await?;
        ctx.vault.forget(&uid).await;
    } else {
        store.insert(&obj).await?;
    }
    tracing::info!(target: "audit", user = %echo(ctx.user), uid = %echo(&uid), wrapped_by = %obj.material.as_ref().map(|m| m.wrapping_key.as_str()).unwrap_or_default(), "KMS key imported");
    Ok(Ttlv::structure(
        "ImportResponse",
        vec![Ttlv::text("UniqueIdentifier", uid)],
    ))
}
