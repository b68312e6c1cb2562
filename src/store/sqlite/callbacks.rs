//! Provider status callbacks on SQLite: finding the message, and applying a callback
//! (replay check, "never backwards", write, event) in one transaction.

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::messages::insert_events;
use super::phi::scrub_late_texts;
use super::{map_err, millis, SqliteStore};
use crate::domain::ids::TenantId;
use crate::domain::message::{advance, MessageId, MessageStatus};
use crate::store::columns::outbound::NewEvent;
use crate::store::outbound::{CallbackOutcome, CallbackTarget, CallbackUpdate};
use crate::store::StoreError;

fn target(row: &SqliteRow) -> Result<CallbackTarget, StoreError> {
    let bad = |e: crate::domain::Invalid| StoreError::Internal(format!("bad message row: {e}"));
    Ok(CallbackTarget {
        tenant: TenantId::parse(row.get(0)).map_err(bad)?,
        id: MessageId::parse(row.get(1)).map_err(bad)?,
        provider: row.get(2),
        status: MessageStatus::parse(row.get(3)).map_err(bad)?,
    })
}

pub(super) async fn callback_target(
    store: &SqliteStore,
    message_id: Option<MessageId>,
    provider_message_id: Option<&str>,
) -> Result<Option<CallbackTarget>, StoreError> {
    if let Some(id) = message_id {
        let row = sqlx::query("SELECT tenant_id, id, provider, status FROM messages WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&store.reader)
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
         WHERE provider_message_id = ? ORDER BY seq DESC LIMIT 1",
    )
    .bind(pid)
    .fetch_optional(&store.reader)
    .await
    .map_err(map_err)?;
    row.as_ref().map(target).transpose()
}

pub(super) async fn apply_callback(
    store: &SqliteStore,
    tenant: &TenantId,
    id: MessageId,
    update: &CallbackUpdate,
    now: DateTime<Utc>,
) -> Result<CallbackOutcome, StoreError> {
    let mut tx = store.begin_write().await?;
    let row: Option<(String, Option<i64>)> =
        sqlx::query_as("SELECT status, redacted_at FROM messages WHERE tenant_id = ? AND id = ?")
            .bind(tenant.as_str())
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
    let Some((status, redacted_at)) = row else {
        return Err(StoreError::NotFound);
    };
    let current = MessageStatus::parse(&status)
        .map_err(|e| StoreError::Internal(format!("bad message row: {e}")))?;
    let fresh = sqlx::query(
        "INSERT INTO webhook_receipts (receipt, tenant_id, message_id, at) VALUES (?, ?, ?, ?)
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
            "UPDATE messages SET status = ?,
               due_at = CASE WHEN ? IN ('queued', 'sending') THEN due_at ELSE NULL END,
               provider_message_id = COALESCE(?, provider_message_id),
               price_micros = COALESCE(?, price_micros), price_currency = COALESCE(?, price_currency),
               last_error = COALESCE(?, last_error), updated_at = ?
             WHERE tenant_id = ? AND id = ?",
        )
        .bind(update.status.as_str())
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
               provider_message_id = COALESCE(provider_message_id, ?),
               price_micros = COALESCE(price_micros, ?),
               price_currency = COALESCE(price_currency, ?)
             WHERE tenant_id = ? AND id = ?",
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
