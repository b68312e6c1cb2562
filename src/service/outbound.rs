//! Outbound patient messages: the use cases behind the REST API (and behind the
//! clinic-events rules, which call [`Outbound::send`] / [`Outbound::prepare`]
//! directly).
//!
//! - `templates`: create, edit (a new version), toggle, delete, test-render.
//! - `patients`: the patient's preferences (channels, kinds, language, addresses).
//! - `enqueue`: THE single-message use case: preferences → channel → template →
//!   render → `queued` or `suppressed`, committed before the caller hears back.
//! - `bulk`: thousands of recipients in one transaction, streamed in chunks.
//! - `messages`: list, detail, retry, cancel, cancel a group, batch status.
//! - `stats`, `export`: the reports.
//! - `audit`: who did what; every administrative change writes its entry in the
//!   same store call as the change.
//!
//! The dispatcher (claim → provider → retry) is not here: it consumes the queue
//! these use cases fill.

pub mod audit;
pub mod bulk;
pub mod enqueue;
pub mod export;
pub mod messages;
pub mod patients;
pub mod stats;
pub mod templates;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::clock::Clock;
use crate::store::outbound::OutboundStore;

/// The outbound use cases over one store.
pub struct Outbound {
    store: Arc<dyn OutboundStore>,
    clock: Arc<dyn Clock>,
}

impl Outbound {
    pub fn new(store: Arc<dyn OutboundStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
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
