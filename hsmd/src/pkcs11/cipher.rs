//! `encrypt` and `decrypt` (docs/protocol.md "Encryption algorithms"): AES-GCM
//! (`CKM_AES_GCM`, PKCS#11 v2.40 curr. mech. section 2.12.3), AES-CBC with
//! PKCS#7 padding done in hsmd over `CKM_AES_CBC` (so tokens without
//! `CKM_AES_CBC_PAD`, such as the SmartCard-HSM, behave the same), RSA-OAEP
//! (`CKM_RSA_PKCS_OAEP`) and RSA PKCS#1 v1.5 (`CKM_RSA_PKCS`).

use super::engine::on_session::OnSession;
use super::engine::{routed_key, KeyObjects, Route, SlotOperation};
use super::error::OpError;
use super::keys::{resolve_cached, KeyCache, Want};
use super::mechanisms::Mechanisms;
use super::slot::SlotContext;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::KeyType;
use cryptoki::session::Session;
use hsmd_protocol::b64::SecretBytes;
use hsmd_protocol::uid::KeyUid;
use hsmd_protocol::{
    Decrypt, DecryptResult, Encrypt, EncryptResult, EncryptionAlgorithm, ErrorBody, ErrorCode,
};
use zeroize::Zeroizing;

/// GCM IV length hsmd chooses and accepts, in bytes.
pub const GCM_IV_LEN: usize = 12;
/// GCM tag length, in bytes.
pub const GCM_TAG_LEN: usize = 16;
/// AES block (and CBC IV) length, in bytes.
pub const AES_BLOCK: usize = 16;

fn gcm_tag_bits() -> cryptoki::types::Ulong {
    ((GCM_TAG_LEN * 8) as u64).into()
}

fn bad(msg: String) -> OpError {
    OpError::new(ErrorCode::BadRequest, msg)
}

fn alg_name(a: EncryptionAlgorithm) -> String {
    serde_json::to_value(a)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn refuse_field(a: EncryptionAlgorithm, field: &str, present: bool) -> Result<(), OpError> {
    if present {
        return Err(bad(format!(
            "{field}: not used by {}; leave it out",
            alg_name(a)
        )));
    }
    Ok(())
}

fn iv_or_random(
    given: &Option<Vec<u8>>,
    len: usize,
    a: EncryptionAlgorithm,
) -> Result<Vec<u8>, OpError> {
    match given {
        Some(iv) if iv.len() == len => Ok(iv.clone()),
        Some(iv) => Err(bad(format!(
            "iv: {} needs a {len}-byte IV, got {} bytes",
            alg_name(a),
            iv.len()
        ))),
        None => {
            let mut iv = vec![0u8; len];
            getrandom::getrandom(&mut iv).map_err(|e| {
                OpError::new(
                    ErrorCode::Internal,
                    format!("no OS randomness for the IV: {e}"),
                )
            })?;
            Ok(iv)
        }
    }
}

fn oaep(hash: MechanismType, mgf: PkcsMgfType) -> Mechanism<'static> {
    Mechanism::RsaPkcsOaep(PkcsOaepParams::new(hash, mgf, PkcsOaepSource::empty()))
}

/// Refuses an OAEP hash the model's token does not really use: the
/// SmartCard-HSM computes OAEP with SHA-256 whatever parameters it is given,
/// so asking it for SHA-1 would silently produce SHA-256 ciphertext.
fn require_oaep_hash(
    mechs: &Mechanisms,
    hash: MechanismType,
    hash_name: &str,
    what: &str,
) -> Result<(), OpError> {
    let profile = mechs.profile();
    match profile.oaep_hashes {
        Some(hashes) if !hashes.contains(&hash) => Err(OpError::new(
            ErrorCode::Unsupported,
            format!(
                "{what} is not available on the token in slot {}: a {} token computes CKM_RSA_PKCS_OAEP only with {}, whatever parameters are passed, and hsmd will not let {hash_name} silently become another hash; use {}",
                mechs.slot(),
                profile.model,
                hashes.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(", "),
                if hashes.contains(&MechanismType::SHA256) { "rsa_oaep_sha256" } else { "rsa_pkcs1v15" },
            ),
        )),
        _ => Ok(()),
    }
}

/// AES-CBC over `data` (whole blocks) in pieces of at most the profile's
/// `cbc_chunk` bytes, each piece's IV the last ciphertext block before it:
/// exactly the single-shot CBC result (NIST SP 800-38A section 6.2).
fn cbc_chunked(
    s: &Session,
    mechs: &Mechanisms,
    key: cryptoki::object::ObjectHandle,
    iv: [u8; AES_BLOCK],
    data: &[u8],
    encrypt: bool,
) -> Result<Vec<u8>, OpError> {
    let chunk = match mechs.profile().cbc_chunk {
        Some(c) if c >= AES_BLOCK && data.len() > c => c - c % AES_BLOCK,
        _ => {
            let m = Mechanism::AesCbc(iv);
            return Ok(if encrypt {
                s.encrypt(&m, key, data)?
            } else {
                s.decrypt(&m, key, data)?
            });
        }
    };
    let mut out = Vec::with_capacity(data.len());
    let mut iv = iv;
    for piece in data.chunks(chunk) {
        let m = Mechanism::AesCbc(iv);
        let (result, last) = if encrypt {
            let r = s.encrypt(&m, key, piece)?;
            let last = r
                .get(r.len().saturating_sub(AES_BLOCK)..)
                .map(<[u8]>::to_vec);
            (r, last)
        } else {
            let last = piece
                .get(piece.len().saturating_sub(AES_BLOCK)..)
                .map(<[u8]>::to_vec);
            (s.decrypt(&m, key, piece)?, last)
        };
        if result.len() != piece.len() {
            return Err(OpError::new(
                ErrorCode::HsmError,
                format!(
                    "the token returned {} bytes of AES-CBC output for {} bytes of input",
                    result.len(),
                    piece.len()
                ),
            ));
        }
        out.extend_from_slice(&result);
        if let Some(last) = last.and_then(|l| <[u8; AES_BLOCK]>::try_from(l.as_slice()).ok()) {
            iv = last;
        }
    }
    Ok(out)
}

fn rsa_mechanism(
    a: EncryptionAlgorithm,
    mechs: &Mechanisms,
) -> Result<Mechanism<'static>, OpError> {
    let name = alg_name(a);
    match a {
        EncryptionAlgorithm::RsaOaepSha256 => {
            mechs.require(MechanismType::RSA_PKCS_OAEP, &name)?;
            require_oaep_hash(mechs, MechanismType::SHA256, "SHA-256", &name)?;
            Ok(oaep(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256))
        }
        EncryptionAlgorithm::RsaOaepSha1 => {
            mechs.require(MechanismType::RSA_PKCS_OAEP, &name)?;
            require_oaep_hash(mechs, MechanismType::SHA1, "SHA-1", &name)?;
            Ok(oaep(MechanismType::SHA1, PkcsMgfType::MGF1_SHA1))
        }
        _ => {
            mechs.require(MechanismType::RSA_PKCS, &name)?;
            Ok(Mechanism::RsaPkcs)
        }
    }
}

fn check_rsa(key_type: KeyType, uid: &KeyUid, a: EncryptionAlgorithm) -> Result<(), OpError> {
    if key_type != KeyType::RSA {
        return Err(bad(format!(
            "key {} is not an RSA key; {} needs one",
            uid,
            alg_name(a)
        )));
    }
    Ok(())
}

/// A token that refuses the OAEP parameters (SoftHSMv2 2.6 takes only SHA-1,
/// the SmartCard-HSM only SHA-256) answers `CKR_ARGUMENTS_BAD` or
/// `CKR_MECHANISM_PARAM_INVALID`: that is `unsupported`, never a silent
/// change of hash.
fn oaep_params_refused(e: cryptoki::error::Error, a: EncryptionAlgorithm, slot: u64) -> OpError {
    use cryptoki::error::{Error as CkError, RvError};
    let is_oaep = matches!(
        a,
        EncryptionAlgorithm::RsaOaepSha256 | EncryptionAlgorithm::RsaOaepSha1
    );
    match e {
        CkError::Pkcs11(rv @ (RvError::ArgumentsBad | RvError::MechanismParamInvalid), _)
            if is_oaep =>
        {
            let hash = if a == EncryptionAlgorithm::RsaOaepSha256 {
                "SHA-256"
            } else {
                "SHA-1"
            };
            OpError::Refused(hsmd_protocol::ErrorBody {
                code: ErrorCode::Unsupported,
                message: format!(
                    "the token in slot {slot} refused CKM_RSA_PKCS_OAEP with {hash} and MGF1-{hash} ({}); {} is not available on it, try the other OAEP hash or rsa_pkcs1v15",
                    super::error::ckr_name(rv),
                    alg_name(a)
                ),
                ckr: Some(super::error::ckr_name(rv)),
            })
        }
        other => other.into(),
    }
}

/// A decryption the token rejects for its input (`CKR_ENCRYPTED_DATA_INVALID`,
/// `_LEN_RANGE`, or SoftHSMv2's `CKR_GENERAL_ERROR`/`CKR_FUNCTION_FAILED`)
/// keeps its `CKR_*` but says what is likely wrong.
fn decrypt_failed(e: cryptoki::error::Error, why: &str) -> OpError {
    use cryptoki::error::{Error as CkError, RvError};
    match e {
        CkError::Pkcs11(
            rv @ (RvError::EncryptedDataInvalid
            | RvError::EncryptedDataLenRange
            | RvError::GeneralError
            | RvError::FunctionFailed),
            _,
        ) => {
            let ckr = super::error::ckr_name(rv);
            OpError::Refused(hsmd_protocol::ErrorBody {
                code: ErrorCode::HsmError,
                message: format!("decryption failed: {why} (the token answered {ckr})"),
                ckr: Some(ckr),
            })
        }
        other => other.into(),
    }
}

/// PKCS#7 padding to a whole number of AES blocks (RFC 5652 section 6.3).
pub fn pkcs7_pad(data: &[u8]) -> Zeroizing<Vec<u8>> {
    let n = AES_BLOCK - data.len() % AES_BLOCK;
    let mut out = Zeroizing::new(Vec::with_capacity(data.len() + n));
    out.extend_from_slice(data);
    out.resize(data.len() + n, n as u8);
    out
}

/// Removes PKCS#7 padding; None when the padding is not valid.
pub fn pkcs7_unpad(mut data: Vec<u8>) -> Option<Vec<u8>> {
    let n = *data.last()? as usize;
    if n == 0 || n > AES_BLOCK || n > data.len() {
        return None;
    }
    let ok = data[data.len() - n..]
        .iter()
        .fold(0u8, |acc, b| acc | (b ^ n as u8))
        == 0;
    if !ok {
        return None;
    }
    data.truncate(data.len() - n);
    Some(data)
}

/// Encrypts with the key `uid`.
///
/// Errors: `bad_request` (wrong IV length, field not used by the algorithm,
/// wrong key type), `not_found`, `unsupported` (mechanism not offered),
/// PKCS#11 failures.
pub fn encrypt(
    s: &Session,
    mechs: &Mechanisms,
    keys: &KeyCache,
    uid: &KeyUid,
    p: &Encrypt,
) -> Result<EncryptResult, OpError> {
    let a = p.algorithm;
    match a {
        EncryptionAlgorithm::AesGcm => {
            mechs.require(MechanismType::AES_GCM, "aes_gcm")?;
            let key = resolve_cached(s, mechs.profile(), keys, uid, Want::Secret)?;
            let mut iv = iv_or_random(&p.iv, GCM_IV_LEN, a)?;
            let aad = p.aad.as_deref().unwrap_or(&[]);
            let mut out = {
                let params = GcmParams::new(&mut iv, aad, gcm_tag_bits())?;
                s.encrypt(&Mechanism::AesGcm(params), key.handle, p.plaintext.expose())?
            };
            if out.len() < GCM_TAG_LEN {
                return Err(OpError::new(
                    ErrorCode::HsmError,
                    "the token returned a GCM output shorter than its tag",
                ));
            }
            let tag = out.split_off(out.len() - GCM_TAG_LEN);
            Ok(EncryptResult {
                ciphertext: out,
                iv: Some(iv),
                tag: Some(tag),
            })
        }
        EncryptionAlgorithm::AesCbcPad => {
            mechs.require(MechanismType::AES_CBC, "aes_cbc_pad")?;
            refuse_field(a, "aad", p.aad.is_some())?;
            let key = resolve_cached(s, mechs.profile(), keys, uid, Want::Secret)?;
            let iv = iv_or_random(&p.iv, AES_BLOCK, a)?;
            let mut block_iv = [0u8; AES_BLOCK];
            block_iv.copy_from_slice(&iv);
            let padded = pkcs7_pad(p.plaintext.expose());
            let ciphertext = cbc_chunked(s, mechs, key.handle, block_iv, &padded, true)?;
            Ok(EncryptResult {
                ciphertext,
                iv: Some(iv),
                tag: None,
            })
        }
        _ => {
            refuse_field(a, "iv", p.iv.is_some())?;
            refuse_field(a, "aad", p.aad.is_some())?;
            let mech = rsa_mechanism(a, mechs)?;
            let key = resolve_cached(s, mechs.profile(), keys, uid, Want::Public)?;
            check_rsa(key.key_type, uid, a)?;
            let ciphertext = s
                .encrypt(&mech, key.handle, p.plaintext.expose())
                .map_err(|e| oaep_params_refused(e, a, uid.slot))?;
            Ok(EncryptResult {
                ciphertext,
                iv: None,
                tag: None,
            })
        }
    }
}

/// Decrypts with the key `uid` (the private key for RSA).
///
/// Errors: as [`encrypt`], plus `bad_request` for a missing IV or tag, a
/// ciphertext length that is not whole AES blocks, or invalid padding, and
/// `hsm_error` for a GCM tag that does not verify (the token's `CKR_*`:
/// `CKR_ENCRYPTED_DATA_INVALID`, or `CKR_GENERAL_ERROR` on SoftHSMv2).
pub fn decrypt(
    s: &Session,
    mechs: &Mechanisms,
    keys: &KeyCache,
    uid: &KeyUid,
    p: &Decrypt,
) -> Result<DecryptResult, OpError> {
    let a = p.algorithm;
    let need = |field: &str, v: &Option<Vec<u8>>| -> Result<Vec<u8>, OpError> {
        v.clone()
            .ok_or_else(|| bad(format!("{field}: required by {}", alg_name(a))))
    };
    let plaintext = match a {
        EncryptionAlgorithm::AesGcm => {
            mechs.require(MechanismType::AES_GCM, "aes_gcm")?;
            let key = resolve_cached(s, mechs.profile(), keys, uid, Want::Secret)?;
            let mut iv = need("iv", &p.iv)?;
            if iv.is_empty() {
                return Err(bad("iv: must not be empty".into()));
            }
            let tag = need("tag", &p.tag)?;
            if tag.len() != GCM_TAG_LEN {
                return Err(bad(format!(
                    "tag: aes_gcm needs a {GCM_TAG_LEN}-byte tag, got {} bytes",
                    tag.len()
                )));
            }
            let aad = p.aad.as_deref().unwrap_or(&[]);
            let mut input = Vec::with_capacity(p.ciphertext.len() + GCM_TAG_LEN);
            input.extend_from_slice(&p.ciphertext);
            input.extend_from_slice(&tag);
            let params = GcmParams::new(&mut iv, aad, gcm_tag_bits())?;
            s.decrypt(&Mechanism::AesGcm(params), key.handle, &input)
                .map_err(|e| {
                    decrypt_failed(
                        e,
                        "the GCM tag does not verify: wrong key, IV, tag, AAD or ciphertext",
                    )
                })?
        }
        EncryptionAlgorithm::AesCbcPad => {
            mechs.require(MechanismType::AES_CBC, "aes_cbc_pad")?;
            refuse_field(a, "aad", p.aad.is_some())?;
            refuse_field(a, "tag", p.tag.is_some())?;
            let key = resolve_cached(s, mechs.profile(), keys, uid, Want::Secret)?;
            let iv = need("iv", &p.iv)?;
            let block_iv: [u8; AES_BLOCK] = iv.as_slice().try_into().map_err(|_| {
                bad(format!(
                    "iv: aes_cbc_pad needs a {AES_BLOCK}-byte IV, got {} bytes",
                    iv.len()
                ))
            })?;
            if p.ciphertext.is_empty() || p.ciphertext.len() % AES_BLOCK != 0 {
                return Err(bad(format!(
                    "ciphertext: aes_cbc_pad ciphertext is whole {AES_BLOCK}-byte blocks, got {} bytes",
                    p.ciphertext.len()
                )));
            }
            let padded = cbc_chunked(s, mechs, key.handle, block_iv, &p.ciphertext, false)?;
            pkcs7_unpad(padded).ok_or_else(|| {
                bad("ciphertext: does not decrypt to valid PKCS#7 padding (wrong key, IV or ciphertext)".into())
            })?
        }
        _ => {
            refuse_field(a, "iv", p.iv.is_some())?;
            refuse_field(a, "aad", p.aad.is_some())?;
            refuse_field(a, "tag", p.tag.is_some())?;
            let mech = rsa_mechanism(a, mechs)?;
            let key = resolve_cached(s, mechs.profile(), keys, uid, Want::Private)?;
            check_rsa(key.key_type, uid, a)?;
            s.decrypt(&mech, key.handle, &p.ciphertext)
                .map_err(|e| oaep_params_refused(e, a, uid.slot))
                .map_err(|e| match e {
                    OpError::Pkcs11(ck) => decrypt_failed(
                        ck,
                        "the ciphertext does not decrypt with this key and padding",
                    ),
                    other => other,
                })?
        }
    };
    Ok(DecryptResult {
        plaintext: SecretBytes::new(plaintext),
    })
}

impl SlotOperation for Encrypt {
    fn route(&self) -> Result<Route, ErrorBody> {
        Ok(Route::Key(KeyUid::parse(&self.uid)?))
    }
}

impl OnSession for Encrypt {
    const KEY_OBJECTS: KeyObjects = KeyObjects::Cached;

    fn run(
        &self,
        s: &Session,
        ctx: &SlotContext,
        uid: Option<&KeyUid>,
    ) -> Result<EncryptResult, OpError> {
        encrypt(s, &ctx.mechanisms, &ctx.keys, routed_key(uid)?, self)
    }
}

impl SlotOperation for Decrypt {
    fn route(&self) -> Result<Route, ErrorBody> {
        Ok(Route::Key(KeyUid::parse(&self.uid)?))
    }
}

impl OnSession for Decrypt {
    const KEY_OBJECTS: KeyObjects = KeyObjects::Cached;

    fn run(
        &self,
        s: &Session,
        ctx: &SlotContext,
        uid: Option<&KeyUid>,
    ) -> Result<DecryptResult, OpError> {
        decrypt(s, &ctx.mechanisms, &ctx.keys, routed_key(uid)?, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs7_round_trip_and_rejects() {
        for len in 0..40 {
            let data = vec![0xab; len];
            let padded = pkcs7_pad(&data);
            assert_eq!(padded.len() % AES_BLOCK, 0);
            assert!(padded.len() > len);
            assert_eq!(pkcs7_unpad(padded.to_vec()).unwrap(), data);
        }
        assert!(pkcs7_unpad(vec![]).is_none());
        assert!(pkcs7_unpad(vec![1u8; 15].into_iter().chain([0]).collect()).is_none());
        assert!(pkcs7_unpad(vec![3u8; 14].into_iter().chain([2, 3]).collect()).is_none());
        assert!(pkcs7_unpad(vec![17u8; 16]).is_none());
    }
}
