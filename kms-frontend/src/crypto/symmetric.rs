//! AES keys: AES-GCM (NIST SP 800-38D), AES-CBC with PKCS#7 padding (NIST
//! SP 800-38A, RFC 5652 section 6.3), AES key wrap with padding (RFC 5649).
//! The GCM and CBC key schedules are computed once, when the key is made.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{
    self, DecryptionContext, EncryptionContext, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey,
    UnboundCipherKey,
};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::key_wrap::{self, AesKek, KeyWrapPadded};
use zeroize::Zeroizing;

use super::generate::fill;
use super::kwp;
use super::{failed, Cipher, CryptoError, Sealed};

/// The AES-GCM nonce length accepted, in bytes (NIST SP 800-38D's 96 bits).
pub const GCM_NONCE_LEN: usize = 12;
/// The AES-GCM tag length given and accepted, in bytes.
pub const GCM_TAG_LEN: usize = 16;
/// The AES-CBC IV length, in bytes (one block).
pub const CBC_IV_LEN: usize = 16;
/// The AES block length, in bytes.
const BLOCK_LEN: usize = 16;
/// RFC 5649 adds one 8-byte integrity block to the padded plaintext.
const KWP_OVERHEAD: usize = 8;

/// An AES key with its GCM and CBC schedules.
pub(super) struct AesKey {
    bits: u32,
    gcm: LessSafeKey,
    cbc_encrypt: PaddedBlockEncryptingKey,
    cbc_decrypt: PaddedBlockDecryptingKey,
}

impl AesKey {
    /// Builds the schedules from a 16, 24 or 32-byte key.
    pub(super) fn new(key: &[u8]) -> Result<Self, CryptoError> {
        let (gcm_algorithm, cbc_algorithm) = match key.len() {
            16 => (&aead::AES_128_GCM, &cipher::AES_128),
            24 => (&aead::AES_192_GCM, &cipher::AES_192),
            32 => (&aead::AES_256_GCM, &cipher::AES_256),
            n => {
                return Err(CryptoError::BadKey(format!(
                    "an AES key of {n} bytes was given; 16, 24 or 32 bytes are accepted"
                )))
            }
        };
        let why = "AWS-LC refused to set up an AES key";
        let gcm = LessSafeKey::new(UnboundKey::new(gcm_algorithm, key).map_err(failed(why))?);
        let cbc_encrypt = PaddedBlockEncryptingKey::cbc_pkcs7(
            UnboundCipherKey::new(cbc_algorithm, key).map_err(failed(why))?,
        )
        .map_err(failed(why))?;
        let cbc_decrypt = PaddedBlockDecryptingKey::cbc_pkcs7(
            UnboundCipherKey::new(cbc_algorithm, key).map_err(failed(why))?,
        )
        .map_err(failed(why))?;
        Ok(Self {
            bits: key.len() as u32 * 8,
            gcm,
            cbc_encrypt,
            cbc_decrypt,
        })
    }

    /// The key size in bits.
    pub(super) fn bits(&self) -> u32 {
        self.bits
    }

    /// Encrypts with an AES cipher; `key` is the raw key (for key wrap).
    pub(super) fn encrypt(
        &self,
        key: &[u8],
        cipher: Cipher,
        plaintext: &[u8],
        iv: Option<&[u8]>,
        aad: &[u8],
    ) -> Result<Sealed, CryptoError> {
        if cipher != Cipher::AesGcm && !aad.is_empty() {
            return Err(no_aad(cipher));
        }
        match cipher {
            Cipher::AesGcm => self.gcm_seal(plaintext, iv, aad),
            Cipher::AesCbcPkcs7 => self.cbc_encrypt(plaintext, iv),
            Cipher::AesKeyWrapPad => {
                no_iv(cipher, iv)?;
                Ok(Sealed {
                    ciphertext: wrap(key, plaintext)?,
                    iv: None,
                    tag: None,
                })
            }
            _ => Err(super::key::wrong_key_for_cipher(cipher, "an AES key")),
        }
    }

    /// Decrypts with an AES cipher; `key` is the raw key (for key wrap).
    pub(super) fn decrypt(
        &self,
        key: &[u8],
        cipher: Cipher,
        ciphertext: &[u8],
        iv: Option<&[u8]>,
        tag: Option<&[u8]>,
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if cipher != Cipher::AesGcm && !aad.is_empty() {
            return Err(no_aad(cipher));
        }
        if cipher != Cipher::AesGcm && tag.is_some() {
            return Err(CryptoError::BadInput(format!(
                "{} takes no authentication tag; only AES-GCM does",
                cipher.name()
            )));
        }
        match cipher {
            Cipher::AesGcm => self.gcm_open(ciphertext, iv, tag, aad),
            Cipher::AesCbcPkcs7 => self.cbc_decrypt(ciphertext, iv),
            Cipher::AesKeyWrapPad => {
                no_iv(cipher, iv)?;
                unwrap(key, ciphertext)
            }
            _ => Err(super::key::wrong_key_for_cipher(cipher, "an AES key")),
        }
    }

    fn gcm_seal(
        &self,
        plaintext: &[u8],
        iv: Option<&[u8]>,
        aad: &[u8],
    ) -> Result<Sealed, CryptoError> {
        let nonce_bytes = match iv {
            Some(iv) => gcm_nonce(iv)?,
            None => {
                let mut nonce = [0u8; GCM_NONCE_LEN];
                fill(&mut nonce)?;
                nonce
            }
        };
        // Plaintext until sealed: zeroized if sealing fails.
        let mut in_out = Zeroizing::new(plaintext.to_vec());
        let tag = self
            .gcm
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad),
                &mut in_out,
            )
            .map_err(|_| {
                CryptoError::BadInput(
                    "AES-GCM refused the plaintext; at most 2^36 - 32 bytes are accepted"
                        .to_owned(),
                )
            })?;
        Ok(Sealed {
            ciphertext: std::mem::take(&mut *in_out),
            iv: Some(nonce_bytes.to_vec()),
            tag: Some(tag.as_ref().to_vec()),
        })
    }

    fn gcm_open(
        &self,
        ciphertext: &[u8],
        iv: Option<&[u8]>,
        tag: Option<&[u8]>,
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let nonce = match iv {
            Some(iv) => gcm_nonce(iv)?,
            None => {
                return Err(CryptoError::BadInput(format!(
                    "AES-GCM decryption needs the {GCM_NONCE_LEN}-byte nonce (IV) used to encrypt"
                )))
            }
        };
        let tag = match tag {
            Some(tag) if tag.len() == GCM_TAG_LEN => tag,
            Some(tag) => {
                return Err(CryptoError::BadInput(format!(
                    "an AES-GCM tag of {} bytes was given; {GCM_TAG_LEN} bytes are accepted",
                    tag.len()
                )))
            }
            None => {
                return Err(CryptoError::BadInput(format!(
                    "AES-GCM decryption needs the {GCM_TAG_LEN}-byte authentication tag"
                )))
            }
        };
        let mut plaintext = Zeroizing::new(vec![0u8; ciphertext.len()]);
        self.gcm
            .open_separate_gather(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                ciphertext,
                tag,
                &mut plaintext,
            )
            .map_err(|_| {
                CryptoError::Integrity(
                    "the AES-GCM tag does not match: wrong key, nonce or AAD, or altered ciphertext",
                )
            })?;
        Ok(plaintext)
    }

    fn cbc_encrypt(&self, plaintext: &[u8], iv: Option<&[u8]>) -> Result<Sealed, CryptoError> {
        let iv_bytes = match iv {
            Some(iv) => cbc_iv(iv)?,
            None => {
                let mut iv = [0u8; CBC_IV_LEN];
                fill(&mut iv)?;
                iv
            }
        };
        // Room for the padding, so the plaintext is not copied on growth.
        let mut in_out = Zeroizing::new(Vec::with_capacity(plaintext.len() + BLOCK_LEN));
        in_out.extend_from_slice(plaintext);
        self.cbc_encrypt
            .less_safe_encrypt(
                &mut *in_out,
                EncryptionContext::Iv128(FixedLength::from(iv_bytes)),
            )
            .map_err(|_| CryptoError::Failed("AWS-LC failed to encrypt with AES-CBC"))?;
        Ok(Sealed {
            ciphertext: std::mem::take(&mut *in_out),
            iv: Some(iv_bytes.to_vec()),
            tag: None,
        })
    }

    fn cbc_decrypt(
        &self,
        ciphertext: &[u8],
        iv: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let iv_bytes = match iv {
            Some(iv) => cbc_iv(iv)?,
            None => {
                return Err(CryptoError::BadInput(format!(
                    "AES-CBC decryption needs the {CBC_IV_LEN}-byte IV used to encrypt"
                )))
            }
        };
        if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(BLOCK_LEN) {
            return Err(CryptoError::BadInput(format!(
                "an AES-CBC ciphertext of {} bytes was given; a non-zero multiple of {BLOCK_LEN} bytes is accepted",
                ciphertext.len()
            )));
        }
        let mut in_out = Zeroizing::new(ciphertext.to_vec());
        let len = self
            .cbc_decrypt
            .decrypt(
                &mut in_out,
                DecryptionContext::Iv128(FixedLength::from(iv_bytes)),
            )
            .map_err(|_| {
                CryptoError::Integrity(
                    "the AES-CBC padding does not match: wrong key or IV, or altered ciphertext",
                )
            })?
            .len();
        in_out.truncate(len);
        Ok(in_out)
    }
}

/// RFC 5649 wrap of `plaintext` (1 byte or more) under the AES key `key`:
/// AWS-LC's for AES-128 and AES-256, [`super::kwp`] for AES-192.
fn wrap(key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if plaintext.is_empty() {
        return Err(CryptoError::BadInput(
            "RFC 5649 key wrap was given an empty plaintext; 1 byte or more is accepted".to_owned(),
        ));
    }
    if key.len() == 24 {
        return kwp::wrap(key, plaintext);
    }
    let kek = kek(key)?;
    let padded = plaintext.len().div_ceil(8) * 8;
    let mut out = vec![0u8; padded + KWP_OVERHEAD];
    let len = kek
        .wrap_with_padding(plaintext, &mut out)
        .map_err(|_| {
            CryptoError::BadInput(
                "RFC 5649 key wrap refused the plaintext; 1 byte to 2^32 - 1 bytes are accepted"
                    .to_owned(),
            )
        })?
        .len();
    out.truncate(len);
    Ok(out)
}

/// RFC 5649 unwrap of `ciphertext` (a multiple of 8 bytes, 16 or more):
/// AWS-LC's for AES-128 and AES-256, [`super::kwp`] for AES-192.
fn unwrap(key: &[u8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if ciphertext.len() < 2 * KWP_OVERHEAD || !ciphertext.len().is_multiple_of(8) {
        return Err(CryptoError::BadInput(format!(
            "an RFC 5649 ciphertext of {} bytes was given; a multiple of 8 bytes, 16 or more, is accepted",
            ciphertext.len()
        )));
    }
    if key.len() == 24 {
        return kwp::unwrap(key, ciphertext);
    }
    let kek = kek(key)?;
    let mut out = Zeroizing::new(vec![0u8; ciphertext.len() - KWP_OVERHEAD]);
    let len = kek
        .unwrap_with_padding(ciphertext, &mut out)
        .map_err(|_| {
            CryptoError::Integrity(
                "the RFC 5649 integrity check does not match: wrong key or altered ciphertext",
            )
        })?
        .len();
    out.truncate(len);
    Ok(out)
}

/// The key-encryption key; AWS-LC's key wrap takes AES-128 and AES-256.
pub(super) fn kek(key: &[u8]) -> Result<AesKek, CryptoError> {
    let cipher = match key.len() {
        16 => &key_wrap::AES_128,
        32 => &key_wrap::AES_256,
        n => {
            return Err(CryptoError::BadKey(format!(
                "AWS-LC's RFC 5649 key wrap was asked with an AES key of {} bits; it takes 128 and 256-bit keys",
                n * 8
            )))
        }
    };
    AesKek::new(cipher, key).map_err(|_| CryptoError::Failed("AWS-LC refused the AES key-wrap key"))
}

fn gcm_nonce(iv: &[u8]) -> Result<[u8; GCM_NONCE_LEN], CryptoError> {
    iv.try_into().map_err(|_| {
        CryptoError::BadInput(format!(
            "an AES-GCM nonce of {} bytes was given; {GCM_NONCE_LEN} bytes are accepted",
            iv.len()
        ))
    })
}

fn cbc_iv(iv: &[u8]) -> Result<[u8; CBC_IV_LEN], CryptoError> {
    iv.try_into().map_err(|_| {
        CryptoError::BadInput(format!(
            "an AES-CBC IV of {} bytes was given; {CBC_IV_LEN} bytes are accepted",
            iv.len()
        ))
    })
}

pub(super) fn no_iv(cipher: Cipher, iv: Option<&[u8]>) -> Result<(), CryptoError> {
    match iv {
        None => Ok(()),
        Some(_) => Err(CryptoError::BadInput(format!(
            "{} takes no IV; only AES-GCM and AES-CBC do",
            cipher.name()
        ))),
    }
}

pub(super) fn no_aad(cipher: Cipher) -> CryptoError {
    CryptoError::BadInput(format!(
        "{} takes no additional authenticated data; only AES-GCM does",
        cipher.name()
    ))
}
