//! The escalation schedule's jobs. The leased worker (`service::leased`, one per node)
//! claims due steps (so N nodes share one schedule and a dead node's steps come back
//! after the lease). A step's recipients are resolved (a role: its directory users
//! now), then the store publishes the copy and ends the step in one transaction, so a
//! step fires once however many nodes run. The copies are pushed like any publish.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::clock::Clock;
use super::directory::Directory;
use super::leased::LeasedJobs;
use super::publish::deliver;
use super::ServiceError;
use crate::domain::escalation::EscalationTarget;
use crate::hub::Hub;
use crate::store::escalations::{ClaimedEscalation, EscalationStore, FireOutcome};
use crate::store::StoreError;

pub struct Escalator {
    store: Arc<dyn EscalationStore>,
    directory: Arc<Directory>,
    hub: Arc<Hub>,
    clock: Arc<dyn Clock>,
}

impl Escalator {
    pub fn new(
        store: Arc<dyn EscalationStore>,
        directory: Arc<Directory>,
        hub: Arc<Hub>,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            directory,
            hub,
            clock,
        })
    }
}

/// The schedule of steps, worked by a [`crate::service::leased::Worker`] on every node.
#[async_trait]
impl LeasedJobs for Escalator {
    type Job = ClaimedEscalation;

    async fn claim(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedEscalation>, StoreError> {
        self.store.claim_escalations(now, lease_until, limit).await
    }

    async fn work(&self, step: ClaimedEscalation) {
        if let Err(e) = self.fire(&step).await {
            // Left to its lease: claimed again (here or on another node) after it.
            tracing::warn!(
                tenant = %step.tenant, chain = %step.chain, step = step.step,
                error = %e, "escalation step not fired"
            );
        }
    }
}

impl Escalator {
    async fn fire(&self, step: &ClaimedEscalation) -> Result<(), ServiceError> {
        let recipients = match &step.to {
            EscalationTarget::User(u) => vec![u.clone()],
            EscalationTarget::Role(r) => self.directory.with_role(&step.tenant, *r).await?,
        };
        match self
            .store
            .fire_escalation(step, recipients, self.clock.now())
            .await?
        {
            FireOutcome::Fired(outcome) => {
                metrics::counter!("tidings_escalations_total", "outcome" => "fired").increment(1);
                deliver(&self.hub, vec![outcome]).await;
            }
            FireOutcome::NotMine => {
                metrics::counter!("tidings_escalations_total", "outcome" => "not_mine")
                    .increment(1);
            }
            FireOutcome::Dropped => {
                metrics::counter!("tidings_escalations_total", "outcome" => "dropped").increment(1);
                tracing::info!(tenant = %step.tenant, chain = %step.chain, "escalation dropped: the original is gone");
            }
        }
        Ok(())
    }
}
