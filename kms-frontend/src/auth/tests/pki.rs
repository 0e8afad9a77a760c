//! Test PKI: a CA, server and client certificates, JWT signing keys.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use std::path::{Path, PathBuf};

/// A certificate and its key.
pub struct Issued {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

impl Issued {
    /// Writes `NAME.pem` (certificate) and `NAME.key` (PKCS#8 key) in `dir`.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, self.cert.pem()).expect("write certificate");
        std::fs::write(&key, self.key.serialize_pem()).expect("write key");
        (cert, key)
    }
}

/// A self-signed CA.
pub fn ca(name: &str) -> Issued {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("CA certificate");
    Issued { cert, key }
}

fn issue(ca: &Issued, params: CertificateParams) -> Issued {
    let key = KeyPair::generate().expect("key");
    let cert = params
        .signed_by(&key, &ca.cert, &ca.key)
        .expect("certificate");
    Issued { cert, key }
}

/// A server certificate for `localhost`.
pub fn server(ca: &Issued) -> Issued {
    let mut params = CertificateParams::new(vec!["localhost".into()]).expect("params");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    issue(ca, params)
}

/// A client certificate with subject `CN=cn` (when given), plus an e-mail SAN
/// (when given) and `O=Example`.
pub fn client(ca: &Issued, cn: Option<&str>, email: Option<&str>) -> Issued {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Example");
    if let Some(cn) = cn {
        params.distinguished_name.push(DnType::CommonName, cn);
    }
    params.subject_alt_names = match email {
        Some(email) => vec![SanType::Rfc822Name(email.try_into().expect("email"))],
        None => vec![SanType::DnsName("client.example".try_into().expect("dns"))],
    };
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    issue(ca, params)
}

/// base64url without padding (RFC 4648 section 5).
pub fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[test]
fn b64url_is_rfc_4648() {
    assert_eq!(b64url(b""), "");
    assert_eq!(b64url(b"f"), "Zg");
    assert_eq!(b64url(b"fo"), "Zm8");
    assert_eq!(b64url(b"foo"), "Zm9v");
    assert_eq!(b64url(b"foob"), "Zm9vYg");
    assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
}

/// An ES256 signing key of a JWT provider and its `kid`.
pub struct SigningKey {
    pub key: KeyPair,
    pub kid: String,
}

impl SigningKey {
    /// A fresh EC P-256 key.
    pub fn new(kid: &str) -> Self {
        Self {
            key: KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key"),
            kid: kid.into(),
        }
    }

    /// Its public JWK (RFC 7518 section 6.2.1).
    pub fn jwk(&self) -> serde_json::Value {
        let point = self.key.public_key_raw();
        assert_eq!((point.len(), point[0]), (65, 4), "uncompressed P-256 point");
        serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(&point[1..33]),
            "y": b64url(&point[33..65]),
            "kid": self.kid,
            "use": "sig",
            "alg": "ES256",
        })
    }

    /// A JWT of `claims` signed by this key, with `kid` in its header when
    /// `with_kid`.
    pub fn token(&self, claims: &serde_json::Value, with_kid: bool) -> String {
        let encoding = jsonwebtoken::EncodingKey::from_ec_pem(self.key.serialize_pem().as_bytes())
            .expect("EC PKCS#8 PEM");
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = with_kid.then(|| self.kid.clone());
        jsonwebtoken::encode(&header, claims, &encoding).expect("signed JWT")
    }
}

/// Writes `{"keys": [...]}` of `keys` to `path`.
pub fn write_jwks(path: &Path, keys: &[&SigningKey]) {
    let keys: Vec<_> = keys.iter().map(|k| k.jwk()).collect();
    std::fs::write(path, serde_json::json!({ "keys": keys }).to_string()).expect("write JWKS");
}
