//! Outbound patient messages: the use cases behind the REST API (and behind the
//! clinic-events rules, which call [`Outbound::send`] / [`Outbound::prepare`]
//! directly).
//!
//! - `templates`: create, edit (a new version), toggle, delete, test-render.
//! - `patients`: the patient's preferences (channels, kinds, language, addresses).
//! - `enqueue`: THE single-message use case: preferences → channel → template →
//!   render → `queued` or `suppressed`, committed before the caller hears back.
//! - `bulk`: thousands of recipients in one transaction, prepared in chunks first.
//! - `messages`: list, detail, retry, cancel, cancel a group, batch status.
//! - `stats`, `export`: the reports.
//! - `audit`: who did what; every administrative change writes its entry in the
//!   same store call as the change.
//!
//! - `dispatch`: the queue worker (claim → provider chain → retry/backoff →
//!   terminal) that consumes the queue these use cases fill; `routing`: each
//!   tenant's providers; `callbacks`: provider status webhooks.

pub mod audit;
pub mod bulk;
pub mod callbacks;
pub mod dispatch;
pub mod enqueue;
pub mod export;
pub mod messages;
pub mod patients;
pub mod routing;
pub mod stats;
pub mod templates;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::clock::Clock;
use crate::config::events::EventsBook;
use crate::domain::ids::TenantId;
use crate::store::outbound::OutboundStore;

/// The outbound use cases over one store.
pub struct Outbound {
    store: Arc<dyn OutboundStore>,
    clock: Arc<dyn Clock>,
    /// Pokes this node's queue worker after a commit, so a message due now is sent
    /// at once rather than at the worker's next poll. `None`: the poll finds it.
    wake: Option<super::leased::Wake>,
    /// How many bulk sends run at once (node, tenant).
    bulk: bulk::BulkLimits,
    /// Each tenant's `[events]`: its clinic name (the default subject of an email)
    /// and its clinic-event rules (a template they send cannot be deleted).
    clinics: Arc<EventsBook>,
}

impl Outbound {
    pub fn new(
        store: Arc<dyn OutboundStore>,
        clock: Arc<dyn Clock>,
        clinics: Arc<EventsBook>,
    ) -> Self {
        Self {
            store,
            clock,
            wake: None,
            bulk: bulk::BulkLimits::default(),
            clinics,
        }
    }

    /// The rules of `tenant` that send the template named `name` (paths in the
    /// rules file, e.g. `events.confirmed.messages[0]`); empty when none does.
    pub fn rules_using(&self, tenant: &TenantId, name: &str) -> Vec<String> {
        self.clinics.for_tenant(tenant).rules.rules_using(name)
    }

    /// Limits concurrent bulk sends (`[outbound] bulk_concurrency`, `…_per_tenant`).
    pub fn bulk_limits(mut self, limits: bulk::BulkLimits) -> Self {
        self.bulk = limits;
        self
    }

    /// Wakes `wake`'s worker after every committed enqueue.
    pub fn waking(mut self, wake: super::leased::Wake) -> Self {
        self.wake = Some(wake);
        self
    }

    /// Tells this node's worker that messages were just queued.
    fn wake_worker(&self) {
        if let Some(w) = &self.wake {
            w.wake();
        }
    }

    /// The store, for callers that compose their own transactions (the
    /// clinic-events engine feeds prepared messages to `OutboundStore::enqueue`).
    pub fn store(&self) -> &Arc<dyn OutboundStore> {
        &self.store
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}
