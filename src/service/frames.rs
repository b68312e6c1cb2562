//! Builds the realtime frames from domain values: each is JSON-encoded once.

use crate::domain::ids::{ConnectionId, NotificationId, UserId};
use crate::domain::notification::{Notification, UnreadCount};
use crate::wire::{ErrorFrameWire, HelloWire, NotificationWire, ReadWire, UnreadWire};
use crate::wire::{Frame, FrameKind};

fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail (no maps with non-string keys).
    serde_json::to_vec(v).unwrap_or_else(|_| b"null".to_vec())
}

pub fn notification(n: &Notification) -> Frame {
    Frame::new(
        FrameKind::Notification(n.id),
        encode(&NotificationWire::from_domain(n)),
    )
}

pub fn unread(c: UnreadCount) -> Frame {
    Frame::new(FrameKind::UnreadCount(c), encode(&UnreadWire::from(c)))
}

pub fn read(ids: &[NotificationId]) -> Frame {
    Frame::new(
        FrameKind::Read,
        encode(&ReadWire {
            ids: ids.iter().map(|i| i.to_string()).collect(),
        }),
    )
}

pub fn read_all() -> Frame {
    Frame::new(FrameKind::ReadAll, &b"{}"[..])
}

pub fn pong() -> Frame {
    Frame::new(FrameKind::Pong, &b"{}"[..])
}

pub fn hello(user: &UserId, connection: ConnectionId, c: UnreadCount) -> Frame {
    let wire = HelloWire {
        user_id: user.as_str(),
        connection_id: connection.to_string(),
        unread: c.unread,
        unread_version: c.version,
    };
    Frame::new(FrameKind::Hello, encode(&wire))
}

pub fn error(code: &str, message: &str) -> Frame {
    Frame::new(FrameKind::Error, encode(&ErrorFrameWire { code, message }))
}
