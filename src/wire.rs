//! The JSON shapes of the public contract (../shared/API.md), in one place.
//!
//! Domain types carry no serde derives; these do, and convert from the domain.
//! REST responses and realtime frames both use them, so a notification looks the
//! same in a list, a WebSocket frame and an SSE event.

pub mod events;
pub mod frame;
pub mod outbound;
pub mod webhooks;

pub use frame::{Frame, FrameKind};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::domain::notification::{Notification, UnreadCount};

/// RFC 3339, UTC, millisecond precision.
pub fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[derive(Debug, Serialize, Deserialize, ToSchema, Clone, PartialEq)]
pub struct RelatedWire {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

/// The notification object.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationWire<'a> {
    /// Opaque, time-ordered id; use it as `since` / `Last-Event-ID` to resume.
    pub id: String,
    pub user_id: &'a str,
    pub title: &'a str,
    pub message: &'a str,
    /// info | warning | error | success
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub category: Option<&'a str>,
    pub related: Option<RelatedWire>,
    pub link: Option<&'a str>,
    #[schema(value_type = Object)]
    pub data: &'a RawValue,
    pub is_read: bool,
    pub read_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// low | normal | high | critical
    pub priority: &'static str,
    /// On an escalation's copy: the id of the notification it escalates (the chain's
    /// original); null otherwise. Reading any notification of the chain cancels its
    /// later steps.
    pub escalated_from: Option<String>,
}

impl<'a> NotificationWire<'a> {
    pub fn from_domain(n: &'a Notification) -> Self {
        let c = &n.content;
        // `data` was validated as JSON at the edge and stored verbatim.
        let data: &RawValue = serde_json::from_str(&c.data).unwrap_or_else(|_| empty_object());
        NotificationWire {
            id: n.id.to_string(),
            user_id: n.user.as_str(),
            title: &c.title,
            message: &c.message,
            kind: c.kind.as_str(),
            category: c.category.as_deref(),
            related: c.related.as_ref().map(|r| RelatedWire {
                kind: r.kind.clone(),
                id: r.id.clone(),
            }),
            link: c.link.as_deref(),
            data,
            is_read: n.is_read(),
            read_at: n.read_at.map(time),
            created_at: time(n.created_at),
            updated_at: time(n.updated_at),
            priority: c.priority.as_str(),
            escalated_from: n.escalated_from.map(|id| id.to_string()),
        }
    }
}

fn empty_object() -> &'static RawValue {
    static EMPTY: std::sync::OnceLock<Box<RawValue>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| RawValue::from_string("{}".to_owned()).expect("valid JSON"))
}

/// `{"unread": n}`, plus `version` so clients can ignore an older count that arrives late.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UnreadWire {
    pub unread: i64,
    /// Increases with every change of the count; an update with a lower version is stale.
    pub version: i64,
}

impl From<UnreadCount> for UnreadWire {
    fn from(c: UnreadCount) -> Self {
        UnreadWire {
            unread: c.unread,
            version: c.version,
        }
    }
}

/// The `hello` frame's data.
#[derive(Debug, Serialize, ToSchema)]
pub struct HelloWire<'a> {
    pub user_id: &'a str,
    pub connection_id: String,
    pub unread: i64,
    pub unread_version: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadWire {
    pub ids: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorFrameWire<'a> {
    pub code: &'a str,
    pub message: &'a str,
}
