//! KMIP Create (KMIP 2.1 section 6.1.6: AES keys and secret data) and
//! CreateKeyPair (section 6.1.7: RSA 2048 to 4096, EC P-256/384/521) of
//! KMS keys: generated here in software, stored wrapped by the HSM key the
//! caller names (the reference's vendor attribute `wrapping_key_id`, which
//! its CLI sends for `--wrapping-key-id`) or else by the server's
//! `key_encryption_key`.

use super::attributes::{self, Shape};
use super::Ctx;
use crate::crypto::{self, MaterialFormat};
use crate::error::{echo, KmsError};
use crate::kmip::create::{curve, first};
use crate::store::{ObjectType, State, StoredObject, WrappedMaterial};
use crate::ttlv::Ttlv;
use hsmd_protocol::Curve;

/// The HSM key new material of `what` is wrapped with, after checking the
/// caller may wrap with it: anybody with the server KEK; with another HSM
/// key, an HSM admin or a user granted `encrypt` or `get` on it (the
/// reference's rule).
///
/// Errors: 422 when no wrapping key is named and no KEK is configured, or
/// the caller may not use the one named.
pub async fn wrapping_key(ctx: &Ctx<'_>, layers: &[&Ttlv], what: &str) -> Result<String, KmsError> {
    let asked = layers
        .iter()
        .find_map(|l| attributes::vendor(l, "wrapping_key_id"));
    let kek = ctx.vault.wrapping_key_for(asked, what)?;
    if ctx.vault.config().key_encryption_key.as_deref() == Some(kek.as_str())
        || ctx.is_admin().await?
    {
        return Ok(kek);
    }
    let ops = ctx.grants().operations(&kek, ctx.user).await?;
    if ops
        .iter()
        .any(|o| o == "encrypt" || o == "get" || o == "export")
    {
        return Ok(kek);
    }
    Err(KmsError::unprocessable(format!(
        "Not Supported: The user {} does not have the permission to wrap using the key {kek}: ask an HSM admin to grant `encrypt` on it",
        ctx.user
    )))
}

/// The uid asked in `layers`, or a fresh UUID v4.
///
/// Errors: 422 for an empty uid, or one [`super::check_new_uid`] refuses.
fn uid_or_new(layers: &[&Ttlv]) -> Result<String, KmsError> {
    match first(layers, |l| l.text_of("UniqueIdentifier"))? {
        Some("") => Err(KmsError::unprocessable(
            "UniqueIdentifier is empty: give one, or leave it out for a UUID",
        )),
        Some(u) => {
            super::check_new_uid(u, "Create")?;
            Ok(u.to_owned())
        }
        None => Ok(uuid::Uuid::new_v4().to_string()),
    }
}

/// Active, or PreActive when `ActivationDate` lies in the future.
fn initial_state(attrs: &Ttlv) -> State {
    let future = attrs
        .child("ActivationDate")
        .and_then(|d| match &d.value {
            crate::ttlv::TtlvValue::DateTime(t) => {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            }
            _ => None,
        })
        .is_some_and(|t| t > time::OffsetDateTime::now_utc());
    if future {
        State::PreActive
    } else {
        State::Active
    }
}

/// A new object row from its attributes and wrapped material.
pub fn new_object(
    ctx: &Ctx<'_>,
    object_type: ObjectType,
    algorithm: Option<&str>,
    attrs: &Ttlv,
    material: WrappedMaterial,
) -> Result<StoredObject, KmsError> {
    Ok(StoredObject {
        uid: attrs
            .text_of("UniqueIdentifier")?
            .unwrap_or_default()
            .to_owned(),
        object_type,
        owner: ctx.user.to_owned(),
        state: initial_state(attrs),
        algorithm: algorithm.map(str::to_owned),
        names: attributes::names_of(attrs),
        tags: attributes::tags_of(attrs)?,
        attributes: attributes::to_json(attrs)?,
        material: Some(material),
        version: 0,
    })
}

/// KMIP Create of a KMS key: `ObjectType` SymmetricKey (AES, 128/192/256
/// bits, default 256) or SecretData (32 random bytes).
///
/// Errors: 422 (unsupported type or size, no wrapping key, not allowed to
/// wrap with it, uid taken), 503.
pub async fn create(ctx: &Ctx<'_>, req: &Ttlv) -> Result<Ttlv, KmsError> {
    let empty = Ttlv::structure("Attributes", vec![]);
    let attrs = req.struct_of("Attributes")?.unwrap_or(&empty);
    let layers = [attrs];
    let object_type = req.enum_of("ObjectType")?.unwrap_or("SymmetricKey");
    let (kind, bits, clear) = match object_type {
        "SymmetricKey" => {
            if let Some(a) = attrs.enum_of("CryptographicAlgorithm")?.filter(|a| *a != "AES") {
                return Err(KmsError::unprocessable(format!(
                    "Create: CryptographicAlgorithm {a} is not offered for KMS keys: use AES"
                )));
            }
            let bits = attrs.int_of("CryptographicLength")?.unwrap_or(256);
            if ![128, 192, 256].contains(&bits) {
                return Err(KmsError::unprocessable(format!(
                    "Create: an AES key of {bits} bits is not offered: use 128, 192 or 256"
                )));
            }
            let clear = crypto::generate_aes(bits as u32).map_err(KmsError::internal)?;
            (ObjectType::SymmetricKey, bits, clear)
        }
        "SecretData" => {
            let clear = crypto::generate_secret(32).map_err(KmsError::internal)?;
            (ObjectType::SecretData, 256, clear)
        }
        other => {
            return Err(KmsError::unprocessable(format!(
                "Create: ObjectType {other} is not offered: use SymmetricKey or SecretData (CreateKeyPair for key pairs)"
            )))
        }
    };
    let uid = uid_or_new(&layers)?;
    let kek = wrapping_key(ctx, &layers, "Create").await?;
    let material = ctx
        .vault
        .seal(ctx.hsmd(), ctx.user, &kek, &clear, MaterialFormat::Raw)
        .await?;
    drop(clear);
    let algorithm = (kind == ObjectType::SymmetricKey).then_some("AES");
    let shape = Shape {
        uid: &uid,
        object_type: kind.name(),
        algorithm,
        bits,
        curve: None,
        usage_mask: if algorithm.is_some() { 2108 } else { 0 },
        format: if algorithm.is_some() {
            "TransparentSymmetricKey"
        } else {
            "Opaque"
        },
        links: vec![("WrappingKeyLink", kek.clone())],
    };
    let attrs = attributes::initial(&shape, &layers)?;
    let obj = new_object(ctx, kind, algorithm, &attrs, material)?;
    ctx.vault.store().insert(&obj).await?;
    tracing::info!(target: "audit", user = %echo(ctx.user), uid = %echo(&uid), wrapped_by = %kek, "KMS key created");
    Ok(Ttlv::structure(
        "CreateResponse",
        vec![
            Ttlv::enumeration("ObjectType", kind.name()),
            Ttlv::text("UniqueIdentifier", uid),
        ],
    ))
}

/// KMIP CreateKeyPair of a KMS pair: RSA (`CryptographicLength` 2048, 3072
/// or 4096) or EC (`RecommendedCurve` P256, P384, P521). The public key's
/// uid is the private key's with `_pk` appended (as the reference); both
/// halves are stored wrapped, linked to each other.
///
/// Errors: 422 (unsupported algorithm or size, no wrapping key, uid
/// taken), 503.
pub async fn create_key_pair(ctx: &Ctx<'_>, req: &Ttlv) -> Result<Ttlv, KmsError> {
    let empty = Ttlv::structure("Attributes", vec![]);
    let common = req.struct_of("CommonAttributes")?.unwrap_or(&empty);
    let private_attrs = req.struct_of("PrivateKeyAttributes")?.unwrap_or(&empty);
    let public_attrs = req.struct_of("PublicKeyAttributes")?.unwrap_or(&empty);
    let private_layers = [private_attrs, common];
    let public_layers = [public_attrs, common];
    let algorithm = first(&private_layers, |l| l.enum_of("CryptographicAlgorithm"))?;
    let length = first(&private_layers, |l| l.int_of("CryptographicLength"))?;
    let (pair, algorithm_name, bits, curve_name, masks) = match algorithm {
        Some("RSA") => {
            let bits = length.unwrap_or(2048);
            if ![2048, 3072, 4096].contains(&bits) {
                return Err(KmsError::unprocessable(format!(
                    "CreateKeyPair: an RSA key of {bits} bits is not offered: use 2048, 3072 or 4096"
                )));
            }
            let pair = crypto::generate_rsa(bits as u32).map_err(KmsError::internal)?;
            (pair, "RSA", bits, None, (41, 22))
        }
        Some("EC" | "ECDSA" | "ECDH") => {
            let (c, name, bits) = match curve(&private_layers, length)? {
                Curve::P256 => (crypto::Curve::P256, "P256", 256),
                Curve::P384 => (crypto::Curve::P384, "P384", 384),
                Curve::P521 => (crypto::Curve::P521, "P521", 521),
            };
            let pair = crypto::generate_ec(c).map_err(KmsError::internal)?;
            (pair, "EC", bits, Some(name), (1, 2))
        }
        other => {
            return Err(KmsError::unprocessable(format!(
            "CreateKeyPair: CryptographicAlgorithm {} is not offered for KMS keys: use RSA or EC",
            other.unwrap_or("(none)")
        )))
        }
    };
    let uid = uid_or_new(&private_layers)?;
    let public_uid = format!("{uid}_pk");
    super::check_new_uid(&public_uid, "CreateKeyPair")?;
    let kek = wrapping_key(ctx, &private_layers, "CreateKeyPair").await?;
    let hsmd = ctx.hsmd();
    let private_material = ctx
        .vault
        .seal(
            hsmd,
            ctx.user,
            &kek,
            &pair.private_pkcs8,
            MaterialFormat::Pkcs8,
        )
        .await?;
    let public_material = ctx
        .vault
        .seal(
            hsmd,
            ctx.user,
            &kek,
            &pair.public_spki,
            MaterialFormat::Spki,
        )
        .await?;
    drop(pair);
    let shape = |uid, object_type, mask, link: (&'static str, String)| Shape {
        uid,
        object_type,
        algorithm: Some(algorithm_name),
        bits,
        curve: curve_name,
        usage_mask: mask,
        // PKCS#8 for the private key, SubjectPublicKeyInfo (which KMIP
        // also names PKCS8 for public keys) for the public one.
        format: "PKCS8",
        links: vec![("WrappingKeyLink", kek.clone()), link],
    };
    let private = attributes::initial(
        &shape(
            &uid,
            "PrivateKey",
            masks.0,
            ("PublicKeyLink", public_uid.clone()),
        ),
        &private_layers,
    )?;
    let public = attributes::initial(
        &shape(
            &public_uid,
            "PublicKey",
            masks.1,
            ("PrivateKeyLink", uid.clone()),
        ),
        &public_layers,
    )?;
    let private = new_object(
        ctx,
        ObjectType::PrivateKey,
        Some(algorithm_name),
        &private,
        private_material,
    )?;
    let public = new_object(
        ctx,
        ObjectType::PublicKey,
        Some(algorithm_name),
        &public,
        public_material,
    )?;
    // Both halves in one transaction: no half pair is ever stored alone.
    ctx.vault.store().insert_all(&[private, public]).await?;
    tracing::info!(target: "audit", user = %echo(ctx.user), uid = %echo(&uid), public = %echo(&public_uid), wrapped_by = %kek, "KMS key pair created");
    Ok(Ttlv::structure(
        "CreateKeyPairResponse",
        vec![
            Ttlv::text("PrivateKeyUniqueIdentifier", uid),
            Ttlv::text("PublicKeyUniqueIdentifier", public_uid),
        ],
    ))
}
