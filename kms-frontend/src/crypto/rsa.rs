//! RSA keys (2048 to 8192 bits, as AWS-LC accepts them): RSA-OAEP and
//! RSAES-PKCS1-v1_5 encryption (RFC 8017 section 7), RSASSA-PSS and
//! RSASSA-PKCS1-v1_5 signatures (RFC 8017 section 8). Every private-key
//! operation is AWS-LC's (constant-time), never the `rsa` crate's.

use std::sync::OnceLock;

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rsa::{
    OaepAlgorithm, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, Pkcs1PrivateDecryptingKey,
    Pkcs1PublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey, OAEP_SHA1_MGF1SHA1,
    OAEP_SHA256_MGF1SHA256,
};
use aws_lc_rs::signature::{
    self, KeyPair as _, ParsedPublicKey, RsaEncoding, RsaKeyPair, RsaParameters,
};
use zeroize::Zeroizing;

use super::key::{wrong_key_for_cipher, wrong_key_for_signature};
use super::symmetric::{no_aad, no_iv};
use super::{failed, Cipher, CryptoError, Sealed, Signature};

/// The number of RSA [`Signature`] variants (PKCS#1 v1.5 and PSS, three
/// hashes each).
const RSA_SIGNATURES: usize = 6;

/// An RSA public key: encryption and verification, each set up once
/// (verifiers on first use).
pub(super) struct RsaPublic {
    bits: u32,
    spki: Vec<u8>,
    oaep: OaepPublicEncryptingKey,
    pkcs1: Pkcs1PublicEncryptingKey,
    verifiers: [OnceLock<ParsedPublicKey>; RSA_SIGNATURES],
}

impl RsaPublic {
    /// Parses SubjectPublicKeyInfo DER; `None` when it is no RSA key.
    pub(super) fn from_spki(der: &[u8]) -> Option<Self> {
        let key = PublicEncryptingKey::from_der(der).ok()?;
        Self::new(key, der.to_vec()).ok()
    }

    fn new(key: PublicEncryptingKey, spki: Vec<u8>) -> Result<Self, CryptoError> {
        let why = "AWS-LC refused to set up an RSA public key";
        Ok(Self {
            bits: key.key_size_bits() as u32,
            spki,
            oaep: OaepPublicEncryptingKey::new(key.clone()).map_err(failed(why))?,
            pkcs1: Pkcs1PublicEncryptingKey::new(key).map_err(failed(why))?,
            verifiers: Default::default(),
        })
    }

    /// The modulus size in bits.
    pub(super) fn bits(&self) -> u32 {
        self.bits
    }

    /// The SubjectPublicKeyInfo DER.
    pub(super) fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// Encrypts `plaintext` with RSA-OAEP or PKCS#1 v1.5; no IV, no AAD.
    pub(super) fn encrypt(
        &self,
        cipher: Cipher,
        plaintext: &[u8],
        iv: Option<&[u8]>,
        aad: &[u8],
    ) -> Result<Sealed, CryptoError> {
        let oaep = oaep_algorithm(cipher);
        if oaep.is_none() && cipher != Cipher::RsaPkcs1v15 {
            return Err(wrong_key_for_cipher(cipher, "an RSA key"));
        }
        no_iv(cipher, iv)?;
        if !aad.is_empty() {
            return Err(no_aad(cipher));
        }
        let max = match oaep {
            Some(algorithm) => self.oaep.max_plaintext_size(algorithm),
            None => self.pkcs1.max_plaintext_size(),
        };
        if plaintext.len() > max {
            return Err(CryptoError::BadInput(format!(
                "a plaintext of {} bytes was given; {} with this {}-bit key takes at most {max} bytes",
                plaintext.len(),
                cipher.name(),
                self.bits
            )));
        }
        let mut out = vec![0u8; self.oaep.ciphertext_size()];
        let why = "AWS-LC failed to encrypt with the RSA key";
        let len = match oaep {
            Some(algorithm) => self
                .oaep
                .encrypt(algorithm, plaintext, &mut out, None)
                .map_err(failed(why))?
                .len(),
            None => self
                .pkcs1
                .encrypt(plaintext, &mut out)
                .map_err(failed(why))?
                .len(),
        };
        out.truncate(len);
        Ok(Sealed {
            ciphertext: out,
            iv: None,
            tag: None,
        })
    }

    /// Verifies an RSA signature: `Ok(false)` when it does not verify.
    pub(super) fn verify(
        &self,
        sig: Signature,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, CryptoError> {
        let (index, params) =
            verification(sig).ok_or_else(|| wrong_key_for_signature(sig, "an RSA key"))?;
        let slot = &self.verifiers[index];
        let verifier = match slot.get() {
            Some(verifier) => verifier,
            None => {
                let parsed = ParsedPublicKey::new(params, &self.spki).map_err(|_| {
                    CryptoError::Failed("AWS-LC refused the RSA public key for verification")
                })?;
                // Another thread may have set it first: both are the same key.
                let _ = slot.set(parsed);
                slot.get()
                    .ok_or(CryptoError::Failed("the RSA verifier was not kept"))?
            }
        };
        Ok(verifier.verify_sig(message, signature).is_ok())
    }
}

/// An RSA private key: signing and decryption, each set up once, and its
/// public half.
pub(super) struct RsaPrivate {
    signer: RsaKeyPair,
    oaep: OaepPrivateDecryptingKey,
    pkcs1: Pkcs1PrivateDecryptingKey,
    public: RsaPublic,
}

impl RsaPrivate {
    /// Parses PKCS#8 DER; `None` when it is no RSA key of 2048 to 8192 bits.
    pub(super) fn from_pkcs8(der: &[u8]) -> Option<Result<Self, CryptoError>> {
        let signer = RsaKeyPair::from_pkcs8(der).ok()?;
        Some(Self::new(signer, der))
    }

    fn new(signer: RsaKeyPair, der: &[u8]) -> Result<Self, CryptoError> {
        let why = "AWS-LC refused to set up an RSA private key";
        let decrypting = PrivateDecryptingKey::from_pkcs8(der).map_err(failed(why))?;
        let spki: PublicKeyX509Der = signer.public_key().as_der().map_err(|_| {
            CryptoError::Failed("AWS-LC failed to encode the RSA public key as SPKI")
        })?;
        let public = RsaPublic::new(decrypting.public_key(), spki.as_ref().to_vec())?;
        Ok(Self {
            oaep: OaepPrivateDecryptingKey::new(decrypting.clone()).map_err(failed(why))?,
            pkcs1: Pkcs1PrivateDecryptingKey::new(decrypting).map_err(failed(why))?,
            signer,
            public,
        })
    }

    /// The public half.
    pub(super) fn public(&self) -> &RsaPublic {
        &self.public
    }

    /// Decrypts an RSA-OAEP or PKCS#1 v1.5 ciphertext (the modulus size).
    pub(super) fn decrypt(
        &self,
        cipher: Cipher,
        ciphertext: &[u8],
        iv: Option<&[u8]>,
        tag: Option<&[u8]>,
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let oaep = oaep_algorithm(cipher);
        if oaep.is_none() && cipher != Cipher::RsaPkcs1v15 {
            return Err(wrong_key_for_cipher(cipher, "an RSA key"));
        }
        no_iv(cipher, iv)?;
        if !aad.is_empty() {
            return Err(no_aad(cipher));
        }
        if tag.is_some() {
            return Err(CryptoError::BadInput(format!(
                "{} takes no authentication tag; only AES-GCM does",
                cipher.name()
            )));
        }
        let size = self.oaep.key_size_bytes();
        if ciphertext.len() != size {
            return Err(CryptoError::BadInput(format!(
                "an RSA ciphertext of {} bytes was given; this {}-bit key takes {size} bytes",
                ciphertext.len(),
                self.public.bits
            )));
        }
        let mut out = Zeroizing::new(vec![0u8; size]);
        let len = match oaep {
            Some(algorithm) => self
                .oaep
                .decrypt(algorithm, ciphertext, &mut out, None)
                .map_err(|_| {
                    CryptoError::Integrity(
                        "the RSA-OAEP decryption failed: wrong key or hash, or altered ciphertext",
                    )
                })?
                .len(),
            None => self
                .pkcs1
                .decrypt(ciphertext, &mut out)
                .map_err(|_| {
                    CryptoError::Integrity(
                        "the RSA PKCS#1 v1.5 decryption failed: wrong key or altered ciphertext",
                    )
                })?
                .len(),
        };
        out.truncate(len);
        Ok(out)
    }

    /// Signs `message` (hashed here) with RSA PSS or PKCS#1 v1.5.
    pub(super) fn sign(&self, sig: Signature, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let encoding = signing(sig).ok_or_else(|| wrong_key_for_signature(sig, "an RSA key"))?;
        let mut out = vec![0u8; self.signer.public_modulus_len()];
        self.signer
            .sign(
                encoding,
                &aws_lc_rs::rand::SystemRandom::new(),
                message,
                &mut out,
            )
            .map_err(|_| CryptoError::Failed("AWS-LC failed to sign with the RSA key"))?;
        Ok(out)
    }
}

fn oaep_algorithm(cipher: Cipher) -> Option<&'static OaepAlgorithm> {
    match cipher {
        Cipher::RsaOaepSha1 => Some(&OAEP_SHA1_MGF1SHA1),
        Cipher::RsaOaepSha256 => Some(&OAEP_SHA256_MGF1SHA256),
        _ => None,
    }
}

/// The signing encoding (PSS salt = hash length, MGF1 with the same hash).
fn signing(sig: Signature) -> Option<&'static dyn RsaEncoding> {
    Some(match sig {
        Signature::RsaPkcs1v15Sha256 => &signature::RSA_PKCS1_SHA256,
        Signature::RsaPkcs1v15Sha384 => &signature::RSA_PKCS1_SHA384,
        Signature::RsaPkcs1v15Sha512 => &signature::RSA_PKCS1_SHA512,
        Signature::RsaPssSha256 => &signature::RSA_PSS_SHA256,
        Signature::RsaPssSha384 => &signature::RSA_PSS_SHA384,
        Signature::RsaPssSha512 => &signature::RSA_PSS_SHA512,
        _ => return None,
    })
}

/// The verifier slot and parameters of an RSA signature.
fn verification(sig: Signature) -> Option<(usize, &'static RsaParameters)> {
    Some(match sig {
        Signature::RsaPkcs1v15Sha256 => (0, &signature::RSA_PKCS1_2048_8192_SHA256),
        Signature::RsaPkcs1v15Sha384 => (1, &signature::RSA_PKCS1_2048_8192_SHA384),
        Signature::RsaPkcs1v15Sha512 => (2, &signature::RSA_PKCS1_2048_8192_SHA512),
        Signature::RsaPssSha256 => (3, &signature::RSA_PSS_2048_8192_SHA256),
        Signature::RsaPssSha384 => (4, &signature::RSA_PSS_2048_8192_SHA384),
        Signature::RsaPssSha512 => (5, &signature::RSA_PSS_2048_8192_SHA512),
        _ => return None,
    })
}
