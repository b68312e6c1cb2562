//! What of the message queue PostgreSQL does its own way; the rest (enqueue, the claim's
//! events, the result of an attempt) is written once in `store/sql/queue.rs`. Why per
//! backend: the claim shared by every node (`FOR UPDATE SKIP LOCKED`; SQLite claims with
//! one UPDATE on its single writer) and the bulk inserts (each column sent as one UNNEST
//! array; SQLite inserts chunked multi-row statements).
//!
//! # Why SKIP LOCKED is enough
//! The claim picks due rows with `FOR UPDATE SKIP LOCKED` and updates them in the same
//! statement: rows another claimer has locked are skipped rather than waited for, and
//! a row another claimer already committed is re-checked against the WHERE clause
//! (it is `sending` with a future `due_at` by then), so no row is handed out twice
//! while its lease holds, on one node or many.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::PgConnection;

use super::{map_err, millis};
use crate::domain::ids::TenantId;
use crate::domain::message::MessageStatus;
use crate::store::columns::outbound::{
    check_new_status, initial_events, message_columns, to_json, NewEvent,
};
use crate::store::outbound::NewMessage;
use crate::store::StoreError;

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

/// Claims up to `limit` due messages under `token` until `lease_until`, skipping rows
/// another claimer holds: the rows with their columns and `claimed_from`.
pub(super) async fn claim_rows(
    conn: &mut PgConnection,
    token: uuid::Uuid,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<PgRow>, StoreError> {
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
    sqlx::query(&sql)
        .bind(millis(now))
        .bind(i64::from(limit))
        .bind(token.to_string())
        .bind(millis(lease_until))
        .fetch_all(conn)
        .await
        .map_err(map_err)
}
