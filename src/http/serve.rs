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
//!
//! Every connection is admitted first ([`super::gate`]: the global cap, the reserve
//! for the probes, the per-address cap), then its first request head is read and
//! checked here ([`super::head`]: JSON errors, the client's address behind trusted
//! proxies), then it goes to the direct event stream or to hyper, where each
//! request's body must arrive within `server.request_timeout_secs` of the handler
//! asking for it ([`BodyTimeout`]).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use socket2::{SockRef, TcpKeepalive};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::client_ip::TrustedProxies;
use super::error::ApiError;
use super::gate::{Admission, Gate, GateLimits, IpSlot, Permit};
use super::head::{self, HeadError, Prefixed};
use super::sse_direct::{is_sse_request, DirectSse};

/// Connections the kernel may hold completed but not yet accepted (capped by
/// `net.core.somaxconn`). The usual default of 128 overflowed in a reconnect storm
/// of 512 clients at once: dropped SYNs are retried after 1 s, then 2 s (measured:
/// connect p99 of 2 s; loadtests/RESULTS.md).
const LISTEN_BACKLOG: u32 = 4096;

/// TCP keepalive on every accepted socket: an event stream only writes, so a peer
/// that vanished (power loss, a NAT that forgot us) is found by the kernel's probes
/// after about `KEEPALIVE_IDLE` + 3 × `KEEPALIVE_INTERVAL` even between heartbeats.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// How long a refusal (503/429) may take to write before the socket is dropped.
const REFUSAL_WRITE: Duration = Duration::from_secs(1);

/// Refusals of an address over its share answered politely at once (after reading
/// the request head, so the client reads the answer to what it sent). Beyond these
/// the answer is written without waiting. They hold no place under the global cap
/// or in the reserve: a flood of refused sockets must not crowd out other clients
/// and the probes (measured by `scripts/hostile`, slow-heads: refusals that held a
/// place filled the cap). Keep cap + reserve + this below the open-file limit.
const REFUSALS_IN_FLIGHT: usize = 64;

/// Head timeout of a connection from the reserve: probes send their request at
/// once, and a slow head must not hold a reserved place for long.
const PROBE_HEAD_TIMEOUT: Duration = Duration::from_secs(2);

/// The share of a connection timeout taken off at random per connection.
const TIMEOUT_SPREAD: f64 = 0.2;

/// A connection timeout of `limit`, less up to [`TIMEOUT_SPREAD`] of it at random.
/// Sockets opened together (an attacker's burst, or every client of a restarted
/// proxy) would otherwise time out in the same timer tick, and the thousands of
/// answers and closes would run back to back ahead of every other request on the
/// runtime (measured by `scripts/hostile`, slow-bodies: 3,000 bodies timing out at
/// once stalled other tenants' publishes by 100-300 ms). Never longer than `limit`.
fn spread(limit: Duration) -> Duration {
    limit.mul_f64(1.0 - rand::random::<f64>() * TIMEOUT_SPREAD)
}

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

/// The connection limits of `[server]`.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    pub gate: GateLimits,
    pub trusted_proxies: TrustedProxies,
    /// A body not received within this, from when its handler reads it, gets a 408.
    pub request_timeout: Duration,
    /// A connection gets this long to send a complete request head.
    pub header_read_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and
/// waits for in-flight requests (the caller bounds that wait). Upgraded WebSockets
/// and direct event streams are not waited for here: the hub closes them.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    direct: DirectSse,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let connections = TaskTracker::new();
    let draining = CancellationToken::new();
    let mut http = http1::Builder::new();
    // Hyper's own limits sit above ours (head.rs), so a head we refuse gets our JSON
    // answer; only one beyond both gets hyper's empty one. A smaller read buffer
    // than hyper's default (~400 KiB) also bounds what a slow head can hold.
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(head::MAX_HEADERS * 2)
        .max_buf_size(head::MAX_HEAD * 4);
    // One allocation shared by every connection: an idle event stream holds this
    // pointer for its whole life, not its own copies (measured per connection).
    let full_answer = head::render_error(overloaded(), HeaderMap::new()).await;
    let per_address_answer = head::render_error(too_many_from_address(), HeaderMap::new()).await;
    // Probes from the reserve are answered once, then the place is given back.
    let mut probe_http = http.clone();
    probe_http.keep_alive(false);
    let shared = Arc::new(Shared {
        http,
        probe_http,
        router,
        direct,
        draining,
        gate: Gate::new(limits.gate.clone()),
        limits,
        full_answer,
        per_address_answer,
        refusals: Arc::new(tokio::sync::Semaphore::new(REFUSALS_IN_FLIGHT)),
    });
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
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
        configure(&stream);
        // Admitted here, in accept order, so the cap counts connections in the order
        // the kernel completed them.
        match admit(&shared, peer) {
            // Beyond cap and reserve nothing is spent on the socket: one try to
            // write the answer, then it is closed (no task, no wait).
            Err(Refusal::Full) => {
                let _ = stream.try_write(&shared.full_answer);
            }
            Err(Refusal::PerAddress(None)) => {
                let _ = stream.try_write(&shared.per_address_answer);
            }
            admitted => {
                connections.spawn(connection(stream, peer, admitted, shared.clone()));
            }
        }
    }
    drop(listener);
    shared.draining.cancel();
    connections.close();
    connections.wait().await;
    Ok(())
}

struct Shared {
    http: http1::Builder,
    /// The same, without keep-alive, for connections from the reserve.
    probe_http: http1::Builder,
    router: Router,
    direct: DirectSse,
    /// Cancelled at shutdown: hyper connections finish their request, then close.
    draining: CancellationToken,
    gate: Arc<Gate>,
    limits: ServerLimits,
    /// The 503 `overloaded` answer, rendered once: written without waiting when
    /// cap and reserve are full.
    full_answer: bytes::Bytes,
    /// The 429 `too_many_connections` answer, written without waiting when every
    /// refusal slot is taken.
    per_address_answer: bytes::Bytes,
    /// Slots for refusals answered after their head ([`REFUSALS_IN_FLIGHT`]).
    refusals: Arc<tokio::sync::Semaphore>,
}

/// Frames are small and already batched per flush: `TCP_NODELAY` sends them now.
/// Keepalive finds dead peers of streams that only write.
fn configure(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let keepalive = TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL);
    let _ = SockRef::from(stream).set_tcp_keepalive(&keepalive);
}

/// What a connection holds against the limits, for as long as any part of it lives:
/// the hyper connection, and a WebSocket upgraded from it (the handler keeps a clone).
#[derive(Clone)]
pub(crate) struct ConnHold(#[allow(dead_code)] Arc<(Permit, Option<IpSlot>)>);

/// What a connection was allowed at accept.
struct Admitted {
    permit: Permit,
    /// The cap is full: this connection comes from the reserve.
    probes_only: bool,
    /// The peer's slot when the peer is the client (not a trusted proxy).
    slot: Option<IpSlot>,
}

/// Why a connection was refused at accept.
enum Refusal {
    /// Cap and reserve are full: answered at once, holding nothing.
    Full,
    /// The address has its share: with a refusal slot, answered after its request
    /// head (or a second), so an HTTP client reads the answer to the request it
    /// sent; without one, answered at once. Holds no place under the global cap.
    PerAddress(Option<tokio::sync::OwnedSemaphorePermit>),
}

fn admit(shared: &Shared, peer: SocketAddr) -> Result<Admitted, Refusal> {
    let (permit, probes_only) = match shared.gate.admit() {
        Admission::Full(p) => (p, false),
        Admission::ProbesOnly(p) => (p, true),
        Admission::Refused => return Err(Refusal::Full),
    };
    // A peer that is not a trusted proxy is the client: counted before it sends a byte.
    let slot = if shared.limits.trusted_proxies.contains(peer.ip()) {
        None
    } else {
        match shared.gate.claim_ip(peer.ip().to_canonical()) {
            Some(slot) => Some(slot),
            None => {
                drop(permit);
                let slot = shared.refusals.clone().try_acquire_owned().ok();
                return Err(Refusal::PerAddress(slot));
            }
        }
    };
    Ok(Admitted {
        permit,
        probes_only,
        slot,
    })
}

/// One accepted connection: its first head read and checked, then a direct event
/// stream, or hyper with the router.
async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    admitted: Result<Admitted, Refusal>,
    shared: Arc<Shared>,
) {
    let Admitted {
        permit,
        probes_only,
        mut slot,
    } = match admitted {
        Ok(a) => a,
        Err(Refusal::Full) | Err(Refusal::PerAddress(None)) => return,
        Err(Refusal::PerAddress(Some(_slot))) => {
            let _ = head::read(&mut stream, REFUSAL_WRITE).await;
            return refuse(stream, too_many_from_address()).await;
        }
    };
    let trusted = &shared.limits.trusted_proxies;
    let head_timeout = if probes_only {
        PROBE_HEAD_TIMEOUT.min(shared.limits.header_read_timeout)
    } else {
        shared.limits.header_read_timeout
    };
    let first = match head::read(&mut stream, spread(head_timeout)).await {
        Ok(first) => first,
        Err(HeadError::Gone) => return,
        Err(HeadError::Bad(e)) => return refuse(stream, e).await,
    };
    let client = trusted.resolve(peer.ip(), &first.parts.headers);
    // Behind a trusted proxy the client is known from the first head: the
    // connection counts against that client (an event stream or a WebSocket is one
    // client's; a proxy's kept-alive connection is counted for its first client).
    if slot.is_none() {
        match shared.gate.claim_ip(client.0) {
            Some(s) => slot = Some(s),
            None => return refuse(stream, too_many_from_address()).await,
        }
    }
    let hold = ConnHold(Arc::new((permit, slot)));
    if probes_only && !is_probe(first.parts.uri.path()) {
        return refuse(stream, overloaded()).await;
    }
    let head::Head { mut parts, bytes } = first;
    if !probes_only && is_sse_request(&parts) {
        // The head's bytes are not kept for the stream's life.
        drop(bytes);
        parts.extensions.insert(client);
        let _hold = hold;
        return shared.direct.serve(stream, parts).await;
    }
    drop(parts);
    let io = TokioIo::new(Prefixed::new(bytes, stream));
    serve_hyper(io, peer, hold, probes_only, shared).await;
}

async fn serve_hyper(
    io: TokioIo<Prefixed>,
    peer: SocketAddr,
    hold: ConnHold,
    probes_only: bool,
    shared: Arc<Shared>,
) {
    let each = shared.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let (shared, hold) = (each.clone(), hold.clone());
        async move { Ok::<_, Infallible>(request(req, peer, hold, probes_only, &shared).await) }
    });
    let http = if probes_only {
        &shared.probe_http
    } else {
        &shared.http
    };
    let conn = http.serve_connection(io, service).with_upgrades();
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

/// One request on a hyper connection: the head limits, the client's address, the
/// probes-only rule, then the router within the request timeout.
async fn request(
    mut req: Request<Incoming>,
    peer: SocketAddr,
    hold: ConnHold,
    probes_only: bool,
    shared: &Shared,
) -> Response {
    if let Err(e) = head::check_limits(req.uri(), req.headers()) {
        return closing(e);
    }
    if probes_only && !is_probe(req.uri().path()) {
        return closing(overloaded());
    }
    let client = shared
        .limits
        .trusted_proxies
        .resolve(peer.ip(), req.headers());
    req.extensions_mut().insert(client);
    req.extensions_mut().insert(hold);
    req.extensions_mut()
        .insert(BodyTimeout(spread(shared.limits.request_timeout)));
    let Ok(mut response) = shared.router.clone().oneshot(req).await;
    if response.status() == StatusCode::REQUEST_TIMEOUT {
        // The rest of the body may still be coming: this connection is done.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// How long a request's body may take to arrive, from when its handler starts
/// reading it (`extract::read_body` answers 408 after that). Only the client's part is
/// timed: a slow body must not hold a connection, but the hub's own work on a request
/// is never cut short, since a bulk send cancelled between its chunk transactions
/// would be left half-enqueued, and a handler may first wait its turn (bulk sends do)
/// before it reads.
#[derive(Debug, Clone, Copy)]
pub(super) struct BodyTimeout(pub(super) Duration);

/// An error answer after which hyper closes the connection (a body may be unread).
fn closing(e: ApiError) -> Response {
    let mut res = e.into_response();
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

/// The operations probes, served from the reserve when the cap is full.
fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

fn overloaded() -> ApiError {
    let mut e = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        "this node has too many open connections; retry later or elsewhere",
    );
    e.retry_after = Some(1);
    e
}

fn too_many_from_address() -> ApiError {
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_connections",
        "too many open connections from this address",
    );
    e.retry_after = Some(1);
    e
}

/// Answers `error` and closes, within a short bound: a refused client gets no more time.
async fn refuse(mut stream: TcpStream, error: ApiError) {
    head::write_error(&mut stream, error, HeaderMap::new(), REFUSAL_WRITE).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_spread_below_their_limit() {
        let limit = Duration::from_secs(5);
        let spread: Vec<Duration> = (0..1000).map(|_| spread(limit)).collect();
        let floor = limit.mul_f64(1.0 - TIMEOUT_SPREAD);
        assert!(spread.iter().all(|d| *d <= limit && *d >= floor));
        // Spread over (nearly) the whole range, not bunched at one value.
        let (min, max) = (spread.iter().min().unwrap(), spread.iter().max().unwrap());
        assert!(*max - *min > limit.mul_f64(TIMEOUT_SPREAD * 0.9));
    }

    #[tokio::test]
    async fn accepted_sockets_have_keepalive_and_nodelay() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move { TcpStream::connect(addr).await.unwrap() });
        let (stream, _) = listener.accept().await.unwrap();
        let _client = client.await.unwrap();
        assert!(!SockRef::from(&stream).keepalive().unwrap());
        configure(&stream);
        assert!(SockRef::from(&stream).keepalive().unwrap());
        assert!(stream.nodelay().unwrap());
    }
}
