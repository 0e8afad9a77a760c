//! Concurrent creation and destruction next to encryption and listing on one
//! SoftHSMv2 token: every request must succeed (issue 12 item 4). Bounded by
//! a count of operations, never by time.

use hsmd_e2e::{Daemon, Token};
use hsmd_protocol::b64::SecretBytes;
use hsmd_protocol::*;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Create/destroy rounds of each admin client.
const ROUNDS: usize = 30;
/// Admin clients creating and destroying at once.
const ADMINS: usize = 4;
/// Clients encrypting and listing at once, while the admins run.
const USERS: usize = 4;
/// Requests of each user client (half list_keys, half encrypt).
const USER_REQUESTS: usize = 1000;

type Errors = Arc<Mutex<BTreeMap<String, (usize, String)>>>;

fn note(errors: &Errors, what: &str, e: ClientError) {
    let key = match &e {
        ClientError::Server(b) => format!("{what}: {} {}", b.code, b.ckr.as_deref().unwrap_or("")),
        other => format!("{what}: {other}"),
    };
    let mut m = errors.lock().unwrap();
    let entry = m.entry(key).or_insert((0, e.to_string()));
    entry.0 += 1;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_create_and_destroy_beside_encrypt_and_list_has_no_errors() {
    let token = Token::new("load");
    let d = Daemon::start(&token, "sessions_per_slot = 8\n");
    let slot = token.slot;
    let setup = d.client().await;
    setup
        .call(
            None,
            &GenerateKey {
                slot,
                label: "steady".into(),
                algorithm: SecretKeyAlgorithm::Aes,
                bits: 256,
                extractable: false,
            },
        )
        .await
        .unwrap();
    let errors: Errors = Arc::default();
    let mut tasks = Vec::new();
    for a in 0..ADMINS {
        let c = d.client().await;
        let errors = errors.clone();
        tasks.push(tokio::spawn(async move {
            for r in 0..ROUNDS {
                let label = format!("churn-{a}-{r}");
                let created = c
                    .call(
                        None,
                        &GenerateKey {
                            slot,
                            label: label.clone(),
                            algorithm: SecretKeyAlgorithm::Aes,
                            bits: 128,
                            extractable: false,
                        },
                    )
                    .await;
                match created {
                    Ok(_) => {
                        let uid = format!("hsm::{slot}::{label}");
                        if let Err(e) = c.call(None, &Destroy(KeyRef { uid })).await {
                            note(&errors, "destroy", e);
                        }
                    }
                    Err(e) => note(&errors, "generate_key", e),
                }
            }
        }));
    }
    let mut users = Vec::new();
    for u in 0..USERS {
        let c = d.client().await;
        let errors = errors.clone();
        users.push(tokio::spawn(async move {
            let uid = format!("hsm::{slot}::steady");
            for n in 0..USER_REQUESTS {
                if (n + u) % 2 == 0 {
                    if let Err(e) = c.call(None, &ListKeys::default()).await {
                        note(&errors, "list_keys", e);
                    }
                } else {
                    let r = c
                        .call(
                            None,
                            &Encrypt {
                                uid: uid.clone(),
                                algorithm: EncryptionAlgorithm::AesGcm,
                                plaintext: SecretBytes::new(b"load".to_vec()),
                                aad: None,
                                iv: None,
                            },
                        )
                        .await;
                    if let Err(e) = r {
                        note(&errors, "encrypt", e);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for t in users {
        t.await.unwrap();
    }
    let errors = errors.lock().unwrap().clone();
    assert!(
        errors.is_empty(),
        "{} create/destroy rounds and {} user requests: errors {errors:#?}",
        ADMINS * ROUNDS,
        USERS * USER_REQUESTS
    );
    // Every churned key is gone; the steady one is still there.
    let left = setup.call(None, &ListKeys::default()).await.unwrap();
    let labels: Vec<&str> = left.keys.iter().map(|k| k.label.as_str()).collect();
    assert_eq!(labels, vec!["steady"]);
}
