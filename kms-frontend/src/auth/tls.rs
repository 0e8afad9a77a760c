//! HTTPS: the server's rustls configuration ([`server_config`]). The accept
//! loop is [`crate::http::serve`]; it hands every request the client
//! certificate of its connection as [`super::PeerCertificate`].

use super::AuthError;
use crate::config::{Config, TlsIdentity};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use secrecy::{ExposeSecret, SecretString};
use std::path::Path;
use std::sync::Arc;

/// The rustls server configuration of `config`: `None` for plain HTTP
/// ([`TlsIdentity::None`]); else the server identity from PEM files
/// (certificate, PKCS#8 / PKCS#1 / SEC1 key, optional chain) or from a
/// PKCS#12 file and its password. With `clients_ca_cert_file`, client
/// certificates are requested and verified against that CA (RFC 5280 path
/// validation by webpki), but a client may also send none: it is then
/// refused or identified by its JWT at the HTTP layer, with a clear 401
/// rather than a TLS alert. ALPN: `h2`, `http/1.1`. Crypto: rustls' ring
/// provider (no process-wide default is installed).
///
/// Errors: [`AuthError::Setup`], one sentence naming the file and what is
/// wrong with it (never the PKCS#12 password).
pub fn server_config(config: &Config) -> Result<Option<Arc<ServerConfig>>, AuthError> {
    let (certificates, key) = match &config.tls {
        TlsIdentity::None => return Ok(None),
        TlsIdentity::Pem { cert, key, chain } => pem_identity(cert, key, chain.as_deref())?,
        TlsIdentity::P12 { file, password } => p12_identity(file, password)?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| AuthError::Setup(format!("TLS set-up failed: {e}")))?;
    let builder = match &config.clients_ca_cert_file {
        None => builder.with_no_client_auth(),
        Some(ca) => builder.with_client_cert_verifier(client_verifier(ca, provider)?),
    };
    let mut server = builder.with_single_cert(certificates, key).map_err(|e| {
        let identity = match &config.tls {
            TlsIdentity::Pem { key, cert, .. } => format!(
                "the TLS key file (tls_key_file) {} does not fit the certificate of {}",
                key.display(),
                cert.display()
            ),
            TlsIdentity::P12 { file, .. } => format!(
                "the private key of the TLS PKCS#12 file (tls_p12_file) {} does not fit its certificate",
                file.display()
            ),
            TlsIdentity::None => "the TLS identity cannot be used".into(),
        };
        AuthError::Setup(format!("{identity}: {e}"))
    })?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(Arc::new(server)))
}

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn read(path: &Path, what: &str) -> Result<Vec<u8>, AuthError> {
    std::fs::read(path)
        .map_err(|e| AuthError::Setup(format!("cannot read the {what} {}: {e}", path.display())))
}

/// The PEM certificates of `path`; at least one.
fn pem_certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, AuthError> {
    let pem = read(path, what)?;
    let certificates = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            AuthError::Setup(format!(
                "the {what} {} is not valid PEM: {e}",
                path.display()
            ))
        })?;
    if certificates.is_empty() {
        return Err(AuthError::Setup(format!(
            "the {what} {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(certificates)
}

fn pem_identity(cert: &Path, key: &Path, chain: Option<&Path>) -> Result<Identity, AuthError> {
    let mut certificates = pem_certificates(cert, "TLS certificate file (tls_cert_file)")?;
    if let Some(chain) = chain {
        certificates.extend(pem_certificates(chain, "TLS chain file (tls_chain_file)")?);
    }
    let what = "TLS key file (tls_key_file)";
    let pem = read(key, what)?;
    let key = rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| AuthError::Setup(format!("the {what} {} is not valid PEM: {e}", key.display())))?
        .ok_or_else(|| {
            AuthError::Setup(format!(
                "the {what} {} holds no PEM private key (PKCS#8 \"PRIVATE KEY\", PKCS#1 \"RSA PRIVATE KEY\" or SEC1 \"EC PRIVATE KEY\")",
                key.display()
            ))
        })?;
    Ok((certificates, key))
}

fn p12_identity(file: &Path, password: &SecretString) -> Result<Identity, AuthError> {
    let what = "TLS PKCS#12 file (tls_p12_file)";
    let data = read(file, what)?;
    let store = p12_keystore::KeyStore::from_pkcs12(&data, password.expose_secret()).map_err(|e| {
        use p12_keystore::error::Error as P12;
        let why = match e {
            P12::MacError(_) => "the password (tls_p12_password) is wrong, or the file is corrupt".to_owned(),
            P12::DerError(_) | P12::InvalidVersion => "it is not a PKCS#12 (PFX) file in DER".to_owned(),
            P12::UnpadError | P12::Pkcs5Error(_) => "it cannot be decrypted: the password (tls_p12_password) is wrong, or the file is corrupt".to_owned(),
            other => format!("it cannot be read: {other}"),
        };
        AuthError::Setup(format!("the {what} {}: {why}", file.display()))
    })?;
    let (_, chain) = store.private_key_chain().ok_or_else(|| {
        AuthError::Setup(format!(
            "the {what} {} holds no private key with its certificate",
            file.display()
        ))
    })?;
    let certificates: Vec<_> = chain
        .chain()
        .iter()
        .map(|c| CertificateDer::from(c.as_der().to_vec()))
        .collect();
    if certificates.is_empty() {
        return Err(AuthError::Setup(format!(
            "the {what} {} holds a private key without its certificate",
            file.display()
        )));
    }
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().to_vec()));
    Ok((certificates, key))
}

fn client_verifier(
    ca: &Path,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, AuthError> {
    let what = "clients CA file (clients_ca_cert_file)";
    let mut roots = RootCertStore::empty();
    for certificate in pem_certificates(ca, what)? {
        roots.add(certificate).map_err(|e| {
            AuthError::Setup(format!(
                "the {what} {} holds a certificate that cannot be a trust anchor: {e}",
                ca.display()
            ))
        })?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .allow_unauthenticated()
        .build()
        .map_err(|e| {
            AuthError::Setup(format!(
                "the {what} {} cannot verify clients: {e}",
                ca.display()
            ))
        })
}
