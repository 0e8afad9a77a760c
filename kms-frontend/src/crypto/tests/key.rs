//! ClearKey: what from_material makes of each generator's output, the
//! material kept, Debug without secrets, and bad DER refused.

use zeroize::Zeroizing;

use super::{private, public, rsa2048};
use crate::crypto::{
    generate_aes, generate_ec, generate_rsa, generate_secret, random, ClearKey, CryptoError, Curve,
    KeyKind, MaterialFormat, MAX_RANDOM_LEN,
};

#[test]
fn from_material_of_generated_keys() {
    for bits in [128, 192, 256] {
        let bytes = generate_aes(bits).unwrap();
        assert_eq!(bytes.len() as u32 * 8, bits);
        let key = ClearKey::from_material(MaterialFormat::Raw, bytes.clone(), true).unwrap();
        assert_eq!(
            (key.kind(), key.bits(), key.curve()),
            (KeyKind::Aes, bits, None)
        );
        assert_eq!(key.material(), bytes);
        assert_eq!(key.public_spki(), None);
    }
    let secret = generate_secret(48).unwrap();
    let key = ClearKey::from_material(MaterialFormat::Raw, secret.clone(), false).unwrap();
    assert_eq!((key.kind(), key.bits()), (KeyKind::Secret, 384));
    assert_eq!(key.material(), secret);
    assert!(matches!(
        key.encrypt(crate::crypto::Cipher::AesGcm, b"m", None, &[]),
        Err(CryptoError::BadKey(_))
    ));

    let pair = rsa2048();
    let (private, public) = (private(pair), public(pair));
    assert_eq!(
        (private.kind(), private.bits()),
        (KeyKind::RsaPrivate, 2048)
    );
    assert_eq!((public.kind(), public.bits()), (KeyKind::RsaPublic, 2048));
    assert_eq!(private.public_spki(), Some(pair.public_spki.clone()));
    assert_eq!(public.public_spki(), Some(pair.public_spki.clone()));
    assert_eq!(private.material(), pair.private_pkcs8);

    for (curve, bits) in [(Curve::P256, 256), (Curve::P384, 384), (Curve::P521, 521)] {
        let der = generate_ec(curve).unwrap();
        let private =
            ClearKey::from_material(MaterialFormat::Pkcs8, der.private_pkcs8.clone(), false)
                .unwrap();
        assert_eq!(
            (private.kind(), private.bits(), private.curve()),
            (KeyKind::EcPrivate, bits, Some(curve))
        );
        assert_eq!(private.public_spki(), Some(der.public_spki.clone()));
        let public = ClearKey::from_material(
            MaterialFormat::Spki,
            Zeroizing::new(der.public_spki.clone()),
            false,
        )
        .unwrap();
        assert_eq!(
            (public.kind(), public.bits(), public.curve()),
            (KeyKind::EcPublic, bits, Some(curve))
        );
    }
}

#[test]
fn rsa_3072_from_material() {
    let pair = generate_rsa(3072).unwrap();
    let key = private(&pair);
    assert_eq!((key.kind(), key.bits()), (KeyKind::RsaPrivate, 3072));
    assert!(matches!(
        generate_rsa(1024),
        Err(CryptoError::Unsupported(_))
    ));
}

#[test]
fn bad_der_is_refused() {
    let pair = rsa2048();
    let cases: [(MaterialFormat, Vec<u8>); 6] = [
        (MaterialFormat::Pkcs8, b"not DER at all".to_vec()),
        (MaterialFormat::Pkcs8, pair.private_pkcs8[..100].to_vec()),
        (MaterialFormat::Pkcs8, pair.public_spki.clone()),
        (MaterialFormat::Spki, pair.private_pkcs8.to_vec()),
        (MaterialFormat::Spki, vec![0x30, 0x03, 0x02, 0x01, 0x00]),
        (MaterialFormat::Spki, Vec::new()),
    ];
    for (format, bytes) in cases {
        let err = ClearKey::from_material(format, Zeroizing::new(bytes), false).unwrap_err();
        assert!(matches!(err, CryptoError::BadKey(_)), "{format:?}: {err}");
        assert!(err.to_string().len() < 200);
    }
    // A bare SEC1 point is not SPKI.
    let ec = generate_ec(Curve::P256).unwrap();
    let point = ec.public_spki[ec.public_spki.len() - 65..].to_vec();
    assert_eq!(point[0], 0x04);
    assert!(ClearKey::from_material(MaterialFormat::Spki, Zeroizing::new(point), false).is_err());
}

#[test]
fn debug_shows_no_key_bytes() {
    let bytes = Zeroizing::new(vec![0xab; 32]);
    let key = ClearKey::from_material(MaterialFormat::Raw, bytes, true).unwrap();
    let shown = format!("{key:?}");
    assert_eq!(shown, "ClearKey { kind: Aes, bits: 256 }");
    let pair = rsa2048();
    let shown = format!("{pair:?}");
    assert!(!shown.contains("private_pkcs8:"), "{shown}");
    let ec = ClearKey::from_material(
        MaterialFormat::Pkcs8,
        generate_ec(Curve::P384).unwrap().private_pkcs8,
        false,
    )
    .unwrap();
    assert_eq!(
        format!("{ec:?}"),
        "ClearKey { kind: EcPrivate, bits: 384, curve: P384 }"
    );
}

#[test]
fn material_format_names_round_trip() {
    for format in [
        MaterialFormat::Raw,
        MaterialFormat::Pkcs8,
        MaterialFormat::Spki,
    ] {
        assert_eq!(MaterialFormat::from_name(format.name()), Some(format));
    }
    assert_eq!(MaterialFormat::Pkcs8.name(), "pkcs8");
    assert_eq!(MaterialFormat::from_name("PKCS8"), None);
}

#[test]
fn random_lengths() {
    assert_eq!(random(32).unwrap().len(), 32);
    assert_ne!(random(32).unwrap(), random(32).unwrap());
    assert!(matches!(random(0), Err(CryptoError::BadInput(_))));
    assert!(matches!(
        random(MAX_RANDOM_LEN + 1),
        Err(CryptoError::BadInput(_))
    ));
    assert!(matches!(generate_secret(0), Err(CryptoError::BadInput(_))));
}

#[test]
fn clear_key_is_send_and_sync() {
    fn shared<T: Send + Sync>() {}
    shared::<ClearKey>();
}
