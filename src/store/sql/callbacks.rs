//! Provider status callbacks: finding the message, and applying a callback (replay
//! check, "never backwards", write, event) in one transaction. The message row is read
//! `FOR UPDATE` on PostgreSQL (SQLite's single writer serializes them anyway), so two
//! callbacks for one message (or a callback and the worker's result) are applied one
//! after the other, each against the status the other left.
//! Written once for both backends (see `store/sql/mod.rs`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::messages::insert_events;
use super::phi::scrub_late_texts;
use super::webhooks::{self, status_change};
use super::{map_err, millis, Backend, DbRow, FOR_UPDATE};
use crate::domain::ids::TenantId;
use crate::domain::message::{advance, MessageId, MessageStatus};
use crate::store::columns::outbound::NewEvent;
use crate::store::outbound::{CallbackOutcome, CallbackStore, CallbackTarget, CallbackUpdate};
use crate::store::StoreError;

fn target(row: &DbRow) -> Result<CallbackTarget, StoreError> {
    let bad = |e: crate::domain::Invalid| StoreError::Internal(format!("bad message row: {e}"));
    Ok(CallbackTarget {
        tenant: TenantId::parse(row.get(0)).map_err(bad)?,
        id: MessageId::parse(row.get(1)).map_err(bad)?,
        provider: row.get(2),
        status: MessageStatus::parse(row.get(3)).map_err(bad)?,
    })
}

#[async_trait]
impl CallbackStore for Backend {
    async fn callback_target(
        &self,
        message_id: Option<MessageId>,
        provider_message_id: Option<&str>,
    ) -> Result<Option<CallbackTarget>, StoreError> {
        if let Some(id) = message_id {
            let row =
                sqlx::query("SELECT tenant_id, id, provider, status FROM messages WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(self.reader())
                    .await
                    .map_err(map_err)?;
            if let Some(row) = row {
                return target(&row).map(Some);
            }
        }
        let Some(pid) = provider_message_id else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT tenant_id, id, provider, status FROM messages
         WHERE provider_message_id = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(pid)
        .fetch_optional(self.reader())
        .await
        .map_err(map_err)?;
        row.as_ref().map(target).transpose()
    }

    async fn apply_callback(
        &self,
        tenant: &TenantId,
        id: MessageId,
        update: &CallbackUpdate,
        now: DateTime<Utc>,
    ) -> Result<CallbackOutcome, StoreError> {
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "SELECT status, redacted_at, channel, kind FROM messages
             WHERE tenant_id = $1 AND id = $2{FOR_UPDATE}"
        );
        let row: Option<(String, Option<i64>, String, String)> = sqlx::query_as(&sql)
            .bind(tenant.as_str())
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        let Some((status, redacted_at, channel, kind)) = row else {
            return Err(StoreError::NotFound);
        };
        let current = MessageStatus::parse(&status)
            .map_err(|e| StoreError::Internal(format!("bad message row: {e}")))?;
        let fresh = sqlx::query(
        "INSERT INTO webhook_receipts (receipt, tenant_id, message_id, at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (receipt) DO NOTHING",
    )
    .bind(&update.receipt)
    .bind(tenant.as_str())
    .bind(id.to_string())
    .bind(millis(now))
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
        if fresh.rows_affected() == 0 {
            tx.rollback().await.map_err(map_err)?;
            return Ok(CallbackOutcome::Replay);
        }
        let applied = advance(current, update.status);
        if applied {
            sqlx::query(
            "UPDATE messages SET status = $1,
               due_at = CASE WHEN $1 IN ('queued', 'sending') THEN due_at ELSE NULL END,
               provider_message_id = COALESCE($2, provider_message_id),
               price_micros = COALESCE($3, price_micros), price_currency = COALESCE($4, price_currency),
               last_error = COALESCE($5, last_error), updated_at = $6
             WHERE tenant_id = $7 AND id = $8",
        )
        .bind(update.status.as_str())
        .bind(update.provider_message_id.as_deref())
        .bind(update.price.as_ref().map(|p| p.micros))
        .bind(update.price.as_ref().map(|p| p.currency.as_str()))
        .bind(update.error.as_deref())
        .bind(millis(now))
        .bind(tenant.as_str())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        } else {
            // The status stays; facts the message lacks (a price reported late) are kept.
            sqlx::query(
                "UPDATE messages SET
               provider_message_id = COALESCE(provider_message_id, $1),
               price_micros = COALESCE(price_micros, $2),
               price_currency = COALESCE(price_currency, $3)
             WHERE tenant_id = $4 AND id = $5",
            )
            .bind(update.provider_message_id.as_deref())
            .bind(update.price.as_ref().map(|p| p.micros))
            .bind(update.price.as_ref().map(|p| p.currency.as_str()))
            .bind(tenant.as_str())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        let event = NewEvent {
            id,
            event: update.event.event.clone(),
            at: update.event.at,
            detail: update.event.detail.clone(),
        };
        insert_events(&mut tx, tenant, &[event]).await?;
        if applied {
            let change = status_change(id, &channel, &kind, current, update.status)?;
            webhooks::emit(&mut tx, tenant, &change, now).await?;
        }
        if redacted_at.is_some() {
            scrub_late_texts(&mut tx, tenant, id).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(if applied {
            CallbackOutcome::Applied
        } else {
            CallbackOutcome::Stale
        })
    }
}
