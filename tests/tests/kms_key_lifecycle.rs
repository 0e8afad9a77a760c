//! Revoked and destroyed KMS keys are unusable at once, on every code path,
//! also while their clear copy sits in the frontend's unwrapped cache and
//! after a restart: the real kms-frontend with a server KEK in front of a
//! real hsmd on a SoftHSMv2 token of each test's own.
//!
//! Each test first uses its keys (so the unwrapped cache holds them), then
//! revokes or destroys them (KMIP 2.1 section 3.27):
//! - Revoke makes a key Deactivated: Encrypt, Sign and ReKey are refused
//!   with 422 `Permission_Denied` naming the state, Decrypt,
//!   SignatureVerify and Get still work (data protected before stays
//!   readable);
//! - Destroy (of a revoked key) erases the material: every use and Get is
//!   422 `Item not found`, GetAttributes still answers `State Destroyed`;
//! - Destroy of an Active key is refused (`Wrong_Key_Lifecycle_State`)
//!   unless it says `Remove`, which takes the whole object away.

use hsmd_e2e::kmip::{bytes_hex, create_aes, decrypt, destroy, enumeration, revoke, text};
use hsmd_e2e::replay::{bytes_at, hex, item};
use hsmd_e2e::{frontend_hsmd_config, Daemon, Frontend, Reply, Token};
use serde_json::{json, Value};

const PLAIN: &[u8] = b"kms-frontend e2e: a revoked key still decrypts this";

/// hsmd, and kms-frontend with the server KEK `hsm::<slot>::kek` (an HSM
/// AES key made at start), as admin.
struct Kms {
    fe: Frontend,
    _daemon: Daemon,
    token: Token,
}

impl Kms {
    async fn start(name: &str) -> Self {
        let token = Token::new(name);
        let daemon = Daemon::start_with(&token, &frontend_hsmd_config(&token, ""), &[]);
        let kek = format!("hsm::{}::kek", token.slot);
        let fe = Frontend::start(&token, &daemon.socket, &["--key-encryption-key", &kek]);
        let kms = Self {
            fe,
            _daemon: daemon,
            token,
        };
        kms.ok(&create_aes(&kek), "Create the HSM KEK").await;
        kms
    }

    fn restart(&mut self) {
        let kek = format!("hsm::{}::kek", self.token.slot);
        self.fe.restart(&["--key-encryption-key", &kek]);
    }

    /// Sends `req`; its 200 answer.
    async fn ok(&self, req: &Value, what: &str) -> Value {
        let reply = self.fe.kmip(req).await;
        assert_eq!(
            reply.status,
            200,
            "{what}: {reply}\nlog:\n{}",
            self.fe.log_text()
        );
        reply.json()
    }

    /// Sends `req`; asserts a 422 whose body starts with `class` and
    /// contains `detail`.
    async fn refused(&self, req: &Value, class: &str, detail: &str, what: &str) -> Reply {
        let reply = self.fe.kmip(req).await;
        assert!(
            reply.status == 422 && reply.body.starts_with(class) && reply.body.contains(detail),
            "{what}: want 422 {class:?} naming {detail:?}, got {reply}"
        );
        reply
    }

    async fn create_aes(&self, uid: &str) {
        self.ok(&create_aes(uid), "Create AES").await;
    }

    async fn create_pair(&self, uid: &str, algorithm: &str) {
        let common = match algorithm {
            "RSA" => vec![
                enumeration("CryptographicAlgorithm", "RSA"),
                json!({"tag": "CryptographicLength", "type": "Integer", "value": 2048}),
            ],
            _ => vec![
                enumeration("CryptographicAlgorithm", "EC"),
                enumeration("RecommendedCurve", "P256"),
            ],
        };
        self.ok(
            &json!({"tag": "CreateKeyPair", "value": [
                {"tag": "CommonAttributes", "value": common},
                {"tag": "PrivateKeyAttributes", "value": [text("UniqueIdentifier", uid)]},
            ]}),
            "CreateKeyPair",
        )
        .await;
    }

    async fn state(&self, uid: &str) -> String {
        let v = self
            .ok(
                &json!({"tag": "GetAttributes", "value": [text("UniqueIdentifier", uid)]}),
                "GetAttributes",
            )
            .await;
        item(&v, &["Attributes", "State"])["value"]
            .as_str()
            .expect("State")
            .to_owned()
    }

    async fn revoke(&self, uid: &str) {
        self.ok(&revoke(uid), "Revoke").await;
        assert_eq!(self.state(uid).await, "Deactivated", "{uid} after Revoke");
    }

    async fn destroy(&self, uid: &str) {
        self.ok(&destroy(uid), "Destroy").await;
        assert_eq!(self.state(uid).await, "Destroyed", "{uid} after Destroy");
    }
}

/// Encrypt of [`PLAIN`] with `uid`.
fn encrypt(uid: &str) -> Value {
    hsmd_e2e::kmip::encrypt(uid, &hex(PLAIN))
}

/// RSA PKCS#1 v1.5 SHA-256 for RSA keys, the key's default (ECDSA SHA-256)
/// for EC keys.
fn sign_params(uid: &str) -> Vec<Value> {
    if uid.starts_with("rsa") {
        vec![json!({"tag": "CryptographicParameters", "value": [
            enumeration("PaddingMethod", "PKCS1v15"),
            enumeration("HashingAlgorithm", "SHA256"),
        ]})]
    } else {
        vec![]
    }
}

fn sign(uid: &str) -> Value {
    let mut v = vec![text("UniqueIdentifier", uid)];
    v.extend(sign_params(uid));
    v.push(bytes_hex("Data", &hex(PLAIN)));
    json!({"tag": "Sign", "value": v})
}

fn verify(uid: &str, signature: &[u8]) -> Value {
    let mut v = vec![text("UniqueIdentifier", uid)];
    v.extend(sign_params(uid));
    v.push(bytes_hex("Data", &hex(PLAIN)));
    v.push(bytes_hex("SignatureData", &hex(signature)));
    json!({"tag": "SignatureVerify", "value": v})
}

fn get(uid: &str, wrap_type: &str) -> Value {
    json!({"tag": "Get", "value": [
        text("UniqueIdentifier", uid),
        enumeration("KeyWrapType", wrap_type),
    ]})
}

fn rekey(uid: &str) -> Value {
    json!({"tag": "ReKey", "value": [text("UniqueIdentifier", uid)]})
}

const DEACTIVATED: (&str, &str) = ("Permission_Denied", "Deactivated");
const GONE: (&str, &str) = ("Item not found", "");

/// Encrypt with AES and RSA keys (cached by a first use): refused once
/// the key is revoked, and once it is destroyed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypt_is_refused_at_once_after_revoke_and_after_destroy() {
    let kms = Kms::start("kms-life-encrypt").await;
    kms.create_aes("aes1").await;
    kms.create_pair("rsa1", "RSA").await;
    for uid in ["aes1", "rsa1_pk"] {
        kms.ok(&encrypt(uid), "Encrypt before").await;
        kms.revoke(uid).await;
        kms.refused(
            &encrypt(uid),
            DEACTIVATED.0,
            DEACTIVATED.1,
            "Encrypt revoked",
        )
        .await;
        kms.destroy(uid).await;
        kms.refused(&encrypt(uid), GONE.0, uid, "Encrypt destroyed")
            .await;
    }
}

/// Decrypt: still works with a revoked key (same plaintext), refused once
/// it is destroyed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decrypt_works_after_revoke_and_is_refused_at_once_after_destroy() {
    let kms = Kms::start("kms-life-decrypt").await;
    kms.create_aes("aes1").await;
    kms.create_pair("rsa1", "RSA").await;
    for (enc_uid, dec_uid) in [("aes1", "aes1"), ("rsa1_pk", "rsa1")] {
        let enc = kms.ok(&encrypt(enc_uid), "Encrypt").await;
        let dec = kms.ok(&decrypt(dec_uid, &enc), "Decrypt before").await;
        assert_eq!(bytes_at(&dec, &["Data"]), PLAIN);
        kms.revoke(dec_uid).await;
        let dec = kms.ok(&decrypt(dec_uid, &enc), "Decrypt revoked").await;
        assert_eq!(bytes_at(&dec, &["Data"]), PLAIN, "{dec_uid} revoked");
        kms.destroy(dec_uid).await;
        kms.refused(
            &decrypt(dec_uid, &enc),
            GONE.0,
            dec_uid,
            "Decrypt destroyed",
        )
        .await;
    }
}

/// Sign with RSA and EC keys: refused once revoked, and once destroyed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_is_refused_at_once_after_revoke_and_after_destroy() {
    let kms = Kms::start("kms-life-sign").await;
    kms.create_pair("rsa1", "RSA").await;
    kms.create_pair("ec1", "EC").await;
    for uid in ["rsa1", "ec1"] {
        kms.ok(&sign(uid), "Sign before").await;
        kms.revoke(uid).await;
        kms.refused(&sign(uid), DEACTIVATED.0, DEACTIVATED.1, "Sign revoked")
            .await;
        kms.destroy(uid).await;
        kms.refused(&sign(uid), GONE.0, uid, "Sign destroyed").await;
    }
}

/// SignatureVerify: Valid with a revoked public key, refused once destroyed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signature_verify_works_after_revoke_and_is_refused_at_once_after_destroy() {
    let kms = Kms::start("kms-life-verify").await;
    kms.create_pair("rsa1", "RSA").await;
    kms.create_pair("ec1", "EC").await;
    for uid in ["rsa1", "ec1"] {
        let pk = format!("{uid}_pk");
        let sig = bytes_at(&kms.ok(&sign(uid), "Sign").await, &["SignatureData"]);
        let valid = |v: &Value| item(v, &["ValidityIndicator"])["value"] == "Valid";
        assert!(valid(&kms.ok(&verify(&pk, &sig), "Verify before").await));
        kms.revoke(&pk).await;
        assert!(
            valid(&kms.ok(&verify(&pk, &sig), "Verify revoked").await),
            "{pk} revoked"
        );
        kms.destroy(&pk).await;
        kms.refused(&verify(&pk, &sig), GONE.0, &pk, "Verify destroyed")
            .await;
    }
}

/// Get / Export, wrapped and unwrapped: a revoked key is still exported
/// (the same material), a destroyed one is not found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_of_a_destroyed_key_is_refused_at_once() {
    let kms = Kms::start("kms-life-get").await;
    kms.create_aes("aes1").await;
    kms.create_pair("ec1", "EC").await;
    for (uid, t) in [("aes1", "SymmetricKey"), ("ec1", "PrivateKey")] {
        kms.ok(&encrypt_or_sign(uid), "use before").await;
        let clear = bytes_at(
            &kms.ok(&get(uid, "NotWrapped"), "Get").await,
            &[t, "KeyBlock", "KeyValue", "KeyMaterial"],
        );
        kms.revoke(uid).await;
        for wrap_type in ["NotWrapped", "AsRegistered"] {
            kms.ok(&get(uid, wrap_type), "Get revoked").await;
        }
        let again = bytes_at(
            &kms.ok(&get(uid, "NotWrapped"), "Get").await,
            &[t, "KeyBlock", "KeyValue", "KeyMaterial"],
        );
        assert_eq!(
            again, clear,
            "{uid}: a revoked key exports the same material"
        );
        kms.destroy(uid).await;
        for (tag, wrap_type) in [
            ("Get", "NotWrapped"),
            ("Get", "AsRegistered"),
            ("Export", "NotWrapped"),
        ] {
            let mut req = get(uid, wrap_type);
            req["tag"] = json!(tag);
            kms.refused(&req, GONE.0, uid, &format!("{tag} {wrap_type} destroyed"))
                .await;
        }
    }
}

fn encrypt_or_sign(uid: &str) -> Value {
    if uid.starts_with("aes") {
        encrypt(uid)
    } else {
        sign(uid)
    }
}

/// ReKey: refused for a revoked key and for a destroyed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rekey_is_refused_at_once_after_revoke_and_after_destroy() {
    let kms = Kms::start("kms-life-rekey").await;
    kms.create_aes("aes1").await;
    kms.ok(&encrypt("aes1"), "Encrypt before").await;
    let v = kms.ok(&rekey("aes1"), "ReKey").await;
    let new = item(&v, &["UniqueIdentifier"])["value"]
        .as_str()
        .expect("uid")
        .to_owned();
    assert_ne!(new, "aes1");
    kms.ok(&encrypt(&new), "Encrypt with the new key").await;
    kms.revoke("aes1").await;
    kms.refused(
        &rekey("aes1"),
        DEACTIVATED.0,
        DEACTIVATED.1,
        "ReKey revoked",
    )
    .await;
    kms.destroy("aes1").await;
    kms.refused(&rekey("aes1"), GONE.0, "aes1", "ReKey destroyed")
        .await;
    // The new key lives on.
    kms.ok(&encrypt(&new), "Encrypt with the new key after")
        .await;
}

/// Destroy of an Active key: refused without `Remove`; with it the object
/// is gone (also from the cache), attributes included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_of_an_active_key_needs_remove_which_removes_it_at_once() {
    let kms = Kms::start("kms-life-remove").await;
    kms.create_aes("aes1").await;
    let enc = kms.ok(&encrypt("aes1"), "Encrypt before").await;
    kms.refused(
        &destroy("aes1"),
        "Wrong_Key_Lifecycle_State",
        "aes1",
        "Destroy Active",
    )
    .await;
    assert_eq!(kms.state("aes1").await, "Active");
    kms.ok(
        &json!({"tag": "Destroy", "value": [
            text("UniqueIdentifier", "aes1"),
            {"tag": "Remove", "type": "Boolean", "value": true},
        ]}),
        "Destroy with Remove",
    )
    .await;
    kms.refused(&encrypt("aes1"), GONE.0, "aes1", "Encrypt removed")
        .await;
    kms.refused(&decrypt("aes1", &enc), GONE.0, "aes1", "Decrypt removed")
        .await;
    kms.refused(
        &json!({"tag": "GetAttributes", "value": [text("UniqueIdentifier", "aes1")]}),
        GONE.0,
        "aes1",
        "GetAttributes removed",
    )
    .await;
}

/// After a restart (cache empty, state read from the database): the
/// revoked key still only decrypts and verifies, the destroyed key is
/// still gone, for every path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_and_destroyed_keys_stay_so_after_a_restart() {
    let mut kms = Kms::start("kms-life-restart").await;
    kms.create_aes("aes1").await;
    kms.create_aes("aes2").await;
    kms.create_pair("rsa1", "RSA").await;
    kms.create_pair("ec1", "EC").await;
    let enc1 = kms.ok(&encrypt("aes1"), "Encrypt aes1").await;
    let enc2 = kms.ok(&encrypt("aes2"), "Encrypt aes2").await;
    let sig = bytes_at(
        &kms.ok(&sign("rsa1"), "Sign rsa1").await,
        &["SignatureData"],
    );
    kms.ok(&sign("ec1"), "Sign ec1").await;
    for uid in ["aes1", "rsa1", "rsa1_pk"] {
        kms.revoke(uid).await;
    }
    for uid in ["aes2", "ec1"] {
        kms.revoke(uid).await;
        kms.destroy(uid).await;
    }
    kms.restart();
    assert_eq!(kms.state("aes1").await, "Deactivated");
    assert_eq!(kms.state("aes2").await, "Destroyed");
    let dec = kms.ok(&decrypt("aes1", &enc1), "Decrypt revoked").await;
    assert_eq!(bytes_at(&dec, &["Data"]), PLAIN);
    let v = kms.ok(&verify("rsa1_pk", &sig), "Verify revoked").await;
    assert_eq!(item(&v, &["ValidityIndicator"])["value"], "Valid");
    for (req, what) in [
        (encrypt("aes1"), "Encrypt"),
        (sign("rsa1"), "Sign"),
        (encrypt("rsa1_pk"), "RSA Encrypt"),
        (rekey("aes1"), "ReKey"),
    ] {
        kms.refused(
            &req,
            DEACTIVATED.0,
            DEACTIVATED.1,
            &format!("{what} revoked, restarted"),
        )
        .await;
    }
    for (req, what) in [
        (encrypt("aes2"), "Encrypt"),
        (decrypt("aes2", &enc2), "Decrypt"),
        (get("aes2", "NotWrapped"), "Get"),
        (rekey("aes2"), "ReKey"),
        (sign("ec1"), "Sign"),
        (get("ec1", "AsRegistered"), "Get"),
    ] {
        kms.refused(&req, GONE.0, "", &format!("{what} destroyed, restarted"))
            .await;
    }
}
