//! Webhooks to clinic systems, written once for both backends: endpoints, the emit
//! that other writes call inside their own transaction, the leased delivery queue and
//! the log. The claim is one statement on both: `UPDATE … WHERE seq IN (SELECT … LIMIT
//! n{SKIP_LOCKED})`; on PostgreSQL the locked subquery lets nodes share the queue (a row
//! another claimer holds is skipped, one it already took is re-checked and no longer
//! due), on SQLite the single writer runs it alone.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Row};

use super::{
    found, from_millis, map_err, millis, Backend, Conn, Db, DbRow, FOR_UPDATE, SKIP_LOCKED,
};
use crate::domain::ids::TenantId;
use crate::domain::webhook::{
    status_events, DisablePolicy, DisableReason, EventType, FailureRun, SigningSecret,
};
use crate::store::webhooks::{
    AttemptNext, AttemptRecorded, AttemptResult, ClaimedDelivery, Delivery, DeliveryAttempt,
    DeliveryStatus, EndpointDraft, WebhookEndpoint, WebhookEvent, WebhookStore,
};
use crate::store::{Page, PageRequest, StoreError};

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("bad {what} row: {e}"))
}

const ENDPOINT_COLUMNS: &str = "seq, id, url, enabled, disabled_reason, consecutive_failures, \
     failing_since, created_at, updated_at";

async fn endpoint_types(
    conn: &mut Conn,
    tenant: &TenantId,
    id: &str,
) -> Result<Vec<EventType>, StoreError> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT event_type FROM webhook_endpoint_events WHERE tenant_id = $1 AND endpoint_id = $2",
    )
    .bind(tenant.as_str())
    .bind(id)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    let mut types = rows
        .iter()
        .map(|(t,)| EventType::parse("event_type", t).map_err(|e| corrupt("webhook event", e)))
        .collect::<Result<Vec<_>, _>>()?;
    types.sort();
    Ok(types)
}

fn endpoint_from_row(
    row: &DbRow,
    event_types: Vec<EventType>,
) -> Result<WebhookEndpoint, StoreError> {
    let id: String = row.get("id");
    let reason: Option<String> = row.get("disabled_reason");
    Ok(WebhookEndpoint {
        seq: row.get("seq"),
        id: id.parse().map_err(|e| corrupt("webhook endpoint", e))?,
        url: row.get("url"),
        event_types,
        enabled: row.get("enabled"),
        disabled_reason: match reason.as_deref() {
            None => None,
            Some("gone") => Some(DisableReason::Gone),
            Some("failures") => Some(DisableReason::Failures),
            Some(other) => return Err(corrupt("webhook endpoint", other)),
        },
        failed_deliveries: row.get::<i64, _>("consecutive_failures") as u32,
        failing_since: row.get::<Option<i64>, _>("failing_since").map(from_millis),
        created_at: from_millis(row.get("created_at")),
        updated_at: from_millis(row.get("updated_at")),
    })
}

async fn read_endpoint(
    conn: &mut Conn,
    tenant: &TenantId,
    id: uuid::Uuid,
) -> Result<Option<WebhookEndpoint>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant.as_str())
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let types = endpoint_types(conn, tenant, &id.to_string()).await?;
    endpoint_from_row(&row, types).map(Some)
}

async fn write_types(
    conn: &mut Conn,
    tenant: &TenantId,
    id: uuid::Uuid,
    types: &[EventType],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM webhook_endpoint_events WHERE tenant_id = $1 AND endpoint_id = $2")
        .bind(tenant.as_str())
        .bind(id.to_string())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    for t in types {
        sqlx::query(
            "INSERT INTO webhook_endpoint_events (tenant_id, endpoint_id, event_type) VALUES ($1, $2, $3)",
        )
        .bind(tenant.as_str())
        .bind(id.to_string())
        .bind(t.as_str())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    }
    Ok(())
}

/// Writes the deliveries of `event` on the caller's transaction: one per enabled
/// endpoint of the tenant listening to each of its types, all of a type sharing one
/// `webhook-id`. A tenant without such endpoints costs one indexed read.
pub(crate) async fn emit(
    conn: &mut Conn,
    tenant: &TenantId,
    event: &WebhookEvent,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let types = match event {
        WebhookEvent::MessageStatus { from, to, .. } => status_events(*from, *to),
        WebhookEvent::NotificationsRead { .. } => vec![EventType::NotificationRead],
    };
    let mut written = 0;
    for event_type in types {
        let endpoints: Vec<(String,)> = sqlx::query_as(
            "SELECT e.id FROM webhook_endpoint_events t
             JOIN webhook_endpoints e ON e.id = t.endpoint_id AND e.tenant_id = t.tenant_id
             WHERE t.tenant_id = $1 AND t.event_type = $2 AND e.enabled",
        )
        .bind(tenant.as_str())
        .bind(event_type.as_str())
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
        if endpoints.is_empty() {
            continue;
        }
        let event_id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        let payload = crate::wire::webhooks::event_body(event_type, event, now);
        for (endpoint,) in endpoints {
            sqlx::query(
                "INSERT INTO webhook_deliveries (id, tenant_id, endpoint_id, event_id, event_type,
                   payload, status, attempts, due_at, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7, $7)",
            )
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(tenant.as_str())
            .bind(endpoint)
            .bind(&event_id)
            .bind(event_type.as_str())
            .bind(&payload)
            .bind(millis(now))
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
            written += 1;
        }
    }
    Ok(written)
}

/// The event of a message's status change, from its stored columns (what the
/// queue and the callbacks read under their row lock).
pub(crate) fn status_change(
    message: crate::domain::message::MessageId,
    channel: &str,
    kind: &str,
    from: crate::domain::message::MessageStatus,
    to: crate::domain::message::MessageStatus,
) -> Result<WebhookEvent, StoreError> {
    let bad = |e: crate::domain::Invalid| corrupt("message", e);
    Ok(WebhookEvent::MessageStatus {
        message,
        channel: crate::domain::template::Channel::parse(channel).map_err(bad)?,
        kind: crate::domain::template::MessageKind::parse(kind).map_err(bad)?,
        from,
        to,
    })
}

const DELIVERY_COLUMNS: &str = "seq, id, endpoint_id, event_id, event_type, payload, status, \
     attempts, due_at, last_attempt_at, last_response_status, last_error, created_at";

fn delivery_from_row(row: &DbRow) -> Result<Delivery, StoreError> {
    let bad = |e: String| corrupt("webhook delivery", e);
    let id: String = row.get("id");
    let endpoint: String = row.get("endpoint_id");
    let status: String = row.get("status");
    Ok(Delivery {
        seq: row.get("seq"),
        id: id.parse().map_err(|e: uuid::Error| bad(e.to_string()))?,
        endpoint: endpoint
            .parse()
            .map_err(|e: uuid::Error| bad(e.to_string()))?,
        event_id: row.get("event_id"),
        event_type: row.get("event_type"),
        payload: row.get("payload"),
        status: DeliveryStatus::parse(&status).ok_or_else(|| bad(status.clone()))?,
        attempts: row.get::<i64, _>("attempts") as u32,
        due_at: row.get::<Option<i64>, _>("due_at").map(from_millis),
        last_attempt_at: row
            .get::<Option<i64>, _>("last_attempt_at")
            .map(from_millis),
        last_response_status: row
            .get::<Option<i64>, _>("last_response_status")
            .map(|s| s as u16),
        last_error: row.get("last_error"),
        created_at: from_millis(row.get("created_at")),
    })
}

#[async_trait]
impl WebhookStore for Backend {
    async fn create_endpoint(
        &self,
        tenant: &TenantId,
        id: uuid::Uuid,
        draft: &EndpointDraft,
        secret: &SigningSecret,
        now: DateTime<Utc>,
    ) -> Result<WebhookEndpoint, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, tenant_id, url, secret, enabled, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(id.to_string())
        .bind(tenant.as_str())
        .bind(&draft.url)
        .bind(secret.expose())
        .bind(draft.enabled)
        .bind(millis(now))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        write_types(&mut tx, tenant, id, &draft.event_types).await?;
        let endpoint = read_endpoint(&mut tx, tenant, id)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await.map_err(map_err)?;
        Ok(endpoint)
    }

    async fn get_endpoint(
        &self,
        tenant: &TenantId,
        id: uuid::Uuid,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        let mut conn = self.reader().acquire().await.map_err(map_err)?;
        read_endpoint(&mut conn, tenant, id).await
    }

    async fn list_endpoints(
        &self,
        tenant: &TenantId,
        page: PageRequest,
    ) -> Result<Page<WebhookEndpoint>, StoreError> {
        let mut conn = self.reader().acquire().await.map_err(map_err)?;
        let rows = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 AND seq < $2
             ORDER BY seq DESC LIMIT $3"
        ))
        .bind(tenant.as_str())
        .bind(page.before.unwrap_or(i64::MAX))
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.get("id");
            let types = endpoint_types(&mut conn, tenant, &id).await?;
            items.push(endpoint_from_row(row, types)?);
        }
        Ok(Page::from_overfetch(items, page.limit, |e| e.seq))
    }

    async fn update_endpoint(
        &self,
        tenant: &TenantId,
        id: uuid::Uuid,
        draft: &EndpointDraft,
        now: DateTime<Utc>,
    ) -> Result<WebhookEndpoint, StoreError> {
        let mut tx = self.begin_write().await?;
        // Enabling (again) starts a clean run: the failures were the old URL's or are
        // what the person enabling it just fixed.
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET url = $1, updated_at = $2,
               consecutive_failures = CASE WHEN $3 AND NOT enabled THEN 0 ELSE consecutive_failures END,
               failing_since = CASE WHEN $3 AND NOT enabled THEN NULL ELSE failing_since END,
               disabled_reason = CASE WHEN $3 THEN NULL ELSE disabled_reason END,
               enabled = $3
             WHERE tenant_id = $4 AND id = $5",
        )
        .bind(&draft.url)
        .bind(millis(now))
        .bind(draft.enabled)
        .bind(tenant.as_str())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        found(done.rows_affected())?;
        write_types(&mut tx, tenant, id, &draft.event_types).await?;
        let endpoint = read_endpoint(&mut tx, tenant, id)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await.map_err(map_err)?;
        Ok(endpoint)
    }

    async fn delete_endpoint(&self, tenant: &TenantId, id: uuid::Uuid) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        found(done.rows_affected())?;
        for sql in [
            "DELETE FROM webhook_attempts WHERE tenant_id = $1 AND delivery_id IN
               (SELECT id FROM webhook_deliveries WHERE tenant_id = $1 AND endpoint_id = $2)",
            "DELETE FROM webhook_deliveries WHERE tenant_id = $1 AND endpoint_id = $2",
            "DELETE FROM webhook_endpoint_events WHERE tenant_id = $1 AND endpoint_id = $2",
        ] {
            sqlx::query(sql)
                .bind(tenant.as_str())
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(())
    }

    async fn emit(
        &self,
        tenant: &TenantId,
        event: &WebhookEvent,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = emit(&mut tx, tenant, event, now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(n)
    }

    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let token = uuid::Uuid::new_v4();
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "UPDATE webhook_deliveries SET status = 'delivering', lease_token = $1, due_at = $2,
               window_start = COALESCE(window_start, $3), updated_at = $3
             WHERE seq IN (
               SELECT d.seq FROM webhook_deliveries d
               WHERE d.status IN ('pending', 'delivering') AND d.due_at <= $3
                 AND EXISTS (SELECT 1 FROM webhook_endpoints e
                             WHERE e.id = d.endpoint_id AND e.tenant_id = d.tenant_id AND e.enabled)
               ORDER BY d.due_at, d.seq LIMIT $4{SKIP_LOCKED})
             RETURNING {DELIVERY_COLUMNS}, tenant_id, window_start"
        );
        let rows = sqlx::query(&sql)
            .bind(token.to_string())
            .bind(millis(lease_until))
            .bind(millis(now))
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let delivery = delivery_from_row(row)?;
            let tenant = TenantId::parse(row.get::<&str, _>("tenant_id"))
                .map_err(|e| corrupt("webhook delivery", e))?;
            let (url, secret): (String, String) = sqlx::query_as(
                "SELECT url, secret FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.as_str())
            .bind(delivery.endpoint.to_string())
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
            claimed.push(ClaimedDelivery {
                tenant,
                window_start: from_millis(row.get("window_start")),
                delivery,
                url,
                secret: SigningSecret::from_stored(secret)
                    .map_err(|e| corrupt("webhook endpoint", e))?,
                lease_token: token,
            });
        }
        tx.commit().await.map_err(map_err)?;
        claimed.sort_by_key(|c| c.delivery.seq);
        Ok(claimed)
    }

    async fn finish_delivery(
        &self,
        tenant: &TenantId,
        id: uuid::Uuid,
        lease_token: uuid::Uuid,
        result: &AttemptResult,
        policy: &DisablePolicy,
    ) -> Result<AttemptRecorded, StoreError> {
        let mut tx = self.begin_write().await?;
        let row: Option<(String, i64)> = sqlx::query_as(&format!(
            "SELECT endpoint_id, attempts FROM webhook_deliveries
             WHERE tenant_id = $1 AND id = $2 AND lease_token = $3 AND status = 'delivering'{FOR_UPDATE}"
        ))
        .bind(tenant.as_str())
        .bind(id.to_string())
        .bind(lease_token.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some((endpoint, attempts)) = row else {
            return Ok(AttemptRecorded::LeaseLost);
        };
        let attempt = attempts + 1;
        let (status, due_at) = match result.next {
            AttemptNext::Succeeded => (DeliveryStatus::Succeeded, None),
            AttemptNext::RetryAt(at) => (DeliveryStatus::Pending, Some(millis(at))),
            AttemptNext::Failed { .. } => (DeliveryStatus::Failed, None),
        };
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, attempts = $2, due_at = $3, lease_token = NULL,
               last_attempt_at = $4, last_response_status = $5, last_error = $6, updated_at = $4
             WHERE tenant_id = $7 AND id = $8",
        )
        .bind(status.as_str())
        .bind(attempt)
        .bind(due_at)
        .bind(millis(result.at))
        .bind(result.response_status.map(i64::from))
        .bind(result.error.as_deref())
        .bind(tenant.as_str())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query(
            "INSERT INTO webhook_attempts (tenant_id, delivery_id, attempt, at, response_status, error, duration_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(tenant.as_str())
        .bind(id.to_string())
        .bind(attempt)
        .bind(millis(result.at))
        .bind(result.response_status.map(i64::from))
        .bind(result.error.as_deref())
        .bind(result.duration_ms as i64)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let disabled = record_run(&mut tx, tenant, &endpoint, result, policy).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(AttemptRecorded::Recorded { disabled })
    }

    async fn list_deliveries(
        &self,
        tenant: &TenantId,
        endpoint: uuid::Uuid,
        page: PageRequest,
    ) -> Result<Page<Delivery>, StoreError> {
        if self.get_endpoint(tenant, endpoint).await?.is_none() {
            return Err(StoreError::NotFound);
        }
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE tenant_id = "
        ));
        qb.push_bind(tenant.as_str())
            .push(" AND endpoint_id = ")
            .push_bind(endpoint.to_string())
            .push(" AND seq < ")
            .push_bind(page.before.unwrap_or(i64::MAX))
            .push(" ORDER BY seq DESC LIMIT ")
            .push_bind(i64::from(page.limit) + 1);
        let rows = qb.build().fetch_all(self.reader()).await.map_err(map_err)?;
        let items = rows
            .iter()
            .map(delivery_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, page.limit, |d| d.seq))
    }

    async fn get_delivery(
        &self,
        tenant: &TenantId,
        endpoint: uuid::Uuid,
        id: uuid::Uuid,
    ) -> Result<Option<(Delivery, Vec<DeliveryAttempt>)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
             WHERE tenant_id = $1 AND endpoint_id = $2 AND id = $3"
        ))
        .bind(tenant.as_str())
        .bind(endpoint.to_string())
        .bind(id.to_string())
        .fetch_optional(self.reader())
        .await
        .map_err(map_err)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let attempts: Vec<(i64, i64, Option<i64>, Option<String>, i64)> = sqlx::query_as(
            "SELECT attempt, at, response_status, error, duration_ms FROM webhook_attempts
             WHERE tenant_id = $1 AND delivery_id = $2 ORDER BY attempt",
        )
        .bind(tenant.as_str())
        .bind(id.to_string())
        .fetch_all(self.reader())
        .await
        .map_err(map_err)?;
        let attempts = attempts
            .into_iter()
            .map(|(attempt, at, status, error, ms)| DeliveryAttempt {
                attempt: attempt as u32,
                at: from_millis(at),
                response_status: status.map(|s| s as u16),
                error,
                duration_ms: ms.max(0) as u64,
            })
            .collect();
        Ok(Some((delivery_from_row(&row)?, attempts)))
    }

    async fn replay_delivery(
        &self,
        tenant: &TenantId,
        endpoint: uuid::Uuid,
        id: uuid::Uuid,
        now: DateTime<Utc>,
    ) -> Result<Delivery, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "UPDATE webhook_deliveries SET status = 'pending', due_at = $1, window_start = NULL,
               updated_at = $1
             WHERE tenant_id = $2 AND endpoint_id = $3 AND id = $4
               AND status IN ('succeeded', 'failed')
             RETURNING {DELIVERY_COLUMNS}"
        ))
        .bind(millis(now))
        .bind(tenant.as_str())
        .bind(endpoint.to_string())
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(row) = row else {
            let exists = sqlx::query(
                "SELECT 1 FROM webhook_deliveries WHERE tenant_id = $1 AND endpoint_id = $2 AND id = $3",
            )
            .bind(tenant.as_str())
            .bind(endpoint.to_string())
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
            return Err(match exists {
                Some(_) => StoreError::Conflict("the delivery is not settled yet".into()),
                None => StoreError::NotFound,
            });
        };
        let delivery = delivery_from_row(&row)?;
        tx.commit().await.map_err(map_err)?;
        Ok(delivery)
    }

    async fn pending_deliveries(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM webhook_deliveries d
             WHERE d.status IN ('pending', 'delivering')
               AND EXISTS (SELECT 1 FROM webhook_endpoints e
                           WHERE e.id = d.endpoint_id AND e.tenant_id = d.tenant_id AND e.enabled)",
        )
        .fetch_one(self.reader())
        .await
        .map_err(map_err)?;
        Ok(n.max(0) as u64)
    }
}

/// The endpoint's run of failures after this attempt, and whether it disables it; the
/// endpoint row is locked on PostgreSQL, so two workers' results apply one after the other.
async fn record_run(
    conn: &mut Conn,
    tenant: &TenantId,
    endpoint: &str,
    result: &AttemptResult,
    policy: &DisablePolicy,
) -> Result<Option<DisableReason>, StoreError> {
    let row: Option<(bool, i64, Option<i64>)> = sqlx::query_as(&format!(
        "SELECT enabled, consecutive_failures, failing_since FROM webhook_endpoints
         WHERE tenant_id = $1 AND id = $2{FOR_UPDATE}"
    ))
    .bind(tenant.as_str())
    .bind(endpoint)
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?;
    let Some((enabled, failed, since)) = row else {
        return Ok(None);
    };
    let (run, gone) = match result.next {
        AttemptNext::Succeeded => (
            FailureRun {
                failed_deliveries: 0,
                failing_since: None,
            },
            false,
        ),
        AttemptNext::RetryAt(_) => (
            FailureRun {
                failed_deliveries: failed as u32,
                failing_since: Some(since.map_or(result.at, from_millis)),
            },
            false,
        ),
        AttemptNext::Failed { gone } => (
            FailureRun {
                failed_deliveries: failed as u32 + 1,
                failing_since: Some(since.map_or(result.at, from_millis)),
            },
            gone,
        ),
    };
    let disable = match result.next {
        AttemptNext::Succeeded => None,
        _ if enabled => policy.decide(run, gone, result.at),
        _ => None,
    };
    let unchanged = disable.is_none()
        && i64::from(run.failed_deliveries) == failed
        && run.failing_since.map(millis) == since;
    if unchanged {
        // The common case (a success on a healthy endpoint): no write, so deliveries to
        // one busy endpoint do not queue on its row.
        return Ok(None);
    }
    sqlx::query(
        "UPDATE webhook_endpoints SET consecutive_failures = $1, failing_since = $2,
           enabled = CASE WHEN $3 THEN false ELSE enabled END,
           disabled_reason = CASE WHEN $3 THEN $4 ELSE disabled_reason END,
           updated_at = CASE WHEN $3 THEN $5 ELSE updated_at END
         WHERE tenant_id = $6 AND id = $7",
    )
    .bind(i64::from(run.failed_deliveries))
    .bind(run.failing_since.map(millis))
    .bind(disable.is_some())
    .bind(disable.map(DisableReason::as_str))
    .bind(millis(result.at))
    .bind(tenant.as_str())
    .bind(endpoint)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(disable)
}
