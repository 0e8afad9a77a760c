//! Byte strings on the wire: standard base64 with padding (RFC 4648 section 4).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// Serde adapter for `Vec<u8>` fields (`#[serde(with = "b64")]`).
pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&STANDARD.encode(bytes))
}

/// Serde adapter for `Vec<u8>` fields; refuses anything but padded standard base64.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    STANDARD
        .decode(text.as_bytes())
        .map_err(|e| serde::de::Error::custom(format!("not standard padded base64: {e}")))
}

/// Serde adapter for `Option<Vec<u8>>` fields; `null` or absent is `None`.
pub mod option {
    use super::*;

    /// Writes `null` for `None`, base64 otherwise.
    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => super::serialize(b, s),
            None => s.serialize_none(),
        }
    }

    /// Reads `null` as `None`, base64 otherwise.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "super")] Vec<u8>);
        Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
    }
}

/// Secret bytes (plaintext, raw key material): base64 on the wire, zeroized on
/// drop, and never shown by `Debug` (which prints only the length).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Wraps `bytes`; the vector is zeroized when the value is dropped.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The secret bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for zero bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(v: Vec<u8>) -> Self {
        Self::new(v)
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes([{} bytes redacted])", self.0.len())
    }
}

impl Serialize for SecretBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let encoded = Zeroizing::new(STANDARD.encode(self.expose()));
        s.serialize_str(&encoded)
    }
}

impl<'de> Deserialize<'de> for SecretBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize(d).map(Self::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct T {
        #[serde(with = "super")]
        a: Vec<u8>,
        #[serde(with = "option", default)]
        b: Option<Vec<u8>>,
        s: SecretBytes,
    }

    #[test]
    fn round_trips_and_redacts() {
        let t = T {
            a: vec![0, 255],
            b: None,
            s: SecretBytes::new(b"pin?".to_vec()),
        };
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, r#"{"a":"AP8=","b":null,"s":"cGluPw=="}"#);
        assert_eq!(serde_json::from_str::<T>(&json).unwrap(), t);
        assert_eq!(format!("{:?}", t.s), "SecretBytes([4 bytes redacted])");
    }

    #[test]
    fn refuses_unpadded_and_urlsafe() {
        assert!(serde_json::from_str::<T>(r#"{"a":"AP8","s":""}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"a":"_-8=","s":""}"#).is_err());
    }
}
