//! The axum middleware: 401 bodies and headers, odd Authorization headers.

use crate::auth::tests::{base_config, pki};
use crate::auth::{Authenticator, User};
use crate::config::JwtProvider;
use crate::http::authenticate::middleware;
use axum::body::Body;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::{routing::get, Extension, Router};
use std::sync::Arc;
use tower::ServiceExt;

async fn app_with_jwt() -> (Router, tempfile::TempDir, pki::SigningKey) {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = pki::SigningKey::new("k1");
    let jwks = dir.path().join("jwks.json");
    pki::write_jwks(&jwks, &[&key]);
    let mut config = base_config();
    config.jwt_providers = vec![JwtProvider {
        issuer: "https://idp.example/".into(),
        jwks_uri: jwks.display().to_string(),
        audience: None,
    }];
    let auth = Arc::new(Authenticator::new(&config).await.expect("authenticator"));
    let app = Router::new()
        .route(
            "/",
            get(|Extension(User(user)): Extension<User>| async move { user }),
        )
        .layer(axum::middleware::from_fn_with_state(auth, middleware));
    (app, dir, key)
}

/// Status, `WWW-Authenticate` and body of `GET /` with `authorization` headers.
async fn call(app: &Router, authorization: &[HeaderValue]) -> (StatusCode, Option<String>, String) {
    let mut request = Request::get("/");
    for value in authorization {
        request = request.header(header::AUTHORIZATION, value.clone());
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .expect("body");
    (
        status,
        challenge,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test]
async fn the_middleware_answers_401_with_the_reason_and_a_bearer_challenge() {
    let (app, _dir, key) = app_with_jwt().await;
    let claims = serde_json::json!({
        "iss": "https://idp.example/",
        "sub": "dave",
        "exp": jsonwebtoken::get_current_timestamp() + 600,
    });
    let token =
        HeaderValue::try_from(format!("Bearer {}", key.token(&claims, true))).expect("ascii");

    let (status, _, body) = call(&app, std::slice::from_ref(&token)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "dave"));

    let (status, challenge, body) = call(&app, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge.as_deref(), Some("Bearer"));
    assert!(body.starts_with("authentication required: "), "{body}");

    let (status, _, body) = call(&app, &[token.clone(), token]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("several Authorization headers"), "{body}");

    // A header that is not UTF-8 is a bad credential, not an absent one.
    let binary = HeaderValue::from_bytes(b"Bearer \xff\xfe").expect("opaque header");
    let (status, _, body) = call(&app, &[binary]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.starts_with("authentication failed: "), "{body}");
}
