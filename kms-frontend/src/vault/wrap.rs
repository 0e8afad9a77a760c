//! Wrapping and unwrapping KMS key material with HSM keys, through hsmd's
//! `encrypt` and `decrypt` (docs/protocol.md "Operations"): the clear
//! material goes to hsmd and comes back encrypted by a key that never
//! leaves the token.
//!
//! The mechanism is the best the token offers for the HSM key's kind, tried
//! in order: AES keys `aes_gcm` (blob `iv(12) || ciphertext || tag(16)`, the
//! reference's own layout) then `aes_cbc_pad` (the SmartCard-HSM has no
//! GCM; blob `iv(16) || ciphertext`); RSA keys `rsa_oaep_sha256` then
//! `rsa_oaep_sha1` (SoftHSMv2 has OAEP with SHA-1 only, the card with
//! SHA-256 only; blob = the RSA ciphertext). The mechanism used is stored
//! with the blob ([`WrappedMaterial::mechanism`]), so unwrapping never
//! guesses, even on another token. Only blobs that come from elsewhere (an
//! Import of the reference's wrapped objects, which record no mechanism)
//! are read with the reference's choice: GCM for AES keys, OAEP SHA-1 for
//! RSA keys ([`reference_mechanism`]).

use crate::error::KmsError;
use crate::hsm::Hsmd;
use crate::store::WrappedMaterial;
use hsmd_protocol::b64::SecretBytes;
use hsmd_protocol::{
    Decrypt, Encrypt, EncryptionAlgorithm as Alg, ErrorCode, GetKey, KeyKind, KeyRef,
};
use zeroize::Zeroizing;

/// GCM IV and tag sizes, bytes (NIST SP 800-38D; hsmd's `aes_gcm`).
const GCM_IV: usize = 12;
const GCM_TAG: usize = 16;
/// CBC IV size, bytes.
const CBC_IV: usize = 16;

/// hsmd's name of an encryption algorithm (its serde name).
pub fn mechanism_name(alg: Alg) -> &'static str {
    match alg {
        Alg::AesGcm => "aes_gcm",
        Alg::AesCbcPad => "aes_cbc_pad",
        Alg::RsaOaepSha256 => "rsa_oaep_sha256",
        Alg::RsaOaepSha1 => "rsa_oaep_sha1",
        Alg::RsaPkcs1v15 => "rsa_pkcs1v15",
    }
}

/// The algorithm of a stored mechanism name; `None` for a name this
/// version does not know (a newer version's row).
pub fn mechanism_of(name: &str) -> Option<Alg> {
    [
        Alg::AesGcm,
        Alg::AesCbcPad,
        Alg::RsaOaepSha256,
        Alg::RsaOaepSha1,
    ]
    .into_iter()
    .find(|a| mechanism_name(*a) == name)
}

/// The mechanisms to try, best first, for wrapping with an HSM key of `kind`.
///
/// Errors: 422 for an EC key (EC keys do not encrypt).
fn candidates(uid: &str, kind: KeyKind) -> Result<&'static [Alg], KmsError> {
    match kind {
        KeyKind::Aes => Ok(&[Alg::AesGcm, Alg::AesCbcPad]),
        KeyKind::RsaPublic | KeyKind::RsaPrivate => Ok(&[Alg::RsaOaepSha256, Alg::RsaOaepSha1]),
        KeyKind::EcPublic | KeyKind::EcPrivate => Err(KmsError::unprocessable(format!(
            "{uid} is an EC key and cannot wrap: name an AES or RSA HSM key as the wrapping key"
        ))),
    }
}

/// The mechanism the reference uses for a wrapping key of `kind` (it
/// records none): AES-GCM for AES keys, RSA-OAEP with SHA-1 for RSA keys.
///
/// Errors: 422 for an EC key.
pub fn reference_mechanism(uid: &str, kind: KeyKind) -> Result<Alg, KmsError> {
    match kind {
        KeyKind::Aes => Ok(Alg::AesGcm),
        KeyKind::RsaPublic | KeyKind::RsaPrivate => Ok(Alg::RsaOaepSha1),
        KeyKind::EcPublic | KeyKind::EcPrivate => Err(KmsError::unprocessable(format!(
            "{uid} is an EC key and cannot unwrap: key material wrapped elsewhere must name an AES or RSA HSM key"
        ))),
    }
}

/// The kind of HSM key `uid`, asked from hsmd as `user`.
///
/// Errors: 422 when hsmd has no such key, 503.
pub async fn hsm_key_kind(hsmd: &Hsmd, user: &str, uid: &str) -> Result<KeyKind, KmsError> {
    Ok(hsmd
        .call(
            user,
            &format!("the wrapping key {uid}"),
            &GetKey(KeyRef { uid: uid.into() }),
        )
        .await?
        .kind)
}

/// Wraps `clear` (material of format `format`: "raw", "pkcs8", "spki")
/// with HSM key `kek`, asking hsmd as `user`.
///
/// Errors: 422 when `kek` is no HSM key, is an EC key, or the token offers
/// none of the mechanisms for its kind (naming them); 503.
pub async fn wrap(
    hsmd: &Hsmd,
    user: &str,
    kek: &str,
    clear: &[u8],
    format: &str,
) -> Result<WrappedMaterial, KmsError> {
    let kind = hsm_key_kind(hsmd, user, kek).await?;
    let mut last = None;
    for alg in candidates(kek, kind)? {
        let op = Encrypt {
            uid: kek.into(),
            algorithm: *alg,
            plaintext: SecretBytes::from(clear.to_vec()),
            aad: None,
            iv: None,
        };
        let what = format!("wrapping with {kek} ({})", mechanism_name(*alg));
        match hsmd.call_code(user, &what, &op).await {
            Ok(r) => {
                let mut blob = Vec::new();
                blob.extend_from_slice(r.iv.as_deref().unwrap_or_default());
                blob.extend_from_slice(&r.ciphertext);
                blob.extend_from_slice(r.tag.as_deref().unwrap_or_default());
                return Ok(WrappedMaterial {
                    wrapping_key: kek.into(),
                    mechanism: mechanism_name(*alg).into(),
                    format: format.into(),
                    blob,
                });
            }
            Err((Some(ErrorCode::Unsupported), e)) => last = Some(e),
            Err((_, e)) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        KmsError::unprocessable(format!("{kek} offers no mechanism to wrap with"))
    }))
}

/// The HSM key that unwraps what `wrapping_key` wrapped with `alg`: the
/// key itself for AES; for RSA the private key of the pair when the public
/// one wrapped (`hsm::S::L_pk` gives `hsm::S::L`, docs/protocol.md "Keys").
/// The right to unwrap is checked on this key, not on `wrapping_key`.
pub fn decrypting_key(wrapping_key: &str, alg: Alg) -> String {
    if matches!(alg, Alg::AesGcm | Alg::AesCbcPad) {
        return wrapping_key.to_owned();
    }
    hsmd_protocol::KeyUid::parse(wrapping_key)
        .ok()
        .and_then(|u| {
            let label = u.label.pair_private()?;
            Some(hsmd_protocol::KeyUid::new(u.slot, label).to_string())
        })
        .unwrap_or_else(|| wrapping_key.to_owned())
}

/// Unwraps `m` with its HSM key through hsmd, as `user` (the private key
/// of the pair when an RSA public key wrapped it).
///
/// Errors: 422 when the blob does not fit its mechanism, the mechanism is
/// unknown, or the HSM refuses (wrong key, tampered blob), 503.
pub async fn unwrap(
    hsmd: &Hsmd,
    user: &str,
    m: &WrappedMaterial,
) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    let alg = mechanism_of(&m.mechanism).ok_or_else(|| {
        KmsError::unprocessable(format!(
            "the key material is wrapped with mechanism {:?}, which this version does not know (it knows aes_gcm, aes_cbc_pad, rsa_oaep_sha256, rsa_oaep_sha1)",
            m.mechanism.chars().take(40).collect::<String>()
        ))
    })?;
    let short = |need: usize| {
        KmsError::unprocessable(format!(
            "the wrapped key material is {} bytes, too short for {} (at least {need})",
            m.blob.len(),
            m.mechanism
        ))
    };
    let (iv, ciphertext, tag) = match alg {
        Alg::AesGcm => {
            if m.blob.len() < GCM_IV + GCM_TAG {
                return Err(short(GCM_IV + GCM_TAG));
            }
            let (iv, rest) = m.blob.split_at(GCM_IV);
            let (ct, tag) = rest.split_at(rest.len() - GCM_TAG);
            (Some(iv.to_vec()), ct.to_vec(), Some(tag.to_vec()))
        }
        Alg::AesCbcPad => {
            if m.blob.len() < 2 * CBC_IV {
                return Err(short(2 * CBC_IV));
            }
            let (iv, ct) = m.blob.split_at(CBC_IV);
            (Some(iv.to_vec()), ct.to_vec(), None)
        }
        _ => (None, m.blob.clone(), None),
    };
    let op = Decrypt {
        uid: decrypting_key(&m.wrapping_key, alg),
        algorithm: alg,
        ciphertext,
        iv,
        tag,
        aad: None,
    };
    let what = format!("unwrapping with {} ({})", m.wrapping_key, m.mechanism);
    let plain = hsmd.call(user, &what, &op).await?;
    Ok(Zeroizing::new(plain.plaintext.expose().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanism_names_round_trip_and_unknown_ones_are_none() {
        for alg in [
            Alg::AesGcm,
            Alg::AesCbcPad,
            Alg::RsaOaepSha256,
            Alg::RsaOaepSha1,
        ] {
            assert_eq!(mechanism_of(mechanism_name(alg)), Some(alg));
        }
        assert_eq!(mechanism_of("aes_key_wrap"), None);
        assert_eq!(mechanism_of("rsa_pkcs1v15"), None, "never used to wrap");
    }

    #[test]
    fn what_an_rsa_public_key_wrapped_is_unwrapped_by_its_private_key() {
        assert_eq!(
            decrypting_key("hsm::7::rsakek_pk", Alg::RsaOaepSha1),
            "hsm::7::rsakek"
        );
        assert_eq!(
            decrypting_key("hsm::7::rsakek", Alg::RsaOaepSha256),
            "hsm::7::rsakek"
        );
        assert_eq!(decrypting_key("hsm::7::a_pk", Alg::AesGcm), "hsm::7::a_pk");
        assert_eq!(
            decrypting_key("hsm::7::_pk", Alg::RsaOaepSha1),
            "hsm::7::_pk"
        );
    }

    #[test]
    fn wrapping_tries_the_best_mechanism_first_and_refuses_ec() {
        assert_eq!(
            candidates("k", KeyKind::Aes).expect("aes"),
            &[Alg::AesGcm, Alg::AesCbcPad]
        );
        assert_eq!(
            candidates("k", KeyKind::RsaPublic).expect("rsa"),
            &[Alg::RsaOaepSha256, Alg::RsaOaepSha1]
        );
        let e = candidates("hsm::0::ec", KeyKind::EcPrivate).expect_err("ec");
        assert!(e.message.contains("AES or RSA"), "{e}");
        assert_eq!(
            reference_mechanism("k", KeyKind::RsaPrivate).expect("rsa"),
            Alg::RsaOaepSha1
        );
        assert_eq!(
            reference_mechanism("k", KeyKind::Aes).expect("aes"),
            Alg::AesGcm
        );
    }
}
