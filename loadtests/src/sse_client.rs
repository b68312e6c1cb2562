//! The Server-Sent Events transport: a minimal HTTP/1.1 client over a TCP stream the tool
//! opened itself (source address choice, ~8 KiB per connection), an incremental
//! `Transfer-Encoding: chunked` decoder and an incremental `text/event-stream` parser.
//!
//! A general HTTP client would do, but for 18,000 open streams the client's own memory and CPU
//! matter, and the response of `GET /v1/sse` is simple: a head, then an endless body.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use crate::session::Session;

/// Bytes asked for per read; the buffer only grows past it for an event larger than that.
const READ_CHUNK: usize = 4096;
/// Longest response head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Longest SSE line accepted (an event's `data` is a notification of at most ~13 KiB).
const MAX_LINE: usize = 1024 * 1024;

/// Connect, read the response head, then parse events until the fleet stops or the hub closes.
pub(crate) async fn run(session: &mut Session) {
    let shared = session.shared().clone();
    let cancel = shared.cancel.clone();
    let deadline = Instant::now() + shared.connect_timeout;
    let source_ip = session.plan().source_ip;
    let request = shared.target.sse_request(&session.plan().token);

    let open = async {
        let mut stream = shared
            .target
            .connect(source_ip)
            .await
            .map_err(|e| format!("tcp {:?}", e.kind()))?;
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("io {:?}", e.kind()))?;
        let (body, framing) = read_head(&mut stream).await?;
        Ok::<_, String>((stream, body, framing))
    };
    let (mut stream, mut raw, framing) = tokio::select! {
        _ = cancel.cancelled() => return,
        result = timeout_at(deadline, open) => match result {
            Ok(Ok(opened)) => opened,
            Ok(Err(kind)) => return session.fail(kind),
            Err(_) => return session.fail("timeout (connect/response head)"),
        },
    };

    let mut body = BodyDecoder::new(framing);
    let mut decoded = BytesMut::new();
    let mut parser = SseParser::default();
    loop {
        if let Err(e) = body.decode(&mut raw, &mut decoded) {
            session.closed(format!("bad body: {e}"));
            return;
        }
        if let Err(e) = parser.feed(&mut decoded, |kind, data| session.on_event(kind, data)) {
            session.closed(format!("bad event stream: {e}"));
            return;
        }
        if body.is_done() {
            session.closed("eof");
            return;
        }
        raw.reserve(READ_CHUNK);
        let read = if session.is_ready() {
            tokio::select! {
                _ = cancel.cancelled() => return,
                read = stream.read_buf(&mut raw) => read,
            }
        } else {
            tokio::select! {
                _ = cancel.cancelled() => return,
                read = timeout_at(deadline, stream.read_buf(&mut raw)) => match read {
                    Ok(read) => read,
                    Err(_) => return session.fail("timeout (waiting for first event)"),
                },
            }
        };
        match read {
            Ok(0) => {
                session.closed("eof");
                return;
            }
            Ok(_) => {}
            Err(e) => {
                session.closed(format!("io {:?}", e.kind()));
                return;
            }
        }
    }
}

/// Reads the response head; returns the body bytes already read and how the body is framed.
async fn read_head(stream: &mut TcpStream) -> Result<(BytesMut, Framing), String> {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        let n = stream
            .read_buf(&mut buf)
            .await
            .map_err(|e| format!("io {:?}", e.kind()))?;
        if n == 0 {
            return Err("closed before response head".to_string());
        }
        if let Some((head_len, framing)) = parse_head(&buf)? {
            buf.advance(head_len);
            return Ok((buf, framing));
        }
        if buf.len() > MAX_HEAD {
            return Err("response head too long".to_string());
        }
    }
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Chunked,
    Length(u64),
    UntilClose,
}

/// Parses a complete response head: `Ok(None)` while incomplete, an error label for a
/// non-200 status or a malformed head.
pub(crate) fn parse_head(buf: &[u8]) -> Result<Option<(usize, Framing)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("bad response head: {e}")),
    };
    let status = response.code.unwrap_or(0);
    if status != 200 {
        return Err(format!("http {status}"));
    }
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
    };
    if !header("content-type").is_some_and(|v| v.starts_with("text/event-stream")) {
        return Err("not text/event-stream".to_string());
    }
    let framing = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        Framing::Chunked
    } else if let Some(length) = header("content-length") {
        Framing::Length(length.trim().parse().map_err(|_| "bad content-length")?)
    } else {
        Framing::UntilClose
    };
    Ok(Some((head_len, framing)))
}

/// Turns the raw body into the event stream's bytes, whatever the framing.
#[derive(Debug)]
pub(crate) struct BodyDecoder {
    state: BodyState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyState {
    /// Expecting a chunk-size line.
    ChunkSize,
    /// Inside a chunk, this many bytes left.
    ChunkData(u64),
    /// Expecting the CRLF after a chunk's data.
    ChunkEnd,
    /// `Content-Length` body, this many bytes left.
    Remaining(u64),
    UntilClose,
    Done,
}

impl BodyDecoder {
    pub(crate) fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Chunked => BodyState::ChunkSize,
            Framing::Length(0) => BodyState::Done,
            Framing::Length(n) => BodyState::Remaining(n),
            Framing::UntilClose => BodyState::UntilClose,
        };
        Self { state }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.state == BodyState::Done
    }

    /// Moves every decodable byte of `input` to `out`; what is left in `input` waits for more.
    pub(crate) fn decode(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<(), &'static str> {
        loop {
            match self.state {
                BodyState::Done => {
                    input.clear();
                    return Ok(());
                }
                BodyState::UntilClose => {
                    out.extend_from_slice(&input.split());
                    return Ok(());
                }
                BodyState::Remaining(left) | BodyState::ChunkData(left) => {
                    if input.is_empty() {
                        return Ok(());
                    }
                    let take = left.min(input.len() as u64);
                    out.extend_from_slice(&input.split_to(take as usize));
                    let left = left - take;
                    self.state = match self.state {
                        BodyState::Remaining(_) if left == 0 => BodyState::Done,
                        BodyState::Remaining(_) => BodyState::Remaining(left),
                        _ if left == 0 => BodyState::ChunkEnd,
                        _ => BodyState::ChunkData(left),
                    };
                }
                BodyState::ChunkEnd => {
                    if input.len() < 2 {
                        return Ok(());
                    }
                    if &input[..2] != b"\r\n" {
                        return Err("missing CRLF after chunk");
                    }
                    input.advance(2);
                    self.state = BodyState::ChunkSize;
                }
                BodyState::ChunkSize => {
                    let Some(end) = input.windows(2).position(|w| w == b"\r\n") else {
                        if input.len() > 1024 {
                            return Err("chunk size line too long");
                        }
                        return Ok(());
                    };
                    let line = std::str::from_utf8(&input[..end]).map_err(|_| "bad chunk size")?;
                    let hex = line.split(';').next().unwrap_or("").trim();
                    let size = u64::from_str_radix(hex, 16).map_err(|_| "bad chunk size")?;
                    input.advance(end + 2);
                    // The last chunk: trailers (if any) are ignored, the stream is over.
                    self.state = if size == 0 {
                        BodyState::Done
                    } else {
                        BodyState::ChunkData(size)
                    };
                }
            }
        }
    }
}

/// An incremental `text/event-stream` parser (the WHATWG rules the tool needs: `event`,
/// `data` (joined with `\n`), comments, blank line dispatch; `id` and `retry` are read past).
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    event: String,
    data: String,
    has_data: bool,
    /// Comment lines seen (`: ping` heartbeats).
    pub(crate) comments: u64,
}

impl SseParser {
    /// Consumes every complete line of `buf`, calling `on_event(type, data)` per event.
    pub(crate) fn feed(
        &mut self,
        buf: &mut BytesMut,
        mut on_event: impl FnMut(&str, &str),
    ) -> Result<(), &'static str> {
        while let Some(newline) = buf.iter().position(|b| *b == b'\n') {
            let line = buf.split_to(newline + 1);
            let mut line = &line[..newline];
            if let Some(stripped) = line.strip_suffix(b"\r") {
                line = stripped;
            }
            let line = std::str::from_utf8(line).map_err(|_| "invalid UTF-8")?;
            self.line(line, &mut on_event);
        }
        if buf.len() > MAX_LINE {
            return Err("line too long");
        }
        Ok(())
    }

    fn line(&mut self, line: &str, on_event: &mut impl FnMut(&str, &str)) {
        if line.is_empty() {
            if self.has_data {
                let data = self.data.strip_suffix('\n').unwrap_or(&self.data);
                let kind = if self.event.is_empty() {
                    "message"
                } else {
                    &self.event
                };
                on_event(kind, data);
            }
            self.event.clear();
            self.data.clear();
            self.has_data = false;
            return;
        }
        if line.starts_with(':') {
            self.comments += 1;
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => {
                self.event.clear();
                self.event.push_str(value);
            }
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events_of(
        stream: &[u8],
        split_every: usize,
        framing: Framing,
    ) -> (Vec<(String, String)>, u64) {
        let mut body = BodyDecoder::new(framing);
        let mut parser = SseParser::default();
        let mut raw = BytesMut::new();
        let mut decoded = BytesMut::new();
        let mut events = Vec::new();
        for piece in stream.chunks(split_every) {
            raw.extend_from_slice(piece);
            body.decode(&mut raw, &mut decoded).unwrap();
            parser
                .feed(&mut decoded, |k, d| {
                    events.push((k.to_string(), d.to_string()))
                })
                .unwrap();
        }
        (events, parser.comments)
    }

    const EVENTS: &str = "event: hello\ndata: {\"user_id\":\"u-1\"}\n\n: ping\n\n\
        event: notification\r\nid: 01J\r\ndata: {\"a\":1,\r\ndata: \"b\":2}\r\n\r\n\
        data: plain\n\n";

    fn chunked(body: &str, chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in body.as_bytes().chunks(chunk) {
            out.extend_from_slice(format!("{:x};ext=1\r\n", piece.len()).as_bytes());
            out.extend_from_slice(piece);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    }

    #[test]
    fn events_parse_whatever_the_read_boundaries() {
        let expected = vec![
            ("hello".to_string(), "{\"user_id\":\"u-1\"}".to_string()),
            (
                "notification".to_string(),
                "{\"a\":1,\n\"b\":2}".to_string(),
            ),
            ("message".to_string(), "plain".to_string()),
        ];
        for split in [1, 2, 3, 7, 64, 4096] {
            let (events, comments) = events_of(EVENTS.as_bytes(), split, Framing::UntilClose);
            assert_eq!(events, expected, "split {split}");
            assert_eq!(comments, 1);
            for chunk in [1, 5, 100] {
                let (events, _) = events_of(&chunked(EVENTS, chunk), split, Framing::Chunked);
                assert_eq!(events, expected, "split {split}, chunk {chunk}");
            }
        }
    }

    #[test]
    fn chunked_decoder_stops_at_the_last_chunk_and_rejects_garbage() {
        let mut decoder = BodyDecoder::new(Framing::Chunked);
        let mut raw = BytesMut::from(&b"3\r\nabc\r\n0\r\n\r\n"[..]);
        let mut out = BytesMut::new();
        decoder.decode(&mut raw, &mut out).unwrap();
        assert_eq!(&out[..], b"abc");
        assert!(decoder.is_done());

        let mut decoder = BodyDecoder::new(Framing::Chunked);
        let mut raw = BytesMut::from(&b"zz\r\n"[..]);
        assert!(decoder.decode(&mut raw, &mut out).is_err());

        let mut decoder = BodyDecoder::new(Framing::Length(2));
        let mut raw = BytesMut::from(&b"abcd"[..]);
        let mut out = BytesMut::new();
        decoder.decode(&mut raw, &mut out).unwrap();
        assert_eq!(&out[..], b"ab");
        assert!(decoder.is_done());
    }

    #[test]
    fn response_head_is_checked() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                   transfer-encoding: chunked\r\n\r\n5\r\n";
        let (len, framing) = parse_head(ok).unwrap().unwrap();
        assert_eq!(framing, Framing::Chunked);
        assert_eq!(&ok[len..], b"5\r\n");
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-ty").unwrap(), None);
        let unauthorized = b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(parse_head(unauthorized).unwrap_err(), "http 401");
        let html = b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\n\r\n";
        assert!(parse_head(html).is_err());
    }
}
