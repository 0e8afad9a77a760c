//! SIGTERM: hsmd stops accepting, answers every request it has read, logs
//! out, finalizes, removes its socket and exits 0.

use hsmd_e2e::{Daemon, Token};
use hsmd_protocol::b64::SecretBytes;
use hsmd_protocol::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_every_request_in_flight() {
    let token = Token::new("term");
    let mut d = Daemon::start(&token, "max_in_flight = 256\n");
    let c = d.client().await;
    let slot = token.slot;
    c.call(
        None,
        &GenerateKeyPair {
            slot,
            label: "r".into(),
            algorithm: KeyPairAlgorithm::Rsa,
            bits: Some(2048),
            curve: None,
            extractable: false,
        },
    )
    .await
    .unwrap();
    // 200 RSA signatures take far longer than a signal: queue them all, then SIGTERM.
    let mut calls = Vec::new();
    for i in 0..200u32 {
        let c = c.clone();
        let uid = format!("hsm::{slot}::r");
        calls.push(tokio::spawn(async move {
            c.call(
                None,
                &Sign {
                    uid,
                    algorithm: SignatureAlgorithm::RsaPkcs1v15Sha256,
                    data: SecretBytes::new(i.to_be_bytes().to_vec()),
                },
            )
            .await
        }));
    }
    // One answer proves the server is working through the batch; every frame
    // was written by then (the writes complete into the socket buffer).
    let first = calls.remove(0).await.unwrap();
    assert!(first.is_ok());
    let pid = d.pid();
    let waiter = std::thread::spawn(move || {
        let status = d.stop();
        (status, d.log_text())
    });
    let mut answered = 1;
    for call in calls {
        let sig = call
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("request lost at shutdown: {e}"));
        assert_eq!(sig.signature.len(), 256);
        answered += 1;
    }
    assert_eq!(answered, 200);
    let (status, log) = waiter.join().unwrap();
    assert!(status.success(), "hsmd exit {status}: {log}");
    assert!(
        log.contains("shutting down") && log.contains("stopped"),
        "{log}"
    );
    assert!(!token.path("hsmd.sock").exists(), "socket file left behind");
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_err(),
        "hsmd still running"
    );
}
