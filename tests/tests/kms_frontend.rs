//! kms-frontend's refusals and lifecycle against a real hsmd: hsmd going
//! away and coming back, configurations it refuses, oversized and broken
//! bodies, and grants that must not outlive their key.

use hsmd_e2e::kmip::{bytes_hex, create_aes, encrypt, locate_all, text};
use hsmd_e2e::{frontend_hsmd_config, run_frontend_to_exit, Daemon, Frontend, Token};
use serde_json::json;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn started(token: &Token) -> (Daemon, Frontend) {
    let daemon = Daemon::start_with(token, &frontend_hsmd_config(token, ""), &[]);
    let fe = Frontend::start(token, &daemon.socket, &[]);
    (daemon, fe)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsmd_down_is_503_at_once_and_hsmd_back_is_served_without_a_restart() {
    let token = Token::new("kms-hsmd-down");
    let (mut daemon, fe) = started(&token);
    let uid = format!("hsm::{}::k1", token.slot);
    let r = fe.kmip(&create_aes(&uid)).await;
    assert_eq!(r.status, 200, "{r}");
    let r = fe.kmip(&locate_all()).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(fe.get("/health").await.status, 200);

    let status = daemon.stop();
    assert!(status.success(), "hsmd exit on SIGTERM: {status}");
    let t0 = Instant::now();
    let r = fe.kmip(&locate_all()).await;
    let took = t0.elapsed();
    assert_eq!(r.status, 503, "{r}\n{}", fe.log_text());
    assert!(r.body.contains("HSM service unavailable"), "{r}");
    assert!(
        took < Duration::from_secs(1),
        "the 503 took {took:?}: a request must not wait on a dead hsmd"
    );
    let h = fe.get("/health").await;
    assert_eq!(h.status, 503, "{h}");

    // hsmd back on the same socket: the same frontend serves again.
    let _daemon = Daemon::start_with(&token, &frontend_hsmd_config(&token, ""), &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let last = loop {
        let r = fe.kmip(&locate_all()).await;
        if r.status == 200 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(last.status, 200, "{last}\n{}", fe.log_text());
    assert!(last.body.contains(&uid), "the key survived: {last}");
    assert_eq!(fe.get("/health").await.status, 200);
}

#[test]
fn a_config_file_with_hsm_keys_is_refused_without_echoing_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (key, line) in [
        ("hsm_password", "hsm_password = [\"648219\"]"),
        ("hsm_slot", "hsm_slot = [648219]"),
    ] {
        let path = dir.path().join(format!("{key}.toml"));
        std::fs::write(&path, format!("default_username = \"admin\"\n{line}\n")).expect("write");
        let (status, stderr) =
            run_frontend_to_exit(&[std::ffi::OsStr::new("-c"), path.as_os_str()]);
        assert_eq!(status.code(), Some(1), "{key}: {status}: {stderr}");
        assert!(stderr.contains(key), "{key}: {stderr}");
        assert!(stderr.contains("/etc/hsmd/hsmd.toml"), "{key}: {stderr}");
        assert!(
            !stderr.contains("648219"),
            "{key}: the value leaked: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_body_is_refused_413_before_it_is_sent() {
    let token = Token::new("kms-413");
    let (_daemon, fe) = started(&token);
    let addr = fe.addr().to_owned();
    let check = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(&addr).expect("connect");
        // A deadline for the answer, not a synchronization.
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let head = format!(
            "POST /kmip/2_1 HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            64 << 20
        );
        s.write_all(head.as_bytes()).expect("send head");
        s.write_all(&[b' '; 1024]).expect("send 1 KiB of body");
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        // Read until the status line and headers are in (or the stream ends).
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => panic!(
                    "no answer after 1 KiB of a 64 MiB body ({e}); got {:?}",
                    String::from_utf8_lossy(&got)
                ),
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    });
    let answer = check.await.expect("raw client");
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "expected 413 while 64 MiB - 1 KiB were never sent, got {answer:?}\n{}",
        fe.log_text()
    );
    let r = fe.kmip(&locate_all()).await;
    assert_eq!(r.status, 200, "the frontend still serves: {r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_bodies_are_4xx_never_500_and_the_frontend_keeps_serving() {
    let token = Token::new("kms-bodies");
    let (_daemon, mut fe) = started(&token);
    let uid = format!("hsm::{}::k1", token.slot);
    let cases: Vec<(String, u16, Vec<&str>)> = vec![
        ("this is not JSON".into(), 400, vec!["JSON"]),
        (
            json!({"tag": 5}).to_string(),
            422,
            vec!["malformed KMIP TTLV at `", "\"tag\""],
        ),
        (
            json!({"tag": "Encrypt", "value": [
                {"tag": "UniqueIdentifier", "type": "TextString", "value": uid},
                {"tag": "Data", "type": "ByteString", "value": "0xNOTHEX"},
            ]})
            .to_string(),
            422,
            vec!["`Encrypt/Data`"],
        ),
        (
            json!({"tag": "ReKey", "value": []}).to_string(),
            422,
            vec!["ReKey"],
        ),
        (
            json!({"tag": "Revoke", "value": [
                {"tag": "UniqueIdentifier", "type": "TextString", "value": uid},
            ]})
            .to_string(),
            422,
            vec!["Revoke"],
        ),
    ];
    for (body, status, needles) in cases {
        let r = fe.post_raw("/kmip/2_1", body.clone()).await;
        assert_eq!(r.status, status, "{body}: {r}\n{}", fe.log_text());
        for n in needles {
            assert!(
                r.body.contains(n),
                "{body}: the answer does not name {n:?}: {r}"
            );
        }
        let after = fe.kmip(&locate_all()).await;
        assert_eq!(after.status, 200, "after {body}: {after}");
    }
    // The last refusal is logged after the ones before it: once it is in,
    // every line of these requests is.
    let refused = fe.wait_for_log("Revoke: HSM keys cannot be revoked");
    // A refusal is an audit record: target `audit`, not a module path.
    assert!(refused.contains(" audit: "), "{refused}");
    assert!(
        !fe.log_text().contains("internal error"),
        "{}",
        fe.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destroyed_keys_grants_do_not_pass_to_its_namesake() {
    let token = Token::new("kms-grants");
    let (_daemon, fe) = started(&token);
    let uid = format!("hsm::{}::shared", token.slot);
    let list = format!("/access/list/{uid}");

    let r = fe.kmip(&create_aes(&uid)).await;
    assert_eq!(r.status, 200, "{r}");
    let grant = json!({"unique_identifier": uid, "user_id": "bob", "operation_types": ["encrypt"]});
    let r = fe.post_raw("/access/grant", grant.to_string()).await;
    assert_eq!(r.status, 200, "{r}");
    let r = fe.get(&list).await;
    assert_eq!(
        r.json(),
        json!([{"user_id": "bob", "operations": ["encrypt"]}]),
        "{r}"
    );

    let r = fe
        .kmip(&json!({"tag": "Destroy", "value": [
            {"tag": "UniqueIdentifier", "type": "TextString", "value": uid},
        ]}))
        .await;
    assert_eq!(r.status, 200, "{r}");
    let r = fe.kmip(&create_aes(&uid)).await;
    assert_eq!(r.status, 200, "the name is free again: {r}");
    // `get` and `export` imply each other: revoking one takes both.
    let access = |op: &str| {
        json!({"unique_identifier": uid, "user_id": "bob", "operation_types": [op]}).to_string()
    };
    let r = fe.post_raw("/access/grant", access("export")).await;
    assert_eq!(r.status, 200, "{r}");
    let r = fe.post_raw("/access/revoke", access("get")).await;
    assert_eq!(r.status, 200, "{r}");
    let r = fe.get(&list).await;
    assert_eq!(
        r.json(),
        json!([]),
        "export outlived the revoke of get: {r}"
    );
    let r = fe.post_raw("/access/grant", access("export")).await;
    assert_eq!(r.status, 200, "{r}");
    let r = fe.get(&list).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(
        r.json(),
        json!([{"user_id": "bob", "operations": ["export"]}]),
        "only the grant made after the new key's creation: {r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_an_encrypt_only_user_could_abuse_is_refused() {
    let token = Token::new("kms-abuse");
    let (_daemon, mut fe) = started(&token);
    let uid = format!("hsm::{}::k", token.slot);
    assert_eq!(fe.kmip(&create_aes(&uid)).await.status, 200);

    // A chosen GCM nonce would turn Encrypt into a decryption oracle.
    let r = fe
        .kmip(&json!({"tag": "Encrypt", "value": [
            text("UniqueIdentifier", &uid),
            bytes_hex("Data", "00000000"),
            bytes_hex("IVCounterNonce", "000102030405060708090A0B"),
        ]}))
        .await;
    assert_eq!(r.status, 422, "{r}");
    assert!(r.body.contains("IVCounterNonce"), "{r}");

    // One key, one name: a slot ID with a leading zero or a sign is refused,
    // so a grant cannot hide under another spelling of the uid.
    for alias in [
        format!("hsm::0{}::k", token.slot),
        format!("hsm::+{}::k", token.slot),
    ] {
        let r = fe.kmip(&encrypt(&alias, "00")).await;
        assert_eq!(r.status, 422, "{alias}: {r}");
        assert!(r.body.contains("plain decimal"), "{alias}: {r}");
        let grant =
            json!({"unique_identifier": alias, "user_id": "bob", "operation_types": ["encrypt"]});
        let r = fe.post_raw("/access/grant", grant.to_string()).await;
        assert_eq!(r.status, 422, "{alias}: {r}");
    }

    // A field the KMS does not read is named, not ignored.
    let r = fe
        .kmip(&json!({"tag": "Encrypt", "value": [
            text("UniqueIdentifier", &uid), bytes_hex("Data", "00"), text("Bogus", "x"),
        ]}))
        .await;
    assert_eq!(r.status, 422, "{r}");
    assert!(r.body.contains("`Bogus`"), "{r}");

    // Caller text cannot forge log lines or answer lines.
    let forged = format!("hsm::{}::x\n2026-11-30T00:00:00Z  INFO forged", token.slot);
    let r = fe.kmip(&encrypt(&forged, "00")).await;
    assert_eq!(r.status, 422, "{r}");
    assert!(!r.body.contains('\n') && r.body.contains("\\u{a}"), "{r}");
    fe.wait_for_log("\\u{a}2026-11-30T00:00:00Z");
    assert!(
        !fe.log_text()
            .lines()
            .any(|l| l.starts_with("2026-11-30T00:00:00Z")),
        "{}",
        fe.log_text()
    );

    // Data beyond one hsmd frame is 413 naming the limit, and the
    // connections to hsmd survive it.
    // 800 KiB: under max_body_bytes as hex (1.6 MB), over hsmd's 1 MiB frame
    // as base64.
    let big = "00".repeat(800 << 10);
    let r = fe.kmip(&encrypt(&uid, &big)).await;
    assert_eq!(r.status, 413, "{}", &r.body[..r.body.len().min(300)]);
    assert!(r.body.contains("max_frame_len"), "{r}");
    let r = fe.kmip(&encrypt(&uid, "00")).await;
    assert_eq!(r.status, 200, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_max_connections_wait_for_a_free_one() {
    let token = Token::new("kms-conns");
    let daemon = Daemon::start_with(&token, &frontend_hsmd_config(&token, ""), &[]);
    let mut fe = Frontend::start(&token, &daemon.socket, &["--max-connections", "2"]);
    // Two connections that never send a request hold both places.
    let idle: Vec<std::net::TcpStream> = (0..2)
        .map(|_| std::net::TcpStream::connect(fe.addr()).expect("connect"))
        .collect();
    let url = format!("{}/kmip/2_1", fe.base_url());
    let third = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(locate_all().to_string())
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    fe.wait_for_log("2 connections open (max_connections)");
    drop(idle);
    let status = tokio::time::timeout(Duration::from_secs(30), third)
        .await
        .expect("the waiting request was served once a connection closed")
        .expect("task")
        .expect("HTTP");
    assert_eq!(status, 200);
}

/// A 2,000,000-character UniqueIdentifier (in several shapes) is not
/// repeated: the answer and every log line stay short and state how long
/// the value was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_unique_identifier_is_not_echoed() {
    let token = Token::new("kms-echo");
    let (mut daemon, mut fe) = started(&token);
    let long = "x".repeat(2_000_000);
    for uid in [
        format!("hsm::{}::{long}", token.slot),
        long.clone(),
        format!("hsm::{long}::k"),
    ] {
        let r = fe.kmip(&encrypt(&uid, "00112233")).await;
        assert!(r.status >= 400, "{}", r.status);
        assert!(
            r.body.len() < 2048,
            "HTTP {}: {} bytes of answer: {}...",
            r.status,
            r.body.len(),
            &r.body[..200.min(r.body.len())]
        );
    }
    // The same length as a KMIP tag, an operation name, a text value, and
    // as the user of a grant.
    let key = format!("hsm::{}::echo", token.slot);
    assert_eq!(fe.kmip(&create_aes(&key)).await.status, 200);
    for (what, r) in [
        ("tag", fe.kmip(&json!({"tag": long, "type": "Structure", "value": []})).await),
        ("operation", fe.kmip(&json!({"tag": "Encrypt", "type": "Structure", "value": [text(&long, "x")]})).await),
        ("text", fe.kmip(&json!({"tag": "Locate", "type": "Structure", "value": [{"tag": "Attributes", "type": "Structure", "value": [text("ObjectType", &long)]}]})).await),
        (
            "grant",
            fe.post_raw(
                "/access/grant",
                json!({"unique_identifier": key, "user_id": long, "operation_types": ["encrypt"]}).to_string(),
            )
            .await,
        ),
    ] {
        assert!(
            r.body.len() < 2048,
            "{what}: HTTP {}: {} bytes of answer: {}...",
            r.status,
            r.body.len(),
            &r.body[..200.min(r.body.len())]
        );
    }
    fe.stop();
    daemon.stop();
    for (who, log) in [("kms-frontend", fe.log_text()), ("hsmd", daemon.log_text())] {
        let longest = log.lines().map(str::len).max().unwrap_or(0);
        assert!(longest < 2048, "{who} wrote a line of {longest} bytes");
    }
}

/// One address holding its maximum of connections that drip header bytes
/// cannot starve another: past its cap (here 8 pending of 16, with 24
/// places in all) its further connections are closed at once, and a client
/// from another address is answered. (How fast is a figure for the report,
/// printed, not asserted; the 10 s bound only tells a starved client, which
/// waited for the 20 s header timeout, from a served one.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_dripping_headers_cannot_starve_another() {
    let token = Token::new("kms-peers");
    let daemon = Daemon::start_with(&token, &frontend_hsmd_config(&token, ""), &[]);
    let mut fe = Frontend::start(
        &token,
        &daemon.socket,
        &[
            "--max-connections",
            "24",
            "--max-connections-per-peer",
            "16",
            "--max-pending-per-peer",
            "8",
        ],
    );
    let addr: std::net::SocketAddr = fe.addr().parse().expect("addr");
    // The dripper: 127.0.0.2 (loopback, another address), 40 connections,
    // each with the start of a request's headers and never the rest.
    let mut drips = Vec::new();
    for _ in 0..40 {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.2:0".parse().unwrap())
            .expect("bind 127.0.0.2");
        let mut s = socket.connect(addr).await.expect("connect");
        use tokio::io::AsyncWriteExt;
        // A refused connection may already be closed: the write may fail.
        let _ = s
            .write_all(b"POST /kmip/2_1 HTTP/1.1\r\nHost: kms\r\nX-Drip: a")
            .await;
        drips.push(s);
    }
    // The event: the frontend has refused the dripper's ninth connection,
    // so it holds its eight places.
    let line = fe.wait_for_log("127.0.0.2 already holds max_pending_per_peer (8)");
    assert!(line.contains("WARN"), "{line}");
    // The dripper's refused connections are closed (end of stream).
    let mut closed = 0;
    for s in &mut drips {
        use tokio::io::AsyncReadExt;
        let mut b = [0u8; 1];
        if let Ok(Ok(0)) | Ok(Err(_)) =
            tokio::time::timeout(Duration::from_millis(1), s.read(&mut b)).await
        {
            closed += 1;
        }
    }
    let t0 = Instant::now();
    let served = tokio::time::timeout(
        Duration::from_secs(10),
        reqwest::Client::new()
            .post(format!("{}/kmip/2_1", fe.base_url()))
            .header("content-type", "application/json")
            .body(locate_all().to_string())
            .send(),
    )
    .await
    .expect("the other client was starved (no answer within 10 s)")
    .expect("HTTP");
    let took = t0.elapsed();
    assert_eq!(served.status().as_u16(), 200);
    println!(
        "served in {took:?} while 127.0.0.2 held its 8 pending connections ({closed} of its 40 seen closed at once)"
    );
    drop(drips);
}
