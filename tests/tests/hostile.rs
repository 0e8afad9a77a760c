//! Hostile and malformed input on the real socket (docs/protocol.md "Transport and
//! framing", "Handshake", "Requests and responses"): raw frames written by
//! hand (4-byte big-endian length, then JSON), never through the protocol
//! crate's codec, so the tests see exactly what hsmd sends back. After each
//! case a fresh client must still get `status`, and hsmd must not have
//! panicked.
//!
//! Timeouts here are hang guards only; nothing waits for time to pass.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hsmd_e2e::raw::{frame, read_frame};
use hsmd_e2e::{Daemon, Token};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// Longest any one test may take before it counts as hung.
const HANG_GUARD: Duration = Duration::from_secs(120);

/// The operations docs/protocol.md lists.
const OPS: [&str; 12] = [
    "status",
    "list_keys",
    "get_key",
    "generate_key",
    "generate_key_pair",
    "export",
    "encrypt",
    "decrypt",
    "sign",
    "verify",
    "random",
    "destroy",
];

async fn guarded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(HANG_GUARD, f)
        .await
        .expect("the test hung (hang guard elapsed)")
}

async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, body: &[u8]) {
    w.write_all(&frame(body)).await.expect("write frame");
    w.flush().await.expect("flush");
}

async fn expect_frame<R: AsyncRead + Unpin>(r: &mut R, what: &str) -> Value {
    read_frame(r)
        .await
        .unwrap_or_else(|| panic!("hsmd closed the connection instead of answering {what}"))
}

/// Asserts `v` is an error frame with `id` and `code`; returns its message.
fn error_of(v: &Value, id: Value, code: &str) -> String {
    assert_eq!(v["id"], id, "id of {v}");
    assert_eq!(v["error"]["code"], code, "code of {v}");
    assert!(v.get("result").is_none(), "{v}");
    v["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message in {v}"))
        .to_owned()
}

/// Asserts the server closes the connection with nothing more to say.
async fn expect_closed<R: AsyncRead + Unpin>(r: &mut R) {
    if let Some(v) = read_frame(r).await {
        panic!("expected the connection to be closed, got {v}");
    }
}

/// Connects without saying anything.
async fn connect(d: &Daemon) -> UnixStream {
    UnixStream::connect(&d.socket)
        .await
        .unwrap_or_else(|e| panic!("connect {}: {e}", d.socket.display()))
}

/// Connects and exchanges a valid hello.
async fn hello(d: &Daemon) -> UnixStream {
    let mut s = connect(d).await;
    write_frame(&mut s, br#"{"hello":{"versions":[1],"client":"t"}}"#).await;
    let h = expect_frame(&mut s, "the hello").await;
    assert_eq!(h["hello"]["version"], 1, "{h}");
    assert_eq!(h["hello"]["identity"], "root", "{h}");
    s
}

fn random_request(id: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({"id": id, "op": "random", "params": {"len": 8}})).unwrap()
}

/// Asserts `v` is the answer to a `random` of 8 bytes; returns its id.
fn random_answer(v: &Value) -> u64 {
    assert!(v.get("error").is_none(), "{v}");
    let bytes = v["result"]["bytes"]
        .as_str()
        .unwrap_or_else(|| panic!("no result.bytes in {v}"));
    assert_eq!(STANDARD.decode(bytes).expect("base64").len(), 8, "{v}");
    v["id"].as_u64().unwrap_or_else(|| panic!("no id in {v}"))
}

/// A valid request with `id` on `s` is answered with that id.
async fn still_usable(s: &mut UnixStream, id: u64) {
    write_frame(s, &random_request(id)).await;
    let v = expect_frame(s, "a valid request").await;
    assert_eq!(random_answer(&v), id, "{v}");
}

/// A fresh client gets `status`, and hsmd has not panicked.
async fn still_serves(d: &Daemon) {
    let c = d.client().await;
    let st = c
        .call(None, &hsmd_protocol::Status {})
        .await
        .unwrap_or_else(|e| panic!("status after a hostile client: {e}\n{}", d.log_text()));
    assert_eq!(st.slots.len(), 1);
    let log = d.log_text();
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_announced_length_is_refused_unread_and_closed() {
    let token = Token::new("hostile-huge");
    let d = Daemon::start(&token, "");
    guarded(async {
        // After the hello: 0xFFFFFFFF announced, nothing sent after it.
        let mut s = hello(&d).await;
        s.write_all(&[0xFF; 4]).await.unwrap();
        let v = expect_frame(&mut s, "a 4 GiB length").await;
        let msg = error_of(&v, Value::Null, "frame_too_large");
        assert!(msg.contains("1048576"), "{msg}");
        expect_closed(&mut s).await;
        still_serves(&d).await;

        // As the very first frame, instead of a hello.
        let mut s = connect(&d).await;
        s.write_all(&[0xFF; 4]).await.unwrap();
        let v = expect_frame(&mut s, "a 4 GiB length before the hello").await;
        error_of(&v, Value::Null, "frame_too_large");
        expect_closed(&mut s).await;
        still_serves(&d).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_frame_len_is_the_exact_limit() {
    let token = Token::new("hostile-limit");
    let d = Daemon::start(&token, "max_frame_len = 1024");
    guarded(async {
        let mut s = hello(&d).await;
        // Exactly 1024 bytes: a valid request padded with JSON whitespace.
        let mut body = random_request(1);
        body.resize(1024, b' ');
        write_frame(&mut s, &body).await;
        let v = expect_frame(&mut s, "a frame of exactly max_frame_len").await;
        assert_eq!(random_answer(&v), 1);
        // One byte more: announced only, the body never sent.
        s.write_all(&1025u32.to_be_bytes()).await.unwrap();
        let v = expect_frame(&mut s, "a frame of max_frame_len + 1").await;
        let msg = error_of(&v, Value::Null, "frame_too_large");
        assert!(msg.contains("1024"), "{msg}");
        expect_closed(&mut s).await;
        // `status` answers more than 1024 bytes here (see the next test):
        // a fresh client checks with `random` instead.
        let c = d.client().await;
        let r = c
            .call(None, &hsmd_protocol::Random { len: 8, slot: None })
            .await
            .unwrap_or_else(|e| panic!("random after a hostile client: {e}\n{}", d.log_text()));
        assert_eq!(r.bytes.expose().len(), 8);
        assert!(!d.log_text().contains("panicked"), "{}", d.log_text());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_longer_than_max_frame_len_is_answered_with_an_error() {
    let token = Token::new("hostile-bigresp");
    let d = Daemon::start(&token, "max_frame_len = 1024");
    guarded(async {
        // With the default limit, status on SoftHSMv2 (its ~60 mechanisms)
        // is longer than 1024 bytes.
        let big_token = Token::new("hostile-bigresp2");
        let big = Daemon::start(&big_token, "");
        let st = big
            .client()
            .await
            .call(None, &hsmd_protocol::Status {})
            .await
            .unwrap();
        let len = serde_json::to_vec(&json!({"id": 1, "result": st}))
            .unwrap()
            .len();
        assert!(len > 1024, "status is only {len} bytes");
        drop(big);

        // Under max_frame_len = 1024 the same request must still get an
        // answer carrying its id (an error, since the result cannot be
        // framed), and the connection must stay usable.
        let mut s = hello(&d).await;
        write_frame(&mut s, br#"{"id":1,"op":"status"}"#).await;
        let v = expect_frame(&mut s, "a status whose result exceeds max_frame_len").await;
        assert_eq!(v["id"], 1, "{v}");
        assert_eq!(v["error"]["code"], "frame_too_large", "{v}");
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("status") && msg.contains("max_frame_len (1024 bytes)"),
            "{v}"
        );
        still_usable(&mut s, 2).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_body_is_bad_request_and_connection_stays_usable() {
    let token = Token::new("hostile-garbage");
    let d = Daemon::start(&token, "");
    guarded(async {
        let mut s = hello(&d).await;
        write_frame(&mut s, b"\x00\xffthis is not json {{{").await;
        let v = expect_frame(&mut s, "a garbage frame").await;
        let msg = error_of(&v, Value::Null, "bad_request");
        assert!(msg.contains("JSON"), "{msg}");
        still_usable(&mut s, 5).await;

        // A truncated JSON object, and a JSON string (not an object).
        for body in [&br#"{"id": 6, "op": "random""#[..], br#""random""#] {
            write_frame(&mut s, body).await;
            let v = expect_frame(&mut s, "a broken JSON frame").await;
            error_of(&v, Value::Null, "bad_request");
        }
        still_usable(&mut s, 7).await;
        drop(s);
        still_serves(&d).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_bad_request_with_their_id() {
    let token = Token::new("hostile-malformed");
    let d = Daemon::start(&token, "");
    guarded(async {
        let mut s = hello(&d).await;

        // A JSON array: not an object, no id to give back.
        write_frame(&mut s, br#"[{"id":1,"op":"status"}]"#).await;
        let v = expect_frame(&mut s, "an array").await;
        let msg = error_of(&v, Value::Null, "bad_request");
        assert!(msg.contains("object"), "{msg}");

        // Unknown op: the message lists every known op.
        write_frame(&mut s, br#"{"id":11,"op":"frobnicate","params":{}}"#).await;
        let v = expect_frame(&mut s, "an unknown op").await;
        let msg = error_of(&v, json!(11), "bad_request");
        assert!(msg.contains("frobnicate"), "{msg}");
        for op in OPS {
            assert!(msg.contains(op), "{op} missing from: {msg}");
        }

        // Ill-typed params field: the message names it.
        write_frame(
            &mut s,
            br#"{"id":12,"op":"random","params":{"len":"eight"}}"#,
        )
        .await;
        let v = expect_frame(&mut s, "an ill-typed field").await;
        let msg = error_of(&v, json!(12), "bad_request");
        assert!(msg.contains("len"), "{msg}");

        // Missing required field.
        write_frame(&mut s, br#"{"id":13,"op":"get_key","params":{}}"#).await;
        let v = expect_frame(&mut s, "a missing field").await;
        let msg = error_of(&v, json!(13), "bad_request");
        assert!(msg.contains("uid"), "{msg}");

        // Ill-typed as_user and op.
        write_frame(&mut s, br#"{"id":14,"op":"status","as_user":5}"#).await;
        let v = expect_frame(&mut s, "an ill-typed as_user").await;
        let msg = error_of(&v, json!(14), "bad_request");
        assert!(msg.contains("as_user"), "{msg}");
        write_frame(&mut s, br#"{"id":15,"op":7}"#).await;
        let v = expect_frame(&mut s, "an ill-typed op").await;
        let msg = error_of(&v, json!(15), "bad_request");
        assert!(msg.contains("op"), "{msg}");

        // An id that is not an unsigned 64-bit integer cannot be echoed.
        for body in [
            &br#"{"id":-1,"op":"status"}"#[..],
            br#"{"id":"x","op":"status"}"#,
            br#"{"id":18446744073709551616,"op":"status"}"#,
            br#"{"op":"status"}"#,
        ] {
            write_frame(&mut s, body).await;
            let v = expect_frame(&mut s, "a bad id").await;
            let msg = error_of(&v, Value::Null, "bad_request");
            assert!(msg.contains("id"), "{msg}");
        }

        // The largest id is a valid id.
        write_frame(
            &mut s,
            br#"{"id":18446744073709551615,"op":"random","params":{"len":8}}"#,
        )
        .await;
        let v = expect_frame(&mut s, "the largest id").await;
        assert_eq!(random_answer(&v), u64::MAX);

        still_usable(&mut s, 16).await;
        drop(s);
        still_serves(&d).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_frame_then_close() {
    let token = Token::new("hostile-trunc");
    let d = Daemon::start(&token, "");
    guarded(async {
        // After the hello: 100 bytes announced, 10 sent, then our side closes.
        let mut s = hello(&d).await;
        s.write_all(&100u32.to_be_bytes()).await.unwrap();
        s.write_all(br#"{"id":1,"o"#).await.unwrap();
        s.shutdown().await.unwrap();
        expect_closed(&mut s).await;
        drop(s);
        still_serves(&d).await;

        // A truncated header (2 of 4 bytes) then a full close.
        let mut s = hello(&d).await;
        s.write_all(&[0, 0]).await.unwrap();
        drop(s);
        still_serves(&d).await;

        // A truncated hello.
        let mut s = connect(&d).await;
        s.write_all(&50u32.to_be_bytes()).await.unwrap();
        s.write_all(br#"{"hello":"#).await.unwrap();
        s.shutdown().await.unwrap();
        expect_closed(&mut s).await;
        drop(s);
        still_serves(&d).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_frame_is_bad_request() {
    let token = Token::new("hostile-empty");
    let d = Daemon::start(&token, "");
    guarded(async {
        let mut s = hello(&d).await;
        write_frame(&mut s, b"").await;
        let v = expect_frame(&mut s, "a length-0 frame").await;
        error_of(&v, Value::Null, "bad_request");
        // The frame boundary is intact: the connection goes on.
        still_usable(&mut s, 5).await;
        drop(s);
        still_serves(&d).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_frame_must_be_a_hello() {
    let token = Token::new("hostile-nohello");
    let d = Daemon::start(&token, "");
    guarded(async {
        for body in [
            &br#"{"id":1,"op":"status"}"#[..],
            b"not json",
            b"",
            br#"{"hello":{"versions":"1","client":"t"}}"#,
        ] {
            let mut s = connect(&d).await;
            write_frame(&mut s, body).await;
            let v = expect_frame(&mut s, "a first frame that is no hello").await;
            let msg = error_of(&v, Value::Null, "bad_request");
            assert!(msg.contains("hello"), "{msg}");
            expect_closed(&mut s).await;
            still_serves(&d).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_version_is_refused_and_closed() {
    let token = Token::new("hostile-version");
    let d = Daemon::start(&token, "");
    guarded(async {
        for versions in [json!([2]), json!([]), json!([0, 2, 99])] {
            let mut s = connect(&d).await;
            let hello = json!({"hello": {"versions": versions, "client": "t"}});
            write_frame(&mut s, hello.to_string().as_bytes()).await;
            let v = expect_frame(&mut s, "a hello without version 1").await;
            let msg = error_of(&v, Value::Null, "unsupported_version");
            assert!(msg.contains('1'), "{msg}");
            expect_closed(&mut s).await;
            still_serves(&d).await;
        }
        // Version 1 among others is accepted.
        let mut s = connect(&d).await;
        write_frame(&mut s, br#"{"hello":{"versions":[3,1,2],"client":"t"}}"#).await;
        let h = expect_frame(&mut s, "a hello offering 1").await;
        assert_eq!(h["hello"]["version"], 1, "{h}");
        still_usable(&mut s, 1).await;
    })
    .await;
}

/// Refused hellos, frames over max_frame_len and handshake timeouts end the
/// connection with one error frame, and each is logged at `warn` with that
/// error's code and message (cut and escaped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_that_end_a_connection_are_logged() {
    let token = Token::new("hostile-refusals");
    let mut d = Daemon::start(&token, "handshake_timeout_secs = 1");
    let long_client = "c".repeat(5000);
    guarded(async {
        // A silent client: the handshake timeout.
        let mut s = connect(&d).await;
        let v = expect_frame(&mut s, "a silent client").await;
        error_of(&v, Value::Null, "bad_request");
        // A frame over max_frame_len before the hello, and after it.
        let mut s = connect(&d).await;
        s.write_all(&[0xFF; 4]).await.unwrap();
        error_of(
            &expect_frame(&mut s, "4 GiB").await,
            Value::Null,
            "frame_too_large",
        );
        let mut s = hello(&d).await;
        s.write_all(&[0xFF; 4]).await.unwrap();
        error_of(
            &expect_frame(&mut s, "4 GiB").await,
            Value::Null,
            "frame_too_large",
        );
        // A first frame that is no hello; a hello without version 1.
        let mut s = connect(&d).await;
        let bad = json!({"hello": {"versions": "1", "client": long_client}});
        write_frame(&mut s, bad.to_string().as_bytes()).await;
        error_of(
            &expect_frame(&mut s, "no hello").await,
            Value::Null,
            "bad_request",
        );
        let mut s = connect(&d).await;
        write_frame(&mut s, br#"{"hello":{"versions":[7],"client":"t"}}"#).await;
        error_of(
            &expect_frame(&mut s, "version 7").await,
            Value::Null,
            "unsupported_version",
        );
    })
    .await;
    d.stop();
    let log = d.log_text();
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("refused connection:"))
        .collect();
    for (needle, result) in [
        ("no hello within 1 s", "bad_request"),
        (
            "frame longer than max_frame_len (1048576 bytes)",
            "frame_too_large",
        ),
        ("the first frame must be", "bad_request"),
        (
            "hsmd speaks protocol version 1; the client offered [7]",
            "unsupported_version",
        ),
    ] {
        assert!(
            refusals
                .iter()
                .any(|l| l.contains(needle) && l.contains(&format!("result=\"{result}\""))),
            "no {result} record with {needle:?}:\n{log}"
        );
    }
    assert_eq!(
        refusals
            .iter()
            .filter(|l| l.contains("frame_too_large"))
            .count(),
        2,
        "{log}"
    );
    assert!(
        !log.contains(&"c".repeat(200)),
        "an echoed client name was not cut in the log:\n{log}"
    );
}

/// `{"op":"status","op":"destroy"}` is not run as the last member says:
/// a member given twice, at any level, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_members_are_refused() {
    let token = Token::new("hostile-dup");
    let d = Daemon::start(&token, "");
    guarded(async {
        let mut s = hello(&d).await;
        for (body, name) in [
            (
                &br#"{"id":1,"op":"status","op":"destroy","params":{"uid":"hsm::0::k"}}"#[..],
                "op",
            ),
            (br#"{"id":2,"id":3,"op":"random","params":{"len":8}}"#, "id"),
            (
                br#"{"id":4,"op":"random","params":{"len":8,"len":16}}"#,
                "len",
            ),
        ] {
            write_frame(&mut s, body).await;
            let v = expect_frame(&mut s, "a frame with a duplicate member").await;
            let msg = error_of(&v, Value::Null, "bad_request");
            assert!(
                msg.contains(&format!("duplicate member \"{name}\"")),
                "{msg}"
            );
        }
        still_usable(&mut s, 9).await;
        // The hello too.
        let mut s = connect(&d).await;
        write_frame(
            &mut s,
            br#"{"hello":{"versions":[1],"client":"t"},"hello":{"versions":[1],"client":"u"}}"#,
        )
        .await;
        let msg = error_of(
            &expect_frame(&mut s, "two hellos").await,
            Value::Null,
            "bad_request",
        );
        assert!(msg.contains("duplicate field `hello`"), "{msg}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_is_disconnected_after_handshake_timeout() {
    let token = Token::new("hostile-silent");
    let d = Daemon::start(&token, "handshake_timeout_secs = 1");
    guarded(async {
        // A silent client gets one error without an id, then the close.
        let mut s = connect(&d).await;
        let v = expect_frame(&mut s, "a silent client").await;
        error_of(&v, Value::Null, "bad_request");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("no hello within 1 s"),
            "{v}"
        );
        assert!(
            read_frame(&mut s).await.is_none(),
            "connection should be closed"
        );
        // A client that sent half a hello is disconnected the same way.
        let mut s = connect(&d).await;
        s.write_all(&40u32.to_be_bytes()).await.unwrap();
        s.write_all(br#"{"hello""#).await.unwrap();
        let v = expect_frame(&mut s, "half a hello").await;
        error_of(&v, Value::Null, "bad_request");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("no hello within 1 s"),
            "{v}"
        );
        assert!(
            read_frame(&mut s).await.is_none(),
            "connection should be closed"
        );
        still_serves(&d).await;
    })
    .await;
}

/// Writes `n` `random` requests in one go while reading the answers; every
/// id must come back exactly once.
async fn pipeline(d: &Daemon, n: u64) {
    let s = hello(d).await;
    let (rd, mut wr) = s.into_split();
    let mut all = Vec::new();
    for id in 1..=n {
        all.extend(frame(&random_request(id)));
    }
    let writer = tokio::spawn(async move {
        wr.write_all(&all)
            .await
            .expect("write the pipelined requests");
        wr.flush().await.expect("flush");
        // Keep our write side open until the reader is done.
        wr
    });
    let mut rd = BufReader::new(rd);
    let mut seen = HashSet::new();
    for i in 0..n {
        let v = read_frame(&mut rd)
            .await
            .unwrap_or_else(|| panic!("connection closed after {i} of {n} answers"));
        let id = random_answer(&v);
        assert!(seen.insert(id), "id {id} answered twice");
    }
    let wr = writer.await.expect("writer task");
    assert_eq!(seen, (1..=n).collect::<HashSet<u64>>());
    // Nothing more is pending: a further request is answered next.
    let mut s = rd.into_inner().reunite(wr).expect("same stream");
    still_usable(&mut s, n + 1).await;
    drop(s);
    still_serves(d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_pipelined_requests_are_all_answered() {
    let token = Token::new("hostile-pipe");
    let d = Daemon::start(&token, "");
    guarded(pipeline(&d, 10_000)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelining_past_max_in_flight_is_back_pressure_not_loss() {
    let token = Token::new("hostile-inflight");
    let d = Daemon::start(&token, "max_in_flight = 4");
    guarded(pipeline(&d, 200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_frame_is_cut_off_after_frame_timeout() {
    let token = Token::new("hostile-stall");
    let d = Daemon::start(&token, "frame_timeout_secs = 1");
    guarded(async {
        let mut idle = hello(&d).await;
        let mut s = hello(&d).await;
        // Announce 1000 bytes, send 10, then nothing: the frame never completes.
        let mut partial = 1000u32.to_be_bytes().to_vec();
        partial.extend_from_slice(b"{\"id\":1,\"o");
        s.write_all(&partial).await.unwrap();
        let v = expect_frame(&mut s, "a stalled frame").await;
        assert_eq!(
            (v["id"].clone(), v["error"]["code"].clone()),
            (Value::Null, json!("bad_request")),
            "{v}"
        );
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("did not arrive within 1 s"),
            "{v}"
        );
        assert!(
            read_frame(&mut s).await.is_none(),
            "connection should be closed"
        );
        // The idle connection (no partial frame) opened before the stall
        // has now been quiet for over frame_timeout: it is not cut off.
        let mut other = hello(&d).await;
        still_usable(&mut other, 3).await;
        still_usable(&mut other, 4).await;
        still_usable(&mut other, 5).await;
        still_usable(&mut idle, 6).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_user_are_capped_with_busy() {
    let token = Token::new("hostile-conncap");
    let d = Daemon::start(&token, "max_connections_per_user = 2");
    guarded(async {
        let a = hello(&d).await;
        let _b = hello(&d).await;
        let mut c = connect(&d).await;
        let v = expect_frame(&mut c, "a third connection").await;
        assert_eq!(v["error"]["code"], "busy", "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("max_connections_per_user (2)"),
            "{v}"
        );
        assert!(read_frame(&mut c).await.is_none());
        drop(a);
        // The place is free again once a connection closes (the server notices the EOF).
        let mut again = None;
        for _ in 0..200 {
            let mut s = connect(&d).await;
            // While the place is still taken hsmd answers busy and closes at
            // once, possibly before this write: a broken pipe here is that answer.
            let _ = s
                .write_all(&frame(br#"{"hello":{"versions":[1],"client":"t"}}"#))
                .await;
            let v = expect_frame(&mut s, "hello after a close").await;
            if v.get("hello").is_some() {
                again = Some(s);
                break;
            }
            tokio::task::yield_now().await;
        }
        still_usable(&mut again.expect("a place never came free"), 9).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_does_not_wait_forever_for_a_client_that_never_reads() {
    let token = Token::new("hostile-noread");
    let mut d = Daemon::start(&token, "shutdown_timeout_secs = 1");
    let body = {
        let c = d.client().await;
        guarded(bulk_encrypt_request(&c, token.slot)).await
    };
    let (rd, mut wr) = guarded(hello(&d)).await.into_split();
    let request = frame(body.as_bytes());
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&request).await;
        wr
    });
    // The event to stop on: the first byte of the answer (some 930 KB, far
    // more than a Unix socket buffers) has arrived, so hsmd is in the middle
    // of writing an answer that cannot complete while nobody reads.
    guarded(async {
        let mut byte = [0u8; 1];
        loop {
            rd.readable().await.expect("readable");
            match rd.try_read(&mut byte) {
                Ok(1) => break,
                Ok(_) => panic!("hsmd closed the connection instead of answering"),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => panic!("read: {e}"),
            }
        }
    })
    .await;
    let status = tokio::task::spawn_blocking(move || {
        let status = d.stop();
        (status, d.log_text())
    });
    let (status, log) = guarded(status).await.unwrap();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("still open after shutdown_timeout_secs (1 s)"),
        "{log}"
    );
    writer.abort();
    drop(rd);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_text_cannot_forge_log_lines() {
    let token = Token::new("hostile-forge");
    let mut d = Daemon::start(&token, "");
    guarded(async {
        let mut s = hello(&d).await;
        let forged = "hsm::1::x\n2026-11-30T00:00:00.000000Z  INFO destroy by root (uid 0) on hsm::1::payroll: ok\u{0}";
        write_frame(&mut s, json!({"id": 1, "op": "get_key", "params": {"uid": forged}}).to_string().as_bytes()).await;
        let v = expect_frame(&mut s, "get_key with a forged uid").await;
        assert_eq!(v["id"], 1, "{v}");
    })
    .await;
    d.stop();
    let log = d.log_text();
    assert!(
        !log.lines()
            .any(|l| l.contains("INFO destroy by root") && !l.contains("get_key")),
        "a forged line reached the log:\n{log}"
    );
    assert!(!log.contains('\u{0}'), "a NUL byte reached the log");
    // The request itself is recorded, on one line, with the text escaped.
    assert!(
        log.lines()
            .any(|l| l.contains("get_key by root") && l.contains("hsm::1::x\\n2026")),
        "no escaped audit record of the get_key:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn params_must_be_an_object() {
    let token = Token::new("hostile-params");
    let d = Daemon::start(&token, "");
    guarded(async {
        let mut s = hello(&d).await;
        write_frame(&mut s, br#"{"id":4,"op":"random","params":[8]}"#).await;
        let v = expect_frame(&mut s, "params as an array").await;
        assert_eq!(
            (v["id"].clone(), v["error"]["code"].clone()),
            (json!(4), json!("bad_request")),
            "{v}"
        );
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("params: expected an object"),
            "{v}"
        );
    })
    .await;
}

/// Generates the AES key `bulk` through `c`; returns the frame body of a
/// request (id 1) that encrypts 700 KiB with it: some 930 KB, most of
/// hsmd's process-wide request budget (4 MiB) for four of them.
async fn bulk_encrypt_request(c: &hsmd_protocol::Client, slot: u64) -> String {
    c.call(
        None,
        &hsmd_protocol::GenerateKey {
            slot,
            label: "bulk".into(),
            algorithm: hsmd_protocol::SecretKeyAlgorithm::Aes,
            bits: 256,
            extractable: false,
        },
    )
    .await
    .unwrap();
    let plaintext = STANDARD.encode(vec![7u8; 700 * 1024]);
    json!({"id": 1, "op": "encrypt", "params": {"uid": format!("hsm::{slot}::bulk"), "algorithm": "aes_cbc_pad", "plaintext": plaintext}}).to_string()
}

/// Four connections each send 6 big encrypts and never read the answers;
/// meanwhile another client must still be served.
async fn never_readers_do_not_stall(extra_config: &str) {
    let token = Token::new("hostile-hoard");
    let d = Daemon::start(&token, extra_config);
    let slot = token.slot;
    let c = d.client().await;
    let body = bulk_encrypt_request(&c, slot).await;
    // Together they hold far more than any process-wide request budget.
    let mut hoarders = Vec::new();
    for _ in 0..4 {
        let mut s = guarded(hello(&d)).await;
        let burst: Vec<u8> = (0..6).flat_map(|_| frame(body.as_bytes())).collect();
        hoarders.push(tokio::spawn(async move {
            let _ = s.write_all(&burst).await;
            s
        }));
    }
    // Meanwhile another client is still served.
    guarded(async {
        for i in 0..20u64 {
            let r = c
                .call(None, &hsmd_protocol::Random { len: 8, slot: None })
                .await
                .unwrap();
            assert_eq!(r.bytes.len(), 8, "request {i}");
        }
    })
    .await;
    for h in hoarders {
        h.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_cannot_stall_the_others() {
    never_readers_do_not_stall("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_cannot_stall_the_others_before_they_are_cut_off() {
    // hsmd closes a connection that reads none of its answers for
    // frame_timeout_secs; at 300 s that is far past the hang guard, so only
    // the client being served while the never-readers hold the budget passes.
    never_readers_do_not_stall("frame_timeout_secs = 300").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_never_reads_is_cut_off_after_frame_timeout() {
    let token = Token::new("hostile-unread");
    let mut d = Daemon::start(&token, "frame_timeout_secs = 1");
    let slot = token.slot;
    let c = d.client().await;
    let body = bulk_encrypt_request(&c, slot).await;
    let mut idle = guarded(hello(&d)).await;
    let mut s = guarded(hello(&d)).await;
    // Big requests, never a read: hsmd stops reading this connection once it
    // holds 4 of them, and their answers hold most of the process-wide
    // budget until hsmd gives up on the client. Then the write fails.
    let one = frame(body.as_bytes());
    let err = guarded(async {
        loop {
            if let Err(e) = s.write_all(&one).await {
                return e;
            }
        }
    })
    .await;
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        ),
        "{err}"
    );
    let line = tokio::task::block_in_place(|| d.wait_for_line("read none of its answers"));
    assert!(
        line.contains("root (uid 0) read none of its answers for 1 s"),
        "{line}"
    );
    assert!(
        line.contains(&format!("peer_pid={}", std::process::id())),
        "{line}"
    );
    // Its shares of the budget are free again: a client that pipelines as
    // many big requests gets every answer.
    let mut other = guarded(hello(&d)).await;
    let burst: Vec<u8> = (0..6).flat_map(|_| frame(body.as_bytes())).collect();
    let (mut rd, mut wr) = other.split();
    guarded(async {
        let send = async {
            wr.write_all(&burst).await.expect("write the burst");
        };
        let receive = async {
            for i in 0..6 {
                let v = expect_frame(&mut rd, "a pipelined big encrypt").await;
                assert!(v["error"].is_null(), "answer {i}: {v}");
                assert_eq!(v["id"], 1, "answer {i}: {v}");
            }
        };
        tokio::join!(send, receive);
    })
    .await;
    // A connection with no answers pending is not cut off however quiet.
    still_usable(&mut idle, 7).await;
    still_usable(&mut other, 8).await;
}
