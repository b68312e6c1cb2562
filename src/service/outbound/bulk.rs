//! Bulk sends: up to [`MAX_BULK_RECIPIENTS`] recipients of one template in ONE
//! transaction, without holding them all in memory.
//!
//! The caller hands over a way to parse recipient `i` (the HTTP edge keeps the
//! request body and parses each recipient from its raw JSON slice only when asked).
//! Recipients are parsed, validated, looked up (preferences, one query per chunk)
//! and rendered [`BULK_CHUNK`] at a time; each chunk goes down the store's enqueue
//! feed while the next is prepared. One invalid recipient drops the feed without
//! `Commit`: the store rolls back, nothing is written, and the error names
//! `recipients[i].<field>`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::mpsc;

use super::audit::{entry, Actor};
use super::enqueue::{build, check_group_key, key_reused, Recipe, Recipient};
use super::Outbound;
use crate::domain::contact::Address;
use crate::domain::ids::{BatchId, PatientId, TenantId};
use crate::domain::message::MessageStatus;
use crate::domain::template::{Channel, Language};
use crate::domain::Invalid;
use crate::service::ServiceError;
use crate::store::outbound::{EnqueueFeed, EnqueueOutcome, NewBatch};
use crate::store::IdempotencyClaim;

/// Most recipients in one bulk request (the contract's 10,000).
pub const MAX_BULK_RECIPIENTS: usize = 10_000;
/// Recipients prepared (and preferences loaded) per chunk of the enqueue feed.
pub const BULK_CHUNK: usize = 500;
/// Chunks waiting in the feed while the store writes: at most
/// `BULK_CHUNK × (FEED_DEPTH + 2)` prepared messages exist at any time.
const FEED_DEPTH: usize = 1;

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

enum ProduceError {
    /// A recipient is invalid (or its preferences could not be read).
    Failed(ServiceError),
    /// The store stopped reading the feed (it failed, or replayed a key).
    FeedClosed,
}

impl From<ServiceError> for ProduceError {
    fn from(e: ServiceError) -> Self {
        ProduceError::Failed(e)
    }
}

impl Outbound {
    /// Sends `template` to `count` recipients; `recipient(i)` parses the i-th
    /// (its errors already name `recipients[i].…`). All or nothing.
    pub async fn send_bulk<F>(
        &self,
        tenant: &TenantId,
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
        };
        let (tx, rx) = mpsc::channel(FEED_DEPTH);
        let (stored, produced) = tokio::join!(
            self.store.enqueue(
                tenant,
                Some(&batch),
                rx,
                idempotency.map(|c| (c, response.as_str())),
                Some(&audit),
                now,
            ),
            self.produce(tenant, &recipe, count, recipient, tx),
        );
        match (stored, produced) {
            (Ok(EnqueueOutcome::Replayed { response }), _) => self.replay(tenant, &response).await,
            (Ok(EnqueueOutcome::KeyReused), _) => Err(key_reused()),
            (_, Err(ProduceError::Failed(e))) => Err(e),
            (Err(e), _) => Err(e.into()),
            (Ok(EnqueueOutcome::Committed { queued, suppressed }), Ok((q, s))) => {
                self.wake_worker();
                if (queued, suppressed) != (q, s) {
                    tracing::warn!(
                        queued,
                        suppressed,
                        prepared_queued = q,
                        prepared_suppressed = s,
                        "bulk: the store counted differently from the producer"
                    );
                }
                Ok(BulkOutcome {
                    batch: batch.id,
                    queued,
                    suppressed,
                })
            }
            (Ok(other), _) => Err(ServiceError::Internal(format!(
                "bulk enqueue ended as {other:?} after a complete feed"
            ))),
        }
    }

    /// Parses, validates and renders the recipients chunk by chunk into `feed`;
    /// returns the counts (queued, suppressed). Returning early drops `feed`
    /// without `Commit`, which rolls the transaction back.
    async fn produce<F>(
        &self,
        tenant: &TenantId,
        recipe: &Recipe<'_>,
        count: usize,
        mut recipient: F,
        feed: mpsc::Sender<EnqueueFeed>,
    ) -> Result<(u64, u64), ProduceError>
    where
        F: FnMut(usize) -> Result<BulkRecipient, Invalid> + Send,
    {
        let (mut queued, mut suppressed) = (0u64, 0u64);
        let mut start = 0;
        while start < count {
            let end = (start + BULK_CHUNK).min(count);
            let mut chunk = Vec::with_capacity(end - start);
            for i in start..end {
                let r = recipient(i).map_err(ServiceError::from)?;
                if r.patient.is_none() && r.to.is_none() {
                    return Err(ServiceError::from(Invalid::new(
                        format!("recipients[{i}].patient_id"),
                        "give patient_id or to (or both)",
                    ))
                    .into());
                }
                chunk.push(r);
            }
            let ids: Vec<PatientId> = chunk
                .iter()
                .filter_map(|r| r.patient.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let prefs = if ids.is_empty() {
                BTreeMap::new()
            } else {
                self.store
                    .patient_preferences_many(tenant, &ids)
                    .await
                    .map_err(ServiceError::from)?
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
                match prepared.message.status {
                    MessageStatus::Suppressed => suppressed += 1,
                    _ => queued += 1,
                }
                messages.push(prepared.message);
            }
            drop(chunk);
            feed.send(EnqueueFeed::Chunk(messages))
                .await
                .map_err(|_| ProduceError::FeedClosed)?;
            start = end;
        }
        feed.send(EnqueueFeed::Commit)
            .await
            .map_err(|_| ProduceError::FeedClosed)?;
        Ok((queued, suppressed))
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
