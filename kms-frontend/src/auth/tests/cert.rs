//! The user of a client certificate; identify() with certificates.

use super::super::cert::user_from_certificate;
use super::super::{AuthError, Authenticator};
use super::{base_config, pki};

#[test]
fn the_user_is_the_common_name() {
    let ca = pki::ca("Test CA");
    let alice = pki::client(&ca, Some("alice"), Some("alice@example.com"));
    assert_eq!(
        user_from_certificate(alice.cert.der()).expect("user"),
        "alice"
    );
}

#[test]
fn without_common_name_the_user_is_the_email_san() {
    let ca = pki::ca("Test CA");
    let bob = pki::client(&ca, None, Some("bob@example.com"));
    assert_eq!(
        user_from_certificate(bob.cert.der()).expect("user"),
        "bob@example.com"
    );
}

#[test]
fn a_certificate_naming_no_user_is_refused_naming_its_subject() {
    let ca = pki::ca("Test CA");
    let nobody = pki::client(&ca, None, None);
    let err = user_from_certificate(nobody.cert.der()).expect_err("no CN, no e-mail");
    assert!(matches!(err, AuthError::Invalid(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("O=Example"), "{message}");
    assert!(message.contains("rfc822Name"), "{message}");
}

#[test]
fn garbage_is_not_a_certificate() {
    let err = user_from_certificate(b"not DER").expect_err("garbage");
    assert!(
        err.to_string().contains("not a valid X.509 certificate"),
        "{err}"
    );
}

#[tokio::test]
async fn identify_takes_the_certificate_first_and_only_with_a_clients_ca() {
    let ca = pki::ca("Test CA");
    let alice = pki::client(&ca, Some("alice"), None);
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca_file, _) = ca.write(dir.path(), "ca");

    let mut config = base_config();
    config.clients_ca_cert_file = Some(ca_file);
    let auth = Authenticator::new(&config).await.expect("authenticator");
    assert!(auth.authenticates());
    let user = auth
        .identify(Some(alice.cert.der()), Some("Basic YWxpY2U6eA=="))
        .await
        .expect("certificate user");
    assert_eq!(user, "alice");

    let err = auth.identify(None, None).await.expect_err("no certificate");
    assert!(matches!(err, AuthError::Missing(_)), "{err:?}");
    assert!(err.to_string().contains("TLS client certificate"), "{err}");
    let err = auth
        .identify(None, Some("Bearer x.y.z"))
        .await
        .expect_err("JWT without provider");
    assert!(matches!(err, AuthError::Missing(_)), "{err:?}");
    assert!(err.to_string().contains("no JWT provider"), "{err}");

    // Without a clients CA, a certificate (which the TLS layer would not have
    // asked for) identifies nobody: the default user.
    let auth = Authenticator::new(&base_config()).await.expect("no auth");
    let user = auth
        .identify(Some(alice.cert.der()), None)
        .await
        .expect("default");
    assert_eq!(user, "admin");
}
