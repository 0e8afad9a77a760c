//! SIGTERM: hsmd stops accepting, answers every request it has read, logs
//! out, finalizes, removes its socket and exits 0.

use hsmd_e2e::raw::{frame, read_frame};
use hsmd_e2e::{Daemon, Token};
use hsmd_protocol::*;
use serde_json::json;
use std::collections::HashSet;
use tokio::io::AsyncWriteExt;

const REQUESTS: u64 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_every_request_in_flight() {
    let token = Token::new("term");
    let mut d = Daemon::start(&token, "max_in_flight = 256\n");
    let slot = token.slot;
    d.client()
        .await
        .call(
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
    let mut s = tokio::net::UnixStream::connect(&d.socket).await.unwrap();
    s.write_all(&frame(br#"{"hello":{"versions":[1],"client":"t"}}"#))
        .await
        .unwrap();
    assert!(read_frame(&mut s).await.unwrap().get("hello").is_some());
    // All requests in one write: once it returns they are in hsmd's socket
    // buffer, which is what "in flight" means at SIGTERM. 200 RSA signatures
    // take far longer than delivering the signal.
    let burst: Vec<u8> = (1..=REQUESTS)
        .flat_map(|id| {
            let req = json!({"id": id, "op": "sign", "params": {
                "uid": format!("hsm::{slot}::r"), "algorithm": "rsa_pkcs1v15_sha256", "data": "aGk="}});
            frame(req.to_string().as_bytes())
        })
        .collect();
    s.write_all(&burst).await.unwrap();
    let waiter = std::thread::spawn(move || {
        let status = d.stop();
        (status, d.log_text())
    });
    let mut answered = HashSet::new();
    while let Some(v) = read_frame(&mut s).await {
        let sig = v["result"]["signature"]
            .as_str()
            .unwrap_or_else(|| panic!("request lost at shutdown: {v}"));
        assert_eq!(sig.len(), 344, "a 256-byte signature in base64: {v}");
        answered.insert(v["id"].as_u64().unwrap());
    }
    assert_eq!(answered, (1..=REQUESTS).collect::<HashSet<_>>());
    let (status, log) = waiter.join().unwrap();
    assert!(status.success(), "hsmd exit {status}: {log}");
    // Requests really were in flight: some were answered after the signal.
    let after = log
        .split_once("shutting down")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        after.contains("sign by root"),
        "no request was answered after SIGTERM:\n{log}"
    );
    assert!(after.contains("stopped"), "{log}");
    // Every request has its audit record: none is lost in the log thread's
    // queue when hsmd exits.
    assert_eq!(
        log.matches("sign by root (uid 0)").count(),
        REQUESTS as usize,
        "{log}"
    );
    assert!(!token.path("hsmd.sock").exists(), "socket file left behind");
}
