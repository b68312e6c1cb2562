//! Messages outside the queue's hot path: reads, lists with filters, the administrative
//! transitions (cancel, cancel by group, manual retry), batch status and stats.
//! Written once for both backends (see `store/sql/mod.rs`).

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{QueryBuilder, Row};

/// The event-row writer the other files share: bulk inserts differ per backend.
pub(super) use super::queue::insert_events;
use super::{audit, map_err, millis, Backend, Conn, Db};
use crate::domain::ids::{BatchId, TenantId};
use crate::domain::message::MessageId;
use crate::store::columns::from_millis;
use crate::store::columns::outbound::{
    actor_detail, assemble_stats, day_range_millis, event_from_row, message_columns,
    message_from_row, refused_move, status_counts, NewEvent, StatsGroup,
};
use crate::store::filters::push_message_filter;
use crate::store::outbound::{
    AuditEntry, BatchStatus, MessageEvent, MessageFilter, MessageRecord, MessageStats, MessageStore,
};
use crate::store::{Page, PageRequest, StoreError};

fn columns() -> String {
    message_columns("CAST(variables AS TEXT) AS variables")
}

/// Cancels the tenant's queued messages of `group`, each with a `cancelled` event of
/// `detail`; returns how many.
pub(super) async fn cancel_queued_group(
    conn: &mut Conn,
    tenant: &TenantId,
    group: &str,
    detail: &str,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let ids: Vec<String> = sqlx::query_scalar(
        "UPDATE messages SET status = 'cancelled', due_at = NULL, updated_at = $1
         WHERE tenant_id = $2 AND group_key = $3 AND status = 'queued' RETURNING id",
    )
    .bind(millis(now))
    .bind(tenant.as_str())
    .bind(group)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    record_cancelled(conn, tenant, &ids, detail, now).await
}

/// Writes a `cancelled` event of `detail` for each of the messages a guarded UPDATE
/// just cancelled (`ids`); returns how many.
pub(super) async fn record_cancelled(
    conn: &mut Conn,
    tenant: &TenantId,
    ids: &[String],
    detail: &str,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let events = ids
        .iter()
        .map(|id| {
            Ok(NewEvent {
                id: MessageId::parse(id)
                    .map_err(|e| StoreError::Internal(format!("bad message id: {e}")))?,
                event: "cancelled".to_owned(),
                at: now,
                detail: detail.to_owned(),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    insert_events(conn, tenant, &events).await?;
    Ok(ids.len() as u64)
}

/// The message's status, to tell `NotFound` from `Conflict` after a guarded UPDATE missed.
async fn status_of(
    conn: &mut Conn,
    tenant: &TenantId,
    id: MessageId,
) -> Result<Option<String>, StoreError> {
    sqlx::query_scalar("SELECT status FROM messages WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.as_str())
        .bind(id.to_string())
        .fetch_optional(conn)
        .await
        .map_err(map_err)
}

#[async_trait]
impl MessageStore for Backend {
    async fn get_message(
        &self,
        tenant: &TenantId,
        id: MessageId,
    ) -> Result<Option<MessageRecord>, StoreError> {
        let sql = format!(
            "SELECT {} FROM messages WHERE tenant_id = $1 AND id = $2",
            columns()
        );
        let row = sqlx::query(&sql)
            .bind(tenant.as_str())
            .bind(id.to_string())
            .fetch_optional(self.reader())
            .await
            .map_err(map_err)?;
        row.as_ref().map(message_from_row).transpose()
    }

    async fn message_events(
        &self,
        tenant: &TenantId,
        id: MessageId,
    ) -> Result<Vec<MessageEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT event, at, CAST(detail AS TEXT) AS detail FROM message_events
         WHERE tenant_id = $1 AND message_id = $2 ORDER BY seq",
        )
        .bind(tenant.as_str())
        .bind(id.to_string())
        .fetch_all(self.reader())
        .await
        .map_err(map_err)?;
        Ok(rows.iter().map(event_from_row).collect())
    }

    async fn list_messages(
        &self,
        tenant: &TenantId,
        filter: &MessageFilter,
        page: PageRequest,
    ) -> Result<Page<MessageRecord>, StoreError> {
        let mut qb: QueryBuilder<Db> =
            QueryBuilder::new(format!("SELECT {} FROM messages", columns()));
        push_message_filter(&mut qb, tenant, filter);
        qb.push(" AND seq < ")
            .push_bind(page.before.unwrap_or(i64::MAX))
            .push(" ORDER BY seq DESC LIMIT ")
            .push_bind(i64::from(page.limit) + 1);
        let rows = qb.build().fetch_all(self.reader()).await.map_err(map_err)?;
        let items = rows
            .iter()
            .map(message_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, page.limit, |m| m.seq))
    }

    async fn count_messages(
        &self,
        tenant: &TenantId,
        filter: &MessageFilter,
    ) -> Result<u64, StoreError> {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new("SELECT COUNT(*) FROM messages");
        push_message_filter(&mut qb, tenant, filter);
        let n: i64 = qb
            .build_query_scalar()
            .fetch_one(self.reader())
            .await
            .map_err(map_err)?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    async fn cancel_message(
        &self,
        tenant: &TenantId,
        id: MessageId,
        audit: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<MessageRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "UPDATE messages SET status = 'cancelled', due_at = NULL, updated_at = $1
         WHERE tenant_id = $2 AND id = $3 AND status = 'queued' RETURNING {}",
            columns()
        );
        let row = sqlx::query(&sql)
            .bind(millis(now))
            .bind(tenant.as_str())
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        let Some(row) = row else {
            return Err(refused_move(
                status_of(&mut tx, tenant, id).await?,
                "only a queued message can be cancelled",
            ));
        };
        let message = message_from_row(&row)?;
        let event = NewEvent {
            id,
            event: "cancelled".to_owned(),
            at: now,
            detail: actor_detail(audit),
        };
        insert_events(&mut tx, tenant, &[event]).await?;
        audit::insert(&mut tx, tenant, audit).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(message)
    }

    async fn cancel_group(
        &self,
        tenant: &TenantId,
        group_key: &str,
        audit: Option<&AuditEntry>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let detail = serde_json::json!({
            "group_key": group_key,
            "by": audit.map(|a| a.actor.as_str()),
        })
        .to_string();
        let cancelled = cancel_queued_group(&mut tx, tenant, group_key, &detail, now).await?;
        if let Some(entry) = audit {
            audit::insert(&mut tx, tenant, entry).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(cancelled)
    }

    async fn retry_message(
        &self,
        tenant: &TenantId,
        id: MessageId,
        audit: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<MessageRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "UPDATE messages SET status = 'queued', due_at = $1, failures = 0, provider = NULL,
           lease_token = NULL, lease_until = NULL, updated_at = $2
         WHERE tenant_id = $3 AND id = $4 AND status IN ('failed', 'bounced')
           AND redacted_at IS NULL RETURNING {}",
            columns()
        );
        let row = sqlx::query(&sql)
            .bind(millis(now))
            .bind(millis(now))
            .bind(tenant.as_str())
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        let Some(row) = row else {
            return Err(refused_move(
                status_of(&mut tx, tenant, id).await?,
                "only a failed or bounced message can be retried",
            ));
        };
        let message = message_from_row(&row)?;
        let event = NewEvent {
            id,
            event: "retry".to_owned(),
            at: now,
            detail: serde_json::json!({ "manual": true, "by": audit.actor }).to_string(),
        };
        insert_events(&mut tx, tenant, &[event]).await?;
        audit::insert(&mut tx, tenant, audit).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(message)
    }

    async fn batch_status(
        &self,
        tenant: &TenantId,
        id: BatchId,
    ) -> Result<Option<BatchStatus>, StoreError> {
        let Some(batch) = sqlx::query(
            "SELECT template, created_at FROM batches WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.as_str())
        .bind(id.to_string())
        .fetch_optional(self.reader())
        .await
        .map_err(map_err)?
        else {
            return Ok(None);
        };
        let rows = sqlx::query(
        "SELECT status, COUNT(*) FROM messages WHERE tenant_id = $1 AND batch_id = $2 GROUP BY status",
    )
    .bind(tenant.as_str())
    .bind(id.to_string())
    .fetch_all(self.reader())
    .await
    .map_err(map_err)?;
        let (total, by_status) = status_counts(
            rows.iter()
                .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1))),
        )?;
        Ok(Some(BatchStatus {
            id,
            template: batch.get(0),
            created_at: from_millis(batch.get(1)),
            total,
            by_status,
        }))
    }

    async fn message_stats(
        &self,
        tenant: &TenantId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<MessageStats, StoreError> {
        let (from_ms, to_ms) = day_range_millis(from, to);
        let groups = sqlx::query(
            "SELECT created_at / 86400000 AS day, status, channel, COUNT(*) AS n FROM messages
         WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3
         GROUP BY day, status, channel",
        )
        .bind(tenant.as_str())
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.reader())
        .await
        .map_err(map_err)?
        .into_iter()
        .map(|r| StatsGroup {
            day: r.get(0),
            status: r.get(1),
            channel: r.get(2),
            count: r.get(3),
        })
        .collect();
        let cost = sqlx::query(
            "SELECT channel, price_currency, CAST(SUM(price_micros) AS BIGINT) FROM messages
         WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3
           AND price_micros IS NOT NULL AND price_currency IS NOT NULL
         GROUP BY channel, price_currency",
        )
        .bind(tenant.as_str())
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.reader())
        .await
        .map_err(map_err)?
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
        assemble_stats(from, to, groups, cost)
    }

    async fn pending_messages(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages WHERE status IN ('queued', 'sending')",
        )
        .fetch_one(self.reader())
        .await
        .map_err(map_err)?;
        Ok(u64::try_from(n).unwrap_or_default())
    }
}
