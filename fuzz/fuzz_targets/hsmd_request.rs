//! hsmd's request decoding (docs/protocol.md "Requests and responses"): the
//! hot decoder (`decode_hot`) and the general one (`Request::decode`) on the
//! same frame body. The hot decoder may only accept what the general one
//! accepts, with the same result; an accepted request encodes back to a frame
//! that decodes to itself; a refusal's message stays within the documented
//! echo bounds.
#![no_main]

use hsmd::server::fuzzing::decode_hot;
use hsmd_protocol::Request;
use libfuzzer_sys::fuzz_target;

/// Longest refusal message: the 512-byte cut of `params` messages plus
/// the fixed text around a 64-character echo (docs/protocol.md).
const MAX_MESSAGE: usize = 1024;

fuzz_target!(|frame: &[u8]| {
    let general = Request::decode(frame);
    if let Some(hot) = decode_hot(frame) {
        assert_eq!(
            Ok(&hot),
            general.as_ref(),
            "hot and general decoders disagree"
        );
    }
    match general {
        Ok(req) => {
            let again = req.encode().expect("a decoded request encodes");
            assert_eq!(Request::decode(&again), Ok(req), "encode/decode round trip");
        }
        Err(e) => assert!(
            e.error.message.len() <= MAX_MESSAGE,
            "refusal of {} bytes",
            e.error.message.len()
        ),
    }
});
