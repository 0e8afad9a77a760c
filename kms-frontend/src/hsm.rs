//! The frontend's side of hsmd: a few pipelined protocol connections
//! (docs/protocol.md), opened on first use and again after hsmd restarts, each
//! request carrying the KMS user as `as_user`. A semaphore bounds the
//! requests in flight, so a burst of HTTP requests waits here instead of
//! piling up in hsmd.

use crate::error::KmsError;
use hsmd_protocol::ops::Op;
use hsmd_protocol::{Client, ClientError, ServerHello};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, Semaphore};

/// How long connecting to hsmd (connect + hello) may take before the
/// request is answered 503.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(800);

/// A pool of connections to hsmd.
pub struct Hsmd {
    socket: PathBuf,
    connections: Vec<Mutex<Option<Client>>>,
    next: AtomicUsize,
    in_flight: Semaphore,
    /// The hello of the newest connection: read on every request (admins)
    /// without taking a connection's lock.
    hello: std::sync::RwLock<Option<Arc<ServerHello>>>,
}

impl Hsmd {
    /// A pool of `connections` connections to `socket`, at most
    /// `max_in_flight` requests at once. Connects lazily.
    pub fn new(socket: PathBuf, connections: usize, max_in_flight: usize) -> Self {
        Self {
            socket,
            connections: (0..connections.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            in_flight: Semaphore::new(max_in_flight.max(1)),
            hello: std::sync::RwLock::new(None),
        }
    }

    /// A live connection: the next one round-robin, (re)connected if it is
    /// closed or was never opened.
    ///
    /// Errors: 503 [`KmsError`] when hsmd cannot be reached or refuses us.
    pub async fn client(&self) -> Result<Client, KmsError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        let mut slot = self.connections[i].lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        *slot = None;
        let connect = Client::connect(
            &self.socket,
            concat!("kms-frontend/", env!("CARGO_PKG_VERSION")),
        );
        let client = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(KmsError::from_hsmd("connecting to hsmd", e)),
            Err(_) => {
                return Err(KmsError::unavailable(format!(
                    "hsmd at {} did not answer the hello within {} ms",
                    self.socket.display(),
                    CONNECT_TIMEOUT.as_millis()
                )))
            }
        };
        if !client.server_hello().may_act_as_others {
            return Err(KmsError::unavailable(format!(
                "hsmd does not treat this frontend (unix user {}) as a frontend: add it to `frontends` in hsmd's configuration",
                client.server_hello().identity
            )));
        }
        tracing::info!(
            hello = %serde_json::to_string(client.server_hello()).unwrap_or_default(),
            "connected to hsmd"
        );
        *self.hello.write().unwrap_or_else(|p| p.into_inner()) = Some(client.shared_hello());
        *slot = Some(client.clone());
        Ok(client)
    }

    /// hsmd's hello (admins, slots, model) of the newest connection,
    /// connecting first when there was none yet.
    ///
    /// Errors: 503 when hsmd has never been reached.
    pub async fn hello(&self) -> Result<Arc<ServerHello>, KmsError> {
        let cached = self.hello.read().unwrap_or_else(|p| p.into_inner()).clone();
        match cached {
            Some(hello) => Ok(hello),
            None => Ok(self.client().await?.shared_hello()),
        }
    }

    /// Runs `op` for KMS user `as_user`; `what` names the request in errors
    /// (e.g. "Encrypt with hsm::0::k1").
    ///
    /// A request that meets a connection closed under it (hsmd restarted)
    /// is sent once more on a new connection when `op` is idempotent
    /// (everything but generate and destroy).
    ///
    /// Errors: [`KmsError::from_hsmd`].
    pub async fn call<O: Op>(
        &self,
        as_user: &str,
        what: &str,
        op: &O,
    ) -> Result<O::Output, KmsError> {
        self.run(Some(as_user), what, op).await
    }

    /// [`Hsmd::call`], with hsmd's error code beside the answer when hsmd
    /// refused the request (for callers that branch on it, e.g. not found).
    pub async fn call_code<O: Op>(
        &self,
        as_user: &str,
        what: &str,
        op: &O,
    ) -> Result<O::Output, (Option<hsmd_protocol::ErrorCode>, KmsError)> {
        let mut code = None;
        let result = self.run_with(Some(as_user), what, op, &mut code).await;
        result.map_err(|e| (code, e))
    }

    /// hsmd's `status`, asked as the frontend itself, with the same bounds
    /// as [`Hsmd::call`] (for `/health`).
    ///
    /// Errors: [`KmsError::from_hsmd`].
    pub async fn status(&self) -> Result<hsmd_protocol::StatusResult, KmsError> {
        self.run(None, "status", &hsmd_protocol::Status {}).await
    }

    async fn run<O: Op>(
        &self,
        as_user: Option<&str>,
        what: &str,
        op: &O,
    ) -> Result<O::Output, KmsError> {
        self.run_with(as_user, what, op, &mut None).await
    }

    /// Runs `op`; when hsmd refuses it, `code` gets hsmd's error code.
    async fn run_with<O: Op>(
        &self,
        as_user: Option<&str>,
        what: &str,
        op: &O,
        code: &mut Option<hsmd_protocol::ErrorCode>,
    ) -> Result<O::Output, KmsError> {
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| KmsError::unavailable("the frontend is shutting down"))?;
        let limit = if idempotent(O::NAME) {
            CALL_TIMEOUT
        } else {
            GENERATE_TIMEOUT
        };
        let attempt = async {
            let client = self.client().await?;
            let first = client.call(as_user, op).await;
            let answer = match first {
                Err(ClientError::Closed(_)) if idempotent(O::NAME) => {
                    self.client().await?.call(as_user, op).await
                }
                other => other,
            };
            answer.map_err(|e| {
                *code = e.code();
                KmsError::from_hsmd(what, e)
            })
        };
        tokio::time::timeout(limit, attempt)
            .await
            .unwrap_or_else(|_| {
                Err(KmsError::unavailable(format!(
                    "{what}: hsmd did not answer within {} s",
                    limit.as_secs()
                )))
            })
    }
}

/// How long hsmd may take to answer a request (the token may be queued
/// behind others: a SmartCard-HSM does one thing at a time).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a key generation or destroy may take (RSA-4096 on a card: minutes).
const GENERATE_TIMEOUT: Duration = Duration::from_secs(300);

fn idempotent(op: &str) -> bool {
    !matches!(op, "generate_key" | "generate_key_pair" | "destroy")
}
