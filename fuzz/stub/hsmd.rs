//! An hsmd stand-in for the `kmip_operations` fuzz target: speaks the
//! protocol (docs/protocol.md) on a Unix socket and answers every operation
//! with a well-formed result, so that the frontend's KMIP operations can be
//! fuzzed without a token. Keys exist by name: a label holding `rsa` is an
//! RSA key, `ec` a P-256 key, anything else AES-256; `_pk` at its end is the
//! public half; a label holding `missing` does not exist.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hsmd_protocol::{frame_codec, DEFAULT_MAX_FRAME_LEN};
use serde_json::{json, Value};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::codec::Framed;

const RSA_SPKI: &[u8] = include_bytes!("rsa-spki.der");
const RSA_PKCS8: &[u8] = include_bytes!("rsa-pkcs8.der");
const EC_SPKI: &[u8] = include_bytes!("ec-spki.der");
const EC_PKCS8: &[u8] = include_bytes!("ec-pkcs8.der");

/// Accepts connections forever.
pub async fn serve(listener: UnixListener) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(connection(stream));
    }
}

async fn connection(stream: UnixStream) {
    let mut framed = Framed::new(stream, frame_codec(DEFAULT_MAX_FRAME_LEN));
    if framed.next().await.is_none() {
        return;
    }
    let hello = json!({"hello": {
        "version": 1, "server": "hsmd-stub/0", "model": "smartcardhsm", "slots": [0],
        "admins": ["admin"], "max_frame_len": DEFAULT_MAX_FRAME_LEN,
        "identity": "kms", "may_act_as_others": true,
    }});
    if framed.send(Bytes::from(hello.to_string())).await.is_err() {
        return;
    }
    while let Some(Ok(frame)) = framed.next().await {
        let Ok(req) = serde_json::from_slice::<Value>(&frame) else {
            return;
        };
        let id = req["id"].as_u64().unwrap_or_default();
        let op = req["op"].as_str().unwrap_or_default();
        let answer = match answer(op, &req["params"]) {
            Ok(result) => json!({"id": id, "result": result}),
            Err((code, message)) => {
                json!({"id": id, "error": {"code": code, "message": message}})
            }
        };
        if framed.send(Bytes::from(answer.to_string())).await.is_err() {
            return;
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn key(uid: &str) -> Result<Value, (&'static str, String)> {
    let mut parts = uid.splitn(3, "::");
    let (Some("hsm"), Some(slot), Some(label)) = (parts.next(), parts.next(), parts.next()) else {
        return Err((
            "bad_request",
            format!("uid {uid:?} is not hsm::<slot>::<label>"),
        ));
    };
    let Ok(slot) = slot.parse::<u64>() else {
        return Err(("bad_request", "slot is not a number".into()));
    };
    if label.contains("missing") {
        return Err(("not_found", format!("no key {uid}")));
    }
    Ok(info(slot, label))
}

fn info(slot: u64, label: &str) -> Value {
    let family = if label.contains("rsa") {
        "rsa"
    } else if label.contains("ec") {
        "ec"
    } else {
        "aes"
    };
    info_as(slot, label, family, label.ends_with("_pk"))
}

fn info_as(slot: u64, label: &str, family: &str, public: bool) -> Value {
    let (kind, bits, curve, usages) = if family == "rsa" {
        if public {
            ("rsa_public", 1024, None, json!(["encrypt", "verify"]))
        } else {
            ("rsa_private", 1024, None, json!(["decrypt", "sign"]))
        }
    } else if family == "ec" {
        if public {
            ("ec_public", 256, Some("p256"), json!(["verify"]))
        } else {
            ("ec_private", 256, Some("p256"), json!(["sign"]))
        }
    } else {
        ("aes", 256, None, json!(["encrypt", "decrypt"]))
    };
    json!({
        "uid": format!("hsm::{slot}::{label}"), "slot": slot, "label": label, "kind": kind,
        "bits": bits, "curve": curve, "sensitive": !public, "extractable": public,
        "usages": usages,
    })
}

fn answer(op: &str, p: &Value) -> Result<Value, (&'static str, String)> {
    let uid = p["uid"].as_str().unwrap_or_default();
    Ok(match op {
        "status" => json!({
            "model": "smartcardhsm",
            "library": {"path": "/stub", "manufacturer": "stub", "description": "stub", "version": "0"},
            "slots": [],
        }),
        "list_keys" => json!({"keys": [
            info(0, "aes1"), info(0, "rsa1"), info(0, "rsa1_pk"), info(0, "ec1"), info(0, "ec1_pk"),
        ]}),
        "get_key" => key(uid)?,
        "export" => {
            let k = key(uid)?;
            let (format, data) = match k["kind"].as_str() {
                Some("rsa_public") => ("spki_der", RSA_SPKI.to_vec()),
                Some("rsa_private") => ("pkcs8_der", RSA_PKCS8.to_vec()),
                Some("ec_public") => ("spki_der", EC_SPKI.to_vec()),
                Some("ec_private") => ("pkcs8_der", EC_PKCS8.to_vec()),
                _ => ("raw", vec![7; 32]),
            };
            json!({"uid": uid, "format": format, "data": b64(&data)})
        }
        "destroy" => json!({"uid": uid}),
        "generate_key" => info(
            p["slot"].as_u64().unwrap_or_default(),
            p["label"].as_str().unwrap_or_default(),
        ),
        "generate_key_pair" => {
            let slot = p["slot"].as_u64().unwrap_or_default();
            let label = p["label"].as_str().unwrap_or_default();
            let family = if p["algorithm"].as_str() == Some("rsa") {
                "rsa"
            } else {
                "ec"
            };
            json!({
                "private": info_as(slot, label, family, false),
                "public": info_as(slot, &format!("{label}_pk"), family, true),
            })
        }
        "encrypt" => {
            key(uid)?;
            json!({"ciphertext": b64(&[1; 32]), "iv": b64(&[2; 12]), "tag": b64(&[3; 16])})
        }
        "decrypt" => {
            key(uid)?;
            json!({"plaintext": b64(b"plaintext")})
        }
        "sign" => {
            key(uid)?;
            json!({"signature": b64(&[4; 64])})
        }
        "verify" => {
            key(uid)?;
            json!({"valid": true})
        }
        "random" => json!({"bytes": b64(&[5; 32])}),
        other => return Err(("bad_request", format!("op: unknown operation {other:?}"))),
    })
}
