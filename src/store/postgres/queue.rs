//! The durable message queue on PostgreSQL: the chunk-fed enqueue transaction (one
//! UNNEST insert per chunk), the claim shared by every node (`FOR UPDATE SKIP LOCKED`),
//! and the lease-checked result of an attempt. Why per backend: that claim and the
//! UNNEST bulk inserts (SQLite claims with one UPDATE on its single writer and inserts
//! chunked multi-row statements); `insert_events` lives here too.
//!
//! # Why SKIP LOCKED is enough
//! The claim picks due rows with `FOR UPDATE SKIP LOCKED` and updates them in the same
//! statement: rows another claimer has locked are skipped rather than waited for, and
//! a row another claimer already committed is re-checked against the WHERE clause
//! (it is `sending` with a future `due_at` by then), so no row is handed out twice
//! while its lease holds, on one node or many.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use tokio::sync::mpsc;

use super::sql::audit;
use super::sql::phi::scrub_late_texts;
use super::{map_err, millis, PostgresStore};
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

/// One multi-row insert for a whole chunk: each column is sent as one array.
pub(super) async fn insert_messages(
    conn: &mut PgConnection,
    tenant: &TenantId,
    messages: &[NewMessage],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if messages.is_empty() {
        return Ok(());
    }
    let n = messages.len();
    let mut ids = Vec::with_capacity(n);
    let mut patients = Vec::with_capacity(n);
    let mut channels = Vec::with_capacity(n);
    let mut tos = Vec::with_capacity(n);
    let mut languages = Vec::with_capacity(n);
    let mut kinds = Vec::with_capacity(n);
    let mut template_ids = Vec::with_capacity(n);
    let mut template_names = Vec::with_capacity(n);
    let mut template_versions = Vec::with_capacity(n);
    let mut variables = Vec::with_capacity(n);
    let mut subjects = Vec::with_capacity(n);
    let mut bodies = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut codes = Vec::with_capacity(n);
    let mut reasons = Vec::with_capacity(n);
    let mut send_ats = Vec::with_capacity(n);
    let mut due_ats = Vec::with_capacity(n);
    let mut groups = Vec::with_capacity(n);
    let mut batches = Vec::with_capacity(n);
    let mut events = Vec::with_capacity(n * 2);
    for m in messages {
        check_new_status(m)?;
        ids.push(m.id.to_string());
        patients.push(m.patient.as_ref().map(|p| p.as_str()));
        channels.push(m.channel.as_str());
        tos.push(m.to.as_ref().map(|a| a.as_str()));
        languages.push(m.language.code());
        kinds.push(m.kind.as_str());
        template_ids.push(m.template.as_ref().map(|t| t.id.to_string()));
        template_names.push(m.template.as_ref().map(|t| t.name.as_str()));
        template_versions.push(m.template.as_ref().map(|t| i64::from(t.version)));
        variables.push(to_json(&m.variables)?);
        subjects.push(m.subject.as_deref());
        bodies.push(m.body.as_str());
        statuses.push(m.status.as_str());
        codes.push(m.suppression.as_ref().map(|s| s.0.as_str()));
        reasons.push(m.suppression.as_ref().map(|s| s.1.as_str()));
        send_ats.push(millis(m.send_at));
        due_ats.push((m.status == MessageStatus::Queued).then(|| millis(m.send_at)));
        groups.push(m.group_key.as_deref());
        batches.push(m.batch.map(|b| b.to_string()));
        for (event, detail) in initial_events(m)? {
            events.push(NewEvent {
                id: m.id,
                event: event.to_owned(),
                at: now,
                detail,
            });
        }
    }
    sqlx::query(
        "INSERT INTO messages (id, tenant_id, patient_id, channel, to_address, language, kind,
           template_id, template_name, template_version, variables, subject, body, status,
           suppression_code, suppression_reason, send_at, due_at, group_key, batch_id,
           attempts, failures, created_at, updated_at)
         SELECT id, $1, patient_id, channel, to_address, language, kind, template_id,
           template_name, template_version, variables::jsonb, subject, body, status,
           suppression_code, suppression_reason, send_at, due_at, group_key, batch_id,
           0, 0, $2, $2
         FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                     $9::text[], $10::text[], $11::int8[], $12::text[], $13::text[], $14::text[],
                     $15::text[], $16::text[], $17::text[], $18::int8[], $19::int8[], $20::text[],
                     $21::text[])
              WITH ORDINALITY
              AS x(id, patient_id, channel, to_address, language, kind, template_id,
                   template_name, template_version, variables, subject, body, status,
                   suppression_code, suppression_reason, send_at, due_at, group_key, batch_id, n)
         ORDER BY n",
    )
    .bind(tenant.as_str())
    .bind(millis(now))
    .bind(&ids)
    .bind(&patients)
    .bind(&channels)
    .bind(&tos)
    .bind(&languages)
    .bind(&kinds)
    .bind(&template_ids)
    .bind(&template_names)
    .bind(&template_versions)
    .bind(&variables)
    .bind(&subjects)
    .bind(&bodies)
    .bind(&statuses)
    .bind(&codes)
    .bind(&reasons)
    .bind(&send_ats)
    .bind(&due_ats)
    .bind(&groups)
    .bind(&batches)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    insert_events(conn, tenant, &events).await
}

/// Appends events to the trails of the tenant's messages, on the caller's transaction:
/// one statement whatever the number (UNNEST arrays).
pub(super) async fn insert_events(
    conn: &mut PgConnection,
    tenant: &TenantId,
    events: &[NewEvent],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    let ats: Vec<i64> = events.iter().map(|e| millis(e.at)).collect();
    let details: Vec<&str> = events.iter().map(|e| e.detail.as_str()).collect();
    sqlx::query(
        "INSERT INTO message_events (tenant_id, message_id, event, at, detail)
         SELECT $1, m, e, a, d::json
         FROM UNNEST($2::text[], $3::text[], $4::int8[], $5::text[]) WITH ORDINALITY AS x(m, e, a, d, n)
         ORDER BY n",
    )
    .bind(tenant.as_str())
    .bind(&ids)
    .bind(&names)
    .bind(&ats)
    .bind(&details)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

#[async_trait]
impl QueueStore for PostgresStore {
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
            // Recorded first. A concurrent request with the same key (any node) blocks on
            // this row's unique index until we commit or roll back, then finds our record
            // (or takes the key if we rolled back): check and record cannot interleave.
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
        let sql = format!(
            "WITH picked AS (
           SELECT seq AS picked_seq FROM messages
           WHERE (status = 'queued' AND due_at <= $1) OR (status = 'sending' AND due_at < $1)
           ORDER BY due_at, seq LIMIT $2
           FOR UPDATE SKIP LOCKED)
         UPDATE messages SET status = 'sending', claimed_from = messages.status,
           lease_token = $3, lease_until = $4, due_at = $4, updated_at = $1
         FROM picked WHERE messages.seq = picked.picked_seq
         RETURNING {}, claimed_from",
            message_columns("variables::text AS variables")
        );
        let rows = sqlx::query(&sql)
            .bind(millis(now))
            .bind(i64::from(limit))
            .bind(token.to_string())
            .bind(millis(lease_until))
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
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
        // Locked: a callback for this message waits until the result is written, and
        // then applies against it (and the other way round).
        let row: Option<(String, Option<i64>)> = sqlx::query_as(
            "SELECT status, redacted_at FROM messages
         WHERE tenant_id = $1 AND id = $2 AND lease_token = $3 FOR UPDATE",
        )
        .bind(tenant.as_str())
        .bind(id.to_string())
        .bind(lease_token.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some((status, redacted_at)) = row else {
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
        if redacted_at.is_some() {
            // The patient was erased while this send was in flight.
            scrub_late_texts(&mut tx, tenant, id).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }
}
