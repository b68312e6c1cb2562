//! The PHI lifecycle: the retention job's bounded redaction pass and the
//! one-transaction erasure of a patient. What is removed is decided once in
//! `store::columns::phi`. On PostgreSQL the retention pass takes its rows
//! `FOR UPDATE SKIP LOCKED`, so the jobs of several nodes share the work instead of
//! waiting on each other (SQLite's single writer runs one pass at a time anyway).
//! Written once for both backends (see `store/sql/mod.rs`).

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Row};

use super::json::{strip_event_texts, EMPTY_OBJECT};
use super::messages::record_cancelled;
use super::{audit, map_err, millis, Backend, Conn, Db, SKIP_LOCKED};
use crate::domain::ids::{NotificationId, PatientId, TenantId};
use crate::domain::message::MessageId;
use crate::store::columns::phi::{
    push_phi_scope, redact_message_set, redact_notification_set, PATIENT_RELATED_TYPE,
    REDACTED_PAYLOAD,
};
use crate::store::columns::{push_in_list, IN_CHUNK};
use crate::store::outbound::{ErasureAudit, ErasureCounts, PhiScope, RedactionCounts};
use crate::store::StoreError;

fn message_set() -> String {
    redact_message_set(EMPTY_OBJECT)
}

/// For a message redacted while a send or a callback about it was in flight: removes
/// the texts that attempt just wrote (its error, the provider's answer), in the same
/// transaction, so an erasure stays complete whatever was running.
pub(in crate::store) async fn scrub_late_texts(
    conn: &mut Conn,
    tenant: &TenantId,
    id: MessageId,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE messages SET last_error = NULL WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.as_str())
        .bind(id.to_string())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    strip_event_texts(conn, tenant.as_str(), &[id.to_string()]).await
}

pub(super) async fn redact_phi(
    store: &Backend,
    scope: &PhiScope,
    cutoff: DateTime<Utc>,
    limit: u32,
    now: DateTime<Utc>,
) -> Result<RedactionCounts, StoreError> {
    let mut tx = store.begin_write().await?;
    let mut qb: QueryBuilder<Db> = QueryBuilder::new(format!(
        "UPDATE messages SET {}, redacted_at = ",
        message_set()
    ));
    qb.push_bind(millis(now))
        .push(" WHERE seq IN (SELECT seq FROM messages WHERE redacted_at IS NULL")
        .push(" AND status NOT IN ('queued', 'sending') AND created_at < ")
        .push_bind(millis(cutoff));
    push_phi_scope(&mut qb, scope);
    qb.push(" ORDER BY created_at LIMIT ")
        .push_bind(i64::from(limit))
        .push(SKIP_LOCKED)
        .push(") RETURNING tenant_id, id");
    let mut rows: Vec<(String, String)> = qb
        .build()
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    rows.sort();
    for group in rows.chunk_by(|a, b| a.0 == b.0) {
        let ids: Vec<String> = group.iter().map(|(_, id)| id.clone()).collect();
        strip_event_texts(&mut tx, &group[0].0, &ids).await?;
    }
    let mut qb: QueryBuilder<Db> = QueryBuilder::new("UPDATE clinic_events SET payload = ");
    qb.push_bind(REDACTED_PAYLOAD)
        .push(", redacted_at = ")
        .push_bind(millis(now))
        .push(" WHERE seq IN (SELECT seq FROM clinic_events WHERE redacted_at IS NULL")
        .push(" AND received_at < ")
        .push_bind(millis(cutoff));
    push_phi_scope(&mut qb, scope);
    qb.push(" ORDER BY received_at LIMIT ")
        .push_bind(i64::from(limit))
        .push(SKIP_LOCKED)
        .push(")");
    let events = qb
        .build()
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
    let notifications = redact_old_notifications(&mut tx, scope, cutoff, limit, now).await?;
    tx.commit().await.map_err(map_err)?;
    Ok(RedactionCounts {
        messages: rows.len() as u64,
        events,
        notifications,
    })
}

/// The retention pass over staff notifications: redacts up to `limit` of those about
/// a patient (by either link, as an erasure finds them) created before `cutoff`, and
/// unlinks them, which is also what marks them done (a redacted row has no link left,
/// so no column records it). Read state and unread counters stay. Returns how many.
async fn redact_old_notifications(
    conn: &mut Conn,
    scope: &PhiScope,
    cutoff: DateTime<Utc>,
    limit: u32,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    // Literals, not parameters, so the planner matches each with its partial index.
    let related = format!("related_type = '{PATIENT_RELATED_TYPE}'");
    let mut redacted = 0;
    for link in ["about_patient_id IS NOT NULL", related.as_str()] {
        let room = u64::from(limit).saturating_sub(redacted);
        if room == 0 {
            break;
        }
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(format!(
            "UPDATE notifications SET {}, about_patient_id = NULL, updated_at = ",
            redact_notification_set()
        ));
        qb.push_bind(millis(now))
            .push(format!(
                // By (tenant, seq): a seq alone names one notification of every tenant.
                " WHERE (tenant_id, seq) IN (SELECT tenant_id, seq FROM notifications \
                 WHERE {link} AND created_at < "
            ))
            .push_bind(millis(cutoff));
        push_phi_scope(&mut qb, scope);
        qb.push(" ORDER BY created_at LIMIT ")
            .push_bind(room as i64)
            .push(SKIP_LOCKED)
            .push(")");
        redacted += qb
            .build()
            .execute(&mut *conn)
            .await
            .map_err(map_err)?
            .rows_affected();
    }
    Ok(redacted)
}

/// Marks a clinic event's messages and in-app notifications as being about its
/// patient (the staff notices are not addressed to them but name them), so an
/// erasure finds them.
pub(super) async fn mark_about_patient(
    conn: &mut Conn,
    tenant: &TenantId,
    patient: &PatientId,
    messages: &[MessageId],
    notifications: &[NotificationId],
) -> Result<(), StoreError> {
    let messages: Vec<String> = messages.iter().map(MessageId::to_string).collect();
    set_about_patient(conn, "messages", "id", tenant, patient, &messages).await?;
    let seqs: Vec<i64> = notifications.iter().map(|n| n.seq()).collect();
    set_about_patient(conn, "notifications", "seq", tenant, patient, &seqs).await
}

/// `UPDATE {table} SET about_patient_id` for the tenant's rows whose `key` is one of
/// `keys`, a chunk of them per statement.
async fn set_about_patient<T>(
    conn: &mut Conn,
    table: &str,
    key: &str,
    tenant: &TenantId,
    patient: &PatientId,
    keys: &[T],
) -> Result<(), StoreError>
where
    T: Clone + Send + for<'q> sqlx::Encode<'q, Db> + sqlx::Type<Db>,
{
    for chunk in keys.chunks(IN_CHUNK) {
        let mut qb: QueryBuilder<Db> =
            QueryBuilder::new(format!("UPDATE {table} SET about_patient_id = "));
        qb.push_bind(patient.as_str())
            .push(" WHERE tenant_id = ")
            .push_bind(tenant.as_str())
            .push(format!(" AND {key}"));
        push_in_list(&mut qb, chunk.iter().cloned());
        qb.build().execute(&mut *conn).await.map_err(map_err)?;
    }
    Ok(())
}

/// Redacts the texts of the tenant's notifications about the patient (from a clinic
/// event about them, or published with `related` naming them) and unlinks them; the
/// rows, their read state and the unread counters stay. Returns how many.
///
/// One statement per link, so each uses its partial index (an `OR` of the two makes
/// SQLite scan the tenant's whole inbox while it holds the writer). The first clears
/// a `related` that names the patient, so the second never counts a row twice.
async fn redact_notifications(
    conn: &mut Conn,
    tenant: &TenantId,
    patient: &PatientId,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    // A literal, not a parameter: the planner matches it with the partial index.
    let related = format!("related_type = '{PATIENT_RELATED_TYPE}' AND related_id = $3");
    let mut redacted = 0;
    for link in ["about_patient_id = $3", related.as_str()] {
        let sql = format!(
            "UPDATE notifications SET {}, about_patient_id = NULL, updated_at = $1
             WHERE tenant_id = $2 AND {link}",
            redact_notification_set()
        );
        redacted += sqlx::query(&sql)
            .bind(millis(now))
            .bind(tenant.as_str())
            .bind(patient.as_str())
            .execute(&mut *conn)
            .await
            .map_err(map_err)?
            .rows_affected();
    }
    Ok(redacted)
}

/// Cancels the patient's queued messages (before their patient id goes) with a
/// `cancelled` event each; returns how many.
async fn cancel_queued(
    conn: &mut Conn,
    tenant: &TenantId,
    patient: &PatientId,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let ids: Vec<String> = sqlx::query_scalar(
        "UPDATE messages SET status = 'cancelled', due_at = NULL, updated_at = $1
         WHERE tenant_id = $2 AND (patient_id = $3 OR about_patient_id = $3)
           AND status = 'queued' RETURNING id",
    )
    .bind(millis(now))
    .bind(tenant.as_str())
    .bind(patient.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    record_cancelled(conn, tenant, &ids, r#"{"reason":"patient_erased"}"#, now).await
}

pub(super) async fn erase_patient(
    store: &Backend,
    tenant: &TenantId,
    patient: &PatientId,
    audit: ErasureAudit<'_>,
    now: DateTime<Utc>,
) -> Result<Option<ErasureCounts>, StoreError> {
    let mut tx = store.begin_write().await?;
    let (t, p, at) = (tenant.as_str(), patient.as_str(), millis(now));
    let preferences =
        sqlx::query("DELETE FROM patient_preferences WHERE tenant_id = $1 AND patient_id = $2")
            .bind(t)
            .bind(p)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected()
            > 0;
    let cancelled = cancel_queued(&mut tx, tenant, patient, now).await?;
    let sql = format!(
        "UPDATE messages SET {}, patient_id = NULL, about_patient_id = NULL,
           redacted_at = COALESCE(redacted_at, $1), updated_at = $1
         WHERE tenant_id = $2 AND (patient_id = $3 OR about_patient_id = $3) RETURNING id",
        message_set()
    );
    let ids: Vec<String> = sqlx::query_scalar(&sql)
        .bind(at)
        .bind(t)
        .bind(p)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
    strip_event_texts(&mut tx, t, &ids).await?;
    let events = sqlx::query(
        "UPDATE clinic_events SET payload = $1, patient_id = NULL,
           redacted_at = COALESCE(redacted_at, $2)
         WHERE tenant_id = $3 AND patient_id = $4",
    )
    .bind(REDACTED_PAYLOAD)
    .bind(at)
    .bind(t)
    .bind(p)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?
    .rows_affected();
    let notifications = redact_notifications(&mut tx, tenant, patient, now).await?;
    let counts = ErasureCounts {
        messages: ids.len() as u64,
        cancelled,
        events,
        preferences,
        notifications,
    };
    let erased_before: Option<i64> = sqlx::query_scalar(
        "SELECT erased_at FROM erased_patients WHERE tenant_id = $1 AND patient_id = $2",
    )
    .bind(t)
    .bind(p)
    .fetch_optional(&mut *tx)
    .await
    .map_err(map_err)?;
    if counts == ErasureCounts::default() && erased_before.is_none() {
        tx.rollback().await.map_err(map_err)?;
        return Ok(None);
    }
    sqlx::query(
        "INSERT INTO erased_patients (tenant_id, patient_id, erased_at) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, patient_id) DO UPDATE SET erased_at = excluded.erased_at",
    )
    .bind(t)
    .bind(p)
    .bind(at)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    audit::insert(&mut tx, tenant, &audit(&counts)).await?;
    tx.commit().await.map_err(map_err)?;
    Ok(Some(counts))
}
