//! Who is calling: TLS client certificates (`--clients-ca-cert-file`), JWT
//! bearer tokens (`--jwt-auth-provider`), else the default user.
//!
//! [`Authenticator::identify`] names the caller of a request from its
//! credentials; the HTTP layer (`crate::http::authenticate`) runs it on
//! every request, puts the caller's name in the request's extensions as
//! [`User`], or answers 401 naming the reason. A request with bad
//! credentials never falls back to the default user. Nothing here knows
//! HTTP routes.
//!
//! - [`tls`]: the HTTPS server set-up ([`tls::server_config`]); the accept
//!   loop (`crate::http::serve`) hands the verified client certificate to
//!   every request as [`PeerCertificate`];
//! - [`cert`]: the user name of a client certificate;
//! - [`bearer`]: the token of an `Authorization: Bearer` header;
//! - [`jwt`]: verification of `Authorization: Bearer` JWTs against the
//!   configured providers' JWKS ([`jwks`]).

pub mod bearer;
pub mod cert;
pub mod jwks;
pub mod jwt;
pub mod tls;

use crate::config::Config;
use rustls_pki_types::CertificateDer;
use std::path::PathBuf;
use std::sync::Arc;
use thiserror::Error;

/// The verified client certificate of the TLS connection a request came on
/// (a request extension set by the HTTPS server; absent on plain HTTP).
#[derive(Debug, Clone)]
pub struct PeerCertificate(pub Arc<CertificateDer<'static>>);

/// The authenticated KMS user of a request (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User(pub String);

/// Why a caller is not authenticated (HTTP 401, the message is the body).
///
/// Messages never hold a credential (token, password, key).
#[derive(Debug, Error)]
pub enum AuthError {
    /// No credentials where some are required.
    #[error("authentication required: {0}")]
    Missing(String),
    /// Credentials were given but are not valid.
    #[error("authentication failed: {0}")]
    Invalid(String),
    /// The authentication set-up itself is wrong (start-up).
    #[error("{0}")]
    Setup(String),
}

/// Decides who a request is.
///
/// - No clients CA and no JWT provider configured: every request is the
///   default user, whatever credentials it carries.
/// - Otherwise, in this order: a client certificate verified against the
///   clients CA names the user ([`cert::user_from_certificate`]); else an
///   `Authorization` header must hold a valid JWT ([`jwt::JwtVerifier`]);
///   else the request is refused ([`AuthError::Missing`]). Bad credentials
///   are refused ([`AuthError::Invalid`]), never replaced by the default user.
/// - `force_default_username`: callers authenticate as above, then act as
///   the default user.
#[derive(Debug)]
pub struct Authenticator {
    default_username: String,
    force_default_username: bool,
    clients_ca: Option<PathBuf>,
    jwt: Option<jwt::JwtVerifier>,
}

impl Authenticator {
    /// Builds the authenticator of `config`; loads every JWT provider's JWKS.
    ///
    /// Errors: [`AuthError::Setup`] naming the provider when its JWKS cannot
    /// be fetched, read or holds no usable key.
    pub async fn new(config: &Config) -> Result<Self, AuthError> {
        let jwt = if config.jwt_providers.is_empty() {
            None
        } else {
            Some(jwt::JwtVerifier::new(&config.jwt_providers).await?)
        };
        Ok(Self {
            default_username: config.default_username.clone(),
            force_default_username: config.force_default_username,
            clients_ca: config.clients_ca_cert_file.clone(),
            jwt,
        })
    }

    /// True when callers must authenticate (a clients CA or a JWT provider is
    /// configured).
    pub fn authenticates(&self) -> bool {
        self.clients_ca.is_some() || self.jwt.is_some()
    }

    /// The user of a request that came with `certificate` (verified by the
    /// TLS layer) and the `Authorization` header value `authorization`.
    ///
    /// Errors: [`AuthError::Missing`] when no accepted credential was sent,
    /// [`AuthError::Invalid`] when the one sent is not valid (both 401).
    pub async fn identify(
        &self,
        certificate: Option<&CertificateDer<'_>>,
        authorization: Option<&str>,
    ) -> Result<String, AuthError> {
        if !self.authenticates() {
            return Ok(self.default_username.clone());
        }
        let user = match (certificate, &self.clients_ca, authorization, &self.jwt) {
            (Some(certificate), Some(_), _, _) => cert::user_from_certificate(certificate)?,
            (_, _, Some(authorization), Some(jwt)) => jwt.verify(authorization).await?,
            _ => return Err(AuthError::Missing(self.accepted(authorization.is_some()))),
        };
        if self.force_default_username {
            Ok(self.default_username.clone())
        } else {
            Ok(user)
        }
    }

    /// True when a JWT provider is configured (a 401 then carries
    /// `WWW-Authenticate: Bearer`).
    pub fn accepts_jwt(&self) -> bool {
        self.jwt.is_some()
    }

    /// What a caller without accepted credentials is told to send.
    fn accepted(&self, sent_authorization: bool) -> String {
        match (&self.clients_ca, &self.jwt) {
            (Some(_), Some(_)) => "send a TLS client certificate signed by the configured clients CA or an `Authorization: Bearer <JWT>` header".into(),
            (Some(_), None) if sent_authorization => "send a TLS client certificate signed by the configured clients CA (the Authorization header is not accepted: no JWT provider is configured)".into(),
            (Some(_), None) => "send a TLS client certificate signed by the configured clients CA".into(),
            _ => "send an `Authorization: Bearer <JWT>` header".into(),
        }
    }

    /// One line for the start-up log saying how callers are identified, e.g.
    /// "no authentication: every caller is `admin`" (main logs it as a
    /// warning when nothing is configured, see [`Authenticator::authenticates`]).
    pub fn describe(&self) -> String {
        let mut ways = Vec::new();
        if let Some(ca) = &self.clients_ca {
            ways.push(format!(
                "a TLS client certificate signed by {} (user = subject CN, else e-mail SAN)",
                ca.display()
            ));
        }
        if let Some(jwt) = &self.jwt {
            ways.push(format!(
                "an `Authorization: Bearer` JWT of {} (user = `email` claim, else `sub`)",
                jwt.describe()
            ));
        }
        if ways.is_empty() {
            return format!(
                "no authentication: every caller is `{}`",
                self.default_username
            );
        }
        let mut line = format!("callers authenticate with {}", ways.join(" or "));
        if self.force_default_username {
            line.push_str(&format!(
                "; every authenticated caller then acts as `{}` (force_default_username)",
                self.default_username
            ));
        }
        line
    }
}

#[cfg(test)]
pub(crate) mod tests;
