//! The durable message queue, written once: the chunk-fed enqueue transaction
//! (idempotency record, batch row, chunks, audit), the claim's bookkeeping (one
//! `sending` event per claimed message, grouped by tenant) and the lease-checked result
//! of an attempt. What each backend does its own way is in its `queue.rs`: the claim
//! statement (`claim_rows`) and the bulk inserts (`insert_messages`, `insert_events`),
//! re-exported here for the other shared files.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use tokio::sync::mpsc;

use super::super::queue::claim_rows;
pub(super) use super::super::queue::{insert_events, insert_messages};
use super::phi::scrub_late_texts;
use super::webhooks::{self, status_change};
use super::{audit, map_err, millis, Backend, FOR_UPDATE};
use crate::domain::ids::TenantId;
use crate::domain::message::{MessageId, MessageStatus};
use crate::store::columns::outbound::{claim_detail, message_from_row, NewEvent};
use crate::store::finish::plan_finish;
use crate::store::outbound::{
    AttemptUpdate, AuditEntry, ClaimedMessage, EnqueueFeed, EnqueueOutcome, NewBatch, QueueStore,
};
use crate::store::{IdempotencyClaim, StoreError};

#[async_trait]
impl QueueStore for Backend {
    async fn enqueue(
        &self,
        tenant: &TenantId,
        batch: Option<&NewBatch>,
        mut feed: mpsc::Receiver<EnqueueFeed>,
        idempotency: Option<(&IdempotencyClaim, &str)>,
        audit: Option<&AuditEntry>,
        now: DateTime<Utc>,
    ) -> Result<EnqueueOutcome, StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some((claim, response)) = idempotency {
            // Recorded first, so check and record cannot interleave: on SQLite's single
            // writer nobody else writes meanwhile; on PostgreSQL a concurrent request
            // with the same key (any node) blocks on this row's unique index until we
            // commit or roll back, then finds our record (or takes the key if we rolled
            // back). A rollback (abort, error) takes the record with it.
            let recorded = sqlx::query(
                "INSERT INTO outbound_idempotency (tenant_id, key, request_hash, response, created_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, key) DO NOTHING",
            )
            .bind(tenant.as_str())
            .bind(&claim.key)
            .bind(&claim.request_hash)
            .bind(response)
            .bind(millis(now))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            if recorded.rows_affected() == 0 {
                let row = sqlx::query(
                    "SELECT request_hash, response FROM outbound_idempotency
                     WHERE tenant_id = $1 AND key = $2",
                )
                .bind(tenant.as_str())
                .bind(&claim.key)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.rollback().await.map_err(map_err)?;
                return Ok(if row.get::<String, _>(0) == claim.request_hash {
                    EnqueueOutcome::Replayed {
                        response: row.get(1),
                    }
                } else {
                    EnqueueOutcome::KeyReused
                });
            }
        }
        if let Some(b) = batch {
            sqlx::query(
                "INSERT INTO batches (id, tenant_id, template, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(b.id.to_string())
            .bind(tenant.as_str())
            .bind(b.template.as_deref())
            .bind(millis(now))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        let (mut queued, mut suppressed) = (0_u64, 0_u64);
        loop {
            match feed.recv().await {
                Some(EnqueueFeed::Chunk(messages)) => {
                    insert_messages(&mut tx, tenant, &messages, now).await?;
                    for m in &messages {
                        if m.status == MessageStatus::Suppressed {
                            suppressed += 1;
                        } else {
                            queued += 1;
                        }
                    }
                }
                Some(EnqueueFeed::Commit) => break,
                None => {
                    tx.rollback().await.map_err(map_err)?;
                    return Ok(EnqueueOutcome::Aborted);
                }
            }
        }
        if let Some(entry) = audit {
            audit::insert(&mut tx, tenant, entry).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(EnqueueOutcome::Committed { queued, suppressed })
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedMessage>, StoreError> {
        // One token per claim: the lease is (message id, token), and no other claim
        // ever hands out this token.
        let token = uuid::Uuid::new_v4();
        let mut tx = self.begin_write().await?;
        let rows = claim_rows(&mut tx, token, now, lease_until, limit).await?;
        let mut claimed = Vec::with_capacity(rows.len());
        let mut events: Vec<(TenantId, NewEvent)> = Vec::with_capacity(rows.len());
        for row in &rows {
            let message = message_from_row(row)?;
            let previous: String = row.get("claimed_from");
            events.push((
                message.tenant.clone(),
                NewEvent {
                    id: message.id,
                    event: "sending".to_owned(),
                    at: now,
                    detail: claim_detail(&previous, lease_until),
                },
            ));
            claimed.push(ClaimedMessage {
                previous_status: MessageStatus::parse(&previous)
                    .map_err(|e| StoreError::Internal(format!("bad message row: {e}")))?,
                message,
                lease_token: token,
            });
        }
        // Claims span tenants: write each tenant's events together.
        events.sort_by(|a, b| a.0.cmp(&b.0));
        for group in events.chunk_by(|a, b| a.0 == b.0) {
            let rows: Vec<NewEvent> = group.iter().map(|(_, e)| e.clone()).collect();
            insert_events(&mut tx, &group[0].0, &rows).await?;
        }
        tx.commit().await.map_err(map_err)?;
        claimed.sort_by_key(|c| c.message.seq);
        Ok(claimed)
    }

    async fn finish_attempt(
        &self,
        tenant: &TenantId,
        id: MessageId,
        lease_token: uuid::Uuid,
        update: &AttemptUpdate,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        // Locked on PostgreSQL: a callback for this message waits until the result is
        // written, and then applies against it (and the other way round).
        let row: Option<(String, Option<i64>, String, String)> = sqlx::query_as(&format!(
            "SELECT status, redacted_at, channel, kind FROM messages
             WHERE tenant_id = $1 AND id = $2 AND lease_token = $3{FOR_UPDATE}"
        ))
        .bind(tenant.as_str())
        .bind(id.to_string())
        .bind(lease_token.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some((status, redacted_at, channel, kind)) = row else {
            return Ok(false);
        };
        let current = MessageStatus::parse(&status)
            .map_err(|e| StoreError::Internal(format!("bad message row: {e}")))?;
        let Some(plan) = plan_finish(current, update, now)? else {
            return Ok(false);
        };
        sqlx::query(
            "UPDATE messages SET status = $1, due_at = $2, lease_token = NULL, lease_until = NULL,
               provider = COALESCE($3, provider),
               provider_message_id = COALESCE($4, provider_message_id),
               price_micros = COALESCE($5, price_micros), price_currency = COALESCE($6, price_currency),
               attempts = attempts + $7, failures = $8, last_error = $9, updated_at = $10
             WHERE tenant_id = $11 AND id = $12",
        )
        .bind(plan.status.as_str())
        .bind(plan.due_at.map(millis))
        .bind(update.provider.as_deref())
        .bind(update.provider_message_id.as_deref())
        .bind(update.price.as_ref().map(|p| p.micros))
        .bind(update.price.as_ref().map(|p| p.currency.as_str()))
        .bind(i64::from(update.attempted))
        .bind(i64::from(plan.failures))
        .bind(plan.last_error.as_deref())
        .bind(millis(now))
        .bind(tenant.as_str())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let events: Vec<NewEvent> = update
            .events
            .iter()
            .map(|e| NewEvent {
                id,
                event: e.event.clone(),
                at: e.at,
                detail: e.detail.clone(),
            })
            .collect();
        insert_events(&mut tx, tenant, &events).await?;
        let change = status_change(id, &channel, &kind, current, plan.status)?;
        webhooks::emit(&mut tx, tenant, &change, now).await?;
        if redacted_at.is_some() {
            // The patient was erased while this send was in flight.
            scrub_late_texts(&mut tx, tenant, id).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }
}
