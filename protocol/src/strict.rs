//! JSON parsing that refuses an object holding the same member twice.
//!
//! RFC 8259 section 4 leaves duplicate names undefined and serde_json keeps
//! the last one, so `{"op":"status","op":"destroy"}` would run as a
//! `destroy`: a frame whose members are read differently by two parsers
//! (a logging proxy, an audit tool, hsmd) is refused instead, at every
//! nesting level.

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// Longest member name quoted in the refusal, in characters.
pub const NAME_ECHO_MAX: usize = 64;

/// Parses `bytes` as one JSON value like `serde_json::from_slice::<Value>`,
/// but fails on an object with a duplicate member.
///
/// Errors: serde_json's syntax errors, or a data error
/// (`serde_json::Error::is_data`) "duplicate member \"<name>\": each member
/// may appear once" with the name cut to [`NAME_ECHO_MAX`] characters.
pub fn from_slice(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut d = serde_json::Deserializer::from_slice(bytes);
    let value = d.deserialize_any(StrictVisitor)?;
    d.end()?;
    Ok(value)
}

struct Strict(Value);

impl<'de> de::Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            if out.contains_key(&name) {
                let mut quoted: String = name.chars().take(NAME_ECHO_MAX).collect();
                if name.chars().nth(NAME_ECHO_MAX).is_some() {
                    quoted.push_str("...");
                }
                return Err(de::Error::custom(format!(
                    "duplicate member {quoted:?}: each member may appear once"
                )));
            }
            let Strict(v) = map.next_value()?;
            out.insert(name, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::from_slice;
    use serde_json::json;

    #[test]
    fn duplicates_are_refused_at_every_level() {
        for (text, name) in [
            (r#"{"op":"status","op":"destroy"}"#, "op"),
            (r#"{"id":1,"params":{"len":8,"len":1024}}"#, "len"),
            (r#"[{"a":1},{"b":{"c":1,"c":2}}]"#, "c"),
        ] {
            let e = from_slice(text.as_bytes()).expect_err(text);
            assert!(e.is_data(), "{text}: {e}");
            assert!(
                e.to_string().starts_with(&format!(
                    "duplicate member \"{name}\": each member may appear once"
                )),
                "{text}: {e}"
            );
        }
        let long = format!(r#"{{"{0}":1,"{0}":2}}"#, "x".repeat(10_000));
        let e = from_slice(long.as_bytes()).expect_err("long").to_string();
        assert!(e.len() < 200 && e.contains("xxx...\""), "{e}");
    }

    #[test]
    fn everything_else_parses_as_serde_json_does() {
        for text in [
            r#"{"id":18446744073709551615,"op":"random","params":{"len":-3,"x":1.5e3,"y":null,"z":[true,"s",{}]}}"#,
            r#" [ ] "#,
            r#""\u00e9\n""#,
        ] {
            let ours = from_slice(text.as_bytes()).expect(text);
            let theirs: serde_json::Value = serde_json::from_str(text).expect(text);
            assert_eq!(ours, theirs, "{text}");
        }
        assert_eq!(
            from_slice(b"{\"a\":{\"a\":1}}").expect("nested"),
            json!({"a": {"a": 1}})
        );
        let e = from_slice(b"{} x").expect_err("trailing");
        assert!(e.is_syntax(), "{e}");
    }
}
