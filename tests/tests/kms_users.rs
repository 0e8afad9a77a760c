//! Several KMS users through the real kms-frontend over HTTPS, in front of a
//! real hsmd on a SoftHSMv2 token of each test's own: once identified by TLS
//! client certificates (`--clients-ca-cert-file`), once by ES256 bearer
//! JWTs (`--jwt-auth-provider` with a JWKS file). Both run [`scenario`]:
//!
//! - `admin` (hsmd's only `hsm_admin`) creates `shared` and grants bob
//!   `encrypt` on it;
//! - bob encrypts with it (admin decrypts his ciphertext: the same key), and
//!   is refused Decrypt (422), Create, grant, Destroy and the list of grants
//!   (401); he locates `shared` only, owns nothing and obtains exactly his
//!   grant;
//! - carol (`carol@example.com`: an e-mail SAN without CN, or an `email`
//!   claim) locates nothing and may not encrypt;
//! - callers without or with bad credentials get 401 with the reason, never
//!   the default user `admin` (the frontend runs with `--default-username
//!   admin`, so falling back to it would answer 200 with `shared`);
//! - admin revokes bob (his Encrypt is then 422) and destroys `shared`,
//!   whose grants go with it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hsmd_e2e::kmip::{create_aes, destroy, encrypt, field, locate_all, text};
use hsmd_e2e::{expect, frontend_hsmd_config, https_client, Daemon, Frontend, Reply, Token};
use jsonwebtoken::get_current_timestamp;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, SanType,
};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use serde_json::{json, Value};

/// The issuer and audience of the test's JWT provider.
const ISSUER: &str = "https://idp.test/";
const AUDIENCE: &str = "kms";

// -------------------------------------------------------------------- PKI

/// A certificate and its key.
struct Issued {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Issued {
    /// Certificate then key, PEM (a reqwest client identity).
    fn identity(&self) -> reqwest::Identity {
        let pem = format!("{}{}", self.cert.pem(), self.key.serialize_pem());
        reqwest::Identity::from_pem(pem.as_bytes()).expect("client identity PEM")
    }
}

fn ca(name: &str) -> Issued {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("CA certificate");
    Issued { cert, key }
}

/// A server certificate for `localhost` and 127.0.0.1, signed by `ca`.
fn server_cert(ca: &Issued) -> Issued {
    let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("server params");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    sign(ca, params)
}

/// A client certificate with subject `CN=cn` and/or an e-mail SAN (the
/// subject is empty without `cn`), signed by `ca`.
fn client_cert(ca: &Issued, cn: Option<&str>, email: Option<&str>) -> Issued {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    if let Some(cn) = cn {
        params.distinguished_name.push(DnType::CommonName, cn);
    }
    if let Some(email) = email {
        params.subject_alt_names = vec![SanType::Rfc822Name(email.try_into().expect("email"))];
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    sign(ca, params)
}

fn sign(ca: &Issued, params: CertificateParams) -> Issued {
    let key = KeyPair::generate().expect("key");
    let cert = params
        .signed_by(&key, &ca.cert, &ca.key)
        .expect("certificate");
    Issued { cert, key }
}

/// The server's CA and identity, written as PEM files in the token's
/// directory; the frontend flags that serve HTTPS with them.
struct Server {
    ca: Issued,
    args: Vec<String>,
}

impl Server {
    fn new(token: &Token) -> Self {
        let ca = ca("server CA");
        let server = server_cert(&ca);
        let (cert, key) = (token.path("server.pem"), token.path("server.key"));
        std::fs::write(&cert, server.cert.pem()).expect("write server.pem");
        std::fs::write(&key, server.key.serialize_pem()).expect("write server.key");
        let args = vec![
            "--tls-cert-file".into(),
            path_arg(&cert),
            "--tls-key-file".into(),
            path_arg(&key),
            // A fallback to the default user would be served as `admin`.
            "--default-username".into(),
            "admin".into(),
        ];
        Self { ca, args }
    }

    /// An HTTPS client trusting only the server's CA.
    fn client(&self) -> reqwest::ClientBuilder {
        https_client(&self.ca.cert.pem())
    }
}

fn path_arg(path: &std::path::Path) -> String {
    path.to_str().expect("UTF-8 path").to_owned()
}

// -------------------------------------------------------------------- JWT

/// An ES256 key of the JWT provider.
struct SigningKey {
    key: KeyPair,
    kid: &'static str,
}

impl SigningKey {
    fn new(kid: &'static str) -> Self {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key");
        Self { key, kid }
    }

    /// Its public JWK (RFC 7518 section 6.2.1).
    fn jwk(&self) -> Value {
        let point = self.key.public_key_raw();
        assert_eq!((point.len(), point[0]), (65, 4), "uncompressed P-256 point");
        json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        })
    }

    /// `Bearer <JWT>` of `claims`, signed by this key, `kid` in the header.
    fn bearer(&self, claims: &Value) -> String {
        let pem = self.key.serialize_pem();
        let key = jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).expect("EC PKCS#8 PEM");
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.kid.into());
        format!(
            "Bearer {}",
            jsonwebtoken::encode(&header, claims, &key).expect("JWT")
        )
    }
}

/// Valid claims naming the user by `claim` (`sub` or `email`).
fn claims(claim: &str, user: &str) -> Value {
    let now = get_current_timestamp();
    json!({"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600, claim: user})
}

/// An HTTPS client sending `authorization` with every request.
fn with_authorization(server: &Server, authorization: &str) -> reqwest::Client {
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(authorization).expect("header value"),
    );
    server
        .client()
        .default_headers(headers)
        .build()
        .expect("client")
}

// --------------------------------------------------------------- scenario

/// A caller that must not be served: what it is, its client, what the 401
/// must say, and whether a TLS handshake refused with an alert is an
/// acceptable refusal instead.
struct Refused {
    what: &'static str,
    client: reqwest::Client,
    says: &'static str,
    handshake_may_fail: bool,
}

impl Refused {
    fn new(what: &'static str, client: reqwest::Client, says: &'static str) -> Self {
        Self {
            what,
            client,
            says,
            handshake_may_fail: false,
        }
    }
}

/// The callers of [`scenario`].
struct Users {
    admin: reqwest::Client,
    bob: reqwest::Client,
    carol: reqwest::Client,
    refused: Vec<Refused>,
}

fn access(uid: &str, user: &str) -> String {
    json!({"unique_identifier": uid, "user_id": user, "operation_types": ["encrypt"]}).to_string()
}

/// The uids a LocateResponse lists (asserting `LocatedItems` counts them).
fn located(reply: &Reply) -> Vec<String> {
    let v = reply.json();
    assert_eq!(v["tag"], "LocateResponse", "{reply}");
    let uids: Vec<String> = v["value"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["tag"] == "UniqueIdentifier")
        .map(|i| i["value"].as_str().expect("uid").to_owned())
        .collect();
    assert_eq!(
        field(&v, "LocatedItems"),
        Some(&json!(uids.len())),
        "{reply}"
    );
    uids
}

async fn scenario(token: &Token, fe: &Frontend, users: &Users) {
    let Users {
        admin, bob, carol, ..
    } = users;
    let uid = format!("hsm::{}::shared", token.slot);
    let list = format!("/access/list/{uid}");

    // 1. admin creates `shared` and grants bob `encrypt`.
    let r = fe.kmip_with(admin, &create_aes(&uid)).await;
    expect("admin Create", &r, 200, &uid, fe);
    let r = fe
        .post_with(admin, "/access/grant", access(&uid, "bob"))
        .await;
    expect(
        "admin grants bob",
        &r,
        200,
        "Access for bob successfully added",
        fe,
    );

    // 2. bob may encrypt, and nothing else.
    let plaintext = "626F622773207365637265742C20776974682061646D696E27732068656C70";
    let r = fe.kmip_with(bob, &encrypt(&uid, plaintext)).await;
    expect("bob Encrypt", &r, 200, "EncryptResponse", fe);
    let sealed = r.json();
    let mut decrypt = vec![text("UniqueIdentifier", &uid)];
    for tag in ["Data", "IVCounterNonce", "AuthenticatedEncryptionTag"] {
        let value = field(&sealed, tag).unwrap_or_else(|| panic!("no {tag} in {r}"));
        decrypt.push(json!({"tag": tag, "type": "ByteString", "value": value}));
    }
    let decrypt = json!({"tag": "Decrypt", "value": decrypt});
    let r = fe.kmip_with(admin, &decrypt).await;
    expect(
        "admin Decrypt of bob's ciphertext",
        &r,
        200,
        "DecryptResponse",
        fe,
    );
    assert_eq!(
        field(&r.json(), "Data"),
        Some(&json!(plaintext)),
        "admin's decryption of bob's ciphertext: {r}"
    );
    let r = fe.kmip_with(bob, &decrypt).await;
    expect("bob Decrypt (not granted)", &r, 422, "`decrypt`", fe);
    let bobkey = format!("hsm::{}::bobkey", token.slot);
    let r = fe.kmip_with(bob, &create_aes(&bobkey)).await;
    expect("bob Create", &r, 401, "bob is not an hsm_admin", fe);
    let r = fe
        .post_with(bob, "/access/grant", access(&uid, "carol@example.com"))
        .await;
    expect("bob grants carol", &r, 401, "HSM admins (admin)", fe);
    let r = fe.kmip_with(bob, &destroy(&uid)).await;
    expect("bob Destroy", &r, 401, "bob is not an hsm_admin", fe);
    let r = fe.kmip_with(bob, &locate_all()).await;
    expect("bob Locate", &r, 200, "LocateResponse", fe);
    assert_eq!(located(&r), [uid.as_str()], "bob locates only shared: {r}");
    let r = fe.get_with(bob, "/access/obtained").await;
    expect("bob's obtained grants", &r, 200, &uid, fe);
    assert_eq!(
        r.json(),
        json!([{"object_id": uid, "owner_id": "hsm", "state": "Active", "operations": ["encrypt"]}]),
        "{r}"
    );

    let r = fe.get_with(bob, "/access/owned").await;
    expect("bob's owned keys", &r, 200, "[]", fe);
    assert_eq!(r.json(), json!([]), "bob owns nothing: {r}");
    let r = fe.get_with(bob, &list).await;
    expect(
        "bob lists the grants of shared",
        &r,
        401,
        "HSM admins (admin)",
        fe,
    );

    // 3. carol has no grant: she sees nothing and may use nothing.
    let r = fe.kmip_with(carol, &locate_all()).await;
    expect("carol Locate", &r, 200, "LocateResponse", fe);
    assert_eq!(located(&r), Vec::<String>::new(), "carol locates: {r}");
    let r = fe.kmip_with(carol, &encrypt(&uid, plaintext)).await;
    expect(
        "carol Encrypt",
        &r,
        422,
        "not shared with carol@example.com",
        fe,
    );

    // 4. No or bad credentials: 401 with the reason, never the default
    //    user admin (who would locate `shared`).
    for caller in &users.refused {
        let locate = fe
            .try_post_with(&caller.client, "/kmip/2_1", locate_all().to_string())
            .await;
        let owned = fe.try_get_with(&caller.client, "/access/owned").await;
        for (request, reply) in [("Locate", locate), ("GET /access/owned", owned)] {
            let what = format!("{} ({request})", caller.what);
            match reply {
                Ok(reply) => expect(&what, &reply, 401, caller.says, fe),
                // The TLS layer refused the certificate: never served. With
                // TLS 1.3 the client learns it after sending its request, as
                // an alert or as the connection closing under it.
                Err(e) => assert!(
                    caller.handshake_may_fail,
                    "{what}: no HTTP answer: {e:?}\n{}",
                    fe.log_text()
                ),
            }
        }
    }

    // 5. admin revokes bob's grant, then destroys `shared` and its grants.
    let r = fe.get_with(admin, &list).await;
    expect("the grants of shared", &r, 200, "bob", fe);
    assert_eq!(
        r.json(),
        json!([{"user_id": "bob", "operations": ["encrypt"]}]),
        "{r}"
    );
    let r = fe
        .post_with(admin, "/access/revoke", access(&uid, "bob"))
        .await;
    expect(
        "admin revokes bob",
        &r,
        200,
        "Access for bob successfully deleted",
        fe,
    );
    let r = fe.kmip_with(bob, &encrypt(&uid, plaintext)).await;
    expect("bob Encrypt after the revocation", &r, 422, "bob", fe);
    let r = fe.kmip_with(admin, &destroy(&uid)).await;
    expect("admin Destroy", &r, 200, &uid, fe);
    let r = fe.get_with(admin, &list).await;
    expect("the grants of the destroyed key", &r, 200, "[]", fe);
    assert_eq!(r.json(), json!([]), "{r}");
}

// ------------------------------------------------------------------ tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_identified_by_tls_client_certificates() {
    let token = Token::new("kms-users-mtls");
    let daemon = Daemon::start_with(&token, &frontend_hsmd_config(&token, ""), &[]);
    let server = Server::new(&token);
    let clients_ca = ca("clients CA");
    let ca_file = token.path("clients-ca.pem");
    std::fs::write(&ca_file, clients_ca.cert.pem()).expect("write clients-ca.pem");
    let mut args = server.args.clone();
    args.extend(["--clients-ca-cert-file".into(), path_arg(&ca_file)]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let fe = Frontend::start(&token, &daemon.socket, &args);
    assert!(fe.base_url().starts_with("https://"), "{}", fe.base_url());

    let with_cert = |cert: &Issued| {
        server
            .client()
            .identity(cert.identity())
            .build()
            .expect("client")
    };
    let stranger = client_cert(&ca("another CA"), Some("admin"), None);
    let basic = with_authorization(&server, "Basic YWRtaW46YWRtaW4=");
    let users = Users {
        admin: with_cert(&client_cert(&clients_ca, Some("admin"), None)),
        bob: with_cert(&client_cert(&clients_ca, Some("bob"), None)),
        carol: with_cert(&client_cert(&clients_ca, None, Some("carol@example.com"))),
        refused: vec![
            Refused::new(
                "no client certificate",
                server.client().build().expect("client"),
                "authentication required",
            ),
            Refused::new(
                "no client certificate, Authorization: Basic",
                basic,
                "authentication required",
            ),
            Refused {
                handshake_may_fail: true,
                ..Refused::new(
                    "CN=admin signed by another CA",
                    with_cert(&stranger),
                    "authentication",
                )
            },
        ],
    };
    scenario(&token, &fe, &users).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_identified_by_bearer_jwts() {
    let token = Token::new("kms-users-jwt");
    let daemon = Daemon::start_with(&token, &frontend_hsmd_config(&token, ""), &[]);
    let server = Server::new(&token);
    let idp = SigningKey::new("k1");
    let jwks = token.path("jwks.json");
    std::fs::write(&jwks, json!({"keys": [idp.jwk()]}).to_string()).expect("write JWKS");
    let mut args = server.args.clone();
    args.extend([
        "--jwt-auth-provider".into(),
        format!("{ISSUER},{},{AUDIENCE}", path_arg(&jwks)),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let fe = Frontend::start(&token, &daemon.socket, &args);
    assert!(fe.base_url().starts_with("https://"), "{}", fe.base_url());

    let as_user = |claims: &Value| with_authorization(&server, &idp.bearer(claims));
    let mut expired = claims("sub", "admin");
    expired["exp"] = json!(get_current_timestamp() - 3600);
    let mut elsewhere = claims("sub", "admin");
    elsewhere["aud"] = json!("another-service");
    let forger = SigningKey::new(idp.kid);
    let forged = with_authorization(&server, &forger.bearer(&claims("sub", "admin")));
    let users = Users {
        admin: as_user(&claims("sub", "admin")),
        bob: as_user(&claims("sub", "bob")),
        carol: as_user(&claims("email", "carol@example.com")),
        refused: vec![
            Refused::new(
                "no token",
                server.client().build().expect("client"),
                "authentication required",
            ),
            Refused::new("an expired token", as_user(&expired), "expired"),
            Refused::new(
                "a token for another audience",
                as_user(&elsewhere),
                "wrong audience: expected \"kms\"",
            ),
            Refused::new(
                "a token signed by another key with the same kid",
                forged,
                "bad signature",
            ),
            Refused::new(
                "Authorization: Basic",
                with_authorization(&server, "Basic YWRtaW46YWRtaW4="),
                "must be `Bearer <JWT>`",
            ),
        ],
    };
    scenario(&token, &fe, &users).await;
}
