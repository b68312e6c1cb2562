//! The first request head of every connection, read and checked before hyper sees
//! it, and the limits every later head is checked against.
//!
//! Why: hyper answers a head it rejects (too large, too many headers, malformed)
//! itself, with an empty body; the contract promises a JSON error everywhere. So
//! the accept loop reads the first head here (httparse), answers a bad one in the
//! contract's shape, and hands the bytes to hyper through [`Prefixed`]. Later heads
//! on a kept-alive connection are checked by [`check_limits`] before the router;
//! hyper's own limits are set above ours, so only a head beyond both (see
//! `serve.rs`) still gets hyper's empty answer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::header::{HeaderName, HeaderValue};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, Request, StatusCode, Uri, Version};
use axum::response::IntoResponse;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::error::ApiError;

/// Largest request head accepted (request line and headers).
pub(super) const MAX_HEAD: usize = 16 * 1024;
/// Largest request target (path and query) accepted.
pub(super) const MAX_URI: usize = 8 * 1024;
/// Most header lines accepted.
pub(super) const MAX_HEADERS: usize = 100;
/// Largest error body rendered (they are small JSON objects).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A connection's first request: its parsed head and every byte read so far.
pub(super) struct Head {
    pub(super) parts: Parts,
    /// The head and any body bytes that came with it, for hyper to read again.
    pub(super) bytes: Bytes,
}

pub(super) enum HeadError {
    /// Closed, failed or too slow: nothing to answer.
    Gone,
    /// Answer this, then close.
    Bad(ApiError),
}

/// Reads the first request head within `timeout`.
pub(super) async fn read(stream: &mut TcpStream, timeout: Duration) -> Result<Head, HeadError> {
    match tokio::time::timeout(timeout, read_head(stream)).await {
        Ok(result) => result,
        Err(_) => Err(HeadError::Gone),
    }
}

async fn read_head(stream: &mut TcpStream) -> Result<Head, HeadError> {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if let Some(parts) = parse(&buf).map_err(HeadError::Bad)? {
            return Ok(Head {
                parts,
                bytes: buf.freeze(),
            });
        }
        if buf.len() >= MAX_HEAD {
            return Err(HeadError::Bad(too_large(&buf)));
        }
        let mut limited = (&mut *stream).take((MAX_HEAD - buf.len()) as u64);
        match limited.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return Err(HeadError::Gone),
            Ok(_) => {}
        }
    }
}

/// Parses a request head from the start of `buf`: `Ok(None)` while incomplete.
/// Never panics, whatever the bytes (a property test feeds it garbage).
pub(super) fn parse(buf: &[u8]) -> Result<Option<Parts>, ApiError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(_)) => to_parts(&req).map(Some),
        Ok(httparse::Status::Partial) => {
            if request_line_too_long(buf) {
                return Err(uri_too_long());
            }
            Ok(None)
        }
        Err(httparse::Error::TooManyHeaders) => Err(too_many_headers()),
        Err(_) => Err(bad_request()),
    }
}

/// A head that reached [`MAX_HEAD`] unfinished: its target or its headers are too long.
fn too_large(buf: &[u8]) -> ApiError {
    if request_line_too_long(buf) || !buf.contains(&b'\n') {
        uri_too_long()
    } else {
        headers_too_large()
    }
}

fn request_line_too_long(buf: &[u8]) -> bool {
    let line = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    line > MAX_URI + 32
}

fn to_parts(req: &httparse::Request<'_, '_>) -> Result<Parts, ApiError> {
    let path = req.path.unwrap_or("/");
    if path.len() > MAX_URI {
        return Err(uri_too_long());
    }
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let method =
        Method::from_bytes(req.method.unwrap_or("GET").as_bytes()).map_err(|_| bad_request())?;
    let uri: Uri = path.parse().map_err(|_| bad_request())?;
    let mut builder = Request::builder().method(method).uri(uri).version(version);
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| bad_request())?;
        let value = HeaderValue::from_bytes(h.value).map_err(|_| bad_request())?;
        builder = builder.header(name, value);
    }
    let (parts, ()) = builder.body(()).map_err(|_| bad_request())?.into_parts();
    Ok(parts)
}

/// The limits of [`parse`], for the later heads hyper parsed.
pub(super) fn check_limits(uri: &Uri, headers: &HeaderMap) -> Result<(), ApiError> {
    let target = uri.path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_URI {
        return Err(uri_too_long());
    }
    if headers.len() > MAX_HEADERS {
        return Err(too_many_headers());
    }
    let size: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    if size > MAX_HEAD {
        return Err(headers_too_large());
    }
    Ok(())
}

pub(super) fn bad_request() -> ApiError {
    ApiError::bad_request("malformed HTTP request")
}

fn uri_too_long() -> ApiError {
    ApiError::new(
        StatusCode::URI_TOO_LONG,
        "uri_too_long",
        format!("the request target is longer than {MAX_URI} bytes"),
    )
}

fn headers_too_large() -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "headers_too_large",
        format!("the request head is larger than {MAX_HEAD} bytes"),
    )
}

fn too_many_headers() -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "headers_too_large",
        format!("more than {MAX_HEADERS} header lines"),
    )
}

/// Writes `error` in the contract's JSON shape with `Connection: close`, within
/// `timeout`, then shuts the socket down. What the client still sends meanwhile is
/// read and dropped (up to a bound) before the socket closes: closing with unread
/// bytes would reset the connection and could destroy the answer before it is read.
pub(super) async fn write_error(
    stream: &mut TcpStream,
    error: ApiError,
    extra: HeaderMap,
    timeout: Duration,
) {
    let out = render_error(error, extra).await;
    let write = async {
        stream.write_all(&out).await?;
        stream.shutdown().await?;
        let mut sink = tokio::io::sink();
        tokio::io::copy(&mut (&mut *stream).take(LINGER_BYTES), &mut sink).await
    };
    let _ = tokio::time::timeout(timeout, write).await;
}

/// The bytes of an error answer: head (`Connection: close`) and JSON body.
pub(super) async fn render_error(error: ApiError, extra: HeaderMap) -> Bytes {
    let (parts, body) = error.into_response().into_parts();
    // The body is a small JSON object already in memory: this cannot fail.
    let body = axum::body::to_bytes(body, MAX_ERROR_BODY)
        .await
        .unwrap_or_default();
    let mut headers = parts.headers;
    headers.extend(extra);
    let mut out =
        BytesMut::from(&response_head(parts.status, &headers, None, Some(body.len()))[..]);
    out.extend_from_slice(&body);
    out.freeze()
}

/// Most bytes read and dropped after an error answer, before the socket closes.
const LINGER_BYTES: u64 = 64 * 1024;

/// `HTTP/1.1 <status>`, the headers, and the framing headers. Always `Connection: close`.
pub(super) fn response_head(
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

/// The socket, with bytes already read from it served first (the first head).
/// The bytes are freed once hyper has read them.
pub(super) struct Prefixed {
    prefix: Bytes,
    inner: TcpStream,
}

impl Prefixed {
    pub(super) fn new(prefix: Bytes, inner: TcpStream) -> Self {
        Self { prefix, inner }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.has_remaining() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            if !self.prefix.has_remaining() {
                self.prefix = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_request_head_becomes_parts() {
        let raw = b"POST /v1/x?token=t HTTP/1.1\r\nHost: x\r\nLast-Event-ID: n1\r\n\r\nbody";
        let parts = parse(raw).unwrap().unwrap();
        assert_eq!(parts.method, Method::POST);
        assert_eq!(parts.uri.query(), Some("token=t"));
        assert_eq!(parts.headers["last-event-id"], "n1");
        assert_eq!(parts.version, Version::HTTP_11);
        assert!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
    }

    #[test]
    fn oversized_heads_are_named() {
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_URI + 1));
        assert_eq!(parse(long.as_bytes()).unwrap_err().status, 414);
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: v\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(parse(raw.as_bytes()).unwrap_err().status, 431);
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nbad header\r\n\r\n")
                .unwrap_err()
                .status,
            400
        );
    }

    fn assert_client_error(result: Result<Option<Parts>, ApiError>) {
        if let Err(e) = result {
            assert!(e.status.is_client_error(), "{:?}", e.status);
            assert!(!e.code.is_empty() && !e.message.is_empty());
        }
    }

    proptest! {
        #[test]
        fn garbage_never_panics_and_is_a_client_error(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            assert_client_error(parse(&bytes));
        }

        #[test]
        fn mangled_heads_never_panic(
            method in "[A-Z]{0,8}|GET|\\PC{0,4}",
            target in "\\PC{0,64}",
            name in "\\PC{0,16}",
            value in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut raw = format!("{method} {target} HTTP/1.1\r\n{name}: ").into_bytes();
            raw.extend_from_slice(&value);
            raw.extend_from_slice(b"\r\n\r\n");
            assert_client_error(parse(&raw));
        }
    }
}
