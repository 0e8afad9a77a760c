//! Framing: every message, both directions, is a 4-byte unsigned big-endian
//! length `L` followed by `L` bytes of UTF-8 JSON (docs/protocol.md "Transport and
//! framing"). `1 <= L <= max_frame_len`.

use tokio_util::codec::LengthDelimitedCodec;

/// Default largest frame body, in bytes (1 MiB = 1,048,576).
pub const DEFAULT_MAX_FRAME_LEN: usize = 1024 * 1024;

/// Builds the frame codec: 4-byte big-endian length prefix, no length
/// adjustment, bodies of at most `max_frame_len` bytes.
///
/// A frame announcing more than `max_frame_len` bytes makes the decoder fail
/// with an `io::Error` of kind `InvalidData` *before* the body is read, so an
/// oversized body never reaches memory. Use [`is_frame_too_large`] to tell
/// that error apart.
pub fn frame_codec(max_frame_len: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(max_frame_len)
        .new_codec()
}

/// True when `err` is the codec's "frame longer than max_frame_len" error.
pub fn is_frame_too_large(err: &std::io::Error) -> bool {
    err.get_ref()
        .is_some_and(|inner| inner.is::<tokio_util::codec::LengthDelimitedCodecError>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, Bytes, BytesMut};
    use tokio_util::codec::{Decoder, Encoder};

    fn framed(len: u32, body: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        buf.put_u32(len);
        buf.put_slice(body);
        buf
    }

    #[test]
    fn encodes_big_endian_length_prefix() {
        let mut codec = frame_codec(16);
        let mut out = BytesMut::new();
        codec.encode(Bytes::from_static(b"{}"), &mut out).unwrap();
        assert_eq!(&out[..], &[0, 0, 0, 2, b'{', b'}']);
    }

    #[test]
    fn length_zero_decodes_as_empty_frame() {
        let mut codec = frame_codec(16);
        let mut buf = framed(0, b"");
        let frame = codec.decode(&mut buf).unwrap().unwrap();
        assert!(frame.is_empty());
    }

    #[test]
    fn exactly_max_is_accepted() {
        let mut codec = frame_codec(8);
        let mut buf = framed(8, b"12345678");
        assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"12345678");
    }

    #[test]
    fn max_plus_one_is_refused_before_the_body_arrives() {
        let mut codec = frame_codec(8);
        // Only the header is present: the codec must refuse without waiting for 9 bytes.
        let mut buf = framed(9, b"");
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(is_frame_too_large(&err), "{err}");
    }

    #[test]
    fn four_gib_announced_is_refused() {
        let mut codec = frame_codec(DEFAULT_MAX_FRAME_LEN);
        let mut buf = framed(u32::MAX, b"{");
        assert!(is_frame_too_large(&codec.decode(&mut buf).unwrap_err()));
    }

    #[test]
    fn truncated_frame_waits_for_more() {
        let mut codec = frame_codec(16);
        let mut buf = framed(10, b"{\"a\"");
        assert!(codec.decode(&mut buf).unwrap().is_none());
        // At end of stream the truncated frame is an error, not a message.
        assert!(codec.decode_eof(&mut buf).is_err());
    }
}
