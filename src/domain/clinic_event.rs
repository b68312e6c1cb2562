//! Clinic events: what happened to an appointment, as the clinic's backend reports
//! it (`POST /v1/events`), and the per-appointment state that orders them.
//!
//! The clinic posts facts; Tidings decides who hears about them (see
//! [`super::clinic_rules`] and [`super::clinic_plan`]). Events may arrive late, twice
//! or out of order, so every appointment keeps a small state (status, start time,
//! newest applied `occurred_at`, the start time its reminders are for) and
//! [`decide`] says whether an event applies. The rule is written out in
//! docs/EVENTS.md ("Out of order").

use std::fmt;

use chrono::{DateTime, Utc};

use super::contact::{EmailAddress, PhoneNumber};
use super::ids::{AppointmentId, EventId, PatientId, UserId};
use super::template::Language;
use super::Invalid;

/// The eight appointment lifecycle events of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    Booked,
    Confirmed,
    Rescheduled,
    Arrived,
    InProgress,
    Completed,
    Cancelled,
    NoShow,
}

impl EventType {
    pub const ALL: [EventType; 8] = [
        EventType::Booked,
        EventType::Confirmed,
        EventType::Rescheduled,
        EventType::Arrived,
        EventType::InProgress,
        EventType::Completed,
        EventType::Cancelled,
        EventType::NoShow,
    ];

    /// The wire name, `appointment.booked`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Booked => "appointment.booked",
            EventType::Confirmed => "appointment.confirmed",
            EventType::Rescheduled => "appointment.rescheduled",
            EventType::Arrived => "appointment.arrived",
            EventType::InProgress => "appointment.in_progress",
            EventType::Completed => "appointment.completed",
            EventType::Cancelled => "appointment.cancelled",
            EventType::NoShow => "appointment.no_show",
        }
    }

    /// The name without the `appointment.` prefix: rule keys and stored statuses.
    pub fn short(self) -> &'static str {
        &self.as_str()["appointment.".len()..]
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == raw)
            .ok_or_else(|| {
                Invalid::new(
                    "type",
                    "must be one of appointment.booked, appointment.confirmed, \
                     appointment.rescheduled, appointment.arrived, appointment.in_progress, \
                     appointment.completed, appointment.cancelled, appointment.no_show",
                )
            })
    }

    /// From a stored status or a rules-file key (`booked`).
    pub fn from_short(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.short() == raw)
    }

    /// After this, nothing is expected to happen to the appointment (it may be
    /// re-opened only as [`decide`] says).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            EventType::Completed | EventType::Cancelled | EventType::NoShow
        )
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The provider (a staff user of the hub: the same id as in the user directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRef {
    pub id: UserId,
    pub name: String,
    /// Where the provider's email notices go (an extension of the contract's
    /// `provider` object); without it those messages are recorded as suppressed.
    pub email: Option<EmailAddress>,
}

/// The patient as the event names them. Contact details here fill in what the
/// patient's stored preferences lack; they never override them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientRef {
    pub id: PatientId,
    pub name: String,
    pub phone: Option<PhoneNumber>,
    pub email: Option<EmailAddress>,
    pub language: Option<Language>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appointment {
    pub id: AppointmentId,
    /// The number staff and patients quote (`APT-2026-000123`).
    pub number: String,
    pub start_at: DateTime<Utc>,
    /// For a reschedule: the old start time (shown to the patient).
    pub previous_start_at: Option<DateTime<Utc>>,
    pub provider: ProviderRef,
    pub patient: PatientRef,
    /// The clinic's display name; the tenant's configured name when absent.
    pub clinic: Option<String>,
    /// Why it was cancelled or rescheduled, shown to staff.
    pub reason: Option<String>,
    /// Reported with `arrived`: the front desk checked payment / insurance.
    pub financially_cleared: Option<bool>,
    /// Reported with `arrived`: consent forms are signed.
    pub consent_verified: Option<bool>,
}

/// A validated clinic event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClinicEvent {
    pub id: EventId,
    pub kind: EventType,
    pub occurred_at: DateTime<Utc>,
    pub appointment: Appointment,
}

/// An event as it arrives, before validation (strings as sent).
#[derive(Debug, Default, Clone)]
pub struct EventInput {
    pub id: String,
    pub kind: String,
    pub occurred_at: String,
    pub appointment: AppointmentInput,
}

#[derive(Debug, Default, Clone)]
pub struct AppointmentInput {
    pub id: String,
    pub number: String,
    pub start_at: String,
    pub previous_start_at: Option<String>,
    pub provider_id: String,
    pub provider_name: String,
    pub provider_email: Option<String>,
    pub patient_id: String,
    pub patient_name: String,
    pub patient_phone: Option<String>,
    pub patient_email: Option<String>,
    pub patient_language: Option<String>,
    pub clinic: Option<String>,
    pub reason: Option<String>,
    pub financially_cleared: Option<bool>,
    pub consent_verified: Option<bool>,
}

const NAME_MAX_CHARS: usize = 200;
const NUMBER_MAX_CHARS: usize = 64;
const REASON_MAX_CHARS: usize = 500;

/// Renames an error's field to the JSON path the client sent.
fn at(field: &str) -> impl Fn(Invalid) -> Invalid + '_ {
    move |e| Invalid::new(field, e.message)
}

fn text(field: &str, raw: &str, max: usize) -> Result<String, Invalid> {
    let n = raw.trim().chars().count();
    if n == 0 || raw.chars().count() > max {
        return Err(Invalid::new(field, format!("must be 1..{max} characters")));
    }
    Ok(raw.to_owned())
}

fn time(field: &str, raw: &str) -> Result<DateTime<Utc>, Invalid> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            Invalid::new(
                field,
                "must be an RFC 3339 time with an offset, e.g. 2026-11-27T09:30:00+03:00",
            )
        })
}

impl ClinicEvent {
    /// Validates every field, naming the first bad one by its JSON path
    /// (`appointment.start_at`, `appointment.patient.phone`).
    pub fn parse(input: &EventInput) -> Result<Self, Invalid> {
        let id = EventId::parse(&input.id).map_err(at("id"))?;
        let kind = EventType::parse(&input.kind)?;
        let occurred_at = time("occurred_at", &input.occurred_at)?;
        let a = &input.appointment;
        let appointment = Appointment {
            id: AppointmentId::parse(&a.id).map_err(at("appointment.id"))?,
            number: text("appointment.number", &a.number, NUMBER_MAX_CHARS)?,
            start_at: time("appointment.start_at", &a.start_at)?,
            previous_start_at: a
                .previous_start_at
                .as_deref()
                .map(|t| time("appointment.previous_start_at", t))
                .transpose()?,
            provider: ProviderRef {
                id: UserId::parse(&a.provider_id).map_err(at("appointment.provider.id"))?,
                name: text(
                    "appointment.provider.name",
                    &a.provider_name,
                    NAME_MAX_CHARS,
                )?,
                email: a
                    .provider_email
                    .as_deref()
                    .map(|e| EmailAddress::parse_field("appointment.provider.email", e))
                    .transpose()?,
            },
            patient: PatientRef {
                id: PatientId::parse(&a.patient_id).map_err(at("appointment.patient.id"))?,
                name: text("appointment.patient.name", &a.patient_name, NAME_MAX_CHARS)?,
                phone: a
                    .patient_phone
                    .as_deref()
                    .map(|p| PhoneNumber::parse_field("appointment.patient.phone", p))
                    .transpose()?,
                email: a
                    .patient_email
                    .as_deref()
                    .map(|e| EmailAddress::parse_field("appointment.patient.email", e))
                    .transpose()?,
                language: a
                    .patient_language
                    .as_deref()
                    .map(|l| Language::parse(l).map_err(at("appointment.patient.language")))
                    .transpose()?,
            },
            clinic: a
                .clinic
                .as_deref()
                .map(|c| text("appointment.clinic", c, NAME_MAX_CHARS))
                .transpose()?,
            reason: a
                .reason
                .as_deref()
                .map(|r| text("appointment.reason", r, REASON_MAX_CHARS))
                .transpose()?,
            financially_cleared: a.financially_cleared,
            consent_verified: a.consent_verified,
        };
        if kind == EventType::Rescheduled && appointment.previous_start_at.is_none() {
            return Err(Invalid::new(
                "appointment.previous_start_at",
                "is required for appointment.rescheduled",
            ));
        }
        Ok(Self {
            id,
            kind,
            occurred_at,
            appointment,
        })
    }
}

/// What the hub remembers about one appointment, updated with every applied event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppointmentState {
    /// The last applied event's type.
    pub status: EventType,
    pub start_at: DateTime<Utc>,
    /// The newest `occurred_at` applied so far: older events are stale.
    pub last_occurred_at: DateTime<Utc>,
    /// The start time the pending reminders were scheduled for (`None`: no
    /// reminders pending, or all cancelled).
    pub reminders_for: Option<DateTime<Utc>>,
    /// Optimistic concurrency: bumped by every write, checked by the next one.
    pub version: i64,
}

/// Whether and how an event applies to the appointment's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Apply the rule of `rule` (usually the event's own type; `Booked` for a
    /// reschedule of an appointment the hub never heard of).
    Apply { rule: EventType },
    /// Recorded in the log, nothing else happens.
    Ignore(IgnoreReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// Older than the newest applied event of the appointment.
    Stale,
    /// The appointment is completed, or cancelled / a no-show and this event does
    /// not re-open it.
    Closed,
}

impl Disposition {
    /// The log's `outcome` column: `applied`, `applied_as_booking`,
    /// `ignored_stale`, `ignored_closed`.
    pub fn outcome(self, kind: EventType) -> &'static str {
        match self {
            Disposition::Apply { rule } if rule != kind => "applied_as_booking",
            Disposition::Apply { .. } => "applied",
            Disposition::Ignore(IgnoreReason::Stale) => "ignored_stale",
            Disposition::Ignore(IgnoreReason::Closed) => "ignored_closed",
        }
    }
}

/// The out-of-order rule (docs/EVENTS.md):
///
/// 1. Unknown appointment: the event applies and creates the state; a reschedule
///    is treated as a booking at the new time (rule `booked`).
/// 2. Completed: nothing applies any more.
/// 3. Cancelled or no-show: only a newer `booked` or `rescheduled` re-opens the
///    appointment (a re-booking); anything else — a late confirmation included —
///    is ignored, so it cannot resurrect reminders.
/// 4. An event older than the newest applied one is stale and ignored, except a
///    late `cancelled` for the start time the appointment still has: the
///    cancellation of the current slot wins (reminders for a cancelled
///    appointment are worse than a missed update). A cancellation of a slot a
///    newer reschedule already moved away from stays ignored.
/// 5. Equal `occurred_at`: applied in arrival order.
pub fn decide(state: Option<&AppointmentState>, event: &ClinicEvent) -> Disposition {
    let Some(state) = state else {
        let rule = match event.kind {
            EventType::Rescheduled => EventType::Booked,
            k => k,
        };
        return Disposition::Apply { rule };
    };
    let stale = event.occurred_at < state.last_occurred_at;
    match state.status {
        EventType::Completed => return Disposition::Ignore(IgnoreReason::Closed),
        EventType::Cancelled | EventType::NoShow => {
            let reopens = matches!(event.kind, EventType::Booked | EventType::Rescheduled);
            return if !reopens {
                Disposition::Ignore(IgnoreReason::Closed)
            } else if stale {
                Disposition::Ignore(IgnoreReason::Stale)
            } else {
                Disposition::Apply { rule: event.kind }
            };
        }
        _ => {}
    }
    if stale {
        if event.kind == EventType::Cancelled && event.appointment.start_at == state.start_at {
            return Disposition::Apply {
                rule: EventType::Cancelled,
            };
        }
        return Disposition::Ignore(IgnoreReason::Stale);
    }
    Disposition::Apply { rule: event.kind }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn input(kind: &str) -> EventInput {
        EventInput {
            id: "evt-1".into(),
            kind: kind.into(),
            occurred_at: "2026-11-27T08:00:00Z".into(),
            appointment: AppointmentInput {
                id: "apt-1".into(),
                number: "APT-0001".into(),
                start_at: "2026-11-28T10:00:00+03:00".into(),
                previous_start_at: Some("2026-11-28T09:00:00+03:00".into()),
                provider_id: "dr-1".into(),
                provider_name: "Dr. Sara".into(),
                patient_id: "p-1".into(),
                patient_name: "Ahmed".into(),
                ..Default::default()
            },
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn every_type_round_trips_and_unknown_names_the_field() {
        for k in EventType::ALL {
            assert_eq!(EventType::parse(k.as_str()).unwrap(), k);
            assert_eq!(EventType::from_short(k.short()), Some(k));
        }
        assert_eq!(
            EventType::parse("appointment.moved").unwrap_err().field,
            "type"
        );
    }

    #[test]
    fn bad_fields_are_named_by_json_path() {
        let mut i = input("appointment.booked");
        i.appointment.start_at = "tomorrow".into();
        assert_eq!(
            ClinicEvent::parse(&i).unwrap_err().field,
            "appointment.start_at"
        );
        let mut i = input("appointment.booked");
        i.appointment.patient_phone = Some("0501234567".into());
        assert_eq!(
            ClinicEvent::parse(&i).unwrap_err().field,
            "appointment.patient.phone"
        );
        let mut i = input("appointment.booked");
        i.appointment.provider_id = "dr 1".into();
        assert_eq!(
            ClinicEvent::parse(&i).unwrap_err().field,
            "appointment.provider.id"
        );
        let mut i = input("appointment.rescheduled");
        i.appointment.previous_start_at = None;
        assert_eq!(
            ClinicEvent::parse(&i).unwrap_err().field,
            "appointment.previous_start_at"
        );
        let ok = ClinicEvent::parse(&input("appointment.booked")).unwrap();
        assert_eq!(ok.appointment.start_at, t("2026-11-28T07:00:00Z"));
    }

    fn state(status: EventType, last: &str) -> AppointmentState {
        AppointmentState {
            status,
            start_at: t("2026-11-28T07:00:00Z"),
            last_occurred_at: t(last),
            reminders_for: None,
            version: 1,
        }
    }

    fn event(kind: &str, occurred: &str) -> ClinicEvent {
        let mut i = input(kind);
        i.occurred_at = occurred.into();
        ClinicEvent::parse(&i).unwrap()
    }

    #[test]
    fn out_of_order_rule() {
        use Disposition::*;
        use EventType::*;
        // Unknown appointment: a reschedule is a booking at the new time.
        assert_eq!(
            decide(
                None,
                &event("appointment.rescheduled", "2026-11-27T08:00:00Z")
            ),
            Apply { rule: Booked }
        );
        // Stale: ignored.
        let s = state(Confirmed, "2026-11-27T09:00:00Z");
        assert_eq!(
            decide(
                Some(&s),
                &event("appointment.booked", "2026-11-27T08:00:00Z")
            ),
            Ignore(IgnoreReason::Stale)
        );
        // A late cancellation of the current slot still applies...
        assert_eq!(
            decide(
                Some(&s),
                &event("appointment.cancelled", "2026-11-27T08:00:00Z")
            ),
            Apply { rule: Cancelled }
        );
        // ...but not of a slot a newer reschedule moved away from.
        let mut moved = s.clone();
        moved.start_at = t("2026-11-29T07:00:00Z");
        assert_eq!(
            decide(
                Some(&moved),
                &event("appointment.cancelled", "2026-11-27T08:00:00Z")
            ),
            Ignore(IgnoreReason::Stale)
        );
        // A confirmation after a cancellation does not re-open it.
        let c = state(Cancelled, "2026-11-27T09:00:00Z");
        assert_eq!(
            decide(
                Some(&c),
                &event("appointment.confirmed", "2026-11-27T10:00:00Z")
            ),
            Ignore(IgnoreReason::Closed)
        );
        // A newer re-booking does.
        assert_eq!(
            decide(
                Some(&c),
                &event("appointment.rescheduled", "2026-11-27T10:00:00Z")
            ),
            Apply { rule: Rescheduled }
        );
        // Completed is final; equal times apply in arrival order.
        let done = state(Completed, "2026-11-27T09:00:00Z");
        assert_eq!(
            decide(
                Some(&done),
                &event("appointment.booked", "2026-11-27T10:00:00Z")
            ),
            Ignore(IgnoreReason::Closed)
        );
        assert_eq!(
            decide(
                Some(&s),
                &event("appointment.arrived", "2026-11-27T09:00:00Z")
            ),
            Apply { rule: Arrived }
        );
    }
}
