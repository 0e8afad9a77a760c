//! The HTTPS server configuration from PEM files and PKCS#12 files.

use super::super::tls::server_config;
use super::super::AuthError;
use super::{base_config, pki};
use crate::config::{Config, TlsIdentity};
use secrecy::SecretString;
use std::path::Path;

const PASSWORD: &str = "p12-Secret-42";

fn pem_config(dir: &Path) -> Config {
    let ca = pki::ca("Test CA");
    let server = pki::server(&ca);
    let (cert, key) = server.write(dir, "server");
    let (chain, _) = ca.write(dir, "ca");
    let mut config = base_config();
    config.tls = TlsIdentity::Pem {
        cert,
        key,
        chain: Some(chain.clone()),
    };
    config.clients_ca_cert_file = Some(chain);
    config
}

fn p12_config(file: &Path, password: &str) -> Config {
    let mut config = base_config();
    config.tls = TlsIdentity::P12 {
        file: file.to_owned(),
        password: SecretString::from(password.to_owned()),
    };
    config
}

fn setup_error(config: &Config) -> String {
    match server_config(config) {
        Err(AuthError::Setup(message)) => message,
        Err(other) => panic!("expected a set-up error, got {other:?}"),
        Ok(_) => panic!("expected a set-up error"),
    }
}

#[test]
fn plain_http_has_no_tls_config() {
    assert!(server_config(&base_config()).expect("no TLS").is_none());
}

#[test]
fn pem_files_make_a_config_with_alpn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = pem_config(dir.path());
    let tls = server_config(&config).expect("PEM").expect("TLS");
    assert_eq!(
        tls.alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );
}

#[test]
fn pem_mistakes_name_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = pem_config(dir.path());
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").expect("write");
    let TlsIdentity::Pem { key, .. } = &mut config.tls else {
        unreachable!()
    };
    *key = empty.clone();
    let message = setup_error(&config);
    assert!(
        message.contains("empty.pem") && message.contains("no PEM private key"),
        "{message}"
    );

    let mut config = pem_config(dir.path());
    config.clients_ca_cert_file = Some(empty.clone());
    let message = setup_error(&config);
    assert!(
        message.contains("clients CA file") && message.contains("empty.pem"),
        "{message}"
    );

    let mut config = pem_config(dir.path());
    let other = pki::ca("Other").write(dir.path(), "other").1;
    let TlsIdentity::Pem { key, .. } = &mut config.tls else {
        unreachable!()
    };
    *key = other;
    let message = setup_error(&config);
    assert!(
        message.contains("other.key") && message.contains("does not fit"),
        "{message}"
    );

    let mut config = pem_config(dir.path());
    config.clients_ca_cert_file = Some(dir.path().join("absent.pem"));
    let message = setup_error(&config);
    assert!(
        message.contains("cannot read") && message.contains("absent.pem"),
        "{message}"
    );
}

/// A PKCS#12 of a server certificate, its key and CA, written by p12-keystore.
fn write_p12(path: &Path, password: &str) {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKeyChain};
    let ca = pki::ca("Test CA");
    let server = pki::server(&ca);
    let chain = [
        Certificate::from_der(server.cert.der()).expect("server certificate"),
        Certificate::from_der(ca.cert.der()).expect("CA certificate"),
    ];
    let mut store = KeyStore::new();
    store.add_entry(
        "server",
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(
            server.key.serialize_der(),
            [1u8; 20],
            chain,
        )),
    );
    let p12 = store.writer(password).write().expect("PKCS#12");
    std::fs::write(path, p12).expect("write PKCS#12");
}

#[test]
fn a_pkcs12_makes_a_config_and_a_wrong_password_is_named_not_quoted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("server.p12");
    write_p12(&file, PASSWORD);
    assert!(server_config(&p12_config(&file, PASSWORD))
        .expect("p12")
        .is_some());

    let wrong = "Wrong-Password-7";
    let message = setup_error(&p12_config(&file, wrong));
    assert!(
        message.contains("server.p12") && message.contains("password"),
        "{message}"
    );
    assert!(
        !message.contains(wrong) && !message.contains(PASSWORD),
        "{message}"
    );

    let not_p12 = dir.path().join("not.p12");
    std::fs::write(&not_p12, "hello").expect("write");
    let message = setup_error(&p12_config(&not_p12, PASSWORD));
    assert!(
        message.contains("not.p12") && message.contains("not a PKCS#12"),
        "{message}"
    );
}

#[test]
fn a_pkcs12_made_by_openssl_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = pki::ca("Test CA");
    let (cert, key) = pki::server(&ca).write(dir.path(), "server");
    let (ca_file, _) = ca.write(dir.path(), "ca");
    let file = dir.path().join("openssl.p12");
    let status = std::process::Command::new("openssl")
        .args(["pkcs12", "-export", "-in"])
        .arg(&cert)
        .arg("-inkey")
        .arg(&key)
        .arg("-certfile")
        .arg(&ca_file)
        .arg("-out")
        .arg(&file)
        .args(["-passout", &format!("pass:{PASSWORD}")])
        .status();
    match status {
        Ok(status) => assert!(status.success(), "openssl pkcs12 -export failed"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIPPED: no openssl command to make a PKCS#12 with");
            return;
        }
        Err(e) => panic!("openssl: {e}"),
    }
    assert!(server_config(&p12_config(&file, PASSWORD))
        .expect("openssl p12")
        .is_some());
    let message = setup_error(&p12_config(&file, "nope-nope"));
    assert!(
        message.contains("password") && !message.contains("nope-nope"),
        "{message}"
    );
}
