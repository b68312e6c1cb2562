//! The one worker loop behind every queue the store leases out: outbound messages,
//! webhook deliveries, escalation steps (and any queue after them). Every node runs
//! one worker per queue. A worker claims due jobs under a lease (so N nodes share one
//! queue, and a dead node's jobs come back when their lease ends), works them with
//! bounded concurrency, and on shutdown claims nothing more and lets the jobs in
//! flight finish. What a job *is*, and how its outcome is recorded (guarded by the
//! lease), is the queue's: [`LeasedJobs`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::service::clock::Clock;
use crate::store::StoreError;

/// A queue in the store whose jobs are claimed under a lease.
#[async_trait]
pub trait LeasedJobs: Send + Sync + 'static {
    type Job: Send + 'static;

    /// Claims at most `limit` jobs due at `now`, leased to this node until `lease_until`.
    async fn claim(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Self::Job>, StoreError>;

    /// Takes one claimed job to its recorded outcome. Failures are the job's to log:
    /// a job whose outcome is not recorded is claimed again after its lease.
    async fn work(&self, job: Self::Job);

    /// Called every [`OBSERVE_EVERY`] while the worker runs (backlog gauges).
    async fn observe(&self) {}
}

/// How often [`LeasedJobs::observe`] runs.
pub const OBSERVE_EVERY: Duration = Duration::from_secs(5);

/// A worker's pace.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// Jobs in flight at once on this node.
    pub concurrency: usize,
    /// How often an idle worker looks for due jobs.
    pub poll_interval: Duration,
    /// Most jobs claimed per look.
    pub claim_batch: u32,
    /// How long a claimed job belongs to this node.
    pub lease: Duration,
}

/// Wakes a node's worker at once (a job was just queued here) instead of at its next
/// poll. Cheap to clone; waking a busy worker makes it look once more.
#[derive(Debug, Clone, Default)]
pub struct Wake(Arc<Notify>);

impl Wake {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// One queue's worker on this node.
pub struct Worker<J: LeasedJobs> {
    /// The queue's name in logs.
    name: &'static str,
    jobs: Arc<J>,
    clock: Arc<dyn Clock>,
    settings: LeaseSettings,
    wake: Wake,
}

impl<J: LeasedJobs> Worker<J> {
    pub fn new(
        name: &'static str,
        jobs: Arc<J>,
        clock: Arc<dyn Clock>,
        settings: LeaseSettings,
    ) -> Arc<Self> {
        Arc::new(Self {
            name,
            jobs,
            clock,
            settings,
            wake: Wake::default(),
        })
    }

    /// The handle a producer on this node pokes.
    pub fn wake_handle(&self) -> Wake {
        self.wake.clone()
    }

    /// Runs until `stopping` is cancelled: then claims nothing more and waits for the
    /// jobs in flight (the caller bounds that wait with the shutdown grace; a job cut
    /// off there is claimed again after its lease).
    pub async fn run(self: Arc<Self>, stopping: CancellationToken) {
        let name = self.name;
        let concurrency = self.settings.concurrency.max(1);
        let permits = Arc::new(Semaphore::new(concurrency));
        let mut in_flight = JoinSet::new();
        // Claim again only when a useful number of slots is free, so a saturated
        // worker claims in batches rather than one job per finished one.
        let refill = (self.settings.claim_batch as usize)
            .min(concurrency / 4)
            .max(1);
        let lease =
            chrono::Duration::from_std(self.settings.lease).unwrap_or(chrono::Duration::MAX);
        let mut observed_at: Option<tokio::time::Instant> = None;
        tracing::info!(queue = name, concurrency, "leased worker started");
        while !stopping.is_cancelled() {
            while in_flight.try_join_next().is_some() {}
            if observed_at.is_none_or(|at| at.elapsed() >= OBSERVE_EVERY) {
                observed_at = Some(tokio::time::Instant::now());
                self.jobs.observe().await;
            }
            let free = permits.available_permits();
            if free < refill {
                tokio::select! {
                    _ = stopping.cancelled() => break,
                    _ = in_flight.join_next() => continue,
                }
            }
            let limit = free.min(self.settings.claim_batch as usize) as u32;
            let now = self.clock.now();
            let claimed = match self.jobs.claim(now, now + lease, limit).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(queue = name, error = %e, "claim failed; retrying at the next poll");
                    Vec::new()
                }
            };
            let full = claimed.len() as u32 == limit;
            for job in claimed {
                let permit = permits
                    .clone()
                    .try_acquire_owned()
                    .expect("claimed no more than the free permits");
                let jobs = self.jobs.clone();
                in_flight.spawn(async move {
                    jobs.work(job).await;
                    drop(permit);
                });
            }
            if full {
                continue; // more may be due right now
            }
            tokio::select! {
                _ = stopping.cancelled() => break,
                _ = self.wake.0.notified() => {}
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
        if !in_flight.is_empty() {
            tracing::info!(
                queue = name,
                in_flight = in_flight.len(),
                "leased worker stopping: finishing the jobs in flight"
            );
        }
        while in_flight.join_next().await.is_some() {}
        tracing::info!(queue = name, "leased worker stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// A queue of `left` jobs that records the most jobs ever in flight at once.
    struct Counting {
        left: Mutex<u32>,
        in_flight: AtomicUsize,
        most: AtomicUsize,
        done: AtomicUsize,
        claims: AtomicUsize,
    }

    #[async_trait]
    impl LeasedJobs for Counting {
        type Job = u32;
        async fn claim(
            &self,
            _now: DateTime<Utc>,
            _until: DateTime<Utc>,
            limit: u32,
        ) -> Result<Vec<u32>, StoreError> {
            self.claims.fetch_add(1, Ordering::SeqCst);
            let mut left = self.left.lock().unwrap();
            let n = limit.min(*left);
            *left -= n;
            Ok((0..n).collect())
        }
        async fn work(&self, _job: u32) {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.done.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn queue(jobs: u32) -> Arc<Counting> {
        Arc::new(Counting {
            left: Mutex::new(jobs),
            in_flight: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            claims: AtomicUsize::new(0),
        })
    }

    fn settings(concurrency: usize, poll_ms: u64) -> LeaseSettings {
        LeaseSettings {
            concurrency,
            poll_interval: Duration::from_millis(poll_ms),
            claim_batch: 8,
            lease: Duration::from_secs(30),
        }
    }

    #[tokio::test]
    async fn works_every_job_within_its_concurrency_and_finishes_them_on_stop() {
        let jobs = queue(100);
        let worker = Worker::new(
            "test",
            jobs.clone(),
            Arc::new(crate::service::clock::SystemClock),
            settings(4, 10_000),
        );
        let stopping = CancellationToken::new();
        let run = tokio::spawn(worker.run(stopping.clone()));
        // A full claim looks again at once: all 100 are done long before one poll.
        tokio::time::timeout(Duration::from_secs(5), async {
            while jobs.done.load(Ordering::SeqCst) < 100 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("every job worked without waiting for a poll");
        stopping.cancel();
        run.await.unwrap();
        assert_eq!(jobs.most.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_wake_makes_an_idle_worker_look_at_once() {
        let jobs = queue(0);
        let worker = Worker::new(
            "test",
            jobs.clone(),
            Arc::new(crate::service::clock::SystemClock),
            settings(2, 60_000),
        );
        let wake = worker.wake_handle();
        let stopping = CancellationToken::new();
        let run = tokio::spawn(worker.run(stopping.clone()));
        while jobs.claims.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        *jobs.left.lock().unwrap() = 3;
        wake.wake();
        tokio::time::timeout(Duration::from_secs(5), async {
            while jobs.done.load(Ordering::SeqCst) < 3 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .expect("woken before the 60 s poll");
        stopping.cancel();
        run.await.unwrap();
    }
}
