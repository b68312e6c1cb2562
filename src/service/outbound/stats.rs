//! `GET /v1/messages/stats`: counts over the last N whole UTC days.

use chrono::{Duration, NaiveDate};

use super::Outbound;
use crate::domain::ids::TenantId;
use crate::domain::message::MessageStatus;
use crate::domain::Invalid;
use crate::service::ServiceError;
use crate::store::outbound::MessageStats;

/// Longest stats window, in days.
pub const MAX_STATS_DAYS: u32 = 366;
/// The window when the caller names none.
pub const DEFAULT_STATS_DAYS: u32 = 7;

/// The stats of a window, with the success rate worked out.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsReport {
    /// First day included.
    pub from: NaiveDate,
    /// Last day included (today, UTC).
    pub to: NaiveDate,
    pub stats: MessageStats,
    /// Messages that have left the queue and have an outcome: sent, delivered,
    /// read, failed, bounced (the denominator of `success_rate`).
    pub attempted: u64,
    /// delivered + read over `attempted`; 0 when nothing was attempted.
    pub success_rate: f64,
}

/// The statuses of a message a provider has answered for.
const ATTEMPTED: [MessageStatus; 5] = [
    MessageStatus::Sent,
    MessageStatus::Delivered,
    MessageStatus::Read,
    MessageStatus::Failed,
    MessageStatus::Bounced,
];

impl Outbound {
    /// Stats over the `days` whole UTC days ending today (today included).
    pub async fn stats(&self, tenant: &TenantId, days: u32) -> Result<StatsReport, ServiceError> {
        if !(1..=MAX_STATS_DAYS).contains(&days) {
            return Err(Invalid::new("days", format!("must be 1 to {MAX_STATS_DAYS}")).into());
        }
        let to = self.now().date_naive();
        let from = to - Duration::days(i64::from(days) - 1);
        let stats = self
            .store
            .message_stats(tenant, from, to + Duration::days(1))
            .await?;
        let count = |s: MessageStatus| stats.by_status.get(&s).copied().unwrap_or(0);
        let attempted: u64 = ATTEMPTED.into_iter().map(count).sum();
        let succeeded = count(MessageStatus::Delivered) + count(MessageStatus::Read);
        let success_rate = if attempted == 0 {
            0.0
        } else {
            // Four decimals: a rate, not a measurement of float noise.
            ((succeeded as f64 / attempted as f64) * 10_000.0).round() / 10_000.0
        };
        Ok(StatsReport {
            from,
            to,
            stats,
            attempted,
            success_rate,
        })
    }
}
