//! One key identity (docs/protocol.md "Keys"): a uid names exactly one key
//! object, on SoftHSMv2 with objects made by another tool (pkcs11-tool), and
//! on the fault module acting as the SmartCard-HSM, whose library gives a
//! generated public key the private key's `CKA_LABEL` and `CKA_ID`.

use hsmd_e2e::kmip::{enumeration, locate_all, text};
use hsmd_e2e::{
    failed, fault_module, frontend_hsmd_config, ok, test_user, Daemon, Faults, Frontend, Token,
    DAEMON_USER, PIN, SOFTHSM_LIB,
};
use hsmd_protocol::b64::SecretBytes;
use hsmd_protocol::*;
use serde_json::json;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;

fn refusal<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (ErrorCode, String) {
    match r {
        Err(ClientError::Server(b)) => (b.code, b.message),
        other => panic!("expected a server error, got {other:?}"),
    }
}

/// `pkcs11-tool` on the token's slot, logged in, with arguments that may
/// hold any bytes (labels that are not UTF-8); run as the user hsmd drops
/// to, so that hsmd can read the objects it makes.
fn tool(token: &Token, args: &[&OsStr]) -> String {
    use std::os::unix::process::CommandExt;
    let owner = test_user(DAEMON_USER);
    let out = Command::new("pkcs11-tool")
        .uid(owner.uid)
        .gid(owner.gid)
        .env("SOFTHSM2_CONF", &token.conf)
        .args(["--module", SOFTHSM_LIB, "--slot", &token.slot.to_string()])
        .args(["--login", "--pin", PIN])
        .args(args)
        .output()
        .expect("pkcs11-tool (install opensc)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "pkcs11-tool {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// An AES-256 secret key made by pkcs11-tool with a label of any bytes.
fn foreign_aes(token: &Token, label: &[u8], id: &str) {
    tool(
        token,
        &[
            OsStr::new("--keygen"),
            OsStr::new("--key-type"),
            OsStr::new("aes:32"),
            OsStr::new("--label"),
            OsStr::from_bytes(label),
            OsStr::new("--id"),
            OsStr::new(id),
        ],
    );
}

/// A key pair made by pkcs11-tool: both halves labelled `label` with
/// `CKA_ID` `id` (as pkcs11-tool, and the SmartCard-HSM, make them).
fn foreign_pair(token: &Token, key_type: &str, label: &str, id: &str) {
    let args = [
        "--keypairgen",
        "--key-type",
        key_type,
        "--label",
        label,
        "--id",
        id,
    ];
    tool(token, &args.map(OsStr::new));
}

/// How many objects pkcs11-tool lists whose label line is `label`.
fn objects_labelled(token: &Token, label: &str) -> usize {
    token
        .pkcs11_tool(&["--list-objects"])
        .lines()
        .filter(|l| l.trim() == format!("label:      {label}"))
        .count()
}

async fn aes(c: &Client, slot: u64, label: &str) {
    c.call(
        None,
        &GenerateKey {
            slot,
            label: label.into(),
            algorithm: SecretKeyAlgorithm::Aes,
            bits: 256,
            extractable: false,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("generate {label}: {e}"));
}

fn gcm(uid: &str) -> Encrypt {
    Encrypt {
        uid: uid.into(),
        algorithm: EncryptionAlgorithm::AesGcm,
        plaintext: SecretBytes::new(b"secret".to_vec()),
        aad: None,
        iv: None,
    }
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

fn key(uid: &str) -> KeyRef {
    KeyRef { uid: uid.into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uid_has_one_spelling_in_hsmd_and_hsmctl() {
    let token = Token::new("uid-spelling");
    let d = Daemon::start(&token, "");
    let c = d.client().await;
    let s = token.slot;
    aes(&c, s, "k").await;
    c.call(None, &GetKey(key(&format!("hsm::{s}::k"))))
        .await
        .expect("the canonical uid");
    for other in [format!("hsm::+{s}::k"), format!("hsm::0{s}::k")] {
        let (code, msg) = refusal(c.call(None, &GetKey(key(&other))).await);
        assert_eq!(code, ErrorCode::BadRequest, "{other}: {msg}");
        assert!(msg.contains("plain decimal"), "{msg}");
    }
    // hsmctl applies the same label rules before it connects.
    let long = format!("hsm::{s}::{}", "x".repeat(129));
    let err = failed(&hsmd_e2e::hsmctl(
        &token.path("no-such.sock"),
        None,
        &["key", &long],
    ));
    assert!(err.contains("at most 128"), "{err}");
    assert!(!err.contains("no-such.sock"), "{err}");
    // A refused uid is quoted escaped, never raw: no ESC reaches the
    // terminal, also with clap's colours forced on (its own styling is
    // ESC sequences, so there only the refused sequence is looked for).
    let sock = token.path("no-such.sock");
    for hostile in ["\x1b[2J".to_owned(), format!("hsm::{s}::\x1b[2J")] {
        let out = hsmd_e2e::hsmctl(&sock, None, &["key", &hostile]);
        assert!(!out.status.success(), "{hostile:?} accepted");
        assert!(!out.stderr.contains(&0x1b), "{:?}", out.stderr);
        let forced = Command::new(hsmd_e2e::bin("hsmctl"))
            .arg("--socket")
            .arg(&sock)
            .args(["encrypt", &hostile])
            .env("CLICOLOR_FORCE", "1")
            .env_remove("NO_COLOR")
            .output()
            .expect("run hsmctl");
        assert!(!forced.status.success(), "{hostile:?} accepted");
        let err = String::from_utf8_lossy(&forced.stderr);
        assert!(!err.contains("\x1b[2J"), "{err:?}");
        assert!(err.contains("\\u{1b}[2J"), "{err:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_touches_only_the_key_the_uid_names() {
    let token = Token::new("uid-destroy");
    let d = Daemon::start(&token, "");
    let c = d.client().await;
    let s = token.slot;
    // A pair as pkcs11-tool makes it: one label, one CKA_ID.
    foreign_pair(&token, "rsa:2048", "p", "01");
    assert_eq!(
        uids(&c).await,
        vec![format!("hsm::{s}::p"), format!("hsm::{s}::p_pk")],
        "each half of the pair has its own uid"
    );
    let info = c
        .call(None, &GetKey(key(&format!("hsm::{s}::p_pk"))))
        .await
        .expect("the public key by its _pk name");
    assert_eq!((info.kind, info.id.as_str()), (KeyKind::RsaPublic, "01"));
    c.call(None, &Destroy(key(&format!("hsm::{s}::p"))))
        .await
        .expect("destroy the private key");
    let left = token.pkcs11_tool(&["--list-objects"]);
    assert!(left.contains("Public Key Object"), "{left}");
    assert!(!left.contains("Private Key Object"), "{left}");

    // hsmd's AES key `k` and another tool's EC pair `k`: `k` names two keys
    // of different classes. Operations that want one class find it; those
    // that do not (destroy, get_key, export) are refused and touch nothing.
    aes(&c, s, "k").await;
    foreign_pair(&token, "EC:prime256v1", "k", "02");
    let (code, msg) = refusal(c.call(None, &Destroy(key(&format!("hsm::{s}::k")))).await);
    assert_eq!(code, ErrorCode::Ambiguous, "{msg}");
    assert!(msg.contains("02"), "{msg}");
    assert_eq!(objects_labelled(&token, "k"), 3);
    c.call(None, &gcm(&format!("hsm::{s}::k")))
        .await
        .expect("encrypt finds the one secret key k");
    let sig = c
        .call(
            None,
            &Sign {
                uid: format!("hsm::{s}::k"),
                algorithm: SignatureAlgorithm::EcdsaSha256,
                data: SecretBytes::new(b"m".to_vec()),
            },
        )
        .await
        .expect("sign finds the one private key k");
    let v = c
        .call(
            None,
            &Verify {
                uid: format!("hsm::{s}::k"),
                algorithm: SignatureAlgorithm::EcdsaSha256,
                data: b"m".to_vec().into(),
                signature: sig.signature,
            },
        )
        .await
        .expect("verify finds the private key's own public key");
    assert!(v.valid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_keys_of_one_class_and_label_are_ambiguous_never_a_pick() {
    let token = Token::new("uid-dup");
    let d = Daemon::start(&token, "");
    let c = d.client().await;
    let s = token.slot;
    foreign_aes(&token, b"dup", "0a");
    foreign_aes(&token, b"dup", "0b");
    let uid = format!("hsm::{s}::dup");
    let (code, msg) = refusal(c.call(None, &gcm(&uid)).await);
    assert_eq!(code, ErrorCode::Ambiguous, "{msg}");
    for part in ["0a", "0b", "pkcs11-tool", &uid] {
        assert!(msg.contains(part), "{part}: {msg}");
    }
    for r in [
        c.call(None, &GetKey(key(&uid))).await.map(drop),
        c.call(None, &Destroy(key(&uid))).await.map(drop),
        c.call(None, &Export(key(&uid))).await.map(drop),
    ] {
        assert_eq!(refusal(r).0, ErrorCode::Ambiguous);
    }
    assert_eq!(objects_labelled(&token, "dup"), 2, "nothing destroyed");
}

/// A pair `L` made by another tool labels its public key `L`, which is
/// named `L_pk`: creating `L_pk` (an AES key or a pair) would give that uid
/// to two keys, so it is refused and the token is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_a_name_that_a_foreign_public_key_holds_is_refused() {
    let token = Token::new("uid-taken");
    let d = Daemon::start(&token, "");
    let c = d.client().await;
    let s = token.slot;
    foreign_pair(&token, "EC:prime256v1", "l", "03");
    let (code, msg) = refusal(
        c.call(
            None,
            &GenerateKey {
                slot: s,
                label: "l_pk".into(),
                algorithm: SecretKeyAlgorithm::Aes,
                bits: 256,
                extractable: false,
            },
        )
        .await,
    );
    assert_eq!(code, ErrorCode::AlreadyExists, "{msg}");
    assert!(msg.contains(&format!("hsm::{s}::l_pk")), "{msg}");
    let (code, msg) = refusal(
        c.call(
            None,
            &GenerateKeyPair {
                slot: s,
                label: "l".into(),
                algorithm: KeyPairAlgorithm::Ec,
                bits: None,
                curve: Some(Curve::P256),
                extractable: false,
            },
        )
        .await,
    );
    assert_eq!(code, ErrorCode::AlreadyExists, "{msg}");
    assert_eq!(
        uids(&c).await,
        vec![format!("hsm::{s}::l"), format!("hsm::{s}::l_pk")],
        "nothing created"
    );
    assert_eq!(objects_labelled(&token, "l_pk"), 0);
}

/// hsmd remembers what a name resolved to for about a second only: a
/// second key that another program gives a name hsmd has in its cache
/// makes the name `ambiguous` soon after, instead of hsmd going on using
/// the first key it found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_made_by_another_program_is_seen_once_the_cache_entry_ages() {
    let token = Token::new("uid-late-dup");
    let d = Daemon::start(&token, "");
    let c = d.client().await;
    let uid = format!("hsm::{}::late", token.slot);
    aes(&c, token.slot, "late").await;
    c.call(None, &gcm(&uid))
        .await
        .expect("the one key late, now cached");
    foreign_aes(&token, b"late", "0c");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match c.call(None, &gcm(&uid)).await {
            Err(ClientError::Server(b)) if b.code == ErrorCode::Ambiguous => break,
            // Each turn is a real request: no sleep, the deadline bounds it.
            Ok(_) if std::time::Instant::now() < deadline => {}
            other => panic!("expected `ambiguous` within 20 s, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_skips_a_key_destroyed_while_it_is_read() {
    let token = Token::new("uid-vanish");
    let faults = Faults::new(&token, "");
    let toml = frontend_hsmd_config(&token, "").replace(
        "hsm_model = \"softhsm2\"\n",
        &format!(
            "hsm_model = \"softhsm2\"\nhsm_library = \"{}\"\n",
            fault_module().display()
        ),
    );
    let d = Daemon::start_with_env(&token, &toml, &[], &faults.env());
    let c = d.client().await;
    let s = token.slot;
    foreign_aes(&token, b"a", "01");
    foreign_aes(&token, b"b", "02");
    // The next C_GetAttributeValue finds its object gone, as when another
    // application destroys it between C_FindObjects and the read.
    faults.set("fail = C_GetAttributeValue 0x82 1 list\n");
    let listed = c.call(None, &ListKeys::default()).await.expect("list_keys");
    assert_eq!(listed.keys.len(), 1, "{listed:?}");
    assert_eq!(uids(&c).await.len(), 2);

    let fe = Frontend::start(&token, &d.socket, &[]);
    faults.set("fail = C_GetAttributeValue 0x82 1 locate\n");
    let r = fe.kmip(&locate_all()).await;
    assert_eq!(r.status, 200, "{r}");
    assert!(
        r.body.contains(&format!("hsm::{s}::a")) != r.body.contains(&format!("hsm::{s}::b")),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_frontend_checks_the_destroyed_key_and_cascades_by_cka_id() {
    let token = Token::new("uid-kmip");
    let d = Daemon::start_with(&token, &frontend_hsmd_config(&token, ""), &[]);
    let fe = Frontend::start(&token, &d.socket, &[]);
    let s = token.slot;
    foreign_pair(&token, "rsa:2048", "q", "03");
    let destroy_of = |label: &str, expected: &str, cascade: bool| {
        json!({"tag": "Destroy", "value": [
            text("UniqueIdentifier", &format!("hsm::{s}::{label}")),
            enumeration("ExpectedObjectType", expected),
            {"tag": "Cascade", "type": "Boolean", "value": cascade},
        ]})
    };
    let destroy = |expected: &str, cascade: bool| destroy_of("q", expected, cascade);
    let r = fe.kmip(&destroy("PublicKey", true)).await;
    assert_eq!(r.status, 422, "{r}");
    assert!(r.body.contains("PrivateKey"), "{r}");
    assert_eq!(objects_labelled(&token, "q"), 2, "nothing destroyed");
    let r = fe.kmip(&destroy("PrivateKey", true)).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(objects_labelled(&token, "q"), 0, "the pair is gone");
    // Without Cascade only the private key goes, the one that was checked.
    foreign_pair(&token, "rsa:2048", "q2", "04");
    let r = fe.kmip(&destroy_of("q2", "PrivateKey", false)).await;
    assert_eq!(r.status, 200, "{r}");
    let left = token.pkcs11_tool(&["--list-objects"]);
    assert_eq!(objects_labelled(&token, "q2"), 1, "{left}");
    assert!(left.contains("Public Key Object"), "{left}");

    // A private key `c` and an unrelated public key `c_pk` (another CKA_ID):
    // Cascade leaves the public key, it is not c's.
    foreign_pair(&token, "EC:prime256v1", "c", "06");
    foreign_pair(&token, "EC:prime256v1", "c_pk", "09");
    for (kind, id) in [("pubkey", "06"), ("privkey", "09")] {
        let args = ["--delete-object", "--type", kind, "--id", id];
        tool(&token, &args.map(OsStr::new));
    }
    let r = fe.kmip(&destroy_of("c", "PrivateKey", true)).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(objects_labelled(&token, "c"), 0);
    assert_eq!(
        objects_labelled(&token, "c_pk"),
        1,
        "the foreign c_pk stays"
    );

    foreign_aes(&token, b"dup", "0a");
    foreign_aes(&token, b"dup", "0b");
    let r = fe
        .kmip(&hsmd_e2e::kmip::encrypt(&format!("hsm::{s}::dup"), "00"))
        .await;
    assert_eq!(r.status, 422, "{r}");
    assert!(
        r.body.contains("Ambiguous key") && r.body.contains("0b"),
        "{r}"
    );

    let r = fe
        .kmip(&hsmd_e2e::kmip::encrypt(
            &format!("hsm::{s}::{}", "x".repeat(129)),
            "00",
        ))
        .await;
    assert_eq!(r.status, 422, "{r}");
    assert!(r.body.contains("at most 128"), "{r}");
    assert!(
        !fe.log_text().contains("xxxx\" on the token"),
        "never sent to hsmd"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_with_control_characters_or_not_utf8_are_escaped_and_addressable() {
    let token = Token::new("uid-escape");
    let d = Daemon::start(&token, "");
    let c = d.client().await;
    let s = token.slot;
    aes(&c, s, "plain").await;
    foreign_aes(&token, b"evil\x1b[2J\nhsm::0::forged", "01");
    foreign_aes(&token, b"raw\xff", "02");
    let listing = ok(&d.hsmctl(None, &["keys"]));
    assert!(
        !listing
            .chars()
            .any(|ch| ch != '\n' && hsmd_protocol::uid::needs_escape(ch)),
        "{listing:?}"
    );
    assert_eq!(listing.lines().count(), 3, "one row per key: {listing}");
    let evil = format!("hsm::{s}::evil\\x1b[2J\\x0ahsm::0::forged");
    let raw = format!("hsm::{s}::raw\\xff");
    assert!(
        listing.contains(&evil) && listing.contains(&raw),
        "{listing}"
    );
    for uid in [&evil, &raw] {
        let info = c
            .call(None, &GetKey(key(uid)))
            .await
            .unwrap_or_else(|e| panic!("{uid}: {e}"));
        assert_eq!(&info.uid, uid);
        ok(&d.hsmctl(None, &["encrypt", uid, "--data", "x"]));
    }
    // The raw bytes are refused by name, not looked up.
    let (code, msg) = refusal(
        c.call(None, &GetKey(key(&format!("hsm::{s}::evil\u{1b}[2J"))))
            .await,
    );
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(msg.contains("\\xHH") && !msg.contains('\u{1b}'), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_card_profile_public_keys_are_addressed_as_label_pk() {
    use p256::ecdsa::signature::Verifier;
    use p256::pkcs8::DecodePublicKey;
    let token = Token::new("uid-card");
    let faults = Faults::new(&token, "profile = smartcardhsm\n");
    let d = faults.start(&token, "smartcardhsm", "");
    let c = d.client().await;
    let s = token.slot;
    for (label, algorithm, bits, curve) in [
        ("r", KeyPairAlgorithm::Rsa, Some(2048), None),
        ("e", KeyPairAlgorithm::Ec, None, Some(Curve::P256)),
    ] {
        let pair = c
            .call(
                None,
                &GenerateKeyPair {
                    slot: s,
                    label: label.into(),
                    algorithm,
                    bits,
                    curve,
                    extractable: false,
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(pair.public.uid, format!("hsm::{s}::{label}_pk"));
        assert_eq!(pair.public.id, pair.private.id);
    }
    // As on the card: the public keys carry the private keys' labels.
    assert_eq!(objects_labelled(&token, "r"), 2);
    assert_eq!(objects_labelled(&token, "r_pk"), 0);
    assert_eq!(
        uids(&c).await,
        ["e", "e_pk", "r", "r_pk"].map(|l| format!("hsm::{s}::{l}"))
    );

    let spki = |uid: String| {
        let c = &c;
        async move {
            let r = c.call(None, &Export(key(&uid))).await;
            let r = r.unwrap_or_else(|e| panic!("export {uid}: {e}"));
            assert_eq!(r.format, ExportFormat::SpkiDer);
            r.data.expose().to_vec()
        }
    };
    // RSA: encrypted by an independent implementation with the exported
    // public key, decrypted by the card's private key; and by hsmd with r_pk.
    let rsa_pub = rsa::RsaPublicKey::from_public_key_der(&spki(format!("hsm::{s}::r_pk")).await)
        .expect("RSA SPKI");
    let mut rng = rand_core::OsRng;
    let ct = rsa_pub
        .encrypt(&mut rng, rsa::Pkcs1v15Encrypt, b"to the card")
        .expect("encrypt");
    let decrypt = |ct: Vec<u8>| Decrypt {
        uid: format!("hsm::{s}::r"),
        algorithm: EncryptionAlgorithm::RsaPkcs1v15,
        ciphertext: ct,
        iv: None,
        tag: None,
        aad: None,
    };
    let pt = c.call(None, &decrypt(ct)).await.expect("decrypt");
    assert_eq!(pt.plaintext.expose(), b"to the card");
    let ct = c
        .call(
            None,
            &Encrypt {
                uid: format!("hsm::{s}::r_pk"),
                algorithm: EncryptionAlgorithm::RsaPkcs1v15,
                plaintext: SecretBytes::new(b"by r_pk".to_vec()),
                aad: None,
                iv: None,
            },
        )
        .await
        .expect("encrypt with r_pk");
    let pt = c
        .call(None, &decrypt(ct.ciphertext))
        .await
        .expect("decrypt");
    assert_eq!(pt.plaintext.expose(), b"by r_pk");

    // EC: signed on the card, verified independently and by hsmd with e_pk.
    let sig = c
        .call(
            None,
            &Sign {
                uid: format!("hsm::{s}::e"),
                algorithm: SignatureAlgorithm::EcdsaSha256,
                data: SecretBytes::new(b"msg".to_vec()),
            },
        )
        .await
        .expect("sign");
    let vk = p256::ecdsa::VerifyingKey::from_public_key_der(&spki(format!("hsm::{s}::e_pk")).await)
        .expect("EC SPKI");
    let der = p256::ecdsa::DerSignature::try_from(sig.signature.as_slice()).expect("DER");
    vk.verify(b"msg", &der).expect("independent verify");
    let v_sig = sig.signature;
    let v = c
        .call(
            None,
            &Verify {
                uid: format!("hsm::{s}::e_pk"),
                algorithm: SignatureAlgorithm::EcdsaSha256,
                data: b"msg".to_vec().into(),
                signature: v_sig.clone(),
            },
        )
        .await
        .expect("verify with e_pk");
    assert!(v.valid);
    // Once resolved, e_pk is not looked up again: no C_FindObjects for a
    // label the card does not carry on every operation.
    let finds = faults.counter("find_calls");
    for _ in 0..5 {
        let v = c
            .call(
                None,
                &Verify {
                    uid: format!("hsm::{s}::e_pk"),
                    algorithm: SignatureAlgorithm::EcdsaSha256,
                    data: b"msg".to_vec().into(),
                    signature: v_sig.clone(),
                },
            )
            .await
            .expect("verify with e_pk");
        assert!(v.valid);
    }
    assert_eq!(faults.counter("find_calls"), finds);

    // The card keeps a pair as one key: the public key is not destroyed
    // alone, and goes with its private key.
    let (code, msg) = refusal(
        c.call(None, &Destroy(key(&format!("hsm::{s}::e_pk"))))
            .await,
    );
    assert_eq!(code, ErrorCode::Unsupported, "{msg}");
    assert!(msg.contains(&format!("destroy hsm::{s}::e ")), "{msg}");
    c.call(None, &Destroy(key(&format!("hsm::{s}::r"))))
        .await
        .expect("destroy r");
    assert_eq!(
        uids(&c).await,
        ["e", "e_pk"].map(|l| format!("hsm::{s}::{l}"))
    );
}
