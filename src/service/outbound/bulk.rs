//! Bulk sends: up to [`MAX_BULK_RECIPIENTS`] recipients of one template, validated
//! as a whole, then written in short transactions.
//!
//! The caller hands over a way to parse recipient `i` (the HTTP edge keeps the
//! request body and parses each recipient from its raw JSON slice only when asked).
//! Recipients are parsed, validated, looked up (preferences, one query per chunk)
//! and rendered [`BULK_CHUNK`] at a time **before anything is written**: one invalid
//! recipient is a 422 naming `recipients[i].<field>` and nothing is stored.
//!
//! The rendered chunks are then committed **one transaction per chunk**. The write
//! side is shared — on SQLite one transaction holds the node's single writer, on
//! PostgreSQL a pool connection — and a 10,000-message transaction held every other
//! tenant's publish for seconds (503 after the 3 s acquire timeout; issue #11). Now
//! another writer waits at most for one chunk. The price: if the database fails
//! between chunks, the chunks already committed stay (the batch is incomplete, which
//! its status shows; docs/API.md says so). The batch row and the idempotency key are
//! committed with the first chunk, so a retry finds this batch and never writes a
//! second copy to patients.
//!
//! Fairness between bulks: at most `[outbound] bulk_concurrency` run at once on a
//! node, and at most `bulk_concurrency_per_tenant` of one tenant; the others wait
//! their turn (FIFO). This also bounds the rendered messages held in memory. At most
//! `bulk_waiting_per_tenant` of a tenant wait; beyond that a bulk is refused at once
//! with 429 and `Retry-After`. The HTTP edge takes the turn ([`Outbound::bulk_turn`])
//! *before* it reads the body, so a waiting bulk holds a connection, not its up to
//! 8 MiB of recipients, and a refused one is answered without parsing them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::audit::{entry, Actor};
use super::enqueue::{build, check_group_key, key_reused, Recipe, Recipient};
use super::Outbound;
use crate::domain::contact::Address;
use crate::domain::ids::{BatchId, PatientId, TenantId};
use crate::domain::message::MessageStatus;
use crate::domain::template::{Channel, Language};
use crate::domain::Invalid;
use crate::service::ServiceError;
use crate::store::outbound::{EnqueueFeed, EnqueueOutcome, NewBatch, NewMessage};
use crate::store::IdempotencyClaim;

/// Most recipients in one bulk request (the contract's 10,000).
pub const MAX_BULK_RECIPIENTS: usize = 10_000;
/// Recipients prepared (and preferences loaded) per chunk of the enqueue feed, and
/// committed per transaction: another tenant's write waits for one chunk at most. A
/// chunk of 100 messages (each with its event and nine index entries) held the writer
/// for tens of ms: in `scripts/hostile` bulk-storm the victim's publish p50 was 34 ms
/// and its p99 57–128 ms; with 25, p50 9 ms and p99 36–38 ms (issue #11's bound: 50),
/// and a 10,000-recipient bulk still takes ~4 s, its rendering, not its commits, being
/// the cost (500 gave a p99 of 127 ms).
pub const BULK_CHUNK: usize = 25;

/// One recipient of a bulk send, parsed.
#[derive(Debug, Clone, Default)]
pub struct BulkRecipient {
    pub patient: Option<PatientId>,
    pub to: Option<Address>,
    pub language: Option<Language>,
    pub variables: BTreeMap<String, String>,
}

/// What applies to every recipient.
#[derive(Debug, Clone)]
pub struct BulkRequest {
    pub template: String,
    pub channel: Option<Channel>,
    pub send_at: Option<DateTime<Utc>>,
    pub group_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkOutcome {
    pub batch: BatchId,
    pub queued: u64,
    pub suppressed: u64,
}

/// How many bulk sends run at once: on the node, and per tenant (`[outbound]
/// bulk_concurrency`, `bulk_concurrency_per_tenant`). Waiters are served in order
/// (tokio's semaphore is fair).
pub struct BulkLimits {
    node: Arc<Semaphore>,
    per_tenant: usize,
    /// Bulks of one tenant that may wait for a turn; more are refused.
    waiting_per_tenant: usize,
    /// One queue per tenant that ever sent a bulk on this node (bounded by the
    /// number of tenants). A std mutex: held only to look one up, never across `.await`.
    tenants: Mutex<HashMap<TenantId, Arc<TenantQueue>>>,
}

/// A tenant's running bulks (the semaphore) and how many wait for a turn.
struct TenantQueue {
    turns: Arc<Semaphore>,
    waiting: AtomicUsize,
}

/// Takes a waiting place back however the wait ends (turn, error, cancelled request).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Seconds a refused bulk is told to wait: about one chunked bulk's time.
const BUSY_RETRY_AFTER_SECS: u64 = 5;

impl BulkLimits {
    pub fn new(node: usize, per_tenant: usize, waiting_per_tenant: usize) -> Self {
        Self {
            node: Arc::new(Semaphore::new(node.max(1))),
            per_tenant: per_tenant.max(1),
            waiting_per_tenant,
            tenants: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for the tenant's turn, then the node's: the tenant's permit first, so
    /// a tenant's queued bulks never sit on node permits other tenants could use.
    /// Refused when the tenant already has `waiting_per_tenant` bulks waiting.
    async fn enter(&self, tenant: &TenantId) -> Result<BulkTurn, ServiceError> {
        let queue = {
            let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
            tenants
                .entry(tenant.clone())
                .or_insert_with(|| {
                    Arc::new(TenantQueue {
                        turns: Arc::new(Semaphore::new(self.per_tenant)),
                        waiting: AtomicUsize::new(0),
                    })
                })
                .clone()
        };
        // These semaphores are never closed, so acquiring cannot fail.
        let own = match queue.turns.clone().try_acquire_owned() {
            Ok(own) => own,
            Err(_) => {
                if queue.waiting.fetch_add(1, Ordering::AcqRel) >= self.waiting_per_tenant {
                    queue.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(ServiceError::Busy {
                        message: "too many bulk sends of this tenant are waiting; retry later",
                        retry_after_secs: BUSY_RETRY_AFTER_SECS,
                    });
                }
                let _waiting = Waiting(&queue.waiting);
                queue
                    .turns
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("bulk semaphore open")
            }
        };
        let node = self
            .node
            .clone()
            .acquire_owned()
            .await
            .expect("bulk semaphore open");
        Ok(BulkTurn {
            tenant: tenant.clone(),
            _places: [own, node],
        })
    }
}

/// A tenant's turn to send a bulk: its place and the node's, held (dropped) when the
/// bulk is written.
pub struct BulkTurn {
    tenant: TenantId,
    _places: [OwnedSemaphorePermit; 2],
}

impl Default for BulkLimits {
    /// The embedded defaults of config/tidings.toml.
    fn default() -> Self {
        Self::new(2, 1, 4)
    }
}

/// Recipients rendered, ready for the insert transaction.
struct Prepared {
    chunks: Vec<Vec<NewMessage>>,
    queued: u64,
    suppressed: u64,
}

impl Outbound {
    /// Waits for `tenant`'s turn to send a bulk (429 `Busy` when too many wait).
    /// Taken before the request body is read; [`Outbound::send_bulk`] consumes it.
    pub async fn bulk_turn(&self, tenant: &TenantId) -> Result<BulkTurn, ServiceError> {
        self.bulk.enter(tenant).await
    }

    /// Sends `template` to `count` recipients of the turn's tenant; `recipient(i)`
    /// parses the i-th (its errors already name `recipients[i].…`). Validated all or
    /// nothing before anything is written (see the module doc for a failure mid-write).
    pub async fn send_bulk<F>(
        &self,
        turn: BulkTurn,
        req: &BulkRequest,
        count: usize,
        recipient: F,
        idempotency: Option<&IdempotencyClaim>,
        actor: &Actor,
    ) -> Result<BulkOutcome, ServiceError>
    where
        F: FnMut(usize) -> Result<BulkRecipient, Invalid> + Send,
    {
        if count == 0 || count > MAX_BULK_RECIPIENTS {
            return Err(Invalid::new(
                "recipients",
                format!("must list 1 to {MAX_BULK_RECIPIENTS} recipients"),
            )
            .into());
        }
        if let Some(g) = &req.group_key {
            check_group_key("group_key", g)?;
        }
        // Held until the write is done: bounds both the rendered messages in memory
        // and the transactions queued on the shared write side.
        let tenant = &turn.tenant;
        let template = self
            .sendable_template(tenant, &req.template, req.channel)
            .await?;
        let now = self.now();
        let batch = NewBatch {
            id: BatchId::new_random(),
            template: Some(req.template.clone()),
        };
        let audit = entry(
            actor,
            "message.bulk",
            format!("batch:{}", batch.id),
            json!({"template": req.template, "template_version": template.template.version,
                   "recipients": count}),
            now,
        );
        let response = json!({"batch_id": batch.id.to_string()}).to_string();
        let recipe = Recipe {
            template: Some(&template),
            text: None,
            channel: req.channel,
            kind: template.template.kind,
            send_at: req.send_at.unwrap_or(now),
            group_key: req.group_key.as_deref(),
            batch: Some(batch.id),
            clinic: &self.clinics.for_tenant(tenant).clinic,
        };
        let prepared = self.prepare_all(tenant, &recipe, count, recipient).await?;
        let counted = (prepared.queued, prepared.suppressed);
        let last = prepared.chunks.len() - 1;
        let (mut queued, mut suppressed) = (0, 0);
        for (k, chunk) in prepared.chunks.into_iter().enumerate() {
            // The batch and the idempotency key go with the first chunk: from then on
            // a retry with the key finds this batch (never a second copy of it); the
            // audit entry goes with the last, when the batch is complete.
            let first = k == 0;
            let stored = self
                .store
                .enqueue(
                    tenant,
                    first.then_some(&batch),
                    feed_of(vec![chunk]),
                    idempotency
                        .filter(|_| first)
                        .map(|c| (c, response.as_str())),
                    (k == last).then_some(&audit),
                    now,
                )
                .await?;
            match stored {
                EnqueueOutcome::Replayed { response } if first => {
                    return self.replay(tenant, &response).await
                }
                EnqueueOutcome::KeyReused if first => return Err(key_reused()),
                EnqueueOutcome::Committed {
                    queued: q,
                    suppressed: s,
                } => (queued, suppressed) = (queued + q, suppressed + s),
                other => {
                    return Err(ServiceError::Internal(format!(
                        "bulk chunk {k} ended as {other:?} after a complete feed"
                    )))
                }
            }
        }
        self.wake_worker();
        if (queued, suppressed) != counted {
            tracing::warn!(
                queued,
                suppressed,
                prepared_queued = counted.0,
                prepared_suppressed = counted.1,
                "bulk: the store counted differently from the producer"
            );
        }
        Ok(BulkOutcome {
            batch: batch.id,
            queued,
            suppressed,
        })
    }

    /// Parses, validates and renders every recipient, chunk by chunk, without
    /// writing anything. The first invalid recipient ends it (its error names
    /// `recipients[i].…`).
    async fn prepare_all<F>(
        &self,
        tenant: &TenantId,
        recipe: &Recipe<'_>,
        count: usize,
        mut recipient: F,
    ) -> Result<Prepared, ServiceError>
    where
        F: FnMut(usize) -> Result<BulkRecipient, Invalid> + Send,
    {
        let mut prepared = Prepared {
            chunks: Vec::with_capacity(count.div_ceil(BULK_CHUNK)),
            queued: 0,
            suppressed: 0,
        };
        let mut start = 0;
        while start < count {
            let end = (start + BULK_CHUNK).min(count);
            let chunk = parse_chunk(start..end, &mut recipient)?;
            let messages = self.render_chunk(tenant, recipe, start, &chunk).await?;
            for m in &messages {
                match m.status {
                    MessageStatus::Suppressed => prepared.suppressed += 1,
                    _ => prepared.queued += 1,
                }
            }
            prepared.chunks.push(messages);
            start = end;
            // Rendering is CPU work with no await when no patient is looked up:
            // let other requests run between chunks.
            tokio::task::yield_now().await;
        }
        Ok(prepared)
    }

    /// Renders one chunk (recipients `start..`), its patients' preferences read
    /// in one query.
    async fn render_chunk(
        &self,
        tenant: &TenantId,
        recipe: &Recipe<'_>,
        start: usize,
        chunk: &[BulkRecipient],
    ) -> Result<Vec<NewMessage>, ServiceError> {
        let ids: Vec<PatientId> = chunk
            .iter()
            .filter_map(|r| r.patient.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let prefs = if ids.is_empty() {
            BTreeMap::new()
        } else {
            self.store.patient_preferences_many(tenant, &ids).await?
        };
        let mut messages = Vec::with_capacity(chunk.len());
        for (k, r) in chunk.iter().enumerate() {
            let who = Recipient {
                patient: r.patient.as_ref(),
                prefs: r.patient.as_ref().and_then(|p| prefs.get(p)),
                to: r.to.as_ref(),
                language: r.language,
                variables: &r.variables,
            };
            let prepared = build(recipe, &who, &format!("recipients[{}].", start + k))?;
            messages.push(prepared.message);
        }
        Ok(messages)
    }

    /// The first response of a replayed bulk request: rebuilt from the batch, since
    /// `suppressed` is final and everything else started as `queued`.
    async fn replay(&self, tenant: &TenantId, response: &str) -> Result<BulkOutcome, ServiceError> {
        let bad = || ServiceError::Internal(format!("unreadable idempotency record {response:?}"));
        let v: serde_json::Value = serde_json::from_str(response).map_err(|_| bad())?;
        let batch = v["batch_id"]
            .as_str()
            .and_then(|b| BatchId::parse(b).ok())
            .ok_or_else(bad)?;
        let status = self
            .store
            .batch_status(tenant, batch)
            .await?
            .ok_or_else(bad)?;
        let suppressed = status
            .by_status
            .get(&MessageStatus::Suppressed)
            .copied()
            .unwrap_or(0);
        Ok(BulkOutcome {
            batch,
            queued: status.total - suppressed,
            suppressed,
        })
    }
}

/// Parses recipients `range`; each needs a patient or an address.
fn parse_chunk<F>(
    range: std::ops::Range<usize>,
    recipient: &mut F,
) -> Result<Vec<BulkRecipient>, ServiceError>
where
    F: FnMut(usize) -> Result<BulkRecipient, Invalid>,
{
    let mut chunk = Vec::with_capacity(range.len());
    for i in range {
        let r = recipient(i)?;
        if r.patient.is_none() && r.to.is_none() {
            return Err(Invalid::new(
                format!("recipients[{i}].patient_id"),
                "give patient_id or to (or both)",
            )
            .into());
        }
        chunk.push(r);
    }
    Ok(chunk)
}

/// An enqueue feed of prepared chunks, then `Commit`, all buffered: the
/// transaction never waits for a producer.
fn feed_of(chunks: Vec<Vec<NewMessage>>) -> mpsc::Receiver<EnqueueFeed> {
    let (tx, rx) = mpsc::channel(chunks.len() + 1);
    for chunk in chunks {
        tx.try_send(EnqueueFeed::Chunk(chunk))
            .expect("the channel holds every chunk");
    }
    tx.try_send(EnqueueFeed::Commit)
        .expect("the channel holds the commit");
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tenant's bulks beyond its running and waiting places are refused at once
    /// (before, they all waited, each holding its request body: unbounded memory).
    #[tokio::test]
    async fn a_tenant_waits_in_a_bounded_queue() {
        let limits = Arc::new(BulkLimits::new(2, 1, 1));
        let a = TenantId::parse("clinic-a").unwrap();
        let running = limits.enter(&a).await.unwrap();
        let waiter = {
            let (limits, a) = (limits.clone(), a.clone());
            tokio::spawn(async move { limits.enter(&a).await.map(|_| ()) })
        };
        // The waiter holds the one waiting place once it is parked on the semaphore.
        while limits.tenants.lock().unwrap()[&a]
            .waiting
            .load(Ordering::Acquire)
            == 0
        {
            tokio::task::yield_now().await;
        }
        match limits.enter(&a).await {
            Err(ServiceError::Busy {
                retry_after_secs, ..
            }) => assert_eq!(retry_after_secs, BUSY_RETRY_AFTER_SECS),
            other => panic!("expected Busy, got {:?}", other.map(|_| ())),
        }
        // Another tenant is not affected by this tenant's queue.
        let b = TenantId::parse("clinic-b").unwrap();
        drop(limits.enter(&b).await.unwrap());
        // The turn passes on; the waiting place is given back.
        drop(running);
        waiter.await.unwrap().unwrap();
        assert_eq!(
            limits.tenants.lock().unwrap()[&a]
                .waiting
                .load(Ordering::Acquire),
            0
        );
        drop(limits.enter(&a).await.unwrap());
    }
}
