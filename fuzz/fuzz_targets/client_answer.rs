//! The protocol client's decoding of what hsmd sends (docs/protocol.md):
//! the answer to the hello, and a response frame as the read loop, `call`
//! (typed result) and `call_raw` (whole `Response`) see it. The read loop
//! accepts exactly the UTF-8 objects `Response` accepts that carry an id, and the
//! typed result equals `Response::into_result` of the same frame.
//!
//! Input: 1 byte choosing the result type, then the frame.
#![no_main]

use hsmd_protocol::client::fuzzing::{answer, server_hello};
use hsmd_protocol::ops::*;
use hsmd_protocol::Response;
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// A JSON object (serde would also read the structs from an array).
fn is_object(frame: &[u8]) -> bool {
    frame.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

fn check<T: DeserializeOwned + PartialEq + Debug>(frame: &[u8]) {
    // A frame is UTF-8 JSON: serde_json's `from_slice` checks UTF-8 only in
    // the strings it reads, so `from_str` on the checked text is the rule.
    let whole = std::str::from_utf8(frame)
        .map_err(|_| ())
        .and_then(|text| serde_json::from_str::<Response>(text).map_err(|_| ()));
    match answer::<T>(frame) {
        Ok((id, typed, raw)) => {
            let whole = whole.expect("the read loop took a frame Response refuses");
            assert_eq!(whole.id, Some(id));
            let raw = raw.expect("call_raw refused a frame the read loop took");
            assert!(raw == whole, "call_raw differs from Response");
            match (typed, whole.into_result::<T>()) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(a), Err(b)) => assert_eq!(a.code, b.code, "{a:?} / {b:?}"),
                (a, b) => panic!("call gives {a:?}, Response::into_result {b:?}"),
            }
        }
        Err(_) => assert!(
            whole.map_or(true, |r| r.id.is_none()) || !is_object(frame),
            "the read loop refused a response with an id"
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let [pick, frame @ ..] = data else {
        return;
    };
    let _ = server_hello(frame);
    match pick % 12 {
        0 => check::<serde_json::Value>(frame),
        1 => check::<StatusResult>(frame),
        2 => check::<ListKeysResult>(frame),
        3 => check::<KeyInfo>(frame),
        4 => check::<ExportResult>(frame),
        5 => check::<KeyRef>(frame),
        6 => check::<KeyPairResult>(frame),
        7 => check::<EncryptResult>(frame),
        8 => check::<DecryptResult>(frame),
        9 => check::<SignResult>(frame),
        10 => check::<VerifyResult>(frame),
        _ => check::<RandomResult>(frame),
    }
});
