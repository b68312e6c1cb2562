//! Encoding and decoding of stored columns that both backends keep in the same
//! shape: one place for the rules, so the SQLite and PostgreSQL stores cannot drift apart.

use crate::domain::ids::{NotificationId, TenantId, UserId};
use crate::domain::notification::{Notification, NotificationContent, NotificationType, Related};
use crate::domain::preferences::{QuietHours, StaffPreferences};
use crate::domain::priority::Priority;
use crate::store::StoreError;

pub(crate) mod directory;
pub(crate) mod events;
pub(crate) mod outbound;
pub(crate) mod phi;

/// Rebuilds staff preferences from their stored columns (muted categories as a JSON
/// array, quiet hours as three nullable texts).
pub(crate) fn prefs_from_columns(
    muted_json: &str,
    start: Option<String>,
    end: Option<String>,
    tz: Option<String>,
) -> Result<StaffPreferences, StoreError> {
    let corrupt = |e: String| StoreError::Internal(format!("bad preferences row: {e}"));
    let muted: Vec<String> =
        serde_json::from_str(muted_json).map_err(|e| corrupt(e.to_string()))?;
    let quiet = match (start, end, tz) {
        (Some(s), Some(e), Some(tz)) => {
            Some(QuietHours::parse(&s, &e, &tz).map_err(|e| corrupt(e.to_string()))?)
        }
        _ => None,
    };
    StaffPreferences::new(muted, quiet).map_err(|e| corrupt(e.to_string()))
}

/// Stored times are unix milliseconds on both backends.
/// Parameters per `IN (…)` list: SQLite's limit on bound parameters is 32766; chunks
/// stay far below it.
pub(crate) const IN_CHUNK: usize = 500;

/// Pushes ` IN (…)` binding each of `items` (one chunk of at most [`IN_CHUNK`]),
/// numbered in the backend's own style.
pub(crate) fn push_in_list<'a, DB, T>(
    qb: &mut sqlx::QueryBuilder<'a, DB>,
    items: impl IntoIterator<Item = T>,
) where
    DB: sqlx::Database,
    T: 'a + sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    qb.push(" IN (");
    let mut list = qb.separated(", ");
    for item in items {
        list.push_bind(item);
    }
    qb.push(")");
}

/// Times are stored as unix milliseconds on both backends.
pub(crate) fn millis(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono::Utc
        .timestamp_millis_opt(ms)
        .single()
        .unwrap_or_default()
}

/// The columns [`notification_from_row`] reads, as both backends select them (`silent`
/// apart: its type differs, INTEGER / BOOLEAN). The casts make `data` text and
/// `priority` a BIGINT on both.
pub(crate) const NOTIFICATION_COLUMNS: &str =
    "seq, tenant_id, user_id, title, message, type, category, related_type, related_id, \
     link, CAST(data AS TEXT) AS data, CAST(priority AS BIGINT) AS priority, chain_seq, \
     escalated_from, read_at, created_at, updated_at";

/// Rebuilds a notification from a row of the `notifications` table, whichever backend
/// read it. `silent` is passed in because its column type differs (INTEGER / BOOLEAN).
pub(crate) fn notification_from_row<'r, R>(
    row: &'r R,
    silent: bool,
) -> Result<Notification, StoreError>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let corrupt =
        |e: crate::domain::Invalid| StoreError::Internal(format!("bad notification row: {e}"));
    let related = match (
        row.get::<Option<String>, _>("related_type"),
        row.get::<Option<String>, _>("related_id"),
    ) {
        (Some(kind), Some(id)) => Some(Related { kind, id }),
        _ => None,
    };
    Ok(Notification {
        id: NotificationId::from_seq(row.get("seq")),
        tenant: TenantId::parse(&row.get::<String, _>("tenant_id")).map_err(corrupt)?,
        user: UserId::parse(&row.get::<String, _>("user_id")).map_err(corrupt)?,
        content: NotificationContent {
            title: row.get("title"),
            message: row.get("message"),
            kind: NotificationType::parse(&row.get::<String, _>("type")).map_err(corrupt)?,
            category: row.get("category"),
            related,
            link: row.get("link"),
            data: row.get("data"),
            priority: Priority::from_code(row.get("priority")).map_err(corrupt)?,
        },
        read_at: row.get::<Option<i64>, _>("read_at").map(from_millis),
        created_at: from_millis(row.get("created_at")),
        updated_at: from_millis(row.get("updated_at")),
        silent,
        chain: row
            .get::<Option<i64>, _>("chain_seq")
            .map(NotificationId::from_seq),
        escalated_from: row
            .get::<Option<i64>, _>("escalated_from")
            .map(NotificationId::from_seq),
    })
}
