//! A JWT provider's public keys: a JSON Web Key Set (RFC 7517 section 5)
//! read from an `https://` URL or a local file.
//!
//! Only signature keys are kept: RSA, EC P-256 / P-384 and Ed25519. Keys
//! marked `"use": "enc"`, symmetric (`oct`) keys, other curves and keys that
//! do not parse are skipped (logged at debug), so that one odd key does not
//! make a provider unusable.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How long fetching a JWKS may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest JWKS document accepted, bytes.
pub const MAX_JWKS_BYTES: usize = 1 << 20;

/// What a key verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA: RS256/384/512, PS256/384/512.
    Rsa,
    /// EC P-256: ES256.
    P256,
    /// EC P-384: ES384.
    P384,
    /// Ed25519: EdDSA.
    Ed25519,
}

impl KeyKind {
    /// True when a key of this kind verifies `alg`.
    pub fn verifies(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        matches!(
            (self, alg),
            (KeyKind::Rsa, RS256 | RS384 | RS512 | PS256 | PS384 | PS512)
                | (KeyKind::P256, ES256)
                | (KeyKind::P384, ES384)
                | (KeyKind::Ed25519, EdDSA)
        )
    }
}

/// One signature verification key of a JWKS.
#[derive(Clone)]
pub struct VerificationKey {
    /// `kid` (RFC 7517 section 4.5), when the key has one.
    pub kid: Option<String>,
    /// What it verifies.
    pub kind: KeyKind,
    /// `alg` (RFC 7517 section 4.4) the key is restricted to, when given.
    pub alg: Option<Algorithm>,
    /// The key.
    pub key: DecodingKey,
}

impl VerificationKey {
    /// True when this key may verify a signature made with `alg`.
    pub fn accepts(&self, alg: Algorithm) -> bool {
        self.kind.verifies(alg) && self.alg.is_none_or(|a| a == alg)
    }
}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// The usable keys of a JWKS.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<Arc<VerificationKey>>,
}

/// The result of looking a key up by `kid`.
#[derive(Debug)]
pub enum Lookup {
    /// The key.
    Found(Arc<VerificationKey>),
    /// No key has that `kid`.
    UnknownKid,
    /// The token has no `kid` and the set holds this many keys (not one).
    Ambiguous(usize),
}

impl KeySet {
    /// Parses a JWKS document (`{"keys": [...]}`), keeping the usable keys.
    ///
    /// Errors: a sentence saying why the document is not a JWKS or holds no
    /// usable key.
    pub fn parse(document: &[u8]) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document = serde_json::from_slice(document).map_err(|e| {
            format!(
                "it is not a JWKS (a JSON object with a \"keys\" array, RFC 7517 section 5): {e}"
            )
        })?;
        let total = document.keys.len();
        let keys: Vec<_> = document
            .keys
            .into_iter()
            .enumerate()
            .filter_map(|(index, value)| match usable_key(value) {
                Ok(key) => Some(Arc::new(key)),
                Err(why) => {
                    tracing::debug!("JWKS key #{index} skipped: {why}");
                    None
                }
            })
            .collect();
        if keys.is_empty() {
            return Err(format!(
                "it holds no usable signature key ({total} key(s); accepted: RSA, EC P-256, EC P-384, Ed25519 public keys not marked \"use\": \"enc\")"
            ));
        }
        Ok(Self { keys })
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key of `kid`; without a `kid`, the only key of the set.
    pub fn lookup(&self, kid: Option<&str>) -> Lookup {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .map_or(Lookup::UnknownKid, |k| Lookup::Found(Arc::clone(k))),
            None => match self.keys.as_slice() {
                [only] => Lookup::Found(Arc::clone(only)),
                keys => Lookup::Ambiguous(keys.len()),
            },
        }
    }
}

fn usable_key(value: serde_json::Value) -> Result<VerificationKey, String> {
    let jwk: Jwk =
        serde_json::from_value(value).map_err(|e| format!("not a supported JWK: {e}"))?;
    let kid = jwk.common.key_id.clone();
    if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
        return Err(format!("{kid:?} is an encryption key (\"use\": \"enc\")"));
    }
    let kind = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => KeyKind::Rsa,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => KeyKind::P256,
            EllipticCurve::P384 => KeyKind::P384,
            ref other => return Err(format!("{kid:?}: EC curve {other:?} is not supported")),
        },
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            KeyKind::Ed25519
        }
        AlgorithmParameters::OctetKeyPair(okp) => {
            return Err(format!(
                "{kid:?}: OKP curve {:?} is not supported",
                okp.curve
            ))
        }
        AlgorithmParameters::OctetKey(_) => {
            return Err(format!("{kid:?} is a symmetric key (\"kty\": \"oct\")"))
        }
    };
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(alg) => Some(
            signature_algorithm(alg)
                .filter(|a| kind.verifies(*a))
                .ok_or_else(|| {
                    format!("{kid:?}: \"alg\" {alg:?} does not fit a {kind:?} signature key")
                })?,
        ),
    };
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("{kid:?} does not parse: {e}"))?;
    Ok(VerificationKey {
        kid,
        kind,
        alg,
        key,
    })
}

fn signature_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// Reads the JWKS at `uri`: an `https://` URL (fetched with `http`, at most
/// [`FETCH_TIMEOUT`] and [`MAX_JWKS_BYTES`]) or a local file path.
///
/// Errors: a sentence saying what failed (never the document itself).
pub async fn load(uri: &str, http: &reqwest::Client) -> Result<KeySet, String> {
    let document = if uri.starts_with("https://") {
        fetch(uri, http).await?
    } else if uri.contains("://") {
        return Err("the JWKS URI must be an https:// URL or a local file path".into());
    } else {
        let path = uri.to_owned();
        tokio::task::spawn_blocking(move || std::fs::read(path))
            .await
            .map_err(|e| format!("reading the file failed: {e}"))?
            .map_err(|e| format!("cannot read the file: {e}"))?
    };
    KeySet::parse(&document)
}

async fn fetch(url: &str, http: &reqwest::Client) -> Result<Vec<u8>, String> {
    let mut response = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(FETCH_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("fetching it failed: {}", e.without_url()))?;
    if !response.status().is_success() {
        return Err(format!("the server answered HTTP {}", response.status()));
    }
    let mut document = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading it failed: {}", e.without_url()))?
    {
        if document.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(format!("it is larger than {MAX_JWKS_BYTES} bytes"));
        }
        document.extend_from_slice(&chunk);
    }
    Ok(document)
}
