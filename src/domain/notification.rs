//! The in-app notification: what staff see in the bell and the history page.

use chrono::{DateTime, Utc};

use super::ids::{NotificationId, TenantId, UserId};
use super::priority::Priority;
use super::{text, Invalid};

/// The contract's limit on a notification title.
pub const TITLE_MAX_CHARS: usize = 200;
const MESSAGE_MAX_CHARS: usize = 4000;
const CATEGORY_MAX_CHARS: usize = 100;
const LINK_MAX_BYTES: usize = 2048;
const RELATED_FIELD_MAX_CHARS: usize = 100;
/// The contract caps `data` at 8 KiB of serialized JSON.
pub const DATA_MAX_BYTES: usize = 8 * 1024;
/// The deepest nesting of arrays and objects `data` may have (`{}` is 1). Deeper
/// JSON is no clinic's payload, and every client that parses it recursively (the
/// browser library, a clinic's backend reading the list) pays for it.
pub const DATA_MAX_DEPTH: usize = 32;

/// Severity shown as the notification's colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NotificationType {
    #[default]
    Info,
    Warning,
    Error,
    Success,
}

impl NotificationType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
            Self::Success => "success",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw {
            "info" => Ok(Self::Info),
            "warning" => Ok(Self::Warning),
            "error" => Ok(Self::Error),
            "success" => Ok(Self::Success),
            _ => Err(Invalid::new(
                "type",
                "must be one of info, warning, error, success",
            )),
        }
    }
}

/// The clinic object a notification is about (an appointment, an invoice...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Related {
    pub kind: String,
    pub id: String,
}

impl Related {
    pub fn parse(kind: &str, id: &str) -> Result<Self, Invalid> {
        for (field, value) in [("related.type", kind), ("related.id", id)] {
            let n = value.chars().count();
            if n == 0 || n > RELATED_FIELD_MAX_CHARS {
                return Err(Invalid::new(
                    field,
                    format!("must be 1..{RELATED_FIELD_MAX_CHARS} characters"),
                ));
            }
            text::check(field, value)?;
        }
        Ok(Self {
            kind: kind.to_owned(),
            id: id.to_owned(),
        })
    }
}

/// The content of a notification, validated, before it has a recipient or an id.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationContent {
    pub title: String,
    pub message: String,
    pub kind: NotificationType,
    pub category: Option<String>,
    pub related: Option<Related>,
    pub link: Option<String>,
    /// Serialized JSON object, at most [`DATA_MAX_BYTES`]. Kept as text so it is
    /// parsed once at the edge and never re-encoded on the hot path.
    pub data: String,
    pub priority: Priority,
}

/// Unvalidated content as it arrives from a caller.
#[derive(Debug, Default)]
pub struct ContentInput<'a> {
    pub title: &'a str,
    pub message: &'a str,
    pub kind: Option<&'a str>,
    pub category: Option<&'a str>,
    pub related: Option<(&'a str, &'a str)>,
    pub link: Option<&'a str>,
    pub data_json: Option<String>,
    pub priority: Option<&'a str>,
}

fn check_chars(field: &str, value: &str, max: usize) -> Result<(), Invalid> {
    let n = value.chars().count();
    if n == 0 || n > max {
        return Err(Invalid::new(field, format!("must be 1..{max} characters")));
    }
    text::check(field, value)
}

/// `data`: size, depth, and (defence in depth: the HTTP edge already names the
/// exact key) no control character in its strings or keys.
fn check_data(data: &str) -> Result<(), Invalid> {
    if data.len() > DATA_MAX_BYTES {
        return Err(Invalid::new(
            "data",
            format!("must be at most {DATA_MAX_BYTES} bytes of JSON"),
        ));
    }
    if text::json_depth(data.as_bytes()) > DATA_MAX_DEPTH {
        return Err(Invalid::new(
            "data",
            format!("must be nested at most {DATA_MAX_DEPTH} levels deep"),
        ));
    }
    if text::json_has_control_escape(data.as_bytes()) {
        return Err(text::control_characters("data"));
    }
    Ok(())
}

impl NotificationContent {
    pub fn parse(input: ContentInput<'_>) -> Result<Self, Invalid> {
        check_chars("title", input.title, TITLE_MAX_CHARS)?;
        check_chars("message", input.message, MESSAGE_MAX_CHARS)?;
        let kind = input
            .kind
            .map(NotificationType::parse)
            .transpose()?
            .unwrap_or_default();
        if let Some(c) = input.category {
            check_chars("category", c, CATEGORY_MAX_CHARS)?;
        }
        let related = input
            .related
            .map(|(k, id)| Related::parse(k, id))
            .transpose()?;
        if let Some(link) = input.link {
            if link.len() > LINK_MAX_BYTES {
                return Err(Invalid::new(
                    "link",
                    format!("must be at most {LINK_MAX_BYTES} bytes"),
                ));
            }
            text::check_link(link)?;
        }
        let data = input.data_json.unwrap_or_else(|| "{}".to_owned());
        check_data(&data)?;
        let priority = input
            .priority
            .map(Priority::parse)
            .transpose()?
            .unwrap_or_default();
        Ok(Self {
            title: input.title.to_owned(),
            message: input.message.to_owned(),
            kind,
            category: input.category.map(str::to_owned),
            related,
            link: input.link.map(str::to_owned),
            data,
            priority,
        })
    }
}

/// A stored notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub id: NotificationId,
    pub tenant: TenantId,
    pub user: UserId,
    pub content: NotificationContent,
    pub read_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Decided at publish time from the recipient's preferences (muted category or
    /// quiet hours), unless it is critical (`priority::reach`): stored and counted,
    /// but not pushed live nor replayed on resume.
    pub silent: bool,
    /// The escalation chain it belongs to, named by the chain's original: set on every
    /// notification of a publish with `escalate`, and on the copies its steps publish.
    pub chain: Option<NotificationId>,
    /// On an escalation's copy only: the original it escalates (the API's `escalated_from`).
    pub escalated_from: Option<NotificationId>,
}

impl Notification {
    pub fn is_read(&self) -> bool {
        self.read_at.is_some()
    }
}

/// A user's unread count with the version that orders concurrent updates.
///
/// Every change to the count bumps `version` in the same transaction, so a
/// connection can drop an update older than one it already showed, whatever
/// order the nodes deliver them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UnreadCount {
    pub unread: i64,
    pub version: i64,
    /// The sequence of the user's newest notification when the count was read
    /// (0 if none): where a connection that has seen nothing yet would resume from.
    pub head: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(title: &'a str, message: &'a str) -> ContentInput<'a> {
        ContentInput {
            title,
            message,
            ..Default::default()
        }
    }

    #[test]
    fn title_and_message_lengths_are_counted_in_characters() {
        let arabic_title = "موعد جديد".repeat(20); // 180 chars, far more bytes
        assert!(NotificationContent::parse(input(&arabic_title, "x")).is_ok());
        let err = NotificationContent::parse(input(&"a".repeat(201), "x")).unwrap_err();
        assert_eq!(err.field, "title");
        let err = NotificationContent::parse(input("t", "")).unwrap_err();
        assert_eq!(err.field, "message");
    }

    #[test]
    fn links_must_be_http_or_paths_and_data_is_capped() {
        let mut i = input("t", "m");
        i.link = Some("javascript:alert(1)");
        assert_eq!(NotificationContent::parse(i).unwrap_err().field, "link");
        let mut i = input("t", "m");
        i.data_json = Some(format!("{{\"a\":\"{}\"}}", "x".repeat(DATA_MAX_BYTES)));
        assert_eq!(NotificationContent::parse(i).unwrap_err().field, "data");
        let mut i = input("t", "m");
        let deep = format!(
            "{}{}",
            "[".repeat(DATA_MAX_DEPTH + 1),
            "]".repeat(DATA_MAX_DEPTH + 1)
        );
        i.data_json = Some(deep);
        assert_eq!(NotificationContent::parse(i).unwrap_err().field, "data");
        let mut i = input("t", "m");
        i.link = Some("/\\evil.example/phish");
        assert_eq!(NotificationContent::parse(i).unwrap_err().field, "link");
        let mut i = input("t\0", "m");
        i.category = Some("c");
        assert_eq!(NotificationContent::parse(i).unwrap_err().field, "title");
        let mut i = input("t", "m");
        i.kind = Some("fatal");
        assert_eq!(NotificationContent::parse(i).unwrap_err().field, "type");
        let mut i = input("t", "m");
        i.priority = Some("urgent");
        assert_eq!(NotificationContent::parse(i).unwrap_err().field, "priority");
        assert_eq!(
            NotificationContent::parse(input("t", "m"))
                .unwrap()
                .priority,
            Priority::Normal
        );
    }
}
