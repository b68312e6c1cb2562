//! The escalation worker: one per node. It claims due escalation steps from the store
//! with a lease (as the outbound worker claims messages, so N nodes share one
//! schedule and a dead node's steps come back after the lease), resolves each step's
//! recipients (a role: its directory users now), and fires it: the store publishes the
//! copy and ends the step in one transaction, so a step fires once however many nodes
//! run. The copies are then pushed like any publish.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::clock::Clock;
use super::directory::Directory;
use super::publish::deliver;
use super::ServiceError;
use crate::domain::escalation::EscalationTarget;
use crate::hub::Hub;
use crate::store::escalations::{ClaimedEscalation, EscalationStore, FireOutcome};

/// The worker's pace (from `[escalation]`).
#[derive(Debug, Clone)]
pub struct EscalationSettings {
    pub poll_interval: Duration,
    pub lease: Duration,
    pub claim_batch: u32,
}

pub struct Escalator {
    store: Arc<dyn EscalationStore>,
    directory: Arc<Directory>,
    hub: Arc<Hub>,
    clock: Arc<dyn Clock>,
    settings: EscalationSettings,
}

impl Escalator {
    pub fn new(
        store: Arc<dyn EscalationStore>,
        directory: Arc<Directory>,
        hub: Arc<Hub>,
        clock: Arc<dyn Clock>,
        settings: EscalationSettings,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            directory,
            hub,
            clock,
            settings,
        })
    }

    /// Runs until `stopping` is cancelled. A step being fired when it is cancelled is
    /// finished (it is one transaction); one cut off is claimed again after its lease.
    pub async fn run(self: Arc<Self>, stopping: CancellationToken) {
        while !stopping.is_cancelled() {
            let full = match self.pass().await {
                Ok(claimed) => claimed == self.settings.claim_batch as usize,
                Err(e) => {
                    tracing::warn!(error = %e, "escalation claim failed; retrying at the next poll");
                    false
                }
            };
            if full {
                continue; // more may be due right now
            }
            tokio::select! {
                _ = stopping.cancelled() => break,
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
    }

    /// Claims the due steps and fires each; returns how many were claimed.
    async fn pass(&self) -> Result<usize, ServiceError> {
        let now = self.clock.now();
        let lease = chrono::Duration::from_std(self.settings.lease)
            .unwrap_or_else(|_| chrono::Duration::seconds(30));
        let claimed = self
            .store
            .claim_escalations(now, now + lease, self.settings.claim_batch)
            .await?;
        let n = claimed.len();
        for step in claimed {
            if let Err(e) = self.fire(&step).await {
                // Left to its lease: claimed again (here or on another node) after it.
                tracing::warn!(
                    tenant = %step.tenant, chain = %step.chain, step = step.step,
                    error = %e, "escalation step not fired"
                );
            }
        }
        Ok(n)
    }

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
