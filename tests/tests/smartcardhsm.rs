//! hsmd's SmartCard-HSM profile (`hsm_model = "smartcardhsm"`) on the fault
//! module acting as the card (`profile = smartcardhsm`: calls serialized,
//! AES-GCM, AES-CBC-PAD and key wrap hidden, 16 handles per `C_FindObjects`,
//! 1024 bytes of AES-CBC input per call), over SoftHSMv2.

use hsmd_e2e::{Faults, Token};
use hsmd_protocol::b64::SecretBytes;
use hsmd_protocol::*;
use std::time::Duration;

const CARD: &str = "profile = smartcardhsm\n";

async fn aes_key(c: &Client, slot: u64, label: &str, extractable: bool) {
    c.call(
        None,
        &GenerateKey {
            slot,
            label: label.into(),
            algorithm: SecretKeyAlgorithm::Aes,
            bits: 256,
            extractable,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("generate {label}: {e}"));
}

fn encrypt(
    uid: String,
    algorithm: EncryptionAlgorithm,
    data: &[u8],
    iv: Option<Vec<u8>>,
) -> Encrypt {
    Encrypt {
        uid,
        algorithm,
        plaintext: SecretBytes::new(data.to_vec()),
        aad: None,
        iv,
    }
}

fn refusal<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (ErrorCode, String) {
    match r {
        Err(ClientError::Server(b)) => (b.code, b.message),
        other => panic!("expected a server error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_clients_on_a_slow_card_all_finish_and_calls_never_overlap() {
    let token = Token::new("card-slow");
    let faults = Faults::new(&token, CARD);
    let d = faults.start(&token, "smartcardhsm", "sessions_per_slot = 4");
    assert!(d.log_text().contains("sessions_per_slot = 4 lowered to 1"));
    let slot = token.slot;
    let c = d.client().await;
    aes_key(&c, slot, "k", false).await;
    faults.set(&format!("{CARD}delay_ms = 50\n"));
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let c = d.client().await;
        tasks.push(tokio::spawn(async move {
            for _ in 0..2 {
                c.call(
                    None,
                    &encrypt(
                        format!("hsm::{slot}::k"),
                        EncryptionAlgorithm::AesCbcPad,
                        &[i; 40],
                        None,
                    ),
                )
                .await
                .unwrap_or_else(|e| panic!("client {i}: {e}"));
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("hang guard: a client never finished")
            .unwrap();
    }
    assert_eq!(faults.counter("max_overlap"), 1, "{}", d.log_text());
    let calls = faults.counter("calls");
    assert!(calls > 8 * 2 * 2, "{calls}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_keys_are_listed_sixteen_per_find() {
    let token = Token::new("card-many");
    let faults = Faults::new(&token, CARD);
    let d = faults.start(&token, "smartcardhsm", "");
    let slot = token.slot;
    let c = d.client().await;
    for n in 0..100 {
        aes_key(&c, slot, &format!("key{n:03}"), false).await;
    }
    let listed = c
        .call(
            None,
            &ListKeys {
                slot: Some(slot),
                kind: None,
            },
        )
        .await
        .unwrap();
    let labels: Vec<&str> = listed.keys.iter().map(|k| k.label.as_str()).collect();
    let expected: Vec<String> = (0..100).map(|n| format!("key{n:03}")).collect();
    assert_eq!(labels, expected);
    assert_eq!(faults.counter("find_max_returned"), 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aes_cbc_over_10_kib_in_card_chunks_equals_single_shot_cbc() {
    use cbc::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
    let token = Token::new("card-cbc");
    let faults = Faults::new(&token, CARD);
    let d = faults.start(&token, "smartcardhsm", "");
    let slot = token.slot;
    let c = d.client().await;
    aes_key(&c, slot, "x", true).await;
    let uid = format!("hsm::{slot}::x");
    let raw = c
        .call(None, &Export(KeyRef { uid: uid.clone() }))
        .await
        .unwrap();
    let iv = [9u8; 16];
    for len in [10 * 1024, 10 * 1024 + 5, 1024, 1023] {
        let pt: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let enc = c
            .call(
                None,
                &encrypt(
                    uid.clone(),
                    EncryptionAlgorithm::AesCbcPad,
                    &pt,
                    Some(iv.to_vec()),
                ),
            )
            .await
            .unwrap_or_else(|e| panic!("{len} bytes: {e}"));
        let expected = cbc::Encryptor::<aes::Aes256>::new_from_slices(raw.data.expose(), &iv)
            .unwrap()
            .encrypt_padded_vec_mut::<Pkcs7>(&pt);
        assert_eq!(enc.ciphertext, expected, "{len} bytes");
        let dec = c
            .call(
                None,
                &Decrypt {
                    uid: uid.clone(),
                    algorithm: EncryptionAlgorithm::AesCbcPad,
                    ciphertext: expected,
                    aad: None,
                    iv: Some(iv.to_vec()),
                    tag: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(dec.plaintext.expose(), pt.as_slice(), "{len} bytes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcm_and_oaep_sha1_are_unsupported_never_downgraded() {
    let token = Token::new("card-refuse");
    let faults = Faults::new(&token, CARD);
    let d = faults.start(&token, "smartcardhsm", "");
    let slot = token.slot;
    let c = d.client().await;
    aes_key(&c, slot, "g", false).await;
    let (code, msg) = refusal(
        c.call(
            None,
            &encrypt(
                format!("hsm::{slot}::g"),
                EncryptionAlgorithm::AesGcm,
                b"x",
                None,
            ),
        )
        .await,
    );
    assert_eq!(code, ErrorCode::Unsupported, "{msg}");
    assert!(
        msg.contains("CKM_AES_GCM") && msg.contains("aes_cbc_pad"),
        "{msg}"
    );

    c.call(
        None,
        &GenerateKeyPair {
            slot,
            label: "r".into(),
            algorithm: KeyPairAlgorithm::Rsa,
            bits: Some(2048),
            curve: None,
            extractable: false,
        },
    )
    .await
    .unwrap();
    let (code, msg) = refusal(
        c.call(
            None,
            &encrypt(
                format!("hsm::{slot}::r"),
                EncryptionAlgorithm::RsaOaepSha1,
                b"x",
                None,
            ),
        )
        .await,
    );
    assert_eq!(code, ErrorCode::Unsupported, "{msg}");
    assert!(
        msg.contains("rsa_oaep_sha1") && msg.contains("SHA256") && msg.contains("rsa_oaep_sha256"),
        "{msg}"
    );
}
