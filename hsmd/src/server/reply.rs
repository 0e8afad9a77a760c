//! How a result goes out (docs/protocol.md "Requests and responses"): as a
//! JSON value in a `Response`, or, for the hot operations, written straight
//! into the response frame without a `Value` in between.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hsmd_protocol::{
    DecryptResult, EncryptResult, ErrorBody, ErrorCode, ExportResult, KeyInfo, KeyPairResult,
    KeyRef, ListKeysResult, RandomResult, SignResult, StatusResult, VerifyResult,
};
use serde::Serialize;
use serde_json::Value;

fn to_value<T: Serialize>(v: T) -> Result<Value, ErrorBody> {
    serde_json::to_value(v).map_err(|e| {
        ErrorBody::new(
            ErrorCode::Internal,
            format!("cannot encode the result: {e}"),
        )
    })
}

/// What a successful operation produced.
pub(super) enum Reply {
    /// A result object, sent as `{"id": .., "result": ..}`.
    Value(Value),
    /// A complete response frame body (the hot operations).
    Frame(Vec<u8>),
}

/// A result of a hot operation, written as JSON straight into the response
/// frame: base64 encoded in place, nothing escaped (base64 needs none), the
/// buffer sized once. Byte for byte what serializing
/// `Response::ok(id, to_value(result))` gives (a `Value` object sorts its
/// keys, and these are written in that order); a test checks it.
trait HotResult {
    /// The bytes that go out as base64, for the buffer's size.
    fn payload_len(&self) -> usize;
    /// Writes the result object.
    fn write_json(&self, out: &mut Vec<u8>);
}

/// Appends `"<standard padded base64 of bytes>"`.
fn b64_field(out: &mut Vec<u8>, name: &str, bytes: Option<&[u8]>) {
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    let Some(bytes) = bytes else {
        out.extend_from_slice(b"null");
        return;
    };
    out.push(b'"');
    let start = out.len();
    out.resize(start + bytes.len().div_ceil(3) * 4, 0);
    // The slice is exactly the padded length: encoding cannot run short.
    let written = STANDARD.encode_slice(bytes, &mut out[start..]).unwrap_or(0);
    out.truncate(start + written);
    out.push(b'"');
}

impl HotResult for EncryptResult {
    fn payload_len(&self) -> usize {
        self.ciphertext.len() + 32
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        b64_field(out, "ciphertext", Some(&self.ciphertext));
        out.push(b',');
        b64_field(out, "iv", self.iv.as_deref());
        out.push(b',');
        b64_field(out, "tag", self.tag.as_deref());
        out.push(b'}');
    }
}

impl HotResult for DecryptResult {
    fn payload_len(&self) -> usize {
        self.plaintext.len()
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        b64_field(out, "plaintext", Some(self.plaintext.expose()));
        out.push(b'}');
    }
}

impl HotResult for SignResult {
    fn payload_len(&self) -> usize {
        self.signature.len()
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        b64_field(out, "signature", Some(&self.signature));
        out.push(b'}');
    }
}

impl HotResult for VerifyResult {
    fn payload_len(&self) -> usize {
        0
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(if self.valid {
            b"{\"valid\":true}"
        } else {
            b"{\"valid\":false}"
        });
    }
}

impl HotResult for RandomResult {
    fn payload_len(&self) -> usize {
        self.bytes.len()
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        b64_field(out, "bytes", Some(self.bytes.expose()));
        out.push(b'}');
    }
}

/// `{"id":<id>,"result":<result>}`.
fn result_frame<T: HotResult>(id: u64, result: &T) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::with_capacity(96 + result.payload_len().div_ceil(3) * 4);
    let _ = write!(out, "{{\"id\":{id},\"result\":");
    result.write_json(&mut out);
    out.push(b'}');
    out
}

/// How a result goes out: as a JSON value, or (the hot operations) written
/// straight into the response frame without a `Value` in between.
pub(super) trait Encode {
    /// The reply for the request `request_id`.
    fn encode(self, request_id: u64) -> Result<Reply, ErrorBody>;
}

macro_rules! encode_as_value {
    ($($t:ty),* $(,)?) => {$(
        impl Encode for $t {
            fn encode(self, _: u64) -> Result<Reply, ErrorBody> {
                to_value(self).map(Reply::Value)
            }
        }
    )*};
}

macro_rules! encode_as_frame {
    ($($t:ty),* $(,)?) => {$(
        impl Encode for $t {
            fn encode(self, request_id: u64) -> Result<Reply, ErrorBody> {
                Ok(Reply::Frame(result_frame(request_id, &self)))
            }
        }
    )*};
}

encode_as_value!(
    StatusResult,
    ListKeysResult,
    KeyInfo,
    KeyPairResult,
    KeyRef,
    ExportResult
);
encode_as_frame!(
    EncryptResult,
    DecryptResult,
    SignResult,
    VerifyResult,
    RandomResult
);

#[cfg(test)]
mod tests {
    use super::*;
    use hsmd_protocol::b64::SecretBytes;
    use hsmd_protocol::Response;

    fn general<T: Serialize>(id: u64, r: &T) -> Vec<u8> {
        let v = serde_json::to_value(r).unwrap();
        serde_json::to_vec(&Response::ok(id, v)).unwrap()
    }

    /// The hot encoding is byte for byte what the general one sends.
    #[test]
    fn hot_frames_are_the_general_bytes() {
        let bytes = |n: usize| (0..n).map(|i| i as u8).collect::<Vec<u8>>();
        let enc = EncryptResult {
            ciphertext: bytes(33),
            iv: Some(bytes(12)),
            tag: Some(bytes(16)),
        };
        let enc_cbc = EncryptResult {
            ciphertext: bytes(32),
            iv: Some(bytes(16)),
            tag: None,
        };
        let enc_rsa = EncryptResult {
            ciphertext: bytes(256),
            iv: None,
            tag: None,
        };
        assert_eq!(result_frame(7, &enc), general(7, &enc));
        assert_eq!(result_frame(0, &enc_cbc), general(0, &enc_cbc));
        assert_eq!(
            result_frame(u64::MAX, &enc_rsa),
            general(u64::MAX, &enc_rsa)
        );
        let dec = DecryptResult {
            plaintext: SecretBytes::new(bytes(5)),
        };
        assert_eq!(result_frame(9, &dec), general(9, &dec));
        let sig = SignResult {
            signature: bytes(71),
        };
        assert_eq!(result_frame(10, &sig), general(10, &sig));
        for valid in [true, false] {
            let v = VerifyResult { valid };
            assert_eq!(result_frame(11, &v), general(11, &v));
        }
        for n in 0..70 {
            let r = RandomResult {
                bytes: SecretBytes::new(bytes(n)),
            };
            assert_eq!(result_frame(n as u64, &r), general(n as u64, &r));
        }
    }
}
