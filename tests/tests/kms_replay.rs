//! Replays the reference exchanges of the Cosmian KMS 5.28.0
//! (`shared/fixtures/kmip/`, see its README) against the real kms-frontend
//! in front of a real hsmd on a SoftHSMv2 token of this test's own, in the
//! order and with the users they were captured with: phase `admin1` as the
//! frontend's default user `admin`, phase `bob` restarted with
//! `--default-username bob`, phase `admin2` restarted as `admin` again,
//! same database and same hsmd throughout.
//!
//! Every exchange answers the reference's HTTP status but for the
//! deliberate differences of [`DEVIATIONS`]; 200 KMIP answers have the
//! reference's shape (tags, nesting, types); Locate answers the keys each
//! user may see; the access endpoints answer the reference's JSON; what was
//! encrypted decrypts, what was signed verifies with the exported keys.
//!
//! The fixtures are the repository's copy in `tests/fixtures/kmip/`
//! (`KMIP_FIXTURES` names another directory).

use hsmd_e2e::kmip::{enumeration, text};
use hsmd_e2e::replay::{
    byte_string, bytes_at, find, fixtures, item, replace_item, shapes, Fixture,
};
use hsmd_e2e::{frontend_hsmd_config, Daemon, Frontend, Reply, Token};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;

/// The slot ID of the reference's token, in uids and paths.
const REF_SLOT: &str = "1365358982";

/// Deliberate differences from the reference: (exchange number, reference
/// status, our status, what our body must contain; `<slot>` stands for
/// nothing: it is literal text of our message).
const DEVIATIONS: &[(&str, u16, u16, &str)] = &[
    // OAEP with SHA-256: SoftHSMv2 2.6.1 lacks it; we name the mechanism.
    ("06", 500, 422, "CKM_RSA_PKCS_OAEP"),
    // Keys created without `Sensitive` are sensitive here by default.
    ("11", 200, 422, "Sensitive"),
    ("13", 200, 422, "Sensitive"),
    // We hold HSM keys only.
    ("41", 200, 422, "hsm::<slot>::<label>"),
    // Operations on a destroyed key: not found, not an internal error.
    ("53", 500, 422, "Item not found"),
    ("57", 500, 422, "Item not found"),
    // Our Destroy with Cascade also destroys the private key's `_pk`.
    ("62", 200, 422, "Item not found"),
];

/// The labels each Locate must answer, by exchange number.
const LOCATED: &[(&str, &[&str])] = &[
    ("15", &["aes1", "aes2s", "rsa1_pk", "rsa1"]),
    ("16", &["aes1", "aes2s"]),
    // bob sees only what he was granted something on.
    ("35", &["aes1"]),
    // After destroying aes1 (the reference also lists its own kms_key1).
    ("55", &["rsa1_pk", "rsa1", "aes2s"]),
    // After destroying rsa1 with Cascade: its _pk went with it.
    ("58", &["aes2s"]),
];

/// GetAttributes tags the reference sends and we do not: we claim only
/// what the token tells.
const NOT_CLAIMED: &[&str] = &[
    "Digest",
    "LeaseTime",
    "RandomNumberGenerator",
    "ShortUniqueIdentifier",
];

fn fixtures_dir() -> PathBuf {
    std::env::var_os("KMIP_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/kmip"))
}

/// Arrays sorted (compared as sets), recursively.
fn unordered(v: &Value) -> Value {
    match v {
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(unordered).collect();
            items.sort_by_key(Value::to_string);
            Value::Array(items)
        }
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), unordered(v))).collect())
        }
        other => other.clone(),
    }
}

// ------------------------------------------------------------------ replay

struct Replay {
    slot: String,
    fixtures: Vec<Fixture>,
    /// Our JSON answers (200s), by stem.
    ours: HashMap<String, Value>,
}

impl Replay {
    fn uid(&self, label: &str) -> String {
        format!("hsm::{}::{label}", self.slot)
    }

    /// The fixture numbered `nn` (the only one, or the first of `_1`, `_2`).
    fn fixture(&self, nn: &str) -> &Fixture {
        self.fixtures
            .iter()
            .find(|f| f.nn == nn)
            .unwrap_or_else(|| panic!("no fixture {nn}"))
    }

    /// Our 200 answer to exchange `nn`.
    fn ours(&self, nn: &str) -> &Value {
        let stem = &self.fixture(nn).stem;
        self.ours
            .get(stem)
            .unwrap_or_else(|| panic!("no 200 answer of ours to {stem}"))
    }

    fn request_of(&self, nn: &str) -> Value {
        serde_json::from_str(&self.fixture(nn).request).expect("request JSON")
    }

    /// The body we send for `fx`: the reference's, on our slot, with the
    /// ciphertexts of our own earlier Encrypt in Decrypt requests.
    fn body_of(&self, fx: &Fixture) -> String {
        let body = fx.request.replace(REF_SLOT, &self.slot);
        let source = match fx.nn.as_str() {
            "05" | "31" => "04",
            "07b" => "06b",
            "07c" => "06c",
            _ => return body,
        };
        let mut req: Value = serde_json::from_str(&body).expect("request JSON");
        assert_eq!(req["tag"], "Decrypt", "{}", fx.stem);
        let enc = self.ours(source).clone();
        for tag in ["Data", "IVCounterNonce", "AuthenticatedEncryptionTag"] {
            let ours = find(&enc, &[tag]);
            let theirs = find(&req, &[tag]).is_some();
            match (ours, theirs) {
                (Some(o), true) => replace_item(&mut req, tag, o.clone()),
                (None, false) => {}
                _ => panic!(
                    "{}: {tag} present in only one of our Encrypt answer and the reference's Decrypt: {enc}",
                    fx.stem
                ),
            }
        }
        req.to_string()
    }

    fn check(&self, fx: &Fixture, reply: &Reply, log: &dyn Fn() -> String) {
        let what = format!("{} ({} {})", fx.stem, fx.method, fx.path);
        if let Some(&(_, reference, status, needle)) =
            DEVIATIONS.iter().find(|(nn, ..)| *nn == fx.nn)
        {
            assert_eq!(fx.status, reference, "{what}: the reference changed");
            assert_eq!(
                reply.status,
                status,
                "{what}: ours {reply}\nlog:\n{}",
                log()
            );
            assert!(
                reply.body.contains(needle),
                "{what}: our body does not name {needle:?}: {reply}"
            );
            return;
        }
        assert_eq!(
            reply.status,
            fx.status,
            "{what}: ours {reply}, reference {}: {}\nlog:\n{}",
            fx.status,
            fx.response,
            log()
        );
        if reply.status != 200 {
            assert!(!reply.body.is_empty(), "{what}: a refusal without a cause");
            return;
        }
        let theirs = fx.response.replace(REF_SLOT, &self.slot);
        if fx.path == "/kmip/2_1" {
            self.check_kmip(
                fx,
                &reply.json(),
                &serde_json::from_str(&theirs).expect("JSON"),
            );
        } else if fx.path.starts_with("/access/") {
            assert_eq!(
                unordered(&reply.json()),
                unordered(&serde_json::from_str(&theirs).expect("JSON")),
                "{what}: ours {reply}, reference {theirs}"
            );
        } else if fx.path == "/version" {
            assert!(
                reply.json().is_string(),
                "{what}: not a JSON string: {reply}"
            );
        } else {
            panic!("{what}: no check for this path");
        }
    }

    fn check_kmip(&self, fx: &Fixture, ours: &Value, theirs: &Value) {
        let mut expected = shapes(theirs);
        if theirs["tag"] == "GetAttributesResponse" {
            expected.retain(|(path, _)| !path.split('/').any(|t| NOT_CLAIMED.contains(&t)));
        }
        let got = shapes(ours);
        assert!(
            got == expected,
            "{}: shapes differ\nonly ours: {:#?}\nonly the reference's: {:#?}\nours: {ours}",
            fx.stem,
            got.difference(&expected).collect::<Vec<_>>(),
            expected.difference(&got).collect::<Vec<_>>()
        );
        if ours["tag"] == "LocateResponse" {
            let (_, labels) = LOCATED
                .iter()
                .find(|(nn, _)| *nn == fx.nn)
                .unwrap_or_else(|| panic!("{}: no expected Locate answer", fx.stem));
            let items = ours["value"].as_array().expect("items");
            let uids: Vec<&str> = items
                .iter()
                .filter(|i| i["tag"] == "UniqueIdentifier")
                .map(|i| i["value"].as_str().expect("uid"))
                .collect();
            let mut got = uids.clone();
            got.sort_unstable();
            let mut want: Vec<String> = labels.iter().map(|l| self.uid(l)).collect();
            want.sort_unstable();
            assert_eq!(got, want, "{}: located {ours}", fx.stem);
            assert_eq!(
                item(ours, &["LocatedItems"])["value"],
                json!(uids.len()),
                "{}: {ours}",
                fx.stem
            );
        }
    }
}

/// Round trips of the replayed exchanges: decryptions give back the
/// plaintexts, the three exports of rsa1_pk are the same key.
fn check_round_trips(r: &Replay) {
    for (enc, dec) in [("04", "05"), ("06b", "07b"), ("06c", "07c")] {
        assert_eq!(
            bytes_at(r.ours(dec), &["Data"]),
            bytes_at(&r.request_of(enc), &["Data"]),
            "{dec} does not decrypt what {enc} encrypted"
        );
    }
    let spki = rsa1_pk(r);
    for (nn, format) in [("09", "PKCS1"), ("10", "PKCS1")] {
        let got = r.ours(nn);
        assert_eq!(
            item(got, &["PublicKey", "KeyBlock", "KeyFormatType"])["value"],
            format,
            "{nn}"
        );
        let material = bytes_at(got, &["PublicKey", "KeyBlock", "KeyValue", "KeyMaterial"]);
        let pkcs1 =
            <rsa::RsaPublicKey as rsa::pkcs1::DecodeRsaPublicKey>::from_pkcs1_der(&material)
                .unwrap_or_else(|e| panic!("{nn}: not PKCS#1 RSAPublicKey DER: {e}"));
        assert_eq!(pkcs1, spki, "{nn} exports another key than 08");
    }
}

/// rsa1_pk as exported in 08 (PKCS8 = SubjectPublicKeyInfo DER).
fn rsa1_pk(r: &Replay) -> rsa::RsaPublicKey {
    let got = r.ours("08");
    assert_eq!(
        item(got, &["PublicKey", "KeyBlock", "KeyFormatType"])["value"],
        "PKCS8"
    );
    let der = bytes_at(got, &["PublicKey", "KeyBlock", "KeyValue", "KeyMaterial"]);
    <rsa::RsaPublicKey as rsa::pkcs8::DecodePublicKey>::from_public_key_der(&der)
        .unwrap_or_else(|e| panic!("08: not SPKI DER: {e}"))
}

/// `SignatureVerify` through the frontend: Valid for `sig`, Invalid with
/// its last byte flipped.
async fn verify_through_frontend(
    fe: &Frontend,
    uid: &str,
    params: Option<Value>,
    msg: &[u8],
    sig: &[u8],
) {
    for (signature, validity) in [
        (sig.to_vec(), "Valid"),
        (
            {
                let mut s = sig.to_vec();
                *s.last_mut().expect("signature") ^= 0x01;
                s
            },
            "Invalid",
        ),
    ] {
        let mut items = vec![text("UniqueIdentifier", uid)];
        items.extend(params.clone());
        items.push(byte_string("Data", msg));
        items.push(byte_string("SignatureData", &signature));
        let reply = fe
            .kmip(&json!({"tag": "SignatureVerify", "value": items}))
            .await;
        assert_eq!(
            reply.status, 200,
            "SignatureVerify {uid} ({validity}): {reply}"
        );
        let v = reply.json();
        assert_eq!(v["tag"], "SignatureVerifyResponse", "{reply}");
        assert_eq!(
            item(&v, &["ValidityIndicator"])["value"],
            validity,
            "SignatureVerify {uid}: {reply}"
        );
    }
}

/// KMIP Sign with rsa1 (PKCS#1 v1.5, SHA-256), verified with the rsa crate
/// and the key exported in 08, and through the frontend with rsa1_pk.
async fn rsa_signatures(fe: &Frontend, r: &Replay) {
    use sha2::Digest;
    let msg = b"kms-frontend e2e: an RSA signature";
    let params = json!({"tag": "CryptographicParameters", "value": [
        enumeration("PaddingMethod", "PKCS1v15"),
        enumeration("HashingAlgorithm", "SHA256"),
    ]});
    let reply = fe
        .kmip(&json!({"tag": "Sign", "value": [
            text("UniqueIdentifier", &r.uid("rsa1")),
            params.clone(),
            byte_string("Data", msg),
        ]}))
        .await;
    assert_eq!(reply.status, 200, "Sign with rsa1: {reply}");
    let v = reply.json();
    assert_eq!(v["tag"], "SignResponse", "{reply}");
    let sig = bytes_at(&v, &["SignatureData"]);
    rsa1_pk(r)
        .verify(
            rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
            &sha2::Sha256::digest(msg),
            &sig,
        )
        .expect("rsa1's PKCS#1 v1.5 SHA-256 signature verifies with the exported rsa1_pk");
    verify_through_frontend(fe, &r.uid("rsa1_pk"), Some(params), msg, &sig).await;
}

/// An EC P-256 pair: CreateKeyPair, Sign without parameters (ECDSA with
/// SHA-256, DER), export of the public key (PKCS8), verified with the p256
/// crate and through the frontend.
async fn ec_signatures(fe: &Frontend, r: &Replay) {
    use p256::ecdsa::signature::Verifier;
    use p256::pkcs8::DecodePublicKey;
    let (ec1, ec1_pk) = (r.uid("ec1"), r.uid("ec1_pk"));
    let reply = fe
        .kmip(&json!({"tag": "CreateKeyPair", "value": [
            {"tag": "CommonAttributes", "value": [
                enumeration("CryptographicAlgorithm", "EC"),
                enumeration("RecommendedCurve", "P256"),
            ]},
            {"tag": "PrivateKeyAttributes", "value": [text("UniqueIdentifier", &ec1)]},
        ]}))
        .await;
    assert_eq!(reply.status, 200, "CreateKeyPair EC: {reply}");
    let v = reply.json();
    assert_eq!(
        item(&v, &["PrivateKeyUniqueIdentifier"])["value"],
        ec1.as_str()
    );
    assert_eq!(
        item(&v, &["PublicKeyUniqueIdentifier"])["value"],
        ec1_pk.as_str()
    );

    let msg = b"kms-frontend e2e: an ECDSA signature";
    let reply = fe
        .kmip(&json!({"tag": "Sign", "value": [
            text("UniqueIdentifier", &ec1),
            byte_string("Data", msg),
        ]}))
        .await;
    assert_eq!(reply.status, 200, "Sign with ec1: {reply}");
    let sig = bytes_at(&reply.json(), &["SignatureData"]);

    let reply = fe
        .kmip(&json!({"tag": "Get", "value": [
            text("UniqueIdentifier", &ec1_pk),
            enumeration("KeyFormatType", "PKCS8"),
        ]}))
        .await;
    assert_eq!(reply.status, 200, "Get ec1_pk: {reply}");
    let der = bytes_at(
        &reply.json(),
        &["PublicKey", "KeyBlock", "KeyValue", "KeyMaterial"],
    );
    let key = p256::PublicKey::from_public_key_der(&der).expect("ec1_pk is P-256 SPKI DER");
    let signature = p256::ecdsa::Signature::from_der(&sig).expect("ECDSA signature in DER");
    p256::ecdsa::VerifyingKey::from(&key)
        .verify(msg, &signature)
        .expect("ec1's signature verifies with the exported ec1_pk");
    verify_through_frontend(fe, &ec1_pk, None, msg, &sig).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_exchanges_replay() {
    let token = Token::new("kms-replay");
    let daemon = Daemon::start_with(&token, &frontend_hsmd_config(&token, ""), &[]);
    let mut fe = Frontend::start(&token, &daemon.socket, &[]);
    let mut r = Replay {
        slot: token.slot.to_string(),
        fixtures: fixtures(&fixtures_dir()),
        ours: HashMap::new(),
    };
    assert_eq!(
        r.fixtures.len(),
        47,
        "the captured exchanges with a _meta.json in {}",
        fixtures_dir().display()
    );
    for (nn, ..) in DEVIATIONS {
        r.fixture(nn);
    }
    for (nn, _) in LOCATED {
        r.fixture(nn);
    }
    let mut phase = "admin1".to_owned();
    for i in 0..r.fixtures.len() {
        let fx = &r.fixtures[i];
        if fx.phase != phase {
            if phase == "admin1" {
                // Before rsa1 is destroyed (56).
                rsa_signatures(&fe, &r).await;
            }
            let user = match fx.phase.as_str() {
                "bob" => "bob",
                "admin2" => "admin",
                other => panic!("{}: unknown phase {other}", fx.stem),
            };
            fe.restart(&["--default-username", user]);
            phase = fx.phase.clone();
        }
        let body = r.body_of(fx);
        let path = fx.path.replace(REF_SLOT, &r.slot);
        let reply = fe.request(&fx.method, &path, body).await;
        r.check(fx, &reply, &|| fe.log_text());
        if reply.status == 200 {
            if let Ok(v) = serde_json::from_str(&reply.body) {
                let stem = fx.stem.clone();
                r.ours.insert(stem, v);
            }
        }
    }
    assert_eq!(phase, "admin2", "the fixtures end in phase admin2");
    check_round_trips(&r);
    ec_signatures(&fe, &r).await;
}
