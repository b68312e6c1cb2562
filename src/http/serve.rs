//! The HTTP/1.1 server: the accept loop, per-connection settings, graceful shutdown.
//!
//! Why not `axum::serve`: measured with heaptrack and `perf` (loadtests/RESULTS.md),
//! - `axum::serve(listener, router)` rebuilt the router's route table for every
//!   accepted connection (`Router::with_state` per connection: ~48 KiB and a
//!   good part of the 0.3 ms of CPU each connect cost);
//! - it offers no place to set `TCP_NODELAY`, and it serves HTTP/2 by sniffing,
//!   whose connection state is several KiB per connection (plain-text HTTP/2 is
//!   not used by browsers; a TLS proxy in front speaks HTTP/1.1 to us);
//! - an event stream is a request that never ends, and under hyper it keeps
//!   hyper's buffers for its whole life: those connections are served by
//!   [`super::sse_direct`] instead.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::client_ip::ClientIp;
use super::sse_direct::{is_sse_request, DirectSse, PEEK_LEN};
use tower::ServiceExt;

/// Connections the kernel may hold completed but not yet accepted (capped by
/// `net.core.somaxconn`). The usual default of 128 overflowed in a reconnect storm
/// of 512 clients at once: dropped SYNs are retried after 1 s, then 2 s (measured:
/// connect p99 of 2 s; loadtests/RESULTS.md).
const LISTEN_BACKLOG: u32 = 4096;

/// Binds the listening socket (address reuse on, so a restart can bind at once).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Time a new connection has to send its first request head.
pub(super) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and
/// waits for in-flight requests (the caller bounds that wait). Upgraded WebSockets
/// and direct event streams are not waited for here: the hub closes them.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    direct: DirectSse,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let connections = TaskTracker::new();
    let draining = CancellationToken::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    // One allocation shared by every connection: an idle event stream holds this
    // pointer for its whole life, not its own copies (measured per connection).
    let shared = Arc::new(Shared {
        http,
        router,
        direct,
        draining,
    });
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
        };
        let (stream, peer) = stream;
        // Frames are small and already batched per flush: send them now.
        let _ = stream.set_nodelay(true);
        connections.spawn(connection(stream, peer, shared.clone()));
    }
    drop(listener);
    shared.draining.cancel();
    connections.close();
    connections.wait().await;
    Ok(())
}

struct Shared {
    http: http1::Builder,
    router: Router,
    direct: DirectSse,
    /// Cancelled at shutdown: hyper connections finish their request, then close.
    draining: CancellationToken,
}

/// One accepted connection: a direct event stream, or hyper with the router.
async fn connection(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    match first_bytes(&stream).await {
        First::Sse => return shared.direct.serve(stream).await,
        First::Other => {}
        First::Nothing => return,
    }
    // The client's address for per-address limits: the TCP peer (proxy headers
    // are resolved by the `server.trusted_proxies` work, which replaces this).
    let client = ClientIp(peer.ip());
    let router = shared.router.clone().map_request(
        move |mut req: axum::extract::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(client);
            req
        },
    );
    let service = TowerToHyperService::new(router);
    let conn = shared
        .http
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        () = shared.draining.cancelled() => {
            // Finish the request in flight, then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

enum First {
    /// `GET /v1/sse`: served directly.
    Sse,
    /// Anything else, or too few bytes yet to tell: served by hyper as usual.
    Other,
    /// Closed, failed, or silent for [`HEADER_READ_TIMEOUT`]: dropped.
    Nothing,
}

/// Peeks at the first bytes without consuming them.
async fn first_bytes(stream: &TcpStream) -> First {
    let mut probe = [0u8; PEEK_LEN];
    match tokio::time::timeout(HEADER_READ_TIMEOUT, stream.peek(&mut probe)).await {
        Ok(Ok(0)) | Ok(Err(_)) | Err(_) => First::Nothing,
        Ok(Ok(n)) if is_sse_request(&probe[..n]) => First::Sse,
        Ok(Ok(_)) => First::Other,
    }
}

/// Connection-level errors concern one client; others (such as EMFILE: out of file
/// descriptors) are logged and accepting pauses for a second, as hyper used to.
async fn accept_error(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; pausing for 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
