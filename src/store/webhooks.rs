//! The port of webhooks to clinic systems: endpoints, the durable delivery queue (one
//! delivery per event and endpoint, claimed under a lease like outbound messages) and
//! the delivery log.
//!
//! Events are written by the store itself, in the transaction of the change they
//! report (a message's status, a notification read): a change is never committed
//! without its deliveries, nor a delivery without its change. See
//! [`WebhookEvent`] and docs/OUTBOUND.md, "Webhooks to clinic systems".

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Page, PageRequest, StoreError};
use crate::domain::ids::{NotificationId, TenantId, UserId};
use crate::domain::message::{MessageId, MessageStatus};
use crate::domain::template::{Channel, MessageKind};
use crate::domain::webhook::{DisablePolicy, DisableReason, EventType, SigningSecret};

/// An endpoint as stored (the secret apart: only the worker and the create answer see it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub seq: i64,
    pub id: uuid::Uuid,
    pub url: String,
    pub event_types: Vec<EventType>,
    pub enabled: bool,
    /// Why the hub disabled it; `None` when enabled or disabled by a person.
    pub disabled_reason: Option<DisableReason>,
    /// Deliveries that ended `failed` since the last successful attempt.
    pub failed_deliveries: u32,
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a create or an update writes.
#[derive(Debug, Clone)]
pub struct EndpointDraft {
    pub url: String,
    pub event_types: Vec<EventType>,
    pub enabled: bool,
}

/// Something that happened that clinic systems may listen to, as the store writes it
/// (ids and statuses only: no message text, no address, no name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    /// A message's status changed (`message.status_changed`, and `message.failed`
    /// for `failed` / `bounced`; see [`crate::domain::webhook::status_events`]).
    /// No patient id: the message id finds it through the API, and an erased
    /// patient's id must not live on in delivery logs.
    MessageStatus {
        message: MessageId,
        channel: Channel,
        kind: MessageKind,
        from: MessageStatus,
        to: MessageStatus,
    },
    /// A staff user read notifications (`notification.read`): these ids, or all.
    NotificationsRead {
        user: UserId,
        ids: Option<Vec<NotificationId>>,
    },
}

/// The state of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Delivering,
    Succeeded,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivering => "delivering",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            DeliveryStatus::Pending,
            DeliveryStatus::Delivering,
            DeliveryStatus::Succeeded,
            DeliveryStatus::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

/// One delivery as the log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub seq: i64,
    pub id: uuid::Uuid,
    pub endpoint: uuid::Uuid,
    /// `webhook-id`: the same on every attempt.
    pub event_id: String,
    pub event_type: String,
    /// The exact body sent.
    pub payload: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    /// Pending: the next attempt; delivering: the lease's end.
    pub due_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_response_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub attempt: u32,
    pub at: DateTime<Utc>,
    pub response_status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// A delivery a worker claimed, with what it needs to send it.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub tenant: TenantId,
    pub delivery: Delivery,
    pub url: String,
    pub secret: SigningSecret,
    /// The start of its retry window (its first attempt, or its replay).
    pub window_start: DateTime<Utc>,
    pub lease_token: uuid::Uuid,
}

/// What an attempt did, and what comes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    pub at: DateTime<Utc>,
    pub response_status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
    pub next: AttemptNext,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptNext {
    Succeeded,
    /// Failed; try again then.
    RetryAt(DateTime<Utc>),
    /// Failed for good (schedule used up); `gone`: the receiver answered 410.
    Failed {
        gone: bool,
    },
}

/// What recording an attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptRecorded {
    /// The lease was lost (another worker took the delivery): nothing written.
    LeaseLost,
    Recorded {
        /// This attempt made the hub disable the endpoint (for the admins' notice).
        disabled: Option<DisableReason>,
    },
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Creates an endpoint with its secret.
    async fn create_endpoint(
        &self,
        tenant: &TenantId,
        id: uuid::Uuid,
        draft: &EndpointDraft,
        secret: &SigningSecret,
        now: DateTime<Utc>,
    ) -> Result<WebhookEndpoint, StoreError>;
    async fn get_endpoint(
        &self,
        tenant: &TenantId,
        id: uuid::Uuid,
    ) -> Result<Option<WebhookEndpoint>, StoreError>;
    /// Newest first.
    async fn list_endpoints(
        &self,
        tenant: &TenantId,
        page: PageRequest,
    ) -> Result<Page<WebhookEndpoint>, StoreError>;
    /// Replaces URL, types and `enabled`. Enabling clears the run of failures and the
    /// hub's reason. `NotFound` if unknown.
    async fn update_endpoint(
        &self,
        tenant: &TenantId,
        id: uuid::Uuid,
        draft: &EndpointDraft,
        now: DateTime<Utc>,
    ) -> Result<WebhookEndpoint, StoreError>;
    /// Deletes the endpoint with its deliveries and their log. `NotFound` if unknown.
    async fn delete_endpoint(&self, tenant: &TenantId, id: uuid::Uuid) -> Result<(), StoreError>;

    /// Writes `event`'s deliveries to every enabled endpoint of the tenant listening
    /// to its types, due `now`, in one transaction (the other writes of this port
    /// emit inside their own). How many deliveries were written.
    async fn emit(
        &self,
        tenant: &TenantId,
        event: &WebhookEvent,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// Claims up to `limit` due deliveries of enabled endpoints, any tenant, oldest due
    /// first: `pending` ones due by `now`, and `delivering` ones whose lease ended (their
    /// worker died: sent again with the same `webhook-id`). Each is leased to a fresh
    /// token until `lease_until`; its window starts now if it had none.
    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>, StoreError>;

    /// Records an attempt if `lease_token` still holds the delivery: the log row, the
    /// delivery's next state, and the endpoint's run of failures (reset by a success),
    /// disabling the endpoint when `policy` says so. One transaction.
    async fn finish_delivery(
        &self,
        tenant: &TenantId,
        id: uuid::Uuid,
        lease_token: uuid::Uuid,
        result: &AttemptResult,
        policy: &DisablePolicy,
    ) -> Result<AttemptRecorded, StoreError>;

    /// The endpoint's deliveries, newest first. `NotFound` if the endpoint is unknown.
    async fn list_deliveries(
        &self,
        tenant: &TenantId,
        endpoint: uuid::Uuid,
        page: PageRequest,
    ) -> Result<Page<Delivery>, StoreError>;
    async fn get_delivery(
        &self,
        tenant: &TenantId,
        endpoint: uuid::Uuid,
        id: uuid::Uuid,
    ) -> Result<Option<(Delivery, Vec<DeliveryAttempt>)>, StoreError>;
    /// A settled (`succeeded` or `failed`) delivery goes back to `pending`, due now,
    /// with a new retry window and the same `webhook-id`. `NotFound` if unknown;
    /// `Conflict` while it is still pending or being delivered.
    async fn replay_delivery(
        &self,
        tenant: &TenantId,
        endpoint: uuid::Uuid,
        id: uuid::Uuid,
        now: DateTime<Utc>,
    ) -> Result<Delivery, StoreError>;
    /// Deliveries waiting (`pending` or `delivering`) for enabled endpoints, all tenants: the backlog metric.
    async fn pending_deliveries(&self) -> Result<u64, StoreError>;
}
