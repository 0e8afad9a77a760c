//! Hostile requests on KMS keys (keys kept in kms-frontend's database,
//! wrapped by HSM keys; issue 14), found by trying to break them, against a
//! real hsmd and kms-frontend on a SoftHSMv2 token of the test's own:
//!
//! - a blob "wrapped by" an RSA public HSM key `hsm::S::L_pk` is unwrapped
//!   by the private key `hsm::S::L`, so importing one needs `decrypt` on the
//!   private key, not on the public one;
//! - the access endpoints answer "Item not found" for another user's KMS
//!   key that is not shared with the caller, as for an absent one;
//! - Import records the material's own size, whatever CryptographicLength
//!   the request claims, so a ReKey of the imported key works;
//! - a new KMS key's Unique Identifier holds no control characters and is
//!   at most 255 bytes.
//!
//! The KMS user is the frontend's default user, changed by restarting it on
//! the same database.

use hsmd_e2e::kmip::{bytes_hex, enumeration, field, text};
use hsmd_e2e::replay::hex;
use hsmd_e2e::{expect, frontend_hsmd_config, Daemon, Frontend, Reply, Token};
use serde_json::{json, Value};

/// hsmd and kms-frontend, first running as `admin` (the HSM admin).
struct Kms {
    _daemon: Daemon,
    fe: Frontend,
    slot: u64,
}

impl Kms {
    fn start(label: &str) -> (Token, Self) {
        let token = Token::new(label);
        let daemon = Daemon::start_with(&token, &frontend_hsmd_config(&token, ""), &[]);
        let fe = Frontend::start(&token, &daemon.socket, &["--default-username", "admin"]);
        let slot = token.slot;
        (
            token,
            Self {
                _daemon: daemon,
                fe,
                slot,
            },
        )
    }

    fn hsm(&self, label: &str) -> String {
        format!("hsm::{}::{label}", self.slot)
    }

    fn as_user(&mut self, user: &str) {
        self.fe.restart(&["--default-username", user]);
    }

    async fn send(&self, what: &str, body: &Value, status: u16, needle: &str) -> Reply {
        let r = self.fe.kmip(body).await;
        expect(what, &r, status, needle, &self.fe);
        r
    }

    async fn post(&self, path: &str, body: &Value) -> Reply {
        self.fe.post_raw(path, body.to_string()).await
    }
}

fn integer(tag: &str, v: i64) -> Value {
    json!({"tag": tag, "type": "Integer", "value": v})
}

/// Import of the AES key `key` as `uid`, the request claiming `claimed_bits`.
fn import_aes(uid: &str, key: &[u8], claimed_bits: i64) -> Value {
    json!({"tag": "Import", "value": [
        text("UniqueIdentifier", uid),
        enumeration("ObjectType", "SymmetricKey"),
        {"tag": "Attributes", "value": []},
        {"tag": "SymmetricKey", "value": [{"tag": "KeyBlock", "value": [
            enumeration("KeyFormatType", "Raw"),
            {"tag": "KeyValue", "value": [bytes_hex("KeyMaterial", &hex(key))]},
            enumeration("CryptographicAlgorithm", "AES"),
            integer("CryptographicLength", claimed_bits),
        ]}]},
    ]})
}

/// Import of `blob` as secret data wrapped by `wrapping_key`, unwrapped on
/// import (`KeyWrapType NotWrapped`).
fn import_wrapped_secret(uid: &str, blob: &str, wrapping_key: &str) -> Value {
    json!({"tag": "Import", "value": [
        text("UniqueIdentifier", uid),
        enumeration("ObjectType", "SecretData"),
        enumeration("KeyWrapType", "NotWrapped"),
        {"tag": "Attributes", "value": []},
        {"tag": "SecretData", "value": [{"tag": "KeyBlock", "value": [
            enumeration("KeyFormatType", "Opaque"),
            bytes_hex("KeyValue", blob),
            {"tag": "KeyWrappingData", "value": [
                enumeration("WrappingMethod", "Encrypt"),
                {"tag": "EncryptionKeyInformation", "value": [text("UniqueIdentifier", wrapping_key)]},
                enumeration("EncodingOption", "NoEncoding"),
            ]},
        ]}]},
    ]})
}

fn get_unwrapped(uid: &str) -> Value {
    json!({"tag": "Get", "value": [text("UniqueIdentifier", uid), enumeration("KeyWrapType", "NotWrapped")]})
}

/// The KeyMaterial of a GetResponse, as hex.
fn material(v: &Value) -> String {
    let object = v["value"]
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .find(|i| i["tag"] == "SecretData" || i["tag"] == "SymmetricKey")
        })
        .expect("the object");
    let block = field(object, "KeyBlock").expect("KeyBlock");
    let value = block
        .as_array()
        .and_then(|items| items.iter().find(|i| i["tag"] == "KeyValue"))
        .expect("KeyValue");
    field(value, "KeyMaterial")
        .and_then(Value::as_str)
        .expect("KeyMaterial")
        .to_owned()
}

fn access(uid: &str, user: &str, ops: &[&str]) -> Value {
    json!({"unique_identifier": uid, "user_id": user, "operation_types": ops})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_a_blob_wrapped_by_an_rsa_public_key_needs_decrypt_on_the_private_key() {
    let (_token, mut kms) = Kms::start("kms-hostile-pk");
    let (private, public) = (kms.hsm("rsakek"), kms.hsm("rsakek_pk"));
    let pair = json!({"tag": "CreateKeyPair", "value": [
        {"tag": "CommonAttributes", "value": [
            enumeration("CryptographicAlgorithm", "RSA"),
            integer("CryptographicLength", 2048),
        ]},
        {"tag": "PrivateKeyAttributes", "value": [text("UniqueIdentifier", &private)]},
    ]});
    kms.send("the admin creates an RSA HSM pair", &pair, 200, "")
        .await;
    // Data somebody protected with the HSM pair: RSA-OAEP SHA-1 (what
    // SoftHSMv2 offers) with its public key.
    let secret = "5EC12E75EC12E75EC12E75EC12E75EC1";
    let e = kms
        .send(
            "the admin encrypts with the public key",
            &json!({"tag": "Encrypt", "value": [
                text("UniqueIdentifier", &public),
                {"tag": "CryptographicParameters", "value": [
                    enumeration("PaddingMethod", "OAEP"),
                    enumeration("HashingAlgorithm", "SHA1"),
                ]},
                bytes_hex("Data", secret),
            ]}),
            200,
            "",
        )
        .await
        .json();
    let blob = field(&e, "Data")
        .and_then(Value::as_str)
        .expect("ciphertext")
        .to_owned();
    // A decrypt grant on the public key means nothing to the HSM (it does
    // not decrypt), and must not become one on the private key.
    let r = kms
        .post("/access/grant", &access(&public, "bob", &["decrypt"]))
        .await;
    expect(
        "the admin grants bob decrypt on the public key",
        &r,
        200,
        "",
        &kms.fe,
    );

    kms.as_user("bob");
    kms.send(
        "bob imports the ciphertext as a key wrapped by the public key",
        &import_wrapped_secret("stolen", &blob, &public),
        422,
        &format!("Item not found: {private}: no such key, or it is not shared with bob"),
    )
    .await;
    kms.send(
        "nothing was imported",
        &get_unwrapped("stolen"),
        422,
        "Item not found",
    )
    .await;

    // With decrypt on the private key, the same import is allowed and
    // gives the data back (the right that was granted).
    kms.as_user("admin");
    let r = kms
        .post("/access/grant", &access(&private, "bob", &["decrypt"]))
        .await;
    expect(
        "the admin grants bob decrypt on the private key",
        &r,
        200,
        "",
        &kms.fe,
    );
    kms.as_user("bob");
    kms.send(
        "bob imports with decrypt on the private key",
        &import_wrapped_secret("granted", &blob, &public),
        200,
        "granted",
    )
    .await;
    let g = kms
        .send("bob gets it", &get_unwrapped("granted"), 200, "")
        .await
        .json();
    assert_eq!(material(&g), secret, "{g}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_endpoints_do_not_tell_an_unshared_key_from_an_absent_one() {
    let (_token, mut kms) = Kms::start("kms-hostile-access");
    let kek = kms.hsm("kek");
    kms.send("the HSM KEK", &hsmd_e2e::kmip::create_aes(&kek), 200, "")
        .await;
    let with_kek = |user: &str| {
        vec![
            "--default-username".to_owned(),
            user.to_owned(),
            "--key-encryption-key".to_owned(),
            kek.clone(),
        ]
    };
    let restart = |kms: &mut Kms, user: &str| {
        let args = with_kek(user);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        kms.fe.restart(&args);
    };
    restart(&mut kms, "alice");
    let key = [0x42u8; 32];
    kms.send(
        "alice imports a key",
        &import_aes("alice-private", &key, 256),
        200,
        "",
    )
    .await;
    kms.send(
        "alice imports another",
        &import_aes("alice-shared", &key, 256),
        200,
        "",
    )
    .await;
    let r = kms
        .post(
            "/access/grant",
            &access("alice-shared", "bob", &["encrypt"]),
        )
        .await;
    expect("alice shares one with bob", &r, 200, "", &kms.fe);

    restart(&mut kms, "bob");
    for uid in ["alice-private", "no-such-key"] {
        for path in ["/access/grant", "/access/revoke"] {
            let r = kms.post(path, &access(uid, "bob", &["decrypt"])).await;
            expect(
                &format!("bob {path} on {uid}"),
                &r,
                422,
                &format!("Item not found: {uid}: no such KMS key, or it is not shared with bob"),
                &kms.fe,
            );
        }
        let r = kms.fe.get(&format!("/access/list/{uid}")).await;
        expect(
            &format!("bob lists {uid}"),
            &r,
            422,
            &format!("Item not found: {uid}: no such KMS key, or it is not shared with bob"),
            &kms.fe,
        );
    }
    // A key shared with bob: he knows it exists, and learns he is not its owner.
    let r = kms
        .post(
            "/access/grant",
            &access("alice-shared", "bob", &["decrypt"]),
        )
        .await;
    expect(
        "bob grants on the key shared with him",
        &r,
        401,
        "is not owned by owner `bob`",
        &kms.fe,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_records_the_real_size_and_refuses_uids_with_control_characters_or_too_long() {
    let (_token, mut kms) = Kms::start("kms-hostile-import");
    let kek = kms.hsm("kek");
    kms.send("the HSM KEK", &hsmd_e2e::kmip::create_aes(&kek), 200, "")
        .await;
    kms.fe
        .restart(&["--default-username", "alice", "--key-encryption-key", &kek]);
    let key: Vec<u8> = (0x40..0x60).collect();
    kms.send(
        "an AES-256 key claimed to be of 100 bits",
        &import_aes("liar", &key, 100),
        200,
        "",
    )
    .await;
    let a = kms
        .send(
            "its length",
            &json!({"tag": "GetAttributes", "value": [
                text("UniqueIdentifier", "liar"),
                enumeration("AttributeReference", "CryptographicLength"),
            ]}),
            200,
            "",
        )
        .await
        .json();
    let attrs = field(&a, "Attributes").expect("Attributes");
    assert_eq!(attrs[0]["value"], 256, "{a}");
    let r = kms
        .send(
            "ReKey of the imported key",
            &json!({"tag": "ReKey", "value": [text("UniqueIdentifier", "liar")]}),
            200,
            "",
        )
        .await
        .json();
    let new_uid = field(&r, "UniqueIdentifier")
        .and_then(Value::as_str)
        .expect("new uid")
        .to_owned();
    let g = kms
        .send("the new key", &get_unwrapped(&new_uid), 200, "")
        .await
        .json();
    assert_eq!(material(&g).len(), 64, "a 32-byte key: {g}");

    for (uid, why) in [
        ("esc\u{1b}[31mred", "it holds control characters"),
        ("line\nforged", "it holds control characters"),
        (&"u".repeat(256) as &str, "it is 256 bytes long"),
    ] {
        kms.send(
            &format!("Import as {uid:?}"),
            &import_aes(uid, &key, 256),
            422,
            why,
        )
        .await;
        kms.send(
            &format!("Create as {uid:?}"),
            &hsmd_e2e::kmip::create_aes(uid),
            422,
            why,
        )
        .await;
    }
    kms.send(
        "255 bytes are taken",
        &import_aes(&"u".repeat(255), &key, 256),
        200,
        "",
    )
    .await;
}
