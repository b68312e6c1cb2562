//! Clinic events: `POST /v1/events` as a use case.
//!
//! 1. An event id seen before answers its first counts (nothing new).
//! 2. The tenant's default templates are seeded once (`seed`).
//! 3. Plan (pure, `domain::clinic_plan`) from the appointment's state, the patient's
//!    preferences and the clock; resolve it (role recipients, staff locales, the
//!    tenant's templates, rendering); apply it in ONE store transaction.
//! 4. After the commit, the notifications are pushed live like a publish's.
//!
//! The plan is made from a state version; if another event of the same appointment
//! committed meanwhile, the store refuses and the event is planned again.

mod resolve;
mod seed;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use super::clock::Clock;
use super::directory::Directory;
use super::outbound::audit::{self, Actor};
use super::ServiceError;
use crate::config::events::EventsBook;
use crate::domain::clinic_event::ClinicEvent;
use crate::domain::clinic_plan::{self, language_of_locale, PlanContext};
use crate::domain::ids::{AppointmentId, TenantId};
use crate::hub::Hub;
use crate::store::events::{ApplyOutcome, EventCounts, EventRecord};
use crate::store::{Page, PageRequest, Store, StoreError};

/// How many times an event is planned again when its appointment changed under it.
const MAX_ATTEMPTS: usize = 5;

pub struct ClinicEvents {
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
    directory: Arc<Directory>,
    book: EventsBook,
    clock: Arc<dyn Clock>,
    /// Tenants known to be seeded, so the store is asked once per tenant and process.
    seeded: Mutex<HashSet<TenantId>>,
    /// Pokes this node's queue worker after an event committed messages, so they
    /// leave at once rather than at the next poll.
    wake: Option<super::leased::Wake>,
}

impl ClinicEvents {
    pub fn new(
        store: Arc<dyn Store>,
        hub: Arc<Hub>,
        directory: Arc<Directory>,
        book: EventsBook,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            hub,
            directory,
            book,
            clock,
            seeded: Mutex::new(HashSet::new()),
            wake: None,
        }
    }

    /// Wakes `wake` (the node's queue worker) after every event that queued messages.
    pub fn waking(mut self, wake: super::leased::Wake) -> Self {
        self.wake = Some(wake);
        self
    }

    /// Applies one event; `payload` is the request body, kept in the event log.
    pub async fn apply(
        &self,
        tenant: &TenantId,
        event: &ClinicEvent,
        payload: String,
    ) -> Result<EventCounts, ServiceError> {
        self.seed(tenant).await?;
        let config = self.book.for_tenant(tenant).clone();
        for _ in 0..MAX_ATTEMPTS {
            if let Some(counts) = self.store.event_counts(tenant, &event.id).await? {
                return Ok(counts);
            }
            let now = self.clock.now();
            let a = &event.appointment;
            let state = self.store.appointment_state(tenant, &a.id).await?;
            let prefs = self
                .store
                .patient_preferences(tenant, &a.patient.id)
                .await?;
            let locales = self
                .store
                .user_locales(tenant, std::slice::from_ref(&a.provider.id))
                .await?;
            let plan = clinic_plan::plan(
                event,
                &PlanContext {
                    rules: &config.rules,
                    in_app: &self.book.texts.in_app,
                    state: state.as_ref(),
                    patient_prefs: prefs.as_ref(),
                    provider_language: language_of_locale(
                        locales.get(&a.provider.id).map(String::as_str),
                    ),
                    now,
                    tz: config.tz,
                    clinic: &config.clinic,
                },
            )
            .map_err(ServiceError::Internal)?;
            let app = self
                .resolve(tenant, event, &plan, state.as_ref(), payload.clone(), now)
                .await?;
            match self.store.apply_event(&app).await {
                Ok(ApplyOutcome::Applied { counts, published }) => {
                    if counts.messages > 0 {
                        if let Some(wake) = &self.wake {
                            wake.wake();
                        }
                    }
                    super::publish::deliver(&self.hub, published).await;
                    return Ok(counts);
                }
                Ok(ApplyOutcome::Replayed(counts)) => return Ok(counts),
                // Another event of this appointment (or this very event, posted twice at
                // once) committed first: look again.
                Ok(ApplyOutcome::StateChanged) | Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Unavailable(format!(
            "appointment {} kept changing while applying event {}",
            event.appointment.id, event.id
        )))
    }

    /// The event log, newest first. Its payloads name patients (names, phones), so the
    /// read is audited as `read.events` like every read of patient data, and fails
    /// closed: no audit entry, no answer.
    pub async fn list(
        &self,
        tenant: &TenantId,
        appointment: Option<&AppointmentId>,
        page: PageRequest,
        actor: &Actor,
    ) -> Result<Page<EventRecord>, ServiceError> {
        let page = self.store.list_events(tenant, appointment, page).await?;
        let detail = serde_json::json!({
            "appointment_id": appointment.map(|a| a.as_str()),
            "rows": page.items.len(),
        });
        let entry = audit::entry(
            actor,
            "read.events",
            "events".into(),
            detail,
            self.clock.now(),
        );
        self.store.record_audit(tenant, &entry).await?;
        Ok(page)
    }
}
