//! Every operation of docs/protocol.md against a real hsmd on a SoftHSMv2 token,
//! with results checked independently (RustCrypto) and the objects hsmd made
//! cross-checked with OpenSC's pkcs11-tool.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hsmd_e2e::{Daemon, Token};
use hsmd_protocol::b64::SecretBytes;
use hsmd_protocol::*;
use p256::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;

fn secret(b: &[u8]) -> SecretBytes {
    SecretBytes::new(b.to_vec())
}

async fn code_of<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (ErrorCode, String) {
    let e = r.expect_err("expected an error");
    match e {
        ClientError::Server(b) => (b.code, b.message),
        other => panic!("expected a server error, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_round_trips_and_verifies_independently() {
    let token = Token::new("ops");
    let d = Daemon::start(&token, "");
    let c = d.client().await;
    let slot = token.slot;
    let uid = |l: &str| format!("hsm::{slot}::{l}");

    // --- hello and status
    let hello = c.server_hello();
    assert_eq!(
        (hello.version, hello.model.as_str(), hello.identity.as_str()),
        (1, "softhsm2", "root")
    );
    assert_eq!(hello.slots, vec![slot]);
    assert_eq!(hello.admins, vec!["root".to_owned()]);
    let st = c.call(None, &Status {}).await.unwrap();
    assert_eq!(st.slots.len(), 1);
    let s0 = &st.slots[0];
    assert_eq!(
        (
            s0.slot,
            s0.token_label.as_str(),
            s0.present,
            s0.logged_in,
            s0.pin_locked
        ),
        (slot, "ops", true, true, false)
    );
    assert!(
        s0.mechanisms.iter().any(|m| m == "CKM_AES_GCM"),
        "{:?}",
        s0.mechanisms
    );
    assert_eq!(st.library.path, hsmd_e2e::SOFTHSM_LIB);

    // --- AES keys
    for bits in [128u32, 192, 256] {
        let k = c
            .call(
                None,
                &GenerateKey {
                    slot,
                    label: format!("aes{bits}"),
                    algorithm: SecretKeyAlgorithm::Aes,
                    bits,
                    extractable: false,
                },
            )
            .await
            .unwrap();
        assert_eq!(
            (k.kind, k.bits, k.sensitive, k.extractable),
            (KeyKind::Aes, bits, true, false)
        );
        assert_eq!(k.usages, vec![Usage::Encrypt, Usage::Decrypt]);
        assert_eq!(k.uid, uid(&format!("aes{bits}")));
    }
    let x = c
        .call(
            None,
            &GenerateKey {
                slot,
                label: "aesx".into(),
                algorithm: SecretKeyAlgorithm::Aes,
                bits: 256,
                extractable: true,
            },
        )
        .await
        .unwrap();
    assert_eq!((x.sensitive, x.extractable), (false, true));
    let (code, msg) = code_of(
        c.call(
            None,
            &GenerateKey {
                slot,
                label: "aes128".into(),
                algorithm: SecretKeyAlgorithm::Aes,
                bits: 128,
                extractable: false,
            },
        )
        .await,
    )
    .await;
    assert_eq!(code, ErrorCode::AlreadyExists, "{msg}");
    let (code, msg) = code_of(
        c.call(
            None,
            &GenerateKey {
                slot,
                label: "bad".into(),
                algorithm: SecretKeyAlgorithm::Aes,
                bits: 100,
                extractable: false,
            },
        )
        .await,
    )
    .await;
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(msg.contains("128, 192 or 256"), "{msg}");

    // AES-GCM: round trip, and the ciphertext checked with an independent implementation.
    let raw = c
        .call(None, &Export(KeyRef { uid: uid("aesx") }))
        .await
        .unwrap();
    assert_eq!((raw.format, raw.data.len()), (ExportFormat::Raw, 32));
    let pt = b"attack at dawn, 64 bytes of plaintext to be sure it spans blocks";
    let enc = c
        .call(
            None,
            &Encrypt {
                uid: uid("aesx"),
                algorithm: EncryptionAlgorithm::AesGcm,
                plaintext: secret(pt),
                aad: Some(b"hdr".to_vec()),
                iv: None,
            },
        )
        .await
        .unwrap();
    let (iv, tag) = (enc.iv.clone().unwrap(), enc.tag.clone().unwrap());
    assert_eq!(
        (iv.len(), tag.len(), enc.ciphertext.len()),
        (12, 16, pt.len())
    );
    {
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        let cipher = aes_gcm::Aes256Gcm::new_from_slice(raw.data.expose()).unwrap();
        let mut ct_tag = enc.ciphertext.clone();
        ct_tag.extend_from_slice(&tag);
        let out = cipher
            .decrypt(
                &nonce(&iv),
                Payload {
                    msg: &ct_tag,
                    aad: b"hdr",
                },
            )
            .unwrap();
        assert_eq!(out, pt);
    }
    let dec = c
        .call(
            None,
            &Decrypt {
                uid: uid("aesx"),
                algorithm: EncryptionAlgorithm::AesGcm,
                ciphertext: enc.ciphertext.clone(),
                iv: Some(iv.clone()),
                tag: Some(tag.clone()),
                aad: Some(b"hdr".to_vec()),
            },
        )
        .await
        .unwrap();
    assert_eq!(dec.plaintext.expose(), pt);
    let mut bad_tag = tag.clone();
    bad_tag[0] ^= 1;
    let (code, _) = code_of(
        c.call(
            None,
            &Decrypt {
                uid: uid("aesx"),
                algorithm: EncryptionAlgorithm::AesGcm,
                ciphertext: enc.ciphertext.clone(),
                iv: Some(iv),
                tag: Some(bad_tag),
                aad: Some(b"hdr".to_vec()),
            },
        )
        .await,
    )
    .await;
    assert_eq!(code, ErrorCode::HsmError);

    // AES-CBC with PKCS#7: hsmd's ciphertext equals an independent CBC encryption.
    let fixed_iv = [7u8; 16];
    let enc = c
        .call(
            None,
            &Encrypt {
                uid: uid("aesx"),
                algorithm: EncryptionAlgorithm::AesCbcPad,
                plaintext: secret(pt),
                aad: None,
                iv: Some(fixed_iv.to_vec()),
            },
        )
        .await
        .unwrap();
    {
        use cbc::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
        let expected = cbc::Encryptor::<aes::Aes256>::new_from_slices(raw.data.expose(), &fixed_iv)
            .unwrap()
            .encrypt_padded_vec_mut::<Pkcs7>(pt);
        assert_eq!(enc.ciphertext, expected);
        assert_eq!(enc.tag, None);
    }
    for k in ["aes128", "aes192", "aes256"] {
        for alg in [EncryptionAlgorithm::AesGcm, EncryptionAlgorithm::AesCbcPad] {
            let e = c
                .call(
                    None,
                    &Encrypt {
                        uid: uid(k),
                        algorithm: alg,
                        plaintext: secret(b"x"),
                        aad: None,
                        iv: None,
                    },
                )
                .await
                .unwrap();
            let d2 = c
                .call(
                    None,
                    &Decrypt {
                        uid: uid(k),
                        algorithm: alg,
                        ciphertext: e.ciphertext,
                        iv: e.iv,
                        tag: e.tag,
                        aad: None,
                    },
                )
                .await
                .unwrap();
            assert_eq!(d2.plaintext.expose(), b"x", "{k} {alg:?}");
        }
    }
    let (code, msg) = code_of(
        c.call(
            None,
            &Encrypt {
                uid: uid("aes128"),
                algorithm: EncryptionAlgorithm::AesGcm,
                plaintext: secret(b"x"),
                aad: None,
                iv: Some(vec![0; 5]),
            },
        )
        .await,
    )
    .await;
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(msg.contains("12-byte"), "{msg}");

    // --- RSA
    for bits in [2048u32, 3072] {
        let r = c
            .call(
                None,
                &GenerateKeyPair {
                    slot,
                    label: format!("rsa{bits}"),
                    algorithm: KeyPairAlgorithm::Rsa,
                    bits: Some(bits),
                    curve: None,
                    extractable: false,
                },
            )
            .await
            .unwrap();
        assert_eq!(
            (r.private.kind, r.private.bits, r.private.sensitive),
            (KeyKind::RsaPrivate, bits, true)
        );
        assert_eq!(
            (r.public.kind, r.public.bits, r.public.uid.clone()),
            (KeyKind::RsaPublic, bits, uid(&format!("rsa{bits}_pk")))
        );
        assert_eq!(r.private.usages, vec![Usage::Decrypt, Usage::Sign]);
        assert_eq!(r.public.usages, vec![Usage::Encrypt, Usage::Verify]);
    }
    let spki = c
        .call(
            None,
            &Export(KeyRef {
                uid: uid("rsa2048_pk"),
            }),
        )
        .await
        .unwrap();
    assert_eq!(spki.format, ExportFormat::SpkiDer);
    let rsa_pub = rsa::RsaPublicKey::from_public_key_der(spki.data.expose()).unwrap();
    let (code, msg) = code_of(
        c.call(
            None,
            &Export(KeyRef {
                uid: uid("rsa2048"),
            }),
        )
        .await,
    )
    .await;
    assert_eq!(code, ErrorCode::Forbidden);
    assert!(msg.contains("rsa2048_pk"), "{msg}");

    // Encryption: PKCS#1 v1.5 and OAEP-SHA1 round trip; independent encryption decrypts in the token.
    for alg in [
        EncryptionAlgorithm::RsaPkcs1v15,
        EncryptionAlgorithm::RsaOaepSha1,
    ] {
        for key in ["rsa2048", "rsa2048_pk"] {
            let e = c
                .call(
                    None,
                    &Encrypt {
                        uid: uid(key),
                        algorithm: alg,
                        plaintext: secret(b"secret"),
                        aad: None,
                        iv: None,
                    },
                )
                .await
                .unwrap();
            assert_eq!(e.ciphertext.len(), 256);
            let d2 = c
                .call(
                    None,
                    &Decrypt {
                        uid: uid("rsa2048"),
                        algorithm: alg,
                        ciphertext: e.ciphertext,
                        iv: None,
                        tag: None,
                        aad: None,
                    },
                )
                .await
                .unwrap();
            assert_eq!(d2.plaintext.expose(), b"secret");
        }
    }
    let mut rng = rand_core::OsRng;
    let outside = rsa_pub
        .encrypt(&mut rng, rsa::Oaep::new::<sha1::Sha1>(), b"from outside")
        .unwrap();
    let d2 = c
        .call(
            None,
            &Decrypt {
                uid: uid("rsa2048"),
                algorithm: EncryptionAlgorithm::RsaOaepSha1,
                ciphertext: outside,
                iv: None,
                tag: None,
                aad: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(d2.plaintext.expose(), b"from outside");
    let outside = rsa_pub
        .encrypt(&mut rng, rsa::Pkcs1v15Encrypt, b"v15")
        .unwrap();
    let d2 = c
        .call(
            None,
            &Decrypt {
                uid: uid("rsa2048"),
                algorithm: EncryptionAlgorithm::RsaPkcs1v15,
                ciphertext: outside,
                iv: None,
                tag: None,
                aad: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(d2.plaintext.expose(), b"v15");
    // OAEP-SHA256: SoftHSMv2 2.6 refuses the parameters; hsmd must say unsupported, never use another hash.
    match c
        .call(
            None,
            &Encrypt {
                uid: uid("rsa2048_pk"),
                algorithm: EncryptionAlgorithm::RsaOaepSha256,
                plaintext: secret(b"s"),
                aad: None,
                iv: None,
            },
        )
        .await
    {
        Ok(_) => {
            // A token that offers it: the hash must really be SHA-256, so a
            // ciphertext made independently with OAEP-SHA256 must decrypt.
            let outside = rsa_pub
                .encrypt(
                    &mut rand_core::OsRng,
                    rsa::Oaep::new::<sha2::Sha256>(),
                    b"s",
                )
                .unwrap();
            let d2 = c
                .call(
                    None,
                    &Decrypt {
                        uid: uid("rsa2048"),
                        algorithm: EncryptionAlgorithm::RsaOaepSha256,
                        ciphertext: outside,
                        iv: None,
                        tag: None,
                        aad: None,
                    },
                )
                .await
                .unwrap();
            assert_eq!(d2.plaintext.expose(), b"s");
        }
        Err(ClientError::Server(b)) => {
            assert_eq!(b.code, ErrorCode::Unsupported, "{}", b.message);
            assert!(
                b.message.contains("CKM_RSA_PKCS_OAEP") && b.message.contains("SHA-256"),
                "{}",
                b.message
            );
        }
        Err(e) => panic!("{e}"),
    }

    // Signatures: all RSA algorithms verified with the exported public key.
    for alg in [
        SignatureAlgorithm::RsaPkcs1v15Sha256,
        SignatureAlgorithm::RsaPkcs1v15Sha384,
        SignatureAlgorithm::RsaPkcs1v15Sha512,
        SignatureAlgorithm::RsaPssSha256,
        SignatureAlgorithm::RsaPssSha384,
        SignatureAlgorithm::RsaPssSha512,
    ] {
        let msg = b"message to sign";
        let sig = c
            .call(
                None,
                &Sign {
                    uid: uid("rsa2048"),
                    algorithm: alg,
                    data: secret(msg),
                },
            )
            .await
            .unwrap()
            .signature;
        assert_eq!(sig.len(), 256);
        let ok = match alg {
            SignatureAlgorithm::RsaPkcs1v15Sha256 => {
                rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(rsa_pub.clone())
                    .verify(msg, &rsa::pkcs1v15::Signature::try_from(&sig[..]).unwrap())
                    .is_ok()
            }
            SignatureAlgorithm::RsaPkcs1v15Sha384 => {
                rsa::pkcs1v15::VerifyingKey::<sha2::Sha384>::new(rsa_pub.clone())
                    .verify(msg, &rsa::pkcs1v15::Signature::try_from(&sig[..]).unwrap())
                    .is_ok()
            }
            SignatureAlgorithm::RsaPkcs1v15Sha512 => {
                rsa::pkcs1v15::VerifyingKey::<sha2::Sha512>::new(rsa_pub.clone())
                    .verify(msg, &rsa::pkcs1v15::Signature::try_from(&sig[..]).unwrap())
                    .is_ok()
            }
            SignatureAlgorithm::RsaPssSha256 => {
                rsa::pss::VerifyingKey::<sha2::Sha256>::new(rsa_pub.clone())
                    .verify(msg, &rsa::pss::Signature::try_from(&sig[..]).unwrap())
                    .is_ok()
            }
            SignatureAlgorithm::RsaPssSha384 => {
                rsa::pss::VerifyingKey::<sha2::Sha384>::new(rsa_pub.clone())
                    .verify(msg, &rsa::pss::Signature::try_from(&sig[..]).unwrap())
                    .is_ok()
            }
            _ => rsa::pss::VerifyingKey::<sha2::Sha512>::new(rsa_pub.clone())
                .verify(msg, &rsa::pss::Signature::try_from(&sig[..]).unwrap())
                .is_ok(),
        };
        assert!(ok, "{alg:?} signature does not verify independently");
        for key in ["rsa2048", "rsa2048_pk"] {
            let v = c
                .call(
                    None,
                    &Verify {
                        uid: uid(key),
                        algorithm: alg,
                        data: secret(msg),
                        signature: sig.clone(),
                    },
                )
                .await
                .unwrap();
            assert!(v.valid, "{alg:?} {key}");
        }
        let v = c
            .call(
                None,
                &Verify {
                    uid: uid("rsa2048_pk"),
                    algorithm: alg,
                    data: secret(b"other message"),
                    signature: sig,
                },
            )
            .await
            .unwrap();
        assert!(!v.valid, "{alg:?} verified a wrong message");
    }

    // --- EC
    for (curve, bits) in [
        (Curve::P256, 256u32),
        (Curve::P384, 384),
        (Curve::P521, 521),
    ] {
        let label = format!("ec{bits}");
        let r = c
            .call(
                None,
                &GenerateKeyPair {
                    slot,
                    label: label.clone(),
                    algorithm: KeyPairAlgorithm::Ec,
                    bits: None,
                    curve: Some(curve),
                    extractable: false,
                },
            )
            .await
            .unwrap();
        assert_eq!(
            (r.private.kind, r.private.bits, r.private.curve),
            (KeyKind::EcPrivate, bits, Some(curve))
        );
        assert_eq!(r.private.usages, vec![Usage::Sign]);
        assert_eq!(r.public.usages, vec![Usage::Verify]);
        let spki = c
            .call(
                None,
                &Export(KeyRef {
                    uid: uid(&format!("{label}_pk")),
                }),
            )
            .await
            .unwrap();
        for alg in [
            SignatureAlgorithm::EcdsaSha256,
            SignatureAlgorithm::EcdsaSha384,
            SignatureAlgorithm::EcdsaSha512,
        ] {
            let msg = b"ecdsa message";
            let sig = c
                .call(
                    None,
                    &Sign {
                        uid: uid(&label),
                        algorithm: alg,
                        data: secret(msg),
                    },
                )
                .await
                .unwrap()
                .signature;
            assert_eq!(sig[0], 0x30, "ECDSA signatures are DER");
            let ok = verify_ecdsa(curve, alg, spki.data.expose(), msg, &sig);
            assert!(ok, "{curve:?} {alg:?} does not verify independently");
            let v = c
                .call(
                    None,
                    &Verify {
                        uid: uid(&label),
                        algorithm: alg,
                        data: secret(msg),
                        signature: sig.clone(),
                    },
                )
                .await
                .unwrap();
            assert!(v.valid);
            let v = c
                .call(
                    None,
                    &Verify {
                        uid: uid(&label),
                        algorithm: alg,
                        data: secret(b"x"),
                        signature: sig,
                    },
                )
                .await
                .unwrap();
            assert!(!v.valid);
        }
        let v = c
            .call(
                None,
                &Verify {
                    uid: uid(&label),
                    algorithm: SignatureAlgorithm::EcdsaSha256,
                    data: secret(b"x"),
                    signature: b"not der".to_vec(),
                },
            )
            .await
            .unwrap();
        assert!(!v.valid);
    }
    let (code, msg) = code_of(
        c.call(
            None,
            &Sign {
                uid: uid("ec256"),
                algorithm: SignatureAlgorithm::RsaPssSha256,
                data: secret(b"x"),
            },
        )
        .await,
    )
    .await;
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(msg.contains("RSA"), "{msg}");
    // Extractable EC private key exports as PKCS#8 matching its public key.
    c.call(
        None,
        &GenerateKeyPair {
            slot,
            label: "ecx".into(),
            algorithm: KeyPairAlgorithm::Ec,
            bits: None,
            curve: Some(Curve::P256),
            extractable: true,
        },
    )
    .await
    .unwrap();
    let p8 = c
        .call(None, &Export(KeyRef { uid: uid("ecx") }))
        .await
        .unwrap();
    assert_eq!(p8.format, ExportFormat::Pkcs8Der);
    let sk = <p256::SecretKey as p256::pkcs8::DecodePrivateKey>::from_pkcs8_der(p8.data.expose())
        .unwrap();
    let pk = c
        .call(None, &Export(KeyRef { uid: uid("ecx_pk") }))
        .await
        .unwrap();
    assert_eq!(
        sk.public_key(),
        p256::PublicKey::from_public_key_der(pk.data.expose()).unwrap()
    );

    // --- list, get, random, destroy
    let all = c.call(None, &ListKeys::default()).await.unwrap().keys;
    let labels: Vec<&str> = all.iter().map(|k| k.label.as_str()).collect();
    for l in [
        "aes128",
        "aes192",
        "aes256",
        "aesx",
        "rsa2048",
        "rsa2048_pk",
        "rsa3072",
        "ec256",
        "ec521_pk",
        "ecx",
    ] {
        assert!(labels.contains(&l), "{l} missing from {labels:?}");
    }
    let only_aes = c
        .call(
            None,
            &ListKeys {
                slot: Some(slot),
                kind: Some(KeyKind::Aes),
            },
        )
        .await
        .unwrap()
        .keys;
    assert_eq!(only_aes.len(), 4);
    let (code, msg) = code_of(
        c.call(
            None,
            &ListKeys {
                slot: Some(slot + 1),
                kind: None,
            },
        )
        .await,
    )
    .await;
    assert_eq!(code, ErrorCode::NotFound);
    assert!(msg.contains(&slot.to_string()), "{msg}");
    let k = c
        .call(None, &GetKey(KeyRef { uid: uid("ec384") }))
        .await
        .unwrap();
    assert_eq!(k.curve, Some(Curve::P384));
    let r = c
        .call(
            None,
            &Random {
                len: 32,
                slot: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(r.bytes.len(), 32);
    for len in [0, 1025] {
        let (code, msg) = code_of(c.call(None, &Random { len, slot: None }).await).await;
        assert_eq!(code, ErrorCode::BadRequest);
        assert!(msg.contains("1 to 1024"), "{msg}");
    }

    // pkcs11-tool sees exactly what hsmd set.
    let objects = token.pkcs11_tool(&["--list-objects"]);
    let field = |block: &str, name: &str| -> String {
        block
            .lines()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("no {name} in {block}"))
    };
    let aes = object_block(&objects, "aes256");
    assert!(aes.starts_with("Secret Key Object; AES length 32"), "{aes}");
    assert_eq!(field(&aes, "ID:"), hex("aes256"));
    assert_eq!(field(&aes, "Usage:"), "encrypt, decrypt");
    assert_eq!(
        field(&aes, "Access:"),
        "sensitive, always sensitive, never extractable, local"
    );
    let aesx = object_block(&objects, "aesx");
    assert_eq!(field(&aesx, "Access:"), "extractable, local");
    let rsa_priv = object_block(&objects, "rsa2048");
    assert_eq!(field(&rsa_priv, "ID:"), hex("rsa2048"));
    assert_eq!(field(&rsa_priv, "Usage:"), "decrypt, sign");
    let rsa_pk = object_block(&objects, "rsa2048_pk");
    assert_eq!(field(&rsa_pk, "ID:"), hex("rsa2048_pk"));
    assert_eq!(field(&rsa_pk, "Usage:"), "encrypt, verify");
    let ec = object_block(&objects, "ec384");
    assert!(ec.starts_with("Private Key Object; EC"), "{ec}");
    assert_eq!(field(&ec, "Usage:"), "sign");

    for l in ["aes128", "rsa3072", "rsa3072_pk"] {
        assert_eq!(
            c.call(None, &Destroy(KeyRef { uid: uid(l) }))
                .await
                .unwrap()
                .uid,
            uid(l)
        );
        let (code, _) = code_of(c.call(None, &GetKey(KeyRef { uid: uid(l) })).await).await;
        assert_eq!(code, ErrorCode::NotFound);
    }
    let (code, _) = code_of(c.call(None, &Destroy(KeyRef { uid: uid("aes128") })).await).await;
    assert_eq!(code, ErrorCode::NotFound);
    let (code, msg) = code_of(
        c.call(
            None,
            &GetKey(KeyRef {
                uid: "kms::0::x".into(),
            }),
        )
        .await,
    )
    .await;
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(msg.contains("hsm::<slot>::<label>"), "{msg}");
    let after = token.pkcs11_tool(&["--list-objects"]);
    assert!(
        !after.lines().any(|l| l.trim() == "label:      aes128"),
        "{after}"
    );
    assert!(
        after.lines().any(|l| l.trim() == "label:      aes192"),
        "{after}"
    );
}

#[allow(deprecated)] // aes-gcm 0.10's nonce type is a generic-array 0.14 array
fn nonce(iv: &[u8]) -> aes_gcm::Nonce<aes_gcm::aes::cipher::consts::U12> {
    aes_gcm::Nonce::clone_from_slice(iv)
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The lines of pkcs11-tool's listing that describe the object labelled `label`.
fn object_block(listing: &str, label: &str) -> String {
    let mut blocks = Vec::new();
    let mut cur = String::new();
    for line in listing.lines() {
        if !line.starts_with(' ') && !cur.is_empty() {
            blocks.push(std::mem::take(&mut cur));
        }
        cur.push_str(line);
        cur.push('\n');
    }
    blocks.push(cur);
    blocks
        .into_iter()
        .find(|b| {
            b.lines()
                .any(|l| l.trim().strip_prefix("label:").map(str::trim) == Some(label))
        })
        .unwrap_or_else(|| panic!("no object labelled {label} in:\n{listing}"))
}

fn verify_ecdsa(
    curve: Curve,
    alg: SignatureAlgorithm,
    spki: &[u8],
    msg: &[u8],
    der: &[u8],
) -> bool {
    use sha2::Digest;
    let digest = match alg {
        SignatureAlgorithm::EcdsaSha256 => sha2::Sha256::digest(msg).to_vec(),
        SignatureAlgorithm::EcdsaSha384 => sha2::Sha384::digest(msg).to_vec(),
        _ => sha2::Sha512::digest(msg).to_vec(),
    };
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    match curve {
        Curve::P256 => p256::ecdsa::VerifyingKey::from_public_key_der(spki)
            .unwrap()
            .verify_prehash(&digest, &p256::ecdsa::Signature::from_der(der).unwrap())
            .is_ok(),
        Curve::P384 => p384::ecdsa::VerifyingKey::from_public_key_der(spki)
            .unwrap()
            .verify_prehash(&digest, &p384::ecdsa::Signature::from_der(der).unwrap())
            .is_ok(),
        // RustCrypto refuses prehashes shorter than half of P-521's field (SHA-256): use OpenSSL.
        Curve::P521 => openssl_verify(alg, spki, msg, der),
    }
}

fn openssl_verify(alg: SignatureAlgorithm, spki: &[u8], msg: &[u8], der: &[u8]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let (key, m, sig) = (
        dir.path().join("k.der"),
        dir.path().join("m"),
        dir.path().join("s"),
    );
    std::fs::write(&key, spki).unwrap();
    std::fs::write(&m, msg).unwrap();
    std::fs::write(&sig, der).unwrap();
    let hash = match alg {
        SignatureAlgorithm::EcdsaSha256 => "-sha256",
        SignatureAlgorithm::EcdsaSha384 => "-sha384",
        _ => "-sha512",
    };
    let out = std::process::Command::new("openssl")
        .args(["dgst", hash, "-keyform", "DER", "-verify"])
        .arg(&key)
        .arg("-signature")
        .arg(&sig)
        .arg(&m)
        .output()
        .expect("openssl");
    String::from_utf8_lossy(&out.stdout).contains("Verified OK")
}

#[allow(dead_code)]
fn b64(b: &[u8]) -> String {
    STANDARD.encode(b)
}
