//! Server frames, serialized once and shared by every connection that sends them.

use std::sync::{Arc, OnceLock};

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;

use crate::domain::ids::NotificationId;
use crate::domain::notification::UnreadCount;

/// What a frame is, with the facts a session needs to filter it without parsing JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Notification(NotificationId),
    UnreadCount(UnreadCount),
    Read,
    ReadAll,
    Hello,
    Error,
    Pong,
}

impl FrameKind {
    pub fn type_name(self) -> &'static str {
        match self {
            FrameKind::Notification(_) => "notification",
            FrameKind::UnreadCount(_) => "unread_count",
            FrameKind::Read => "read",
            FrameKind::ReadAll => "read_all",
            FrameKind::Hello => "hello",
            FrameKind::Error => "error",
            FrameKind::Pong => "pong",
        }
    }
}

struct Inner {
    kind: FrameKind,
    /// The `data` JSON, encoded once.
    data: Bytes,
    ws: OnceLock<Utf8Bytes>,
    sse: OnceLock<Bytes>,
}

/// A server event. Cloning is a reference-count increment: a notification to a user
/// with three tabs is encoded once, and each transport's framing is built at most once.
#[derive(Clone)]
pub struct Frame(Arc<Inner>);

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame").field("kind", &self.0.kind).finish()
    }
}

impl Frame {
    /// `data` must be a serialized JSON value.
    pub fn new(kind: FrameKind, data: impl Into<Bytes>) -> Self {
        Frame(Arc::new(Inner {
            kind,
            data: data.into(),
            ws: OnceLock::new(),
            sse: OnceLock::new(),
        }))
    }

    pub fn kind(&self) -> FrameKind {
        self.0.kind
    }

    pub fn data(&self) -> &Bytes {
        &self.0.data
    }

    /// What queueing this frame costs a connection's byte budget: its JSON plus the
    /// framing around it (a WS text or an SSE chunk is built from it once).
    pub fn byte_len(&self) -> usize {
        self.0.data.len() + 48
    }

    /// `{"type":"…","data":…}` as a WebSocket text payload.
    pub fn ws_text(&self) -> Utf8Bytes {
        self.0
            .ws
            .get_or_init(|| {
                let t = self.0.kind.type_name();
                let data = std::str::from_utf8(&self.0.data).unwrap_or("null");
                let mut s = String::with_capacity(t.len() + data.len() + 20);
                s.push_str("{\"type\":\"");
                s.push_str(t);
                s.push_str("\",\"data\":");
                s.push_str(data);
                s.push('}');
                Utf8Bytes::from(s)
            })
            .clone()
    }

    /// `event: …\n[id: …\n]data: …\n\n` as an SSE chunk. JSON from serde has no raw
    /// newlines, so the data fits on one `data:` line.
    pub fn sse_chunk(&self) -> Bytes {
        self.0
            .sse
            .get_or_init(|| {
                let t = self.0.kind.type_name();
                let mut s = Vec::with_capacity(self.0.data.len() + 48);
                s.extend_from_slice(b"event: ");
                s.extend_from_slice(t.as_bytes());
                s.push(b'\n');
                if let FrameKind::Notification(id) = self.0.kind {
                    s.extend_from_slice(format!("id: {id}\n").as_bytes());
                }
                s.extend_from_slice(b"data: ");
                s.extend_from_slice(&self.0.data);
                s.extend_from_slice(b"\n\n");
                Bytes::from(s)
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_render_both_transports_from_one_encoding() {
        let f = Frame::new(
            FrameKind::Notification(NotificationId::from_seq(5)),
            r#"{"a":1}"#,
        );
        assert_eq!(
            f.ws_text().as_str(),
            r#"{"type":"notification","data":{"a":1}}"#
        );
        assert_eq!(
            &f.sse_chunk()[..],
            b"event: notification\nid: n0000000000000005\ndata: {\"a\":1}\n\n"
        );
        let g = f.clone();
        assert!(std::ptr::eq(
            f.ws_text().as_str().as_ptr(),
            g.ws_text().as_str().as_ptr()
        ));
    }
}
