//! Software cryptography on clear KMS keys, with aws-lc-rs (AWS-LC, a
//! constant-time library with a FIPS build): key generation, AES-GCM,
//! AES-CBC with PKCS#7 padding, AES key wrap with padding (RFC 5649),
//! RSA-OAEP and RSA PKCS#1 v1.5 encryption, RSA PSS and PKCS#1 v1.5
//! signatures, ECDSA on P-256/384/521.
//!
//! The keys come here in clear, unwrapped by the caller (through hsmd), as
//! [`MaterialFormat`] bytes; a [`ClearKey`] parses them once and serves
//! every operation after that. No I/O, no logging, and nothing of the crate
//! is used: the room sits beside `access` and `hsm` in the crate's map.
//! The `rsa` crate is not used for private-key operations here (it is open
//! to the Marvin timing attack).
//!
//! Every [`CryptoError`] message is one bounded sentence built from static
//! text and numbers only: never key bytes, never the caller's data.

mod ec;
mod generate;
mod key;
mod kwp;
mod rsa;
mod symmetric;
#[cfg(test)]
mod tests;

use zeroize::Zeroizing;

pub use generate::{generate_aes, generate_ec, generate_rsa, generate_secret, random};
pub use key::ClearKey;
pub use symmetric::{CBC_IV_LEN, GCM_NONCE_LEN, GCM_TAG_LEN};

/// The most bytes [`random`] and [`generate_secret`] return in one call
/// (64 KiB), so a request cannot make the server allocate without bound.
pub const MAX_RANDOM_LEN: usize = 65_536;

/// Why a software operation failed; Display is one bounded sentence, never
/// key bytes. Each message names what was wrong and what is accepted.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The key cannot be used as asked: its material does not parse as the
    /// stated format, or its kind does not fit the operation (a public key
    /// asked to decrypt, an RSA key asked for AES-GCM).
    #[error("{0}")]
    BadKey(String),
    /// The caller's input is malformed: wrong IV or tag length, AAD for a
    /// cipher that takes none, a plaintext too long for the RSA key.
    #[error("{0}")]
    BadInput(String),
    /// The algorithm or combination is not offered (an ECDSA hash the
    /// curve's signer lacks, a key size outside the supported ones).
    #[error("{0}")]
    Unsupported(String),
    /// The ciphertext did not authenticate or decrypt: the AES-GCM tag, the
    /// RFC 5649 integrity check, the CBC padding or the RSA padding does not
    /// match. No plaintext is returned.
    #[error("{0}")]
    Integrity(&'static str),
    /// AWS-LC refused an operation on valid input (random generator or
    /// internal failure).
    #[error("{0}")]
    Failed(&'static str),
}

/// `map_err` adapter: any AWS-LC error becomes [`CryptoError::Failed`]
/// with `message` (AWS-LC's errors carry no detail worth passing on).
fn failed<E>(message: &'static str) -> impl Fn(E) -> CryptoError {
    move |_| CryptoError::Failed(message)
}

/// The clear material of a KMS key as stored (before wrapping / after
/// unwrapping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaterialFormat {
    /// AES key or SecretData bytes, as they are.
    Raw,
    /// A private key, PKCS#8 DER (RFC 5208 / RFC 5958).
    Pkcs8,
    /// A public key, X.509 SubjectPublicKeyInfo DER (RFC 5280 section 4.1).
    Spki,
}

impl MaterialFormat {
    /// The stored name: `"raw"`, `"pkcs8"` or `"spki"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Pkcs8 => "pkcs8",
            Self::Spki => "spki",
        }
    }

    /// The format of a stored name ([`MaterialFormat::name`]); `None` for
    /// any other string.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "raw" => Some(Self::Raw),
            "pkcs8" => Some(Self::Pkcs8),
            "spki" => Some(Self::Spki),
            _ => None,
        }
    }
}

/// The NIST curves of EC keys (KMIP 2.1 section 11.24, RecommendedCurve:
/// P-256, P-384, P-521).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// NIST P-256 (secp256r1).
    P256,
    /// NIST P-384 (secp384r1).
    P384,
    /// NIST P-521 (secp521r1).
    P521,
}

impl Curve {
    /// The curve's size in bits: 256, 384 or 521.
    pub fn bits(self) -> u32 {
        match self {
            Self::P256 => 256,
            Self::P384 => 384,
            Self::P521 => 521,
        }
    }

    /// The NIST name: `"P-256"`, `"P-384"` or `"P-521"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
            Self::P521 => "P-521",
        }
    }
}

/// What a [`ClearKey`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// AES key, 128, 192 or 256 bits.
    Aes,
    /// Secret data: bytes with no operation but [`ClearKey::material`].
    Secret,
    /// RSA private key (2048 to 8192 bits).
    RsaPrivate,
    /// RSA public key.
    RsaPublic,
    /// EC private key on a [`Curve`].
    EcPrivate,
    /// EC public key on a [`Curve`].
    EcPublic,
}

impl KeyKind {
    /// A name for messages: `"AES key"`, `"secret data"`, `"RSA private
    /// key"`, ...
    pub fn name(self) -> &'static str {
        match self {
            Self::Aes => "AES key",
            Self::Secret => "secret data",
            Self::RsaPrivate => "RSA private key",
            Self::RsaPublic => "RSA public key",
            Self::EcPrivate => "EC private key",
            Self::EcPublic => "EC public key",
        }
    }
}

/// A generated key pair, DER.
pub struct KeyPairDer {
    /// The private key, PKCS#8 v1 DER (RFC 5208); zeroized when dropped.
    pub private_pkcs8: Zeroizing<Vec<u8>>,
    /// The public key, SubjectPublicKeyInfo DER (RFC 5280).
    pub public_spki: Vec<u8>,
}

impl std::fmt::Debug for KeyPairDer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPairDer")
            .field("private_pkcs8_len", &self.private_pkcs8.len())
            .field("public_spki_len", &self.public_spki.len())
            .finish()
    }
}

/// Symmetric modes and asymmetric paddings KMIP asks for (KMIP 2.1
/// section 11: BlockCipherMode, PaddingMethod, HashingAlgorithm).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    /// AES-GCM (NIST SP 800-38D): 12-byte nonce, 16-byte tag, optional AAD.
    AesGcm,
    /// AES-CBC (NIST SP 800-38A) with PKCS#7 padding (RFC 5652 section
    /// 6.3): 16-byte IV.
    AesCbcPkcs7,
    /// AES key wrap with padding (RFC 5649, NIST SP 800-38F KWP), with an
    /// AES-128, AES-192 or AES-256 key; no IV (the RFC's fixed one).
    AesKeyWrapPad,
    /// RSA-OAEP (RFC 8017 section 7.1), SHA-1 and MGF1 with SHA-1, no label.
    RsaOaepSha1,
    /// RSA-OAEP (RFC 8017 section 7.1), SHA-256 and MGF1 with SHA-256, no
    /// label.
    RsaOaepSha256,
    /// RSAES-PKCS1-v1_5 (RFC 8017 section 7.2).
    RsaPkcs1v15,
}

impl Cipher {
    /// A name for messages: `"AES-GCM"`, `"RSA-OAEP SHA-256"`, ...
    pub fn name(self) -> &'static str {
        match self {
            Self::AesGcm => "AES-GCM",
            Self::AesCbcPkcs7 => "AES-CBC with PKCS#7 padding",
            Self::AesKeyWrapPad => "AES key wrap with padding (RFC 5649)",
            Self::RsaOaepSha1 => "RSA-OAEP SHA-1",
            Self::RsaOaepSha256 => "RSA-OAEP SHA-256",
            Self::RsaPkcs1v15 => "RSA PKCS#1 v1.5 encryption",
        }
    }
}

/// The hash of a [`Signature`] (KMIP 2.1 section 11.17, HashingAlgorithm).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    /// SHA-256 (FIPS 180-4).
    Sha256,
    /// SHA-384 (FIPS 180-4).
    Sha384,
    /// SHA-512 (FIPS 180-4).
    Sha512,
}

impl Hash {
    /// Position in per-hash tables: 0, 1, 2.
    fn index(self) -> usize {
        match self {
            Self::Sha256 => 0,
            Self::Sha384 => 1,
            Self::Sha512 => 2,
        }
    }
}

/// Signature algorithms (KMIP 2.1 section 11.23, DigitalSignatureAlgorithm;
/// or CryptographicAlgorithm with PaddingMethod and HashingAlgorithm).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 section 8.2).
    RsaPkcs1v15Sha256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RsaPkcs1v15Sha384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RsaPkcs1v15Sha512,
    /// RSASSA-PSS with SHA-256, MGF1 SHA-256, salt of 32 bytes (RFC 8017
    /// section 8.1).
    RsaPssSha256,
    /// RSASSA-PSS with SHA-384, MGF1 SHA-384, salt of 48 bytes.
    RsaPssSha384,
    /// RSASSA-PSS with SHA-512, MGF1 SHA-512, salt of 64 bytes.
    RsaPssSha512,
    /// ECDSA with SHA-256 (FIPS 186-5), DER signature (RFC 3279 section 2.2.3).
    EcdsaSha256,
    /// ECDSA with SHA-384, DER signature.
    EcdsaSha384,
    /// ECDSA with SHA-512, DER signature.
    EcdsaSha512,
}

impl Signature {
    /// The message hash.
    pub fn hash(self) -> Hash {
        match self {
            Self::RsaPkcs1v15Sha256 | Self::RsaPssSha256 | Self::EcdsaSha256 => Hash::Sha256,
            Self::RsaPkcs1v15Sha384 | Self::RsaPssSha384 | Self::EcdsaSha384 => Hash::Sha384,
            Self::RsaPkcs1v15Sha512 | Self::RsaPssSha512 | Self::EcdsaSha512 => Hash::Sha512,
        }
    }

    /// Whether this is an ECDSA signature (else an RSA one).
    pub fn is_ecdsa(self) -> bool {
        matches!(
            self,
            Self::EcdsaSha256 | Self::EcdsaSha384 | Self::EcdsaSha512
        )
    }

    /// A name for messages: `"RSA-PSS SHA-256"`, `"ECDSA SHA-384"`, ...
    pub fn name(self) -> &'static str {
        match self {
            Self::RsaPkcs1v15Sha256 => "RSA PKCS#1 v1.5 SHA-256",
            Self::RsaPkcs1v15Sha384 => "RSA PKCS#1 v1.5 SHA-384",
            Self::RsaPkcs1v15Sha512 => "RSA PKCS#1 v1.5 SHA-512",
            Self::RsaPssSha256 => "RSA-PSS SHA-256",
            Self::RsaPssSha384 => "RSA-PSS SHA-384",
            Self::RsaPssSha512 => "RSA-PSS SHA-512",
            Self::EcdsaSha256 => "ECDSA SHA-256",
            Self::EcdsaSha384 => "ECDSA SHA-384",
            Self::EcdsaSha512 => "ECDSA SHA-512",
        }
    }
}

/// Output of an encryption: GCM gives nonce (12 B) and tag (16 B) apart
/// from the ciphertext; CBC gives the IV (16 B), tag None; key wrap and RSA
/// give neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The ciphertext (for GCM without the tag; for CBC with the padding).
    pub ciphertext: Vec<u8>,
    /// The IV or nonce used (the caller's, or the random one drawn).
    pub iv: Option<Vec<u8>>,
    /// The GCM authentication tag.
    pub tag: Option<Vec<u8>>,
}
