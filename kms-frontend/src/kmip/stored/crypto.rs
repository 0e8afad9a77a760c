//! KMIP Encrypt, Decrypt (KMIP 2.1 sections 6.1.17, 6.1.14), Sign and
//! SignatureVerify (6.1.51, 6.1.52) with KMS keys, in software on the
//! unwrapped key ([`crate::vault::Vault::clear_key`]). The parameters are
//! read as for HSM keys ([`crate::kmip::crypto`]), plus AES key wrap with
//! padding (RFC 5649; `BlockCipherMode AESKeyWrapPadding`), which the
//! reference CLI's client-side encryption
//! (`--key-encryption-algorithm rfc5649`) uses. Without parameters an RSA
//! key signs and verifies with RSASSA-PSS and SHA-256, the reference's
//! default for its own keys.

use super::{load_for_use, usable_for, Ctx};
use crate::access::policy::Need;
use crate::crypto::{Cipher, ClearKey, KeyKind as Kind, Signature};
use crate::error::KmsError;
use crate::kmip::crypto::{data, encryption, signature, Params, STREAMING};
use crate::ttlv::Ttlv;
use hsmd_protocol::{EncryptionAlgorithm as Enc, KeyKind, SignatureAlgorithm as Sig};
use std::sync::Arc;

/// hsmd's key kind of a clear key (what the parameter defaults read).
fn kind_of(k: &ClearKey) -> Option<KeyKind> {
    match k.kind() {
        Kind::Aes => Some(KeyKind::Aes),
        Kind::RsaPrivate => Some(KeyKind::RsaPrivate),
        Kind::RsaPublic => Some(KeyKind::RsaPublic),
        Kind::EcPrivate => Some(KeyKind::EcPrivate),
        Kind::EcPublic => Some(KeyKind::EcPublic),
        Kind::Secret => None,
    }
}

fn cipher(p: &Params<'_>, key: &ClearKey) -> Result<Cipher, KmsError> {
    if p.mode == Some("AESKeyWrapPadding") {
        return Ok(Cipher::AesKeyWrapPad);
    }
    if key.kind() == Kind::Secret {
        return Err(KmsError::unprocessable(
            "secret data does not encrypt: use an AES or RSA key",
        ));
    }
    Ok(match encryption(p, kind_of(key))? {
        Enc::AesGcm => Cipher::AesGcm,
        Enc::AesCbcPad => Cipher::AesCbcPkcs7,
        Enc::RsaOaepSha256 => Cipher::RsaOaepSha256,
        Enc::RsaOaepSha1 => Cipher::RsaOaepSha1,
        Enc::RsaPkcs1v15 => Cipher::RsaPkcs1v15,
    })
}

fn signature_of(p: &Params<'_>, key: &ClearKey) -> Result<Signature, KmsError> {
    let nothing_asked = p.algorithm.is_none()
        && p.mode.is_none()
        && p.padding.is_none()
        && p.hash.is_none()
        && p.signature.is_none();
    if nothing_asked && matches!(key.kind(), Kind::RsaPrivate | Kind::RsaPublic) {
        // The reference's default for its own RSA keys: `ckms rsa
        // sign-verify` names no parameters to check what `ckms rsa sign`
        // signed with RSASSA-PSS and SHA-256.
        return Ok(Signature::RsaPssSha256);
    }
    Ok(match signature(p, kind_of(key))? {
        Sig::RsaPkcs1v15Sha256 => Signature::RsaPkcs1v15Sha256,
        Sig::RsaPkcs1v15Sha384 => Signature::RsaPkcs1v15Sha384,
        Sig::RsaPkcs1v15Sha512 => Signature::RsaPkcs1v15Sha512,
        Sig::RsaPssSha256 => Signature::RsaPssSha256,
        Sig::RsaPssSha384 => Signature::RsaPssSha384,
        Sig::RsaPssSha512 => Signature::RsaPssSha512,
        Sig::EcdsaSha256 => Signature::EcdsaSha256,
        Sig::EcdsaSha384 => Signature::EcdsaSha384,
        Sig::EcdsaSha512 => Signature::EcdsaSha512,
    })
}

/// The usable key `uid` for `need`: access, state (read from the database
/// on every request, so a revoked or destroyed key is refused at once, even
/// when another frontend revoked it), then the unwrapped (cached) key.
/// Read again when the key changed during its unwrap (`super::retrying`).
async fn key(ctx: &Ctx<'_>, uid: &str, need: Need) -> Result<Arc<ClearKey>, KmsError> {
    super::retrying(|| async {
        let obj = load_for_use(ctx, uid, need).await?;
        usable_for(&obj, need)?;
        ctx.vault.clear_key(ctx.hsmd(), ctx.user, &obj).await
    })
    .await
}

/// A refusal of the software operation. A ciphertext that fails its check
/// (tag, padding, key wrap integrity) gets one message whatever the cause,
/// so a caller learns nothing more than "it does not decrypt" (no padding
/// oracle in the answer).
fn refused(op: &str, uid: &str, e: crate::crypto::CryptoError) -> KmsError {
    match e {
        crate::crypto::CryptoError::Integrity(_) => KmsError::unprocessable(format!(
            "{op} with {uid}: the data does not decrypt with this key and these parameters (wrong key, IV, tag, padding or data)"
        )),
        e => KmsError::unprocessable(format!("{op} with {uid}: {e}")),
    }
}

/// KMIP Encrypt with a KMS key. The IV or nonce is always chosen here (a
/// caller-chosen GCM nonce would let anyone holding only `encrypt` recover
/// another caller's key stream).
///
/// Errors: 422 (not found, not granted, not Active, parameters not
/// offered), 503 when the key must be unwrapped and hsmd is unreachable.
pub async fn encrypt(ctx: &Ctx<'_>, req: &Ttlv, uid: &str) -> Result<Ttlv, KmsError> {
    crate::kmip::refuse_tags(req, STREAMING, "send the whole data in one request")?;
    crate::kmip::refuse_tags(
        req,
        &["IVCounterNonce"],
        "the server picks a fresh IV/nonce for every Encrypt and returns it",
    )?;
    let p = Params::of(req)?;
    let key = key(ctx, uid, Need::Encrypt).await?;
    let c = cipher(&p, &key)?;
    let aad = req
        .bytes_of("AuthenticatedEncryptionAdditionalData")?
        .unwrap_or_default();
    let out = key
        .encrypt(c, data(req, "Data")?, None, aad)
        .map_err(|e| refused("Encrypt", uid, e))?;
    let mut v = vec![
        Ttlv::text("UniqueIdentifier", uid),
        Ttlv::bytes("Data", out.ciphertext),
    ];
    if let Some(iv) = out.iv {
        v.push(Ttlv::bytes("IVCounterNonce", iv));
    }
    if let Some(tag) = out.tag {
        v.push(Ttlv::bytes("AuthenticatedEncryptionTag", tag));
    }
    Ok(Ttlv::structure("EncryptResponse", v))
}

/// KMIP Decrypt with a KMS key (also with a Deactivated or Compromised one).
///
/// Errors: 422 (not found, not granted, destroyed, wrong tag or padding).
pub async fn decrypt(ctx: &Ctx<'_>, req: &Ttlv, uid: &str) -> Result<Ttlv, KmsError> {
    crate::kmip::refuse_tags(req, STREAMING, "send the whole data in one request")?;
    let p = Params::of(req)?;
    let key = key(ctx, uid, Need::Decrypt).await?;
    let c = cipher(&p, &key)?;
    // The reference CLI sends empty IV and tag where a mode has none.
    let nonempty = |tag: &str| -> Result<Option<&[u8]>, KmsError> {
        Ok(req.bytes_of(tag)?.filter(|b| !b.is_empty()))
    };
    let aad = req
        .bytes_of("AuthenticatedEncryptionAdditionalData")?
        .unwrap_or_default();
    let plain = key
        .decrypt(
            c,
            data(req, "Data")?,
            nonempty("IVCounterNonce")?,
            nonempty("AuthenticatedEncryptionTag")?,
            aad,
        )
        .map_err(|e| refused("Decrypt", uid, e))?;
    Ok(Ttlv::structure(
        "DecryptResponse",
        vec![
            Ttlv::text("UniqueIdentifier", uid),
            Ttlv::bytes("Data", plain.to_vec()),
        ],
    ))
}

/// KMIP Sign of `Data` (the message) with a KMS private key.
///
/// Errors: 422 (not found, not granted, not Active, not a private key).
pub async fn sign(ctx: &Ctx<'_>, req: &Ttlv, uid: &str) -> Result<Ttlv, KmsError> {
    crate::kmip::refuse_tags(req, STREAMING, "send the whole data in one request")?;
    crate::kmip::refuse_tags(req, &["DigestedData"], "send the message as Data")?;
    let p = Params::of(req)?;
    let key = key(ctx, uid, Need::Sign).await?;
    let s = signature_of(&p, &key)?;
    let sig = key
        .sign(s, data(req, "Data")?)
        .map_err(|e| refused("Sign", uid, e))?;
    Ok(Ttlv::structure(
        "SignResponse",
        vec![
            Ttlv::text("UniqueIdentifier", uid),
            Ttlv::bytes("SignatureData", sig),
        ],
    ))
}

/// KMIP SignatureVerify with a KMS key: `ValidityIndicator` Valid or Invalid.
///
/// Errors: 422 (not found, not granted, destroyed, parameters).
pub async fn signature_verify(ctx: &Ctx<'_>, req: &Ttlv, uid: &str) -> Result<Ttlv, KmsError> {
    crate::kmip::refuse_tags(req, STREAMING, "send the whole data in one request")?;
    crate::kmip::refuse_tags(req, &["DigestedData"], "send the message as Data")?;
    let p = Params::of(req)?;
    let key = key(ctx, uid, Need::SignatureVerify).await?;
    let s = signature_of(&p, &key)?;
    let valid = key
        .verify(s, data(req, "Data")?, data(req, "SignatureData")?)
        .map_err(|e| refused("SignatureVerify", uid, e))?;
    Ok(Ttlv::structure(
        "SignatureVerifyResponse",
        vec![
            Ttlv::text("UniqueIdentifier", uid),
            Ttlv::enumeration("ValidityIndicator", if valid { "Valid" } else { "Invalid" }),
        ],
    ))
}
