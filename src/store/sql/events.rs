//! Clinic events: the event log, appointment states, and the one transaction that
//! applies an event.
//!
//! The notifications go through the backend's own `notifications::insert_batch_in`, so
//! their ids stay in commit order with the publishes' group commits (SQLite: the single
//! writer connection; PostgreSQL: the tenant's id-order advisory lock before `nextval`).
//! The appointment's state row is updated first, guarded by its version, so two nodes
//! applying events of one appointment serialize on that row.
//! Written once for both backends (see `store/sql/mod.rs`).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Row};

use super::notifications::insert_batch_in;
use super::phi::mark_about_patient;
use super::queue::insert_messages;
use super::{map_err, millis, Backend, Db, WriteTx};
use crate::domain::clinic_event::AppointmentState;
use crate::domain::ids::{AppointmentId, EventId, NotificationId, TenantId, UserId};
use crate::domain::message::MessageId;
use crate::store::columns::events::{counts_from_row, record_from_row, state_from_row};
use crate::store::columns::{push_in_list, IN_CHUNK};
use crate::store::events::{
    counts_of, ApplyOutcome, EventApplication, EventCounts, EventRecord, EventStore,
};
use crate::store::{Page, PageRequest, PublishOutcome, StoreError};

fn corrupt(what: &str) -> impl Fn(crate::domain::Invalid) -> StoreError + '_ {
    move |e| StoreError::Internal(format!("bad {what} row: {e}"))
}

/// The ids of the notifications a batch created (an event's carry no idempotency
/// key, so each of its requests is `Created`).
fn created_ids(published: &[PublishOutcome]) -> Vec<NotificationId> {
    published
        .iter()
        .flat_map(|p| match p {
            PublishOutcome::Created { notifications, .. } => notifications.as_slice(),
            _ => &[],
        })
        .map(|n| n.id)
        .collect()
}

async fn cancel_group(
    tx: &mut WriteTx<'_>,
    tenant: &TenantId,
    group: &str,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let detail = serde_json::json!({ "group_key": group, "by": "clinic_event" }).to_string();
    super::messages::cancel_queued_group(tx, tenant, group, &detail, now).await
}

async fn write_state(
    tx: &mut WriteTx<'_>,
    app: &EventApplication,
    state: &AppointmentState,
) -> Result<bool, StoreError> {
    let q = match app.expected_version {
        None => sqlx::query(
            "INSERT INTO appointment_states (status, start_at, last_occurred_at, reminders_for,
               version, updated_at, tenant_id, appointment_id)
             VALUES ($1, $2, $3, $4, 1, $5, $6, $7) ON CONFLICT DO NOTHING",
        ),
        Some(_) => sqlx::query(
            "UPDATE appointment_states SET status = $1, start_at = $2, last_occurred_at = $3,
               reminders_for = $4, version = version + 1, updated_at = $5
             WHERE tenant_id = $6 AND appointment_id = $7 AND version = $8",
        ),
    };
    let mut q = q
        .bind(state.status.short())
        .bind(millis(state.start_at))
        .bind(millis(state.last_occurred_at))
        .bind(state.reminders_for.map(millis))
        .bind(millis(app.now))
        .bind(app.tenant.as_str())
        .bind(app.appointment.as_str());
    if let Some(v) = app.expected_version {
        q = q.bind(v);
    }
    let done = q.execute(&mut **tx).await.map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

#[async_trait]
impl EventStore for Backend {
    async fn event_counts(
        &self,
        tenant: &TenantId,
        id: &EventId,
    ) -> Result<Option<EventCounts>, StoreError> {
        let row = sqlx::query(
            "SELECT notifications, messages, reminders_scheduled, reminders_cancelled
             FROM clinic_events WHERE tenant_id = $1 AND event_id = $2",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(self.reader())
        .await
        .map_err(map_err)?;
        Ok(row.map(|r| counts_from_row(&r)))
    }

    async fn appointment_state(
        &self,
        tenant: &TenantId,
        appointment: &AppointmentId,
    ) -> Result<Option<AppointmentState>, StoreError> {
        let row = sqlx::query(
            "SELECT status, start_at, last_occurred_at, reminders_for, version
             FROM appointment_states WHERE tenant_id = $1 AND appointment_id = $2",
        )
        .bind(tenant.as_str())
        .bind(appointment.as_str())
        .fetch_optional(self.reader())
        .await
        .map_err(map_err)?;
        row.as_ref().map(state_from_row).transpose()
    }

    async fn apply_event(&self, app: &EventApplication) -> Result<ApplyOutcome, StoreError> {
        let mut tx = self.begin_write().await?;
        // The event row first: its unique (tenant, id) is the idempotency check.
        let existing = sqlx::query(
            "SELECT notifications, messages, reminders_scheduled, reminders_cancelled
             FROM clinic_events WHERE tenant_id = $1 AND event_id = $2",
        )
        .bind(app.tenant.as_str())
        .bind(app.event_id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        if let Some(row) = existing {
            return Ok(ApplyOutcome::Replayed(counts_from_row(&row)));
        }
        if let Some(state) = &app.new_state {
            if !write_state(&mut tx, app, state).await? {
                return Ok(ApplyOutcome::StateChanged);
            }
        }
        let published = insert_batch_in(&mut tx, &app.notifications).await?;
        let reminders_cancelled = match &app.cancel_group {
            Some(group) => cancel_group(&mut tx, &app.tenant, group, app.now).await?,
            None => 0,
        };
        insert_messages(&mut tx, &app.tenant, &app.messages, app.now).await?;
        if let Some(patient) = &app.patient {
            let messages: Vec<MessageId> = app.messages.iter().map(|m| m.id).collect();
            let notifications = created_ids(&published);
            mark_about_patient(&mut tx, &app.tenant, patient, &messages, &notifications).await?;
        }
        let counts = counts_of(app, &published, reminders_cancelled);
        sqlx::query(
            "INSERT INTO clinic_events (tenant_id, event_id, type, appointment_id, occurred_at,
               received_at, outcome, notifications, messages, reminders_scheduled,
               reminders_cancelled, payload, patient_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(app.tenant.as_str())
        .bind(app.event_id.as_str())
        .bind(app.kind.short())
        .bind(app.appointment.as_str())
        .bind(millis(app.occurred_at))
        .bind(millis(app.now))
        .bind(app.outcome.as_str())
        .bind(counts.notifications as i64)
        .bind(counts.messages as i64)
        .bind(counts.reminders_scheduled as i64)
        .bind(counts.reminders_cancelled as i64)
        .bind(app.payload.as_str())
        .bind(app.patient.as_ref().map(|p| p.as_str()))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(ApplyOutcome::Applied { counts, published })
    }

    async fn list_events(
        &self,
        tenant: &TenantId,
        appointment: Option<&AppointmentId>,
        page: PageRequest,
    ) -> Result<Page<EventRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, event_id, type, appointment_id, occurred_at, received_at, outcome,
               notifications, messages, reminders_scheduled, reminders_cancelled, payload
             FROM clinic_events
             WHERE tenant_id = $1 AND (CAST($2 AS TEXT) IS NULL OR appointment_id = $2)
               AND (CAST($3 AS BIGINT) IS NULL OR seq < $3)
             ORDER BY seq DESC LIMIT $4",
        )
        .bind(tenant.as_str())
        .bind(appointment.map(|a| a.as_str()))
        .bind(page.before)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(self.reader())
        .await
        .map_err(map_err)?;
        let records = rows
            .iter()
            .map(record_from_row)
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Page::from_overfetch(records, page.limit, |e| e.seq))
    }

    async fn user_locales(
        &self,
        tenant: &TenantId,
        users: &[UserId],
    ) -> Result<HashMap<UserId, String>, StoreError> {
        let mut out = HashMap::new();
        for chunk in users.chunks(IN_CHUNK) {
            let mut qb: QueryBuilder<Db> =
                QueryBuilder::new("SELECT user_id, locale FROM users WHERE tenant_id = ");
            qb.push_bind(tenant.as_str())
                .push(" AND locale IS NOT NULL AND user_id");
            push_in_list(&mut qb, chunk.iter().map(UserId::as_str));
            for row in qb.build().fetch_all(self.reader()).await.map_err(map_err)? {
                out.insert(
                    UserId::parse(row.get(0)).map_err(corrupt("user"))?,
                    row.get(1),
                );
            }
        }
        Ok(out)
    }

    async fn templates_seeded(&self, tenant: &TenantId) -> Result<bool, StoreError> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM event_template_seeds WHERE tenant_id = $1")
                .bind(tenant.as_str())
                .fetch_one(self.reader())
                .await
                .map_err(map_err)?;
        Ok(n > 0)
    }

    async fn mark_templates_seeded(
        &self,
        tenant: &TenantId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO event_template_seeds (tenant_id, seeded_at) VALUES ($1, $2)
             ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(millis(now))
        .execute(&mut *self.write_conn().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }
}
