//! The PostgreSQL connection pool (`database_type = "postgresql"`): the
//! `database_url`, TLS to the database, and which failures mean "the
//! database is unreachable" (503 for the caller, and the frontend resumes by
//! itself once it is back). Shared by the grant store (`crate::access::store`)
//! and the object store (`crate::store::PgStore`). Uses nothing of the crate.
//!
//! The URL is libpq's: `postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE`
//! with `?sslmode=disable|prefer|require|verify-ca|verify-full` and
//! `sslrootcert=<CA PEM file>` (sqlx's `PgConnectOptions`; TLS by rustls).
//! The password never appears in a log line or a message: [`describe`] names
//! the server by user, host, port and database only.

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;
use thiserror::Error;

/// Connections a frontend keeps to PostgreSQL at most: enough for two
/// cores' worth of requests, each holding one only for a statement.
pub const MAX_CONNECTIONS: u32 = 16;

/// How long a request waits for a connection before it is told the
/// database is unreachable (503): short, so that a client (or the load
/// balancer) tries another frontend rather than hang.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the pool could not be set up.
#[derive(Debug, Error)]
pub enum PgError {
    /// `database_url` is not a PostgreSQL URL sqlx accepts. The URL itself
    /// is not repeated (it may hold a password).
    #[error("database_url is not a valid PostgreSQL URL ({reason}); expected postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=verify-full&sslrootcert=/path/ca.pem]")]
    Url {
        /// sqlx's reason.
        reason: String,
    },
    /// The first connection failed.
    #[error("cannot connect to the KMS database {server}: {source}")]
    Connect {
        /// [`describe`]'s answer.
        server: String,
        /// Why.
        source: sqlx::Error,
    },
}

/// A statement that failed on PostgreSQL, and whether the database was
/// unreachable (503 for the caller) or refused it (500). Never carries
/// key material or the password.
#[derive(Debug, Error)]
pub enum PgFailure {
    /// PostgreSQL refused or failed the statement.
    #[error("database {what} (PostgreSQL): {source}")]
    Statement {
        /// The step (insert, select, ...).
        what: &'static str,
        /// Why.
        source: sqlx::Error,
    },
    /// The database cannot be reached now ([`unreachable`]).
    #[error("{server} is unreachable ({what}): {source}")]
    Unreachable {
        /// The database ([`describe`]).
        server: String,
        /// The step (insert, select, ...).
        what: &'static str,
        /// Why.
        source: sqlx::Error,
    },
}

impl PgFailure {
    /// True for [`PgFailure::Unreachable`].
    pub fn is_unreachable(&self) -> bool {
        matches!(self, PgFailure::Unreachable { .. })
    }
}

/// Maps a sqlx error met while doing `what` on `server` (the
/// [`describe`]d database) to a [`PgFailure`].
pub fn failure<'a>(
    server: &'a str,
    what: &'static str,
) -> impl FnOnce(sqlx::Error) -> PgFailure + 'a {
    move |source| {
        if unreachable(&source) {
            PgFailure::Unreachable {
                server: server.to_owned(),
                what,
                source,
            }
        } else {
            PgFailure::Statement { what, source }
        }
    }
}

/// The connect options of `url`.
///
/// Errors: [`PgError::Url`].
pub fn options(url: &SecretString) -> Result<PgConnectOptions, PgError> {
    let text = url.expose_secret();
    if !(text.starts_with("postgresql://") || text.starts_with("postgres://")) {
        return Err(PgError::Url {
            reason: "it does not begin with postgresql:// or postgres://".into(),
        });
    }
    PgConnectOptions::from_str(text)
        .map(|o| o.application_name("kms-frontend"))
        .map_err(|e| PgError::Url {
            reason: crate::error::printable(&without_secrets(&e.to_string(), url)),
        })
}

/// `text` with the URL and its password, if they occur in it, cut out.
fn without_secrets(text: &str, url: &SecretString) -> String {
    let mut out = text.replace(url.expose_secret(), "<database_url>");
    if let Some(password) = password_of(url.expose_secret()) {
        out = out.replace(&password, "<password>");
    }
    out
}

/// The password part of a `scheme://user:password@host` URL, if any and
/// long enough to be told from ordinary words (a shorter one is cut only
/// as part of the whole URL).
fn password_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let userinfo = rest.split_once('@')?.0;
    let password = userinfo.split_once(':')?.1;
    (password.len() >= 6).then(|| password.to_owned())
}

/// The server as messages name it: `PostgreSQL user@host:port/database`.
pub fn describe(o: &PgConnectOptions) -> String {
    format!(
        "PostgreSQL {}@{}:{}/{}",
        o.get_username(),
        o.get_host(),
        o.get_port(),
        o.get_database().unwrap_or(o.get_username())
    )
}

/// A pool on `o`, after one connection succeeded (so that a wrong host,
/// password or certificate is said at start-up).
///
/// Connections are not pinged before use (that would be a round trip per
/// request); a connection the server dropped fails its statement once, which
/// callers retry for reads ([`read_retrying`]).
///
/// Errors: [`PgError::Connect`] naming the server.
pub async fn connect(o: PgConnectOptions) -> Result<PgPool, PgError> {
    PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .connect_with(o.clone())
        .await
        .map_err(|source| PgError::Connect {
            server: describe(&o),
            source,
        })
}

/// True when `e` says the database is unreachable rather than the
/// statement wrong: no connection (I/O, TLS, pool timeout or closed), or a
/// PostgreSQL error of class 08 (connection exception), 57P01–57P03 (the
/// server shutting down, crashed, or starting) or 53300 (too many
/// connections). PostgreSQL Appendix A, "Error Codes".
pub fn unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// True when `e` says the connection in hand was dropped (I/O error, or
/// PostgreSQL's class 08 or 57P01–57P02: the server went away under it),
/// so another connection may work; not when no connection could be had
/// (the pool timed out: trying again would only wait as long again).
fn dropped(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02")),
        _ => false,
    }
}

/// Runs `op` and, when it fails because its connection was dropped (a
/// server restart leaves every pooled connection dead), once more. For
/// reads only: a write is never repeated.
pub async fn read_retrying<T, F, Fut>(mut op: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    match op().await {
        Err(e) if dropped(&e) => op().await,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_postgresql_urls_are_taken() {
        for url in ["", "mysql://kms:pw@db/kms", "http://db/kms", "db:5432/kms"] {
            let e = options(&SecretString::from(url))
                .expect_err(url)
                .to_string();
            assert!(
                e.contains("does not begin with postgresql://"),
                "{url}: {e}"
            );
        }
        assert!(options(&SecretString::from("postgres://kms@db/kms")).is_ok());
    }

    #[test]
    fn a_bad_url_is_refused_without_its_password() {
        let url = SecretString::from("postgresql://kms:s3cr3t@db:notaport/kms");
        let e = options(&url).expect_err("bad port").to_string();
        assert!(!e.contains("s3cr3t"), "{e}");
        assert!(e.contains("expected postgresql://"), "{e}");
    }

    #[test]
    fn the_server_is_named_without_its_password() {
        let url = SecretString::from(
            "postgresql://kms:s3cr3t@db.example:5433/keys?sslmode=verify-full&sslrootcert=/etc/ca.pem",
        );
        let o = options(&url).expect("valid");
        assert_eq!(describe(&o), "PostgreSQL kms@db.example:5433/keys");
        assert_eq!(password_of(url.expose_secret()).as_deref(), Some("s3cr3t"));
    }

    #[test]
    fn connection_failures_are_unreachable_and_statement_errors_are_not() {
        assert!(unreachable(&sqlx::Error::PoolTimedOut));
        assert!(unreachable(&sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused
        ))));
        assert!(!unreachable(&sqlx::Error::RowNotFound));
        assert!(!unreachable(&sqlx::Error::Protocol("odd".into())));
    }
}
