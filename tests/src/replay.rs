//! Reading the reference's captured exchanges (`tests/fixtures/<set>/`:
//! `index.jsonl` in execution order, and per exchange `_meta.json`,
//! `_request.json`, `_response.json`) and the JSON TTLV trees in them.

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;

/// One captured exchange.
pub struct Fixture {
    /// The command's number (`96`, `109e`): shared by the exchanges of one
    /// command.
    pub nn: String,
    /// `nn` alone, or `nn/k` for the k-th exchange (from 1) of a command
    /// that made several.
    pub id: String,
    /// The file stem.
    pub stem: String,
    /// The phase (server configuration and KMS user) it ran in.
    pub phase: String,
    /// HTTP method.
    pub method: String,
    /// HTTP path.
    pub path: String,
    /// The reference's HTTP status.
    pub status: u16,
    /// The request body as sent.
    pub request: String,
    /// The reference's response body.
    pub response: String,
}

/// Every exchange of `dir`'s index.jsonl that has a `_meta.json`, in index
/// order. Panics naming the file that is missing or malformed.
pub fn fixtures(dir: &Path) -> Vec<Fixture> {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
    };
    let mut out: Vec<Fixture> = Vec::new();
    for line in read("index.jsonl").lines().filter(|l| !l.trim().is_empty()) {
        let entry: Value = serde_json::from_str(line).expect("index.jsonl line");
        let stem = entry["stem"].as_str().expect("stem").to_owned();
        if !dir.join(format!("{stem}_meta.json")).is_file() {
            continue;
        }
        let meta: Value =
            serde_json::from_str(&read(&format!("{stem}_meta.json"))).expect("meta JSON");
        out.push(Fixture {
            nn: entry["nn"].as_str().expect("nn").to_owned(),
            id: String::new(),
            phase: entry["phase"].as_str().expect("phase").to_owned(),
            method: meta["method"].as_str().expect("method").to_owned(),
            path: meta["path"].as_str().expect("path").to_owned(),
            status: meta["status"]
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .expect("status"),
            request: read(&format!("{stem}_request.json")),
            response: read(&format!("{stem}_response.json")),
            stem,
        });
    }
    for i in 0..out.len() {
        let nn = out[i].nn.clone();
        let group: Vec<usize> = (0..out.len()).filter(|&j| out[j].nn == nn).collect();
        out[i].id = if group.len() == 1 {
            nn
        } else {
            let k = group.iter().position(|&j| j == i).expect("in its group") + 1;
            format!("{nn}/{k}")
        };
    }
    out
}

/// Upper-case hex, as KMIP JSON writes ByteStrings.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// The bytes of a hex string (either case).
pub fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex length: {text}");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The item at `path` (tags from the root's children down), if any.
pub fn find<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, tag| {
        cur["value"]
            .as_array()
            .and_then(|items| items.iter().find(|i| i["tag"] == *tag))
    })
}

/// The item at `path`; panics naming it when it is missing.
pub fn item<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    find(v, path).unwrap_or_else(|| panic!("no {path:?} in {v}"))
}

/// The bytes of the ByteString at `path`.
pub fn bytes_at(v: &Value, path: &[&str]) -> Vec<u8> {
    let i = item(v, path);
    assert_eq!(i["type"], "ByteString", "{path:?} in {v}");
    unhex(i["value"].as_str().expect("hex string"))
}

/// Replaces the direct child `tag` of `v` (the whole item, tag included).
pub fn replace_item(v: &mut Value, tag: &str, new: Value) {
    let i = v["value"]
        .as_array_mut()
        .and_then(|items| items.iter_mut().find(|i| i["tag"] == tag))
        .unwrap_or_else(|| panic!("no {tag} to replace"));
    *i = new;
}

/// A ByteString item.
pub fn byte_string(tag: &str, v: &[u8]) -> Value {
    json!({"tag": tag, "type": "ByteString", "value": hex(v)})
}

/// The shape of a TTLV tree: every (path of tags, type), structures typed
/// `Structure`.
pub fn shapes(v: &Value) -> BTreeSet<(String, String)> {
    fn walk(v: &Value, parent: &str, out: &mut BTreeSet<(String, String)>) {
        let tag = v["tag"].as_str().unwrap_or("?");
        let path = format!("{parent}/{tag}");
        let ty = v["type"].as_str().unwrap_or("Structure");
        out.insert((path.clone(), ty.to_owned()));
        if let Some(items) = v["value"].as_array() {
            for i in items {
                walk(i, &path, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(v, "", &mut out);
    out
}
