//! The JSON shapes of clinic events (`POST /v1/events`, `GET /v1/events`).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::domain::clinic_event::{AppointmentInput, EventInput};
use crate::store::events::{EventCounts, EventRecord};

/// A clinic event. Times are RFC 3339 with an offset.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EventBody {
    /// The clinic's event id: posting the same id again changes nothing.
    pub id: String,
    /// appointment.booked | confirmed | rescheduled | arrived | in_progress |
    /// completed | cancelled | no_show
    #[serde(rename = "type")]
    pub kind: String,
    pub occurred_at: String,
    pub appointment: AppointmentBody,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AppointmentBody {
    pub id: String,
    pub number: String,
    pub start_at: String,
    /// Required for appointment.rescheduled.
    pub previous_start_at: Option<String>,
    pub provider: ProviderBody,
    pub patient: PatientBody,
    pub clinic: Option<String>,
    pub reason: Option<String>,
    pub financially_cleared: Option<bool>,
    pub consent_verified: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ProviderBody {
    /// The provider's hub user id (in-app notifications go there).
    pub id: String,
    pub name: String,
    /// Extension: where the provider's email notices go.
    pub email: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PatientBody {
    pub id: String,
    pub name: String,
    /// E.164; used when the patient's stored preferences have no phone.
    pub phone: Option<String>,
    /// Used when the patient's stored preferences have no email.
    pub email: Option<String>,
    /// en | ar; used when the clinic stored no preferences for the patient.
    pub language: Option<String>,
}

impl EventBody {
    pub fn into_input(self) -> EventInput {
        let a = self.appointment;
        EventInput {
            id: self.id,
            kind: self.kind,
            occurred_at: self.occurred_at,
            appointment: AppointmentInput {
                id: a.id,
                number: a.number,
                start_at: a.start_at,
                previous_start_at: a.previous_start_at,
                provider_id: a.provider.id,
                provider_name: a.provider.name,
                provider_email: a.provider.email,
                patient_id: a.patient.id,
                patient_name: a.patient.name,
                patient_phone: a.patient.phone,
                patient_email: a.patient.email,
                patient_language: a.patient.language,
                clinic: a.clinic,
                reason: a.reason,
                financially_cleared: a.financially_cleared,
                consent_verified: a.consent_verified,
            },
        }
    }
}

/// What an event caused (the same answer when its id is posted again).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventAnswer {
    /// In-app notifications created (one per recipient user).
    pub notifications: u64,
    /// Outbound messages recorded now (queued, or suppressed with the reason).
    pub messages: u64,
    pub reminders_scheduled: u64,
    pub reminders_cancelled: u64,
}

impl From<EventCounts> for EventAnswer {
    fn from(c: EventCounts) -> Self {
        Self {
            notifications: c.notifications,
            messages: c.messages,
            reminders_scheduled: c.reminders_scheduled,
            reminders_cancelled: c.reminders_cancelled,
        }
    }
}

/// One row of the event log.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventLogEntry {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub appointment_id: String,
    pub occurred_at: String,
    pub received_at: String,
    /// applied | applied_as_booking | ignored_stale | ignored_closed
    pub outcome: String,
    pub result: EventAnswer,
    /// The event as received.
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
}

impl EventLogEntry {
    pub fn from_record(r: EventRecord) -> Self {
        let payload = RawValue::from_string(r.payload)
            .unwrap_or_else(|_| RawValue::from_string("{}".to_owned()).expect("valid JSON"));
        Self {
            id: r.id.as_str().to_owned(),
            kind: r.kind.as_str(),
            appointment_id: r.appointment.as_str().to_owned(),
            occurred_at: super::time(r.occurred_at),
            received_at: super::time(r.received_at),
            outcome: r.outcome,
            result: r.counts.into(),
            payload,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<EventLogEntry>,
    pub next_cursor: Option<String>,
}
