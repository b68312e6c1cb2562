//! The escalation schedule, written once for both backends (see `store/escalations.rs`
//! for the port and `store/sql/mod.rs` for how this file is compiled twice).
//!
//! The claim picks due steps with `SKIP_LOCKED` (PostgreSQL: rows another node's claim
//! holds are skipped, and a row claimed and committed meanwhile is re-checked against
//! the lease condition; SQLite: the single writer runs one claim at a time). Firing
//! re-checks the claim's token inside the transaction that publishes the copy, so a
//! claim that outlived its lease, or a step a read cancelled meanwhile, writes nothing.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::notifications::insert_batch_in;
use super::phi::mark_about_patient;
use super::{map_err, millis, Backend, Conn, SKIP_LOCKED};
use crate::domain::auth::Role;
use crate::domain::escalation::EscalationTarget;
use crate::domain::ids::{NotificationId, PatientId, TenantId, UserId};
use crate::store::columns::{from_millis, notification_from_row, NOTIFICATION_COLUMNS};
use crate::store::escalations::{
    ClaimedEscalation, EscalationRecord, EscalationState, EscalationStore, FireOutcome,
};
use crate::store::{PublishOutcome, PublishRequest, StoreError};

fn target(user: Option<String>, role: Option<String>) -> Result<EscalationTarget, StoreError> {
    let corrupt = |e: crate::domain::Invalid| StoreError::Internal(format!("bad escalation: {e}"));
    match (user, role) {
        (Some(u), None) => Ok(EscalationTarget::User(UserId::parse(&u).map_err(corrupt)?)),
        (None, Some(r)) => Ok(EscalationTarget::Role(r.parse::<Role>().map_err(corrupt)?)),
        _ => Err(StoreError::Internal(
            "escalation step without exactly one target".into(),
        )),
    }
}

/// Cancels the pending steps of every chain the user's notifications read at `at`
/// belong to: called by mark-read and mark-all-read in their transaction, after their
/// UPDATE (whose rows now have `read_at = at`) and before the counter, so locks are
/// taken in the order firing takes them. A row read earlier at the same millisecond
/// matches too, which is right: its chain was acknowledged then.
pub(crate) async fn acknowledge_read(
    conn: &mut Conn,
    tenant: &TenantId,
    user: &UserId,
    at: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE escalations SET state = $4, ended_at = $3, lease_until = NULL
         WHERE tenant_id = $1 AND state = $5 AND EXISTS (
           SELECT 1 FROM notifications n
           WHERE n.tenant_id = $1 AND n.chain_seq = escalations.chain_seq
             AND n.user_id = $2 AND n.read_at = $3)",
    )
    .bind(tenant.as_str())
    .bind(user.as_str())
    .bind(millis(at))
    .bind(EscalationState::Cancelled.code())
    .bind(EscalationState::Pending.code())
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected())
}

/// Retention: steps that ended before `cutoff`.
pub(crate) async fn purge_ended(conn: &mut Conn, cutoff: DateTime<Utc>) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM escalations WHERE state <> $1 AND ended_at < $2")
        .bind(EscalationState::Pending.code())
        .bind(millis(cutoff))
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

#[async_trait]
impl EscalationStore for Backend {
    async fn claim_escalations(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedEscalation>, StoreError> {
        let token = uuid::Uuid::new_v4();
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(&format!(
            "UPDATE escalations SET lease_token = $1, lease_until = $2
             WHERE (tenant_id, chain_seq, step) IN (
               SELECT tenant_id, chain_seq, step FROM escalations
               WHERE state = $5 AND due_at <= $3 AND (lease_until IS NULL OR lease_until <= $3)
               ORDER BY due_at LIMIT $4{SKIP_LOCKED})
             RETURNING tenant_id, chain_seq, CAST(step AS BIGINT) AS step, due_at, to_user, to_role"
        ))
        .bind(token.to_string())
        .bind(millis(lease_until))
        .bind(millis(now))
        .bind(i64::from(limit))
        .bind(EscalationState::Pending.code())
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        let mut claimed = rows
            .iter()
            .map(|r| {
                Ok(ClaimedEscalation {
                    tenant: TenantId::parse(&r.get::<String, _>("tenant_id"))
                        .map_err(|e| StoreError::Internal(format!("bad escalation: {e}")))?,
                    chain: NotificationId::from_seq(r.get("chain_seq")),
                    step: r.get("step"),
                    due_at: from_millis(r.get("due_at")),
                    to: target(r.get("to_user"), r.get("to_role"))?,
                    lease_token: token,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // RETURNING keeps no order: fire in due order, so a chain's steps fire in turn.
        claimed.sort_by_key(|c| (c.due_at, c.step));
        Ok(claimed)
    }

    async fn fire_escalation(
        &self,
        claimed: &ClaimedEscalation,
        recipients: Vec<UserId>,
        now: DateTime<Utc>,
    ) -> Result<FireOutcome, StoreError> {
        let mut tx = self.begin_write().await?;
        let end = |state: EscalationState| {
            sqlx::query(
                "UPDATE escalations SET state = $1, ended_at = $2, lease_until = NULL
                 WHERE tenant_id = $3 AND chain_seq = $4 AND step = $5
                   AND state = $6 AND lease_token = $7",
            )
            .bind(state.code())
            .bind(millis(now))
            .bind(claimed.tenant.as_str())
            .bind(claimed.chain.seq())
            .bind(claimed.step)
            .bind(EscalationState::Pending.code())
            .bind(claimed.lease_token.to_string())
        };
        let original = sqlx::query(&format!(
            "SELECT {NOTIFICATION_COLUMNS}, about_patient_id FROM notifications
             WHERE tenant_id = $1 AND seq = $2"
        ))
        .bind(claimed.tenant.as_str())
        .bind(claimed.chain.seq())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let state = match original {
            Some(_) => EscalationState::Fired,
            None => EscalationState::Dropped,
        };
        let mine = end(state).execute(&mut *tx).await.map_err(map_err)?;
        if mine.rows_affected() == 0 {
            tx.rollback().await.map_err(map_err)?;
            return Ok(FireOutcome::NotMine);
        }
        let Some(original) = original else {
            tx.commit().await.map_err(map_err)?;
            return Ok(FireOutcome::Dropped);
        };
        // The copies name the patient the original names: an erasure must find them too.
        let about: Option<String> = original.get("about_patient_id");
        let original = notification_from_row(&original, false)?;
        let mut copy =
            PublishRequest::new(claimed.tenant.clone(), recipients, original.content, now);
        copy.escalated_from = Some(claimed.chain);
        let mut published = insert_batch_in(&mut tx, std::slice::from_ref(&copy)).await?;
        if let Some(patient) = about {
            let patient = PatientId::parse(&patient)
                .map_err(|e| StoreError::Internal(format!("bad notification row: {e}")))?;
            let copies: Vec<NotificationId> = published
                .iter()
                .flat_map(|p| match p {
                    PublishOutcome::Created { notifications, .. } => notifications.as_slice(),
                    _ => &[],
                })
                .map(|n| n.id)
                .collect();
            mark_about_patient(&mut tx, &claimed.tenant, &patient, &[], &copies).await?;
        }
        tx.commit().await.map_err(map_err)?;
        published
            .pop()
            .map(FireOutcome::Fired)
            .ok_or_else(|| StoreError::Internal("a fired escalation published nothing".into()))
    }

    async fn escalation_steps(
        &self,
        tenant: &TenantId,
        chain: NotificationId,
    ) -> Result<Vec<EscalationRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT CAST(step AS BIGINT) AS step, due_at, to_user, to_role,
                    CAST(state AS BIGINT) AS state
             FROM escalations WHERE tenant_id = $1 AND chain_seq = $2 ORDER BY step",
        )
        .bind(tenant.as_str())
        .bind(chain.seq())
        .fetch_all(self.reader())
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok(EscalationRecord {
                    step: r.get("step"),
                    due_at: from_millis(r.get("due_at")),
                    to: target(r.get("to_user"), r.get("to_role"))?,
                    state: EscalationState::from_code(r.get("state"))?,
                })
            })
            .collect()
    }
}
