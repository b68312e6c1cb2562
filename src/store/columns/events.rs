//! Decoding of the clinic-events tables, shared by both backends (same columns,
//! INTEGER / BIGINT millis and counts on both).

use sqlx::Row;

use super::from_millis;
use crate::domain::clinic_event::{AppointmentState, EventType};
use crate::domain::ids::{AppointmentId, EventId};
use crate::store::events::{EventCounts, EventRecord};
use crate::store::StoreError;

/// The answer columns of `clinic_events`: `notifications`, `messages`,
/// `reminders_scheduled`, `reminders_cancelled`.
pub(crate) fn counts_from_row<'r, R>(row: &'r R) -> EventCounts
where
    R: Row,
    &'static str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let n = |c: &'static str| row.get::<i64, _>(c).max(0) as u64;
    EventCounts {
        notifications: n("notifications"),
        messages: n("messages"),
        reminders_scheduled: n("reminders_scheduled"),
        reminders_cancelled: n("reminders_cancelled"),
    }
}

fn event_type(raw: &str) -> Result<EventType, StoreError> {
    EventType::from_short(raw).ok_or_else(|| StoreError::Internal(format!("bad event type {raw}")))
}

/// A row of `appointment_states`.
pub(crate) fn state_from_row<'r, R>(row: &'r R) -> Result<AppointmentState, StoreError>
where
    R: Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(AppointmentState {
        status: event_type(&row.get::<String, _>("status"))?,
        start_at: from_millis(row.get("start_at")),
        last_occurred_at: from_millis(row.get("last_occurred_at")),
        reminders_for: row.get::<Option<i64>, _>("reminders_for").map(from_millis),
        version: row.get("version"),
    })
}

/// A row of `clinic_events`.
pub(crate) fn record_from_row<'r, R>(row: &'r R) -> Result<EventRecord, StoreError>
where
    R: Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let corrupt = |e: crate::domain::Invalid| StoreError::Internal(format!("bad event row: {e}"));
    Ok(EventRecord {
        seq: row.get("seq"),
        id: EventId::parse(&row.get::<String, _>("event_id")).map_err(corrupt)?,
        kind: event_type(&row.get::<String, _>("type"))?,
        appointment: AppointmentId::parse(&row.get::<String, _>("appointment_id"))
            .map_err(corrupt)?,
        occurred_at: from_millis(row.get("occurred_at")),
        received_at: from_millis(row.get("received_at")),
        outcome: row.get("outcome"),
        counts: counts_from_row(row),
        payload: row.get("payload"),
    })
}
