//! The accept loop, for plain HTTP and HTTPS alike: at most
//! `max_connections` connections at once (past that, new ones wait in the
//! listen backlog), each in its own task with bounded time for the TLS
//! handshake and for request headers (idle keep-alive connections are
//! closed after the same time), HTTP/1.1 or HTTP/2, and a graceful end on
//! shutdown. Request bodies are bounded in time by [`super::read_body`].

use crate::auth::PeerCertificate;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// How long a client may take to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an HTTP/1 client may take to send a request's headers, and how
/// long a keep-alive connection may stay idle between requests.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an HTTP/2 connection may stay without an answered keep-alive ping.
pub const HTTP2_KEEP_ALIVE: Duration = Duration::from_secs(20);
/// How long in-flight connections may take to finish after shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Connection caps of [`serve`].
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// HTTP connections open at once, all peers (`max_connections`).
    pub max_connections: usize,
    /// Connections of one peer address (`max_connections_per_peer`).
    pub max_per_peer: usize,
    /// Connections of one peer address that have not sent their first
    /// request's headers yet (`max_pending_per_peer`).
    pub max_pending_per_peer: usize,
}

impl ConnectionLimits {
    /// `max_connections` with per-peer caps that do not bind
    /// (`max_connections` each).
    pub fn total(max_connections: usize) -> Self {
        Self {
            max_connections,
            max_per_peer: max_connections,
            max_pending_per_peer: max_connections,
        }
    }
}

/// Serves `app` on `listener` (over TLS when `tls` is given) until
/// `shutdown` is cancelled, with at most `limits.max_connections` open at
/// once. A peer address over its caps ([`super::peers`]) has its new
/// connection closed at once (a warning at most once per second).
///
/// With TLS, the verified client's end-entity certificate, if any, is in
/// every request's extensions as [`PeerCertificate`]. On shutdown it stops
/// accepting, asks open connections to finish their requests and returns
/// once they have, or after [`SHUTDOWN_GRACE`].
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    app: axum::Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) {
    let max_connections = limits.max_connections;
    let peers = super::peers::PeerTable::new(limits.max_per_peer, limits.max_pending_per_peer);
    let mut last_refusal_logged: Option<std::time::Instant> = None;
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let connections = TaskTracker::new();
    let mut warned_full = false;
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if !warned_full {
                    tracing::warn!(
                        "{max_connections} connections open (max_connections): new ones wait until one closes"
                    );
                    warned_full = true;
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    p = slots.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                }
            }
        };
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // E.g. out of file descriptors: do not spin.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        warned_full = false;
        let ticket = match peers.admit(peer.ip()) {
            Ok(t) => Arc::new(t),
            Err(refusal) => {
                // Dropping the stream closes it; the permit goes back.
                drop(stream);
                if last_refusal_logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!("{refusal}");
                    last_refusal_logged = Some(std::time::Instant::now());
                }
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let _permit = permit;
            let Some(acceptor) = acceptor else {
                return connection(stream, None, app, &shutdown, peer, ticket).await;
            };
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            let stream = tokio::select! {
                () = shutdown.cancelled() => return,
                done = handshake => match done {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::debug!("TLS handshake with {peer} failed: {e}");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!("TLS handshake with {peer} timed out after {HANDSHAKE_TIMEOUT:?}");
                        return;
                    }
                },
            };
            let certificate = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(<[_]>::first)
                .map(|c| PeerCertificate(Arc::new(c.clone().into_owned())));
            connection(stream, certificate, app, &shutdown, peer, ticket).await;
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections still open {SHUTDOWN_GRACE:?} after shutdown were abandoned");
    }
}

/// Serves one connection's requests until it ends or `shutdown`.
async fn connection<S>(
    stream: S,
    certificate: Option<PeerCertificate>,
    app: axum::Router,
    shutdown: &CancellationToken,
    peer: std::net::SocketAddr,
    ticket: Arc<super::peers::PeerTicket>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = app.map_request(move |mut request: axum::http::Request<_>| {
        // The headers of a request are in: no longer pending.
        ticket.request_seen();
        if let Some(certificate) = &certificate {
            request.extensions_mut().insert(certificate.clone());
        }
        request
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(HTTP2_KEEP_ALIVE)
        .keep_alive_timeout(HTTP2_KEEP_ALIVE);
    let connection = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service));
    let mut connection = std::pin::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        () = shutdown.cancelled() => {
            // Finish the requests in flight, take no new ones.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!("connection with {peer} ended: {e}");
    }
}
