//! Through the KMS frontend: `kms-frontend` (the release build beside this
//! program) started in front of the bench's hsmd (by
//! [`crate::servers::KmsFrontend`]), and N HTTP/1.1 keep-alive
//! connections sending KMIP 2.1 JSON TTLV requests to `POST /kmip/2_1`, one
//! at a time each (D = 1: HTTP/1.1 without pipelining).
//!
//! The frontend runs without authentication as [`KMS_USER`] (every user is
//! an hsm_admin of the bench's hsmd, `hsm_admin = "*"`), listens on
//! 127.0.0.1 on a port of the kernel's choice, keeps its grants database in
//! the bench directory and its hsmd connections at its default
//! ([`HSMD_CONNECTIONS`]). Every answer is checked: status 200, the
//! expected response tag, and its result ([`check_hex`]).

use crate::cell::{Phase, ThreadStats};
use crate::workload::{Workload, AES_LABEL, EC_LABEL, RSA_LABEL};
use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::task::JoinHandle;

/// Connections the frontend keeps to hsmd: its default `--hsmd-connections`.
pub const HSMD_CONNECTIONS: usize = 4;
/// The KMS user of every request (`--default-username`).
pub const KMS_USER: &str = "bench";
/// Why the random workload has no frontend cell.
pub const RANDOM_NOTE: &str =
    "n/a: kms-frontend has no KMIP operation for random bytes (RNGRetrieve is not served)";
/// One HTTP/1.1 keep-alive connection to the frontend.
pub type Connection = SendRequest<Full<Bytes>>;

/// Opens `n` connections to the frontend at `addr` (`TCP_NODELAY`, as a
/// client that waits for each answer should).
pub async fn connect(addr: SocketAddr, n: usize) -> Result<Vec<Connection>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to kms-frontend at {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        out.push(sender);
    }
    Ok(out)
}

/// One workload as a KMIP request: the JSON body, built once, and what its
/// answer must be.
pub struct Kmip {
    body: Bytes,
    /// Tag of the response payload.
    response: &'static str,
    /// Tag of the result in it (a ByteString).
    result: &'static str,
    /// The workload, whose result length [`check_hex`] checks.
    workload: Workload,
}

/// The uid of the bench's HSM key that `workload` uses on `slot`.
pub fn hsm_uid(workload: Workload, slot: u64) -> String {
    let label = match workload {
        Workload::EcdsaP256 => EC_LABEL,
        Workload::Rsa2048 => RSA_LABEL,
        _ => AES_LABEL,
    };
    format!("hsm::{slot}::{label}")
}

/// The KMIP request of `workload` with the key `uid` (an HSM key's
/// `hsm::<slot>::<label>` or a KMS key's uid); None for random bytes,
/// which the frontend does not serve.
///
/// Encryptions name the mode (GCM, or CBC with PKCS5 padding) and the
/// algorithm; signatures send the 64-byte message as `Data` (the frontend
/// has hsmd hash it, as the hsmd mode does) with explicit parameters, so
/// the frontend does not ask hsmd for the key's kind first.
pub fn request(workload: Workload, uid: &str) -> Option<Kmip> {
    let data = hex::encode_upper(workload.input());
    let (op, params, response, result) = match workload {
        Workload::AesGcm64 | Workload::AesGcm1k | Workload::AesGcm64k => (
            "Encrypt",
            serde_json::json!([
                {"tag": "BlockCipherMode", "type": "Enumeration", "value": "GCM"},
                {"tag": "CryptographicAlgorithm", "type": "Enumeration", "value": "AES"},
            ]),
            "EncryptResponse",
            "Data",
        ),
        Workload::AesCbc1k => (
            "Encrypt",
            serde_json::json!([
                {"tag": "BlockCipherMode", "type": "Enumeration", "value": "CBC"},
                {"tag": "PaddingMethod", "type": "Enumeration", "value": "PKCS5"},
                {"tag": "CryptographicAlgorithm", "type": "Enumeration", "value": "AES"},
            ]),
            "EncryptResponse",
            "Data",
        ),
        Workload::EcdsaP256 => (
            "Sign",
            serde_json::json!([
                {"tag": "CryptographicAlgorithm", "type": "Enumeration", "value": "EC"},
                {"tag": "HashingAlgorithm", "type": "Enumeration", "value": "SHA256"},
            ]),
            "SignResponse",
            "SignatureData",
        ),
        Workload::Rsa2048 => (
            "Sign",
            serde_json::json!([
                {"tag": "PaddingMethod", "type": "Enumeration", "value": "PKCS1v15"},
                {"tag": "HashingAlgorithm", "type": "Enumeration", "value": "SHA256"},
            ]),
            "SignResponse",
            "SignatureData",
        ),
        Workload::Random32 => return None,
    };
    let body = serde_json::json!({"tag": op, "value": [
        {"tag": "UniqueIdentifier", "type": "TextString", "value": uid},
        {"tag": "CryptographicParameters", "value": params},
        {"tag": "Data", "type": "ByteString", "value": data},
    ]});
    Some(Kmip {
        body: Bytes::from(body.to_string()),
        response,
        result,
        workload,
    })
}

/// True when the frontend serves `workload`.
pub fn serves(workload: Workload) -> bool {
    workload != Workload::Random32
}

/// A KMIP response payload in JSON TTLV: its tag and its items whose
/// values are text or hex strings (borrowed from the body: no copies;
/// items of other types are skipped).
#[derive(serde::Deserialize)]
struct Answer<'a> {
    tag: &'a str,
    #[serde(borrow)]
    value: Vec<Item<'a>>,
}

#[derive(serde::Deserialize)]
struct Item<'a> {
    tag: &'a str,
    #[serde(borrow, default)]
    value: Option<&'a str>,
}

/// Checks a result given in hex: ciphertexts by their length and digits (as
/// cheaply as the hsmd mode checks its results), signatures decoded and
/// checked by [`Workload::check`].
fn check_hex(workload: Workload, hex: &str) -> bool {
    match workload.ciphertext_len() {
        Some(len) => hex.len() == 2 * len && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => hex::decode(hex).is_ok_and(|out| workload.check(&out)),
    }
}

/// POSTs `body` (a KMIP JSON TTLV request) to `/kmip/2_1` on `c`; the
/// answer's status and body.
///
/// Errors: the connection failed.
pub async fn post(c: &mut Connection, body: Bytes) -> Result<(StatusCode, Bytes)> {
    let request = hyper::Request::post("/kmip/2_1")
        .header(HOST, "127.0.0.1")
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(body))?;
    c.ready().await.context("kms-frontend connection")?;
    let response = c.send_request(request).await.context("kms-frontend")?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// The text member `result` of the KMIP payload `body`, which must be a
/// `response`.
///
/// Errors: `body` is not a KMIP payload, not a `response`, or lacks `result`.
pub fn member<'a>(body: &'a [u8], response: &str, result: &str) -> Result<&'a str> {
    let answer: Answer = serde_json::from_slice(body).with_context(|| {
        format!(
            "kms-frontend's answer is not a KMIP payload: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        )
    })?;
    if answer.tag != response {
        bail!("kms-frontend answered {} instead of {response}", answer.tag);
    }
    answer
        .value
        .iter()
        .find(|i| i.tag == result)
        .and_then(|i| i.value)
        .ok_or_else(|| anyhow!("{response} has no {result}"))
}

/// An error status as one line: the status and the start of the body.
pub fn status_line(status: StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    format!(
        "HTTP {status}: {}",
        text.chars().take(300).collect::<String>()
    )
}

impl Kmip {
    /// Sends the request on `c` and checks the answer. `Ok(None)`: the
    /// operation succeeded; `Ok(Some(message))`: the frontend answered with
    /// an error status (counted as a failed operation); `Err`: the
    /// connection failed or a 200 answer is not the expected one.
    pub async fn send(&self, c: &mut Connection) -> Result<Option<String>> {
        let (status, body) = post(c, self.body.clone()).await?;
        if status != StatusCode::OK {
            return Ok(Some(status_line(status, &body)));
        }
        let result = member(&body, self.response, self.result)?;
        if !check_hex(self.workload, result) {
            bail!(
                "{} via kms-frontend gave a wrong result ({} hex digits)",
                self.workload.name(),
                result.len()
            );
        }
        Ok(None)
    }
}

/// A lane: one connection sending requests one after the other; gives the
/// connection back with its statistics.
pub type Lane = JoinHandle<Result<(Connection, ThreadStats)>>;

/// Starts one lane per connection, each sending `request` until `phase`
/// says stop.
pub fn spawn(
    rt: &tokio::runtime::Runtime,
    connections: Vec<Connection>,
    request: Arc<Kmip>,
    phase: Arc<Phase>,
) -> Vec<Lane> {
    connections
        .into_iter()
        .map(|mut c| {
            let (request, phase) = (request.clone(), phase.clone());
            rt.spawn(async move {
                let mut stats = ThreadStats::new();
                let mut first = true;
                while !phase.stopped() {
                    let t0 = Instant::now();
                    let out = request.send(&mut c).await?;
                    let elapsed = t0.elapsed();
                    match out {
                        None => stats.record(phase.measuring(), elapsed),
                        // The first request shows whether the set-up works at all.
                        Some(e) if first => {
                            bail!("{} via kms-frontend: {e}", request.workload.name())
                        }
                        Some(e) => stats.error(phase.measuring(), &e),
                    }
                    first = false;
                }
                Ok((c, stats))
            })
        })
        .collect()
}
