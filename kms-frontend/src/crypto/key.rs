//! [`ClearKey`]: a clear KMS key parsed once, serving every software
//! operation after that (a cached key does not reparse its DER per
//! request). Send and Sync: one key serves concurrent requests.

use zeroize::Zeroizing;

use super::ec::{EcPrivate, EcPublic};
use super::rsa::{RsaPrivate, RsaPublic};
use super::symmetric::AesKey;
use super::{Cipher, CryptoError, Curve, KeyKind, MaterialFormat, Sealed, Signature};

/// A usable clear key, parsed once (so a cached key does not reparse
/// PKCS#8 per request). Holds aws-lc key objects; the raw bytes it was made
/// from are zeroized when it is dropped (Zeroizing), as AWS-LC's own key
/// objects are. Debug prints the kind and size only.
pub struct ClearKey {
    material: Zeroizing<Vec<u8>>,
    inner: Inner,
}

enum Inner {
    Aes(Box<AesKey>),
    Secret,
    RsaPrivate(Box<RsaPrivate>),
    RsaPublic(Box<RsaPublic>),
    EcPrivate(Box<EcPrivate>),
    EcPublic(Box<EcPublic>),
}

impl ClearKey {
    /// From stored material. `Raw` => an AES key when `aes` is true (the
    /// length must then be 16, 24 or 32 bytes), else secret data (no
    /// operations but [`ClearKey::material`]); `Pkcs8` => an RSA (2048 to
    /// 8192 bits) or EC (P-256, P-384, P-521) private key, whichever it is;
    /// `Spki` => an RSA or EC public key.
    ///
    /// # Errors
    /// [`CryptoError::BadKey`] when the bytes are not what the format and
    /// `aes` say (an AES key of 15 bytes, DER that is no supported key).
    pub fn from_material(
        format: MaterialFormat,
        bytes: Zeroizing<Vec<u8>>,
        aes: bool,
    ) -> Result<Self, CryptoError> {
        let inner = match format {
            MaterialFormat::Raw if aes => Inner::Aes(Box::new(AesKey::new(&bytes)?)),
            MaterialFormat::Raw => Inner::Secret,
            MaterialFormat::Pkcs8 => {
                if let Some(key) = RsaPrivate::from_pkcs8(&bytes) {
                    Inner::RsaPrivate(Box::new(key?))
                } else if let Some(key) = EcPrivate::from_pkcs8(&bytes) {
                    Inner::EcPrivate(Box::new(key?))
                } else {
                    return Err(CryptoError::BadKey(
                        "the PKCS#8 material is neither an RSA private key of 2048 to 8192 bits nor an EC private key on P-256, P-384 or P-521"
                            .to_owned(),
                    ));
                }
            }
            MaterialFormat::Spki => {
                if let Some(key) = RsaPublic::from_spki(&bytes) {
                    Inner::RsaPublic(Box::new(key))
                } else if let Some(key) = EcPublic::from_spki(&bytes) {
                    Inner::EcPublic(Box::new(key))
                } else {
                    return Err(CryptoError::BadKey(
                        "the SubjectPublicKeyInfo material is neither an RSA public key of 2048 to 8192 bits nor an EC public key on P-256, P-384 or P-521"
                            .to_owned(),
                    ));
                }
            }
        };
        Ok(Self {
            material: bytes,
            inner,
        })
    }

    /// What the key is.
    pub fn kind(&self) -> KeyKind {
        match &self.inner {
            Inner::Aes(_) => KeyKind::Aes,
            Inner::Secret => KeyKind::Secret,
            Inner::RsaPrivate(_) => KeyKind::RsaPrivate,
            Inner::RsaPublic(_) => KeyKind::RsaPublic,
            Inner::EcPrivate(_) => KeyKind::EcPrivate,
            Inner::EcPublic(_) => KeyKind::EcPublic,
        }
    }

    /// The size in bits: AES key bits, RSA modulus bits, EC curve bits
    /// (521 for P-521), secret data bytes times 8.
    pub fn bits(&self) -> u32 {
        match &self.inner {
            Inner::Aes(key) => key.bits(),
            Inner::Secret => {
                u32::try_from(self.material.len().saturating_mul(8)).unwrap_or(u32::MAX)
            }
            Inner::RsaPrivate(key) => key.public().bits(),
            Inner::RsaPublic(key) => key.bits(),
            Inner::EcPrivate(key) => key.public().curve().bits(),
            Inner::EcPublic(key) => key.curve().bits(),
        }
    }

    /// The curve of an EC key; `None` for other kinds.
    pub fn curve(&self) -> Option<Curve> {
        match &self.inner {
            Inner::EcPrivate(key) => Some(key.public().curve()),
            Inner::EcPublic(key) => Some(key.curve()),
            _ => None,
        }
    }

    /// The material as stored (for Get unwrapped / export); zeroized when
    /// dropped.
    pub fn material(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.material.to_vec())
    }

    /// The public key's SubjectPublicKeyInfo DER: for a private key, that
    /// of its public half; for a public key, its own; `None` for AES keys
    /// and secret data.
    pub fn public_spki(&self) -> Option<Vec<u8>> {
        match &self.inner {
            Inner::RsaPrivate(key) => Some(key.public().spki().to_vec()),
            Inner::RsaPublic(key) => Some(key.spki().to_vec()),
            Inner::EcPrivate(key) => Some(key.public().spki().to_vec()),
            Inner::EcPublic(key) => Some(key.spki().to_vec()),
            Inner::Aes(_) | Inner::Secret => None,
        }
    }

    /// Encrypts `plaintext`. `iv`: the caller's IV/nonce or None (then
    /// random: 12 B GCM, 16 B CBC); AES key wrap and RSA take none. `aad`:
    /// GCM only (an error for others when non-empty). RSA encryption works
    /// from the public or the private key.
    ///
    /// # Errors
    /// [`CryptoError::BadKey`] when the key's kind does not fit the cipher
    /// (secret data, an EC key, an RSA cipher on an AES key); [`CryptoError::BadInput`] for a
    /// wrong IV length, AAD where none is taken, a plaintext too long for
    /// the RSA key or an empty one for RFC 5649.
    pub fn encrypt(
        &self,
        cipher: Cipher,
        plaintext: &[u8],
        iv: Option<&[u8]>,
        aad: &[u8],
    ) -> Result<Sealed, CryptoError> {
        match &self.inner {
            Inner::Aes(key) => key.encrypt(&self.material, cipher, plaintext, iv, aad),
            Inner::RsaPrivate(key) => key.public().encrypt(cipher, plaintext, iv, aad),
            Inner::RsaPublic(key) => key.encrypt(cipher, plaintext, iv, aad),
            _ => Err(wrong_key_for_cipher(cipher, self.kind_phrase())),
        }
    }

    /// Decrypts `ciphertext`. RSA ciphers need a private key here. GCM needs
    /// `iv` (12 B) and `tag` (16 B); CBC needs `iv` (16 B); `aad` is GCM's
    /// only.
    ///
    /// # Errors
    /// [`CryptoError::Integrity`] when the ciphertext does not authenticate
    /// or unpad (GCM tag, RFC 5649 check, CBC or RSA padding): no plaintext
    /// is returned; [`CryptoError::BadKey`] for a key that cannot decrypt
    /// with `cipher`; [`CryptoError::BadInput`] for missing or wrong-length
    /// IV, tag or ciphertext.
    pub fn decrypt(
        &self,
        cipher: Cipher,
        ciphertext: &[u8],
        iv: Option<&[u8]>,
        tag: Option<&[u8]>,
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        match &self.inner {
            Inner::Aes(key) => key.decrypt(&self.material, cipher, ciphertext, iv, tag, aad),
            Inner::RsaPrivate(key) => key.decrypt(cipher, ciphertext, iv, tag, aad),
            Inner::RsaPublic(_) if is_rsa_cipher(cipher) => Err(CryptoError::BadKey(format!(
                "{} decryption needs the RSA private key; this is the public key",
                cipher.name()
            ))),
            _ => Err(wrong_key_for_cipher(cipher, self.kind_phrase())),
        }
    }

    /// Signs `message` (hashed here). ECDSA signatures are DER-encoded
    /// (SEQUENCE { r, s }); PSS salt = hash length, MGF1 with the same hash.
    ///
    /// # Errors
    /// [`CryptoError::BadKey`] for a public key, or a key whose kind does
    /// not fit `sig`; [`CryptoError::Unsupported`] for an ECDSA hash the
    /// curve's signer lacks (P-256 takes SHA-256, P-384 SHA-384).
    pub fn sign(&self, sig: Signature, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match &self.inner {
            Inner::RsaPrivate(key) => key.sign(sig, message),
            Inner::EcPrivate(key) => key.sign(sig, message, &self.material),
            Inner::RsaPublic(_) if !sig.is_ecdsa() => Err(public_cannot_sign(sig, "RSA")),
            Inner::EcPublic(_) if sig.is_ecdsa() => Err(public_cannot_sign(sig, "EC")),
            _ => Err(wrong_key_for_signature(sig, self.kind_phrase())),
        }
    }

    /// Verifies `signature` on `message`, with the public or the private
    /// key. `Ok(false)` for a signature that does not verify (malformed
    /// ones included).
    ///
    /// # Errors
    /// [`CryptoError::BadKey`] for a key whose kind does not fit `sig`.
    pub fn verify(
        &self,
        sig: Signature,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, CryptoError> {
        match &self.inner {
            Inner::RsaPrivate(key) => key.public().verify(sig, message, signature),
            Inner::RsaPublic(key) => key.verify(sig, message, signature),
            Inner::EcPrivate(key) => key.public().verify(sig, message, signature),
            Inner::EcPublic(key) => key.verify(sig, message, signature),
            _ => Err(wrong_key_for_signature(sig, self.kind_phrase())),
        }
    }

    /// "an AES key", "secret data", ... for messages.
    fn kind_phrase(&self) -> &'static str {
        match self.kind() {
            KeyKind::Aes => "an AES key",
            KeyKind::Secret => "secret data",
            KeyKind::RsaPrivate | KeyKind::RsaPublic => "an RSA key",
            KeyKind::EcPrivate | KeyKind::EcPublic => "an EC key",
        }
    }
}

impl std::fmt::Debug for ClearKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("ClearKey");
        out.field("kind", &self.kind()).field("bits", &self.bits());
        if let Some(curve) = self.curve() {
            out.field("curve", &curve);
        }
        out.finish()
    }
}

fn is_rsa_cipher(cipher: Cipher) -> bool {
    matches!(
        cipher,
        Cipher::RsaOaepSha1 | Cipher::RsaOaepSha256 | Cipher::RsaPkcs1v15
    )
}

/// The refusal of `cipher` with a key that is `this` ("an AES key", ...).
pub(super) fn wrong_key_for_cipher(cipher: Cipher, this: &str) -> CryptoError {
    let needed = if is_rsa_cipher(cipher) {
        "an RSA key"
    } else {
        "an AES key"
    };
    CryptoError::BadKey(format!("{} needs {needed}; this is {this}", cipher.name()))
}

/// The refusal of `sig` with a key that is `this` ("an AES key", ...).
pub(super) fn wrong_key_for_signature(sig: Signature, this: &str) -> CryptoError {
    let needed = if sig.is_ecdsa() {
        "an EC key"
    } else {
        "an RSA key"
    };
    CryptoError::BadKey(format!("{} needs {needed}; this is {this}", sig.name()))
}

fn public_cannot_sign(sig: Signature, family: &str) -> CryptoError {
    CryptoError::BadKey(format!(
        "{} signing needs the {family} private key; this is the public key",
        sig.name()
    ))
}
