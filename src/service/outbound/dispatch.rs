//! The outbound queue's jobs. The leased worker (`service::leased`, one per node)
//! claims due messages; each is sent through its tenant's failover chain, and the
//! outcome becomes the message's next state through the retry policy, in one
//! `finish_attempt` guarded by the lease token. The worker
//! does the IO; what each answer means is the pure [`decision`] (this table).
//!
//! | provider answer | message becomes | events |
//! |---|---|---|
//! | accepted | `sent` (provider id, price) | `sent` |
//! | `Transient` | `queued` at the backoff time (Retry-After if longer) | `retry` |
//! | `Transient`, retries used up | next provider of the chain at once, else `failed` | `failover` / `failed` |
//! | `Rejected` | `bounced` | `bounced` |
//! | `Unknown` | stays `sending` until the unknown-outcome deadline; the callback settles it | `unknown` |
//! | `Misconfigured` | the chain already moved on; at the end of it: as `Transient` | `failover` / `retry` |
//! | every breaker open | `queued` when the first breaker half-opens (not a retry) | `retry` |
//!
//! A message claimed while `sending` (its worker died, or its unknown-outcome wait
//! ran out) counts one transient failure and is sent again: only such messages can
//! ever reach a patient twice (see docs/OUTBOUND.md).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::routing::ProviderRouting;
use crate::domain::message::{MessageStatus, RetryPolicy, Suppression};
use crate::provider::failover::ChainOutcome;
use crate::provider::{OutboundMessage, ProviderAccepted, ProviderError, WhatsappTemplate};
use crate::service::clock::Clock;
use crate::service::leased::LeasedJobs;
use crate::store::outbound::{AttemptUpdate, ClaimedMessage, OutboundStore};
use crate::store::StoreError;
use decision::{next_step, Attempt, Step};

mod decision;

pub struct Dispatcher {
    store: Arc<dyn OutboundStore>,
    routing: Arc<ProviderRouting>,
    clock: Arc<dyn Clock>,
    retry: RetryPolicy,
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn OutboundStore>,
        routing: Arc<ProviderRouting>,
        clock: Arc<dyn Clock>,
        retry: RetryPolicy,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            routing,
            clock,
            retry,
        })
    }
}

/// The outbound queue, worked by a [`crate::service::leased::Worker`] on every node.
#[async_trait]
impl LeasedJobs for Dispatcher {
    type Job = ClaimedMessage;

    async fn claim(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedMessage>, StoreError> {
        self.store.claim_due(now, lease_until, limit).await
    }

    async fn work(&self, message: ClaimedMessage) {
        self.process(message).await;
    }
}

impl Dispatcher {
    /// One claimed message: from the claim to its recorded outcome.
    async fn process(&self, claimed: ClaimedMessage) {
        let ClaimedMessage {
            message,
            previous_status,
            lease_token,
        } = claimed;
        let tenant = message.tenant.clone();
        let id = message.id;
        let update = match self.decide(&message, previous_status).await {
            Ok(update) => update,
            Err(e) => {
                // The store is unreachable: leave the lease to expire; the message
                // is claimed again then.
                tracing::warn!(message = %id, error = %e, "outbound send not recorded");
                return;
            }
        };
        let status = update.status;
        let provider = update.provider.clone().unwrap_or_default();
        match self
            .store
            .finish_attempt(&tenant, id, lease_token, &update, self.clock.now())
            .await
        {
            Ok(true) => {
                metrics::counter!(
                    "tidings_outbound_messages_total",
                    "status" => status.as_str(),
                    "provider" => provider
                )
                .increment(1);
            }
            Ok(false) => {
                tracing::info!(message = %id, "lease lost before the outcome was recorded");
                metrics::counter!("tidings_outbound_lease_lost_total").increment(1);
            }
            Err(e) => {
                tracing::warn!(message = %id, error = %e, "recording an outbound attempt failed");
            }
        }
    }

    /// Does the IO of one attempt (preferences, template, the chain's sends) and
    /// lets [`decision`] say what each answer means.
    async fn decide(
        &self,
        message: &crate::store::outbound::MessageRecord,
        previous_status: MessageStatus,
    ) -> Result<AttemptUpdate, crate::store::StoreError> {
        let policy = &self.retry;
        let mut attempt =
            Attempt::new(message.provider.clone(), message.failures, self.clock.now());
        let mut exhausted = false; // retries on the stored provider are used up
        if previous_status == MessageStatus::Sending {
            exhausted = attempt.reclaimed(policy);
        } else if let Some(suppression) = self.suppressed_now(message).await? {
            return Ok(attempt.suppressed(suppression));
        }
        let Some(outbound) = self.outbound_message(message).await? else {
            return Ok(attempt.no_address());
        };
        let chain = self.routing.chain(&message.tenant, message.channel);
        let mut outcome = chain
            .send(&outbound, attempt.provider.as_deref(), exhausted)
            .await;
        let mut gave_up = None;
        loop {
            count_call(&outcome);
            let step = next_step(
                attempt,
                outcome,
                policy,
                gave_up,
                message.last_error.as_deref(),
                self.clock.now(),
            );
            match step {
                Step::Finish(update) => return Ok(update),
                Step::NextProvider {
                    attempt: next,
                    provider,
                    gave_up: why,
                } => {
                    outcome = chain.send(&outbound, Some(&provider), true).await;
                    (attempt, gave_up) = (next, Some(why));
                }
            }
        }
    }

    /// Whether the patient's preferences, read now, forbid the message (they may
    /// have changed since it was queued): its kind or its channel turned off.
    async fn suppressed_now(
        &self,
        message: &crate::store::outbound::MessageRecord,
    ) -> Result<Option<Suppression>, crate::store::StoreError> {
        let Some(patient) = &message.patient else {
            return Ok(None);
        };
        let Some(prefs) = self
            .store
            .patient_preferences(&message.tenant, patient)
            .await?
        else {
            return Ok(None);
        };
        if !prefs.kinds.get(message.kind) {
            return Ok(Some(Suppression::KindDisabled(message.kind)));
        }
        if !prefs.channels.get(message.channel) {
            return Ok(Some(Suppression::ChannelDisabled(message.channel)));
        }
        Ok(None)
    }

    /// The provider's view of the message. A WhatsApp message rendered from a
    /// template names that template (the approved WhatsApp template of the same
    /// name) with the variables as positional parameters in declared order.
    async fn outbound_message(
        &self,
        message: &crate::store::outbound::MessageRecord,
    ) -> Result<Option<OutboundMessage>, crate::store::StoreError> {
        let Some(to) = message.to.clone() else {
            return Ok(None);
        };
        let mut whatsapp_template = None;
        if message.channel == crate::domain::template::Channel::Whatsapp {
            if let Some(t) = &message.template {
                // Versions are never deleted (a template delete is soft), so a missing
                // one is corrupt data: an error, never a template sent without its
                // parameters.
                let version = self
                    .store
                    .template_version(&message.tenant, t.id, t.version)
                    .await?
                    .ok_or_else(|| {
                        crate::store::StoreError::Internal(format!(
                            "template {} version {} of message {} is missing",
                            t.id, t.version, message.id
                        ))
                    })?;
                whatsapp_template = Some(WhatsappTemplate {
                    name: t.name.clone(),
                    parameters: version.positional_values(&message.variables),
                });
            }
        }
        Ok(Some(OutboundMessage {
            id: message.id,
            channel: message.channel,
            to,
            language: message.language,
            subject: message.subject.clone(),
            body: message.body.clone(),
            whatsapp_template,
        }))
    }
}

/// Counts a provider call by its result (nothing was called for the others).
fn count_call(outcome: &ChainOutcome) {
    if let ChainOutcome::Attempted {
        provider, result, ..
    } = outcome
    {
        metrics::counter!(
            "tidings_outbound_provider_calls_total",
            "provider" => provider.clone(),
            "result" => result_label(result)
        )
        .increment(1);
    }
}

fn result_label(result: &Result<ProviderAccepted, ProviderError>) -> &'static str {
    match result {
        Ok(_) => "accepted",
        Err(ProviderError::Rejected { .. }) => "rejected",
        Err(ProviderError::Transient { .. }) => "transient",
        Err(ProviderError::Unknown { .. }) => "unknown",
        Err(ProviderError::Misconfigured { .. }) => "misconfigured",
    }
}
