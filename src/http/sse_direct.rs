//! `GET /v1/sse` served straight on the TCP connection, without hyper.
//!
//! Why: an event stream is a request that never ends, so under hyper its
//! connection keeps hyper's read buffer (8–16 KiB), the connection state machine
//! and a boxed body for the life of the stream: about 27 KiB per idle SSE client,
//! measured with heaptrack (loadtests/RESULTS.md). Here a stream holds its session,
//! a heartbeat timer and the socket: a few KiB.
//!
//! Only a connection whose *first* request is `GET /v1/sse` comes here (the accept
//! loop in [`super::serve`] peeks at the first bytes). Any other connection, such
//! as a stream opened on a reused keep-alive connection, goes to hyper and the
//! router's handler. Both paths share the same code for everything but the
//! HTTP framing: authentication and the session ([`open_sse`]), the events
//! ([`SseEvents`]), the headers ([`sse_headers`]) and the error bodies
//! ([`ApiError`]'s response). The stream ends with the connection (`Connection:
//! close`): nothing can follow a request that never ends.

use std::convert::Infallible;

use axum::body::Body;
use axum::http::header::{HeaderName, HeaderValue};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, Request, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tower::{service_fn, Layer, ServiceExt};
use tower_http::cors::CorsLayer;

use super::error::ApiError;
use super::realtime::{open_sse, sse_headers};
use super::serve::HEADER_READ_TIMEOUT;
use super::AppState;

/// The bytes a connection must start with to be served here.
pub(super) fn is_sse_request(first_bytes: &[u8]) -> bool {
    first_bytes.len() > PREFIX.len()
        && first_bytes.starts_with(PREFIX)
        && matches!(first_bytes[PREFIX.len()], b' ' | b'?')
}

const PREFIX: &[u8] = b"GET /v1/sse";
/// How many bytes the accept loop peeks at: the prefix and the byte after it.
pub(super) const PEEK_LEN: usize = PREFIX.len() + 1;

/// Largest request head accepted (hyper's smallest limit is the same).
const MAX_HEAD: usize = 8 * 1024;
/// Most header lines accepted.
const MAX_HEADERS: usize = 64;
/// Largest error body rendered (they are small JSON objects).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// What the direct path needs besides the handlers' state.
#[derive(Clone)]
pub struct DirectSse {
    pub(crate) state: AppState,
    /// The router's CORS layer, run here on each stream's request.
    pub(crate) cors: CorsLayer,
}

impl DirectSse {
    /// Serves the connection: one request, then the stream until either side ends it.
    pub(super) async fn serve(&self, mut stream: TcpStream) {
        let parts = match tokio::time::timeout(HEADER_READ_TIMEOUT, read_request(&mut stream)).await
        {
            Ok(Ok(parts)) => parts,
            Ok(Err(e)) => return self.write_error(&mut stream, e, HeaderMap::new()).await,
            Err(_) => return,
        };
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
        let (parts, body) = error.into_response().into_parts();
        let Ok(body) = axum::body::to_bytes(body, MAX_ERROR_BODY).await else {
            return;
        };
        let mut headers = parts.headers;
        headers.extend(extra);
        let mut out = response_head(parts.status, &headers, None, Some(body.len())).to_vec();
        out.extend_from_slice(&body);
        if self.write(stream, &out).await.is_ok() {
            let _ = stream.shutdown().await;
        }
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

/// Reads and parses the request head. The buffer is dropped before the stream starts.
async fn read_request(stream: &mut TcpStream) -> Result<Parts, ApiError> {
    use tokio::io::AsyncReadExt;
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if buf.len() >= MAX_HEAD {
            return Err(ApiError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                "the request head is larger than 8 KiB",
            ));
        }
        let mut limited = (&mut *stream).take((MAX_HEAD - buf.len()) as u64);
        if limited
            .read_buf(&mut buf)
            .await
            .map_err(|_| bad_request())?
            == 0
        {
            return Err(bad_request());
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => return to_parts(&req),
            Ok(httparse::Status::Partial) => continue,
            Err(_) => return Err(bad_request()),
        }
    }
}

fn bad_request() -> ApiError {
    ApiError::bad_request("malformed HTTP request")
}

fn to_parts(req: &httparse::Request<'_, '_>) -> Result<Parts, ApiError> {
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut builder = Request::builder()
        .method(Method::GET)
        .uri(req.path.unwrap_or("/"))
        .version(version);
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| bad_request())?;
        let value = HeaderValue::from_bytes(h.value).map_err(|_| bad_request())?;
        builder = builder.header(name, value);
    }
    let (parts, ()) = builder.body(()).map_err(|_| bad_request())?.into_parts();
    Ok(parts)
}

/// `HTTP/1.1 <status>`, the headers, and the framing headers. Always `Connection: close`.
fn response_head(
    status: StatusCode,
    headers: &HeaderMap,
    transfer_encoding: Option<&str>,
    content_length: Option<usize>,
) -> Bytes {
    let mut out = BytesMut::with_capacity(512);
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(status.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.put_slice(b"\r\n");
    for (name, value) in headers {
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    if let Some(te) = transfer_encoding {
        out.put_slice(b"transfer-encoding: ");
        out.put_slice(te.as_bytes());
        out.put_slice(b"\r\n");
    }
    if let Some(len) = content_length {
        out.put_slice(format!("content-length: {len}\r\n").as_bytes());
    }
    out.put_slice(b"connection: close\r\n\r\n");
    out.freeze()
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
        assert!(is_sse_request(b"GET /v1/sse?token=x"));
        assert!(is_sse_request(b"GET /v1/sse HTTP/1.1"));
        assert!(!is_sse_request(b"GET /v1/sse2 HTTP/1.1"));
        assert!(!is_sse_request(b"GET /v1/ss"));
        assert!(!is_sse_request(b"POST /v1/sse HTTP/1.1"));
        assert!(!is_sse_request(b"GET /v1/ws HTTP/1.1"));
    }

    #[test]
    fn chunks_are_framed_with_their_hex_length() {
        assert_eq!(
            &chunk_frame(b"0123456789abcdef!")[..],
            b"11\r\n0123456789abcdef!\r\n"
        );
    }

    #[test]
    fn a_request_head_becomes_parts() {
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut req = httparse::Request::new(&mut headers);
        let raw = b"GET /v1/sse?token=t HTTP/1.1\r\nHost: x\r\nLast-Event-ID: n1\r\n\r\n";
        assert!(req.parse(raw).unwrap().is_complete());
        let parts = to_parts(&req).unwrap();
        assert_eq!(parts.uri.query(), Some("token=t"));
        assert_eq!(parts.headers["last-event-id"], "n1");
        assert_eq!(parts.version, Version::HTTP_11);
    }
}
