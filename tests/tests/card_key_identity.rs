//! On the card rig (tests/src/card.rs): one key identity with objects made
//! on the card by another tool (pkcs11-tool through the same sc-hsm-embedded
//! library): a pair is two uids, its public key cannot be destroyed alone
//! (the card keeps a pair as one key), and two secret keys with one label
//! are `ambiguous` (docs/protocol.md "Keys").

use hsmd_e2e::card::{self, Rig, CARD_SLOT};
use hsmd_e2e::PIN;
use hsmd_protocol::b64::SecretBytes;
use hsmd_protocol::*;

fn uid(label: &str) -> String {
    format!("hsm::{CARD_SLOT}::{label}")
}

/// pkcs11-tool on the card, logged in; its stdout, or a panic with stderr.
fn tool(args: &[&str]) -> String {
    let out = card::pkcs11_tool(&[&["--login", "--pin", PIN], args].concat());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "pkcs11-tool {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

async fn uids(c: &Client) -> Vec<String> {
    let mut u: Vec<String> = c
        .call(None, &ListKeys::default())
        .await
        .expect("list_keys")
        .keys
        .into_iter()
        .map(|k| k.uid)
        .collect();
    u.sort();
    u
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_card_objects_have_one_uid_each_and_duplicates_are_ambiguous() {
    let Some(_rig) = Rig::take("card key identity") else {
        return;
    };
    // A pair made by pkcs11-tool: both halves labelled `p` with CKA_ID 01.
    tool(&[
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--label",
        "p",
        "--id",
        "01",
    ]);
    for id in ["0a", "0b"] {
        tool(&[
            "--keygen",
            "--key-type",
            "AES:32",
            "--label",
            "dup",
            "--id",
            id,
        ]);
    }
    let dir = card::scratch();
    let d = card::start(&dir, "");
    let c = d.client().await;
    assert_eq!(
        uids(&c).await,
        [uid("dup"), uid("dup"), uid("p"), uid("p_pk")]
    );
    let public = c
        .call(None, &GetKey(KeyRef { uid: uid("p_pk") }))
        .await
        .expect("p_pk");
    assert_eq!((public.kind, public.id.as_str()), (KeyKind::EcPublic, "01"));
    let sig = c
        .call(
            None,
            &Sign {
                uid: uid("p"),
                algorithm: SignatureAlgorithm::EcdsaSha256,
                data: SecretBytes::new(b"m".to_vec()),
            },
        )
        .await
        .expect("sign with p");
    let v = c
        .call(
            None,
            &Verify {
                uid: uid("p_pk"),
                algorithm: SignatureAlgorithm::EcdsaSha256,
                data: SecretBytes::new(b"m".to_vec()),
                signature: sig.signature,
            },
        )
        .await
        .expect("verify with p_pk");
    assert!(v.valid);
    // The card keeps a pair as one key: its public key cannot be destroyed
    // alone (C_DestroyObject on it only hides it from this process until
    // the card is read again), and destroying the private key removes both.
    let r = c.call(None, &Destroy(KeyRef { uid: uid("p_pk") })).await;
    match r {
        Err(ClientError::Server(b)) => {
            assert_eq!(b.code, ErrorCode::Unsupported, "{}", b.message);
            assert!(b.message.contains("destroy hsm::1::p "), "{}", b.message);
        }
        other => panic!("expected unsupported, got {other:?}"),
    }
    assert_eq!(
        uids(&c).await,
        [uid("dup"), uid("dup"), uid("p"), uid("p_pk")]
    );
    c.call(None, &Destroy(KeyRef { uid: uid("p") }))
        .await
        .expect("destroy p");
    let objects = tool(&["--list-objects"]);
    assert!(!objects.contains("Key Object; EC"), "{objects}");

    // Two AES keys labelled `dup` (made before hsmd started: the library
    // reads the card's objects once): never a pick.
    let r = c
        .call(
            None,
            &Encrypt {
                uid: uid("dup"),
                algorithm: EncryptionAlgorithm::AesCbcPad,
                plaintext: SecretBytes::new(b"x".to_vec()),
                aad: None,
                iv: None,
            },
        )
        .await;
    match r {
        Err(ClientError::Server(b)) => {
            assert_eq!(b.code, ErrorCode::Ambiguous, "{}", b.message);
            assert!(
                b.message.contains("0a") && b.message.contains("0b"),
                "{}",
                b.message
            );
        }
        other => panic!("expected ambiguous, got {other:?}"),
    }
}
