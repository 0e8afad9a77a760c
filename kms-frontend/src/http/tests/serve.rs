//! `serve` end to end: a TLS client with and without a client certificate.

use crate::auth::tests::{base_config, pki};
use crate::auth::tls::server_config;
use crate::auth::{Authenticator, PeerCertificate, User};
use crate::config::TlsIdentity;
use crate::http::authenticate::middleware;
use crate::http::serve::serve;
use axum::{routing::get, Extension, Router};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

async fn whoami(
    Extension(User(user)): Extension<User>,
    certificate: Option<Extension<PeerCertificate>>,
) -> String {
    format!("{user} certificate={}", certificate.is_some())
}

/// Sends `GET /` over TLS to `port`; the status line and body.
async fn get_root(port: u16, ca: &pki::Issued, client: Option<&pki::Issued>) -> (String, String) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).expect("root");
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots);
    let config = match client {
        Some(client) => builder
            .with_client_auth_cert(
                vec![client.cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(client.key.serialize_der())),
            )
            .expect("client certificate"),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = match connector.connect(name, tcp).await {
        Ok(tls) => tls,
        Err(e) => return (format!("handshake failed: {e}"), String::new()),
    };
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut response = Vec::new();
    // The server may close without close_notify after `Connection: close`.
    let _ = tls.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response.lines().next().unwrap_or_default().to_owned();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn serve_hands_the_client_certificate_to_the_middleware() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = pki::ca("Test CA");
    let (cert, key) = pki::server(&ca).write(dir.path(), "server");
    let (ca_file, _) = ca.write(dir.path(), "ca");
    let mut config = base_config();
    config.tls = TlsIdentity::Pem {
        cert,
        key,
        chain: None,
    };
    config.clients_ca_cert_file = Some(ca_file);
    let tls = server_config(&config).expect("TLS").expect("HTTPS");
    let auth = Arc::new(Authenticator::new(&config).await.expect("authenticator"));
    let app = Router::new()
        .route("/", get(whoami))
        .layer(axum::middleware::from_fn_with_state(auth, middleware));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(
        listener,
        Some(tls),
        app,
        crate::http::serve::ConnectionLimits::total(16),
        shutdown.clone(),
    ));

    // A client that connects and never handshakes does not block others.
    let _idle = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("idle connection");

    let alice = pki::client(&ca, Some("alice"), None);
    let (status, body) = get_root(port, &ca, Some(&alice)).await;
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(body, "alice certificate=true");

    let (status, body) = get_root(port, &ca, None).await;
    assert!(status.contains(" 401 "), "{status}");
    assert!(body.starts_with("authentication required"), "{body}");

    // A certificate from another CA is refused by the TLS layer.
    let other = pki::ca("Other CA");
    let mallory = pki::client(&other, Some("mallory"), None);
    let (status, _) = get_root(port, &ca, Some(&mallory)).await;
    assert!(!status.contains(" 200 "), "{status}");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(15), server)
        .await
        .expect("serve returns after shutdown")
        .expect("serve task");
}
