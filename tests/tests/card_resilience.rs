//! On the card rig (tests/src/card.rs): the card pulled under load and put
//! back, pcscd restarted, SIGTERM with the card out. hsmd runs as its
//! unprivileged user, so every reconnection to pcscd is made without root.

use hsmd_e2e::card::{self, Rig, CARD_SLOT};
use hsmd_protocol::b64::SecretBytes;
use hsmd_protocol::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn sign(label: &str) -> Sign {
    Sign {
        uid: format!("hsm::{CARD_SLOT}::{label}"),
        algorithm: SignatureAlgorithm::EcdsaSha256,
        data: SecretBytes::new(b"under load".to_vec()),
    }
}

async fn ec_key(c: &Client, label: &str) {
    c.call(
        None,
        &GenerateKeyPair {
            slot: CARD_SLOT,
            label: label.into(),
            algorithm: KeyPairAlgorithm::Ec,
            bits: None,
            curve: Some(Curve::P256),
            extractable: false,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("generate {label}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_pulled_under_load_and_put_back_serves_again() {
    let Some(rig) = Rig::take("card pulled under load") else {
        return;
    };
    let dir = card::scratch();
    let mut d = card::start(&dir, "");
    let c = d.client().await;
    ec_key(&c, "k").await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..3 {
        let c = d.client().await;
        let stop = stop.clone();
        load.push(tokio::spawn(async move {
            let (mut ok, mut out) = (0u32, 0u32);
            while !stop.load(Ordering::Acquire) {
                match c.call(None, &sign("k")).await {
                    Ok(_) => ok += 1,
                    Err(ClientError::Server(b)) if b.code == ErrorCode::TokenNotPresent => out += 1,
                    Err(e) => panic!("while the card moves: {e}"),
                }
            }
            (ok, out)
        }));
    }
    let d2 = tokio::task::spawn_blocking(move || {
        rig.pull();
        d.wait_for_line("slot now token_not_present");
        rig.up();
        // The poller or a request logs in again, whichever comes first.
        d.wait_for_line("slot now ready");
        (rig, d)
    });
    let (_rig, d) = tokio::time::timeout(Duration::from_secs(120), d2)
        .await
        .expect("hang guard")
        .expect("pull and put back");
    // Requests after the card is back succeed, with the same key.
    let after = c.call(None, &sign("k")).await.unwrap();
    assert!(after.signature.len() > 8);
    stop.store(true, Ordering::Release);
    let mut refused = 0;
    for t in load {
        let (ok, out) = tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("hang guard: a client never finished")
            .expect("client");
        assert!(ok > 0, "a client never succeeded");
        refused += out;
    }
    let st = c.call(None, &Status {}).await.unwrap();
    assert_eq!(
        (st.slots[0].state.as_str(), st.slots[0].logged_in),
        ("ready", true)
    );
    let log = d.log_text();
    assert!(
        refused > 0 || log.contains("slot now token_not_present"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcscd_restarted_reinitializes_the_library_and_logs_in_again() {
    let Some(rig) = Rig::take("pcscd restarted") else {
        return;
    };
    let dir = card::scratch();
    let d = card::start(&dir, "");
    let c = d.client().await;
    ec_key(&c, "k").await;
    let (rig, mut d) = tokio::task::spawn_blocking(move || {
        let mut d = d;
        rig.down();
        d.wait_for_line("pcscd, the smart-card reader service, is not running");
        rig.up();
        d.wait_for_line("PKCS#11 library re-initialized");
        d.wait_for_line("slot now ready");
        (rig, d)
    })
    .await
    .expect("restart pcscd");
    let s = c.call(None, &sign("k")).await.unwrap();
    assert!(s.signature.len() > 8);
    let st = c.call(None, &Status {}).await.unwrap();
    assert_eq!(
        (st.slots[0].state.as_str(), st.slots[0].logged_in),
        ("ready", true)
    );
    drop(rig);
    assert!(d.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_the_card_out_stops_cleanly() {
    let Some(rig) = Rig::take("SIGTERM with the card out") else {
        return;
    };
    let dir = card::scratch();
    let mut d = card::start(&dir, "");
    let c = d.client().await;
    ec_key(&c, "k").await;
    rig.pull();
    d.wait_for_line("slot now token_not_present");
    let (code, msg) = match c.call(None, &sign("k")).await {
        Err(ClientError::Server(b)) => (b.code, b.message),
        other => panic!("signing with the card out: {other:?}"),
    };
    assert_eq!(code, ErrorCode::TokenNotPresent, "{msg}");
    let status = tokio::task::spawn_blocking(move || {
        let s = d.stop();
        (s, d.log_text())
    })
    .await
    .expect("stop");
    assert!(status.0.success(), "{}", status.1);
    assert!(status.1.contains("stopped"), "{}", status.1);
}
