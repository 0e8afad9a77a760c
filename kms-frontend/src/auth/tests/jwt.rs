//! Bearer JWT verification against a JWKS file, ES256 keys made by rcgen.

use super::super::{AuthError, Authenticator};
use super::base_config;
use super::pki::{self, SigningKey};
use crate::config::{Config, JwtProvider};
use jsonwebtoken::get_current_timestamp;
use serde_json::json;
use std::time::Duration;

const ISSUER: &str = "https://idp.example/";

/// A provider with one key in a JWKS file.
struct Idp {
    dir: tempfile::TempDir,
    key: SigningKey,
}

impl Idp {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = SigningKey::new("k1");
        pki::write_jwks(&dir.path().join("jwks.json"), &[&key]);
        Self { dir, key }
    }

    fn jwks(&self) -> String {
        self.dir.path().join("jwks.json").display().to_string()
    }

    fn config(&self, audience: Option<&str>) -> Config {
        let mut config = base_config();
        config.jwt_providers = vec![JwtProvider {
            issuer: ISSUER.into(),
            jwks_uri: self.jwks(),
            audience: audience.map(str::to_owned),
        }];
        config
    }

    async fn authenticator(&self, audience: Option<&str>) -> Authenticator {
        Authenticator::new(&self.config(audience))
            .await
            .expect("authenticator")
    }

    fn bearer(&self, claims: serde_json::Value) -> String {
        format!("Bearer {}", self.key.token(&claims, true))
    }
}

fn claims() -> serde_json::Value {
    json!({
        "iss": ISSUER,
        "sub": "u-123",
        "email": "carol@example.com",
        "aud": "kms",
        "iat": get_current_timestamp(),
        "exp": get_current_timestamp() + 600,
    })
}

fn with(mut claims: serde_json::Value, key: &str, value: serde_json::Value) -> serde_json::Value {
    claims[key] = value;
    claims
}

fn without(mut claims: serde_json::Value, key: &str) -> serde_json::Value {
    if let Some(map) = claims.as_object_mut() {
        map.remove(key);
    }
    claims
}

/// The `Invalid` message of refusing `authorization`; asserts the message
/// does not quote the credentials.
async fn refused(auth: &Authenticator, authorization: &str) -> String {
    match auth.identify(None, Some(authorization)).await {
        Err(AuthError::Invalid(message)) => {
            let credentials = authorization
                .split_once(' ')
                .map_or(authorization, |(_, c)| c);
            if credentials.len() >= 8 {
                assert!(
                    !message.contains(credentials),
                    "credentials leaked: {message}"
                );
            }
            message
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn a_valid_token_names_its_email() {
    let idp = Idp::new();
    let auth = idp.authenticator(Some("kms")).await;
    let user = auth.identify(None, Some(&idp.bearer(claims()))).await;
    assert_eq!(user.expect("valid token"), "carol@example.com");
    // The scheme is case-insensitive.
    let lower = idp.bearer(claims()).replacen("Bearer", "bearer", 1);
    assert_eq!(
        auth.identify(None, Some(&lower)).await.expect("bearer"),
        "carol@example.com"
    );
}

#[tokio::test]
async fn without_email_the_user_is_sub() {
    let idp = Idp::new();
    let auth = idp.authenticator(None).await;
    let token = idp.bearer(without(claims(), "email"));
    let user = auth.identify(None, Some(&token)).await;
    assert_eq!(user.expect("valid token"), "u-123");
    let message = refused(
        &auth,
        &idp.bearer(without(without(claims(), "email"), "sub")),
    )
    .await;
    assert!(
        message.contains("neither an `email` nor a `sub`"),
        "{message}"
    );
}

#[tokio::test]
async fn without_kid_the_only_key_is_used() {
    let idp = Idp::new();
    let auth = idp.authenticator(None).await;
    let token = format!("Bearer {}", idp.key.token(&claims(), false));
    assert_eq!(
        auth.identify(None, Some(&token)).await.expect("no kid"),
        "carol@example.com"
    );
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let idp = Idp::new();
    let auth = idp.authenticator(None).await;
    let expired = with(claims(), "exp", json!(get_current_timestamp() - 3600));
    let message = refused(&auth, &idp.bearer(expired)).await;
    assert!(message.contains("expired at 20"), "{message}");
    let message = refused(&auth, &idp.bearer(without(claims(), "exp"))).await;
    assert!(message.contains("no valid `exp` claim"), "{message}");
    let early = with(claims(), "nbf", json!(get_current_timestamp() + 3600));
    let message = refused(&auth, &idp.bearer(early)).await;
    assert!(message.contains("not valid yet"), "{message}");
}

#[tokio::test]
async fn a_wrong_issuer_is_refused_naming_the_expected_one() {
    let idp = Idp::new();
    let auth = idp.authenticator(None).await;
    let other = with(claims(), "iss", json!("https://evil.example/"));
    let message = refused(&auth, &idp.bearer(other)).await;
    assert!(message.contains("wrong issuer"), "{message}");
    assert!(message.contains(ISSUER), "{message}");
    let message = refused(&auth, &idp.bearer(without(claims(), "iss"))).await;
    assert!(message.contains("no `iss` claim"), "{message}");
}

#[tokio::test]
async fn a_wrong_audience_is_refused() {
    let idp = Idp::new();
    let auth = idp.authenticator(Some("kms")).await;
    let message = refused(&auth, &idp.bearer(with(claims(), "aud", json!("other")))).await;
    assert!(message.contains("wrong audience"), "{message}");
    assert!(message.contains("\"kms\""), "{message}");
    let message = refused(&auth, &idp.bearer(without(claims(), "aud"))).await;
    assert!(message.contains("no valid `aud` claim"), "{message}");
    // Without a configured audience, any `aud` is accepted.
    let auth = idp.authenticator(None).await;
    let token = idp.bearer(with(claims(), "aud", json!("other")));
    assert!(auth.identify(None, Some(&token)).await.is_ok());
}

#[tokio::test]
async fn an_unknown_kid_is_refused_then_found_after_a_refetch() {
    let idp = Idp::new();
    let rotated = SigningKey::new("k2");
    let token = format!("Bearer {}", rotated.token(&claims(), true));

    let auth = idp.authenticator(None).await;
    let message = refused(&auth, &token).await;
    assert!(message.contains("unknown key id \"k2\""), "{message}");

    // The provider rotates its keys: a JWKS fetched less than 60 s ago is
    // not fetched again ...
    pki::write_jwks(&idp.dir.path().join("jwks.json"), &[&idp.key, &rotated]);
    let message = refused(&auth, &token).await;
    assert!(message.contains("unknown key id"), "{message}");

    // ... once the interval has passed, it is.
    let mut config = idp.config(None);
    pki::write_jwks(&idp.dir.path().join("jwks.json"), &[&idp.key]);
    let mut verifier = crate::auth::jwt::JwtVerifier::new(&config.jwt_providers)
        .await
        .expect("verifier");
    verifier.set_refetch_interval(Duration::ZERO);
    pki::write_jwks(&idp.dir.path().join("jwks.json"), &[&idp.key, &rotated]);
    assert_eq!(
        verifier.verify(&token).await.expect("refetched"),
        "carol@example.com"
    );

    // Several keys and no kid: which one is ambiguous.
    config.jwt_providers[0].audience = None;
    let auth = Authenticator::new(&config).await.expect("authenticator");
    let no_kid = format!("Bearer {}", idp.key.token(&claims(), false));
    let message = refused(&auth, &no_kid).await;
    assert!(message.contains("no key id"), "{message}");
}

#[tokio::test]
async fn a_tampered_token_is_refused() {
    let idp = Idp::new();
    let auth = idp.authenticator(None).await;
    let token = idp.key.token(&claims(), true);
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);

    // Claims changed, signature kept.
    let forged = with(claims(), "email", json!("mallory@example.com"));
    let payload = pki::b64url(forged.to_string().as_bytes());
    let message = refused(
        &auth,
        &format!("Bearer {}.{payload}.{}", parts[0], parts[2]),
    )
    .await;
    assert!(message.contains("bad signature"), "{message}");

    // Signature changed.
    let mut signature = parts[2].to_owned().into_bytes();
    signature[10] = if signature[10] == b'A' { b'B' } else { b'A' };
    let signature = String::from_utf8(signature).expect("ascii");
    let message = refused(
        &auth,
        &format!("Bearer {}.{}.{signature}", parts[0], parts[1]),
    )
    .await;
    assert!(message.contains("bad signature"), "{message}");

    // Signed by a key that is not the provider's, under the provider's kid.
    let impostor = SigningKey::new("k1");
    let message = refused(
        &auth,
        &format!("Bearer {}", impostor.token(&claims(), true)),
    )
    .await;
    assert!(message.contains("bad signature"), "{message}");

    // HMAC "signed" with the public key: never accepted.
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(),
        &jsonwebtoken::EncodingKey::from_secret(idp.key.key.public_key_raw()),
    )
    .expect("HS256");
    let message = refused(&auth, &format!("Bearer {hs}")).await;
    assert!(message.contains("HS256 is not accepted"), "{message}");
}

#[tokio::test]
async fn only_bearer_headers_are_accepted() {
    let idp = Idp::new();
    let auth = idp.authenticator(None).await;
    let message = refused(&auth, "Basic YWxpY2U6c2VjcmV0").await;
    assert!(message.contains("must be `Bearer <JWT>`"), "{message}");
    assert!(message.contains("`Basic`"), "{message}");
    for header in ["Bearer", "Bearer ", "Bearer a b", "abc.def.ghi"] {
        let message = refused(&auth, header).await;
        assert!(message.contains("Bearer <JWT>"), "{header:?}: {message}");
    }
    let message = refused(&auth, "Bearer not-a-jwt").await;
    assert!(message.contains("not a JWT"), "{message}");
}

#[tokio::test]
async fn no_credentials_in_authenticated_mode_is_missing() {
    let idp = Idp::new();
    let auth = idp.authenticator(None).await;
    let err = auth.identify(None, None).await.expect_err("no credentials");
    assert!(matches!(err, AuthError::Missing(_)), "{err:?}");
    assert!(err.to_string().contains("Authorization: Bearer"), "{err}");
}

#[tokio::test]
async fn without_authentication_everyone_is_the_default_user() {
    let auth = Authenticator::new(&base_config()).await.expect("no auth");
    assert!(!auth.authenticates());
    assert_eq!(
        auth.describe(),
        "no authentication: every caller is `admin`"
    );
    for authorization in [None, Some("Bearer garbage"), Some("Basic eA==")] {
        let user = auth.identify(None, authorization).await;
        assert_eq!(user.expect("default user"), "admin", "{authorization:?}");
    }
}

#[tokio::test]
async fn force_default_username_authenticates_then_acts_as_default() {
    let idp = Idp::new();
    let mut config = idp.config(None);
    config.force_default_username = true;
    config.default_username = "ops".into();
    let auth = Authenticator::new(&config).await.expect("authenticator");
    assert!(
        auth.describe().contains("force_default_username"),
        "{}",
        auth.describe()
    );
    let user = auth.identify(None, Some(&idp.bearer(claims()))).await;
    assert_eq!(user.expect("valid token"), "ops");
    let expired = with(claims(), "exp", json!(get_current_timestamp() - 3600));
    let message = refused(&auth, &idp.bearer(expired)).await;
    assert!(message.contains("expired"), "{message}");
    let err = auth.identify(None, None).await.expect_err("no credentials");
    assert!(matches!(err, AuthError::Missing(_)), "{err:?}");
}

#[tokio::test]
async fn unusable_jwks_fail_at_start_naming_the_provider() {
    let idp = Idp::new();
    let mut config = idp.config(None);
    config.jwt_providers[0].jwks_uri = idp.dir.path().join("missing.json").display().to_string();
    let err = Authenticator::new(&config).await.expect_err("missing JWKS");
    assert!(matches!(err, AuthError::Setup(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(ISSUER) && message.contains("missing.json"),
        "{message}"
    );

    config.jwt_providers[0].jwks_uri = "http://idp.example/jwks.json".into();
    let message = Authenticator::new(&config)
        .await
        .expect_err("http")
        .to_string();
    assert!(
        message.contains("https:// URL or a local file path"),
        "{message}"
    );

    let empty = idp.dir.path().join("empty.json");
    std::fs::write(&empty, r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#).expect("write");
    config.jwt_providers[0].jwks_uri = empty.display().to_string();
    let message = Authenticator::new(&config)
        .await
        .expect_err("oct")
        .to_string();
    assert!(message.contains("no usable signature key"), "{message}");
}
