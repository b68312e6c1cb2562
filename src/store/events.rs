//! The clinic-events port: the event log, each appointment's state, idempotency by
//! event id, and the ONE transaction that applies an event.
//!
//! [`EventStore::apply_event`] writes, atomically: the event row (its id is the
//! idempotency key), the appointment's new state (checked against the version the
//! plan was made from), the in-app notifications (ids assigned exactly as a publish
//! does, so resume stays gap-free), the outbound messages, the cancellation of the
//! appointment's pending reminders and the new ones. Either all of it is committed
//! or none of it is.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::outbound::NewMessage;
use super::{Page, PageRequest, PublishOutcome, PublishRequest, StoreError};
use crate::domain::clinic_event::{AppointmentState, EventType};
use crate::domain::ids::{AppointmentId, EventId, PatientId, TenantId, UserId};

/// What applying an event did: the `POST /v1/events` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventCounts {
    /// In-app notification rows created (one per recipient user).
    pub notifications: u64,
    /// Immediate outbound message rows created (queued or suppressed).
    pub messages: u64,
    /// Reminder message rows created.
    pub reminders_scheduled: u64,
    /// Pending reminders cancelled.
    pub reminders_cancelled: u64,
}

/// Everything one event causes, resolved and rendered, ready to commit.
#[derive(Debug, Clone)]
pub struct EventApplication {
    pub tenant: TenantId,
    pub event_id: EventId,
    pub kind: EventType,
    pub appointment: AppointmentId,
    /// The patient the payload names: an erasure finds the event by it.
    pub patient: Option<PatientId>,
    pub occurred_at: DateTime<Utc>,
    /// `applied`, `applied_as_booking`, `ignored_stale`, `ignored_closed`.
    pub outcome: String,
    /// The event as received (JSON text), for the admin's event log.
    pub payload: String,
    /// The state version the plan was made from (`None`: the appointment was unknown).
    /// If the stored state moved meanwhile, nothing is written and
    /// [`ApplyOutcome::StateChanged`] tells the caller to plan again.
    pub expected_version: Option<i64>,
    /// The state to store (`None`: leave it as it is).
    pub new_state: Option<AppointmentState>,
    pub notifications: Vec<PublishRequest>,
    /// Immediate messages first, then reminders (those with the reminder group).
    pub messages: Vec<NewMessage>,
    /// Cancel every queued message of this group before inserting the new reminders.
    pub cancel_group: Option<String>,
    pub reminder_group: String,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub enum ApplyOutcome {
    /// Committed; the notifications as stored, for the fan-out.
    Applied {
        counts: EventCounts,
        published: Vec<PublishOutcome>,
    },
    /// The event id was applied before: its first answer, nothing written.
    Replayed(EventCounts),
    /// The appointment's state changed since it was read: nothing written.
    StateChanged,
}

/// One row of the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// Arrival order; the list cursor.
    pub seq: i64,
    pub id: EventId,
    pub kind: EventType,
    pub appointment: AppointmentId,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub outcome: String,
    pub counts: EventCounts,
    /// The event as received; `{"redacted":true}` once the tenant's PHI retention or
    /// the patient's erasure removed it.
    pub payload: String,
}

#[async_trait]
pub trait EventStore: Send + Sync {
    /// The answer of an event id already applied, if any.
    async fn event_counts(
        &self,
        tenant: &TenantId,
        id: &EventId,
    ) -> Result<Option<EventCounts>, StoreError>;

    async fn appointment_state(
        &self,
        tenant: &TenantId,
        appointment: &AppointmentId,
    ) -> Result<Option<AppointmentState>, StoreError>;

    /// Applies an event in one transaction (see the module doc).
    async fn apply_event(&self, app: &EventApplication) -> Result<ApplyOutcome, StoreError>;

    /// The event log, newest first; one appointment's events with `appointment`.
    async fn list_events(
        &self,
        tenant: &TenantId,
        appointment: Option<&AppointmentId>,
        page: PageRequest,
    ) -> Result<Page<EventRecord>, StoreError>;

    /// The directory locale of each user that has one (staff notification language).
    async fn user_locales(
        &self,
        tenant: &TenantId,
        users: &[UserId],
    ) -> Result<HashMap<UserId, String>, StoreError>;

    /// Whether the tenant's default templates were seeded already.
    async fn templates_seeded(&self, tenant: &TenantId) -> Result<bool, StoreError>;
    /// Records that they were (idempotent).
    async fn mark_templates_seeded(
        &self,
        tenant: &TenantId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

/// The answer: rows actually created and reminders actually cancelled.
pub fn counts_of(
    app: &EventApplication,
    published: &[PublishOutcome],
    reminders_cancelled: u64,
) -> EventCounts {
    let notifications = published
        .iter()
        .map(|p| match p {
            PublishOutcome::Created { notifications, .. } => notifications.len() as u64,
            _ => 0,
        })
        .sum();
    let reminders = app
        .messages
        .iter()
        .filter(|m| m.group_key.as_deref() == Some(app.reminder_group.as_str()))
        .count() as u64;
    EventCounts {
        notifications,
        messages: app.messages.len() as u64 - reminders,
        reminders_scheduled: reminders,
        reminders_cancelled,
    }
}
