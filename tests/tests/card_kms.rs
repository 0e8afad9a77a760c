//! On the card rig (tests/src/card.rs): the kms-frontend KMIP flow on card
//! keys, with the reference CLI's request bodies (tests/fixtures/kmip):
//! Create AES, CreateKeyPair RSA and EC, Encrypt/Decrypt, Sign and
//! SignatureVerify, Get of public keys (checked with RustCrypto), a grant,
//! Locate, Destroy with Cascade; the refusals of what the card lacks.

use hsmd_e2e::card::{self, Rig};
use hsmd_e2e::kmip::{create_aes, enumeration, locate_all, text};
use hsmd_e2e::{Daemon, Frontend, Reply};
use serde_json::{json, Value};

const REF_SLOT: &str = "1365358982";

/// A reference request, its slot replaced by the card's.
fn fixture(name: &str) -> Value {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/kmip");
    let text = std::fs::read_to_string(dir.join(format!("{name}_request.json")))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text.replace(REF_SLOT, "1")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn item<'a>(v: &'a Value, tag: &str) -> &'a Value {
    v["value"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["tag"] == tag))
        .unwrap_or_else(|| panic!("no {tag} in {v}"))
}

fn bytes(v: &Value) -> Vec<u8> {
    let s = v["value"]
        .as_str()
        .unwrap_or_else(|| panic!("not bytes: {v}"));
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn bytes_of(tag: &str, b: &[u8]) -> Value {
    json!({"tag": tag, "type": "ByteString", "value": hex(b)})
}

fn key_material(v: &Value) -> Vec<u8> {
    bytes(item(
        item(item(item(v, "PublicKey"), "KeyBlock"), "KeyValue"),
        "KeyMaterial",
    ))
}

fn ok(r: &Reply, what: &str) -> Value {
    assert_eq!(r.status, 200, "{what}: {r}");
    r.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kmip_flow_on_card_keys() {
    let Some(_rig) = Rig::take("KMIP flow on the card") else {
        return;
    };
    let dir = card::scratch();
    let toml = card::card_config(&dir, "frontends = [\"root\"]")
        .replace("hsm_admin = \"root\"", "hsm_admin = [\"admin\"]");
    let d = Daemon::start_with(&dir, &toml, &[]);
    let fe = Frontend::start(&dir, &d.socket, &[]);

    // Create: AES (the reference's request), RSA and EC pairs.
    ok(
        &fe.kmip(&fixture("01_sym_create_hsm_aes1")).await,
        "Create aes1",
    );
    ok(
        &fe.kmip(&fixture("03_rsa_create_hsm_rsa1")).await,
        "CreateKeyPair rsa1",
    );
    let v = ok(
        &fe.kmip(&json!({"tag": "CreateKeyPair", "value": [
            {"tag": "CommonAttributes", "value": [
                enumeration("CryptographicAlgorithm", "EC"),
                enumeration("RecommendedCurve", "P256"),
            ]},
            {"tag": "PrivateKeyAttributes", "value": [text("UniqueIdentifier", "hsm::1::ec1")]},
        ]}))
        .await,
        "CreateKeyPair ec1",
    );
    assert_eq!(
        item(&v, "PublicKeyUniqueIdentifier")["value"],
        "hsm::1::ec1_pk"
    );

    // AES: GCM is refused by name (the card has no CKM_AES_GCM).
    let r = fe.kmip(&fixture("04_sym_encrypt_aes1_gcm")).await;
    assert_eq!(r.status, 422, "{r}");
    assert!(r.body.contains("CKM_AES_GCM"), "{r}");

    // AES-CBC (PKCS#5 padding) on the card, decrypted with the empty
    // AuthenticatedEncryptionTag the reference CLI sends for CBC.
    let cbc = json!({"tag": "CryptographicParameters", "value": [
        enumeration("BlockCipherMode", "CBC"),
        enumeration("PaddingMethod", "PKCS5"),
        enumeration("CryptographicAlgorithm", "AES"),
    ]});
    let v = ok(
        &fe.kmip(&json!({"tag": "Encrypt", "value": [
            text("UniqueIdentifier", "hsm::1::aes1"), cbc.clone(), bytes_of("Data", b"cbc on the card"),
        ]}))
        .await,
        "Encrypt aes1 CBC",
    );
    let (ct, iv) = (bytes(item(&v, "Data")), bytes(item(&v, "IVCounterNonce")));
    let v = ok(
        &fe.kmip(&json!({"tag": "Decrypt", "value": [
            text("UniqueIdentifier", "hsm::1::aes1"), cbc, bytes_of("Data", &ct),
            bytes_of("IVCounterNonce", &iv), bytes_of("AuthenticatedEncryptionTag", &[]),
        ]}))
        .await,
        "Decrypt aes1 CBC with an empty tag",
    );
    assert_eq!(bytes(item(&v, "Data")), b"cbc on the card");

    // Public key export (the reference's Get, PKCS8): an RSA SPKI.
    let v = ok(
        &fe.kmip(&fixture("08_export_rsa1_pk_pkcs8pem")).await,
        "Get rsa1_pk",
    );
    let rsa_pub =
        <rsa::RsaPublicKey as rsa::pkcs8::DecodePublicKey>::from_public_key_der(&key_material(&v))
            .expect("rsa1_pk is SPKI DER");
    // RSA encryption with the public key on the card (PKCS#1 v1.5, the
    // reference's request), decrypted on the card; OAEP with SHA-1 refused.
    let enc = fixture("06c_rsa_encrypt_rsa1_pk_pkcs1v15");
    let plain = bytes(item(&enc, "Data"));
    let v = ok(&fe.kmip(&enc).await, "Encrypt rsa1_pk PKCS#1 v1.5");
    let ct = bytes(item(&v, "Data"));
    let v = ok(
        &fe.kmip(&json!({"tag": "Decrypt", "value": [
            text("UniqueIdentifier", "hsm::1::rsa1"),
            {"tag": "CryptographicParameters", "value": [
                enumeration("PaddingMethod", "PKCS1v15"),
                enumeration("CryptographicAlgorithm", "RSA"),
            ]},
            bytes_of("Data", &ct),
        ]}))
        .await,
        "Decrypt rsa1",
    );
    assert_eq!(bytes(item(&v, "Data")), plain);
    let r = fe.kmip(&fixture("06b_rsa_encrypt_rsa1_pk_oaep_sha1")).await;
    assert_eq!(r.status, 422, "OAEP-SHA1 on the card: {r}");

    // Signatures: RSA PKCS#1 v1.5 SHA-256 and ECDSA, verified outside and
    // through the frontend with the public keys.
    use sha2::Digest;
    let msg = b"signed by the card through KMIP";
    let params = json!({"tag": "CryptographicParameters", "value": [
        enumeration("PaddingMethod", "PKCS1v15"),
        enumeration("HashingAlgorithm", "SHA256"),
    ]});
    let v = ok(
        &fe.kmip(&json!({"tag": "Sign", "value": [
            text("UniqueIdentifier", "hsm::1::rsa1"), params.clone(), bytes_of("Data", msg),
        ]}))
        .await,
        "Sign rsa1",
    );
    let sig = bytes(item(&v, "SignatureData"));
    rsa_pub
        .verify(
            rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
            &sha2::Sha256::digest(msg),
            &sig,
        )
        .expect("rsa1's signature verifies with the exported rsa1_pk");
    let v = ok(
        &fe.kmip(&json!({"tag": "SignatureVerify", "value": [
            text("UniqueIdentifier", "hsm::1::rsa1_pk"), params, bytes_of("Data", msg),
            bytes_of("SignatureData", &sig),
        ]}))
        .await,
        "SignatureVerify rsa1_pk",
    );
    assert_eq!(item(&v, "ValidityIndicator")["value"], "Valid");
    let v = ok(
        &fe.kmip(&json!({"tag": "Sign", "value": [
            text("UniqueIdentifier", "hsm::1::ec1"), bytes_of("Data", msg),
        ]}))
        .await,
        "Sign ec1",
    );
    let sig = bytes(item(&v, "SignatureData"));
    let v = ok(
        &fe.kmip(&json!({"tag": "Get", "value": [
            text("UniqueIdentifier", "hsm::1::ec1_pk"), enumeration("KeyFormatType", "PKCS8"),
        ]}))
        .await,
        "Get ec1_pk",
    );
    {
        use p256::ecdsa::signature::Verifier;
        use p256::pkcs8::DecodePublicKey;
        let key = p256::PublicKey::from_public_key_der(&key_material(&v)).expect("P-256 SPKI");
        p256::ecdsa::VerifyingKey::from(&key)
            .verify(
                msg,
                &p256::ecdsa::Signature::from_der(&sig).expect("DER signature"),
            )
            .expect("ec1's signature verifies with the exported ec1_pk");
    }

    // A grant, then Locate: every card key once.
    let r = fe
        .post_raw(
            "/access/grant",
            fixture("17_access_grant_bob_encrypt_aes1").to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "grant: {r}");
    let v = ok(&fe.kmip(&locate_all()).await, "Locate");
    let mut located: Vec<String> = v["value"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|i| i["tag"] == "UniqueIdentifier")
                .filter_map(|i| i["value"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    located.sort();
    assert_eq!(
        located,
        [
            "hsm::1::aes1",
            "hsm::1::ec1",
            "hsm::1::ec1_pk",
            "hsm::1::rsa1",
            "hsm::1::rsa1_pk"
        ],
        "{v}"
    );

    // Destroy with Cascade (the reference's request): the pair goes, the rest stays.
    ok(
        &fe.kmip(&fixture("56_rsa_destroy_hsm_rsa1_2")).await,
        "Destroy rsa1 Cascade",
    );
    let r = fe
        .kmip(&fixture("62_export_rsa1_pk_after_cascade_destroy"))
        .await;
    assert_eq!(r.status, 422, "rsa1_pk after the cascade: {r}");
    let v = ok(&fe.kmip(&locate_all()).await, "Locate after destroy");
    let text = v.to_string();
    assert!(!text.contains("rsa1"), "{text}");
    // The card itself, read by a fresh process, holds neither half.
    let objects = card::pkcs11_tool(&["--login", "--pin", hsmd_e2e::PIN, "--list-objects"]);
    let listing = String::from_utf8_lossy(&objects.stdout);
    assert!(!listing.contains("label:      rsa1\n"), "{listing}");
    assert!(listing.contains("label:      ec1\n"), "{listing}");
    assert!(
        text.contains("hsm::1::aes1") && text.contains("hsm::1::ec1_pk"),
        "{text}"
    );
    let r = fe.kmip(&create_aes("hsm::1::aes1")).await;
    assert_ne!(r.status, 200, "a second aes1: {r}");
}
