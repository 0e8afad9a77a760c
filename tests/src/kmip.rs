//! KMIP 2.1 JSON TTLV requests the frontend tests send (the shapes the
//! reference `ckms` CLI sends, see `tests/fixtures/kmip/`), and reading
//! fields of the answers.

use serde_json::{json, Value};

/// A TextString item.
pub fn text(tag: &str, v: &str) -> Value {
    json!({"tag": tag, "type": "TextString", "value": v})
}

/// An Enumeration item.
pub fn enumeration(tag: &str, v: &str) -> Value {
    json!({"tag": tag, "type": "Enumeration", "value": v})
}

/// A ByteString item from upper-case hex.
pub fn bytes_hex(tag: &str, hex: &str) -> Value {
    json!({"tag": tag, "type": "ByteString", "value": hex})
}

/// The value of the first direct child `tag` of a KMIP structure.
pub fn field<'a>(v: &'a Value, tag: &str) -> Option<&'a Value> {
    v["value"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["tag"] == tag))
        .map(|i| &i["value"])
}

/// Create of an AES-256 key named `uid` (sensitive: the frontend's default).
pub fn create_aes(uid: &str) -> Value {
    json!({"tag": "Create", "value": [
        enumeration("ObjectType", "SymmetricKey"),
        {"tag": "Attributes", "value": [
            enumeration("CryptographicAlgorithm", "AES"),
            {"tag": "CryptographicLength", "type": "Integer", "value": 256},
            enumeration("ObjectType", "SymmetricKey"),
            text("UniqueIdentifier", uid),
        ]},
    ]})
}

/// Encrypt of `plaintext_hex` with `uid`, parameters left to the key.
pub fn encrypt(uid: &str, plaintext_hex: &str) -> Value {
    json!({"tag": "Encrypt", "value": [text("UniqueIdentifier", uid), bytes_hex("Data", plaintext_hex)]})
}

/// Decrypt of `enc` (an EncryptResponse) with `uid`: its Data,
/// IVCounterNonce and AuthenticatedEncryptionTag, as the reference CLI
/// sends them back.
pub fn decrypt(uid: &str, enc: &Value) -> Value {
    let mut v = vec![text("UniqueIdentifier", uid)];
    for tag in ["Data", "IVCounterNonce", "AuthenticatedEncryptionTag"] {
        if let Some(i) = enc["value"]
            .as_array()
            .and_then(|items| items.iter().find(|i| i["tag"] == tag))
        {
            v.push(i.clone());
        }
    }
    json!({"tag": "Decrypt", "value": v})
}

/// Revoke of `uid`, reason `Unspecified` (a KMS key becomes Deactivated).
pub fn revoke(uid: &str) -> Value {
    json!({"tag": "Revoke", "value": [
        text("UniqueIdentifier", uid),
        {"tag": "RevocationReason", "value": [enumeration("RevocationReasonCode", "Unspecified")]},
    ]})
}

/// Destroy of `uid`.
pub fn destroy(uid: &str) -> Value {
    json!({"tag": "Destroy", "value": [text("UniqueIdentifier", uid)]})
}

/// Locate with no filter.
pub fn locate_all() -> Value {
    json!({"tag": "Locate", "value": [{"tag": "Attributes", "value": []}]})
}
