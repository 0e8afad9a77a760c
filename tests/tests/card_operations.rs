//! On the card rig (tests/src/card.rs): every hsmd operation and hsmctl
//! command the SmartCard-HSM supports, on the real sc-hsm-embedded library,
//! with results checked by independent implementations (RustCrypto,
//! OpenSSL), and the refusals for what the card lacks.

use hsmd_e2e::card::{self, Rig, CARD_LIB, CARD_SLOT, EMPTY_SLOT};
use hsmd_e2e::{failed, ok};
use hsmd_protocol::b64::SecretBytes;
use hsmd_protocol::*;

fn secret(b: &[u8]) -> SecretBytes {
    SecretBytes::new(b.to_vec())
}

fn uid(label: &str) -> String {
    format!("hsm::{CARD_SLOT}::{label}")
}

fn refusal<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (ErrorCode, String) {
    match r {
        Err(ClientError::Server(b)) => (b.code, b.message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn cbc(label: &str, data: &[u8], iv: &[u8]) -> Encrypt {
    Encrypt {
        uid: uid(label),
        algorithm: EncryptionAlgorithm::AesCbcPad,
        plaintext: secret(data),
        aad: None,
        iv: Some(iv.to_vec()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_the_card_supports_checked_independently() {
    let Some(_rig) = Rig::take("card operations") else {
        return;
    };
    let dir = card::scratch();
    let d = card::start(&dir, "");
    let c = d.client().await;

    // --- hello and status: the real library and card.
    let hello = c.server_hello();
    assert_eq!(
        (hello.model.as_str(), hello.slots.clone()),
        ("smartcardhsm", vec![CARD_SLOT])
    );
    let st = c.call(None, &Status {}).await.unwrap();
    assert_eq!(st.library.path, CARD_LIB);
    assert_eq!(st.library.manufacturer, "CardContact (www.cardcontact.de)");
    assert_eq!(st.library.version, "2.12");
    let s = &st.slots[0];
    assert_eq!(
        (
            s.token_label.as_str(),
            s.serial.as_str(),
            s.present,
            s.logged_in,
            s.state.as_str()
        ),
        ("SC HSM test", "ESPICOHSMTR", true, true, "ready")
    );
    for m in [
        "CKM_AES_CBC",
        "CKM_ECDSA",
        "CKM_RSA_PKCS_PSS",
        "CKM_RSA_PKCS_OAEP",
    ] {
        assert!(
            s.mechanisms.iter().any(|x| x == m),
            "{m} missing: {:?}",
            s.mechanisms
        );
    }
    for m in ["CKM_AES_GCM", "CKM_AES_CBC_PAD", "CKM_ECDSA_SHA256"] {
        assert!(
            !s.mechanisms.iter().any(|x| x == m),
            "{m} offered: {:?}",
            s.mechanisms
        );
    }
    // Slot 0x5 (the empty reader) is not configured: named as such.
    let (code, msg) = refusal(
        c.call(
            None,
            &GenerateKey {
                slot: EMPTY_SLOT,
                label: "k".into(),
                algorithm: SecretKeyAlgorithm::Aes,
                bits: 128,
                extractable: false,
            },
        )
        .await,
    );
    assert!(msg.contains(&EMPTY_SLOT.to_string()), "{code:?} {msg}");

    // --- AES 128/192/256 on the card; CBC with PKCS#7 padding.
    for bits in [128u32, 192, 256] {
        let k = c
            .call(
                None,
                &GenerateKey {
                    slot: CARD_SLOT,
                    label: format!("aes{bits}"),
                    algorithm: SecretKeyAlgorithm::Aes,
                    bits,
                    extractable: false,
                },
            )
            .await
            .unwrap_or_else(|e| panic!("AES-{bits}: {e}"));
        assert_eq!(
            (k.kind, k.bits, k.sensitive, k.extractable),
            (KeyKind::Aes, bits, true, false)
        );
        assert_eq!(k.uid, uid(&format!("aes{bits}")));
    }
    // sc-hsm-embedded makes the first byte of a given CKA_ID the card's key
    // reference: with hsmd's CKA_ID (the label) aes128, aes192 and aes256
    // all became key 0x61 ('a'), each overwriting the one before
    // (docs/smartcard-hsm.md). Each must keep its own key: the same
    // plaintext and IV give three ciphertexts, and a fresh process finds all three.
    let mut seen = Vec::new();
    for bits in [128u32, 192, 256] {
        let ct = c
            .call(None, &cbc(&format!("aes{bits}"), b"one key each", &[0; 16]))
            .await
            .unwrap()
            .ciphertext;
        assert!(!seen.contains(&ct), "aes{bits} encrypts like another key");
        seen.push(ct);
    }
    let secrets = card::pkcs11_tool(&[
        "--login",
        "--pin",
        hsmd_e2e::PIN,
        "--list-objects",
        "--type",
        "secrkey",
    ]);
    let secrets = String::from_utf8_lossy(&secrets.stdout);
    for l in ["aes128", "aes192", "aes256"] {
        assert!(
            secrets.contains(&format!("label:      {l}\n")),
            "{l} is not on the card: {secrets}"
        );
    }
    c.call(None, &Destroy(KeyRef { uid: uid("aes128") }))
        .await
        .unwrap();
    c.call(None, &Destroy(KeyRef { uid: uid("aes192") }))
        .await
        .unwrap();
    let (code, _) = refusal(
        c.call(
            None,
            &GenerateKey {
                slot: CARD_SLOT,
                label: "aes256".into(),
                algorithm: SecretKeyAlgorithm::Aes,
                bits: 128,
                extractable: false,
            },
        )
        .await,
    );
    assert_eq!(code, ErrorCode::AlreadyExists);
    // The card answers 1024 bytes of CBC per command: 10 KiB + 5 goes in
    // pieces. Independent check of the chaining: CBC of the whole equals CBC
    // of the first 1024 bytes followed by CBC of the rest under the last
    // ciphertext block as IV (padding only at the very end).
    let iv = [7u8; 16];
    let pt: Vec<u8> = (0..10 * 1024 + 5).map(|i| (i % 251) as u8).collect();
    let whole = c
        .call(None, &cbc("aes256", &pt, &iv))
        .await
        .unwrap()
        .ciphertext;
    assert_eq!(whole.len(), pt.len() + 16 - pt.len() % 16);
    let tail_iv = whole[1008..1024].to_vec();
    let tail = c
        .call(None, &cbc("aes256", &pt[1024..], &tail_iv))
        .await
        .unwrap()
        .ciphertext;
    assert_eq!(
        &whole[1024..],
        &tail[..],
        "chunked CBC differs from single-shot CBC"
    );
    let back = c
        .call(
            None,
            &Decrypt {
                uid: uid("aes256"),
                algorithm: EncryptionAlgorithm::AesCbcPad,
                ciphertext: whole,
                iv: Some(iv.to_vec()),
                tag: None,
                aad: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(back.plaintext.expose(), &pt[..]);
    // No AES-GCM on the card: refused, naming the mechanism and the alternative.
    let (code, msg) = refusal(
        c.call(
            None,
            &Encrypt {
                uid: uid("aes256"),
                algorithm: EncryptionAlgorithm::AesGcm,
                plaintext: secret(b"x"),
                aad: None,
                iv: None,
            },
        )
        .await,
    );
    assert_eq!(code, ErrorCode::Unsupported, "{msg}");
    assert!(
        msg.contains("CKM_AES_GCM") && msg.contains("aes_cbc_pad"),
        "{msg}"
    );
    // Secret keys never leave the card.
    let (code, msg) = refusal(c.call(None, &Export(KeyRef { uid: uid("aes256") })).await);
    assert_eq!(code, ErrorCode::Forbidden, "{msg}");

    // --- RSA: signatures verified outside, decryption of outside ciphertexts.
    let r = c
        .call(
            None,
            &GenerateKeyPair {
                slot: CARD_SLOT,
                label: "rsa".into(),
                algorithm: KeyPairAlgorithm::Rsa,
                bits: Some(2048),
                curve: None,
                extractable: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (r.private.kind, r.private.bits, r.private.sensitive),
        (KeyKind::RsaPrivate, 2048, true)
    );
    let (code, msg) = refusal(
        c.call(
            None,
            &GenerateKeyPair {
                slot: CARD_SLOT,
                label: "big".into(),
                algorithm: KeyPairAlgorithm::Rsa,
                bits: Some(8192),
                curve: None,
                extractable: false,
            },
        )
        .await,
    );
    assert_eq!(code, ErrorCode::BadRequest, "{msg}");
    assert!(msg.contains("2048, 3072 or 4096"), "{msg}");
    // OAEP with SHA-1: the card would compute SHA-256 instead; refused.
    let (code, msg) = refusal(
        c.call(
            None,
            &Decrypt {
                uid: uid("rsa"),
                algorithm: EncryptionAlgorithm::RsaOaepSha1,
                ciphertext: vec![1; 256],
                iv: None,
                tag: None,
                aad: None,
            },
        )
        .await,
    );
    assert_eq!(code, ErrorCode::Unsupported, "{msg}");
    assert!(msg.contains("SHA-1") || msg.contains("sha1"), "{msg}");

    // The public key, exported and used outside.
    let spki = c
        .call(None, &Export(KeyRef { uid: uid("rsa_pk") }))
        .await
        .unwrap();
    assert_eq!(spki.format, ExportFormat::SpkiDer);
    let rsa_pub = {
        use rsa::pkcs8::DecodePublicKey;
        rsa::RsaPublicKey::from_public_key_der(spki.data.expose()).unwrap()
    };
    let msg = b"signed on the card";
    for alg in [
        SignatureAlgorithm::RsaPkcs1v15Sha256,
        SignatureAlgorithm::RsaPssSha256,
    ] {
        let sig = c
            .call(
                None,
                &Sign {
                    uid: uid("rsa"),
                    algorithm: alg,
                    data: secret(msg),
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"))
            .signature;
        use rsa::signature::Verifier;
        let valid = match alg {
            SignatureAlgorithm::RsaPkcs1v15Sha256 => {
                rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(rsa_pub.clone())
                    .verify(msg, &rsa::pkcs1v15::Signature::try_from(&sig[..]).unwrap())
                    .is_ok()
            }
            _ => rsa::pss::VerifyingKey::<sha2::Sha256>::new(rsa_pub.clone())
                .verify(msg, &rsa::pss::Signature::try_from(&sig[..]).unwrap())
                .is_ok(),
        };
        assert!(valid, "{alg:?} from the card does not verify outside");
        let v = c
            .call(
                None,
                &Verify {
                    uid: uid("rsa_pk"),
                    algorithm: alg,
                    data: secret(msg),
                    signature: sig,
                },
            )
            .await
            .unwrap();
        assert!(v.valid, "{alg:?} on the card");
    }
    // Ciphertexts made outside decrypt on the card (OAEP-SHA256, PKCS#1 v1.5).
    let mut rng = rand_core::OsRng;
    for (alg, ct, want) in [
        (
            EncryptionAlgorithm::RsaOaepSha256,
            rsa_pub
                .encrypt(&mut rng, rsa::Oaep::new::<sha2::Sha256>(), b"oaep")
                .unwrap(),
            &b"oaep"[..],
        ),
        (
            EncryptionAlgorithm::RsaPkcs1v15,
            rsa_pub
                .encrypt(&mut rng, rsa::Pkcs1v15Encrypt, b"v15")
                .unwrap(),
            &b"v15"[..],
        ),
    ] {
        let pt = c
            .call(
                None,
                &Decrypt {
                    uid: uid("rsa"),
                    algorithm: alg,
                    ciphertext: ct,
                    iv: None,
                    tag: None,
                    aad: None,
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(pt.plaintext.expose(), want, "{alg:?}");
    }
    // Encryption with the card's public key, decrypted on the card.
    let e = c
        .call(
            None,
            &Encrypt {
                uid: uid("rsa_pk"),
                algorithm: EncryptionAlgorithm::RsaOaepSha256,
                plaintext: secret(b"round"),
                aad: None,
                iv: None,
            },
        )
        .await
        .unwrap();
    let pt = c
        .call(
            None,
            &Decrypt {
                uid: uid("rsa"),
                algorithm: EncryptionAlgorithm::RsaOaepSha256,
                ciphertext: e.ciphertext,
                iv: None,
                tag: None,
                aad: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(pt.plaintext.expose(), b"round");

    // --- EC P-256/384/521 key pairs.
    for (label, curve) in [
        ("p256", Curve::P256),
        ("p384", Curve::P384),
        ("p521", Curve::P521),
    ] {
        let e = c
            .call(
                None,
                &GenerateKeyPair {
                    slot: CARD_SLOT,
                    label: label.into(),
                    algorithm: KeyPairAlgorithm::Ec,
                    bits: None,
                    curve: Some(curve),
                    extractable: false,
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(
            (e.private.kind, e.private.curve),
            (KeyKind::EcPrivate, Some(curve))
        );
        // Signing with the private key works on every curve.
        let sig = c
            .call(
                None,
                &Sign {
                    uid: uid(label),
                    algorithm: SignatureAlgorithm::EcdsaSha256,
                    data: secret(b"m"),
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let spki = c
            .call(
                None,
                &Export(KeyRef {
                    uid: uid(&format!("{label}_pk")),
                }),
            )
            .await
            .unwrap_or_else(|e| panic!("{label}_pk: {e}"));
        assert!(
            openssl_verify(spki.data.expose(), b"m", &sig.signature),
            "{label}: the card's ECDSA signature does not verify with OpenSSL"
        );
    }

    // --- random: from the card, the length asked for.
    let a = c
        .call(
            None,
            &Random {
                len: 64,
                slot: None,
            },
        )
        .await
        .unwrap();
    let b = c
        .call(
            None,
            &Random {
                len: 64,
                slot: None,
            },
        )
        .await
        .unwrap();
    assert_eq!((a.bytes.len(), b.bytes.len()), (64, 64));
    assert_ne!(a.bytes.expose(), b.bytes.expose());

    // --- listing and destroy.
    let listed = c
        .call(
            None,
            &ListKeys {
                slot: Some(CARD_SLOT),
                kind: Some(KeyKind::Aes),
            },
        )
        .await
        .unwrap();
    let labels: Vec<&str> = listed.keys.iter().map(|k| k.label.as_str()).collect();
    assert_eq!(labels, ["aes256"]);
    let (code, _) = refusal(c.call(None, &GetKey(KeyRef { uid: uid("aes192") })).await);
    assert_eq!(code, ErrorCode::NotFound);
    // Every object has one uid: the card labels a public key like its
    // private key, hsmd lists it as <label>_pk.
    let all = c
        .call(
            None,
            &ListKeys {
                slot: Some(CARD_SLOT),
                kind: None,
            },
        )
        .await
        .unwrap();
    let uids: Vec<&str> = all.keys.iter().map(|k| k.uid.as_str()).collect();
    let mut distinct = uids.clone();
    distinct.dedup();
    assert_eq!(uids, distinct, "a uid listed twice");
    for u in [
        "hsm::1::rsa",
        "hsm::1::rsa_pk",
        "hsm::1::p256",
        "hsm::1::p256_pk",
        "hsm::1::aes256",
    ] {
        assert!(uids.contains(&u), "{u} not listed: {uids:?}");
    }
    // A private key destroyed is gone from the card, read independently.
    c.call(None, &Destroy(KeyRef { uid: uid("p384") }))
        .await
        .unwrap();
    let objects = card::pkcs11_tool(&["--login", "--pin", hsmd_e2e::PIN, "--list-objects"]);
    let listing = String::from_utf8_lossy(&objects.stdout);
    assert!(
        listing.contains("Private Key Object; EC\n  label:      p256"),
        "{listing}"
    );
    assert!(
        !listing.contains("Private Key Object; EC\n  label:      p384"),
        "{listing}"
    );

    // --- hsmctl on the card.
    let out = ok(&d.hsmctl(None, &["status"]));
    assert!(
        out.contains("token \"SC HSM test\"") && out.contains("state=ready"),
        "{out}"
    );
    ok(&d.hsmctl(
        None,
        &[
            "create", "ec", "--slot", "1", "--label", "ctl", "--curve", "p256",
        ],
    ));
    let keys = ok(&d.hsmctl(None, &["keys"]));
    assert!(
        keys.contains("hsm::1::ctl_pk") && keys.contains("hsm::1::aes256"),
        "{keys}"
    );
    let key = ok(&d.hsmctl(None, &["key", "hsm::1::rsa"]));
    assert!(key.contains("rsa_private") && key.contains("2048"), "{key}");
    let enc = ok(&d.hsmctl(
        None,
        &[
            "--json",
            "encrypt",
            "hsm::1::aes256",
            "--algorithm",
            "aes_cbc_pad",
            "--data",
            "hello card",
        ],
    ));
    let ct: serde_json::Value = serde_json::from_str(&enc).unwrap_or_else(|e| panic!("{e}: {enc}"));
    let dec = ok(&d.hsmctl(
        None,
        &[
            "decrypt",
            "hsm::1::aes256",
            "--algorithm",
            "aes_cbc_pad",
            "--ciphertext-b64",
            ct["ciphertext"].as_str().unwrap_or_default(),
            "--iv-b64",
            ct["iv"].as_str().unwrap_or_default(),
        ],
    ));
    assert_eq!(dec, "hello card");
    let rnd = ok(&d.hsmctl(None, &["random", "16"]));
    assert_eq!(rnd.trim().len(), 24, "{rnd}");
    // The card keeps a pair as one key: its public key is not destroyed
    // alone, and destroying the private key removes both.
    let err = failed(&d.hsmctl(None, &["destroy", "hsm::1::ctl_pk"]));
    assert!(err.contains("destroy hsm::1::ctl "), "{err}");
    ok(&d.hsmctl(None, &["destroy", "hsm::1::ctl"]));
    let err = failed(&d.hsmctl(None, &["key", "hsm::1::ctl_pk"]));
    assert!(
        err.contains("not found") || err.contains("not_found"),
        "{err}"
    );
    let err = failed(&d.hsmctl(None, &["key", "hsm::1::ctl"]));
    assert!(
        err.contains("not found") || err.contains("not_found"),
        "{err}"
    );
}

/// ECDSA-SHA256 verification of `der` over `msg` with the SPKI `spki`, by OpenSSL.
fn openssl_verify(spki: &[u8], msg: &[u8], der: &[u8]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let (key, m, sig) = (
        dir.path().join("k.der"),
        dir.path().join("m"),
        dir.path().join("s"),
    );
    std::fs::write(&key, spki).unwrap();
    std::fs::write(&m, msg).unwrap();
    std::fs::write(&sig, der).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-keyform", "DER", "-verify"])
        .arg(&key)
        .arg("-signature")
        .arg(&sig)
        .arg(&m)
        .output()
        .expect("openssl");
    String::from_utf8_lossy(&out.stdout).contains("Verified OK")
}
