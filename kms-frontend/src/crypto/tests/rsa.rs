//! RSA: encryption round trips on a generated 2048-bit key, from the
//! private key and from the public SPKI; PSS and PKCS#1 v1.5 signatures.

use super::{private, public, rsa2048};
use crate::crypto::{Cipher, CryptoError, Signature};

const RSA_CIPHERS: [Cipher; 3] = [
    Cipher::RsaOaepSha1,
    Cipher::RsaOaepSha256,
    Cipher::RsaPkcs1v15,
];

#[test]
fn rsa_encryption_round_trips_from_private_and_public_key() {
    let pair = rsa2048();
    let private = private(pair);
    let public = public(pair);
    let message = b"a 32-byte AES key goes in here..";
    for cipher in RSA_CIPHERS {
        for encrypting in [&private, &public] {
            let sealed = encrypting.encrypt(cipher, message, None, &[]).unwrap();
            assert_eq!(sealed.ciphertext.len(), 256, "{cipher:?}");
            assert_eq!((sealed.iv.as_ref(), sealed.tag.as_ref()), (None, None));
            let opened = private
                .decrypt(cipher, &sealed.ciphertext, None, None, &[])
                .unwrap();
            assert_eq!(&opened[..], message, "{cipher:?}");
        }
    }
}

#[test]
fn rsa_encryption_is_randomized_and_hash_bound() {
    let pair = rsa2048();
    let private = private(pair);
    let a = private
        .encrypt(Cipher::RsaOaepSha256, b"m", None, &[])
        .unwrap();
    let b = private
        .encrypt(Cipher::RsaOaepSha256, b"m", None, &[])
        .unwrap();
    assert_ne!(a.ciphertext, b.ciphertext);
    // Decrypting with the other OAEP hash fails the padding check.
    let err = private
        .decrypt(Cipher::RsaOaepSha1, &a.ciphertext, None, None, &[])
        .unwrap_err();
    assert!(matches!(err, CryptoError::Integrity(_)), "{err}");
}

#[test]
fn rsa_refusals() {
    let pair = rsa2048();
    let private = private(pair);
    let public = public(pair);
    let sealed = public
        .encrypt(Cipher::RsaOaepSha1, b"m", None, &[])
        .unwrap();
    let err = public
        .decrypt(Cipher::RsaOaepSha1, &sealed.ciphertext, None, None, &[])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "RSA-OAEP SHA-1 decryption needs the RSA private key; this is the public key"
    );
    // OAEP SHA-256 on 2048 bits takes at most 256 - 2 * 32 - 2 = 190 bytes.
    assert!(public
        .encrypt(Cipher::RsaOaepSha256, &[1u8; 190], None, &[])
        .is_ok());
    let err = public
        .encrypt(Cipher::RsaOaepSha256, &[1u8; 191], None, &[])
        .unwrap_err();
    assert!(matches!(err, CryptoError::BadInput(_)), "{err}");
    assert!(matches!(
        public.encrypt(Cipher::RsaPkcs1v15, b"m", Some(&[0u8; 16]), &[]),
        Err(CryptoError::BadInput(_))
    ));
    assert!(matches!(
        public.encrypt(Cipher::RsaPkcs1v15, b"m", None, b"aad"),
        Err(CryptoError::BadInput(_))
    ));
    assert!(matches!(
        private.decrypt(Cipher::RsaOaepSha1, &[0u8; 255], None, None, &[]),
        Err(CryptoError::BadInput(_))
    ));
    assert!(matches!(
        private.encrypt(Cipher::AesGcm, b"m", None, &[]),
        Err(CryptoError::BadKey(_))
    ));
    let err = public.sign(Signature::RsaPssSha256, b"m").unwrap_err();
    assert!(matches!(err, CryptoError::BadKey(_)), "{err}");
    let err = private.sign(Signature::EcdsaSha256, b"m").unwrap_err();
    assert_eq!(
        err.to_string(),
        "ECDSA SHA-256 needs an EC key; this is an RSA key"
    );
}

#[test]
fn rsa_signatures_verify_and_a_tampered_message_does_not() {
    let pair = rsa2048();
    let private = private(pair);
    let public = public(pair);
    for sig in [
        Signature::RsaPkcs1v15Sha256,
        Signature::RsaPkcs1v15Sha384,
        Signature::RsaPkcs1v15Sha512,
        Signature::RsaPssSha256,
        Signature::RsaPssSha384,
        Signature::RsaPssSha512,
    ] {
        let message = b"the quick brown fox";
        let signature = private.sign(sig, message).unwrap();
        assert_eq!(signature.len(), 256, "{sig:?}");
        assert!(public.verify(sig, message, &signature).unwrap(), "{sig:?}");
        assert!(private.verify(sig, message, &signature).unwrap(), "{sig:?}");
        assert!(!public
            .verify(sig, b"the quick brown fix", &signature)
            .unwrap());
        assert!(!public.verify(sig, message, &signature[1..]).unwrap());
    }
    // PKCS#1 v1.5 is deterministic, PSS is salted.
    let a = private.sign(Signature::RsaPkcs1v15Sha256, b"m").unwrap();
    let b = private.sign(Signature::RsaPkcs1v15Sha256, b"m").unwrap();
    assert_eq!(a, b);
    let a = private.sign(Signature::RsaPssSha256, b"m").unwrap();
    let b = private.sign(Signature::RsaPssSha256, b"m").unwrap();
    assert_ne!(a, b);
    // A signature made with one padding does not verify with the other.
    assert!(!public
        .verify(Signature::RsaPkcs1v15Sha256, b"m", &a)
        .unwrap());
}

/// Random bytes from AWS-LC for the `rsa` crate's public-key operations
/// (used here only to check interoperability, never for private keys).
struct AwsLcRng;

impl rsa::rand_core::RngCore for AwsLcRng {
    fn next_u32(&mut self) -> u32 {
        let mut bytes = [0u8; 4];
        self.fill_bytes(&mut bytes);
        u32::from_le_bytes(bytes)
    }
    fn next_u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        self.fill_bytes(&mut bytes);
        u64::from_le_bytes(bytes)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        aws_lc_rs::rand::fill(dest).unwrap();
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rsa::rand_core::CryptoRng for AwsLcRng {}

/// Another implementation (the `rsa` crate, public-key side only) encrypts
/// to our SPKI and checks our signatures: the paddings are the standard ones.
#[test]
fn rsa_interoperates_with_the_rsa_crate() {
    use rsa::pkcs8::DecodePublicKey;
    use rsa::sha2::{Digest, Sha256};
    let pair = rsa2048();
    let private = private(pair);
    let theirs = rsa::RsaPublicKey::from_public_key_der(&pair.public_spki).unwrap();
    let message = b"wrapped elsewhere";

    let oaep = theirs
        .encrypt(&mut AwsLcRng, rsa::Oaep::new::<Sha256>(), message)
        .unwrap();
    let opened = private
        .decrypt(Cipher::RsaOaepSha256, &oaep, None, None, &[])
        .unwrap();
    assert_eq!(&opened[..], message);
    let pkcs1 = theirs
        .encrypt(&mut AwsLcRng, rsa::Pkcs1v15Encrypt, message)
        .unwrap();
    let opened = private
        .decrypt(Cipher::RsaPkcs1v15, &pkcs1, None, None, &[])
        .unwrap();
    assert_eq!(&opened[..], message);

    let digest = Sha256::digest(message);
    let pss = private.sign(Signature::RsaPssSha256, message).unwrap();
    // Salt of the hash length (32 bytes), MGF1 SHA-256.
    theirs
        .verify(rsa::Pss::new_with_salt::<Sha256>(32), &digest, &pss)
        .unwrap();
    let pkcs1_sig = private.sign(Signature::RsaPkcs1v15Sha256, message).unwrap();
    theirs
        .verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest, &pkcs1_sig)
        .unwrap();
}
