//! The retention job: deletes read (or archived) notifications older than the configured age.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// Rows per delete statement, so one run never holds the write lock for long.
const PURGE_CHUNK: u32 = 1000;

pub async fn run(
    store: Arc<dyn Store>,
    max_age: Duration,
    every: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let cutoff = chrono::Utc::now()
            - chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::days(90));
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
}
