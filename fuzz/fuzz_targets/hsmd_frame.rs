//! The byte stream of a connection to hsmd: the frame codec
//! (`hsmd_protocol::frame_codec`, 4-byte big-endian length, docs/protocol.md
//! "Transport and framing") fed in chunks of any size, then each frame
//! through the server's decoders in connection order: the first as the hello
//! (`decode_hello`), the rest as requests (hot and general decoder, which
//! must agree).
//!
//! Input: 2 bytes of `max_frame_len` (1 to 65,536), 1 byte of chunk size (1
//! to 256), then the stream.
#![no_main]

use bytes::{BufMut, BytesMut};
use hsmd::server::fuzzing::{decode_hello, decode_hot};
use hsmd_protocol::codec::is_frame_too_large;
use hsmd_protocol::{frame_codec, Request};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let [m0, m1, c, stream @ ..] = data else {
        return;
    };
    let max = usize::from(u16::from_be_bytes([*m0, *m1])) + 1;
    let chunk = usize::from(*c) + 1;
    let mut codec = frame_codec(max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut failed = false;
    'feed: for piece in stream.chunks(chunk) {
        buf.put_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f.freeze()),
                Ok(None) => break,
                Err(e) => {
                    assert!(is_frame_too_large(&e), "unexpected codec error {e}");
                    failed = true;
                    break 'feed;
                }
            }
        }
    }
    if !failed {
        // At the end of the stream a partial frame is an error, never a frame.
        if let Ok(Some(f)) = codec.decode_eof(&mut buf) {
            frames.push(f.freeze());
        }
    }
    // The frames are the stream cut at its length prefixes.
    let mut rebuilt = Vec::new();
    for f in &frames {
        assert!(f.len() <= max, "frame of {} bytes past max {max}", f.len());
        rebuilt.extend_from_slice(&(f.len() as u32).to_be_bytes());
        rebuilt.extend_from_slice(f);
    }
    assert_eq!(
        &stream[..rebuilt.len()],
        &rebuilt[..],
        "frames are not the stream"
    );

    let mut frames = frames.iter();
    if let Some(first) = frames.next() {
        if decode_hello(first).is_err() {
            return;
        }
    }
    for f in frames {
        let general = Request::decode(f);
        if let Some(hot) = decode_hot(f) {
            assert_eq!(
                Ok(&hot),
                general.as_ref(),
                "hot and general decoders disagree"
            );
        }
    }
});
