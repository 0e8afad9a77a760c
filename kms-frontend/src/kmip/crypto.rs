//! KMIP Encrypt, Decrypt (KMIP 2.1 sections 6.1.17, 6.1.14), Sign and
//! SignatureVerify (6.1.51, 6.1.52) with HSM keys. `CryptographicParameters`
//! (section 7.6) pick the algorithm; when absent, the key's kind does:
//! AES-GCM, RSA-OAEP with SHA-256, RSA PKCS#1 v1.5 with SHA-256, ECDSA with
//! SHA-256. An algorithm hsmd or the token does not offer is refused naming it.

use super::attributes::key_info;
use super::Ctx;
use crate::access::policy::Need;
use crate::error::KmsError;
use crate::ttlv::Ttlv;
use hsmd_protocol::b64::SecretBytes;
use hsmd_protocol::{
    Decrypt, Encrypt, EncryptionAlgorithm as Enc, KeyKind, Sign, SignatureAlgorithm as Sig, Verify,
};

/// The parameters of a request, read once.
pub(crate) struct Params<'a> {
    pub(crate) algorithm: Option<&'a str>,
    pub(crate) mode: Option<&'a str>,
    pub(crate) padding: Option<&'a str>,
    pub(crate) hash: Option<&'a str>,
    pub(crate) signature: Option<&'a str>,
}

impl<'a> Params<'a> {
    pub(crate) fn of(req: &'a Ttlv) -> Result<Self, KmsError> {
        let p = req.struct_of("CryptographicParameters")?;
        if let Some(p) = p {
            super::allow_only(
                p,
                &[
                    "BlockCipherMode",
                    "CryptographicAlgorithm",
                    "DigitalSignatureAlgorithm",
                    "HashingAlgorithm",
                    "MaskGeneratorHashingAlgorithm",
                    "PaddingMethod",
                ],
            )?;
            // MGF1 (RSA PSS and OAEP) uses the message hash here; the
            // reference CLI names it (`ckms rsa sign` sends SHA256 twice).
            if let Some(mgf) = p.enum_of("MaskGeneratorHashingAlgorithm")? {
                let hash = p.enum_of("HashingAlgorithm")?.unwrap_or("SHA256");
                if mgf != hash {
                    return Err(unsupported(format!(
                        "MaskGeneratorHashingAlgorithm {mgf} differs from HashingAlgorithm {hash}: MGF1 is offered with the message's own hash only"
                    )));
                }
            }
        }
        let get = |tag: &str| -> Result<Option<&'a str>, KmsError> {
            Ok(match p {
                Some(p) => p.enum_of(tag)?,
                None => None,
            })
        };
        Ok(Self {
            algorithm: get("CryptographicAlgorithm")?,
            mode: get("BlockCipherMode")?,
            padding: get("PaddingMethod")?,
            hash: get("HashingAlgorithm")?,
            signature: get("DigitalSignatureAlgorithm")?,
        })
    }

    /// True when the parameters alone fix the algorithm.
    fn explicit(&self) -> bool {
        self.mode.is_some() || self.padding.is_some() || self.signature.is_some()
    }
}

fn unsupported(what: String) -> KmsError {
    KmsError::unprocessable(what)
}

/// The key's kind, asked from hsmd only when the parameters do not decide.
async fn kind_if_needed(
    ctx: &Ctx<'_>,
    uid: &str,
    need: Need,
    p: &Params<'_>,
    op: &str,
) -> Result<Option<KeyKind>, KmsError> {
    if p.explicit() || p.algorithm.is_some() {
        ctx.check(uid, need).await?;
        Ok(None)
    } else {
        Ok(Some(key_info(ctx, uid, need, op).await?.kind))
    }
}

pub(crate) fn encryption(p: &Params<'_>, kind: Option<KeyKind>) -> Result<Enc, KmsError> {
    if let Some(mode) = p.mode {
        return match (mode, p.padding) {
            ("GCM", None | Some("None")) => Ok(Enc::AesGcm),
            ("CBC", None | Some("PKCS5" | "PKCS7")) => Ok(Enc::AesCbcPad),
            (m, pad) => Err(unsupported(format!(
                "BlockCipherMode {m}{} is not offered: use GCM, or CBC with PKCS5 padding",
                pad.map(|p| format!(" with PaddingMethod {p}"))
                    .unwrap_or_default()
            ))),
        };
    }
    let rsa_default = || match p.padding {
        Some("OAEP") | None => match p.hash {
            Some("SHA1") => Ok(Enc::RsaOaepSha1),
            Some("SHA256") | None => Ok(Enc::RsaOaepSha256),
            Some(h) => Err(unsupported(format!(
                "RSA OAEP with HashingAlgorithm {h} is not offered: use SHA256 or SHA1"
            ))),
        },
        Some("PKCS1v15") => Ok(Enc::RsaPkcs1v15),
        Some(pad) => Err(unsupported(format!(
            "PaddingMethod {pad} is not offered for RSA encryption: use OAEP or PKCS1v15"
        ))),
    };
    match (p.algorithm, kind) {
        (Some("AES"), _) | (None, Some(KeyKind::Aes)) if p.padding.is_none() => Ok(Enc::AesGcm),
        (Some("AES"), _) | (None, Some(KeyKind::Aes)) => Err(unsupported(format!(
            "AES with PaddingMethod {} needs a BlockCipherMode: give CBC (PKCS5 padding) or GCM (no padding)",
            p.padding.unwrap_or_default()
        ))),
        (Some("RSA"), _) | (None, Some(KeyKind::RsaPrivate | KeyKind::RsaPublic)) => rsa_default(),
        (None, None) if p.padding.is_some() => rsa_default(),
        (Some(a), _) => Err(unsupported(format!(
            "CryptographicAlgorithm {a} does not encrypt here: use AES (GCM, CBC) or RSA (OAEP, PKCS1v15)"
        ))),
        (None, Some(k)) => Err(unsupported(format!(
            "a {k:?} key does not encrypt: use an AES or RSA key"
        ))),
        (None, None) => Err(unsupported(
            "CryptographicParameters name no algorithm: give BlockCipherMode or PaddingMethod".into(),
        )),
    }
}

pub(crate) fn signature(p: &Params<'_>, kind: Option<KeyKind>) -> Result<Sig, KmsError> {
    if let Some(s) = p.signature {
        return match s {
            "SHA256WithRSAEncryption" => Ok(Sig::RsaPkcs1v15Sha256),
            "SHA384WithRSAEncryption" => Ok(Sig::RsaPkcs1v15Sha384),
            "SHA512WithRSAEncryption" => Ok(Sig::RsaPkcs1v15Sha512),
            "RSASSAPSS" | "RSASSA_PSS" => pss(p.hash),
            "ECDSAWithSHA256" => Ok(Sig::EcdsaSha256),
            "ECDSAWithSHA384" => Ok(Sig::EcdsaSha384),
            "ECDSAWithSHA512" => Ok(Sig::EcdsaSha512),
            other => Err(unsupported(format!(
                "DigitalSignatureAlgorithm {other} is not offered: use SHA256WithRSAEncryption (384, 512), RSASSAPSS or ECDSAWithSHA256 (384, 512)"
            ))),
        };
    }
    let is_ec = matches!(p.algorithm, Some("EC" | "ECDSA"))
        || (p.algorithm.is_none()
            && p.padding.is_none()
            && matches!(kind, Some(KeyKind::EcPrivate | KeyKind::EcPublic)));
    if is_ec {
        return match p.hash {
            Some("SHA256") | None => Ok(Sig::EcdsaSha256),
            Some("SHA384") => Ok(Sig::EcdsaSha384),
            Some("SHA512") => Ok(Sig::EcdsaSha512),
            Some(h) => Err(unsupported(format!(
                "ECDSA with HashingAlgorithm {h} is not offered: use SHA256, SHA384 or SHA512"
            ))),
        };
    }
    if let Some(a) = p.algorithm.filter(|a| *a != "RSA") {
        return Err(unsupported(format!(
            "CryptographicAlgorithm {a} does not sign here: use RSA or EC"
        )));
    }
    match p.padding {
        Some("PSS") => pss(p.hash),
        Some("PKCS1v15") | None => match p.hash {
            Some("SHA256") | None => Ok(Sig::RsaPkcs1v15Sha256),
            Some("SHA384") => Ok(Sig::RsaPkcs1v15Sha384),
            Some("SHA512") => Ok(Sig::RsaPkcs1v15Sha512),
            Some(h) => Err(unsupported(format!(
                "RSA PKCS#1 v1.5 signatures with HashingAlgorithm {h} are not offered: use SHA256, SHA384 or SHA512"
            ))),
        },
        Some(pad) => Err(unsupported(format!(
            "PaddingMethod {pad} is not offered for signatures: use PSS or PKCS1v15"
        ))),
    }
}

fn pss(hash: Option<&str>) -> Result<Sig, KmsError> {
    match hash {
        Some("SHA256") | None => Ok(Sig::RsaPssSha256),
        Some("SHA384") => Ok(Sig::RsaPssSha384),
        Some("SHA512") => Ok(Sig::RsaPssSha512),
        Some(h) => Err(unsupported(format!(
            "RSA PSS with HashingAlgorithm {h} is not offered: use SHA256, SHA384 or SHA512"
        ))),
    }
}

pub(crate) fn data<'a>(req: &'a Ttlv, tag: &str) -> Result<&'a [u8], KmsError> {
    req.bytes_of(tag)?.ok_or_else(|| {
        KmsError::unprocessable(format!("{}: {tag} is missing (a ByteString)", req.tag))
    })
}

pub(crate) const STREAMING: &[&str] = &["CorrelationValue", "InitIndicator", "FinalIndicator"];

/// What every crypto operation reads first: the key's uid (checked to be an
/// HSM uid), the parameters, the access check for `need`, and the key's
/// kind when the parameters leave the algorithm open.
async fn prepare<'a>(
    ctx: &Ctx<'_>,
    req: &'a Ttlv,
    need: Need,
) -> Result<(&'a str, Params<'a>, Option<KeyKind>), KmsError> {
    let uid = super::required_uid(req)?;
    super::refuse_tags(req, STREAMING, "send the whole data in one request")?;
    super::allow_only(
        req,
        match need {
            Need::Encrypt => &[
                "UniqueIdentifier",
                "CryptographicParameters",
                "Data",
                "IVCounterNonce",
                "AuthenticatedEncryptionAdditionalData",
            ],
            Need::Decrypt => &[
                "UniqueIdentifier",
                "CryptographicParameters",
                "Data",
                "IVCounterNonce",
                "AuthenticatedEncryptionTag",
                "AuthenticatedEncryptionAdditionalData",
            ],
            Need::Sign => &[
                "UniqueIdentifier",
                "CryptographicParameters",
                "Data",
                "DigestedData",
            ],
            _ => &[
                "UniqueIdentifier",
                "CryptographicParameters",
                "Data",
                "DigestedData",
                "SignatureData",
            ],
        },
    )?;
    if matches!(need, Need::Sign | Need::SignatureVerify) {
        super::refuse_tags(
            req,
            &["DigestedData"],
            "send the message as Data; hsmd hashes it",
        )?;
    }
    let p = Params::of(req)?;
    hsmd_protocol::KeyUid::parse(uid)?;
    let kind = kind_if_needed(ctx, uid, need, &p, &req.tag).await?;
    Ok((uid, p, kind))
}

/// KMIP Encrypt.
pub async fn encrypt(ctx: &Ctx<'_>, req: &Ttlv) -> Result<Ttlv, KmsError> {
    // A caller-chosen IV/nonce would let anyone with only `encrypt` decrypt:
    // with a victim's GCM nonce, encrypting zeros yields the key stream.
    super::refuse_tags(
        req,
        &["IVCounterNonce"],
        "the HSM picks a fresh IV/nonce for every Encrypt and returns it",
    )?;
    let (uid, p, kind) = prepare(ctx, req, Need::Encrypt).await?;
    let algorithm = encryption(&p, kind)?;
    let out = ctx
        .hsmd()
        .call(
            ctx.user,
            &format!("Encrypt with {uid}"),
            &Encrypt {
                uid: uid.into(),
                algorithm,
                plaintext: SecretBytes::new(data(req, "Data")?.to_vec()),
                aad: req
                    .bytes_of("AuthenticatedEncryptionAdditionalData")?
                    .map(<[u8]>::to_vec),
                iv: None,
            },
        )
        .await?;
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

/// KMIP Decrypt.
pub async fn decrypt(ctx: &Ctx<'_>, req: &Ttlv) -> Result<Ttlv, KmsError> {
    let (uid, p, kind) = prepare(ctx, req, Need::Decrypt).await?;
    let algorithm = encryption(&p, kind)?;
    let iv = req.bytes_of("IVCounterNonce")?.map(<[u8]>::to_vec);
    // The reference CLI sends an empty tag with AES-CBC (`ckms sym decrypt
    // -d aes-cbc`): only GCM has one, so an empty tag means none.
    let tag = req
        .bytes_of("AuthenticatedEncryptionTag")?
        .filter(|t| !(t.is_empty() && algorithm != Enc::AesGcm))
        .map(<[u8]>::to_vec);
    if algorithm == Enc::AesGcm && (iv.is_none() || tag.is_none()) {
        return Err(KmsError::unprocessable(
            "Decrypt: AES-GCM needs IVCounterNonce (12 bytes) and AuthenticatedEncryptionTag (16 bytes), as Encrypt returned them",
        ));
    }
    let out = ctx
        .hsmd()
        .call(
            ctx.user,
            &format!("Decrypt with {uid}"),
            &Decrypt {
                uid: uid.into(),
                algorithm,
                ciphertext: data(req, "Data")?.to_vec(),
                iv,
                tag,
                aad: req
                    .bytes_of("AuthenticatedEncryptionAdditionalData")?
                    .map(<[u8]>::to_vec),
            },
        )
        .await?;
    Ok(Ttlv::structure(
        "DecryptResponse",
        vec![
            Ttlv::text("UniqueIdentifier", uid),
            Ttlv::bytes("Data", out.plaintext.expose().to_vec()),
        ],
    ))
}

/// KMIP Sign (of `Data`, the message; hsmd hashes it).
pub async fn sign(ctx: &Ctx<'_>, req: &Ttlv) -> Result<Ttlv, KmsError> {
    let (uid, p, kind) = prepare(ctx, req, Need::Sign).await?;
    let algorithm = signature(&p, kind)?;
    let out = ctx
        .hsmd()
        .call(
            ctx.user,
            &format!("Sign with {uid}"),
            &Sign {
                uid: uid.into(),
                algorithm,
                data: SecretBytes::new(data(req, "Data")?.to_vec()),
            },
        )
        .await?;
    Ok(Ttlv::structure(
        "SignResponse",
        vec![
            Ttlv::text("UniqueIdentifier", uid),
            Ttlv::bytes("SignatureData", out.signature),
        ],
    ))
}

/// KMIP SignatureVerify: `ValidityIndicator` Valid or Invalid.
pub async fn signature_verify(ctx: &Ctx<'_>, req: &Ttlv) -> Result<Ttlv, KmsError> {
    let (uid, p, kind) = prepare(ctx, req, Need::SignatureVerify).await?;
    let algorithm = signature(&p, kind)?;
    let out = ctx
        .hsmd()
        .call(
            ctx.user,
            &format!("SignatureVerify with {uid}"),
            &Verify {
                uid: uid.into(),
                algorithm,
                data: SecretBytes::new(data(req, "Data")?.to_vec()),
                signature: data(req, "SignatureData")?.to_vec(),
            },
        )
        .await?;
    Ok(Ttlv::structure(
        "SignatureVerifyResponse",
        vec![
            Ttlv::text("UniqueIdentifier", uid),
            Ttlv::enumeration(
                "ValidityIndicator",
                if out.valid { "Valid" } else { "Invalid" },
            ),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p<'a>(
        algorithm: Option<&'a str>,
        mode: Option<&'a str>,
        padding: Option<&'a str>,
        hash: Option<&'a str>,
    ) -> Params<'a> {
        Params {
            algorithm,
            mode,
            padding,
            hash,
            signature: None,
        }
    }

    #[test]
    fn the_mask_generator_hash_must_be_the_message_hash() {
        let req = |mgf: &str| {
            Ttlv::structure(
                "Sign",
                vec![Ttlv::structure(
                    "CryptographicParameters",
                    vec![
                        Ttlv::enumeration("PaddingMethod", "PSS"),
                        Ttlv::enumeration("HashingAlgorithm", "SHA256"),
                        Ttlv::enumeration("MaskGeneratorHashingAlgorithm", mgf),
                    ],
                )],
            )
        };
        let same = req("SHA256");
        let p = Params::of(&same).expect("MGF1 with SHA-256, as ckms rsa sign sends");
        assert_eq!(signature(&p, None), Ok(Sig::RsaPssSha256));
        let other = req("SHA1");
        let e = Params::of(&other).err().expect("a different MGF hash");
        assert!(
            e.message
                .contains("MaskGeneratorHashingAlgorithm SHA1 differs"),
            "{e}"
        );
    }

    #[test]
    fn parameters_pick_the_fixtures_algorithms() {
        assert_eq!(
            encryption(&p(Some("AES"), Some("GCM"), None, None), None),
            Ok(Enc::AesGcm)
        );
        assert_eq!(
            encryption(&p(Some("RSA"), None, Some("OAEP"), Some("SHA256")), None),
            Ok(Enc::RsaOaepSha256)
        );
        assert_eq!(
            encryption(&p(Some("RSA"), None, Some("OAEP"), Some("SHA1")), None),
            Ok(Enc::RsaOaepSha1)
        );
        assert_eq!(
            encryption(&p(Some("RSA"), None, Some("PKCS1v15"), None), None),
            Ok(Enc::RsaPkcs1v15)
        );
        assert_eq!(
            encryption(&p(None, None, None, None), Some(KeyKind::Aes)),
            Ok(Enc::AesGcm)
        );
        assert_eq!(
            encryption(&p(None, None, None, None), Some(KeyKind::RsaPublic)),
            Ok(Enc::RsaOaepSha256)
        );
        assert!(encryption(&p(None, None, None, None), Some(KeyKind::EcPublic)).is_err());
        let e = encryption(&p(Some("RSA"), None, Some("OAEP"), Some("SHA512")), None)
            .expect_err("sha512");
        assert!(e.message.contains("SHA512"), "{e}");
        assert!(encryption(&p(Some("AES"), Some("ECB"), None, None), None)
            .expect_err("ecb")
            .message
            .contains("ECB"));
        assert_eq!(
            signature(&p(None, None, None, None), Some(KeyKind::EcPrivate)),
            Ok(Sig::EcdsaSha256)
        );
        assert_eq!(
            signature(
                &p(None, None, Some("PSS"), Some("SHA384")),
                Some(KeyKind::RsaPrivate)
            ),
            Ok(Sig::RsaPssSha384)
        );
        assert_eq!(
            signature(&p(Some("RSA"), None, None, None), None),
            Ok(Sig::RsaPkcs1v15Sha256)
        );
    }
}
