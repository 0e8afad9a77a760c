//! AES: RFC 5649 section 6, the GCM specification's test cases, NIST SP
//! 800-38A CBC, and the refusals.

use zeroize::Zeroizing;

use super::{aes, hex};
use crate::crypto::{generate_aes, kwp, symmetric, Cipher, ClearKey, CryptoError, MaterialFormat};

const RFC5649_KEK: &str = "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8";

#[test]
fn rfc5649_section_6_twenty_octets() {
    let key = aes(RFC5649_KEK);
    let plaintext = hex("c37b7e6492584340bed12207808941155068f738");
    let sealed = key
        .encrypt(Cipher::AesKeyWrapPad, &plaintext, None, &[])
        .unwrap();
    assert_eq!(
        sealed.ciphertext,
        hex("138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a")
    );
    assert_eq!((sealed.iv, sealed.tag), (None, None));
    let opened = key
        .decrypt(Cipher::AesKeyWrapPad, &sealed.ciphertext, None, None, &[])
        .unwrap();
    assert_eq!(*opened, plaintext);
}

#[test]
fn rfc5649_section_6_seven_octets() {
    let key = aes(RFC5649_KEK);
    let plaintext = hex("466f7250617369");
    let sealed = key
        .encrypt(Cipher::AesKeyWrapPad, &plaintext, None, &[])
        .unwrap();
    assert_eq!(sealed.ciphertext, hex("afbeb0f07dfbf5419200f2ccb50bb24f"));
    let opened = key
        .decrypt(Cipher::AesKeyWrapPad, &sealed.ciphertext, None, None, &[])
        .unwrap();
    assert_eq!(*opened, plaintext);
}

#[test]
fn rfc5649_altered_ciphertext_is_refused() {
    let key = aes(RFC5649_KEK);
    for wrapped in [
        "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6b",
        "afbeb0f07dfbf5419200f2ccb50bb24e",
    ] {
        let err = key
            .decrypt(Cipher::AesKeyWrapPad, &hex(wrapped), None, None, &[])
            .unwrap_err();
        assert!(matches!(err, CryptoError::Integrity(_)), "{err}");
    }
    // AWS-LC's path (AES-256) refuses the same way.
    let key256 = aes(&"11".repeat(32));
    let mut sealed = key256
        .encrypt(Cipher::AesKeyWrapPad, b"twenty bytes of key!", None, &[])
        .unwrap();
    sealed.ciphertext[3] ^= 1;
    let err = key256
        .decrypt(Cipher::AesKeyWrapPad, &sealed.ciphertext, None, None, &[])
        .unwrap_err();
    assert!(matches!(err, CryptoError::Integrity(_)), "{err}");
}

/// The RFC 5649 code used for AES-192 gives AWS-LC's output for AES-128
/// and AES-256, for every padding length and the one-block case.
#[test]
fn own_kwp_matches_aws_lc_for_128_and_256() {
    use aws_lc_rs::key_wrap::KeyWrapPadded;
    for key_len in [16, 32] {
        let key = generate_aes(key_len as u32 * 8).unwrap();
        for len in 1..=41 {
            let plaintext: Vec<u8> = (0..len).map(|i| (i * 7 + key_len) as u8).collect();
            let mine = kwp::wrap(&key, &plaintext).unwrap();
            let mut theirs = vec![0u8; plaintext.len().div_ceil(8) * 8 + 8];
            let theirs = symmetric::kek(&key)
                .unwrap()
                .wrap_with_padding(&plaintext, &mut theirs)
                .unwrap()
                .to_vec();
            assert_eq!(mine, theirs, "key {key_len} B, plaintext {len} B");
            assert_eq!(*kwp::unwrap(&key, &mine).unwrap(), plaintext);
        }
    }
}

#[test]
fn aes_192_key_wrap_round_trips() {
    let key =
        ClearKey::from_material(MaterialFormat::Raw, generate_aes(192).unwrap(), true).unwrap();
    for len in [1, 8, 9, 16, 33] {
        let plaintext = vec![0x5a; len];
        let sealed = key
            .encrypt(Cipher::AesKeyWrapPad, &plaintext, None, &[])
            .unwrap();
        assert_eq!(sealed.ciphertext.len(), len.div_ceil(8) * 8 + 8);
        let opened = key
            .decrypt(Cipher::AesKeyWrapPad, &sealed.ciphertext, None, None, &[])
            .unwrap();
        assert_eq!(*opened, plaintext);
    }
}

/// The GCM specification (McGrew and Viega), test case 2: zero key,
/// zero nonce, one zero block.
#[test]
fn aes_gcm_test_case_2() {
    let key = aes("00000000000000000000000000000000");
    let sealed = key
        .encrypt(Cipher::AesGcm, &[0u8; 16], Some(&[0u8; 12]), &[])
        .unwrap();
    assert_eq!(sealed.ciphertext, hex("0388dace60b6a392f328c2b971b2fe78"));
    assert_eq!(sealed.tag, Some(hex("ab6e47d42cec13bdf53a67b21257bddf")));
    assert_eq!(sealed.iv, Some(vec![0u8; 12]));
}

/// The GCM specification, test case 4: AES-128, 60-byte plaintext, AAD.
#[test]
fn aes_gcm_test_case_4_with_aad() {
    let key = aes("feffe9928665731c6d6a8f9467308308");
    let plaintext = hex(
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
         1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
    );
    let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
    let nonce = hex("cafebabefacedbaddecaf888");
    let expected = hex(
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e
         21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
    );
    let tag = hex("5bc94fbc3221a5db94fae95ae7121a47");
    let sealed = key
        .encrypt(Cipher::AesGcm, &plaintext, Some(&nonce), &aad)
        .unwrap();
    assert_eq!(sealed.ciphertext, expected);
    assert_eq!(sealed.tag.as_deref(), Some(&tag[..]));
    let opened = key
        .decrypt(Cipher::AesGcm, &expected, Some(&nonce), Some(&tag), &aad)
        .unwrap();
    assert_eq!(*opened, plaintext);
}

#[test]
fn aes_gcm_wrong_tag_or_aad_is_refused_without_plaintext() {
    let key = aes("feffe9928665731c6d6a8f9467308308");
    let sealed = key
        .encrypt(Cipher::AesGcm, b"attack at dawn", None, b"header")
        .unwrap();
    let nonce = sealed.iv.clone().unwrap();
    let mut tag = sealed.tag.clone().unwrap();
    assert_eq!((nonce.len(), tag.len()), (12, 16));
    let err = key
        .decrypt(
            Cipher::AesGcm,
            &sealed.ciphertext,
            Some(&nonce),
            Some(&tag),
            b"other",
        )
        .unwrap_err();
    assert!(matches!(err, CryptoError::Integrity(_)));
    tag[0] ^= 0x80;
    let err = key
        .decrypt(
            Cipher::AesGcm,
            &sealed.ciphertext,
            Some(&nonce),
            Some(&tag),
            b"header",
        )
        .unwrap_err();
    assert!(err.to_string().contains("tag does not match"), "{err}");
}

#[test]
fn aes_gcm_192_and_256_round_trip_with_random_nonce() {
    for bits in [192, 256] {
        let key = ClearKey::from_material(MaterialFormat::Raw, generate_aes(bits).unwrap(), true)
            .unwrap();
        let a = key.encrypt(Cipher::AesGcm, b"same", None, &[]).unwrap();
        let b = key.encrypt(Cipher::AesGcm, b"same", None, &[]).unwrap();
        assert_ne!(a.iv, b.iv, "nonces are drawn afresh");
        let opened = key
            .decrypt(
                Cipher::AesGcm,
                &a.ciphertext,
                a.iv.as_deref(),
                a.tag.as_deref(),
                &[],
            )
            .unwrap();
        assert_eq!(&opened[..], b"same");
    }
}

/// NIST SP 800-38A F.2.1 (CBC-AES128.Encrypt), two blocks; PKCS#7 then
/// adds one block of sixteen 0x10 bytes.
#[test]
fn aes_cbc_sp800_38a_vector() {
    let key = aes("2b7e151628aed2a6abf7158809cf4f3c");
    let iv = hex("000102030405060708090a0b0c0d0e0f");
    let plaintext = hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
    let sealed = key
        .encrypt(Cipher::AesCbcPkcs7, &plaintext, Some(&iv), &[])
        .unwrap();
    assert_eq!(sealed.ciphertext.len(), 48);
    assert_eq!(
        sealed.ciphertext[..32],
        hex("7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2")[..]
    );
    assert_eq!((sealed.iv.as_deref(), sealed.tag), (Some(&iv[..]), None));
    let opened = key
        .decrypt(
            Cipher::AesCbcPkcs7,
            &sealed.ciphertext,
            Some(&iv),
            None,
            &[],
        )
        .unwrap();
    assert_eq!(*opened, plaintext);
}

#[test]
fn aes_cbc_round_trips_every_padding_length() {
    let key =
        ClearKey::from_material(MaterialFormat::Raw, generate_aes(256).unwrap(), true).unwrap();
    for len in 0..=33 {
        let plaintext: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let sealed = key
            .encrypt(Cipher::AesCbcPkcs7, &plaintext, None, &[])
            .unwrap();
        assert_eq!(sealed.ciphertext.len(), (len / 16 + 1) * 16);
        assert_eq!(sealed.iv.as_ref().map(Vec::len), Some(16));
        let opened = key
            .decrypt(
                Cipher::AesCbcPkcs7,
                &sealed.ciphertext,
                sealed.iv.as_deref(),
                None,
                &[],
            )
            .unwrap();
        assert_eq!(*opened, plaintext);
    }
}

#[test]
fn wrong_symmetric_inputs_are_errors() {
    let key = aes("2b7e151628aed2a6abf7158809cf4f3c");
    let bad_input = |result: Result<_, CryptoError>| {
        assert!(
            matches!(result, Err(CryptoError::BadInput(_))),
            "{result:?}"
        );
    };
    bad_input(
        key.encrypt(Cipher::AesGcm, b"x", Some(&[0u8; 16]), &[])
            .map(|_| ()),
    );
    bad_input(
        key.encrypt(Cipher::AesCbcPkcs7, b"x", Some(&[0u8; 12]), &[])
            .map(|_| ()),
    );
    bad_input(
        key.encrypt(Cipher::AesCbcPkcs7, b"x", None, b"aad")
            .map(|_| ()),
    );
    bad_input(
        key.encrypt(Cipher::AesKeyWrapPad, b"x", Some(&[0u8; 8]), &[])
            .map(|_| ()),
    );
    bad_input(
        key.encrypt(Cipher::AesKeyWrapPad, b"", None, &[])
            .map(|_| ()),
    );
    bad_input(
        key.decrypt(Cipher::AesGcm, b"x", None, Some(&[0u8; 16]), &[])
            .map(|_| ()),
    );
    bad_input(
        key.decrypt(Cipher::AesGcm, b"x", Some(&[0u8; 12]), None, &[])
            .map(|_| ()),
    );
    bad_input(
        key.decrypt(
            Cipher::AesGcm,
            b"x",
            Some(&[0u8; 12]),
            Some(&[0u8; 12]),
            &[],
        )
        .map(|_| ()),
    );
    bad_input(
        key.decrypt(Cipher::AesCbcPkcs7, &[0u8; 15], Some(&[0u8; 16]), None, &[])
            .map(|_| ()),
    );
    bad_input(
        key.decrypt(Cipher::AesCbcPkcs7, &[0u8; 16], None, None, &[])
            .map(|_| ()),
    );
    bad_input(
        key.decrypt(Cipher::AesKeyWrapPad, &[0u8; 12], None, None, &[])
            .map(|_| ()),
    );
    let err = key
        .encrypt(Cipher::RsaOaepSha256, b"x", None, &[])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "RSA-OAEP SHA-256 needs an RSA key; this is an AES key"
    );
    let err = ClearKey::from_material(MaterialFormat::Raw, Zeroizing::new(vec![7u8; 15]), true)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "an AES key of 15 bytes was given; 16, 24 or 32 bytes are accepted"
    );
    assert!(matches!(
        generate_aes(120),
        Err(CryptoError::Unsupported(_))
    ));
}
