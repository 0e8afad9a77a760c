//! KMIP Create (AES keys, KMIP 2.1 section 6.1.6) and CreateKeyPair (RSA
//! and EC pairs, section 6.1.7) of HSM keys, by HSM admins only. Keys are
//! sensitive (non-extractable) unless the request says `Sensitive = false`
//! or `Extractable = true`.

use super::Ctx;
use crate::error::KmsError;
use crate::ttlv::Ttlv;
use hsmd_protocol::{
    Curve, GenerateKey, GenerateKeyPair, KeyPairAlgorithm, KeyUid, SecretKeyAlgorithm,
};

/// Looks `tag` up in the first of `layers` (most specific first) that has it.
pub fn first<'a, T>(
    layers: &[&'a Ttlv],
    get: impl Fn(&'a Ttlv) -> Result<Option<T>, crate::ttlv::TtlvError>,
) -> Result<Option<T>, KmsError> {
    for l in layers {
        if let Some(v) = get(l)? {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// Whether the new key may leave the HSM: `Sensitive` (default true) and
/// `Extractable` (default false) must agree.
fn extractable(layers: &[&Ttlv]) -> Result<bool, KmsError> {
    let sensitive = first(layers, |l| l.bool_of("Sensitive"))?;
    let extractable = first(layers, |l| l.bool_of("Extractable"))?;
    match (sensitive, extractable) {
        (Some(true), Some(true)) => Err(KmsError::unprocessable(
            "Sensitive = true and Extractable = true contradict each other: a sensitive key never leaves the HSM",
        )),
        (_, Some(e)) => Ok(e),
        (Some(false), None) => Ok(true),
        (_, None) => Ok(false),
    }
}

/// The attributes Create and CreateKeyPair read (or knowingly ignore:
/// `ActivationDate`, `CryptographicUsageMask`, `KeyFormatType`, the
/// reference's vendor `Attribute`; HSM keys get the fixed usages of their
/// kind and are active at once).
const ATTRIBUTES: &[&str] = &[
    "ActivationDate",
    "Attribute",
    "CryptographicAlgorithm",
    "CryptographicDomainParameters",
    "CryptographicLength",
    "CryptographicUsageMask",
    "Extractable",
    "KeyFormatType",
    "ObjectType",
    "RecommendedCurve",
    "Sensitive",
    "UniqueIdentifier",
];

async fn require_admin(ctx: &Ctx<'_>, what: &str) -> Result<(), KmsError> {
    let hello = ctx.hello().await?;
    let admins = &hello.admins;
    if crate::access::policy::is_admin(ctx.user, admins) {
        return Ok(());
    }
    Err(KmsError::admin_only(format!(
        "Access denied: Only the HSM Admin can create HSM {what}: {} is not an hsm_admin of hsmd (admins: {})",
        ctx.user,
        admins.join(", ")
    )))
}

fn uid_required(uid: Option<&str>, op: &str) -> Result<KeyUid, KmsError> {
    let uid = uid.ok_or_else(|| {
        KmsError::unprocessable(format!(
            "{op}: give the new key a UniqueIdentifier hsm::<slot>::<label>: this KMS holds HSM keys only"
        ))
    })?;
    Ok(KeyUid::parse(uid)?)
}

/// KMIP Create of an AES key.
///
/// Errors: 422 (not an HSM uid, not AES, bad length, already exists), 401
/// (not an admin), 503 (hsmd down).
pub async fn create(ctx: &Ctx<'_>, req: &Ttlv) -> Result<Ttlv, KmsError> {
    let attrs = req.struct_of("Attributes")?.ok_or_else(|| {
        KmsError::unprocessable("Create: Attributes is missing (CryptographicAlgorithm AES, CryptographicLength, UniqueIdentifier)")
    })?;
    super::allow_only(req, &["ObjectType", "Attributes"])?;
    super::allow_only(attrs, ATTRIBUTES)?;
    let object_type = req.enum_of("ObjectType")?.or(attrs.enum_of("ObjectType")?);
    if object_type != Some("SymmetricKey") {
        return Err(KmsError::unprocessable(format!(
            "Create makes symmetric (AES) keys only, ObjectType is {}: use CreateKeyPair for RSA and EC keys",
            object_type.unwrap_or("missing")
        )));
    }
    let uid_text = attrs.text_of("UniqueIdentifier")?;
    let target = uid_required(uid_text, "Create")?;
    require_admin(ctx, "objects").await?;
    match attrs.enum_of("CryptographicAlgorithm")? {
        Some("AES") | None => {}
        Some(other) => {
            return Err(KmsError::unprocessable(format!(
            "Create: CryptographicAlgorithm {other} is not offered for HSM symmetric keys: use AES"
        )))
        }
    }
    let bits = attrs.int_of("CryptographicLength")?.unwrap_or(256);
    let bits = match bits {
        128 | 192 | 256 => bits as u32,
        other => {
            return Err(KmsError::unprocessable(format!(
                "Create: CryptographicLength {other} is not an AES key size: use 128, 192 or 256"
            )))
        }
    };
    let extractable = extractable(&[attrs])?;
    let uid_text = uid_text.unwrap_or_default();
    let info = ctx
        .hsmd()
        .call(
            ctx.user,
            &format!("Create {uid_text}"),
            &GenerateKey {
                slot: target.slot,
                label: target.label.as_str().to_owned(),
                algorithm: SecretKeyAlgorithm::Aes,
                bits,
                extractable,
            },
        )
        .await?;
    tracing::info!(target: "audit", user = %crate::error::echo(ctx.user), uid = %info.uid, extractable, "created AES-{bits} key");
    Ok(Ttlv::structure(
        "CreateResponse",
        vec![
            Ttlv::enumeration("ObjectType", "SymmetricKey"),
            Ttlv::text("UniqueIdentifier", info.uid),
        ],
    ))
}

/// KMIP CreateKeyPair of an RSA (2048/3072/4096) or EC (P-256/P-384/P-521)
/// pair; the public key's uid is the private key's + `_pk`.
///
/// Errors: as [`create`].
pub async fn create_key_pair(ctx: &Ctx<'_>, req: &Ttlv) -> Result<Ttlv, KmsError> {
    let common = req.struct_of("CommonAttributes")?;
    let private = req.struct_of("PrivateKeyAttributes")?;
    let public = req.struct_of("PublicKeyAttributes")?;
    super::allow_only(
        req,
        &[
            "CommonAttributes",
            "PrivateKeyAttributes",
            "PublicKeyAttributes",
        ],
    )?;
    for part in [common, private, public].into_iter().flatten() {
        super::allow_only(part, ATTRIBUTES)?;
    }
    let layers: Vec<&Ttlv> = [private, common].into_iter().flatten().collect();
    let uid_text = first(&layers, |l| l.text_of("UniqueIdentifier"))?;
    let target = uid_required(uid_text, "CreateKeyPair")?;
    let uid_text = uid_text.unwrap_or_default();
    if let Some(p) = public
        .map(|p| p.text_of("UniqueIdentifier"))
        .transpose()?
        .flatten()
    {
        let expected = target.public_key()?.to_string();
        if p != expected {
            return Err(KmsError::unprocessable(format!(
                "CreateKeyPair: the public key is always named after the private key ({}), not {p}",
                expected
            )));
        }
    }
    require_admin(ctx, "keypairs").await?;
    let algorithm = first(&layers, |l| l.enum_of("CryptographicAlgorithm"))?;
    let length = first(&layers, |l| l.int_of("CryptographicLength"))?;
    let op = match algorithm {
        Some("RSA") => {
            let bits = match length.unwrap_or(2048) {
                b @ (2048 | 3072 | 4096) => b as u32,
                other => {
                    return Err(KmsError::unprocessable(format!(
                        "CreateKeyPair: RSA CryptographicLength {other} is not offered: use 2048, 3072 or 4096"
                    )))
                }
            };
            GenerateKeyPair {
                slot: target.slot,
                label: target.label.as_str().to_owned(),
                algorithm: KeyPairAlgorithm::Rsa,
                bits: Some(bits),
                curve: None,
                extractable: extractable(&layers)?,
            }
        }
        Some("EC" | "ECDSA") => GenerateKeyPair {
            slot: target.slot,
            label: target.label.as_str().to_owned(),
            algorithm: KeyPairAlgorithm::Ec,
            bits: None,
            curve: Some(curve(&layers, length)?),
            extractable: extractable(&layers)?,
        },
        other => {
            return Err(KmsError::unprocessable(format!(
                "CreateKeyPair: CryptographicAlgorithm {} is not offered for HSM key pairs: use RSA or EC",
                other.unwrap_or("missing")
            )))
        }
    };
    let pair = ctx
        .hsmd()
        .call(ctx.user, &format!("CreateKeyPair {uid_text}"), &op)
        .await?;
    tracing::info!(target: "audit", user = %crate::error::echo(ctx.user), uid = %pair.private.uid, "created key pair");
    Ok(Ttlv::structure(
        "CreateKeyPairResponse",
        vec![
            Ttlv::text("PrivateKeyUniqueIdentifier", pair.private.uid),
            Ttlv::text("PublicKeyUniqueIdentifier", pair.public.uid),
        ],
    ))
}

/// The curve of an EC pair: `RecommendedCurve` (also inside
/// `CryptographicDomainParameters`), else the length 256/384/521.
pub fn curve(layers: &[&Ttlv], length: Option<i64>) -> Result<Curve, KmsError> {
    let named = match first(layers, |l| l.enum_of("RecommendedCurve"))? {
        Some(c) => Some(c),
        None => first(layers, |l| {
            Ok(l.struct_of("CryptographicDomainParameters")?
                .map(|d| d.enum_of("RecommendedCurve"))
                .transpose()?
                .flatten())
        })?,
    };
    let by_name = |n: &str| match n.to_ascii_uppercase().replace(['_', '-'], "").as_str() {
        "P256" | "SECP256R1" => Some(Curve::P256),
        "P384" | "SECP384R1" => Some(Curve::P384),
        "P521" | "SECP521R1" => Some(Curve::P521),
        _ => None,
    };
    match (named, length) {
        (Some(n), _) => by_name(n).ok_or_else(|| {
            KmsError::unprocessable(format!(
                "CreateKeyPair: RecommendedCurve {n} is not offered: use P256, P384 or P521"
            ))
        }),
        (None, Some(256) | None) => Ok(Curve::P256),
        (None, Some(384)) => Ok(Curve::P384),
        (None, Some(521)) => Ok(Curve::P521),
        (None, Some(other)) => Err(KmsError::unprocessable(format!(
            "CreateKeyPair: EC CryptographicLength {other} names no offered curve: use 256, 384 or 521 (or RecommendedCurve)"
        ))),
    }
}
