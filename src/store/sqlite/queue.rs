//! What of the message queue SQLite does its own way; the rest (enqueue, the claim's
//! events, the result of an attempt) is written once in `store/sql/queue.rs`. Why per
//! backend: the claim statement (PostgreSQL needs `FOR UPDATE SKIP LOCKED` to share the
//! work between nodes) and the bulk inserts (chunked multi-row INSERTs here; PostgreSQL
//! sends each column as one UNNEST array).
//!
//! Every write runs on the single writer connection, so one `UPDATE … WHERE seq IN
//! (SELECT … LIMIT n) RETURNING` is a claim no other claimer in the process can
//! interleave with; another process on the same file waits on `BEGIN IMMEDIATE`.

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::{map_err, millis};
use crate::domain::ids::TenantId;
use crate::domain::message::MessageStatus;
use crate::store::columns::outbound::{
    check_new_status, initial_events, message_columns, to_json, NewEvent,
};
use crate::store::outbound::NewMessage;
use crate::store::StoreError;

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

/// Claims up to `limit` due messages under `token` until `lease_until`, in one statement
/// on the single writer: the rows with their columns and `claimed_from`.
pub(super) async fn claim_rows(
    conn: &mut SqliteConnection,
    token: uuid::Uuid,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<SqliteRow>, StoreError> {
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
    sqlx::query(&sql)
        .bind(token.to_string())
        .bind(millis(lease_until))
        .bind(millis(lease_until))
        .bind(millis(now))
        .bind(millis(now))
        .bind(millis(now))
        .bind(i64::from(limit))
        .fetch_all(conn)
        .await
        .map_err(map_err)
}
