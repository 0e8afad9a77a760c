//! KMIP's TTLV (tag, type, length, value) items in their JSON encoding, as
//! the Cosmian KMS exchanges them (KMIP 2.1 section 9.1 defines TTLV; the
//! JSON profile is `{"tag": T, "type": TY, "value": V}`, structures with no
//! `type` and an array value). Byte strings are upper-case hex, enumerations
//! their names, date-times RFC 3339.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

/// A TTLV item that is not what the JSON profile allows; the message names
/// the path of tags to it and what was expected.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("malformed KMIP TTLV at `{path}`: {reason}")]
pub struct TtlvError {
    /// Tags from the root to the bad item, `/`-separated.
    pub path: String,
    /// What is wrong and what is accepted.
    pub reason: String,
}

/// One item: a tag and a typed value.
#[derive(Debug, Clone, PartialEq)]
pub struct Ttlv {
    /// KMIP tag name (KMIP 2.1 section 9.1.3.1), e.g. `UniqueIdentifier`.
    pub tag: String,
    /// Its value.
    pub value: TtlvValue,
}

/// The typed value of an item (KMIP 2.1 section 9.1.1.4 item types).
/// `Debug` shows a ByteString's length only: it may hold plaintext or key
/// material.
#[derive(Clone, PartialEq)]
pub enum TtlvValue {
    /// Ordered children.
    Structure(Vec<Ttlv>),
    /// 32-bit signed integer.
    Integer(i64),
    /// 64-bit signed integer.
    LongInteger(i64),
    /// Big integer, kept as its JSON text.
    BigInteger(String),
    /// Enumeration by name (or `0x…` / a number when the sender used that).
    Enumeration(String),
    /// Boolean.
    Boolean(bool),
    /// UTF-8 text.
    TextString(String),
    /// Bytes (hex on the wire).
    ByteString(Vec<u8>),
    /// Date-time, RFC 3339 text as sent.
    DateTime(String),
    /// Interval in seconds.
    Interval(i64),
    /// Date-time extended (microseconds), as sent.
    DateTimeExtended(String),
}

impl std::fmt::Debug for TtlvValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Structure(c) => f.debug_tuple("Structure").field(c).finish(),
            Self::Integer(i) => f.debug_tuple("Integer").field(i).finish(),
            Self::LongInteger(i) => f.debug_tuple("LongInteger").field(i).finish(),
            Self::BigInteger(s) => f.debug_tuple("BigInteger").field(s).finish(),
            Self::Enumeration(s) => f.debug_tuple("Enumeration").field(s).finish(),
            Self::Boolean(b) => f.debug_tuple("Boolean").field(b).finish(),
            Self::TextString(s) => f.debug_tuple("TextString").field(s).finish(),
            Self::ByteString(b) => write!(f, "ByteString(<{} bytes>)", b.len()),
            Self::DateTime(s) => f.debug_tuple("DateTime").field(s).finish(),
            Self::Interval(i) => f.debug_tuple("Interval").field(i).finish(),
            Self::DateTimeExtended(s) => f.debug_tuple("DateTimeExtended").field(s).finish(),
        }
    }
}

impl Ttlv {
    /// A structure.
    pub fn structure(tag: &str, children: Vec<Ttlv>) -> Self {
        Self::new(tag, TtlvValue::Structure(children))
    }
    /// A text string.
    pub fn text(tag: &str, v: impl Into<String>) -> Self {
        Self::new(tag, TtlvValue::TextString(v.into()))
    }
    /// An enumeration by name.
    pub fn enumeration(tag: &str, name: &str) -> Self {
        Self::new(tag, TtlvValue::Enumeration(name.into()))
    }
    /// An integer.
    pub fn integer(tag: &str, v: i64) -> Self {
        Self::new(tag, TtlvValue::Integer(v))
    }
    /// A byte string.
    pub fn bytes(tag: &str, v: Vec<u8>) -> Self {
        Self::new(tag, TtlvValue::ByteString(v))
    }
    /// A boolean.
    pub fn boolean(tag: &str, v: bool) -> Self {
        Self::new(tag, TtlvValue::Boolean(v))
    }
    fn new(tag: &str, value: TtlvValue) -> Self {
        Self {
            tag: tag.into(),
            value,
        }
    }

    /// Parses the JSON encoding of one item.
    ///
    /// Errors: [`TtlvError`] naming the path and the expected shape.
    pub fn from_json(v: &Value) -> Result<Self, TtlvError> {
        parse(v, &mut Vec::new())
    }

    /// The children of a structure (empty for any other type).
    pub fn items(&self) -> &[Ttlv] {
        match &self.value {
            TtlvValue::Structure(c) => c,
            _ => &[],
        }
    }

    /// The first child tagged `tag`.
    pub fn child(&self, tag: &str) -> Option<&Ttlv> {
        self.items().iter().find(|c| c.tag == tag)
    }

    /// Every child tagged `tag`.
    pub fn children<'a>(&'a self, tag: &'a str) -> impl Iterator<Item = &'a Ttlv> + 'a {
        self.items().iter().filter(move |c| c.tag == tag)
    }

    /// The text of child `tag`, if present. Errors when it is not a TextString.
    pub fn text_of(&self, tag: &str) -> Result<Option<&str>, TtlvError> {
        self.typed(tag, "TextString", |v| match v {
            TtlvValue::TextString(s) => Some(s.as_str()),
            _ => None,
        })
    }

    /// The enumeration name of child `tag`, if present.
    pub fn enum_of(&self, tag: &str) -> Result<Option<&str>, TtlvError> {
        self.typed(tag, "Enumeration", |v| match v {
            TtlvValue::Enumeration(s) => Some(s.as_str()),
            _ => None,
        })
    }

    /// The integer of child `tag` (Integer or LongInteger), if present.
    pub fn int_of(&self, tag: &str) -> Result<Option<i64>, TtlvError> {
        self.typed(tag, "Integer", |v| match v {
            TtlvValue::Integer(i) | TtlvValue::LongInteger(i) => Some(*i),
            _ => None,
        })
    }

    /// The boolean of child `tag`, if present.
    pub fn bool_of(&self, tag: &str) -> Result<Option<bool>, TtlvError> {
        self.typed(tag, "Boolean", |v| match v {
            TtlvValue::Boolean(b) => Some(*b),
            _ => None,
        })
    }

    /// The bytes of child `tag`, if present.
    pub fn bytes_of(&self, tag: &str) -> Result<Option<&[u8]>, TtlvError> {
        self.typed(tag, "ByteString", |v| match v {
            TtlvValue::ByteString(b) => Some(b.as_slice()),
            _ => None,
        })
    }

    /// Child `tag` as a structure, if present.
    pub fn struct_of(&self, tag: &str) -> Result<Option<&Ttlv>, TtlvError> {
        match self.child(tag) {
            None => Ok(None),
            Some(c) if matches!(c.value, TtlvValue::Structure(_)) => Ok(Some(c)),
            Some(_) => Err(self.wrong_type(tag, "Structure")),
        }
    }

    fn typed<'a, T>(
        &'a self,
        tag: &str,
        expected: &str,
        get: impl Fn(&'a TtlvValue) -> Option<T>,
    ) -> Result<Option<T>, TtlvError> {
        match self.child(tag) {
            None => Ok(None),
            Some(c) => get(&c.value)
                .map(Some)
                .ok_or_else(|| self.wrong_type(tag, expected)),
        }
    }

    fn wrong_type(&self, tag: &str, expected: &str) -> TtlvError {
        TtlvError {
            path: format!("{}/{tag}", self.tag),
            reason: format!("expected type {expected}"),
        }
    }
}

/// Longest tag accepted, in bytes (KMIP tag names are far shorter).
const MAX_TAG_LEN: usize = 128;

/// The `/`-joined path of `parents` and `last` (built only for errors: the
/// parser passes the tags down as a stack, not as strings).
fn path_of(parents: &[&str], last: &str) -> String {
    let mut p = parents.join("/");
    if !p.is_empty() {
        p.push('/');
    }
    p.push_str(last);
    p
}

fn parse<'a>(v: &'a Value, parents: &mut Vec<&'a str>) -> Result<Ttlv, TtlvError> {
    let err = |path: String, reason: &str| TtlvError {
        path,
        reason: reason.into(),
    };
    let obj = v.as_object().ok_or_else(|| {
        err(
            path_of(parents, "?"),
            "an item must be an object {\"tag\", \"type\", \"value\"}",
        )
    })?;
    let tag = obj
        .get("tag")
        .and_then(Value::as_str)
        .ok_or_else(|| err(path_of(parents, "?"), "missing text field \"tag\""))?;
    if tag.len() > MAX_TAG_LEN {
        return Err(err(
            path_of(parents, "?"),
            &format!(
                "a tag is at most {MAX_TAG_LEN} bytes long (KMIP tag names, e.g. UniqueIdentifier)"
            ),
        ));
    }
    let here = |parents: &[&str]| path_of(parents, tag);
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "tag" | "type" | "value"))
    {
        return Err(err(
            here(parents),
            &format!("unknown field {k:?} (allowed: tag, type, value)"),
        ));
    }
    let ty = match obj.get("type") {
        None => "Structure",
        Some(Value::String(t)) => t.as_str(),
        Some(_) => return Err(err(here(parents), "\"type\" must be a string")),
    };
    let value = obj
        .get("value")
        .ok_or_else(|| err(here(parents), "missing field \"value\""))?;
    let bad = |what: &str| err(here(parents), what);
    let value = match ty {
        "Structure" => {
            let items = value
                .as_array()
                .ok_or_else(|| bad("a Structure's value must be an array of items"))?;
            parents.push(tag);
            let children = items
                .iter()
                .map(|i| parse(i, parents))
                .collect::<Result<_, _>>();
            parents.pop();
            TtlvValue::Structure(children?)
        }
        "Integer" => TtlvValue::Integer(
            number(value)
                .filter(|i| i32::try_from(*i).is_ok())
                .ok_or_else(|| bad("an Integer must be a 32-bit number"))?,
        ),
        "LongInteger" => {
            TtlvValue::LongInteger(number(value).ok_or_else(|| bad("a LongInteger must be a number"))?)
        }
        "Interval" => TtlvValue::Interval(
            number(value)
                .filter(|i| u32::try_from(*i).is_ok())
                .ok_or_else(|| bad("an Interval must be a number of seconds"))?,
        ),
        "BigInteger" => TtlvValue::BigInteger(value.to_string()),
        "Enumeration" => TtlvValue::Enumeration(match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err(bad("an Enumeration must be a name or a number")),
        }),
        "Boolean" => TtlvValue::Boolean(
            value
                .as_bool()
                .ok_or_else(|| bad("a Boolean must be true or false"))?,
        ),
        "TextString" => TtlvValue::TextString(
            value
                .as_str()
                .ok_or_else(|| bad("a TextString must be a string"))?
                .to_owned(),
        ),
        "ByteString" => TtlvValue::ByteString(
            value
                .as_str()
                .and_then(|s| data_encoding::HEXLOWER_PERMISSIVE.decode(s.as_bytes()).ok())
                .ok_or_else(|| bad("a ByteString must be a string of hex digits"))?,
        ),
        "DateTime" => TtlvValue::DateTime(
            value
                .as_str()
                .ok_or_else(|| bad("a DateTime must be an RFC 3339 string"))?
                .to_owned(),
        ),
        "DateTimeExtended" => TtlvValue::DateTimeExtended(value.to_string()),
        other => {
            return Err(bad(&format!(
                "unknown type {other:?} (Structure, Integer, LongInteger, BigInteger, Enumeration, Boolean, TextString, ByteString, DateTime, Interval, DateTimeExtended)"
            )))
        }
    };
    Ok(Ttlv {
        tag: tag.to_owned(),
        value,
    })
}

/// A JSON number, or a `0x…` hex string as some clients send.
fn number(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s
            .strip_prefix("0x")
            .and_then(|h| i64::from_str_radix(h, 16).ok()),
        _ => None,
    }
}

/// The JSON encoding, written straight to the output (no `Value` tree):
/// `{"tag": .., "type": .., "value": ..}` in that order, structures without
/// `type`, as the reference sends them; byte strings as upper-case hex.
impl Serialize for Ttlv {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use TtlvValue as V;
        let ty = match &self.value {
            V::Structure(_) => None,
            V::Integer(_) => Some("Integer"),
            V::LongInteger(_) => Some("LongInteger"),
            V::BigInteger(_) => Some("BigInteger"),
            V::Enumeration(_) => Some("Enumeration"),
            V::Boolean(_) => Some("Boolean"),
            V::TextString(_) => Some("TextString"),
            V::ByteString(_) => Some("ByteString"),
            V::DateTime(_) => Some("DateTime"),
            V::Interval(_) => Some("Interval"),
            V::DateTimeExtended(_) => Some("DateTimeExtended"),
        };
        let mut m = s.serialize_map(Some(if ty.is_some() { 3 } else { 2 }))?;
        m.serialize_entry("tag", &self.tag)?;
        if let Some(ty) = ty {
            m.serialize_entry("type", ty)?;
        }
        match &self.value {
            V::Structure(c) => m.serialize_entry("value", c)?,
            V::Integer(i) | V::LongInteger(i) | V::Interval(i) => m.serialize_entry("value", i)?,
            V::Boolean(b) => m.serialize_entry("value", b)?,
            V::ByteString(b) => m.serialize_entry("value", &UpperHex(b))?,
            V::BigInteger(t)
            | V::Enumeration(t)
            | V::TextString(t)
            | V::DateTime(t)
            | V::DateTimeExtended(t) => m.serialize_entry("value", t)?,
        }
        m.end()
    }
}

/// Bytes as upper-case hex, written to the output in chunks (the `hex`
/// crate's encoder goes one `char` at a time into a new `String`).
struct UpperHex<'a>(&'a [u8]);

impl std::fmt::Display for UpperHex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        data_encoding::HEXUPPER.encode_write(self.0, f)
    }
}

impl Serialize for UpperHex<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_shapes_round_trip() {
        let text = r#"{"tag":"Encrypt","value":[{"tag":"UniqueIdentifier","type":"TextString","value":"hsm::1::aes1"},{"tag":"CryptographicParameters","value":[{"tag":"BlockCipherMode","type":"Enumeration","value":"GCM"}]},{"tag":"Data","type":"ByteString","value":"48656C6C6F"},{"tag":"CryptographicLength","type":"Integer","value":256},{"tag":"Sensitive","type":"Boolean","value":true},{"tag":"LeaseTime","type":"Interval","value":3600}]}"#;
        let v: Value = serde_json::from_str(text).expect("json");
        let t = Ttlv::from_json(&v).expect("ttlv");
        assert_eq!(t.text_of("UniqueIdentifier"), Ok(Some("hsm::1::aes1")));
        assert_eq!(t.bytes_of("Data"), Ok(Some(&b"Hello"[..])));
        assert_eq!(t.int_of("CryptographicLength"), Ok(Some(256)));
        let p = t
            .struct_of("CryptographicParameters")
            .expect("s")
            .expect("some");
        assert_eq!(p.enum_of("BlockCipherMode"), Ok(Some("GCM")));
        assert_eq!(serde_json::to_value(&t).expect("serialize"), v);
        let bytes = Ttlv::bytes("Data", (0..=255).chain(0..=255).collect());
        assert_eq!(
            serde_json::to_value(&bytes).expect("serialize")["value"],
            data_encoding::HEXUPPER.encode(&(0..=255).chain(0..=255).collect::<Vec<u8>>())
        );
        let debug = format!("{t:?}");
        assert!(
            debug.contains("ByteString(<5 bytes>)") && !debug.contains("72"),
            "{debug}"
        );
    }

    #[test]
    fn errors_name_the_path() {
        let v = serde_json::json!({"tag":"Get","value":[{"tag":"UniqueIdentifier","type":"Integer","value":"x"}]});
        let e = Ttlv::from_json(&v).expect_err("bad integer");
        assert_eq!(e.path, "Get/UniqueIdentifier");
        let v = serde_json::json!({"tag":"Get","value":[{"tag":"Data","type":"ByteString","value":"zz"}]});
        assert!(Ttlv::from_json(&v).expect_err("hex").reason.contains("hex"));
        let v = serde_json::json!({"tag":"Get","value":[{"tag":"Data","type":"ByteString","value":"ABC"}]});
        assert!(Ttlv::from_json(&v).expect_err("odd").reason.contains("hex"));
        // Either case is accepted, as the hex crate did.
        let v = serde_json::json!({"tag":"Get","value":[{"tag":"Data","type":"ByteString","value":"48656c6C6F"}]});
        let t = Ttlv::from_json(&v).expect("mixed case");
        assert_eq!(t.bytes_of("Data"), Ok(Some(&b"Hello"[..])));
        let v = serde_json::json!({"tag":"Get","value":[{"tag":"Attributes","value":[{"tag":"X".repeat(129),"value":[]}]}]});
        let e = Ttlv::from_json(&v).expect_err("long tag");
        assert_eq!(
            (e.path.as_str(), e.reason.contains("at most 128")),
            ("Get/Attributes/?", true)
        );
        let v = serde_json::json!({"tag":"Get","value":{"x":1}});
        assert!(Ttlv::from_json(&v)
            .expect_err("array")
            .reason
            .contains("array"));
        let t = Ttlv::from_json(&serde_json::json!({"tag":"Get","value":[{"tag":"UniqueIdentifier","type":"Integer","value":1}]})).expect("ok");
        assert_eq!(
            t.text_of("UniqueIdentifier").expect_err("type").path,
            "Get/UniqueIdentifier"
        );
    }
}
