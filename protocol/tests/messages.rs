//! Message-level tests of protocol version 1 (docs/protocol.md): every request
//! operation and every result type round-trips, error bodies and hello frames
//! have the documented shape, and hostile request frames are refused with a
//! `bad_request` that names the offending field.

use hsmd_protocol::b64::SecretBytes;
use hsmd_protocol::message::{HelloFrame, Operation, OP_NAMES};
use hsmd_protocol::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use std::fmt::Debug;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// `Request::encode` then `Request::decode` must give back the same request.
fn assert_request_round_trips(req: &Request) -> Value {
    let bytes = req.encode().expect("encode");
    let decoded = Request::decode(&bytes)
        .unwrap_or_else(|e| panic!("decode of {}: {e:?}", String::from_utf8_lossy(&bytes)));
    assert_eq!(&decoded, req, "{}", String::from_utf8_lossy(&bytes));
    serde_json::from_slice(&bytes).expect("encoded request is JSON")
}

/// Every op, once without and once with `as_user`.
fn assert_op_round_trips(op: Operation) -> Value {
    let plain = Request {
        id: 7,
        as_user: None,
        op: op.clone(),
    };
    let wire = assert_request_round_trips(&plain);
    assert_eq!(wire["id"], json!(7));
    assert_eq!(wire["op"], json!(op.name()));
    assert!(wire.get("as_user").is_none(), "absent as_user is not sent");
    assert!(wire["params"].is_object(), "params is always an object");

    let acting = Request {
        id: u64::MAX,
        as_user: Some("alice".into()),
        op,
    };
    let wire_acting = assert_request_round_trips(&acting);
    assert_eq!(wire_acting["as_user"], json!("alice"));
    assert_eq!(wire_acting["id"], json!(u64::MAX));
    wire
}

/// `Response::ok(id, to_value(x))` -> JSON bytes -> `Response` -> `into_result::<T>()`.
fn assert_result_round_trips<T>(id: u64, x: &T) -> Value
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let value = serde_json::to_value(x).expect("to_value");
    let resp = Response::ok(id, value.clone());
    let bytes = serde_json::to_vec(&resp).expect("to_vec");
    let wire: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        wire,
        json!({"id": id, "result": value}),
        "exact response shape"
    );
    let back: Response = serde_json::from_slice(&bytes).expect("parse response");
    assert_eq!(back, resp);
    let typed: T = back.into_result().expect("into_result");
    assert_eq!(&typed, x);
    value
}

/// A hostile frame must be refused with `bad_request`.
fn refused(frame: &[u8]) -> RequestDecodeError {
    match Request::decode(frame) {
        Ok(r) => panic!(
            "frame {:?} was accepted as {r:?}",
            String::from_utf8_lossy(frame)
        ),
        Err(e) => {
            assert_eq!(
                e.error.code,
                ErrorCode::BadRequest,
                "frame {:?}: {e:?}",
                String::from_utf8_lossy(frame)
            );
            assert_eq!(e.error.ckr, None);
            assert!(!e.error.message.is_empty());
            e
        }
    }
}

/// Refused, with the given recovered id, and a message containing every `needle`.
fn refused_naming(frame: &str, id: Option<u64>, needles: &[&str]) -> RequestDecodeError {
    let e = refused(frame.as_bytes());
    assert_eq!(e.id, id, "recovered id for {frame}: {e:?}");
    for n in needles {
        assert!(
            e.error.message.contains(n),
            "message for {frame} should name {n:?}: {:?}",
            e.error.message
        );
    }
    e
}

fn key_info(slot: u64, label: &str, kind: KeyKind) -> KeyInfo {
    let (bits, curve, sensitive, extractable, usages) = match kind {
        KeyKind::Aes => (256, None, true, false, vec![Usage::Encrypt, Usage::Decrypt]),
        KeyKind::RsaPrivate => (
            3072,
            None,
            true,
            false,
            vec![Usage::Decrypt, Usage::Sign, Usage::Unwrap],
        ),
        KeyKind::RsaPublic => (
            3072,
            None,
            false,
            true,
            vec![Usage::Encrypt, Usage::Verify, Usage::Wrap],
        ),
        KeyKind::EcPrivate => (
            384,
            Some(Curve::P384),
            true,
            false,
            vec![Usage::Sign, Usage::Derive],
        ),
        KeyKind::EcPublic => (384, Some(Curve::P384), false, true, vec![Usage::Verify]),
    };
    KeyInfo {
        uid: format!("hsm::{slot}::{label}"),
        slot,
        label: label.into(),
        id: label.bytes().map(|b| format!("{b:02x}")).collect(),
        kind,
        bits,
        curve,
        sensitive,
        extractable,
        usages,
    }
}

fn key_ref(uid: &str) -> KeyRef {
    KeyRef { uid: uid.into() }
}

// ---------------------------------------------------------------------------
// Requests: all 12 operations round-trip
// ---------------------------------------------------------------------------

#[test]
fn every_operation_is_covered() {
    // If an operation is added, this list (and the tests below) must grow.
    assert_eq!(
        OP_NAMES,
        &[
            "status",
            "list_keys",
            "get_key",
            "generate_key",
            "generate_key_pair",
            "export",
            "encrypt",
            "decrypt",
            "sign",
            "verify",
            "random",
            "destroy",
        ]
    );
}

#[test]
fn status_round_trips() {
    let wire = assert_op_round_trips(Operation::Status(Status {}));
    assert_eq!(wire["params"], json!({}));
    // params may be omitted for an op without parameters.
    let r = Request::decode(br#"{"id": 1, "op": "status"}"#).unwrap();
    assert_eq!(r.op, Operation::Status(Status {}));
    assert_eq!(r.as_user, None);
}

#[test]
fn list_keys_round_trips_with_and_without_filters() {
    let wire = assert_op_round_trips(Operation::ListKeys(ListKeys::default()));
    assert_eq!(wire["params"], json!({}), "absent filters are not sent");
    for kind in [
        KeyKind::Aes,
        KeyKind::RsaPrivate,
        KeyKind::RsaPublic,
        KeyKind::EcPrivate,
        KeyKind::EcPublic,
    ] {
        assert_op_round_trips(Operation::ListKeys(ListKeys {
            slot: Some(4),
            kind: Some(kind),
        }));
    }
    assert_op_round_trips(Operation::ListKeys(ListKeys {
        slot: Some(0),
        kind: None,
    }));
    let wire = assert_op_round_trips(Operation::ListKeys(ListKeys {
        slot: None,
        kind: Some(KeyKind::EcPublic),
    }));
    assert_eq!(wire["params"], json!({"kind": "ec_public"}));
}

#[test]
fn get_key_export_destroy_round_trip() {
    let w = assert_op_round_trips(Operation::GetKey(GetKey(key_ref("hsm::0::k1"))));
    assert_eq!(w["params"], json!({"uid": "hsm::0::k1"}));
    let w = assert_op_round_trips(Operation::Export(Export(key_ref("hsm::4::rsa1_pk"))));
    assert_eq!(w["params"], json!({"uid": "hsm::4::rsa1_pk"}));
    let w = assert_op_round_trips(Operation::Destroy(Destroy(key_ref("hsm::0::old key"))));
    assert_eq!(w["params"], json!({"uid": "hsm::0::old key"}));
}

#[test]
fn generate_key_round_trips() {
    for bits in [128, 192, 256] {
        for extractable in [false, true] {
            assert_op_round_trips(Operation::GenerateKey(GenerateKey {
                slot: 4,
                label: format!("aes{bits}"),
                algorithm: SecretKeyAlgorithm::Aes,
                bits,
                extractable,
            }));
        }
    }
    // `extractable` is optional and defaults to false.
    let r = Request::decode(
        br#"{"id":2,"op":"generate_key","params":{"slot":0,"label":"k1","algorithm":"aes","bits":256}}"#,
    )
    .unwrap();
    assert_eq!(
        r.op,
        Operation::GenerateKey(GenerateKey {
            slot: 0,
            label: "k1".into(),
            algorithm: SecretKeyAlgorithm::Aes,
            bits: 256,
            extractable: false,
        })
    );
}

#[test]
fn generate_key_pair_round_trips() {
    for bits in [2048, 3072, 4096] {
        assert_op_round_trips(Operation::GenerateKeyPair(GenerateKeyPair {
            slot: 0,
            label: format!("rsa{bits}"),
            algorithm: KeyPairAlgorithm::Rsa,
            bits: Some(bits),
            curve: None,
            extractable: false,
        }));
    }
    for curve in [Curve::P256, Curve::P384, Curve::P521] {
        let w = assert_op_round_trips(Operation::GenerateKeyPair(GenerateKeyPair {
            slot: 4,
            label: "ec1".into(),
            algorithm: KeyPairAlgorithm::Ec,
            bits: None,
            curve: Some(curve),
            extractable: true,
        }));
        assert!(w["params"].get("bits").is_none(), "absent bits not sent");
    }
    let r = Request::decode(
        br#"{"id":3,"op":"generate_key_pair","params":{"slot":0,"label":"e","algorithm":"ec","curve":"p521"}}"#,
    )
    .unwrap();
    assert_eq!(
        r.op,
        Operation::GenerateKeyPair(GenerateKeyPair {
            slot: 0,
            label: "e".into(),
            algorithm: KeyPairAlgorithm::Ec,
            bits: None,
            curve: Some(Curve::P521),
            extractable: false,
        })
    );
}

#[test]
fn encrypt_round_trips_with_optional_fields_present_and_absent() {
    let full = assert_op_round_trips(Operation::Encrypt(Encrypt {
        uid: "hsm::0::k1".into(),
        algorithm: EncryptionAlgorithm::AesGcm,
        plaintext: SecretBytes::new(b"hello".to_vec()),
        aad: Some(b"header".to_vec()),
        iv: Some(vec![0u8; 12]),
    }));
    assert_eq!(
        full["params"],
        json!({
            "uid": "hsm::0::k1",
            "algorithm": "aes_gcm",
            "plaintext": "aGVsbG8=",
            "aad": "aGVhZGVy",
            "iv": "AAAAAAAAAAAAAAAA",
        })
    );
    let bare = assert_op_round_trips(Operation::Encrypt(Encrypt {
        uid: "hsm::0::rsa1_pk".into(),
        algorithm: EncryptionAlgorithm::RsaOaepSha256,
        plaintext: SecretBytes::new(vec![0, 1, 2, 0xfe, 0xff]),
        aad: None,
        iv: None,
    }));
    assert_eq!(
        bare["params"],
        json!({"uid": "hsm::0::rsa1_pk", "algorithm": "rsa_oaep_sha256", "plaintext": "AAEC/v8="})
    );
    // Every algorithm name, and edge-case byte strings (empty, all byte values).
    let all: Vec<u8> = (0..=255).collect();
    for algorithm in [
        EncryptionAlgorithm::AesGcm,
        EncryptionAlgorithm::AesCbcPad,
        EncryptionAlgorithm::RsaOaepSha256,
        EncryptionAlgorithm::RsaOaepSha1,
        EncryptionAlgorithm::RsaPkcs1v15,
    ] {
        assert_op_round_trips(Operation::Encrypt(Encrypt {
            uid: "hsm::0::k".into(),
            algorithm,
            plaintext: SecretBytes::new(all.clone()),
            aad: Some(Vec::new()),
            iv: Some(vec![0xaa; 16]),
        }));
        assert_op_round_trips(Operation::Encrypt(Encrypt {
            uid: "hsm::0::k".into(),
            algorithm,
            plaintext: SecretBytes::default(),
            aad: None,
            iv: None,
        }));
    }
    // Optional byte fields sent as null read as absent.
    let r = Request::decode(
        br#"{"id":1,"op":"encrypt","params":{"uid":"u","algorithm":"aes_cbc_pad","plaintext":"AA==","aad":null,"iv":null}}"#,
    )
    .unwrap();
    let Operation::Encrypt(e) = r.op else {
        panic!("not encrypt")
    };
    assert_eq!((e.aad, e.iv), (None, None));
    assert_eq!(e.plaintext.expose(), &[0]);
}

#[test]
fn decrypt_round_trips_with_optional_fields_present_and_absent() {
    let w = assert_op_round_trips(Operation::Decrypt(Decrypt {
        uid: "hsm::0::k1".into(),
        algorithm: EncryptionAlgorithm::AesGcm,
        ciphertext: b"\x9c\x01\xffciphertext".to_vec(),
        iv: Some(vec![1; 12]),
        tag: Some(vec![2; 16]),
        aad: Some(b"hdr".to_vec()),
    }));
    assert_eq!(w["params"]["tag"], json!("AgICAgICAgICAgICAgICAg=="));
    let w = assert_op_round_trips(Operation::Decrypt(Decrypt {
        uid: "hsm::0::rsa1".into(),
        algorithm: EncryptionAlgorithm::RsaPkcs1v15,
        ciphertext: vec![0x42; 384],
        iv: None,
        tag: None,
        aad: None,
    }));
    let params = w["params"].as_object().unwrap();
    let mut keys: Vec<_> = params.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["algorithm", "ciphertext", "uid"]);
    assert_op_round_trips(Operation::Decrypt(Decrypt {
        uid: "hsm::0::cbc".into(),
        algorithm: EncryptionAlgorithm::AesCbcPad,
        ciphertext: vec![7; 32],
        iv: Some(vec![9; 16]),
        tag: None,
        aad: None,
    }));
}

#[test]
fn sign_and_verify_round_trip_every_algorithm() {
    for algorithm in [
        SignatureAlgorithm::RsaPkcs1v15Sha256,
        SignatureAlgorithm::RsaPkcs1v15Sha384,
        SignatureAlgorithm::RsaPkcs1v15Sha512,
        SignatureAlgorithm::RsaPssSha256,
        SignatureAlgorithm::RsaPssSha384,
        SignatureAlgorithm::RsaPssSha512,
        SignatureAlgorithm::EcdsaSha256,
        SignatureAlgorithm::EcdsaSha384,
        SignatureAlgorithm::EcdsaSha512,
    ] {
        assert_op_round_trips(Operation::Sign(Sign {
            uid: "hsm::0::signer".into(),
            algorithm,
            data: SecretBytes::new(b"message to sign".to_vec()),
        }));
        assert_op_round_trips(Operation::Verify(Verify {
            uid: "hsm::0::signer_pk".into(),
            algorithm,
            data: SecretBytes::new(b"message to sign".to_vec()),
            // A DER ECDSA signature prefix followed by filler.
            signature: [&[0x30u8, 0x45, 0x02, 0x20][..], &[0x5a; 67]].concat(),
        }));
    }
    let w = assert_op_round_trips(Operation::Sign(Sign {
        uid: "hsm::0::ec".into(),
        algorithm: SignatureAlgorithm::RsaPssSha384,
        data: SecretBytes::new(b"abc".to_vec()),
    }));
    assert_eq!(
        w["params"],
        json!({"uid": "hsm::0::ec", "algorithm": "rsa_pss_sha384", "data": "YWJj"})
    );
}

#[test]
fn random_round_trips_with_and_without_slot() {
    let w = assert_op_round_trips(Operation::Random(Random {
        len: 32,
        slot: None,
    }));
    assert_eq!(w["params"], json!({"len": 32}));
    let w = assert_op_round_trips(Operation::Random(Random {
        len: MAX_RANDOM_LEN,
        slot: Some(4),
    }));
    assert_eq!(w["params"], json!({"len": 1024, "slot": 4}));
}

#[test]
fn protocol_md_request_example_parses() {
    let r = Request::decode(
        br#"{"id": 7, "op": "encrypt", "as_user": "alice", "params": {"uid": "hsm::0::k1", "algorithm": "aes_gcm", "plaintext": "aGVsbG8="}}"#,
    )
    .unwrap();
    assert_eq!(r.id, 7);
    assert_eq!(r.as_user.as_deref(), Some("alice"));
    assert_eq!(r.op.key_uid().as_deref(), Some("hsm::0::k1"));
    assert_eq!(r.op.name(), "encrypt");
    // as_user: null is the same as absent.
    let r = Request::decode(br#"{"id": 8, "op": "status", "as_user": null}"#).unwrap();
    assert_eq!(r.as_user, None);
}

// ---------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------

#[test]
fn status_result_round_trips() {
    let x = StatusResult {
        model: "smartcardhsm".into(),
        library: LibraryInfo {
            path: "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so".into(),
            manufacturer: "OpenSC Project".into(),
            description: "OpenSC smartcard framework".into(),
            version: "0.23".into(),
        },
        slots: vec![
            SlotStatus {
                slot: 0,
                token_label: "SmartCard-HSM (UserPIN)".into(),
                serial: "DECC0100123".into(),
                present: true,
                logged_in: true,
                pin_count_low: false,
                pin_final_try: false,
                pin_locked: false,
                mechanisms: vec![
                    "CKM_AES_GCM".into(),
                    "CKM_ECDSA".into(),
                    "CKM_RSA_PKCS_OAEP".into(),
                ],
                state: "ready".into(),
                last_error: None,
            },
            SlotStatus {
                slot: 4,
                token_label: String::new(),
                serial: String::new(),
                present: false,
                logged_in: false,
                pin_count_low: true,
                pin_final_try: true,
                pin_locked: true,
                mechanisms: vec![],
                state: "token_not_present".into(),
                last_error: Some(
                    "C_OpenSession on slot 4 failed with CKR_TOKEN_NOT_PRESENT".into(),
                ),
            },
        ],
    };
    let v = assert_result_round_trips(1, &x);
    assert_eq!(v["slots"][0]["pin_count_low"], json!(false));
    assert_eq!(v["slots"][1]["state"], json!("token_not_present"));
    assert!(v["slots"][0].get("last_error").is_none());
    assert_eq!(v["library"]["manufacturer"], json!("OpenSC Project"));
}

#[test]
fn key_info_round_trips_and_matches_protocol_md() {
    for kind in [
        KeyKind::Aes,
        KeyKind::RsaPrivate,
        KeyKind::RsaPublic,
        KeyKind::EcPrivate,
        KeyKind::EcPublic,
    ] {
        assert_result_round_trips(3, &key_info(0, "k", kind));
    }
    let doc = r#"{"uid": "hsm::0::k1", "slot": 0, "label": "k1", "id": "6b31", "kind": "aes", "bits": 256,
 "curve": null, "sensitive": true, "extractable": false,
 "usages": ["encrypt", "decrypt"]}"#;
    let parsed: KeyInfo = serde_json::from_str(doc).unwrap();
    assert_eq!(parsed, key_info(0, "k1", KeyKind::Aes));
    assert_eq!(
        serde_json::to_value(&parsed).unwrap(),
        serde_json::from_str::<Value>(doc).unwrap(),
        "serializes to exactly the documented object"
    );
    // Every usage and curve name.
    let all = KeyInfo {
        usages: vec![
            Usage::Encrypt,
            Usage::Decrypt,
            Usage::Sign,
            Usage::Verify,
            Usage::Wrap,
            Usage::Unwrap,
            Usage::Derive,
        ],
        curve: Some(Curve::P521),
        bits: Curve::P521.bits(),
        ..key_info(4, "x", KeyKind::EcPrivate)
    };
    let v = assert_result_round_trips(4, &all);
    assert_eq!(
        v["usages"],
        json!(["encrypt", "decrypt", "sign", "verify", "wrap", "unwrap", "derive"])
    );
    assert_eq!(v["curve"], json!("p521"));
    assert_eq!(v["kind"], json!("ec_private"));
    assert_eq!(v["bits"], json!(521));
}

#[test]
fn list_keys_result_round_trips() {
    assert_result_round_trips(5, &ListKeysResult { keys: vec![] });
    assert_result_round_trips(
        5,
        &ListKeysResult {
            keys: vec![
                key_info(0, "a", KeyKind::Aes),
                key_info(0, "r", KeyKind::RsaPrivate),
                key_info(0, "r_pk", KeyKind::RsaPublic),
                key_info(4, "e", KeyKind::EcPrivate),
                key_info(4, "e_pk", KeyKind::EcPublic),
            ],
        },
    );
}

#[test]
fn key_pair_result_round_trips() {
    let v = assert_result_round_trips(
        6,
        &KeyPairResult {
            private: key_info(0, "rsa1", KeyKind::RsaPrivate),
            public: key_info(0, "rsa1_pk", KeyKind::RsaPublic),
        },
    );
    assert_eq!(v["public"]["uid"], json!("hsm::0::rsa1_pk"));
}

#[test]
fn export_result_round_trips_every_format() {
    for (format, name) in [
        (ExportFormat::SpkiDer, "spki_der"),
        (ExportFormat::Raw, "raw"),
        (ExportFormat::Pkcs8Der, "pkcs8_der"),
    ] {
        let v = assert_result_round_trips(
            7,
            &ExportResult {
                uid: "hsm::0::k".into(),
                format,
                data: SecretBytes::new(vec![0x30, 0x82, 0x01, 0x22, 0x30, 0x0d]),
            },
        );
        assert_eq!(v["format"], json!(name));
        assert_eq!(v["data"], json!("MIIBIjAN"));
    }
}

#[test]
fn encrypt_result_round_trips_with_and_without_iv_and_tag() {
    let v = assert_result_round_trips(
        8,
        &EncryptResult {
            ciphertext: b"ct".to_vec(),
            iv: Some(vec![0; 12]),
            tag: Some(vec![0xff; 16]),
        },
    );
    assert_eq!(v["tag"], json!("/////////////////////w=="));
    let v = assert_result_round_trips(
        8,
        &EncryptResult {
            ciphertext: vec![1; 256],
            iv: None,
            tag: None,
        },
    );
    // docs/protocol.md: iv and tag are null (not absent) when there is none.
    assert_eq!(v["iv"], Value::Null);
    assert_eq!(v["tag"], Value::Null);
    assert!(v.as_object().unwrap().contains_key("iv"));
    assert!(v.as_object().unwrap().contains_key("tag"));
    // A server that omits them is read the same way.
    let r: EncryptResult = Response::ok(1, json!({"ciphertext": "AQ=="}))
        .into_result()
        .unwrap();
    assert_eq!(
        r,
        EncryptResult {
            ciphertext: vec![1],
            iv: None,
            tag: None
        }
    );
}

#[test]
fn small_results_round_trip() {
    assert_result_round_trips(
        9,
        &DecryptResult {
            plaintext: SecretBytes::new(b"the plaintext".to_vec()),
        },
    );
    assert_result_round_trips(
        9,
        &DecryptResult {
            plaintext: SecretBytes::default(),
        },
    );
    assert_result_round_trips(
        10,
        &SignResult {
            signature: vec![0x30, 0x44, 0x02, 0x20, 0x11],
        },
    );
    assert_eq!(
        assert_result_round_trips(11, &VerifyResult { valid: true }),
        json!({"valid": true})
    );
    assert_result_round_trips(11, &VerifyResult { valid: false });
    assert_result_round_trips(
        12,
        &RandomResult {
            bytes: SecretBytes::new((0..1024).map(|i| (i % 251) as u8).collect()),
        },
    );
    assert_eq!(
        assert_result_round_trips(0, &key_ref("hsm::0::gone")),
        json!({"uid": "hsm::0::gone"})
    );
    assert_result_round_trips(u64::MAX, &key_ref("hsm::18446744073709551615::x"));
}

#[test]
fn result_of_the_wrong_shape_is_an_error_not_a_panic() {
    let e = Response::ok(1, json!({"valid": "yes"}))
        .into_result::<VerifyResult>()
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Internal);
    let e = Response::ok(1, json!({"signature": "not base64!"}))
        .into_result::<SignResult>()
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Internal);
    let e = serde_json::from_str::<Response>(r#"{"id": 1}"#)
        .unwrap()
        .into_result::<VerifyResult>()
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Internal);
}

// ---------------------------------------------------------------------------
// Error responses
// ---------------------------------------------------------------------------

#[test]
fn protocol_md_error_example_parses() {
    let doc = r#"{"id": 7, "error": {"code": "forbidden", "message": "only an hsm_admin may create keys; alice is not one", "ckr": null}}"#;
    let r: Response = serde_json::from_str(doc).unwrap();
    assert_eq!(r.id, Some(7));
    assert_eq!(r.result, None);
    let e = r.clone().into_result::<KeyInfo>().unwrap_err();
    assert_eq!(
        e,
        ErrorBody::new(
            ErrorCode::Forbidden,
            "only an hsm_admin may create keys; alice is not one"
        )
    );
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        serde_json::from_str::<Value>(doc).unwrap(),
        "serializes back to exactly the documented frame"
    );
}

#[test]
fn error_with_ckr_round_trips() {
    let body = ErrorBody {
        code: ErrorCode::HsmError,
        message: "C_Encrypt failed".into(),
        ckr: Some("CKR_DATA_LEN_RANGE".into()),
    };
    let resp = Response::err(Some(12), body.clone());
    let bytes = serde_json::to_vec(&resp).unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&bytes).unwrap(),
        json!({"id": 12, "error": {"code": "hsm_error", "message": "C_Encrypt failed", "ckr": "CKR_DATA_LEN_RANGE"}})
    );
    let back: Response = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(back, resp);
    assert_eq!(back.into_result::<EncryptResult>().unwrap_err(), body);
}

#[test]
fn error_without_ckr_round_trips_and_ckr_may_be_omitted() {
    let resp = Response::error(Some(3), ErrorCode::NotFound, "no key hsm::0::nope");
    let bytes = serde_json::to_vec(&resp).unwrap();
    let wire: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(wire["error"]["ckr"], Value::Null);
    assert_eq!(serde_json::from_slice::<Response>(&bytes).unwrap(), resp);
    // A peer that leaves `ckr` out entirely.
    let r: Response = serde_json::from_str(
        r#"{"id":3,"error":{"code":"not_found","message":"no key hsm::0::nope"}}"#,
    )
    .unwrap();
    assert_eq!(r, resp);
    assert_eq!(r.into_result::<KeyInfo>().unwrap_err().ckr, None);
}

#[test]
fn error_with_null_id_round_trips() {
    for code in [
        ErrorCode::FrameTooLarge,
        ErrorCode::UnsupportedVersion,
        ErrorCode::Unauthorized,
        ErrorCode::BadRequest,
    ] {
        let resp = Response::error(None, code, "goodbye");
        let bytes = serde_json::to_vec(&resp).unwrap();
        let wire: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(wire["id"], Value::Null, "id is sent as null, not omitted");
        assert!(wire.get("result").is_none());
        let back: Response = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back.id, None);
        assert_eq!(back.into_result::<StatusResult>().unwrap_err().code, code);
    }
    let r: Response = serde_json::from_str(
        r#"{"id": null, "error": {"code": "unsupported_version", "message": "no shared version", "ckr": null}}"#,
    )
    .unwrap();
    assert_eq!(r.id, None);
}

#[test]
fn every_error_code_has_its_documented_wire_name() {
    let documented = [
        (ErrorCode::BadRequest, "bad_request"),
        (ErrorCode::Unauthorized, "unauthorized"),
        (ErrorCode::Forbidden, "forbidden"),
        (ErrorCode::NotFound, "not_found"),
        (ErrorCode::AlreadyExists, "already_exists"),
        (ErrorCode::Unsupported, "unsupported"),
        (ErrorCode::TokenNotPresent, "token_not_present"),
        (ErrorCode::NotLoggedIn, "not_logged_in"),
        (ErrorCode::PinLocked, "pin_locked"),
        (ErrorCode::Busy, "busy"),
        (ErrorCode::HsmError, "hsm_error"),
        (ErrorCode::HsmUnavailable, "hsm_unavailable"),
        (ErrorCode::FrameTooLarge, "frame_too_large"),
        (ErrorCode::UnsupportedVersion, "unsupported_version"),
        (ErrorCode::Internal, "internal"),
    ];
    for (code, name) in documented {
        assert_eq!(code.as_str(), name);
        assert_eq!(code.to_string(), name);
        assert_eq!(serde_json::to_value(code).unwrap(), json!(name));
        assert_eq!(
            serde_json::from_value::<ErrorCode>(json!(name)).unwrap(),
            code
        );
        let body = ErrorBody::new(code, "m");
        assert_eq!(body.to_string(), format!("{name}: m"));
    }
}

// ---------------------------------------------------------------------------
// Hello frames
// ---------------------------------------------------------------------------

#[test]
fn protocol_md_client_hello_parses_and_round_trips() {
    let doc = r#"{"hello": {"versions": [1], "client": "kms-frontend/0.1.0"}}"#;
    let h: HelloFrame<ClientHello> = serde_json::from_str(doc).unwrap();
    assert_eq!(
        h,
        HelloFrame {
            hello: ClientHello {
                versions: vec![PROTOCOL_VERSION],
                client: "kms-frontend/0.1.0".into(),
            }
        }
    );
    let bytes = serde_json::to_vec(&h).unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&bytes).unwrap(),
        serde_json::from_str::<Value>(doc).unwrap()
    );
    assert_eq!(
        serde_json::from_slice::<HelloFrame<ClientHello>>(&bytes).unwrap(),
        h
    );
}

#[test]
fn protocol_md_server_hello_parses_and_round_trips() {
    let doc = r#"{"hello": {"version": 1, "server": "hsmd/0.1.0", "model": "smartcardhsm",
           "slots": [0, 4], "admins": ["admin"], "max_frame_len": 1048576,
           "identity": "kms", "may_act_as_others": true}}"#;
    let h: HelloFrame<ServerHello> = serde_json::from_str(doc).unwrap();
    assert_eq!(
        h.hello,
        ServerHello {
            version: 1,
            server: "hsmd/0.1.0".into(),
            model: "smartcardhsm".into(),
            slots: vec![0, 4],
            admins: vec!["admin".into()],
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            identity: "kms".into(),
            may_act_as_others: true,
        }
    );
    let bytes = serde_json::to_vec(&h).unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&bytes).unwrap(),
        serde_json::from_str::<Value>(doc).unwrap()
    );
    assert_eq!(
        serde_json::from_slice::<HelloFrame<ServerHello>>(&bytes).unwrap(),
        h
    );
}

#[test]
fn hello_frame_refuses_other_top_level_fields() {
    assert!(serde_json::from_str::<HelloFrame<ClientHello>>(
        r#"{"hello": {"versions": [1], "client": "c"}, "id": 1}"#
    )
    .is_err());
    // An error frame is not a hello (the client tells the two apart this way).
    assert!(serde_json::from_str::<HelloFrame<ServerHello>>(
        r#"{"id": null, "error": {"code": "unauthorized", "message": "m", "ckr": null}}"#
    )
    .is_err());
}

#[test]
fn hello_sent_again_as_a_request_is_a_bad_request() {
    let e = refused_naming(
        r#"{"hello": {"versions": [1], "client": "c"}}"#,
        None,
        &["id", "hello"],
    );
    assert!(e.error.message.starts_with("id:"), "{e:?}");
}

// ---------------------------------------------------------------------------
// Hostile request frames
// ---------------------------------------------------------------------------

#[test]
fn empty_frame_is_refused() {
    let e = refused(b"");
    assert_eq!(e.id, None);
    assert!(e.error.message.contains("empty"), "{e:?}");
}

#[test]
fn non_json_is_refused() {
    for frame in [
        &b"not json"[..],
        b"{",
        b"{\"id\": 1,",
        b"{\"id\": 1, \"op\": \"status\"} trailing",
        b"{\"id\": 1, \"op\": \"\xff\xfe\"}",
        b"\xef\xbb\xbf{}",
        b"\0",
        b" ",
        b"{'id': 1}",
        b"{\"id\": NaN}",
    ] {
        let e = refused(frame);
        assert_eq!(e.id, None);
        assert!(e.error.message.contains("JSON"), "{e:?}");
    }
}

#[test]
fn deeply_nested_json_is_refused_without_overflowing_the_stack() {
    let depth = 100_000;
    let frame = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    assert_eq!(refused(frame.as_bytes()).id, None);
    let frame = format!(
        r#"{{"id": 1, "op": "status", "params": {{"x": {}{}}}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    refused(frame.as_bytes());
}

#[test]
fn json_that_is_not_an_object_is_refused() {
    for (frame, kind) in [
        ("[]", "an array"),
        (r#"[{"id": 1, "op": "status"}]"#, "an array"),
        (r#""status""#, "a string"),
        ("42", "a number"),
        ("-1.5e3", "a number"),
        ("null", "null"),
        ("true", "a boolean"),
    ] {
        refused_naming(frame, None, &["object", kind]);
    }
}

#[test]
fn missing_id_is_refused() {
    let e = refused_naming(r#"{"op": "status", "params": {}}"#, None, &["id"]);
    assert!(e.error.message.starts_with("id:"), "{e:?}");
    refused_naming("{}", None, &["id"]);
}

#[test]
fn invalid_ids_are_refused_and_not_recovered() {
    for id in [
        "-1",
        "-9223372036854775808",
        "1.5",
        "7.0",
        "1e2",
        "-0.0",
        r#""7""#,
        "null",
        "true",
        "[7]",
        r#"{"n": 7}"#,
        "18446744073709551616", // u64::MAX + 1
        "99999999999999999999999999999",
    ] {
        let frame = format!(r#"{{"id": {id}, "op": "status", "params": {{}}}}"#);
        let e = refused_naming(&frame, None, &["id"]);
        assert!(e.error.message.starts_with("id:"), "{frame}: {e:?}");
    }
    // The edges that are valid.
    for id in [0, u64::MAX] {
        let frame = format!(r#"{{"id": {id}, "op": "status"}}"#);
        assert_eq!(Request::decode(frame.as_bytes()).unwrap().id, id);
    }
}

#[test]
fn missing_or_ill_typed_op_is_refused_with_the_id() {
    let e = refused_naming(r#"{"id": 5}"#, Some(5), &["op"]);
    assert!(e.error.message.starts_with("op:"), "{e:?}");
    refused_naming(r#"{"id": 5, "params": {"uid": "x"}}"#, Some(5), &["op"]);
    for op in [
        "3",
        "null",
        r#"["status"]"#,
        r#"{"name": "status"}"#,
        "true",
    ] {
        let frame = format!(r#"{{"id": 6, "op": {op}}}"#);
        let e = refused_naming(&frame, Some(6), &["op"]);
        assert!(e.error.message.starts_with("op:"), "{frame}: {e:?}");
    }
}

#[test]
fn unknown_op_is_refused_listing_the_known_ops() {
    for op in [
        "launch_missiles",
        "",
        "Status",
        "STATUS",
        " status",
        "list-keys",
    ] {
        let frame = format!(r#"{{"id": 11, "op": {}}}"#, json!(op));
        let e = refused_naming(&frame, Some(11), &["op"]);
        for known in OP_NAMES {
            assert!(
                e.error.message.contains(known),
                "{frame}: message should list {known}: {:?}",
                e.error.message
            );
        }
        if !op.is_empty() {
            assert!(e.error.message.contains(op), "{e:?}");
        }
    }
}

#[test]
fn ill_typed_params_name_the_field() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"id": 9, "op": "generate_key", "params": {"slot": 0, "label": "k", "algorithm": "aes", "bits": "256"}}"#,
            "params.bits",
        ),
        (
            r#"{"id": 9, "op": "generate_key", "params": {"slot": -1, "label": "k", "algorithm": "aes", "bits": 256}}"#,
            "params.slot",
        ),
        (
            r#"{"id": 9, "op": "generate_key", "params": {"slot": 0, "label": 5, "algorithm": "aes", "bits": 256}}"#,
            "params.label",
        ),
        (
            r#"{"id": 9, "op": "generate_key", "params": {"slot": 0, "label": "k", "algorithm": "des", "bits": 256}}"#,
            "params.algorithm",
        ),
        (
            r#"{"id": 9, "op": "generate_key", "params": {"slot": 0, "label": "k", "algorithm": "aes", "bits": 256, "extractable": "yes"}}"#,
            "params.extractable",
        ),
        (
            r#"{"id": 9, "op": "generate_key_pair", "params": {"slot": 0, "label": "k", "algorithm": "ec", "curve": "p224"}}"#,
            "params.curve",
        ),
        (
            r#"{"id": 9, "op": "generate_key_pair", "params": {"slot": 0, "label": "k", "algorithm": "rsa", "bits": 2048.5}}"#,
            "params.bits",
        ),
        (
            r#"{"id": 9, "op": "list_keys", "params": {"kind": "dsa"}}"#,
            "params.kind",
        ),
        (
            r#"{"id": 9, "op": "list_keys", "params": {"slot": "0"}}"#,
            "params.slot",
        ),
        (
            r#"{"id": 9, "op": "random", "params": {"len": "32"}}"#,
            "params.len",
        ),
        (
            r#"{"id": 9, "op": "random", "params": {"len": 4294967296}}"#,
            "params.len",
        ),
        (
            r#"{"id": 9, "op": "get_key", "params": {"uid": 1}}"#,
            "params.uid",
        ),
        (
            r#"{"id": 9, "op": "encrypt", "params": {"uid": "u", "algorithm": "aes_ecb", "plaintext": "AA=="}}"#,
            "params.algorithm",
        ),
        (
            r#"{"id": 9, "op": "encrypt", "params": {"uid": "u", "algorithm": "aes_gcm", "plaintext": [1, 2]}}"#,
            "params.plaintext",
        ),
        (
            r#"{"id": 9, "op": "decrypt", "params": {"uid": "u", "algorithm": "aes_gcm", "ciphertext": "AA==", "tag": 16}}"#,
            "params.tag",
        ),
        (
            r#"{"id": 9, "op": "verify", "params": {"uid": "u", "algorithm": "ecdsa_sha256", "data": "AA==", "signature": null}}"#,
            "params.signature",
        ),
        (
            r#"{"id": 9, "op": "sign", "params": {"uid": "u", "algorithm": "ecdsa_sha1", "data": "AA=="}}"#,
            "params.algorithm",
        ),
    ];
    for (frame, field) in cases {
        refused_naming(frame, Some(9), &[field]);
    }
}

#[test]
fn missing_params_fields_are_refused() {
    let cases: &[(&str, &str)] = &[
        (r#"{"id": 4, "op": "get_key"}"#, "uid"),
        (r#"{"id": 4, "op": "get_key", "params": {}}"#, "uid"),
        (r#"{"id": 4, "op": "random", "params": {}}"#, "len"),
        (
            r#"{"id": 4, "op": "encrypt", "params": {"uid": "u", "algorithm": "aes_gcm"}}"#,
            "plaintext",
        ),
        (
            r#"{"id": 4, "op": "generate_key", "params": {"slot": 0, "label": "k", "algorithm": "aes"}}"#,
            "bits",
        ),
    ];
    for (frame, field) in cases {
        refused_naming(frame, Some(4), &["params", field]);
    }
    // params of the wrong JSON type.
    for params in ["[1]", r#""uid""#, "7", "true"] {
        let frame = format!(r#"{{"id": 4, "op": "get_key", "params": {params}}}"#);
        refused_naming(&frame, Some(4), &["params"]);
    }
}

#[test]
fn unknown_field_inside_params_is_refused() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"id": 3, "op": "get_key", "params": {"uid": "hsm::0::k", "colour": "red"}}"#,
            "colour",
        ),
        (
            r#"{"id": 3, "op": "status", "params": {"verbose": true}}"#,
            "verbose",
        ),
        (
            r#"{"id": 3, "op": "list_keys", "params": {"label": "k1"}}"#,
            "label",
        ),
        (
            r#"{"id": 3, "op": "random", "params": {"len": 8, "source": "os"}}"#,
            "source",
        ),
        (
            r#"{"id": 3, "op": "encrypt", "params": {"uid": "u", "algorithm": "aes_gcm", "plaintext": "AA==", "ivv": "AA=="}}"#,
            "ivv",
        ),
        (
            r#"{"id": 3, "op": "generate_key", "params": {"slot": 0, "label": "k", "algorithm": "aes", "bits": 256, "sensitive": false}}"#,
            "sensitive",
        ),
    ];
    for (frame, field) in cases {
        refused_naming(frame, Some(3), &["params", field]);
    }
}

#[test]
fn unknown_top_level_field_is_refused() {
    let e = refused_naming(
        r#"{"id": 3, "op": "status", "params": {}, "extra": 1}"#,
        Some(3),
        &["extra"],
    );
    assert!(e.error.message.starts_with("extra:"), "{e:?}");
    refused_naming(
        r#"{"id": 3, "op": "random", "parameters": {"len": 8}}"#,
        Some(3),
        &["parameters"],
    );
    refused_naming(
        r#"{"id": 3, "op": "status", "asUser": "alice"}"#,
        Some(3),
        &["asUser"],
    );
}

#[test]
fn as_user_not_a_string_is_refused() {
    for as_user in ["5", "true", r#"["alice"]"#, r#"{"name": "alice"}"#] {
        let frame = format!(r#"{{"id": 21, "op": "status", "as_user": {as_user}}}"#);
        let e = refused_naming(&frame, Some(21), &["as_user"]);
        assert!(e.error.message.starts_with("as_user:"), "{e:?}");
    }
}

#[test]
fn base64_that_is_not_standard_and_padded_is_refused() {
    let cases: &[(&str, &str)] = &[
        // "hello" without its padding.
        (
            r#"{"id": 31, "op": "encrypt", "params": {"uid": "u", "algorithm": "aes_gcm", "plaintext": "aGVsbG8"}}"#,
            "params.plaintext",
        ),
        (
            r#"{"id": 31, "op": "encrypt", "params": {"uid": "u", "algorithm": "aes_gcm", "plaintext": "AA==", "aad": "aGVhZGVyMQ"}}"#,
            "params.aad",
        ),
        (
            r#"{"id": 31, "op": "encrypt", "params": {"uid": "u", "algorithm": "aes_gcm", "plaintext": "AA==", "iv": "AAAAAAAAAAAAAAA"}}"#,
            "params.iv",
        ),
        (
            r#"{"id": 31, "op": "decrypt", "params": {"uid": "u", "algorithm": "aes_gcm", "ciphertext": "AP8"}}"#,
            "params.ciphertext",
        ),
        (
            r#"{"id": 31, "op": "decrypt", "params": {"uid": "u", "algorithm": "aes_gcm", "ciphertext": "AA==", "tag": "AA="}}"#,
            "params.tag",
        ),
        (
            r#"{"id": 31, "op": "sign", "params": {"uid": "u", "algorithm": "ecdsa_sha256", "data": "YWJjZA"}}"#,
            "params.data",
        ),
        // URL-safe alphabet is not standard base64.
        (
            r#"{"id": 31, "op": "verify", "params": {"uid": "u", "algorithm": "ecdsa_sha256", "data": "AA==", "signature": "_-8="}}"#,
            "params.signature",
        ),
        // Whitespace and garbage.
        (
            r#"{"id": 31, "op": "verify", "params": {"uid": "u", "algorithm": "ecdsa_sha256", "data": "AA ==", "signature": "AA=="}}"#,
            "params.data",
        ),
        (
            r#"{"id": 31, "op": "encrypt", "params": {"uid": "u", "algorithm": "aes_gcm", "plaintext": "!!!!"}}"#,
            "params.plaintext",
        ),
    ];
    for (frame, field) in cases {
        let e = refused_naming(frame, Some(31), &[field]);
        assert!(e.error.message.contains("base64"), "{frame}: {e:?}");
    }
}

#[test]
fn decode_error_message_is_single_field_and_operation_scoped() {
    // The params error names the op as well, so a log line is self-explaining.
    let e = refused_naming(
        r#"{"id": 9, "op": "generate_key", "params": {"slot": 0, "label": "k", "algorithm": "aes", "bits": "256"}}"#,
        Some(9),
        &["generate_key", "params.bits"],
    );
    assert!(
        e.error.message.starts_with("generate_key: params.bits:"),
        "{e:?}"
    );
}

// ---------------------------------------------------------------------------
// Secrets are never printed
// ---------------------------------------------------------------------------

const SECRET: &[u8] = b"TOPSECRET-key-material-\x01\x02\x03";

/// `debug` must not show `SECRET` as text, as base64, or as a list of numbers.
fn assert_secret_not_in(debug: &str) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(SECRET);
    let as_list = format!("{SECRET:?}"); // "[84, 79, 80, ...]"
    let as_list_inner = &as_list[1..as_list.len() - 1];
    let hex: String = SECRET.iter().map(|b| format!("{b:02x}")).collect();
    for needle in ["TOPSECRET", &b64, as_list_inner, &hex, "84, 79, 80, 83"] {
        assert!(
            !debug.contains(needle),
            "Debug output leaks the secret ({needle}): {debug}"
        );
    }
}

#[test]
fn secret_bytes_debug_prints_only_the_length() {
    let s = SecretBytes::new(SECRET.to_vec());
    let d = format!("{s:?}");
    assert_eq!(d, format!("SecretBytes([{} bytes redacted])", SECRET.len()));
    assert_secret_not_in(&d);
    assert_secret_not_in(&format!("{s:#?}"));
    assert_eq!(
        format!("{:?}", SecretBytes::default()),
        "SecretBytes([0 bytes redacted])"
    );
    // Still the real bytes on the wire and through expose().
    assert_eq!(s.expose(), SECRET);
    assert_eq!(s.len(), SECRET.len());
    assert!(!s.is_empty());
    assert_eq!(SecretBytes::from(SECRET.to_vec()), s);
}

#[test]
fn params_and_results_holding_secrets_do_not_debug_print_them() {
    let secret = || SecretBytes::new(SECRET.to_vec());
    let ops = [
        Operation::Encrypt(Encrypt {
            uid: "hsm::0::k".into(),
            algorithm: EncryptionAlgorithm::AesGcm,
            plaintext: secret(),
            aad: None,
            iv: None,
        }),
        Operation::Sign(Sign {
            uid: "hsm::0::k".into(),
            algorithm: SignatureAlgorithm::EcdsaSha256,
            data: secret(),
        }),
        Operation::Verify(Verify {
            uid: "hsm::0::k".into(),
            algorithm: SignatureAlgorithm::EcdsaSha256,
            data: secret(),
            signature: vec![1, 2, 3],
        }),
    ];
    for op in ops {
        let req = Request {
            id: 1,
            as_user: None,
            op,
        };
        assert_secret_not_in(&format!("{req:?}"));
        assert_secret_not_in(&format!("{req:#?}"));
        // And after a round trip through the wire.
        let back = Request::decode(&req.encode().unwrap()).unwrap();
        assert_secret_not_in(&format!("{back:?}"));
    }
    assert_secret_not_in(&format!(
        "{:?}",
        ExportResult {
            uid: "hsm::0::k".into(),
            format: ExportFormat::Raw,
            data: secret(),
        }
    ));
    assert_secret_not_in(&format!(
        "{:?}",
        DecryptResult {
            plaintext: secret()
        }
    ));
    assert_secret_not_in(&format!("{:?}", RandomResult { bytes: secret() }));
}

// ---------------------------------------------------------------------------
// The answer to a bad frame must itself be sendable
// ---------------------------------------------------------------------------

/// docs/protocol.md: a malformed frame "is answered with `bad_request` naming the
/// field, and the connection stays open when the frame boundary is intact".
/// So the error frame answering any request frame of at most `max_frame_len`
/// bytes must itself fit in a frame of `max_frame_len` bytes: the
/// length-delimited encoder refuses longer frames, and so does the peer's
/// decoder. Error messages must therefore not echo unbounded input.
#[test]
fn error_answer_to_a_max_size_frame_fits_in_a_frame() {
    use bytes::{Bytes, BytesMut};
    use tokio_util::codec::Encoder;

    let max = DEFAULT_MAX_FRAME_LEN;
    type Make = fn(&str) -> Value;
    let cases: Vec<(&str, &str, Make)> = vec![
        ("id", "x", |s| json!({"id": s, "op": "status"})),
        ("op", "x", |s| json!({"id": 1, "op": s})),
        // U+00AD is 2 bytes of UTF-8 but 7 bytes once Debug-escaped into the message.
        ("op (escaped)", "\u{ad}", |s| json!({"id": 1, "op": s})),
        (
            "as_user",
            "x",
            |s| json!({"id": 1, "op": "status", "as_user": [s]}),
        ),
        ("unknown top-level field", "x", |s| {
            let mut v = json!({"id": 1, "op": "status"});
            v[s] = json!(1);
            v
        }),
        (
            "params.bits",
            "x",
            |s| json!({"id": 1, "op": "generate_key", "params": {"slot": 0, "label": "k", "algorithm": "aes", "bits": s}}),
        ),
        (
            "params.algorithm",
            "x",
            |s| json!({"id": 1, "op": "sign", "params": {"uid": "u", "algorithm": s, "data": "AA=="}}),
        ),
    ];
    // Each request is padded to exactly max_frame_len bytes.
    let frames = cases.into_iter().map(|(what, unit, make)| {
        let base = serde_json::to_vec(&make("")).unwrap().len();
        let frame = serde_json::to_vec(&make(&unit.repeat((max - base) / unit.len()))).unwrap();
        (what, frame)
    });
    let mut too_long = Vec::new();
    for (what, frame) in frames {
        assert!(
            frame.len() <= max,
            "{what}: request of {} bytes",
            frame.len()
        );
        let e = refused(&frame);
        let answer = serde_json::to_vec(&Response::err(e.id, e.error)).unwrap();
        let mut out = BytesMut::new();
        if let Err(err) = frame_codec(max).encode(Bytes::from(answer.clone()), &mut out) {
            too_long.push(format!(
                "{what}: a {}-byte request is answered by a {}-byte error frame ({err})",
                frame.len(),
                answer.len()
            ));
        }
    }
    assert!(
        too_long.is_empty(),
        "error answers larger than max_frame_len = {max}:\n{}",
        too_long.join("\n")
    );
}
