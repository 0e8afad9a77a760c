//! KMIP Get / Export (KMIP 2.1 sections 6.1.20, 6.1.18) of KMS keys: as
//! registered, the material wrapped by its HSM key (`KeyValue` a bare
//! ByteString with `KeyWrappingData`, the reference's shape), or unwrapped
//! (`KeyWrapType NotWrapped`, or the object's type listed in the server's
//! `default_unwrap_type`). A key created `Sensitive` is never exported.
//!
//! The `KeyWrappingData` names the mechanism actually used
//! (`BlockCipherMode GCM`; `CBC` with `PaddingMethod PKCS5`; `PaddingMethod
//! OAEP` with `HashingAlgorithm SHA1` or `SHA256`), where the reference
//! always writes `AESKeyWrapPadding`, whatever it used.

use super::attributes::{self, answered};
use super::{load, usable_for, Ctx};
use crate::access::policy::Need;
use crate::error::KmsError;
use crate::store::{ObjectType, StoredObject, WrappedMaterial};
use crate::ttlv::Ttlv;
use hsmd_protocol::KeyKind;

/// The HSM key `obj` is wrapped with.
///
/// Errors: 422 for a destroyed object.
pub fn wrapping_of(obj: &StoredObject) -> Result<String, KmsError> {
    Ok(crate::vault::present(obj)?.wrapping_key.clone())
}

/// hsmd's key kind of a stored key pair half (for format conversions).
pub fn kind_of(obj: &StoredObject) -> Option<KeyKind> {
    let ec = matches!(obj.algorithm.as_deref(), Some("EC" | "ECDSA" | "ECDH"));
    match obj.object_type {
        ObjectType::SymmetricKey => Some(KeyKind::Aes),
        ObjectType::PrivateKey if ec => Some(KeyKind::EcPrivate),
        ObjectType::PrivateKey => Some(KeyKind::RsaPrivate),
        ObjectType::PublicKey if ec => Some(KeyKind::EcPublic),
        ObjectType::PublicKey => Some(KeyKind::RsaPublic),
        ObjectType::SecretData => None,
    }
}

/// The `CryptographicParameters` that name a stored mechanism.
pub fn parameters_of(mechanism: &str) -> Ttlv {
    let v = match mechanism {
        "aes_gcm" => vec![Ttlv::enumeration("BlockCipherMode", "GCM")],
        "aes_cbc_pad" => vec![
            Ttlv::enumeration("BlockCipherMode", "CBC"),
            Ttlv::enumeration("PaddingMethod", "PKCS5"),
        ],
        "rsa_oaep_sha1" => vec![
            Ttlv::enumeration("PaddingMethod", "OAEP"),
            Ttlv::enumeration("HashingAlgorithm", "SHA1"),
        ],
        "rsa_oaep_sha256" => vec![
            Ttlv::enumeration("PaddingMethod", "OAEP"),
            Ttlv::enumeration("HashingAlgorithm", "SHA256"),
        ],
        _ => vec![],
    };
    Ttlv::structure("CryptographicParameters", v)
}

/// The `KeyWrappingData` of wrapped material.
fn wrapping_data(m: &WrappedMaterial) -> Ttlv {
    Ttlv::structure(
        "KeyWrappingData",
        vec![
            Ttlv::enumeration("WrappingMethod", "Encrypt"),
            Ttlv::structure(
                "EncryptionKeyInformation",
                vec![
                    Ttlv::text("UniqueIdentifier", m.wrapping_key.clone()),
                    parameters_of(&m.mechanism),
                ],
            ),
            Ttlv::enumeration("EncodingOption", "NoEncoding"),
        ],
    )
}

/// KMIP Get / Export of a KMS key.
///
/// Errors: 422 (not found, not granted, destroyed, sensitive, a format or
/// wrapping not offered), 503 when it must be unwrapped and hsmd is down.
pub async fn get(ctx: &Ctx<'_>, req: &Ttlv, uid: &str) -> Result<Ttlv, KmsError> {
    crate::kmip::allow_only(
        req,
        &[
            "UniqueIdentifier",
            "KeyFormatType",
            "KeyWrapType",
            "KeyCompressionType",
            "KeyWrappingSpecification",
        ],
    )?;
    crate::kmip::refuse_tags(
        req,
        &["KeyWrappingSpecification", "KeyCompressionType"],
        "a KMS key is exported as registered (wrapped by its HSM key) or unwrapped, uncompressed",
    )?;
    let obj = load(ctx, uid, Need::Get).await?;
    usable_for(&obj, Need::Get)?;
    let attrs = attributes::stored(&obj)?;
    if obj.object_type != ObjectType::PublicKey && attrs.bool_of("Sensitive")? == Some(true) {
        return Err(KmsError::unprocessable(format!(
            "Sensitive: DENIED: {uid} was created Sensitive: its key material is never exported"
        )));
    }
    let unwrap = match req.enum_of("KeyWrapType")? {
        Some("NotWrapped") => true,
        Some("AsRegistered") | None => ctx
            .vault
            .config()
            .default_unwrap_type
            .iter()
            .any(|t| t == obj.object_type.name()),
        Some(other) => {
            return Err(KmsError::unprocessable(format!(
                "Get: KeyWrapType {other} is not offered: use NotWrapped or AsRegistered"
            )))
        }
    };
    let m = crate::vault::present(&obj)?;
    let algorithm = attrs.enum_of("CryptographicAlgorithm")?.map(str::to_owned);
    let length = attrs.int_of("CryptographicLength")?;
    let mut block = Vec::new();
    if unwrap {
        let clear = ctx.vault.material(ctx.hsmd(), ctx.user, &obj).await?;
        let asked = req.enum_of("KeyFormatType")?;
        let (format, material) = match kind_of(&obj) {
            None => {
                let f = asked.unwrap_or("Raw");
                if f != "Raw" && f != "Opaque" {
                    return Err(KmsError::unprocessable(format!(
                        "KeyFormatType {f} is not offered for secret data: use Raw"
                    )));
                }
                (f, Ttlv::bytes("KeyMaterial", clear.to_vec()))
            }
            Some(kind) => {
                let f = asked.unwrap_or(match kind {
                    KeyKind::Aes => "Raw",
                    _ => "PKCS8",
                });
                (f, crate::kmip::get::convert_material(uid, kind, f, &clear)?)
            }
        };
        block.push(Ttlv::enumeration("KeyFormatType", format));
        block.push(Ttlv::structure("KeyValue", vec![material, answered(&obj)?]));
    } else {
        let registered = attrs.enum_of("KeyFormatType")?.unwrap_or("Raw").to_owned();
        block.push(Ttlv::enumeration("KeyFormatType", &registered));
        block.push(Ttlv::bytes("KeyValue", m.blob.clone()));
    }
    if let Some(a) = &algorithm {
        block.push(Ttlv::enumeration("CryptographicAlgorithm", a));
    }
    if let Some(l) = length {
        block.push(Ttlv::integer("CryptographicLength", l));
    }
    if !unwrap {
        block.push(wrapping_data(m));
    }
    let object_tag = obj.object_type.name();
    Ok(Ttlv::structure(
        "GetResponse",
        vec![
            Ttlv::enumeration("ObjectType", object_tag),
            Ttlv::text("UniqueIdentifier", uid),
            Ttlv::structure(object_tag, vec![Ttlv::structure("KeyBlock", block)]),
        ],
    ))
}
