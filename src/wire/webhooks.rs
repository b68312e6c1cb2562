//! The JSON shapes of webhooks to clinic systems: the endpoint resource, the delivery
//! log, and the body every delivery carries (Standard Webhooks' `{"type",
//! "timestamp", "data"}`), encoded once when the event is written.

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::time;
use crate::domain::webhook::EventType;
use crate::store::webhooks::{Delivery, DeliveryAttempt, WebhookEndpoint, WebhookEvent};

/// The body of one event's deliveries: ids and statuses only (no message text, no
/// address, no name), so what leaves the hub is what a clinic system needs to look
/// the rest up through the API.
pub fn event_body(
    event_type: EventType,
    event: &WebhookEvent,
    at: chrono::DateTime<chrono::Utc>,
) -> String {
    let data = match event {
        WebhookEvent::MessageStatus {
            message,
            channel,
            kind,
            from,
            to,
        } => json!({
            "message_id": message.to_string(),
            "channel": channel.as_str(),
            "kind": kind.as_str(),
            "status": to.as_str(),
            "previous_status": from.as_str(),
        }),
        WebhookEvent::NotificationsRead {
            user,
            ids: Some(ids),
        } => json!({
            "user_id": user.as_str(),
            "notification_ids": ids.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
        }),
        WebhookEvent::NotificationsRead { user, ids: None } => json!({
            "user_id": user.as_str(),
            "all": true,
        }),
    };
    json!({"type": event_type.as_str(), "timestamp": time(at), "data": data}).to_string()
}

/// `POST /v1/webhook-endpoints` and `PUT /v1/webhook-endpoints/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointBody {
    /// `https://…` (plain `http://` only on a development hub); no credentials, no fragment.
    pub url: String,
    /// message.status_changed | message.failed | notification.read | patient.replied |
    /// patient.opted_out | patient.confirmed | patient.declined (the `patient.*` types are
    /// accepted; nothing emits them yet).
    pub event_types: Vec<String>,
    /// Default true. Enabling a disabled endpoint clears its run of failures.
    pub enabled: Option<bool>,
}

/// An endpoint (never with its secret, except in the create answer).
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointWire {
    pub id: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// Why the hub disabled it: `failures` (a run of failed deliveries) or `gone` (the
    /// receiver answered 410); null otherwise.
    pub disabled_reason: Option<String>,
    /// Deliveries that ended failed since the last successful attempt.
    pub consecutive_failures: u32,
    pub failing_since: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// `whsec_…`: only in the answer of `POST /v1/webhook-endpoints`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl From<&WebhookEndpoint> for EndpointWire {
    fn from(e: &WebhookEndpoint) -> Self {
        EndpointWire {
            id: e.id.to_string(),
            url: e.url.clone(),
            event_types: e
                .event_types
                .iter()
                .map(|t| t.as_str().to_owned())
                .collect(),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason.map(|r| r.as_str().to_owned()),
            consecutive_failures: e.failed_deliveries,
            failing_since: e.failing_since.map(time),
            created_at: time(e.created_at),
            updated_at: time(e.updated_at),
            secret: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointPage {
    pub items: Vec<EndpointWire>,
    pub next_cursor: Option<String>,
}

/// One delivery of the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryWire {
    pub id: String,
    /// The `webhook-id` header: the same on every attempt (and every endpoint) of the event.
    pub webhook_id: String,
    pub event_type: String,
    /// pending | delivering | succeeded | failed
    pub status: String,
    pub attempts: u32,
    /// Pending: when the next attempt is due.
    pub next_attempt_at: Option<String>,
    pub last_attempt_at: Option<String>,
    /// The receiver's HTTP status of the last attempt (null: no answer).
    pub last_response_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: String,
    /// The exact body sent (JSON).
    #[schema(value_type = Object)]
    pub payload: Box<serde_json::value::RawValue>,
    /// Every attempt, oldest first (only in `GET …/deliveries/{delivery_id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt_log: Option<Vec<AttemptWire>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptWire {
    pub attempt: u32,
    pub at: String,
    pub response_status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
}

impl From<&DeliveryAttempt> for AttemptWire {
    fn from(a: &DeliveryAttempt) -> Self {
        AttemptWire {
            attempt: a.attempt,
            at: time(a.at),
            response_status: a.response_status,
            error: a.error.clone(),
            duration_ms: a.duration_ms,
        }
    }
}

impl DeliveryWire {
    /// Fails only on a corrupt row: the payload is JSON the hub encoded itself.
    pub fn new(d: &Delivery) -> Result<Self, serde_json::Error> {
        let payload = serde_json::value::RawValue::from_string(d.payload.clone())?;
        Ok(DeliveryWire {
            id: d.id.to_string(),
            webhook_id: d.event_id.clone(),
            event_type: d.event_type.clone(),
            status: d.status.as_str().to_owned(),
            attempts: d.attempts,
            next_attempt_at: d
                .due_at
                .filter(|_| d.status == crate::store::webhooks::DeliveryStatus::Pending)
                .map(time),
            last_attempt_at: d.last_attempt_at.map(time),
            last_response_status: d.last_response_status,
            last_error: d.last_error.clone(),
            created_at: time(d.created_at),
            payload,
            attempt_log: None,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<DeliveryWire>,
    pub next_cursor: Option<String>,
}
