//! The soak's clients over HTTP: KMIP 2.1 JSON TTLV to kms-frontend
//! (`POST /kmip/2_1`, one request at a time per keep-alive connection).
//! Admins Create (or CreateKeyPair), use once and Destroy keys of their
//! own; users Encrypt, Sign and Locate with the bench keys. Every answer is
//! checked: status 200, the response tag, and its result.

use super::tally::{Failure, Tally};
use crate::frontend::Connection;
use crate::workload::{AES_LABEL, EC_LABEL, RSA_LABEL};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HOST};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes encrypted or signed per request.
const DATA_LEN: usize = 64;
/// Pause before reconnecting after a lost connection (pacing, not waiting
/// for anything).
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);

/// One client: where, which slot, its number, the shared tally, when to stop.
#[derive(Clone)]
pub struct Lane {
    /// kms-frontend's address.
    pub addr: SocketAddr,
    /// The bench token's slot.
    pub slot: u64,
    /// This client's number (labels of its keys, where it starts in the mix).
    pub n: usize,
    /// Where results go.
    pub tally: Arc<Tally>,
    /// When to stop (after the operation or round under way).
    pub deadline: Instant,
}

fn text(tag: &str, value: &str) -> Value {
    json!({"tag": tag, "type": "TextString", "value": value})
}

fn enumeration(tag: &str, value: &str) -> Value {
    json!({"tag": tag, "type": "Enumeration", "value": value})
}

fn data_hex() -> String {
    (0..DATA_LEN).map(|i| format!("{:02X}", i as u8)).collect()
}

/// What an answer must be: its response tag, and a check of its items.
type Check = fn(&[Value]) -> Result<(), String>;

fn item<'a>(items: &'a [Value], tag: &str) -> Option<&'a str> {
    items
        .iter()
        .find(|i| i["tag"] == tag)
        .and_then(|i| i["value"].as_str())
}

fn has_uid(items: &[Value]) -> Result<(), String> {
    match item(items, "UniqueIdentifier") {
        Some(_) => Ok(()),
        None => Err("no UniqueIdentifier".into()),
    }
}

fn encrypted(items: &[Value]) -> Result<(), String> {
    match item(items, "Data").map(str::len) {
        Some(n) if n == 2 * DATA_LEN => Ok(()),
        other => Err(format!("Data of {other:?} hex digits")),
    }
}

fn signed_ec(items: &[Value]) -> Result<(), String> {
    match item(items, "SignatureData").map(str::len) {
        Some(n) if (16..=144).contains(&n) => Ok(()),
        other => Err(format!("SignatureData of {other:?} hex digits")),
    }
}

fn signed_rsa(items: &[Value]) -> Result<(), String> {
    match item(items, "SignatureData").map(str::len) {
        Some(512) => Ok(()),
        other => Err(format!("SignatureData of {other:?} hex digits")),
    }
}

impl Lane {
    fn uid(&self, label: &str) -> String {
        format!("hsm::{}::{label}", self.slot)
    }

    async fn connect(&self) -> Option<Connection> {
        loop {
            match crate::frontend::connect(self.addr, 1).await {
                Ok(mut c) if !c.is_empty() => return Some(c.remove(0)),
                Ok(_) => {}
                Err(e) => self.tally.record(
                    "kmip connect",
                    &Err(Failure::new("HTTP connection", format!("{e:#}"))),
                ),
            }
            if Instant::now() >= self.deadline {
                return None;
            }
            tokio::time::sleep(RECONNECT_PAUSE).await;
        }
    }

    /// Sends `body`, expects `response` whose items pass `check`; counts
    /// it as `op`. False when the connection must be replaced.
    async fn call(
        &self,
        c: &mut Connection,
        op: &'static str,
        body: &Value,
        response: &str,
        check: Check,
    ) -> (bool, bool) {
        let r = send(c, body, response, check).await.map(|_| ());
        let ok = r.is_ok();
        let keep = !matches!(&r, Err(f) if f.reconnect);
        self.tally.record(op, &r);
        (keep, ok)
    }

    /// A user: Encrypt (AES-GCM), Sign (ECDSA, RSA) with the bench keys, and
    /// Locate, in a fixed mix, until the deadline.
    pub async fn user(self) {
        let Some(mut c) = self.connect().await else {
            return;
        };
        let mut i = self.n;
        while Instant::now() < self.deadline {
            i += 1;
            let (keep, _) = match i % 6 {
                1 => {
                    let body = self.sign(EC_LABEL, true);
                    self.call(&mut c, "kmip Sign ecdsa", &body, "SignResponse", signed_ec)
                        .await
                }
                3 => {
                    let body = self.sign(RSA_LABEL, false);
                    self.call(&mut c, "kmip Sign rsa", &body, "SignResponse", signed_rsa)
                        .await
                }
                5 => {
                    let body =
                        json!({"tag": "Locate", "value": [{"tag": "Attributes", "value": []}]});
                    let aes = self.uid(AES_LABEL);
                    let r = send(&mut c, &body, "LocateResponse", |_| Ok(())).await;
                    let r = r.and_then(|items| {
                        match items
                            .iter()
                            .any(|i| i["value"].as_str() == Some(aes.as_str()))
                        {
                            true => Ok(()),
                            false => Err(Failure::new(
                                "wrong answer",
                                format!("Locate without {aes}"),
                            )),
                        }
                    });
                    let keep = !matches!(&r, Err(f) if f.reconnect);
                    self.tally.record("kmip Locate", &r.map(|_| ()));
                    (keep, true)
                }
                _ => {
                    let body = self.encrypt(AES_LABEL);
                    self.call(&mut c, "kmip Encrypt", &body, "EncryptResponse", encrypted)
                        .await
                }
            };
            if !keep {
                match self.connect().await {
                    Some(new) => c = new,
                    None => return,
                }
            }
        }
    }

    /// An admin: rounds of Create, Encrypt once, Destroy (an AES key, every
    /// eighth round CreateKeyPair, Sign, Destroy with Cascade of an EC P-256
    /// pair), each with a uid of its own, until the deadline.
    pub async fn admin(self) {
        let Some(mut c) = self.connect().await else {
            return;
        };
        let mut round = 0usize;
        while Instant::now() < self.deadline {
            round += 1;
            let label = format!("soak-h{}-{round}", self.n);
            let uid = self.uid(&label);
            let ec = round.is_multiple_of(8);
            let (keep, made) = if ec {
                let body = json!({"tag": "CreateKeyPair", "value": [
                    {"tag": "CommonAttributes", "value": [
                        enumeration("CryptographicAlgorithm", "EC"),
                        enumeration("RecommendedCurve", "P256"),
                    ]},
                    {"tag": "PrivateKeyAttributes", "value": [text("UniqueIdentifier", &uid)]},
                    {"tag": "PublicKeyAttributes", "value": []},
                ]});
                self.call(
                    &mut c,
                    "kmip CreateKeyPair",
                    &body,
                    "CreateKeyPairResponse",
                    |_| Ok(()),
                )
                .await
            } else {
                let body = json!({"tag": "Create", "value": [
                    enumeration("ObjectType", "SymmetricKey"),
                    {"tag": "Attributes", "value": [
                        enumeration("CryptographicAlgorithm", "AES"),
                        {"tag": "CryptographicLength", "type": "Integer", "value": 128},
                        {"tag": "CryptographicUsageMask", "type": "Integer", "value": 12},
                        text("UniqueIdentifier", &uid),
                    ]},
                ]});
                self.call(&mut c, "kmip Create", &body, "CreateResponse", has_uid)
                    .await
            };
            let mut keep = keep;
            if keep && made {
                keep = if ec {
                    let body = self.sign(&label, true);
                    self.call(&mut c, "kmip Sign ecdsa", &body, "SignResponse", signed_ec)
                        .await
                        .0
                } else {
                    let body = self.encrypt(&label);
                    self.call(&mut c, "kmip Encrypt", &body, "EncryptResponse", encrypted)
                        .await
                        .0
                };
                if keep {
                    let body = json!({"tag": "Destroy", "value": [
                        text("UniqueIdentifier", &uid),
                        {"tag": "Cascade", "type": "Boolean", "value": true},
                    ]});
                    keep = self
                        .call(&mut c, "kmip Destroy", &body, "DestroyResponse", has_uid)
                        .await
                        .0;
                }
            }
            if !keep {
                match self.connect().await {
                    Some(new) => c = new,
                    None => return,
                }
            }
        }
    }

    fn encrypt(&self, label: &str) -> Value {
        json!({"tag": "Encrypt", "value": [
            text("UniqueIdentifier", &self.uid(label)),
            {"tag": "CryptographicParameters", "value": [
                enumeration("BlockCipherMode", "GCM"),
                enumeration("CryptographicAlgorithm", "AES"),
            ]},
            {"tag": "Data", "type": "ByteString", "value": data_hex()},
        ]})
    }

    fn sign(&self, label: &str, ec: bool) -> Value {
        let params = match ec {
            true => json!([
                enumeration("CryptographicAlgorithm", "EC"),
                enumeration("HashingAlgorithm", "SHA256"),
            ]),
            false => json!([
                enumeration("PaddingMethod", "PKCS1v15"),
                enumeration("HashingAlgorithm", "SHA256"),
            ]),
        };
        json!({"tag": "Sign", "value": [
            text("UniqueIdentifier", &self.uid(label)),
            {"tag": "CryptographicParameters", "value": params},
            {"tag": "Data", "type": "ByteString", "value": data_hex()},
        ]})
    }
}

/// Posts `body` on `c`; the answer must be 200 with payload `response`
/// whose items pass `check`. Returns the items.
async fn send(
    c: &mut Connection,
    body: &Value,
    response: &str,
    check: Check,
) -> Result<Vec<Value>, Failure> {
    let lost = |e: String| Failure {
        code: "HTTP connection".into(),
        message: e,
        reconnect: true,
    };
    let request = hyper::Request::post("/kmip/2_1")
        .header(HOST, "127.0.0.1")
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| Failure::new("request", e.to_string()))?;
    c.ready().await.map_err(|e| lost(e.to_string()))?;
    let answer = c
        .send_request(request)
        .await
        .map_err(|e| lost(e.to_string()))?;
    let status = answer.status();
    let bytes = answer
        .into_body()
        .collect()
        .await
        .map_err(|e| lost(e.to_string()))?
        .to_bytes();
    if !status.is_success() {
        return Err(Failure::new(
            format!("HTTP {}", status.as_u16()),
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
    }
    let wrong = |m: String| Failure::new("wrong answer", m);
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
        wrong(format!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        ))
    })?;
    if v["tag"] != response {
        return Err(wrong(format!("{} instead of {response}", v["tag"])));
    }
    let items = match v["value"].as_array() {
        Some(items) => items.clone(),
        None => return Err(wrong(format!("{response} without items"))),
    };
    check(&items).map_err(|m| wrong(format!("{response}: {m}")))?;
    Ok(items)
}
