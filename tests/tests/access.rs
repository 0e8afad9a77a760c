//! docs/protocol.md "Identities and authorization" against a real hsmd: who may
//! connect (`clients`, users and `@groups`), who may act for others
//! (`frontends`, `as_user`), who may create and destroy (`hsm_admin`), and
//! the socket file's mode and group. A second unix user, `hsmd-e2e-bob`, runs
//! `hsmctl`; the tests run as root.

use hsmd_e2e::{base_config, failed, ok, test_user, Daemon, TestUser, Token};
use hsmd_protocol::*;
use serde_json::Value;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::sync::Mutex;

const BOB: &str = "hsmd-e2e-bob";
const GROUP: &str = "hsmd-e2e-grp";

/// useradd, groupadd and usermod lock /etc/passwd and /etc/group: tests of
/// this binary run in parallel, so they take turns.
static ACCOUNTS: Mutex<()> = Mutex::new(());

fn bob() -> TestUser {
    let _turn = ACCOUNTS.lock().unwrap_or_else(|p| p.into_inner());
    test_user(BOB)
}

/// Creates (once) the group `name` with `groupadd`; returns its gid.
fn test_group(name: &str) -> u32 {
    let _turn = ACCOUNTS.lock().unwrap_or_else(|p| p.into_inner());
    let lookup = || nix::unistd::Group::from_name(name).ok().flatten();
    if lookup().is_none() {
        let out = Command::new("groupadd")
            .args(["--system", name])
            .output()
            .expect("groupadd");
        assert!(
            out.status.success() || lookup().is_some(),
            "groupadd {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    lookup().expect("group exists").gid.as_raw()
}

/// Adds `user` to `group` as a supplementary member (`usermod -aG`).
fn add_to_group(user: &TestUser, group: &str) {
    let _turn = ACCOUNTS.lock().unwrap_or_else(|p| p.into_inner());
    let out = Command::new("usermod")
        .args(["-aG", group, &user.name])
        .output()
        .expect("usermod");
    assert!(
        out.status.success(),
        "usermod -aG {group} {}: {}",
        user.name,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// hsmctl's stderr, asserting it exited with status 1.
fn exit1(out: &std::process::Output) -> String {
    let err = failed(out);
    assert_eq!(out.status.code(), Some(1), "hsmctl exit status: {err}");
    err
}

/// `hsmctl --json slots` as `user` (with `--as-user` when given): the server hello.
fn hello_of(d: &Daemon, user: &TestUser, as_user: Option<&str>) -> Value {
    let mut args = vec!["--json"];
    if let Some(a) = as_user {
        args.extend(["--as-user", a]);
    }
    args.push("slots");
    let out = ok(&d.hsmctl(Some(user), &args));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("hsmctl --json slots: {e}: {out}"))
}

fn aes(slot: u64, label: &str) -> GenerateKey {
    GenerateKey {
        slot,
        label: label.into(),
        algorithm: SecretKeyAlgorithm::Aes,
        bits: 256,
        extractable: false,
    }
}

fn server_error<T: std::fmt::Debug>(r: Result<T, ClientError>) -> ErrorBody {
    match r.expect_err("expected an error") {
        ClientError::Server(b) => b,
        other => panic!("expected a server error, got {other}"),
    }
}

async fn assert_serves_root(d: &Daemon) {
    let c = d.client().await;
    assert_eq!(c.server_hello().identity, "root");
    c.call(None, &Status {})
        .await
        .unwrap_or_else(|e| panic!("status as root: {e}\n{}", d.log_text()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlisted_user_is_refused_and_root_still_served() {
    let bob = bob();
    let token = Token::new("access-refuse");
    let d = Daemon::start(&token, "");

    for args in [&["slots"][..], &["status"][..], &["random", "8"][..]] {
        let err = exit1(&d.hsmctl(Some(&bob), args));
        assert!(err.contains("unauthorized"), "hsmctl {args:?}: {err}");
        assert!(err.contains(BOB), "hsmctl {args:?}: {err}");
        assert!(
            err.contains(&format!("uid {}", bob.uid)),
            "hsmctl {args:?}: {err}"
        );
    }
    assert_serves_root(&d).await;
    let out = ok(&d.hsmctl(None, &["slots"]));
    assert!(out.contains("you    root"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_client_uses_keys_but_only_admin_creates_and_destroys() {
    let bob = bob();
    let token = Token::new("access-client");
    let slot = token.slot;
    let d = Daemon::start(&token, &format!("clients = [\"{BOB}\"]"));
    let uid = format!("hsm::{slot}::shared");
    let slot_s = slot.to_string();

    // Who hsmd thinks bob is.
    let out = ok(&d.hsmctl(Some(&bob), &["slots"]));
    assert!(out.contains(&format!("you    {BOB}\n")), "{out}");
    assert!(!out.contains("(frontend)"), "{out}");
    let h = hello_of(&d, &bob, None);
    assert_eq!(h["identity"], BOB, "{h}");
    assert_eq!(h["may_act_as_others"], false, "{h}");
    assert_eq!(h["admins"], serde_json::json!(["root"]), "{h}");

    // Root (the admin) creates a key; bob uses it.
    let root = d.client().await;
    assert!(!root.server_hello().may_act_as_others);
    root.call(None, &aes(slot, "shared")).await.unwrap();
    let enc = ok(&d.hsmctl(
        Some(&bob),
        &["--json", "encrypt", &uid, "--data", "bob's secret"],
    ));
    let enc: Value = serde_json::from_str(&enc).unwrap_or_else(|e| panic!("{e}: {enc}"));
    let field = |k: &str| {
        enc[k]
            .as_str()
            .unwrap_or_else(|| panic!("{k} in {enc}"))
            .to_owned()
    };
    let (ct, iv, tag) = (field("ciphertext"), field("iv"), field("tag"));
    let pt = ok(&d.hsmctl(
        Some(&bob),
        &[
            "decrypt",
            &uid,
            "--ciphertext-b64",
            &ct,
            "--iv-b64",
            &iv,
            "--tag-b64",
            &tag,
        ],
    ));
    assert_eq!(pt, "bob's secret");
    // And root can decrypt what bob encrypted: it is the same key.
    let dec = root
        .call(
            None,
            &Decrypt {
                uid: uid.clone(),
                algorithm: EncryptionAlgorithm::AesGcm,
                ciphertext: base64_decode(&ct),
                iv: Some(base64_decode(&iv)),
                tag: Some(base64_decode(&tag)),
                aad: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(dec.plaintext.expose(), b"bob's secret");

    // Bob may not create or destroy; the message names bob and the admins.
    let err = exit1(&d.hsmctl(
        Some(&bob),
        &["create", "aes", "--slot", &slot_s, "--label", "bobs"],
    ));
    assert!(err.contains("forbidden"), "{err}");
    assert!(err.contains(BOB), "{err}");
    assert!(err.contains("hsm_admin = root"), "{err}");
    let err = exit1(&d.hsmctl(
        Some(&bob),
        &["create", "ec", "--slot", &slot_s, "--label", "bobs_ec"],
    ));
    assert!(err.contains("forbidden") && err.contains(BOB), "{err}");
    let err = exit1(&d.hsmctl(Some(&bob), &["destroy", &uid]));
    assert!(err.contains("forbidden"), "{err}");
    assert!(err.contains(BOB), "{err}");
    assert!(err.contains("hsm_admin = root"), "{err}");
    // Nothing was created or destroyed by the refusals.
    let keys = root.call(None, &ListKeys::default()).await.unwrap();
    let labels: Vec<&str> = keys.keys.iter().map(|k| k.label.as_str()).collect();
    assert_eq!(labels, vec!["shared"]);

    // Root (admin) creates and destroys, through hsmctl too.
    let out = ok(&d.hsmctl(
        None,
        &["create", "aes", "--slot", &slot_s, "--label", "rootk"],
    ));
    assert!(out.contains(&format!("hsm::{slot}::rootk")), "{out}");
    ok(&d.hsmctl(None, &["destroy", &format!("hsm::{slot}::rootk")]));
    let destroyed = root
        .call(None, &Destroy(KeyRef { uid: uid.clone() }))
        .await
        .unwrap();
    assert_eq!(destroyed.uid, uid);
    let keys = root.call(None, &ListKeys::default()).await.unwrap();
    assert!(keys.keys.is_empty(), "{:?}", keys.keys);
    // Bob now finds the key gone.
    let err = exit1(&d.hsmctl(Some(&bob), &["encrypt", &uid, "--data", "x"]));
    assert!(err.contains("not_found"), "{err}");
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_else(|e| panic!("{s:?} is not base64: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_rule_admits_a_supplementary_member() {
    let bob = bob();
    let gid = test_group(GROUP);
    add_to_group(&bob, GROUP);
    assert_ne!(
        bob.gid, gid,
        "{GROUP} must be a supplementary group of {BOB}, not its primary group"
    );

    // A group bob is not in does not admit him.
    let other = Token::new("access-grp-no");
    let d = Daemon::start(&other, "clients = [\"@root\"]");
    let err = exit1(&d.hsmctl(Some(&bob), &["slots"]));
    assert!(err.contains("unauthorized") && err.contains(BOB), "{err}");
    drop(d);

    let token = Token::new("access-grp");
    let d = Daemon::start(&token, &format!("clients = [\"@{GROUP}\"]"));
    let out = ok(&d.hsmctl(Some(&bob), &["slots"]));
    assert!(out.contains(&format!("you    {BOB}\n")), "{out}");
    let out = ok(&d.hsmctl(Some(&bob), &["random", "16"]));
    assert_eq!(base64_decode(out.trim()).len(), 16, "{out}");
    // Admitted is not admin.
    let err = exit1(&d.hsmctl(
        Some(&bob),
        &[
            "create",
            "aes",
            "--slot",
            &token.slot.to_string(),
            "--label",
            "g",
        ],
    ));
    assert!(err.contains("forbidden") && err.contains(BOB), "{err}");
    assert_serves_root(&d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_user_only_from_a_frontend() {
    let bob = bob();
    let token = Token::new("access-asuser");
    let slot = token.slot;
    let d = Daemon::start(&token, &format!("frontends = []\nclients = [\"{BOB}\"]"));

    // Root is no frontend: it may not act for alice, but may name itself.
    let c = d.client().await;
    assert!(!c.server_hello().may_act_as_others);
    let e = server_error(c.call(Some("alice"), &Status {}).await);
    assert_eq!(e.code, ErrorCode::Forbidden, "{}", e.message);
    assert!(e.message.contains("alice"), "{}", e.message);
    let e = server_error(c.call(Some("alice"), &aes(slot, "as_alice")).await);
    assert_eq!(e.code, ErrorCode::Forbidden, "{}", e.message);
    c.call(Some("root"), &Status {}).await.unwrap();
    let k = c.call(Some("root"), &aes(slot, "as_root")).await.unwrap();
    assert_eq!(k.label, "as_root");
    // The refused request did not create anything.
    let keys = c.call(None, &ListKeys::default()).await.unwrap();
    let labels: Vec<&str> = keys.keys.iter().map(|k| k.label.as_str()).collect();
    assert_eq!(labels, vec!["as_root"]);

    // Bob, a listed client but no frontend: the same rule.
    let h = hello_of(&d, &bob, None);
    assert_eq!(h["may_act_as_others"], false, "{h}");
    let err = exit1(&d.hsmctl(Some(&bob), &["--as-user", "alice", "status"]));
    assert!(err.contains("forbidden") && err.contains("alice"), "{err}");
    let err = exit1(&d.hsmctl(Some(&bob), &["--as-user", "root", "status"]));
    assert!(err.contains("forbidden"), "{err}");
    ok(&d.hsmctl(Some(&bob), &["--as-user", BOB, "status"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frontend_acts_for_kms_users() {
    let bob = bob();
    let token = Token::new("access-frontend");
    let slot = token.slot.to_string();
    // Bob is only a frontend (not in clients): that admits him too.
    let mut d = Daemon::start(&token, &format!("frontends = [\"{BOB}\"]"));

    let h = hello_of(&d, &bob, None);
    assert_eq!(h["identity"], BOB, "{h}");
    assert_eq!(h["may_act_as_others"], true, "{h}");
    let out = ok(&d.hsmctl(Some(&bob), &["slots"]));
    assert!(out.contains(&format!("you    {BOB} (frontend)")), "{out}");
    assert!(!d.client().await.server_hello().may_act_as_others);

    // Acting as root (an admin), bob's frontend may create and destroy.
    let out = ok(&d.hsmctl(
        Some(&bob),
        &[
            "--as-user",
            "root",
            "create",
            "aes",
            "--slot",
            &slot,
            "--label",
            "fk",
        ],
    ));
    let uid = format!("hsm::{slot}::fk");
    assert!(out.contains(&uid), "{out}");
    // Acting as alice it may use the key, but not create or destroy.
    ok(&d.hsmctl(
        Some(&bob),
        &["--as-user", "alice", "encrypt", &uid, "--data", "hi"],
    ));
    let err = exit1(&d.hsmctl(
        Some(&bob),
        &[
            "--as-user",
            "alice",
            "create",
            "aes",
            "--slot",
            &slot,
            "--label",
            "alices",
        ],
    ));
    assert!(err.contains("forbidden"), "{err}");
    assert!(err.contains("alice is not one"), "{err}");
    assert!(err.contains("hsm_admin = root"), "{err}");
    let err = exit1(&d.hsmctl(Some(&bob), &["--as-user", "alice", "destroy", &uid]));
    assert!(err.contains("forbidden") && err.contains("alice"), "{err}");
    // Without as_user the acting identity is bob himself, no admin.
    let err = exit1(&d.hsmctl(
        Some(&bob),
        &["create", "aes", "--slot", &slot, "--label", "bobs"],
    ));
    assert!(err.contains("forbidden") && err.contains(BOB), "{err}");
    // The audit log names the acting user (hsmd's log thread may write the
    // record after the answer went out: wait for it).
    d.wait_for_line("generate_key by alice");
    ok(&d.hsmctl(Some(&bob), &["--as-user", "root", "destroy", &uid]));
    let keys = d
        .client()
        .await
        .call(None, &ListKeys::default())
        .await
        .unwrap();
    assert!(keys.keys.is_empty(), "{:?}", keys.keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_star_lets_every_listed_client_create() {
    let bob = bob();
    let token = Token::new("access-star");
    let slot = token.slot.to_string();
    let toml = base_config(&token, &format!("clients = [\"{BOB}\"]"))
        .replace("hsm_admin = \"root\"", "hsm_admin = \"*\"");
    assert!(toml.contains("hsm_admin = \"*\""), "{toml}");
    let d = Daemon::start_with(&token, &toml, &[]);

    let h = hello_of(&d, &bob, None);
    assert_eq!(h["admins"], serde_json::json!(["*"]), "{h}");
    let out = ok(&d.hsmctl(
        Some(&bob),
        &["create", "aes", "--slot", &slot, "--label", "bobs"],
    ));
    let uid = format!("hsm::{slot}::bobs");
    assert!(out.contains(&uid), "{out}");
    ok(&d.hsmctl(
        Some(&bob),
        &["create", "ec", "--slot", &slot, "--label", "bobs_ec"],
    ));
    ok(&d.hsmctl(Some(&bob), &["destroy", &uid]));
    ok(&d.hsmctl(Some(&bob), &["destroy", &format!("hsm::{slot}::bobs_ec")]));
    ok(&d.hsmctl(
        Some(&bob),
        &["destroy", &format!("hsm::{slot}::bobs_ec_pk")],
    ));
    let keys = d
        .client()
        .await
        .call(None, &ListKeys::default())
        .await
        .unwrap();
    assert!(keys.keys.is_empty(), "{:?}", keys.keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_mode_and_group_are_applied() {
    let gid = test_group(GROUP);
    let token = Token::new("access-sock");
    let toml = base_config(&token, &format!("socket_group = \"{GROUP}\""))
        .replace("socket_mode = \"0666\"", "socket_mode = \"0660\"");
    assert!(toml.contains("socket_mode = \"0660\""), "{toml}");
    let d = Daemon::start_with(&token, &toml, &[]);
    let meta = std::fs::metadata(&d.socket).expect("socket metadata");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o660);
    assert_eq!(meta.gid(), gid);
    assert_serves_root(&d).await;

    // Without socket_group the socket keeps hsmd's own group.
    let token = Token::new("access-sock2");
    let toml = base_config(&token, "").replace("socket_mode = \"0666\"", "socket_mode = \"0600\"");
    let d = Daemon::start_with(&token, &toml, &[]);
    let meta = std::fs::metadata(&d.socket).expect("socket metadata");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    assert_eq!(meta.gid(), 0);
    assert_serves_root(&d).await;
}

/// `hsmctl call` sends any operation of the protocol by name: the result
/// as JSON, refusals (the client's own check, then hsmd's) as errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsmctl_call_sends_any_operation_by_name() {
    let token = Token::new("access-call");
    let d = Daemon::start(&token, "");
    let status: Value =
        serde_json::from_str(&ok(&d.hsmctl(None, &["call", "status"]))).expect("status is JSON");
    let slot = status["slots"][0]["slot"].as_u64().expect("a slot");
    let random: Value =
        serde_json::from_str(&ok(&d.hsmctl(None, &["call", "random", r#"{"len":16}"#])))
            .expect("random is JSON");
    assert_eq!(random["bytes"].as_str().map(str::len), Some(24), "{random}");
    let err = exit1(&d.hsmctl(None, &["call", "no_such_op"]));
    assert!(err.contains("unknown operation"), "{err}");
    let missing = format!(r#"{{"uid":"hsm::{slot}::missing"}}"#);
    let err = exit1(&d.hsmctl(None, &["call", "get_key", &missing]));
    assert!(err.contains("not_found"), "{err}");
}
