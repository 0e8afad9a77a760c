//! `Authorization: Bearer <JWT>` (RFC 6750 section 2.1) verification against
//! the configured JWT providers (`--jwt-auth-provider ISSUER,JWKS_URI[,AUDIENCE]`).
//!
//! A token is routed to its provider by its (unverified) `iss` claim, then
//! fully verified: signature with the provider's key named by `kid`
//! (RFC 7515 section 4.1.4), asymmetric algorithms only; `iss`
//! (RFC 7519 section 4.1.1); `exp`, required (section 4.1.4); `nbf` when
//! present (section 4.1.5); `aud` when the provider has an audience
//! (section 4.1.3). Clock skew of [`LEEWAY_SECONDS`] is tolerated. The user
//! is the `email` claim, else `sub` (section 4.1.2).

use super::bearer::bearer_token;
use super::jwks::{self, KeySet, Lookup};
use super::AuthError;
use crate::config::JwtProvider;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::Deserialize;
use serde_json::Value;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// A provider's JWKS is fetched again for an unknown `kid` at most this often.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// Clock skew tolerated on `exp` and `nbf`, seconds.
pub const LEEWAY_SECONDS: u64 = 60;

/// Signature algorithms accepted (never `none` nor HMAC: a JWKS holds public keys).
const ACCEPTED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Verifies bearer JWTs against the configured providers.
pub struct JwtVerifier {
    providers: Vec<Provider>,
    http: reqwest::Client,
}

struct Provider {
    config: JwtProvider,
    keys: RwLock<Arc<KeySet>>,
    /// When the JWKS was last fetched; locked while fetching again.
    fetched: tokio::sync::Mutex<Instant>,
    refetch_interval: Duration,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field(
                "providers",
                &self.providers.iter().map(|p| &p.config).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// The claims read from a token.
#[derive(Deserialize)]
struct Claims {
    iss: Option<Value>,
    exp: Option<Value>,
    email: Option<Value>,
    sub: Option<Value>,
}

impl JwtVerifier {
    /// Loads the JWKS of every provider.
    ///
    /// Errors: [`AuthError::Setup`] naming the provider, its JWKS URI and why
    /// it cannot be used.
    pub async fn new(providers: &[JwtProvider]) -> Result<Self, AuthError> {
        let http = reqwest::Client::builder()
            .https_only(true)
            .timeout(jwks::FETCH_TIMEOUT)
            .build()
            .map_err(|e| AuthError::Setup(format!("cannot set up the JWKS HTTP client: {e}")))?;
        let mut loaded = Vec::with_capacity(providers.len());
        for config in providers {
            let keys = jwks::load(&config.jwks_uri, &http).await.map_err(|why| {
                AuthError::Setup(format!(
                    "JWT provider {:?}: cannot use its JWKS {:?}: {why}",
                    config.issuer, config.jwks_uri
                ))
            })?;
            tracing::debug!(
                "JWT provider {:?}: {} key(s) from {:?}",
                config.issuer,
                keys.len(),
                config.jwks_uri
            );
            loaded.push(Provider {
                config: config.clone(),
                keys: RwLock::new(Arc::new(keys)),
                fetched: tokio::sync::Mutex::new(Instant::now()),
                refetch_interval: REFETCH_INTERVAL,
            });
        }
        Ok(Self {
            providers: loaded,
            http,
        })
    }

    /// Tests: fetch JWKS again for unknown keys at most every `interval`.
    #[cfg(test)]
    pub(crate) fn set_refetch_interval(&mut self, interval: Duration) {
        for provider in &mut self.providers {
            provider.refetch_interval = interval;
        }
    }

    /// The issuers, for the start-up log, e.g. `"https://idp/" (audience "kms")`.
    pub fn describe(&self) -> String {
        let providers: Vec<String> = self
            .providers
            .iter()
            .map(|p| match &p.config.audience {
                Some(audience) => format!("{:?} (audience {audience:?})", p.config.issuer),
                None => format!("{:?}", p.config.issuer),
            })
            .collect();
        providers.join(", ")
    }

    /// The user of the `Authorization` header value `authorization`.
    ///
    /// Errors: [`AuthError::Invalid`] with the precise reason: not
    /// `Bearer <JWT>`, malformed, unaccepted algorithm, wrong issuer, unknown
    /// key id, bad signature, expired, not yet valid, wrong audience, no user
    /// claim.
    pub async fn verify(&self, authorization: &str) -> Result<String, AuthError> {
        let token = bearer_token(authorization)?;
        let header = jsonwebtoken::decode_header(token).map_err(|e| {
            invalid(format!(
                "the bearer token is not a JWT (RFC 7519 section 7.2): {}",
                malformed(&e)
            ))
        })?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(invalid(format!(
                "the token's algorithm {:?} is not accepted (accepted: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)",
                header.alg
            )));
        }
        let unverified = peek(token, header.alg)?;
        let issuer = match &unverified.iss {
            Some(Value::String(issuer)) => issuer.as_str(),
            Some(_) => {
                return Err(invalid(
                    "the token's `iss` claim is not a string (RFC 7519 section 4.1.1)".into(),
                ))
            }
            None => {
                return Err(invalid(
                    "the token has no `iss` claim (RFC 7519 section 4.1.1)".into(),
                ))
            }
        };
        let mut errors = Vec::new();
        for provider in self.providers.iter().filter(|p| p.config.issuer == issuer) {
            match provider
                .verify(token, &header, &unverified, &self.http)
                .await
            {
                Ok(user) => return Ok(user),
                Err(why) => errors.push(why),
            }
        }
        if errors.is_empty() {
            let expected: Vec<String> = self
                .providers
                .iter()
                .map(|p| format!("{:?}", p.config.issuer))
                .collect();
            return Err(invalid(format!(
                "wrong issuer {:?}: expected {}",
                shorten(issuer),
                expected.join(" or ")
            )));
        }
        Err(invalid(errors.join("; ")))
    }
}

impl Provider {
    async fn verify(
        &self,
        token: &str,
        header: &Header,
        unverified: &Claims,
        http: &reqwest::Client,
    ) -> Result<String, String> {
        let kid = header.kid.as_deref();
        let key = match self.lookup(kid) {
            Lookup::UnknownKid => {
                self.refetch(http).await;
                self.lookup(kid)
            }
            found => found,
        };
        let key = match key {
            Lookup::Found(key) => key,
            Lookup::UnknownKid => {
                return Err(format!(
                    "unknown key id {:?}: the JWKS of issuer {:?} has no such key",
                    shorten(kid.unwrap_or_default()),
                    self.config.issuer
                ))
            }
            Lookup::Ambiguous(n) => {
                return Err(format!(
                    "the token has no key id (`kid`, RFC 7515 section 4.1.4) and the JWKS of issuer {:?} holds {n} keys",
                    self.config.issuer
                ))
            }
        };
        if !key.accepts(header.alg) {
            return Err(format!(
                "the key {:?} of issuer {:?} ({:?}) cannot verify algorithm {:?}",
                key.kid.as_deref().unwrap_or(""),
                self.config.issuer,
                key.alg
                    .map_or_else(|| format!("{:?}", key.kind), |a| format!("{a:?}")),
                header.alg
            ));
        }
        let claims = self
            .decode(token, header.alg, &key.key)
            .map_err(|e| self.explain(e.kind(), unverified, key.kid.as_deref()))?;
        user(&claims)
    }

    fn lookup(&self, kid: Option<&str>) -> Lookup {
        let keys = Arc::clone(&self.keys.read().unwrap_or_else(|e| e.into_inner()));
        keys.lookup(kid)
    }

    /// Fetches the JWKS again unless it was fetched less than
    /// `refetch_interval` ago; keeps the old keys when that fails.
    async fn refetch(&self, http: &reqwest::Client) {
        let mut fetched = self.fetched.lock().await;
        if fetched.elapsed() < self.refetch_interval {
            return;
        }
        *fetched = Instant::now();
        match jwks::load(&self.config.jwks_uri, http).await {
            Ok(keys) => {
                tracing::info!(
                    "JWT provider {:?}: JWKS fetched again, {} key(s)",
                    self.config.issuer,
                    keys.len()
                );
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
            }
            Err(why) => tracing::warn!(
                "JWT provider {:?}: cannot fetch its JWKS {:?} again, keeping the old keys: {why}",
                self.config.issuer,
                self.config.jwks_uri
            ),
        }
    }

    fn decode(
        &self,
        token: &str,
        alg: Algorithm,
        key: &DecodingKey,
    ) -> Result<Claims, jsonwebtoken::errors::Error> {
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.config.issuer]);
        let mut required = vec!["exp", "iss"];
        match &self.config.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        jsonwebtoken::decode::<Claims>(token, key, &validation).map(|data| data.claims)
    }

    fn explain(&self, kind: &ErrorKind, unverified: &Claims, kid: Option<&str>) -> String {
        let issuer = &self.config.issuer;
        match kind {
            ErrorKind::InvalidSignature => format!(
                "bad signature: the token was not signed by the key {:?} of issuer {issuer:?}",
                kid.unwrap_or("")
            ),
            ErrorKind::ExpiredSignature => match unverified.exp.as_ref().and_then(Value::as_u64) {
                Some(exp) => format!(
                    "the token expired at {} (`exp`, RFC 7519 section 4.1.4); it is now {}",
                    rfc3339(exp),
                    rfc3339(jsonwebtoken::get_current_timestamp())
                ),
                None => "the token has expired (`exp`, RFC 7519 section 4.1.4)".into(),
            },
            ErrorKind::ImmatureSignature => {
                "the token is not valid yet (`nbf`, RFC 7519 section 4.1.5)".into()
            }
            ErrorKind::InvalidIssuer => format!("wrong issuer: expected {issuer:?}"),
            ErrorKind::InvalidAudience => format!(
                "wrong audience: expected {:?} (`aud`, RFC 7519 section 4.1.3)",
                self.config.audience.as_deref().unwrap_or("")
            ),
            ErrorKind::MissingRequiredClaim(claim) => {
                let section = match claim.as_str() {
                    "exp" => "4.1.4",
                    "aud" => "4.1.3",
                    "iss" => "4.1.1",
                    _ => "4.1",
                };
                format!("the token has no valid `{claim}` claim (RFC 7519 section {section}), which issuer {issuer:?} requires")
            }
            ErrorKind::InvalidAlgorithm => format!(
                "the token's algorithm does not match the key {:?} of issuer {issuer:?}",
                kid.unwrap_or("")
            ),
            ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat => format!(
                "the key {:?} of issuer {issuer:?} is unusable",
                kid.unwrap_or("")
            ),
            other => format!("the token is malformed: {}", malformed_kind(other)),
        }
    }
}

/// The claims of `token` before verification, to route it to its provider.
fn peek(token: &str, alg: Algorithm) -> Result<Claims, AuthError> {
    let mut validation = Validation::new(alg);
    validation.insecure_disable_signature_validation();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&[]), &validation)
        .map(|data| data.claims)
        .map_err(|e| {
            invalid(format!(
                "the token's claims cannot be read (RFC 7519 section 7.2): {}",
                malformed(&e)
            ))
        })
}

fn user(claims: &Claims) -> Result<String, String> {
    let text = |claim: &Option<Value>| match claim {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    };
    text(&claims.email).or_else(|| text(&claims.sub)).ok_or_else(|| {
        "the token names no user: it has neither an `email` nor a `sub` claim (RFC 7519 section 4.1.2)".into()
    })
}

fn malformed(error: &jsonwebtoken::errors::Error) -> &'static str {
    malformed_kind(error.kind())
}

fn malformed_kind(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidToken => "it is not three base64url parts separated by dots",
        ErrorKind::Base64(_) => "a part is not base64url",
        ErrorKind::Json(_) => "a part is not the expected JSON",
        ErrorKind::Utf8(_) => "a part is not UTF-8",
        ErrorKind::InvalidAlgorithmName => "the `alg` is unknown",
        _ => "it cannot be decoded",
    }
}

/// `seconds` since the epoch as RFC 3339 UTC, else as a number.
fn rfc3339(seconds: u64) -> String {
    i64::try_from(seconds)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{seconds} s after the epoch"))
}

/// At most 80 characters of a value taken from a token, for messages.
fn shorten(value: &str) -> String {
    if value.chars().count() <= 80 {
        value.to_owned()
    } else {
        let mut short: String = value.chars().take(80).collect();
        short.push('…');
        short
    }
}

fn invalid(reason: String) -> AuthError {
    AuthError::Invalid(reason)
}
