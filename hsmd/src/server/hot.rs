//! The hot path of request decoding: `encrypt`, `decrypt`, `sign`, `verify`
//! and `random` in their usual shape, decoded in one pass without building a
//! `serde_json::Value` tree. Anything else goes to [`Request::decode`], which
//! owns every error message.

use hsmd_protocol::Request;

/// Decodes a request of the hot operations (`encrypt`, `decrypt`, `sign`,
/// `verify`, `random`) in one pass over the frame, straight into their typed
/// parameters: no `serde_json::Value` tree, base64 decoded from the frame
/// itself. Returns None for anything else (other operations, fields out of
/// the usual order, duplicates, any error), which then goes through
/// [`Request::decode`]: every request this accepts, that accepts with the
/// same result, and every error message comes from there.
pub fn decode_hot(frame: &[u8]) -> Option<Request> {
    serde_json::from_slice::<HotRequest>(frame)
        .ok()
        .map(|r| r.0)
}

struct HotRequest(Request);

/// Deserializes a `T` from a JSON object only (serde would also take the
/// fields of a struct as an array, which `Request::decode` refuses).
struct Object<T>(std::marker::PhantomData<T>);

impl<T> Object<T> {
    fn new() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::de::DeserializeSeed<'de> for Object<T> {
    type Value = T;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Object<T> {
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
    }
}

impl<'de> serde::Deserialize<'de> for HotRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(HotVisitor)
    }
}

struct HotVisitor;

impl<'de> serde::de::Visitor<'de> for HotVisitor {
    type Value = HotRequest;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a request object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<HotRequest, A::Error> {
        use hsmd_protocol::message::Operation;
        use hsmd_protocol::{Decrypt, Encrypt, Op, Random, Sign, Verify};
        use serde::de::Error;
        let (mut id, mut op, mut as_user, mut params) = (None, None, None, None);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "id" if id.is_none() => id = Some(map.next_value::<u64>()?),
                "op" if op.is_none() => op = Some(map.next_value::<String>()?),
                "as_user" if as_user.is_none() => {
                    as_user = Some(map.next_value::<Option<String>>()?)
                }
                "params" if params.is_none() => {
                    params = Some(match op.as_deref() {
                        Some(Encrypt::NAME) => {
                            Operation::Encrypt(map.next_value_seed(Object::new())?)
                        }
                        Some(Decrypt::NAME) => {
                            Operation::Decrypt(map.next_value_seed(Object::new())?)
                        }
                        Some(Sign::NAME) => Operation::Sign(map.next_value_seed(Object::new())?),
                        Some(Verify::NAME) => {
                            Operation::Verify(map.next_value_seed(Object::new())?)
                        }
                        Some(Random::NAME) => {
                            Operation::Random(map.next_value_seed(Object::new())?)
                        }
                        _ => return Err(A::Error::custom("not a hot operation")),
                    })
                }
                _ => return Err(A::Error::custom("not on the hot path")),
            }
        }
        match (id, params) {
            (Some(id), Some(op)) => Ok(HotRequest(Request {
                id,
                as_user: as_user.flatten(),
                op,
            })),
            _ => Err(A::Error::custom("incomplete")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hot decoder accepts a request only when [`Request::decode`]
    /// accepts it with the same result, and leaves the rest to it.
    #[test]
    fn hot_decoder_agrees_with_the_general_one() {
        let agree = [
            r#"{"id":1,"op":"encrypt","params":{"uid":"hsm::0::k","algorithm":"aes_gcm","plaintext":"aGk="}}"#,
            r#"{"id":2,"op":"encrypt","as_user":"alice","params":{"uid":"hsm::0::k","algorithm":"aes_gcm","plaintext":"aGk=","aad":"AA==","iv":"AAAAAAAAAAAAAAAA"}}"#,
            r#"{"id":3,"op":"decrypt","as_user":null,"params":{"uid":"hsm::0::k","algorithm":"aes_cbc_pad","ciphertext":"AAAAAAAAAAAAAAAAAAAAAA==","iv":"AAAAAAAAAAAAAAAAAAAAAA=="}}"#,
            r#"{"id":4,"op":"sign","params":{"uid":"hsm::0::k","algorithm":"ecdsa_sha256","data":"aGk="}}"#,
            r#"{"id":5,"op":"verify","params":{"uid":"hsm::0::k","algorithm":"rsa_pss_sha256","data":"aGk=","signature":"AA=="}}"#,
            r#" { "id" : 18446744073709551615 , "op" : "random" , "params" : { "len" : 32 , "slot" : 7 } } "#,
            r#"{"id":7,"op":"random","params":{"len":32}}"#,
            r#"{"op":"random","id":1,"params":{"len":32}}"#,
            r#"{"id":8,"op":"encrypt","params":{"uid":"hsm::0::k","algorithm":"aes_gcm","plaintext":"aGk="}}"#,
        ];
        for frame in agree {
            let hot =
                decode_hot(frame.as_bytes()).unwrap_or_else(|| panic!("hot path refused {frame}"));
            assert_eq!(Ok(hot), Request::decode(frame.as_bytes()), "{frame}");
        }
        let general_only = [
            "",
            "[]",
            "null",
            r#"{"id":1,"op":"status"}"#,
            r#"{"id":1,"op":"random"}"#,
            r#"{"id":1,"op":"random","params":null}"#,
            r#"{"id":1,"op":"random","params":[32]}"#,
            r#"{"id":1,"op":"sign","params":["hsm::0::k","ecdsa_sha256","aGk="]}"#,
            r#"{"params":{"len":32},"id":1,"op":"random"}"#,
            r#"{"id":1,"id":2,"op":"random","params":{"len":32}}"#,
            r#"{"id":1,"op":"random","params":{"len":32},"params":{"len":16}}"#,
            r#"{"id":1,"op":"random","params":{"len":32,"len":16}}"#,
            r#"{"id":1,"op":"random","params":{"len":32},"extra":true}"#,
            r#"{"id":1.0,"op":"random","params":{"len":32}}"#,
            r#"{"id":-1,"op":"random","params":{"len":32}}"#,
            r#"{"id":1,"op":"random","as_user":5,"params":{"len":32}}"#,
            r#"{"id":1,"op":"random","params":{"len":32,"bogus":1}}"#,
            r#"{"id":1,"op":"encrypt","params":{"uid":"hsm::0::k","algorithm":"aes_gcm","plaintext":"aGk"}}"#,
            r#"{"id":1,"op":"random","params":{"len":32}} trailing"#,
        ];
        for frame in general_only {
            assert!(decode_hot(frame.as_bytes()).is_none(), "{frame}");
        }
    }
}
