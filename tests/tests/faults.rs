//! hsmd on the fault-injecting PKCS#11 module (`tests/pkcs11-faults`) over
//! SoftHSMv2: PIN safety counted in `C_Login` calls, a pulled token, and an
//! injected session failure. Waits are on hsmd's log lines or on answers,
//! with deadlines only as hang guards.

use hsmd_e2e::{Daemon, Faults, Token, PIN};
use hsmd_protocol::b64::SecretBytes;
use hsmd_protocol::*;
use std::time::{Duration, Instant};

async fn aes_key(c: &Client, slot: u64, label: &str) {
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
    .unwrap_or_else(|e| panic!("generate {label} on {slot}: {e}"));
}

fn encrypt(uid: String, data: &[u8]) -> Encrypt {
    Encrypt {
        uid,
        algorithm: EncryptionAlgorithm::AesCbcPad,
        plaintext: SecretBytes::new(data.to_vec()),
        aad: None,
        iv: None,
    }
}

fn server_code<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (ErrorCode, String) {
    match r {
        Err(ClientError::Server(b)) => (b.code, b.message),
        other => panic!("expected a server error, got {other:?}"),
    }
}

fn wrong_pin(toml: &str) -> String {
    toml.replace(&format!("[\"{PIN}\"]"), "[\"000000\"]")
}

#[test]
fn a_wrong_pin_is_tried_exactly_once() {
    let token = Token::new("wrongpin");
    let faults = Faults::new(&token, "pin_tries = 3\n");
    let toml = wrong_pin(&faults.config(&token, "other", ""));
    let (status, err) = faults.run_to_exit(&token, &toml);
    assert_eq!(status.code(), Some(3), "{err}");
    assert!(err.contains("CKR_PIN_INCORRECT"), "{err}");
    assert!(err.contains("will not try it again"), "{err}");
    assert!(!err.contains("000000"), "the PIN was logged: {err}");
    assert_eq!(faults.counter("logins"), 1, "{err}");
}

#[test]
fn final_try_and_locked_flags_mean_no_login() {
    let token = Token::new("pinflags");
    for (left, flag, words) in [
        (
            1,
            "CKF_USER_PIN_FINAL_TRY",
            ["one try left", "--unlock-pin"],
        ),
        (0, "CKF_USER_PIN_LOCKED", ["no tries left", "--unlock-pin"]),
    ] {
        let _ = std::fs::remove_file(token.path("faults.counters"));
        let faults = Faults::new(&token, &format!("pin_tries = 3\npin_left = {left}\n"));
        let toml = faults.config(&token, "other", "");
        let (status, err) = faults.run_to_exit(&token, &toml);
        assert_eq!(status.code(), Some(3), "{err}");
        assert!(err.contains(flag), "{err}");
        for w in words {
            assert!(err.contains(w), "{w:?} missing from: {err}");
        }
        assert_eq!(faults.counter("logins"), 0, "{flag}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_session_handle_invalid_is_invisible() {
    let token = Token::new("sessfail");
    let faults = Faults::new(&token, "");
    let mut d = faults.start(&token, "other", "");
    let c = d.client().await;
    let slot = token.slot;
    aes_key(&c, slot, "k").await;
    let uid = format!("hsm::{slot}::k");
    faults.set("fail = C_EncryptInit CKR_SESSION_HANDLE_INVALID 1\n");
    let enc = c
        .call(None, &encrypt(uid.clone(), b"hello"))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", d.log_text()));
    d.wait_for_line("retrying once on a new session");
    let dec = c
        .call(
            None,
            &Decrypt {
                uid,
                algorithm: EncryptionAlgorithm::AesCbcPad,
                ciphertext: enc.ciphertext,
                aad: None,
                iv: enc.iv,
                tag: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(dec.plaintext.expose(), b"hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pulled_token_fails_only_its_slot_and_comes_back() {
    let token = Token::new("pulled");
    let other = token.init_token("stays");
    let (a, b) = (token.slot, other);
    let faults = Faults::new(&token, "");
    let toml = faults
        .config(&token, "other", "")
        .replace(
            &format!("hsm_slot = [{a}]"),
            &format!("hsm_slot = [{a}, {b}]"),
        )
        .replace(
            &format!("hsm_password = [\"{PIN}\"]"),
            &format!("hsm_password = [\"{PIN}\", \"{PIN}\"]"),
        );
    let mut d = Daemon::start_with_env(&token, &toml, &[], &faults.env());
    let c = d.client().await;
    aes_key(&c, a, "k").await;
    aes_key(&c, b, "k").await;

    faults.set(&format!("removed = {a}\n"));
    let mut tasks = Vec::new();
    for i in 0..8u64 {
        let c = d.client().await;
        let slot = if i % 2 == 0 { a } else { b };
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let r = tokio::time::timeout(
                Duration::from_secs(5),
                c.call(None, &encrypt(format!("hsm::{slot}::k"), b"x")),
            )
            .await;
            (slot, r, started.elapsed())
        }));
    }
    for t in tasks {
        let (slot, r, took) = t.await.unwrap();
        let r = r.unwrap_or_else(|_| panic!("a request on slot {slot} hung past 5 s"));
        if slot == a {
            let (code, msg) = server_code(r);
            assert_eq!(code, ErrorCode::TokenNotPresent, "{msg}");
        } else {
            r.unwrap_or_else(|e| panic!("slot {b} failed while {a} was pulled: {e}"));
        }
        assert!(took < Duration::from_secs(5));
    }
    let st = c.call(None, &Status {}).await.expect("hsmd still serves");
    let sa = st.slots.iter().find(|s| s.slot == a).unwrap();
    assert!(!sa.present, "{sa:?}");

    faults.set("");
    // hsmd's poller notices the token and logs in again by itself.
    let back = Instant::now();
    tokio::task::block_in_place(|| d.wait_for_line(&format!("token back in slot {a}")));
    assert!(
        back.elapsed() < Duration::from_secs(10),
        "slot {a} back only after {:?}",
        back.elapsed()
    );
    c.call(None, &encrypt(format!("hsm::{a}::k"), b"x"))
        .await
        .unwrap_or_else(|e| panic!("slot {a} is back but refuses: {e}\n{}", d.log_text()));
}

async fn status_of(c: &Client, slot: u64) -> SlotStatus {
    let st = c.call(None, &Status {}).await.expect("status");
    st.slots
        .into_iter()
        .find(|s| s.slot == slot)
        .expect("slot in status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_put_back_is_logged_in_again_without_a_request() {
    let token = Token::new("comeback");
    let faults = Faults::new(&token, "");
    let mut d = faults.start(&token, "other", "");
    let slot = token.slot;
    let c = d.client().await;
    aes_key(&c, slot, "k").await;
    assert_eq!(faults.counter("logins"), 1);
    assert_eq!(status_of(&c, slot).await.state, "ready");

    faults.set(&format!("removed = {slot}\n"));
    d.wait_for_line("slot now token_not_present");
    let st = status_of(&c, slot).await;
    assert_eq!(
        (st.state.as_str(), st.present),
        ("token_not_present", false),
        "{st:?}"
    );
    assert!(
        st.last_error
            .as_deref()
            .is_some_and(|e| e.contains("token")),
        "{st:?}"
    );

    faults.set("");
    // No request in between: hsmd's poller finds the token and logs in.
    d.wait_for_line("token back in slot");
    assert_eq!(faults.counter("logins"), 2);
    let st = status_of(&c, slot).await;
    assert_eq!(
        (st.state.as_str(), st.present, st.logged_in),
        ("ready", true, true),
        "{st:?}"
    );
    c.call(None, &encrypt(format!("hsm::{slot}::k"), b"again"))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", d.log_text()));
    assert_eq!(faults.counter("logins"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_after_reinsertion_blocks_only_that_slot() {
    let token = Token::new("reinsert");
    let other = token.init_token("fine");
    let (a, b) = (token.slot, other);
    let faults = Faults::new(&token, "");
    let toml = faults
        .config(&token, "other", "")
        .replace(
            &format!("hsm_slot = [{a}]"),
            &format!("hsm_slot = [{a}, {b}]"),
        )
        .replace(
            &format!("hsm_password = [\"{PIN}\"]"),
            &format!("hsm_password = [\"{PIN}\", \"{PIN}\"]"),
        );
    let mut d = Daemon::start_with_env(&token, &toml, &[], &faults.env());
    let c = d.client().await;
    aes_key(&c, a, "k").await;
    aes_key(&c, b, "k").await;
    assert_eq!(faults.counter("logins"), 2);

    faults.set(&format!("removed = {a}\n"));
    d.wait_for_line("slot now token_not_present");
    // Back, but the token now refuses the PIN (as if another card was inserted).
    faults.set("fail = C_Login CKR_PIN_INCORRECT 1\n");
    d.wait_for_line("slot now pin_rejected");
    assert_eq!(faults.counter("logins"), 3);
    for _ in 0..3 {
        let (code, msg) = server_code(c.call(None, &encrypt(format!("hsm::{a}::k"), b"x")).await);
        assert_eq!(code, ErrorCode::NotLoggedIn, "{msg}");
        assert!(msg.contains("rejected the configured user PIN"), "{msg}");
        c.call(None, &encrypt(format!("hsm::{b}::k"), b"x"))
            .await
            .unwrap_or_else(|e| panic!("slot {b}: {e}"));
    }
    let st = status_of(&c, a).await;
    assert_eq!(st.state, "pin_rejected", "{st:?}");
    assert!(
        st.last_error
            .as_deref()
            .is_some_and(|e| e.contains("CKR_PIN_INCORRECT")),
        "{st:?}"
    );
    assert_eq!(status_of(&c, b).await.state, "ready");
    assert_eq!(
        faults.counter("logins"),
        3,
        "hsmd logged in again on its own"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_pcscd_restart_hsmd_closes_every_session_and_reinitializes() {
    let token = Token::new("pcscd");
    let faults = Faults::new(&token, "");
    let mut d = faults.start(&token, "other", "");
    let slot = token.slot;
    let c = d.client().await;
    aes_key(&c, slot, "k").await;
    // Open all four sessions of the slot.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let c = d.client().await;
        tasks.push(tokio::spawn(async move {
            c.call(None, &encrypt(format!("hsm::{slot}::k"), b"x"))
                .await
                .map(|_| ())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(faults.counter("logins"), 1);

    faults.set("device_error = 1\n");
    let (code, msg) = server_code(
        c.call(None, &encrypt(format!("hsm::{slot}::k"), b"x"))
            .await,
    );
    assert_eq!(code, ErrorCode::HsmUnavailable, "{msg}");
    assert!(msg.contains("CKR_DEVICE_ERROR"), "{msg}");
    d.wait_for_line("PKCS#11 library re-initialized");
    c.call(None, &encrypt(format!("hsm::{slot}::k"), b"x"))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", d.log_text()));
    assert_eq!(faults.counter("finalizes"), 1);
    assert_eq!(
        faults.counter("finalize_open_sessions"),
        0,
        "C_Finalize with sessions open"
    );
    assert_eq!(faults.counter("logins"), 2);
}
