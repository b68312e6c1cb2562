//! The retention job, every `retention.interval_secs`:
//! - deletes read (or archived) notifications older than `retention.max_age_days`;
//! - redacts patient data (PHI) older than the tenant's `phi_days`: message addresses,
//!   subjects, bodies, variables and provider texts, clinic-event payloads, and the staff
//!   notifications about a patient. The rows stay (status, channel, template, times, cost;
//!   a notification's read state), so stats, exports and unread counts keep counting.
//!
//! Both work in bounded chunks, one short transaction each, so a large backlog (the
//! first run after an upgrade) never holds SQLite's single writer for long. Time comes
//! from the injected clock, so tests move it days ahead instead of waiting.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::clock::Clock;
use crate::domain::ids::TenantId;
use crate::store::outbound::{PhiScope, RedactionCounts};
use crate::store::Store;

/// Rows per delete statement, so one run never holds the write lock for long.
const PURGE_CHUNK: u32 = 1000;

/// How long each tenant's patient data is kept (days; 0 keeps it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhiRetention {
    /// Every tenant without an override.
    pub default_days: u32,
    /// `[retention.tenants.<id>] phi_days`.
    pub tenants: BTreeMap<TenantId, u32>,
}

impl PhiRetention {
    /// The passes to run at `now`: each overriding tenant on its own, then every other
    /// tenant together; a scope whose days are 0 is kept and has no pass.
    pub fn passes(&self, now: DateTime<Utc>) -> Vec<(PhiScope, DateTime<Utc>)> {
        let cutoff = |days: u32| now - chrono::Duration::days(i64::from(days));
        let mut passes: Vec<(PhiScope, DateTime<Utc>)> = self
            .tenants
            .iter()
            .filter(|(_, days)| **days > 0)
            .map(|(t, days)| (PhiScope::Tenant(t.clone()), cutoff(*days)))
            .collect();
        if self.default_days > 0 {
            let others = self.tenants.keys().cloned().collect();
            passes.push((PhiScope::AllExcept(others), cutoff(self.default_days)));
        }
        passes
    }
}

/// What the job does and how often.
#[derive(Debug, Clone)]
pub struct RetentionSettings {
    pub notifications_max_age: Duration,
    pub every: Duration,
    pub phi: PhiRetention,
    /// Messages (and, separately, clinic events) redacted per transaction.
    pub phi_batch: u32,
}

pub async fn run(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: RetentionSettings,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(settings.every);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = clock.now();
        purge_notifications(store.as_ref(), &settings, now, &stop).await;
        redact_phi(store.as_ref(), &settings, now, &stop).await;
    }
}

async fn purge_notifications(
    store: &dyn Store,
    settings: &RetentionSettings,
    now: DateTime<Utc>,
    stop: &CancellationToken,
) {
    let cutoff = now
        - chrono::Duration::from_std(settings.notifications_max_age)
            .unwrap_or(chrono::Duration::days(90));
    let mut total = 0;
    loop {
        match store.purge_before(cutoff, PURGE_CHUNK).await {
            Ok(n) => {
                total += n;
                if n < u64::from(PURGE_CHUNK) || stop.is_cancelled() {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention purge failed; retrying next run");
                break;
            }
        }
    }
    if total > 0 {
        tracing::info!(deleted = total, "retention purge");
        metrics::counter!("tidings_retention_deleted_total").increment(total);
    }
}

/// Runs every pass until it finds less than a full chunk (or the node stops).
pub async fn redact_phi(
    store: &dyn Store,
    settings: &RetentionSettings,
    now: DateTime<Utc>,
    stop: &CancellationToken,
) {
    let batch = settings.phi_batch.max(1);
    let mut total = RedactionCounts::default();
    for (scope, cutoff) in settings.phi.passes(now) {
        loop {
            match store.redact_phi(&scope, cutoff, batch, now).await {
                Ok(n) => {
                    total.messages += n.messages;
                    total.events += n.events;
                    total.notifications += n.notifications;
                    let full = [n.messages, n.events, n.notifications].contains(&u64::from(batch));
                    if !full || stop.is_cancelled() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "PHI redaction failed; retrying next run");
                    break;
                }
            }
        }
    }
    if total != RedactionCounts::default() {
        tracing::info!(
            messages = total.messages,
            events = total.events,
            notifications = total.notifications,
            "PHI retention redaction"
        );
        metrics::counter!("tidings_phi_redacted_total", "kind" => "messages")
            .increment(total.messages);
        metrics::counter!("tidings_phi_redacted_total", "kind" => "events").increment(total.events);
        metrics::counter!("tidings_phi_redacted_total", "kind" => "notifications")
            .increment(total.notifications);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    #[test]
    fn overrides_get_their_own_pass_and_zero_keeps() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let policy = PhiRetention {
            default_days: 90,
            tenants: [(t("short"), 30), (t("forever"), 0)].into(),
        };
        assert_eq!(
            policy.passes(now),
            vec![
                (
                    PhiScope::Tenant(t("short")),
                    now - chrono::Duration::days(30)
                ),
                (
                    PhiScope::AllExcept(vec![t("forever"), t("short")]),
                    now - chrono::Duration::days(90)
                ),
            ]
        );
        let keep_all = PhiRetention {
            default_days: 0,
            tenants: [(t("short"), 7)].into(),
        };
        assert_eq!(
            keep_all.passes(now),
            vec![(
                PhiScope::Tenant(t("short")),
                now - chrono::Duration::days(7)
            )]
        );
    }
}
