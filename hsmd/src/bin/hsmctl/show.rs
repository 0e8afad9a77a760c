//! How hsmctl prints: terminal-safe text, JSON, key lines, PEM.

use anyhow::Result;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hsmd_protocol::KeyInfo;
use serde::Serialize;

/// Text from hsmd made safe for a terminal: control and invisible
/// formatting characters are shown escaped (`\u{1b}`), never raw.
pub(crate) fn shown(text: &str) -> String {
    text.chars()
        .map(|c| {
            if hsmd_protocol::uid::needs_escape(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

pub(crate) fn print_json<T: Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// The protocol's spelling of an enum value (`rsa_private`, `encrypt`, `p256`).
pub(crate) fn wire_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub(crate) fn key_line(k: &KeyInfo) -> String {
    let size = match k.curve {
        Some(c) => wire_name(&c),
        None => format!("{} bits", k.bits),
    };
    let flags = match (k.sensitive, k.extractable) {
        (true, _) => "sensitive",
        (false, true) => "extractable",
        (false, false) => "non-extractable",
    };
    let usages: Vec<String> = k.usages.iter().map(wire_name).collect();
    format!(
        "{:<40} {:<12} {:<10} {:<16} {}",
        shown(&k.uid),
        wire_name(&k.kind),
        size,
        flags,
        usages.join(",")
    )
}

pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----"));
    out
}
