//! KMIP Get / Export (KMIP 2.1 sections 6.1.20 and 6.1.18): public keys in
//! the format asked for (none: PKCS1 for RSA, SPKI for EC; `PKCS1`;
//! `PKCS8` = SubjectPublicKeyInfo), extractable AES keys raw or
//! transparent, extractable private keys PKCS1 (RSA) or PKCS8. A sensitive
//! key is refused (422) like the reference.

use super::attributes::{self, key_info};
use super::Ctx;
use crate::access::policy::Need;
use crate::error::KmsError;
use crate::ttlv::Ttlv;
use hsmd_protocol::{Export, KeyInfo, KeyKind, KeyRef};
use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};

/// KMIP Get / Export.
///
/// Errors: 422 (not found, not granted, sensitive, format not offered for
/// this key), 503.
pub async fn get(ctx: &Ctx<'_>, req: &Ttlv) -> Result<Ttlv, KmsError> {
    let uid = super::required_uid(req)?;
    super::allow_only(
        req,
        &[
            "UniqueIdentifier",
            "KeyFormatType",
            "KeyWrapType",
            "KeyCompressionType",
            "KeyWrappingSpecification",
        ],
    )?;
    super::refuse_tags(
        req,
        &["KeyWrappingSpecification", "KeyCompressionType"],
        "HSM keys are exported unwrapped and uncompressed",
    )?;
    let info = key_info(ctx, uid, Need::Get, &req.tag).await?;
    if !info.extractable {
        return Err(KmsError::unprocessable(format!(
            "Sensitive: DENIED: {uid} is sensitive (CKA_SENSITIVE, not extractable): its key material never leaves the HSM; create keys with Sensitive = false to export them"
        )));
    }
    let asked = req.enum_of("KeyFormatType")?;
    let format = asked.unwrap_or(attributes::default_format(info.kind));
    let exported = ctx
        .hsmd()
        .call(
            ctx.user,
            &format!("{} {uid}", req.tag),
            &Export(KeyRef { uid: uid.into() }),
        )
        .await?;
    let material = convert(&info, format, exported.data.expose())?;
    let object_tag = attributes::object_type(info.kind);
    Ok(Ttlv::structure(
        "GetResponse",
        vec![
            Ttlv::enumeration("ObjectType", object_tag),
            Ttlv::text("UniqueIdentifier", info.uid.clone()),
            Ttlv::structure(
                object_tag,
                vec![Ttlv::structure(
                    "KeyBlock",
                    vec![
                        Ttlv::enumeration("KeyFormatType", format),
                        Ttlv::structure(
                            "KeyValue",
                            vec![material, attributes::key_value_attributes(&info, format)],
                        ),
                        Ttlv::enumeration(
                            "CryptographicAlgorithm",
                            attributes::algorithm(info.kind),
                        ),
                        Ttlv::integer("CryptographicLength", i64::from(info.bits)),
                    ],
                )],
            ),
        ],
    ))
}

/// The `KeyMaterial` of `der` (what hsmd exported: SPKI DER, raw AES,
/// PKCS#8 DER) in KMIP format `format`.
fn convert(info: &KeyInfo, format: &str, der: &[u8]) -> Result<Ttlv, KmsError> {
    convert_material(&info.uid, info.kind, format, der)
}

/// The `KeyMaterial` of key `uid` of `kind` whose clear material is `der`
/// (SPKI DER for public keys, raw bytes for AES, PKCS#8 DER for private
/// keys) in KMIP Key Format Type `format`.
///
/// Errors: 422 naming the formats offered for that kind; 500 when `der`
/// does not parse.
pub fn convert_material(
    uid: &str,
    kind: KeyKind,
    format: &str,
    der: &[u8],
) -> Result<Ttlv, KmsError> {
    let refuse = |offered: &str| {
        KmsError::unprocessable(format!(
            "KeyFormatType {format} is not offered for {uid} ({}): use {offered}",
            attributes::object_type(kind)
        ))
    };
    let bad_der = |e: &dyn std::fmt::Display| {
        KmsError::internal(format!("the material of {uid} does not parse: {e}"))
    };
    // The key material ends in the answer's Ttlv (not zeroized, like every
    // transit buffer of the answer); no intermediate copy is kept.
    let bytes: Vec<u8> = match (kind, format) {
        (KeyKind::Aes, "Raw") => der.to_vec(),
        (KeyKind::Aes, "TransparentSymmetricKey") => {
            return Ok(Ttlv::structure(
                "KeyMaterial",
                vec![Ttlv::bytes("Key", der.to_vec())],
            ))
        }
        (KeyKind::Aes, _) => return Err(refuse("Raw or TransparentSymmetricKey")),
        (KeyKind::RsaPublic | KeyKind::EcPublic, "PKCS8") => der.to_vec(),
        (KeyKind::RsaPublic, "PKCS1") => {
            let key = rsa::RsaPublicKey::from_public_key_der(der).map_err(|e| bad_der(&e))?;
            key.to_pkcs1_der().map_err(|e| bad_der(&e))?.into_vec()
        }
        (KeyKind::RsaPublic, _) => return Err(refuse("PKCS1 or PKCS8")),
        (KeyKind::EcPublic, _) => return Err(refuse("PKCS8 (SubjectPublicKeyInfo)")),
        (KeyKind::RsaPrivate | KeyKind::EcPrivate, "PKCS8") => der.to_vec(),
        (KeyKind::RsaPrivate, "PKCS1") => {
            let key = rsa::RsaPrivateKey::from_pkcs8_der(der).map_err(|e| bad_der(&e))?;
            key.to_pkcs1_der()
                .map_err(|e| bad_der(&e))?
                .as_bytes()
                .to_vec()
        }
        (KeyKind::RsaPrivate, _) => return Err(refuse("PKCS1 or PKCS8")),
        (KeyKind::EcPrivate, _) => return Err(refuse("PKCS8")),
    };
    Ok(Ttlv::bytes("KeyMaterial", bytes))
}
