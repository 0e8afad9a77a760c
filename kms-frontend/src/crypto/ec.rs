//! EC keys on P-256, P-384 and P-521: ECDSA (FIPS 186-5) with DER
//! signatures (RFC 3279 section 2.2.3, SEQUENCE { r, s }).
//!
//! AWS-LC's signers bind a curve to its hashes: P-256 signs with SHA-256,
//! P-384 with SHA-384, P-521 with SHA-256, SHA-384 or SHA-512. Verification
//! takes every curve with every one of the three hashes.

use std::sync::OnceLock;

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, EcdsaSigningAlgorithm, EcdsaVerificationAlgorithm, KeyPair as _,
    ParsedPublicKey,
};

use super::generate::natural_hash;
use super::key::wrong_key_for_signature;
use super::{CryptoError, Curve, Hash, Signature};

const CURVES: [Curve; 3] = [Curve::P256, Curve::P384, Curve::P521];

/// The DER tag of a SEQUENCE, which an SPKI starts with (a bare SEC1 point
/// starts with 0x02, 0x03 or 0x04 and is not accepted as SPKI).
const DER_SEQUENCE: u8 = 0x30;

/// AWS-LC's ECDSA signer for `curve` and `hash`, DER output; `None` where
/// AWS-LC has none.
pub(super) fn signing_algorithm(
    curve: Curve,
    hash: Hash,
) -> Option<&'static EcdsaSigningAlgorithm> {
    Some(match (curve, hash) {
        (Curve::P256, Hash::Sha256) => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        (Curve::P384, Hash::Sha384) => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        (Curve::P521, Hash::Sha256) => &signature::ECDSA_P521_SHA256_ASN1_SIGNING,
        (Curve::P521, Hash::Sha384) => &signature::ECDSA_P521_SHA384_ASN1_SIGNING,
        (Curve::P521, Hash::Sha512) => &signature::ECDSA_P521_SHA512_ASN1_SIGNING,
        _ => return None,
    })
}

/// AWS-LC's ECDSA verifier for `curve` and `hash`, DER signatures.
fn verification_algorithm(curve: Curve, hash: Hash) -> &'static EcdsaVerificationAlgorithm {
    match (curve, hash) {
        (Curve::P256, Hash::Sha256) => &signature::ECDSA_P256_SHA256_ASN1,
        (Curve::P256, Hash::Sha384) => &signature::ECDSA_P256_SHA384_ASN1,
        (Curve::P256, Hash::Sha512) => &signature::ECDSA_P256_SHA512_ASN1,
        (Curve::P384, Hash::Sha256) => &signature::ECDSA_P384_SHA256_ASN1,
        (Curve::P384, Hash::Sha384) => &signature::ECDSA_P384_SHA384_ASN1,
        (Curve::P384, Hash::Sha512) => &signature::ECDSA_P384_SHA512_ASN1,
        (Curve::P521, Hash::Sha256) => &signature::ECDSA_P521_SHA256_ASN1,
        (Curve::P521, Hash::Sha384) => &signature::ECDSA_P521_SHA384_ASN1,
        (Curve::P521, Hash::Sha512) => &signature::ECDSA_P521_SHA512_ASN1,
    }
}

/// An EC public key, with a verifier per hash made on first use.
pub(super) struct EcPublic {
    curve: Curve,
    spki: Vec<u8>,
    verifiers: [OnceLock<ParsedPublicKey>; 3],
}

impl EcPublic {
    /// Parses SubjectPublicKeyInfo DER; `None` when it is no key on
    /// P-256, P-384 or P-521.
    pub(super) fn from_spki(der: &[u8]) -> Option<Self> {
        if der.first() != Some(&DER_SEQUENCE) {
            return None;
        }
        CURVES.into_iter().find_map(|curve| {
            let parsed =
                ParsedPublicKey::new(verification_algorithm(curve, Hash::Sha256), der).ok()?;
            let public = Self {
                curve,
                spki: der.to_vec(),
                verifiers: Default::default(),
            };
            let _ = public.verifiers[Hash::Sha256.index()].set(parsed);
            Some(public)
        })
    }

    /// The curve.
    pub(super) fn curve(&self) -> Curve {
        self.curve
    }

    /// The SubjectPublicKeyInfo DER.
    pub(super) fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// Verifies an ECDSA DER signature: `Ok(false)` when it does not verify.
    pub(super) fn verify(
        &self,
        sig: Signature,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, CryptoError> {
        if !sig.is_ecdsa() {
            return Err(wrong_key_for_signature(sig, "an EC key"));
        }
        let hash = sig.hash();
        let slot = &self.verifiers[hash.index()];
        let verifier = match slot.get() {
            Some(verifier) => verifier,
            None => {
                let parsed =
                    ParsedPublicKey::new(verification_algorithm(self.curve, hash), &self.spki)
                        .map_err(|_| {
                            CryptoError::Failed("AWS-LC refused the EC public key for verification")
                        })?;
                // Another thread may have set it first: both are the same key.
                let _ = slot.set(parsed);
                slot.get()
                    .ok_or(CryptoError::Failed("the ECDSA verifier was not kept"))?
            }
        };
        Ok(verifier.verify_sig(message, signature).is_ok())
    }
}

/// An EC private key, with a signer per hash AWS-LC offers on its curve
/// (the curve's own hash parsed at once, others on first use), and its
/// public half.
pub(super) struct EcPrivate {
    signers: [OnceLock<EcdsaKeyPair>; 3],
    public: EcPublic,
}

impl EcPrivate {
    /// Parses PKCS#8 DER; `None` when it is no key on P-256, P-384 or P-521.
    pub(super) fn from_pkcs8(der: &[u8]) -> Option<Result<Self, CryptoError>> {
        CURVES.into_iter().find_map(|curve| {
            let hash = natural_hash(curve);
            let pair = EcdsaKeyPair::from_pkcs8(signing_algorithm(curve, hash)?, der).ok()?;
            Some(Self::new(curve, hash, pair))
        })
    }

    fn new(curve: Curve, hash: Hash, pair: EcdsaKeyPair) -> Result<Self, CryptoError> {
        let spki: PublicKeyX509Der = pair.public_key().as_der().map_err(|_| {
            CryptoError::Failed("AWS-LC failed to encode the EC public key as SPKI")
        })?;
        let public = EcPublic {
            curve,
            spki: spki.as_ref().to_vec(),
            verifiers: Default::default(),
        };
        let private = Self {
            signers: Default::default(),
            public,
        };
        let _ = private.signers[hash.index()].set(pair);
        Ok(private)
    }

    /// The public half.
    pub(super) fn public(&self) -> &EcPublic {
        &self.public
    }

    /// Signs `message` (hashed here) with ECDSA; `pkcs8` is the key's
    /// material, parsed again for a hash other than the curve's own.
    pub(super) fn sign(
        &self,
        sig: Signature,
        message: &[u8],
        pkcs8: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        if !sig.is_ecdsa() {
            return Err(wrong_key_for_signature(sig, "an EC key"));
        }
        let curve = self.public.curve;
        let hash = sig.hash();
        let slot = &self.signers[hash.index()];
        let signer = match slot.get() {
            Some(signer) => signer,
            None => {
                let algorithm = signing_algorithm(curve, hash).ok_or_else(|| {
                    CryptoError::Unsupported(format!(
                        "{} with a {} key is not offered; P-256 signs with SHA-256, P-384 with SHA-384, P-521 with SHA-256, SHA-384 or SHA-512",
                        sig.name(),
                        curve.name()
                    ))
                })?;
                let pair = EcdsaKeyPair::from_pkcs8(algorithm, pkcs8).map_err(|_| {
                    CryptoError::Failed("AWS-LC refused the EC private key for signing")
                })?;
                // Another thread may have set it first: both are the same key.
                let _ = slot.set(pair);
                slot.get()
                    .ok_or(CryptoError::Failed("the ECDSA signer was not kept"))?
            }
        };
        let signature = signer
            .sign(&aws_lc_rs::rand::SystemRandom::new(), message)
            .map_err(|_| CryptoError::Failed("AWS-LC failed to sign with the EC key"))?;
        Ok(signature.as_ref().to_vec())
    }
}
