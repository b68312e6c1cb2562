//! The delivery queue of webhooks to clinic systems. The leased worker
//! (`service::leased`, one per node) claims due deliveries (nodes share one queue; a
//! dead node's deliveries come back after the lease and are sent again with the same
//! `webhook-id`: the only duplicates); each is signed (Standard Webhooks: `webhook-id`,
//! `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`), sent, and
//! its answer recorded in one `finish_delivery` guarded by the lease token. What an
//! answer means is [`attempt_result`]:
//!
//! | answer | delivery becomes |
//! |---|---|
//! | 2xx | `succeeded` (the endpoint's run of failures ends) |
//! | 410 Gone | `failed`, and the endpoint is disabled (the spec's rule) |
//! | anything else, or no answer | `pending` at the next time of the schedule (Retry-After if longer), or `failed` once 24 h have passed |
//!
//! When a result disables the endpoint (410, or the run of failures passed
//! `[webhooks]`'s policy), the tenant's `admin` users get an in-app notification.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::auth::Role;
use crate::domain::notification::{ContentInput, NotificationContent};
use crate::domain::webhook::{next_attempt, DisablePolicy, DisableReason};
use crate::provider::clinic_webhooks::{ClinicWebhookSender, SendReport, SignedRequest};
use crate::service::clock::Clock;
use crate::service::leased::{LeaseSettings, LeasedJobs};
use crate::service::publish::{Publisher, Target};
use crate::store::webhooks::{
    AttemptNext, AttemptRecorded, AttemptResult, ClaimedDelivery, WebhookStore,
};
use crate::store::StoreError;

/// The worker's pace and policy (from `[webhooks]`).
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub queue: LeaseSettings,
    pub timeout: Duration,
    pub policy: DisablePolicy,
    pub allow_internal: bool,
}

pub struct WebhookWorker {
    store: Arc<dyn WebhookStore>,
    sender: ClinicWebhookSender,
    publisher: Arc<Publisher>,
    clock: Arc<dyn Clock>,
    settings: DeliverySettings,
}

/// What one attempt's answer makes of the delivery (pure): `attempt` is its number
/// (1-based), `jitter` in `[0, 1)`.
pub fn attempt_result(
    report: &SendReport,
    attempt: u32,
    window_start: DateTime<Utc>,
    now: DateTime<Utc>,
    jitter: f64,
) -> AttemptResult {
    let next = match report.status {
        Some(200..=299) => AttemptNext::Succeeded,
        Some(410) => AttemptNext::Failed { gone: true },
        _ => match next_attempt(attempt, window_start, now, jitter, report.retry_after) {
            Some(at) => AttemptNext::RetryAt(at),
            None => AttemptNext::Failed { gone: false },
        },
    };
    AttemptResult {
        at: now,
        response_status: report.status,
        error: report.error.clone().or_else(|| {
            report
                .status
                .filter(|s| !(200..300).contains(s))
                .map(|s| format!("HTTP {s}"))
        }),
        duration_ms: report.duration.as_millis() as u64,
        next,
    }
}

impl WebhookWorker {
    pub fn new(
        store: Arc<dyn WebhookStore>,
        publisher: Arc<Publisher>,
        clock: Arc<dyn Clock>,
        settings: DeliverySettings,
    ) -> Result<Arc<Self>, String> {
        let sender = ClinicWebhookSender::new(settings.timeout, settings.allow_internal)?;
        Ok(Arc::new(Self {
            store,
            sender,
            publisher,
            clock,
            settings,
        }))
    }
}

/// The delivery queue, worked by a [`crate::service::leased::Worker`] on every node.
#[async_trait]
impl LeasedJobs for WebhookWorker {
    type Job = ClaimedDelivery;

    async fn claim(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        self.store.claim_deliveries(now, lease_until, limit).await
    }

    async fn work(&self, delivery: ClaimedDelivery) {
        self.deliver(delivery).await;
    }

    async fn observe(&self) {
        if let Ok(n) = self.store.pending_deliveries().await {
            metrics::gauge!("tidings_webhook_deliveries_pending").set(n as f64);
        }
    }
}

impl WebhookWorker {
    /// One claimed delivery: sign, send, record.
    async fn deliver(&self, claimed: ClaimedDelivery) {
        let d = &claimed.delivery;
        let timestamp = self.clock.now().timestamp();
        let signature = claimed
            .secret
            .sign(&d.event_id, timestamp, d.payload.as_bytes());
        let report = self
            .sender
            .send(&SignedRequest {
                url: &claimed.url,
                webhook_id: &d.event_id,
                timestamp,
                signature: &signature,
                body: &d.payload,
            })
            .await;
        let result = attempt_result(
            &report,
            d.attempts + 1,
            claimed.window_start,
            self.clock.now(),
            rand::random::<f64>(),
        );
        let label = match result.next {
            AttemptNext::Succeeded => "succeeded",
            AttemptNext::RetryAt(_) => "retry",
            AttemptNext::Failed { .. } => "failed",
        };
        match self
            .store
            .finish_delivery(
                &claimed.tenant,
                d.id,
                claimed.lease_token,
                &result,
                &self.settings.policy,
            )
            .await
        {
            Ok(AttemptRecorded::Recorded { disabled }) => {
                metrics::counter!("tidings_webhook_attempts_total", "result" => label).increment(1);
                if let Some(reason) = disabled {
                    self.endpoint_disabled(&claimed, reason).await;
                }
            }
            Ok(AttemptRecorded::LeaseLost) => {
                tracing::info!(delivery = %d.id, "webhook lease lost before the answer was recorded");
                metrics::counter!("tidings_webhook_lease_lost_total").increment(1);
            }
            Err(e) => {
                tracing::warn!(delivery = %d.id, error = %e, "recording a webhook attempt failed; sent again after the lease");
            }
        }
    }

    /// Tells the tenant's admins (in-app) that an endpoint was disabled, naming it by
    /// id and host only (a URL's query may hold the receiver's token).
    async fn endpoint_disabled(&self, claimed: &ClaimedDelivery, reason: DisableReason) {
        let endpoint = claimed.delivery.endpoint.to_string();
        metrics::counter!("tidings_webhook_endpoints_disabled_total", "reason" => reason.as_str())
            .increment(1);
        tracing::warn!(tenant = %claimed.tenant, endpoint = %endpoint, reason = reason.as_str(), "webhook endpoint disabled");
        let host = endpoint_host(&claimed.url);
        let why = match reason {
            DisableReason::Gone => "it answered 410 Gone".to_owned(),
            DisableReason::Failures => format!(
                "{} deliveries in a row failed, or it failed for {} days",
                self.settings.policy.after_failed_deliveries,
                self.settings.policy.after_failing_for.as_secs() / 86_400
            ),
        };
        let message = format!(
            "Webhook endpoint {endpoint} ({host}) was disabled: {why}. Deliveries to it wait \
             until it is enabled again (PUT /v1/webhook-endpoints/{endpoint})."
        );
        let content = NotificationContent::parse(ContentInput {
            title: "Webhook endpoint disabled",
            message: &message,
            kind: Some("error"),
            category: Some("webhook.endpoint_disabled"),
            related: Some(("webhook_endpoint", &endpoint)),
            // Deliveries to the clinic's systems stopped: someone should look today.
            priority: Some("high"),
            ..ContentInput::default()
        });
        let published = match content {
            Ok(content) => {
                self.publisher
                    .publish(
                        &claimed.tenant,
                        Target::Role(Role::Admin),
                        content,
                        Vec::new(),
                        None,
                    )
                    .await
            }
            Err(e) => Err(e.into()),
        };
        if let Err(e) = published {
            tracing::warn!(endpoint = %endpoint, error = %e, "could not tell the admins that a webhook endpoint was disabled");
        }
    }
}

/// The host of an endpoint URL (validated at the edge) without scheme, path or query.
fn endpoint_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?', '#']).next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn report(status: Option<u16>) -> SendReport {
        SendReport {
            status,
            retry_after: None,
            error: status.is_none().then(|| "connection failed".to_owned()),
            duration: Duration::from_millis(12),
        }
    }

    #[test]
    fn answers_decide_the_next_step() {
        let start = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let at = |s| start + chrono::Duration::seconds(s);
        let table = [
            (Some(200), 1, 0, AttemptNext::Succeeded),
            (Some(204), 3, 400, AttemptNext::Succeeded),
            (Some(410), 1, 0, AttemptNext::Failed { gone: true }),
            (Some(500), 1, 0, AttemptNext::RetryAt(at(5))),
            (Some(302), 1, 0, AttemptNext::RetryAt(at(5))),
            (None, 2, 5, AttemptNext::RetryAt(at(305))),
            (Some(503), 7, 17 * 3600, AttemptNext::Failed { gone: false }),
        ];
        for (status, attempt, now, want) in table {
            let r = attempt_result(&report(status), attempt, start, at(now), 0.0);
            assert_eq!(r.next, want, "{status:?} attempt {attempt}");
            assert_eq!(r.response_status, status);
            assert_eq!(r.duration_ms, 12);
        }
        let r = attempt_result(&report(Some(500)), 1, start, start, 0.0);
        assert_eq!(r.error.as_deref(), Some("HTTP 500"));
        let r = attempt_result(&report(Some(200)), 1, start, start, 0.0);
        assert_eq!(r.error, None);
    }

    #[test]
    fn hosts_are_named_without_path_or_query() {
        assert_eq!(
            endpoint_host("https://h.example:8443/p?token=x"),
            "h.example:8443"
        );
        assert_eq!(endpoint_host("http://127.0.0.1:9/"), "127.0.0.1:9");
    }
}
