//! The durable message queue on SQLite: the chunk-fed enqueue transaction, the atomic
//! claim, and the lease-checked result of an attempt. Why per backend: the claim
//! (below, against PostgreSQL's `FOR UPDATE SKIP LOCKED`) and the bulk inserts (chunked
//! multi-row INSERTs; PostgreSQL inserts UNNEST arrays); `insert_events` lives here too.
//!
//! Every write runs on the single writer connection, so one `UPDATE … WHERE seq IN
//! (SELECT … LIMIT n) RETURNING` is a claim no other claimer in the process can
//! interleave with; another process on the same file waits on `BEGIN IMMEDIATE`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use tokio::sync::mpsc;

use super::sql::audit;
use super::sql::phi::scrub_late_texts;
use super::{map_err, millis, SqliteStore};
use crate::domain::ids::TenantId;
use crate::domain::message::{MessageId, MessageStatus};
use crate::store::columns::outbound::{
    check_new_status, claim_detail, initial_events, message_columns, message_from_row, to_json,
    NewEvent,
};
use crate::store::finish::plan_finish;
use crate::store::outbound::{
    AttemptUpdate, AuditEntry, ClaimedMessage, EnqueueFeed, EnqueueOutcome, NewBatch, NewMessage,
    QueueStore,
};
use crate::store::{IdempotencyClaim, StoreError};

/// Rows per multi-row INSERT: 24 parameters each, below SQLite's 32766. Full chunks
/// have the same SQL text, so the connection's statement cache prepares it once.
const INSERT_CHUNK: usize = 500;

pub(super) async fn insert_messages(
    conn: &mut SqliteConnection,
    tenant: &TenantId,
    messages: &[NewMessage],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for chunk in messages.chunks(INSERT_CHUNK) {
        let mut rows = Vec::with_capacity(chunk.len());
        for m in chunk {
            check_new_status(m)?;
            rows.push((m, to_json(&m.variables)?));
        }
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO messages (id, tenant_id, patient_id, channel, to_address, language, kind,
               template_id, template_name, template_version, variables, subject, body, status,
               suppression_code, suppression_reason, send_at, due_at, group_key, batch_id,
               attempts, failures, created_at, updated_at) ",
        );
        qb.push_values(&rows, |mut b, (m, variables)| {
            let queued = m.status == MessageStatus::Queued;
            b.push_bind(m.id.to_string())
                .push_bind(tenant.as_str())
                .push_bind(m.patient.as_ref().map(|p| p.as_str()))
                .push_bind(m.channel.as_str())
                .push_bind(m.to.as_ref().map(|a| a.as_str()))
                .push_bind(m.language.code())
                .push_bind(m.kind.as_str())
                .push_bind(m.template.as_ref().map(|t| t.id.to_string()))
                .push_bind(m.template.as_ref().map(|t| t.name.as_str()))
                .push_bind(m.template.as_ref().map(|t| i64::from(t.version)))
                .push_bind(variables.as_str())
                .push_bind(m.subject.as_deref())
                .push_bind(m.body.as_str())
                .push_bind(m.status.as_str())
                .push_bind(m.suppression.as_ref().map(|s| s.0.as_str()))
                .push_bind(m.suppression.as_ref().map(|s| s.1.as_str()))
                .push_bind(millis(m.send_at))
                .push_bind(queued.then(|| millis(m.send_at)))
                .push_bind(m.group_key.as_deref())
                .push_bind(m.batch.map(|b| b.to_string()))
                .push_bind(0_i64)
                .push_bind(0_i64)
                .push_bind(millis(now))
                .push_bind(millis(now));
        });
        qb.build().execute(&mut *conn).await.map_err(map_err)?;
        let mut events = Vec::with_capacity(chunk.len() * 2);
        for m in chunk {
            for (event, detail) in initial_events(m)? {
                events.push(NewEvent {
                    id: m.id,
                    event: event.to_owned(),
                    at: now,
                    detail,
                });
            }
        }
        insert_events(conn, tenant, &events).await?;
    }
    Ok(())
}

/// Event rows per multi-row INSERT (5 parameters each).
const EVENT_CHUNK: usize = 1000;

/// Appends events to the trails of the tenant's messages, on the caller's transaction.
pub(super) async fn insert_events(
    conn: &mut SqliteConnection,
    tenant: &TenantId,
    events: &[NewEvent],
) -> Result<(), StoreError> {
    for chunk in events.chunks(EVENT_CHUNK) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO message_events (tenant_id, message_id, event, at, detail) ",
        );
        qb.push_values(chunk, |mut b, e| {
            b.push_bind(tenant.as_str())
                .push_bind(e.id.to_string())
                .push_bind(e.event.as_str())
                .push_bind(millis(e.at))
                .push_bind(e.detail.as_str());
        });
        qb.build().execute(&mut *conn).await.map_err(map_err)?;
    }
    Ok(())
}

#[async_trait]
impl QueueStore for SqliteStore {
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
            // Recorded first: on this single writer nobody can record the key between the
            // check and the insert, and a rollback (abort, error) takes the record with it.
            let recorded = sqlx::query(
            "INSERT INTO outbound_idempotency (tenant_id, key, request_hash, response, created_at)
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant_id, key) DO NOTHING",
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
                "SELECT request_hash, response FROM outbound_idempotency WHERE tenant_id = ? AND key = ?",
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
                "INSERT INTO batches (id, tenant_id, template, created_at) VALUES (?, ?, ?, ?)",
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
        let sql = format!(
            "UPDATE messages SET status = 'sending', claimed_from = status, lease_token = ?,
           lease_until = ?, due_at = ?, updated_at = ?
         WHERE seq IN (
           SELECT seq FROM messages
           WHERE (status = 'queued' AND due_at <= ?) OR (status = 'sending' AND due_at < ?)
           ORDER BY due_at, seq LIMIT ?)
         RETURNING {}, claimed_from",
            message_columns("variables")
        );
        let rows = sqlx::query(&sql)
            .bind(token.to_string())
            .bind(millis(lease_until))
            .bind(millis(lease_until))
            .bind(millis(now))
            .bind(millis(now))
            .bind(millis(now))
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        let mut claimed = Vec::with_capacity(rows.len());
        let mut events = Vec::with_capacity(rows.len());
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
            let tenant = group[0].0.clone();
            let rows: Vec<NewEvent> = group.iter().map(|(_, e)| e.clone()).collect();
            insert_events(&mut tx, &tenant, &rows).await?;
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
        let row = sqlx::query(
        "SELECT status, redacted_at FROM messages WHERE tenant_id = ? AND id = ? AND lease_token = ?",
    )
    .bind(tenant.as_str())
    .bind(id.to_string())
    .bind(lease_token.to_string())
    .fetch_optional(&mut *tx)
    .await
    .map_err(map_err)?;
        let Some(row) = row else {
            return Ok(false);
        };
        let current = MessageStatus::parse(row.get(0))
            .map_err(|e| StoreError::Internal(format!("bad message row: {e}")))?;
        let redacted = row.get::<Option<i64>, _>(1).is_some();
        let Some(plan) = plan_finish(current, update, now)? else {
            return Ok(false);
        };
        sqlx::query(
            "UPDATE messages SET status = ?, due_at = ?, lease_token = NULL, lease_until = NULL,
           provider = COALESCE(?, provider),
           provider_message_id = COALESCE(?, provider_message_id),
           price_micros = COALESCE(?, price_micros), price_currency = COALESCE(?, price_currency),
           attempts = attempts + ?, failures = ?, last_error = ?, updated_at = ?
         WHERE tenant_id = ? AND id = ?",
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
        if redacted {
            // The patient was erased while this send was in flight.
            scrub_late_texts(&mut tx, tenant, id).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }
}
