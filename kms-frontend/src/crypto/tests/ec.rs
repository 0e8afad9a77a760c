//! ECDSA on P-256, P-384 and P-521.

use zeroize::Zeroizing;

use crate::crypto::{generate_ec, ClearKey, CryptoError, Curve, MaterialFormat, Signature};

fn pair(curve: Curve) -> (ClearKey, ClearKey) {
    let der = generate_ec(curve).unwrap();
    let private =
        ClearKey::from_material(MaterialFormat::Pkcs8, der.private_pkcs8.clone(), false).unwrap();
    let public =
        ClearKey::from_material(MaterialFormat::Spki, Zeroizing::new(der.public_spki), false)
            .unwrap();
    (private, public)
}

#[test]
fn ecdsa_signs_and_verifies_on_each_curve() {
    for (curve, sig) in [
        (Curve::P256, Signature::EcdsaSha256),
        (Curve::P384, Signature::EcdsaSha384),
        (Curve::P521, Signature::EcdsaSha512),
        (Curve::P521, Signature::EcdsaSha256),
    ] {
        let (private, public) = pair(curve);
        let message = b"pay 100 to alice";
        let signature = private.sign(sig, message).unwrap();
        // DER: SEQUENCE { INTEGER r, INTEGER s }.
        assert_eq!(signature[0], 0x30, "{curve:?}");
        assert!(
            public.verify(sig, message, &signature).unwrap(),
            "{curve:?}"
        );
        assert!(
            private.verify(sig, message, &signature).unwrap(),
            "{curve:?}"
        );
        assert!(!public.verify(sig, b"pay 900 to alice", &signature).unwrap());
        // The same signature under another hash does not verify.
        let other = if sig == Signature::EcdsaSha256 {
            Signature::EcdsaSha384
        } else {
            Signature::EcdsaSha256
        };
        assert!(!public.verify(other, message, &signature).unwrap());
    }
}

#[test]
fn ecdsa_refusals() {
    let (private, public) = pair(Curve::P256);
    let err = private.sign(Signature::EcdsaSha384, b"m").unwrap_err();
    assert!(matches!(err, CryptoError::Unsupported(_)), "{err}");
    assert!(err.to_string().contains("P-256"), "{err}");
    let err = public.sign(Signature::EcdsaSha256, b"m").unwrap_err();
    assert!(matches!(err, CryptoError::BadKey(_)), "{err}");
    let err = private.sign(Signature::RsaPssSha256, b"m").unwrap_err();
    assert_eq!(
        err.to_string(),
        "RSA-PSS SHA-256 needs an RSA key; this is an EC key"
    );
    assert!(matches!(
        public.encrypt(crate::crypto::Cipher::RsaOaepSha1, b"m", None, &[]),
        Err(CryptoError::BadKey(_))
    ));
    assert!(!public
        .verify(Signature::EcdsaSha256, b"m", b"not DER")
        .unwrap());
}
