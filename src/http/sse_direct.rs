//! `GET /v1/sse` served straight on the TCP connection, without hyper.
//!
//! Why: an event stream is a request that never ends, so under hyper its
//! connection keeps hyper's read buffer (8–16 KiB), the connection state machine
//! and a boxed body for the life of the stream: about 27 KiB per idle SSE client,
//! measured with heaptrack (loadtests/RESULTS.md). Here a stream holds its session,
//! a heartbeat timer and the socket: a few KiB.
//!
//! Only a connection whose *first* request is `GET /v1/sse` comes here (the accept
//! loop in [`super::serve`] reads and checks that first head, [`super::head`]). Any other connection, such
//! as a stream opened on a reused keep-alive connection, goes to hyper and the
//! router's handler. Both paths share the same code for everything but the
//! HTTP framing: authentication and the session ([`open_sse`]), the events
//! ([`SseEvents`]), the headers ([`sse_headers`]) and the error bodies
//! ([`ApiError`]'s response). The stream ends with the connection (`Connection:
//! close`): nothing can follow a request that never ends.

use std::convert::Infallible;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, Request, StatusCode, Version};
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tower::{service_fn, Layer, ServiceExt};
use tower_http::cors::CorsLayer;

use super::error::ApiError;
use super::head::{response_head, write_error};
use super::realtime::{open_sse, sse_headers};
use super::AppState;

/// Whether a connection's first request is served here.
pub(super) fn is_sse_request(parts: &Parts) -> bool {
    parts.method == Method::GET && parts.uri.path() == "/v1/sse"
}

/// What the direct path needs besides the handlers' state.
#[derive(Clone)]
pub struct DirectSse {
    pub(crate) state: AppState,
    /// The router's CORS layer, run here on each stream's request.
    pub(crate) cors: CorsLayer,
}

impl DirectSse {
    /// Serves the connection: its one request (read by the accept loop, with the
    /// client's address in its extensions), then the stream until either side ends it.
    pub(super) async fn serve(&self, mut stream: TcpStream, parts: Parts) {
        let cors = self.cors_headers(&parts).await;
        let mut events = match open_sse(&self.state, &parts).await {
            Ok(events) => events,
            Err(e) => return self.write_error(&mut stream, e, cors).await,
        };
        tracing::debug!(uri = %super::redact::redacted_uri(&parts.uri), "event stream opened (direct)");
        let chunked = parts.version == Version::HTTP_11;
        drop(parts);

        let mut head = HeaderMap::new();
        sse_headers(&mut head);
        head.extend(cors);
        let head = response_head(StatusCode::OK, &head, chunked.then_some("chunked"), None);
        if self.write(&mut stream, &head).await.is_err() {
            return;
        }
        loop {
            let chunk = tokio::select! {
                chunk = events.next_chunk() => chunk,
                // The client never sends after its request: readable means closed
                // (or bytes we ignore). Checking keeps dead streams from lingering.
                closed = client_gone(&stream) => if closed { return } else { continue },
            };
            let Some(chunk) = chunk else { break };
            let framed = if chunked { chunk_frame(&chunk) } else { chunk };
            if self.write(&mut stream, &framed).await.is_err() {
                return;
            }
        }
        if chunked {
            let _ = self.write(&mut stream, b"0\r\n\r\n").await;
        }
        let _ = stream.shutdown().await;
    }

    /// Writes within the realtime write timeout; an error or a timeout ends the stream.
    async fn write(&self, stream: &mut TcpStream, bytes: &[u8]) -> Result<(), ()> {
        let timeout = self.state.settings.write_timeout;
        match tokio::time::timeout(timeout, stream.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }

    /// Writes an error response in the contract's JSON shape, then closes.
    async fn write_error(&self, stream: &mut TcpStream, error: ApiError, extra: HeaderMap) {
        write_error(stream, error, extra, self.state.settings.write_timeout).await;
    }

    /// The headers the router's CORS layer adds to this request: the same layer,
    /// run on the request's method and headers.
    async fn cors_headers(&self, parts: &Parts) -> HeaderMap {
        let mut probe = Request::new(Body::empty());
        *probe.method_mut() = parts.method.clone();
        *probe.headers_mut() = parts.headers.clone();
        let empty = service_fn(|_: Request<Body>| async {
            Ok::<_, Infallible>(Response::new(Body::empty()))
        });
        match self.cors.layer(empty).oneshot(probe).await {
            Ok(response) => response.into_parts().0.headers,
            Err(never) => match never {},
        }
    }
}

/// Waits until the socket is readable; true if the client closed it (or it failed).
/// Stray bytes are read and dropped.
async fn client_gone(stream: &TcpStream) -> bool {
    if stream.readable().await.is_err() {
        return true;
    }
    let mut scratch = [0u8; 64];
    match stream.try_read(&mut scratch) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

/// One chunk of `Transfer-Encoding: chunked`.
fn chunk_frame(data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 12);
    out.put_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.put_slice(data);
    out.put_slice(b"\r\n");
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_event_stream_path_is_taken() {
        let parts = |m: Method, uri: &str| {
            let (p, ()) = Request::builder()
                .method(m)
                .uri(uri)
                .body(())
                .unwrap()
                .into_parts();
            p
        };
        assert!(is_sse_request(&parts(Method::GET, "/v1/sse?token=x")));
        assert!(is_sse_request(&parts(Method::GET, "/v1/sse")));
        assert!(!is_sse_request(&parts(Method::GET, "/v1/sse2")));
        assert!(!is_sse_request(&parts(Method::POST, "/v1/sse")));
        assert!(!is_sse_request(&parts(Method::GET, "/v1/ws")));
    }

    #[test]
    fn chunks_are_framed_with_their_hex_length() {
        assert_eq!(
            &chunk_frame(b"0123456789abcdef!")[..],
            b"11\r\n0123456789abcdef!\r\n"
        );
    }
}
