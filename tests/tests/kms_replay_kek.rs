//! Replays the reference exchanges of KMS keys wrapped by HSM keys
//! (`tests/fixtures/kmip-kek/`, a copy of `shared/fixtures/kmip-kek/`, see
//! its README) against the real kms-frontend in front of a real hsmd on a
//! SoftHSMv2 token of this test's own, in index order, with the phases'
//! restarts and users: `admin1` without a server KEK, then `kek-admin1`,
//! `kek-bob`, `kek-admin2`, `kek-admin3`, each a restart with
//! `--key-encryption-key hsm::<slot>::kek --default-unwrap-type
//! SymmetricKey --default-unwrap-type SecretData` as `admin` or `bob`
//! (the last restart empties the unwrapped cache); same database and hsmd
//! throughout.
//!
//! What is substituted: the slot ID; in Decrypt and SignatureVerify the
//! ciphertexts and signatures of our own Encrypt and Sign; in the Imports
//! of files ckms exported (88, 89, 89b, 96, 109e, 109f) our own exported
//! object (the reference's wrapped blobs unwrap only with its token's keys).
//!
//! Checked: every exchange answers the reference's HTTP status but for the
//! deliberate [`DEVIATIONS`], a refusal starts with the reference's error
//! class (`Item not found`, `Permission_Denied`, ...); 200 KMIP answers have
//! the reference's shape (tags, nesting, types), their attribute lists hold
//! the reference's attributes but those we do not claim ([`NOT_CLAIMED`]); Locate answers the keys of [`LOCATED`];
//! what was encrypted decrypts, what was signed verifies (through the
//! frontend and with the exported public keys), the exported clear dek1 is
//! the key that encrypted (AES-GCM and RFC 5649 recomputed here).
//!
//! And nothing is at rest in clear: after every command, the database file,
//! its `-wal` and every table value hold no key material known so far
//! (`hsmd_e2e::at_rest`): the clear keys learnt by a `Get NotWrapped`
//! after each Create, CreateKeyPair and Import (the private exponent,
//! primes and EC scalars too), the clear keys the Imports sent, the DEK
//! of the client-side encryption.
//!
//! `KMIP_KEK_FIXTURES` names another fixture directory.

use hsmd_e2e::at_rest::{AtRest, Secret};
use hsmd_e2e::kmip::{enumeration, text};
use hsmd_e2e::postgres::{or_skip, PgServer};
use hsmd_e2e::replay::{bytes_at, find, fixtures, item, replace_item, shapes, Fixture};
use hsmd_e2e::{frontend_hsmd_config, Daemon, Frontend, Reply, Token};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

/// The slot ID of the reference's token, in uids and paths.
const REF_SLOT: &str = "258476651";

/// Deliberate differences from the reference: (exchange id, reference
/// status, our status, what our body must contain).
const DEVIATIONS: &[(&str, u16, u16, &str)] = &[
    // `ckms sym keys unwrap` ends with Destroy {Remove, Cascade} of the
    // still Active temporary key it imported: the reference refuses it
    // (ckms exits 1, a clear copy stays in its database); `Remove` takes
    // the row away here, so the documented command succeeds.
    ("96/3", 422, 200, "DestroyResponse"),
    ("109e/3", 422, 200, "DestroyResponse"),
];

/// The uids each Locate must answer (`<slot>`: our slot ID).
const LOCATED: &[(&str, &[&str])] = &[
    // The reference also lists the temporary key 96 left behind.
    (
        "98",
        &[
            "dek1",
            "dek2s",
            "dek3",
            "dek4",
            "rsaw1",
            "rsaw1_pk",
            "ecw1",
            "ecw1_pk",
            "dek5",
            "imp1",
            "hsm::<slot>::kek",
            "hsm::<slot>::keks",
            "hsm::<slot>::rsakek",
            "hsm::<slot>::rsakek_pk",
        ],
    ),
    ("98b", &["dek5"]),
];

/// Attributes the reference answers and we do not: the `Digest` of the
/// clear key (a fingerprint kept in clear), and defaults it adds that were
/// never asked for (the fixtures' README, points 7 and 10).
const NOT_CLAIMED: &[&str] = &[
    "Digest",
    "LeaseTime",
    "RandomNumberGenerator",
    "ShortUniqueIdentifier",
    "Fresh",
    "Extractable",
    "NeverExtractable",
    "AlwaysSensitive",
    "OriginalCreationDate",
    // `Sensitive false` when the request did not say: we answer it only
    // when it was asked for.
    "Sensitive",
    // Ours also names, in a clear export, the HSM key the object is wrapped
    // by at rest; the links are compared by value instead
    // ([`Replay::check_kmip`]).
    "Link",
];

/// Decrypt and SignatureVerify exchanges, and the Encrypt or Sign of ours
/// whose output they take.
const SOURCES: &[(&str, &str)] = &[
    ("91", "90"),
    ("93", "92"),
    ("99b", "99"),
    ("99i", "90b"),
    ("103", "102"),
    ("107e", "106"),
    ("109", "102"),
    ("109b", "90"),
    ("111", "110"),
    ("113", "112"),
];

/// Imports of a file ckms exported, and our Get whose object they take.
const EXPORTED: &[(&str, &str)] = &[
    ("88", "95"),
    ("89", "94"),
    ("89b", "94"),
    ("96/1", "94"),
    ("109e/1", "94"),
    ("109f", "94"),
];

fn fixtures_dir() -> PathBuf {
    std::env::var_os("KMIP_KEK_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/kmip-kek"))
}

/// The frontend's flags in `phase`, with the server KEK `kek`.
fn phase_flags(phase: &str, kek: &str) -> Vec<String> {
    let user = match phase {
        "admin1" | "kek-admin1" | "kek-admin2" | "kek-admin3" => "admin",
        "kek-bob" => "bob",
        other => panic!("unknown phase {other}"),
    };
    let mut flags = vec!["--default-username".to_owned(), user.to_owned()];
    if phase.starts_with("kek-") {
        for f in [
            "--key-encryption-key",
            kek,
            "--default-unwrap-type",
            "SymmetricKey",
            "--default-unwrap-type",
            "SecretData",
        ] {
            flags.push(f.to_owned());
        }
    }
    flags
}

fn items(v: &Value) -> &[Value] {
    v["value"].as_array().map_or(&[], Vec::as_slice)
}

/// The TTLV `v` without the attributes of [`NOT_CLAIMED`] anywhere.
fn claimed(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut m = m.clone();
            if let Some(Value::Array(children)) = m.get("value") {
                let kept: Vec<Value> = children
                    .iter()
                    .filter(|c| !NOT_CLAIMED.iter().any(|t| c["tag"] == *t))
                    .map(claimed)
                    .collect();
                m.insert("value".into(), Value::Array(kept));
            }
            Value::Object(m)
        }
        other => other.clone(),
    }
}

struct Replay {
    slot: String,
    fixtures: Vec<Fixture>,
    /// Our JSON answers (200s), by exchange id.
    ours: HashMap<String, Value>,
    /// Clear key material learnt so far, none of which may be at rest.
    secrets: Vec<Secret>,
    /// Public keys (SubjectPublicKeyInfo DER) learnt by Get, by uid.
    public: HashMap<String, Vec<u8>>,
}

impl Replay {
    fn fixture(&self, id: &str) -> &Fixture {
        self.fixtures
            .iter()
            .find(|f| f.id == id)
            .unwrap_or_else(|| panic!("no fixture {id}"))
    }

    fn ours(&self, id: &str) -> &Value {
        self.ours
            .get(id)
            .unwrap_or_else(|| panic!("no 200 answer of ours to {id}"))
    }

    fn request_of(&self, id: &str) -> Value {
        serde_json::from_str(&self.fixture(id).request).expect("request JSON")
    }

    fn on_slot(&self, text: &str) -> String {
        text.replace("<slot>", &self.slot)
    }

    /// The body we send for `fx`: the reference's on our slot, with our
    /// own ciphertexts, signatures and exported objects where it used its
    /// own.
    fn body_of(&self, fx: &Fixture) -> String {
        let body = fx.request.replace(REF_SLOT, &self.slot);
        let source = SOURCES.iter().find(|(id, _)| *id == fx.id);
        let exported = EXPORTED.iter().find(|(id, _)| *id == fx.id);
        if source.is_none() && exported.is_none() {
            return body;
        }
        let mut req: Value = serde_json::from_str(&body).expect("request JSON");
        if let Some((_, src)) = source {
            let ours = self.ours(src);
            let tags: &[&str] = match req["tag"].as_str() {
                Some("Decrypt") => &["Data", "IVCounterNonce", "AuthenticatedEncryptionTag"],
                Some("SignatureVerify") => &["SignatureData"],
                other => panic!("{}: {other:?} takes no output of {src}", fx.stem),
            };
            for tag in tags {
                let mine = find(ours, &[tag]).cloned();
                let theirs = find(&req, &[tag]).cloned();
                match (mine, theirs) {
                    (Some(m), Some(_)) => replace_item(&mut req, tag, m),
                    // ckms sends an empty IV and tag where the mode has none.
                    (None, Some(t)) => assert_eq!(t["value"], "", "{}: {tag}", fx.stem),
                    (None, None) => {}
                    (Some(_), None) => panic!(
                        "{}: our {src} answers a {tag} the reference's request lacks",
                        fx.stem
                    ),
                }
            }
        }
        if let Some((_, src)) = exported {
            let got = self.ours(src);
            let object_type = item(got, &["ObjectType"])["value"]
                .as_str()
                .expect("ObjectType")
                .to_owned();
            let object = item(got, &[&object_type]).clone();
            replace_item(&mut req, &object_type, object);
        }
        req.to_string()
    }

    fn check(&self, fx: &Fixture, reply: &Reply, log: &dyn Fn() -> String) {
        let what = format!("{} ({} {})", fx.id, fx.method, fx.path);
        if let Some(&(_, reference, status, needle)) =
            DEVIATIONS.iter().find(|(id, ..)| *id == fx.id)
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
            // The reference's error class ("Item not found", "Sensitive",
            // "Permission_Denied", "Not Supported") starts our message too.
            let class = fx.response.split(':').next().unwrap_or_default();
            assert!(
                reply.body.starts_with(class),
                "{what}: ours {reply}, the reference's starts with {class:?}: {}",
                fx.response
            );
            return;
        }
        let theirs = fx.response.replace(REF_SLOT, &self.slot);
        match fx.path.as_str() {
            "/kmip/2_1" => self.check_kmip(
                fx,
                &reply.json(),
                &serde_json::from_str(&theirs).expect("JSON"),
            ),
            "/access/grant" => assert_eq!(
                reply.json(),
                serde_json::from_str::<Value>(&theirs).expect("JSON"),
                "{what}"
            ),
            "/version" => assert!(reply.json().is_string(), "{what}: {reply}"),
            _ => panic!("{what}: no check for this path"),
        }
    }

    fn check_kmip(&self, fx: &Fixture, ours: &Value, theirs: &Value) {
        // Outside attribute lists the shapes are the same; inside, ours hold
        // at least the reference's (minus NOT_CLAIMED): it answers more in
        // some answers than in others, we answer what we keep.
        let in_attributes = |(path, _): &(String, String)| {
            path.contains("/Attributes/") || path.ends_with("/Attributes")
        };
        let (theirs_attrs, expected): (BTreeSet<_>, BTreeSet<_>) = shapes(&claimed(theirs))
            .into_iter()
            .partition(in_attributes);
        let (ours_attrs, got): (BTreeSet<_>, BTreeSet<_>) =
            shapes(&claimed(ours)).into_iter().partition(in_attributes);
        assert!(
            got == expected,
            "{}: shapes differ\nonly ours: {:#?}\nonly the reference's: {:#?}\nours: {ours}",
            fx.stem,
            got.difference(&expected).collect::<Vec<_>>(),
            expected.difference(&got).collect::<Vec<_>>()
        );
        assert!(
            theirs_attrs.is_subset(&ours_attrs),
            "{}: attributes missing: {:#?}\nours: {ours}",
            fx.stem,
            theirs_attrs.difference(&ours_attrs).collect::<Vec<_>>()
        );
        if ours["tag"] == "LocateResponse" {
            let (_, uids) = LOCATED
                .iter()
                .find(|(id, _)| *id == fx.id)
                .unwrap_or_else(|| panic!("{}: no expected Locate answer", fx.stem));
            let located: BTreeSet<String> = items(ours)
                .iter()
                .filter(|i| i["tag"] == "UniqueIdentifier")
                .map(|i| i["value"].as_str().expect("uid").to_owned())
                .collect();
            let want: BTreeSet<String> = uids.iter().map(|u| self.on_slot(u)).collect();
            assert_eq!(located, want, "{}: located {ours}", fx.stem);
            assert_eq!(
                item(ours, &["LocatedItems"])["value"],
                json!(located.len()),
                "{}: {ours}",
                fx.stem
            );
        }
        if ours["tag"] == "GetAttributesResponse" {
            // The link to the wrapping key, as the reference's.
            let link = |v: &Value| -> Option<Value> {
                items(item(v, &["Attributes"]))
                    .iter()
                    .find(|a| {
                        a["tag"] == "Link" && item(a, &["LinkType"])["value"] == "WrappingKeyLink"
                    })
                    .map(|a| item(a, &["LinkedObjectIdentifier"])["value"].clone())
            };
            assert_eq!(
                link(ours),
                link(theirs),
                "{}: WrappingKeyLink: {ours}",
                fx.stem
            );
        }
        if ours["tag"] == "SignatureVerifyResponse" {
            assert_eq!(
                item(ours, &["ValidityIndicator"])["value"],
                "Valid",
                "{}",
                fx.stem
            );
        }
    }

    /// Learns the clear key material `fx` sent or made: the clear key an
    /// Import sent, the DEK of a client-side (RFC 5649) Encrypt, and by a
    /// `Get NotWrapped` the key a Create, CreateKeyPair or Import made
    /// (unless Sensitive).
    async fn learn(&mut self, fe: &Frontend, id: &str, body: &str, answer: &Value) {
        // GET /version has no body.
        let req: Value = serde_json::from_str(body).unwrap_or_default();
        match req["tag"].as_str() {
            Some("Import") => {
                let t = item(&req, &["ObjectType"])["value"].as_str().expect("type");
                let block = item(&req, &[t, "KeyBlock"]);
                if let Some(m) = find(block, &["KeyValue", "KeyMaterial"]) {
                    let hex = m["value"]
                        .as_str()
                        .map(str::to_owned)
                        .or_else(|| {
                            find(m, &["Key"])
                                .and_then(|k| k["value"].as_str())
                                .map(str::to_owned)
                        })
                        .expect("KeyMaterial bytes");
                    self.secrets.push(Secret::new(
                        format!("the clear key Import {id} sent"),
                        hsmd_e2e::replay::unhex(&hex),
                    ));
                }
            }
            Some("Encrypt")
                if find(&req, &["CryptographicParameters", "BlockCipherMode"])
                    .is_some_and(|m| m["value"] == "AESKeyWrapPadding") =>
            {
                self.secrets.push(Secret::new(
                    format!("the DEK Encrypt {id} wrapped"),
                    bytes_at(&req, &["Data"]),
                ));
            }
            _ => {}
        }
        let uids: Vec<String> = match answer["tag"].as_str() {
            Some("CreateResponse" | "ImportResponse") => {
                vec![item(answer, &["UniqueIdentifier"])["value"]
                    .as_str()
                    .expect("uid")
                    .to_owned()]
            }
            Some("CreateKeyPairResponse") => {
                ["PrivateKeyUniqueIdentifier", "PublicKeyUniqueIdentifier"]
                    .iter()
                    .map(|t| {
                        item(answer, &[t])["value"]
                            .as_str()
                            .expect("uid")
                            .to_owned()
                    })
                    .collect()
            }
            _ => vec![],
        };
        for uid in uids.iter().filter(|u| !u.starts_with("hsm::")) {
            self.probe(fe, uid, id).await;
        }
    }

    /// `Get NotWrapped` of the KMS key `uid` (made by `id`): its clear
    /// material becomes a secret (a public key is kept for verifying).
    async fn probe(&mut self, fe: &Frontend, uid: &str, id: &str) {
        let reply = fe
            .kmip(&json!({"tag": "Get", "value": [
                text("UniqueIdentifier", uid),
                enumeration("KeyWrapType", "NotWrapped"),
            ]}))
            .await;
        if reply.status == 422 && reply.body.starts_with("Sensitive") {
            return;
        }
        assert_eq!(
            reply.status, 200,
            "Get NotWrapped of {uid} (made by {id}): {reply}"
        );
        let v = reply.json();
        let t = item(&v, &["ObjectType"])["value"]
            .as_str()
            .expect("type")
            .to_owned();
        let material = bytes_at(&v, &[&t, "KeyBlock", "KeyValue", "KeyMaterial"]);
        match t.as_str() {
            "PublicKey" => {
                self.public.insert(uid.to_owned(), material);
            }
            "PrivateKey" => {
                for (part, bytes) in private_parts(&material) {
                    self.secrets
                        .push(Secret::new(format!("{uid} ({part}, made by {id})"), bytes));
                }
            }
            _ => self
                .secrets
                .push(Secret::new(format!("{uid} (made by {id})"), material)),
        }
    }
}

/// A PKCS#8 private key's secret parts: the whole DER, and the RSA private
/// exponent and primes or the EC scalar (found in any other encoding).
fn private_parts(der: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::traits::PrivateKeyParts;
    let mut out = vec![("PKCS#8", der.to_vec())];
    if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_der(der) {
        out.push(("RSA d", k.d().to_bytes_be()));
        for p in k.primes() {
            out.push(("RSA prime", p.to_bytes_be()));
        }
    } else if let Ok(k) = p256::SecretKey::from_pkcs8_der(der) {
        out.push(("P-256 scalar", k.to_bytes().to_vec()));
    } else {
        panic!("a private key that is neither RSA nor P-256 PKCS#8");
    }
    out
}

/// AES key wrap with padding (RFC 5649 section 4.1) of `plain` with the
/// AES-256 key `kek`, to check the server's.
fn rfc5649_wrap(kek: &[u8], plain: &[u8]) -> Vec<u8> {
    use aes::cipher::{BlockEncrypt, KeyInit};
    let cipher = aes::Aes256::new_from_slice(kek).expect("an AES-256 key");
    let mut a = [0xA6, 0x59, 0x59, 0xA6, 0, 0, 0, 0];
    a[4..].copy_from_slice(&u32::try_from(plain.len()).expect("length").to_be_bytes());
    let mut padded = plain.to_vec();
    padded.resize(plain.len().div_ceil(8) * 8, 0);
    let mut r: Vec<[u8; 8]> = padded
        .chunks(8)
        .map(|c| c.try_into().expect("8 bytes"))
        .collect();
    let n = r.len();
    let mut block = [0u8; 16];
    if n == 1 {
        block[..8].copy_from_slice(&a);
        block[8..].copy_from_slice(&r[0]);
        cipher.encrypt_block((&mut block).into());
        return block.to_vec();
    }
    for j in 0..6 {
        for (i, ri) in r.iter_mut().enumerate() {
            block[..8].copy_from_slice(&a);
            block[8..].copy_from_slice(ri);
            cipher.encrypt_block((&mut block).into());
            let t = ((n * j + i + 1) as u64).to_be_bytes();
            for k in 0..8 {
                a[k] = block[k] ^ t[k];
            }
            ri.copy_from_slice(&block[8..]);
        }
    }
    let mut out = a.to_vec();
    for ri in r {
        out.extend(ri);
    }
    out
}

/// Round trips and cross-checks of the replayed exchanges.
fn check_round_trips(r: &Replay) {
    // Each Decrypt gives back what its Encrypt encrypted.
    for (dec, enc) in SOURCES
        .iter()
        .filter(|(d, _)| r.request_of(d)["tag"] == "Decrypt")
    {
        assert_eq!(
            bytes_at(r.ours(dec), &["Data"]),
            bytes_at(&r.request_of(enc), &["Data"]),
            "{dec} does not decrypt what {enc} encrypted"
        );
    }
    // dek1 exported in clear (95), unwrapped by `sym keys unwrap` (96) and
    // exported under default_unwrap_type (108b): one key.
    let material = |id: &str| {
        bytes_at(
            r.ours(id),
            &["SymmetricKey", "KeyBlock", "KeyValue", "KeyMaterial"],
        )
    };
    let dek1 = material("95");
    assert_eq!(dek1.len(), 32, "dek1 is AES-256");
    assert_eq!(material("96/2"), dek1, "sym keys unwrap gives dek1 back");
    assert_eq!(material("108b"), dek1, "108b exports dek1");
    // ... and it is the key that encrypted 90 (AES-256-GCM) and wrapped
    // the DEK of 92 (RFC 5649).
    {
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        let enc = r.ours("90");
        let mut ct = bytes_at(enc, &["Data"]);
        ct.extend(bytes_at(enc, &["AuthenticatedEncryptionTag"]));
        let plain = aes_gcm::Aes256Gcm::new_from_slice(&dek1)
            .expect("key")
            .decrypt(
                &<[u8; 12]>::try_from(bytes_at(enc, &["IVCounterNonce"]))
                    .expect("a 12-byte nonce")
                    .into(),
                Payload { msg: &ct, aad: b"" },
            )
            .expect("90's ciphertext decrypts with the exported dek1");
        assert_eq!(plain, bytes_at(&r.request_of("90"), &["Data"]));
    }
    assert_eq!(
        bytes_at(r.ours("92"), &["Data"]),
        rfc5649_wrap(&dek1, &bytes_at(&r.request_of("92"), &["Data"])),
        "92 is the RFC 5649 wrap of the DEK with dek1"
    );
    // The signatures verify with the public keys exported in clear.
    {
        use rsa::pkcs8::DecodePublicKey;
        use sha2::Digest;
        let msg = bytes_at(&r.request_of("110"), &["Data"]);
        let spki = r.public.get("rsaw1_pk").expect("rsaw1_pk exported");
        rsa::RsaPublicKey::from_public_key_der(spki)
            .expect("rsaw1_pk is RSA SPKI")
            .verify(
                rsa::Pss::new::<sha2::Sha256>(),
                &sha2::Sha256::digest(&msg),
                &bytes_at(r.ours("110"), &["SignatureData"]),
            )
            .expect("110's PSS signature verifies with rsaw1_pk");
    }
    {
        use p256::ecdsa::signature::Verifier;
        use p256::pkcs8::DecodePublicKey;
        let msg = bytes_at(&r.request_of("112"), &["Data"]);
        let spki = r.public.get("ecw1_pk").expect("ecw1_pk exported");
        let key = p256::PublicKey::from_public_key_der(spki).expect("ecw1_pk is P-256 SPKI");
        let sig = p256::ecdsa::Signature::from_der(&bytes_at(r.ours("112"), &["SignatureData"]))
            .expect("ECDSA signature in DER");
        p256::ecdsa::VerifyingKey::from(&key)
            .verify(&msg, &sig)
            .expect("112's signature verifies with ecw1_pk");
    }
}

/// The database after the last command: every secret learnt, and the
/// stored rows of the KMS keys all wrapped by HSM keys.
fn check_at_rest(at_rest: &AtRest<'_>, r: &Replay) {
    assert!(
        r.secrets.len() >= 20,
        "only {} secrets learnt: the probes did not run",
        r.secrets.len()
    );
    at_rest.assert_nowhere(&r.secrets, "after the last command");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_kek_exchanges_replay_and_nothing_is_at_rest_in_clear() {
    let token = Token::new("kms-replay-kek");
    let db = token.path("kms.db");
    replay(&token, &[], &AtRest::Sqlite(&db)).await;
}

/// The same replay with the frontend on PostgreSQL (issue 15): the
/// reference CLI's exchanges give the same answers, and nothing is at rest
/// in clear in any file of the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_kek_exchanges_replay_on_postgresql_and_nothing_is_at_rest_in_clear() {
    let Some(pg) = or_skip("replay-kek-pg", PgServer::start()) else {
        return;
    };
    let token = Token::new("kms-replay-kek-pg");
    let url = pg.url();
    let db = ["--database-type", "postgresql", "--database-url", &url];
    replay(&token, &db, &AtRest::Postgres(&pg)).await;
}

/// Replays every fixture against a frontend on `token` with `db` flags,
/// searching `at_rest` after every command.
async fn replay(token: &Token, db: &[&str], at_rest: &AtRest<'_>) {
    let daemon = Daemon::start_with(token, &frontend_hsmd_config(token, ""), &[]);
    let slot = token.slot.to_string();
    let kek = format!("hsm::{slot}::kek");
    let flags_of = |phase: &str| {
        let mut flags = phase_flags(phase, &kek);
        flags.extend(db.iter().map(|f| (*f).to_owned()));
        flags
    };
    let flags = flags_of("admin1");
    let mut fe = Frontend::start(
        token,
        &daemon.socket,
        &flags.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let mut r = Replay {
        slot,
        fixtures: fixtures(&fixtures_dir()),
        ours: HashMap::new(),
        secrets: Vec::new(),
        public: HashMap::new(),
    };
    assert_eq!(
        r.fixtures.len(),
        69,
        "the captured exchanges with a _meta.json in {}",
        fixtures_dir().display()
    );
    for (id, ..) in DEVIATIONS {
        r.fixture(id);
    }
    for (id, _) in LOCATED {
        r.fixture(id);
    }
    for (id, source) in SOURCES.iter().chain(EXPORTED) {
        r.fixture(id);
        r.fixture(source);
    }
    let mut phase = "admin1".to_owned();
    for i in 0..r.fixtures.len() {
        let fx = &r.fixtures[i];
        if fx.phase != phase {
            let flags = flags_of(&fx.phase);
            fe.restart(&flags.iter().map(String::as_str).collect::<Vec<_>>());
            phase = fx.phase.clone();
        }
        let body = r.body_of(fx);
        let path = fx.path.replace(REF_SLOT, &r.slot);
        let reply = fe.request(&fx.method, &path, body.clone()).await;
        r.check(fx, &reply, &|| fe.log_text());
        let (id, nn) = (fx.id.clone(), fx.nn.clone());
        let last_of_command = r.fixtures.get(i + 1).is_none_or(|next| next.nn != nn);
        if reply.status == 200 {
            if let Ok(v) = serde_json::from_str::<Value>(&reply.body) {
                r.learn(&fe, &id, &body, &v).await;
                r.ours.insert(id, v);
            }
        }
        if last_of_command {
            at_rest.assert_no_clear_material(&r.secrets, &format!("after command {nn}"));
        }
    }
    assert_eq!(phase, "kek-admin3", "the fixtures end in phase kek-admin3");
    check_round_trips(&r);
    check_at_rest(at_rest, &r);
}
