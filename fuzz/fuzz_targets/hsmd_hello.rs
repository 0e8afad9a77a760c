//! hsmd's decoding of a client's first frame, `{"hello": {...}}`
//! (docs/protocol.md "Handshake"), as the connection calls it; an accepted
//! hello encodes back to a frame that decodes to itself.
#![no_main]

use hsmd::server::fuzzing::decode_hello;
use hsmd_protocol::message::HelloFrame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    if let Ok(hello) = decode_hello(frame) {
        let again = serde_json::to_vec(&HelloFrame {
            hello: hello.clone(),
        })
        .expect("encodes");
        assert_eq!(decode_hello(&again), Ok(hello), "encode/decode round trip");
    }
});
