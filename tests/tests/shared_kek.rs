//! The same AES-256 KEK on two SoftHSMv2 tokens, put there by a wrap on
//! token A and an unwrap on token B under a transport key (the card's DKEK
//! in a deployment), never in clear (`hsmd_e2e::shared_kek`): bytes
//! encrypted with it on one token decrypt on the other, through PKCS#11 and
//! through two hsmd processes, and its value cannot be read on either.

use hsmd_e2e::shared_kek::{cbc_pad, inspect, put_shared_kek, TRANSPORT_SUFFIX};
use hsmd_e2e::{Daemon, Token, PIN, SOFTHSM_LIB};
use hsmd_protocol::b64::SecretBytes;
use hsmd_protocol::{Decrypt, Encrypt, EncryptionAlgorithm, GetKey, KeyKind, KeyRef, Usage};
use std::process::Command;

/// `pkcs11-tool --read-object` of the secret key `label` on `token`: its
/// output, whatever the exit status (an independent reader of the token).
fn read_value_with_pkcs11_tool(token: &Token, label: &str) -> (bool, String) {
    let out = Command::new("pkcs11-tool")
        .env("SOFTHSM2_CONF", &token.conf)
        .args(["--module", SOFTHSM_LIB, "--slot", &token.slot.to_string()])
        .args([
            "--login",
            "--pin",
            PIN,
            "--read-object",
            "--type",
            "secrkey",
        ])
        .args(["--label", label])
        .output()
        .expect("pkcs11-tool (install opensc)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_kek_on_two_tokens_by_wrap_and_unwrap_encrypts_on_one_and_decrypts_on_the_other() {
    let a = Token::new("kek-a");
    let b = Token::new("kek-b");
    assert_ne!(a.slot, b.slot);
    let kek = put_shared_kek(&a, &b, "kek").unwrap();
    // SoftHSMv2 2.6 offers RFC 5649 key wrap with padding; AES-256 wraps to 40 bytes.
    assert_eq!(kek.mechanism, "CKM_AES_KEY_WRAP_PAD");
    assert_eq!(kek.wrapped_len, 40);
    assert_eq!(kek.uid_a, format!("hsm::{}::kek", a.slot));
    assert_eq!(kek.uid_b, format!("hsm::{}::kek", b.slot));

    // Both: hsmd's identity (CKA_ID = CKA_LABEL), sensitive, not
    // extractable, 32 bytes, value unreadable, the transport key gone.
    let on_a = inspect(&a, "kek").unwrap();
    let on_b = inspect(&b, "kek").unwrap();
    // SoftHSMv2 2.6 leaves CKA_VALUE_LEN 0 on an unwrapped key (its issue
    // 628); the value is the 32 bytes of A's, as the ciphertexts below show.
    assert_eq!((on_a.value_len, on_b.value_len), (32, 0));
    for facts in [&on_a, &on_b] {
        assert_eq!(facts.id, b"kek");
        assert!(facts.sensitive);
        assert!(!facts.extractable);
        assert!(!facts.value_readable);
        assert_eq!(facts.transport_keys, 0);
    }
    // A generated it sensitive and let it be wrapped once; B received it
    // by unwrap, which PKCS#11 marks as never always-sensitive.
    assert!(on_a.local && on_a.always_sensitive && !on_a.never_extractable);
    assert!(!on_b.local && !on_b.always_sensitive && !on_b.never_extractable);
    for token in [&a, &b] {
        let (ok, text) = read_value_with_pkcs11_tool(token, "kek");
        assert!(!ok, "pkcs11-tool read the KEK's value: {text}");
        assert!(text.contains("CKR_ATTRIBUTE_SENSITIVE"), "{text}");
        let (found, text) = read_value_with_pkcs11_tool(token, &format!("kek{TRANSPORT_SUFFIX}"));
        assert!(!found && text.contains("not found"), "{text}");
    }

    // PKCS#11 on each token: AES-CBC-PAD one way, then the other.
    let iv = *b"0123456789abcdef";
    let plaintext = b"a KMS key's material, wrapped on one host, unwrapped on another";
    let ct = cbc_pad(&a, "kek", true, &iv, plaintext).unwrap();
    assert_eq!(ct.len(), 64);
    assert_eq!(cbc_pad(&b, "kek", false, &iv, &ct).unwrap(), plaintext);
    let back = cbc_pad(&b, "kek", true, &iv, b"and back").unwrap();
    assert_eq!(cbc_pad(&a, "kek", false, &iv, &back).unwrap(), b"and back");
    // The same key: the same ciphertext for the same IV on both.
    assert_eq!(cbc_pad(&b, "kek", true, &iv, plaintext).unwrap(), ct);

    // The label is taken on both now: a second transfer is refused.
    let again = put_shared_kek(&a, &b, "kek").unwrap_err().to_string();
    assert!(
        again.contains("already holds an object labelled \"kek\""),
        "{again}"
    );

    // Two hsmd processes, one per token: AES-GCM by hsmd A, decrypted by hsmd B.
    let hsmd_a = Daemon::start(&a, "");
    let hsmd_b = Daemon::start(&b, "");
    let (ca, cb) = (hsmd_a.client().await, hsmd_b.client().await);
    // hsmd's view: bits from CKA_VALUE_LEN (0 on B, above).
    for (c, uid, bits) in [(&ca, &kek.uid_a, 256), (&cb, &kek.uid_b, 0)] {
        let info = c
            .call(None, &GetKey(KeyRef { uid: uid.clone() }))
            .await
            .unwrap();
        assert_eq!((info.kind, info.bits), (KeyKind::Aes, bits));
        assert_eq!(info.id, "6b656b"); // "kek"
        assert!(info.sensitive && !info.extractable);
        assert_eq!(info.usages, vec![Usage::Encrypt, Usage::Decrypt]);
    }
    let enc = ca
        .call(
            None,
            &Encrypt {
                uid: kek.uid_a.clone(),
                algorithm: EncryptionAlgorithm::AesGcm,
                plaintext: SecretBytes::new(plaintext.to_vec()),
                aad: Some(b"uid-1".to_vec()),
                iv: None,
            },
        )
        .await
        .unwrap();
    let dec = cb
        .call(
            None,
            &Decrypt {
                uid: kek.uid_b.clone(),
                algorithm: EncryptionAlgorithm::AesGcm,
                ciphertext: enc.ciphertext.clone(),
                iv: enc.iv.clone(),
                tag: enc.tag.clone(),
                aad: Some(b"uid-1".to_vec()),
            },
        )
        .await
        .unwrap();
    assert_eq!(dec.plaintext.expose(), plaintext);
    // Another AAD: B's GCM check fails, as A's would.
    let tampered = cb
        .call(
            None,
            &Decrypt {
                uid: kek.uid_b.clone(),
                algorithm: EncryptionAlgorithm::AesGcm,
                ciphertext: enc.ciphertext,
                iv: enc.iv,
                tag: enc.tag,
                aad: Some(b"uid-2".to_vec()),
            },
        )
        .await;
    assert!(tampered.is_err());
}
