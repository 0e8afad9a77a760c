//! Key and random generation from AWS-LC's random generator (its CTR-DRBG
//! seeded by the operating system, NIST SP 800-90A).

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _};
use zeroize::Zeroizing;

use super::ec::signing_algorithm;
use super::{CryptoError, Curve, Hash, KeyPairDer, MAX_RANDOM_LEN};

/// `len` random bytes, 1 to [`MAX_RANDOM_LEN`].
///
/// # Errors
/// [`CryptoError::BadInput`] for a length outside 1..=65536;
/// [`CryptoError::Failed`] if the random generator fails.
pub fn random(len: usize) -> Result<Vec<u8>, CryptoError> {
    if len == 0 || len > MAX_RANDOM_LEN {
        return Err(CryptoError::BadInput(format!(
            "{len} random bytes were asked; 1 to {MAX_RANDOM_LEN} are accepted"
        )));
    }
    let mut out = vec![0u8; len];
    fill(&mut out)?;
    Ok(out)
}

/// Fills `out` from the random generator.
pub(super) fn fill(out: &mut [u8]) -> Result<(), CryptoError> {
    aws_lc_rs::rand::fill(out).map_err(|_| CryptoError::Failed("the random generator failed"))
}

/// A new AES key of `bits` (128, 192 or 256; KMIP 2.1 CryptographicLength).
///
/// # Errors
/// [`CryptoError::Unsupported`] for another size; [`CryptoError::Failed`]
/// if the random generator fails.
pub fn generate_aes(bits: u32) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if !matches!(bits, 128 | 192 | 256) {
        return Err(CryptoError::Unsupported(format!(
            "an AES key of {bits} bits was asked; 128, 192 and 256 are accepted"
        )));
    }
    let mut key = Zeroizing::new(vec![0u8; (bits / 8) as usize]);
    fill(&mut key)?;
    Ok(key)
}

/// New secret data of `len` bytes (1 to [`MAX_RANDOM_LEN`]).
///
/// # Errors
/// [`CryptoError::BadInput`] for a length outside 1..=65536;
/// [`CryptoError::Failed`] if the random generator fails.
pub fn generate_secret(len: usize) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if len == 0 || len > MAX_RANDOM_LEN {
        return Err(CryptoError::BadInput(format!(
            "secret data of {len} bytes was asked; 1 to {MAX_RANDOM_LEN} bytes are accepted"
        )));
    }
    let mut secret = Zeroizing::new(vec![0u8; len]);
    fill(&mut secret)?;
    Ok(secret)
}

/// A new RSA key pair of `bits` (2048, 3072 or 4096), public exponent
/// 65537 (FIPS 186-5 appendix A.1).
///
/// # Errors
/// [`CryptoError::Unsupported`] for another size; [`CryptoError::Failed`]
/// if AWS-LC fails to generate or encode the key.
pub fn generate_rsa(bits: u32) -> Result<KeyPairDer, CryptoError> {
    let size = match bits {
        2048 => KeySize::Rsa2048,
        3072 => KeySize::Rsa3072,
        4096 => KeySize::Rsa4096,
        _ => {
            return Err(CryptoError::Unsupported(format!(
                "an RSA key of {bits} bits was asked; 2048, 3072 and 4096 are accepted"
            )))
        }
    };
    let pair = RsaKeyPair::generate(size)
        .map_err(|_| CryptoError::Failed("AWS-LC failed to generate an RSA key pair"))?;
    let private = pair
        .as_der()
        .map_err(|_| CryptoError::Failed("AWS-LC failed to encode an RSA private key as PKCS#8"))?;
    let public: PublicKeyX509Der = pair
        .public_key()
        .as_der()
        .map_err(|_| CryptoError::Failed("AWS-LC failed to encode an RSA public key as SPKI"))?;
    Ok(KeyPairDer {
        private_pkcs8: Zeroizing::new(private.as_ref().to_vec()),
        public_spki: public.as_ref().to_vec(),
    })
}

/// A new EC key pair on `curve`.
///
/// # Errors
/// [`CryptoError::Failed`] if AWS-LC fails to generate or encode the key.
pub fn generate_ec(curve: Curve) -> Result<KeyPairDer, CryptoError> {
    let algorithm = signing_algorithm(curve, natural_hash(curve)).ok_or(CryptoError::Failed(
        "no ECDSA signer for the curve's own hash",
    ))?;
    let pair = EcdsaKeyPair::generate(algorithm)
        .map_err(|_| CryptoError::Failed("AWS-LC failed to generate an EC key pair"))?;
    let private = pair
        .to_pkcs8v1()
        .map_err(|_| CryptoError::Failed("AWS-LC failed to encode an EC private key as PKCS#8"))?;
    let public: PublicKeyX509Der = pair
        .public_key()
        .as_der()
        .map_err(|_| CryptoError::Failed("AWS-LC failed to encode an EC public key as SPKI"))?;
    Ok(KeyPairDer {
        private_pkcs8: Zeroizing::new(private.as_ref().to_vec()),
        public_spki: public.as_ref().to_vec(),
    })
}

/// The hash that matches the curve's strength (SHA-256 for P-256, SHA-384
/// for P-384, SHA-512 for P-521).
pub(super) fn natural_hash(curve: Curve) -> Hash {
    match curve {
        Curve::P256 => Hash::Sha256,
        Curve::P384 => Hash::Sha384,
        Curve::P521 => Hash::Sha512,
    }
}
