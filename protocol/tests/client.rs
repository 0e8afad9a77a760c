//! Tests of the async pipelining [`Client`] against a tiny fake server on the
//! other end of a `UnixStream::pair()`. Synchronization is by the frames
//! themselves (and oneshot channels), never by sleeping; timeouts only turn a
//! hang into a failure.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hsmd_protocol::b64::SecretBytes;
use hsmd_protocol::message::{HelloFrame, Operation};
use hsmd_protocol::*;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::oneshot;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

type Rd = FramedRead<OwnedReadHalf, LengthDelimitedCodec>;
type Wr = FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>;

/// Fails the test instead of hanging forever if something deadlocks.
async fn bounded<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no progress within 60 s"))
}

fn framed(stream: UnixStream) -> (Rd, Wr) {
    let (rd, wr) = stream.into_split();
    (
        FramedRead::new(rd, frame_codec(DEFAULT_MAX_FRAME_LEN)),
        FramedWrite::new(wr, frame_codec(DEFAULT_MAX_FRAME_LEN)),
    )
}

async fn send_json<T: Serialize>(wr: &mut Wr, v: &T) {
    wr.send(Bytes::from(serde_json::to_vec(v).unwrap()))
        .await
        .expect("fake server: send");
}

async fn recv_frame(rd: &mut Rd) -> Option<Vec<u8>> {
    rd.next()
        .await
        .map(|f| f.expect("fake server: read frame").to_vec())
}

async fn recv_request(rd: &mut Rd) -> Request {
    let frame = recv_frame(rd).await.expect("fake server: client hung up");
    Request::decode(&frame).unwrap_or_else(|e| {
        panic!(
            "client sent a bad request {:?}: {e:?}",
            String::from_utf8_lossy(&frame)
        )
    })
}

fn server_hello() -> ServerHello {
    ServerHello {
        version: 1,
        server: "fake-hsmd/0.0.1".into(),
        model: "smartcardhsm".into(),
        slots: vec![0, 4],
        admins: vec!["admin".into()],
        max_frame_len: DEFAULT_MAX_FRAME_LEN,
        identity: "kms".into(),
        may_act_as_others: true,
    }
}

/// Fake server side of the handshake: reads the client's hello (checking it
/// asks for version 1) and answers with [`server_hello`].
async fn accept_hello(stream: UnixStream) -> (Rd, Wr, ClientHello) {
    let (mut rd, mut wr) = framed(stream);
    let frame = recv_frame(&mut rd).await.expect("no hello from the client");
    let hello: HelloFrame<ClientHello> = serde_json::from_slice(&frame).expect("hello frame");
    assert_eq!(hello.hello.versions, vec![1]);
    send_json(
        &mut wr,
        &HelloFrame {
            hello: server_hello(),
        },
    )
    .await;
    (rd, wr, hello.hello)
}

/// A connected client and the fake server's end, after the handshake.
async fn connected() -> (Client, Rd, Wr) {
    let (client_end, server_end) = UnixStream::pair().unwrap();
    let server = tokio::spawn(accept_hello(server_end));
    let client = bounded(
        "handshake",
        Client::handshake(client_end, "test-client/1", DEFAULT_MAX_FRAME_LEN),
    )
    .await
    .expect("handshake");
    let (rd, wr, _) = server.await.unwrap();
    (client, rd, wr)
}

fn sign(i: usize) -> Sign {
    Sign {
        uid: format!("hsm::0::key{i}"),
        algorithm: SignatureAlgorithm::EcdsaSha256,
        data: SecretBytes::new(format!("message {i}").into_bytes()),
    }
}

/// The fake server's "signature": who asked, which key, which message.
fn fake_signature(as_user: Option<&str>, p: &Sign) -> Vec<u8> {
    format!(
        "{}|{}|{}",
        as_user.unwrap_or("-"),
        p.uid,
        String::from_utf8_lossy(p.data.expose())
    )
    .into_bytes()
}

// ---------------------------------------------------------------------------
// Handshake
// ---------------------------------------------------------------------------

#[tokio::test]
async fn handshake_sends_hello_with_version_1_and_keeps_the_server_hello() {
    let (client_end, server_end) = UnixStream::pair().unwrap();
    let server = tokio::spawn(async move {
        let (mut rd, mut wr) = framed(server_end);
        let raw = recv_frame(&mut rd).await.expect("hello");
        send_json(
            &mut wr,
            &HelloFrame {
                hello: server_hello(),
            },
        )
        .await;
        // One request after the hello, to see the connection is usable.
        let req = recv_request(&mut rd).await;
        let Operation::Random(Random { len, slot }) = req.op else {
            panic!("expected random, got {req:?}")
        };
        assert_eq!((len, slot), (4, Some(4)));
        assert_eq!(req.as_user.as_deref(), Some("alice"));
        let result = RandomResult {
            bytes: SecretBytes::new(vec![9; len as usize]),
        };
        send_json(
            &mut wr,
            &Response::ok(req.id, serde_json::to_value(result).unwrap()),
        )
        .await;
        raw
    });
    let client = bounded(
        "handshake",
        Client::handshake(client_end, "kms-frontend/0.1.0", DEFAULT_MAX_FRAME_LEN),
    )
    .await
    .expect("handshake");
    assert_eq!(client.server_hello(), &server_hello());

    let r = bounded(
        "random",
        client.call(
            Some("alice"),
            &Random {
                len: 4,
                slot: Some(4),
            },
        ),
    )
    .await
    .unwrap();
    assert_eq!(r.bytes.expose(), &[9, 9, 9, 9]);

    let raw = server.await.unwrap();
    // Exactly docs/protocol.md's first frame.
    assert_eq!(
        serde_json::from_slice::<Value>(&raw).unwrap(),
        json!({"hello": {"versions": [1], "client": "kms-frontend/0.1.0"}})
    );
    let hello: HelloFrame<ClientHello> = serde_json::from_slice(&raw).unwrap();
    assert_eq!(hello.hello.versions, vec![PROTOCOL_VERSION]);
}

#[tokio::test]
async fn error_frame_answering_the_hello_is_refused_with_its_code() {
    for code in [
        ErrorCode::UnsupportedVersion,
        ErrorCode::Unauthorized,
        ErrorCode::BadRequest,
    ] {
        let (client_end, server_end) = UnixStream::pair().unwrap();
        let server = tokio::spawn(async move {
            let (mut rd, mut wr) = framed(server_end);
            recv_frame(&mut rd).await.expect("hello");
            send_json(&mut wr, &Response::error(None, code, "go away")).await;
            // Then close, as docs/protocol.md says.
        });
        let err = bounded(
            "refused handshake",
            Client::handshake(client_end, "t/1", DEFAULT_MAX_FRAME_LEN),
        )
        .await
        .err()
        .expect("handshake must fail");
        match &err {
            ClientError::Refused(body) => {
                assert_eq!(body.code, code);
                assert_eq!(body.message, "go away");
            }
            other => panic!("expected Refused({code}), got {other:?}"),
        }
        assert_eq!(err.code(), Some(code));
        server.await.unwrap();
    }
}

/// `unauthorized` is decided from `SO_PEERCRED` alone, so a server may send it
/// (and close) before it reads the client's hello. The client must still
/// report the server's refusal, which is waiting in its receive buffer.
#[tokio::test]
async fn unauthorized_sent_before_the_hello_is_read_is_still_refused() {
    let (client_end, server_end) = UnixStream::pair().unwrap();
    let (_, mut wr) = framed(server_end);
    send_json(
        &mut wr,
        &Response::error(None, ErrorCode::Unauthorized, "uid 1000 may not connect"),
    )
    .await;
    drop(wr); // the server's whole end is now closed
    let err = bounded(
        "handshake",
        Client::handshake(client_end, "t/1", DEFAULT_MAX_FRAME_LEN),
    )
    .await
    .err()
    .expect("handshake must fail");
    assert!(
        matches!(&err, ClientError::Refused(b) if b.code == ErrorCode::Unauthorized),
        "expected Refused(unauthorized), got {err:?}"
    );
}

#[tokio::test]
async fn server_closing_or_babbling_during_the_handshake_is_a_handshake_error() {
    // Closes without answering.
    let (client_end, server_end) = UnixStream::pair().unwrap();
    let server = tokio::spawn(async move {
        let (mut rd, _wr) = framed(server_end);
        recv_frame(&mut rd).await.expect("hello");
    });
    let err = bounded(
        "handshake",
        Client::handshake(client_end, "t/1", DEFAULT_MAX_FRAME_LEN),
    )
    .await
    .err()
    .expect("handshake must fail");
    assert!(matches!(err, ClientError::Handshake(_)), "{err:?}");
    assert_eq!(err.code(), None);
    server.await.unwrap();

    // Answers with something that is neither a hello nor an error.
    let (client_end, server_end) = UnixStream::pair().unwrap();
    let server = tokio::spawn(async move {
        let (mut rd, mut wr) = framed(server_end);
        recv_frame(&mut rd).await.expect("hello");
        send_json(&mut wr, &json!({"id": 1, "result": {}})).await;
        (rd, wr)
    });
    let err = bounded(
        "handshake",
        Client::handshake(client_end, "t/1", DEFAULT_MAX_FRAME_LEN),
    )
    .await
    .err()
    .expect("handshake must fail");
    assert!(matches!(err, ClientError::Handshake(_)), "{err:?}");
    drop(server.await.unwrap());
}

// ---------------------------------------------------------------------------
// Pipelining
// ---------------------------------------------------------------------------

/// 1000 calls in flight at once on one client; the fake server reads all of
/// them before answering any, then answers in reverse order. Every caller
/// must get the answer to its own request, errors included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_calls_answered_in_reverse_order() {
    const N: usize = 1000;
    let (client, mut rd, mut wr) = connected().await;

    let server = tokio::spawn(async move {
        let mut requests = Vec::with_capacity(N);
        for _ in 0..N {
            requests.push(recv_request(&mut rd).await);
        }
        let ids: HashSet<u64> = requests.iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), N, "request ids must be unique in flight");
        for req in requests.iter().rev() {
            let Operation::Sign(p) = &req.op else {
                panic!("expected sign, got {req:?}")
            };
            let response = if p.uid.ends_with('7') {
                // Every tenth key "does not exist": errors are routed by id too.
                Response::error(
                    Some(req.id),
                    ErrorCode::NotFound,
                    format!("no key {}", p.uid),
                )
            } else {
                let result = SignResult {
                    signature: fake_signature(req.as_user.as_deref(), p),
                };
                Response::ok(req.id, serde_json::to_value(result).unwrap())
            };
            wr.feed(Bytes::from(serde_json::to_vec(&response).unwrap()))
                .await
                .unwrap();
        }
        SinkExt::<Bytes>::flush(&mut wr).await.unwrap();
        (rd, wr, requests.len())
    });

    let callers: Vec<_> = (0..N)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let user = format!("user{i}");
                let params = sign(i);
                let result = client.call(Some(&user), &params).await;
                (i, user, params, result)
            })
        })
        .collect();

    let mut ok = 0;
    let mut not_found = 0;
    for caller in callers {
        let (i, user, params, result) = bounded("caller", caller).await.unwrap();
        if params.uid.ends_with('7') {
            match result {
                Err(ClientError::Server(e)) => {
                    assert_eq!(e.code, ErrorCode::NotFound, "caller {i}");
                    assert_eq!(e.message, format!("no key {}", params.uid), "caller {i}");
                    not_found += 1;
                }
                other => panic!("caller {i}: expected not_found, got {other:?}"),
            }
        } else {
            let r = result.unwrap_or_else(|e| panic!("caller {i}: {e:?}"));
            assert_eq!(
                r.signature,
                fake_signature(Some(&user), &params),
                "caller {i} got someone else's answer"
            );
            ok += 1;
        }
    }
    assert_eq!((ok, not_found), (N - N / 10, N / 10));
    let (_rd, _wr, seen) = bounded("server", server).await.unwrap();
    assert_eq!(seen, N);
}

#[tokio::test]
async fn responses_with_unknown_ids_are_ignored() {
    let (client, mut rd, mut wr) = connected().await;
    let server = tokio::spawn(async move {
        let req = recv_request(&mut rd).await;
        // A stray answer to nothing, then the real one.
        send_json(
            &mut wr,
            &Response::ok(req.id + 1_000_000, json!({"valid": false})),
        )
        .await;
        send_json(&mut wr, &Response::ok(req.id, json!({"valid": true}))).await;
        (rd, wr)
    });
    let r = bounded(
        "verify",
        client.call(
            None,
            &Verify {
                uid: "hsm::0::k_pk".into(),
                algorithm: SignatureAlgorithm::EcdsaSha384,
                data: SecretBytes::new(b"m".to_vec()),
                signature: vec![0x30, 0x00],
            },
        ),
    )
    .await
    .unwrap();
    assert!(r.valid);
    drop(server.await.unwrap());
}

#[tokio::test]
async fn a_request_longer_than_max_frame_len_is_refused_unsent_and_the_connection_lives() {
    let (client, mut rd, mut wr) = connected().await;
    let big = Sign {
        uid: "hsm::0::k".into(),
        algorithm: SignatureAlgorithm::EcdsaSha256,
        data: SecretBytes::new(vec![7; DEFAULT_MAX_FRAME_LEN]),
    };
    match bounded("big sign", client.call(None, &big)).await {
        Err(ClientError::TooLarge { len, max }) => {
            assert_eq!(max, DEFAULT_MAX_FRAME_LEN);
            assert!(len > max, "{len} <= {max}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(!client.is_closed());
    // The next request on the same connection is the first the server sees.
    let server = tokio::spawn(async move {
        let req = recv_request(&mut rd).await;
        assert_eq!(req.op.name(), "sign");
        send_json(&mut wr, &Response::ok(req.id, json!({"signature": "AQI="}))).await;
        (rd, wr)
    });
    let r = bounded("small sign", client.call(None, &sign(1)))
        .await
        .unwrap();
    assert_eq!(r.signature, vec![1, 2]);
    drop(server.await.unwrap());
}

// ---------------------------------------------------------------------------
// Connection loss
// ---------------------------------------------------------------------------

/// Spawns `n` calls and returns their handles.
fn spawn_calls(
    client: &Client,
    range: std::ops::Range<usize>,
) -> Vec<tokio::task::JoinHandle<Result<SignResult, ClientError>>> {
    range
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.call(None, &sign(i)).await })
        })
        .collect()
}

async fn assert_all_closed(calls: Vec<tokio::task::JoinHandle<Result<SignResult, ClientError>>>) {
    for (i, call) in calls.into_iter().enumerate() {
        match bounded("in-flight call", call).await.unwrap() {
            Err(ClientError::Closed(reason)) => assert!(!reason.is_empty()),
            other => panic!("in-flight call {i}: expected Closed, got {other:?}"),
        }
    }
}

async fn assert_fails_fast(client: &Client) {
    for i in 0..3 {
        match bounded("call after close", client.call(None, &sign(i))).await {
            Err(ClientError::Closed(reason)) => assert!(!reason.is_empty()),
            other => panic!("call after close: expected Closed, got {other:?}"),
        }
    }
    // call_raw too, and through a fresh clone.
    let clone = client.clone();
    let r = bounded(
        "call_raw after close",
        clone.call_raw("status", None, &json!({})),
    )
    .await;
    assert!(matches!(r, Err(ClientError::Closed(_))), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_closing_fails_every_in_flight_call_and_later_calls() {
    const N: usize = 100;
    let (client, mut rd, wr) = connected().await;
    let calls = spawn_calls(&client, 0..N);
    // The server reads every request (so all N are in flight), then hangs up.
    let (got_all_tx, got_all_rx) = oneshot::channel();
    let server = tokio::spawn(async move {
        for _ in 0..N {
            recv_request(&mut rd).await;
        }
        got_all_tx.send(()).unwrap();
        drop(rd);
        drop(wr);
    });
    bounded("server read all requests", got_all_rx)
        .await
        .unwrap();
    server.await.unwrap();
    assert_all_closed(calls).await;
    assert_fails_fast(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_calls_succeed_and_the_rest_fail_when_the_server_closes() {
    const N: usize = 40;
    let (client, mut rd, mut wr) = connected().await;
    let calls = spawn_calls(&client, 0..N);
    let server = tokio::spawn(async move {
        let mut requests = Vec::new();
        for _ in 0..N {
            requests.push(recv_request(&mut rd).await);
        }
        // Answer the even-numbered keys only, then close.
        let mut answered = HashSet::new();
        for req in &requests {
            let Operation::Sign(p) = &req.op else {
                panic!("{req:?}")
            };
            let i: usize = p.uid.trim_start_matches("hsm::0::key").parse().unwrap();
            if i % 2 == 0 {
                let result = SignResult {
                    signature: fake_signature(None, p),
                };
                send_json(
                    &mut wr,
                    &Response::ok(req.id, serde_json::to_value(result).unwrap()),
                )
                .await;
                answered.insert(i);
            }
        }
        answered
    });
    let answered = bounded("server", server).await.unwrap();
    assert_eq!(answered.len(), N / 2);
    for (i, call) in calls.into_iter().enumerate() {
        let r = bounded("call", call).await.unwrap();
        if answered.contains(&i) {
            assert_eq!(
                r.unwrap_or_else(|e| panic!("call {i}: {e:?}")).signature,
                fake_signature(None, &sign(i))
            );
        } else {
            assert!(
                matches!(r, Err(ClientError::Closed(_))),
                "call {i}: expected Closed, got {r:?}"
            );
        }
    }
    assert_fails_fast(&client).await;
}

#[tokio::test]
async fn error_frame_without_id_ends_the_connection_with_its_reason() {
    let (client, mut rd, mut wr) = connected().await;
    let calls = spawn_calls(&client, 0..5);
    let server = tokio::spawn(async move {
        for _ in 0..5 {
            recv_request(&mut rd).await;
        }
        // E.g. the server is going away: one error for no request, then close.
        send_json(
            &mut wr,
            &Response::error(None, ErrorCode::Busy, "hsmd is shutting down"),
        )
        .await;
    });
    bounded("server", server).await.unwrap();
    for call in calls {
        match bounded("call", call).await.unwrap() {
            Err(ClientError::Closed(reason)) => {
                assert!(reason.contains("shutting down"), "{reason}")
            }
            other => panic!("expected Closed, got {other:?}"),
        }
    }
    assert_fails_fast(&client).await;
}

#[tokio::test]
async fn a_frame_that_is_not_a_response_ends_the_connection() {
    let (client, mut rd, mut wr) = connected().await;
    let calls = spawn_calls(&client, 0..3);
    let server = tokio::spawn(async move {
        for _ in 0..3 {
            recv_request(&mut rd).await;
        }
        wr.send(Bytes::from_static(b"this is not JSON"))
            .await
            .unwrap();
        (rd, wr) // keep the socket open: the client must give up by itself
    });
    let _keep_open = bounded("server", server).await.unwrap();
    assert_all_closed(calls).await;
    assert_fails_fast(&client).await;
}

/// serde reads a struct from an array too, as its fields in order: `[id]`
/// was taken as the answer to request `id`, whose result `call` then read
/// as the same first element (found by fuzz/ target client_answer).
#[tokio::test]
async fn a_response_that_is_an_array_ends_the_connection() {
    let (client, mut rd, mut wr) = connected().await;
    let calls = spawn_calls(&client, 0..1);
    let server = tokio::spawn(async move {
        let req = recv_request(&mut rd).await;
        send_json(&mut wr, &serde_json::json!([req.id])).await;
        (rd, wr) // keep the socket open: the client must give up by itself
    });
    let _keep_open = bounded("server", server).await.unwrap();
    assert_all_closed(calls).await;
    assert_fails_fast(&client).await;
}

/// A frame whose result holds bytes that are not UTF-8 is not a response,
/// even in a part the read loop does not look at (found by fuzz/ target
/// client_answer).
#[tokio::test]
async fn a_response_that_is_not_utf8_ends_the_connection() {
    let (client, mut rd, mut wr) = connected().await;
    let calls = spawn_calls(&client, 0..1);
    let server = tokio::spawn(async move {
        let req = recv_request(&mut rd).await;
        let mut frame = format!(r#"{{"id":{},"result":{{"label":"k"#, req.id).into_bytes();
        frame.extend_from_slice(b"\x89\xe1\"}}");
        wr.send(Bytes::from(frame)).await.unwrap();
        (rd, wr) // keep the socket open: the client must give up by itself
    });
    let _keep_open = bounded("server", server).await.unwrap();
    assert_all_closed(calls).await;
    assert_fails_fast(&client).await;
}

#[tokio::test]
async fn dropping_every_client_closes_the_connection() {
    let (client, mut rd, _wr) = connected().await;
    let clone = client.clone();
    drop(client);
    drop(clone);
    // The server sees end of stream, not a hang.
    assert!(bounded("server read", recv_frame(&mut rd)).await.is_none());
}
