//! Publishing: store first (group commit), then fan out.
//!
//! Concurrent publishes are coalesced by one writer task into a single
//! transaction (one fsync for a burst, not one per request). After the commit a
//! single fan-out task turns the stored rows into frames and hands them to the
//! hub, in commit order, while the writer already commits the next batch.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::batch::commit_isolated;
use super::clock::Clock;
use super::directory::Directory;
use super::{frames, ServiceError};
use crate::bus::Delivery;
use crate::domain::auth::Role;
use crate::domain::escalation::EscalationStep;
use crate::domain::ids::{NotificationId, TenantId, UserId};
use crate::domain::notification::NotificationContent;
use crate::domain::Invalid;
use crate::hub::Hub;
use crate::store::{IdempotencyClaim, PublishOutcome, PublishRequest, Store};

pub const MAX_USER_IDS: usize = 1000;
/// How many times the writer yields to ready tasks to fill a batch when busy.
const LINGER_YIELDS: u32 = 4;

/// Who a notification goes to.
pub enum Target {
    User(UserId),
    Users(Vec<UserId>),
    Role(Role),
}

pub struct Published {
    pub created: Vec<(NotificationId, UserId)>,
}

#[derive(Debug, Clone, Copy)]
pub struct PublishConfig {
    /// Most notification rows in one transaction. 1 turns group commit off (for benchmarks).
    pub max_batch_rows: usize,
    /// Publishes waiting for the writer before callers wait for room (backpressure).
    pub queue: usize,
}

struct Job {
    req: PublishRequest,
    started: Instant,
    reply: oneshot::Sender<Result<Published, ServiceError>>,
}

pub struct Publisher {
    jobs: mpsc::Sender<Job>,
    directory: Arc<Directory>,
    latency: metrics::Histogram,
    clock: Arc<dyn Clock>,
}

impl Publisher {
    pub fn start(
        store: Arc<dyn Store>,
        hub: Arc<Hub>,
        directory: Arc<Directory>,
        config: PublishConfig,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        let (jobs, rx) = mpsc::channel(config.queue.max(1));
        // Bounded: if fan-out falls behind, the writer waits instead of buffering without limit.
        let (fanout_tx, fanout_rx) = mpsc::channel(64);
        tokio::spawn(writer(store, rx, fanout_tx, config.max_batch_rows.max(1)));
        tokio::spawn(fanout(hub, fanout_rx));
        Arc::new(Self {
            jobs,
            directory,
            latency: metrics::histogram!("tidings_publish_seconds"),
            clock,
        })
    }

    pub async fn publish(
        &self,
        tenant: &TenantId,
        target: Target,
        content: NotificationContent,
        escalate: Vec<EscalationStep>,
        idempotency: Option<IdempotencyClaim>,
    ) -> Result<Published, ServiceError> {
        let recipients = match target {
            Target::User(u) => vec![u],
            Target::Users(users) => {
                if users.is_empty() || users.len() > MAX_USER_IDS {
                    return Err(Invalid::new(
                        "user_ids",
                        format!("must list 1..{MAX_USER_IDS} users"),
                    )
                    .into());
                }
                let mut seen = std::collections::HashSet::with_capacity(users.len());
                users
                    .into_iter()
                    .filter(|u| seen.insert(u.clone()))
                    .collect()
            }
            Target::Role(role) => self.directory.with_role(tenant, role).await?,
        };
        let started = Instant::now();
        let (reply, rx) = oneshot::channel();
        let mut req = PublishRequest::new(tenant.clone(), recipients, content, self.clock.now());
        req.idempotency = idempotency;
        req.escalate = escalate;
        self.jobs
            .send(Job {
                req,
                started,
                reply,
            })
            .await
            .map_err(|_| ServiceError::Unavailable("publisher stopped".into()))?;
        let published = rx
            .await
            .map_err(|_| ServiceError::Unavailable("publisher stopped".into()))??;
        self.latency.record(started.elapsed().as_secs_f64());
        Ok(published)
    }
}

/// What a caller is answered: the ids created (or replayed), without the rows,
/// which go to the fan-out task.
fn reply_for(outcome: &PublishOutcome) -> Result<Published, ServiceError> {
    match outcome {
        PublishOutcome::Created { notifications, .. } => Ok(Published {
            created: notifications
                .iter()
                .map(|n| (n.id, n.user.clone()))
                .collect(),
        }),
        PublishOutcome::Replayed { created } => Ok(Published {
            created: created.clone(),
        }),
        PublishOutcome::KeyReused => Err(ServiceError::Conflict {
            code: "idempotency_key_reused",
            message: "this Idempotency-Key was used with a different request body".into(),
        }),
    }
}

async fn writer(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Job>,
    fanout: mpsc::Sender<Vec<PublishOutcome>>,
    max_rows: usize,
) {
    // Handles resolved once: the macros look the metric up in the registry on every call.
    let batch_rows = metrics::histogram!("tidings_publish_batch_rows");
    let queue_seconds = metrics::histogram!("tidings_publish_queue_seconds");
    let mut batch: Vec<Job> = Vec::new();
    let mut busy = false;
    while let Some(first) = rx.recv().await {
        let mut rows = first.req.recipients.len();
        batch.push(first);
        // Under load, let the request handlers that are ready run first so their
        // publishes join this transaction: each transaction costs several round trips
        // to the database, whatever its size. Idle, commit at once (no added latency).
        let mut yields = if busy { LINGER_YIELDS } else { 0 };
        while rows < max_rows {
            match rx.try_recv() {
                Ok(job) => {
                    rows += job.req.recipients.len();
                    batch.push(job);
                }
                Err(_) if yields > 0 => {
                    yields -= 1;
                    tokio::task::yield_now().await;
                }
                Err(_) => break,
            }
        }
        busy = batch.len() > 1;
        // The requests move into the store call; the callers wait on their replies.
        let mut reqs = Vec::with_capacity(batch.len());
        let mut waiting = Vec::with_capacity(batch.len());
        for job in batch.drain(..) {
            reqs.push(job.req);
            waiting.push((job.started, job.reply));
        }
        let waited = waiting
            .iter()
            .map(|(started, _)| started.elapsed())
            .max()
            .unwrap_or_default();
        batch_rows.record(rows as f64);
        queue_seconds.record(waited.as_secs_f64());
        // A request the database refuses fails alone, not the batch (service::batch).
        let results = commit_isolated(&reqs, |chunk| store.insert_batch(chunk)).await;
        let mut created = Vec::with_capacity(results.len());
        let mut replies = Vec::with_capacity(results.len());
        for result in results {
            replies.push(result.and_then(|outcome| {
                let reply = reply_for(&outcome);
                created.push(outcome);
                reply
            }));
        }
        // The rows go to fan-out; callers are answered once the hand-off is done,
        // so a 201 is never answered before the events are on their way.
        if !created.is_empty() && fanout.send(created).await.is_err() {
            tracing::error!("fan-out task stopped");
        }
        for ((_, reply), answer) in waiting.into_iter().zip(replies) {
            let _ = reply.send(answer);
        }
    }
}

async fn fanout(hub: Arc<Hub>, mut rx: mpsc::Receiver<Vec<PublishOutcome>>) {
    while let Some(outcomes) = rx.recv().await {
        deliver(&hub, outcomes).await;
    }
}

/// Pushes committed notifications live: each one (unless silent) and each
/// recipient's new unread count, to every open connection on every node. Also used
/// after a clinic event's transaction commits.
pub(crate) async fn deliver(hub: &Hub, outcomes: Vec<PublishOutcome>) {
    let mut by_tenant: HashMap<TenantId, Vec<Delivery>> = HashMap::new();
    for outcome in outcomes {
        let PublishOutcome::Created {
            notifications,
            counts,
        } = outcome
        else {
            continue;
        };
        let Some(tenant) = notifications.first().map(|n| n.tenant.clone()) else {
            continue;
        };
        let out = by_tenant.entry(tenant).or_default();
        for n in notifications.iter().filter(|n| !n.silent) {
            out.push(Delivery {
                user: n.user.clone(),
                frame: frames::notification(n),
            });
        }
        for (user, count) in counts {
            out.push(Delivery {
                user,
                frame: frames::unread(count),
            });
        }
    }
    for (tenant, deliveries) in by_tenant {
        hub.publish(tenant, deliveries).await;
    }
}
