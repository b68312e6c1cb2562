//! Notifications on SQLite: the group commit, the inbox reads and writes, retention.
//!
//! Why this file is SQLite's own (`postgres/notifications.rs` is the other): ids stay in
//! commit order because the single writer connection assigns them inside its
//! transaction (PostgreSQL needs a per-tenant lock for that), and bulk writes are
//! chunked multi-row statements (SQLite has no arrays to UNNEST). Nothing in
//! `store/sql/` depends on this file's internals, so this hot path may leave sqlx.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

use super::{map_err, millis, placeholders, SqliteStore, IN_CHUNK};
use crate::domain::ids::{NotificationId, TenantId, UserId};
use crate::domain::notification::{Notification, UnreadCount};
use crate::domain::preferences::StaffPreferences;
use crate::store::columns::prefs_from_columns;
use crate::store::notification_ids::IdBlocks;
use crate::store::{
    InboxFilter, NotificationStore, Page, PageRequest, PublishOutcome, PublishRequest, ReadOutcome,
    StoreError,
};

const COLUMNS: &str =
    "seq, tenant_id, user_id, title, message, type, category, related_type, related_id, \
                       link, data, silent, read_at, created_at, updated_at";
/// Rows per multi-row INSERT: 15 parameters each, far below SQLite's parameter limit.
const INSERT_CHUNK: usize = 200;
const PUBLISH_SCOPE: &str = "publish";

type UserKey = (TenantId, UserId);

fn corrupt(what: &str) -> impl Fn(crate::domain::Invalid) -> StoreError + '_ {
    move |e| StoreError::Internal(format!("bad {what} row: {e}"))
}

fn notification_from_row(row: &SqliteRow) -> Result<Notification, StoreError> {
    crate::store::columns::notification_from_row(row, row.get::<i64, _>("silent") != 0)
}

/// Loads the preferences of the given users; users without a row have none.
async fn load_preferences(
    tx: &mut Transaction<'_, Sqlite>,
    tenant: &TenantId,
    users: &[UserId],
) -> Result<HashMap<UserId, StaffPreferences>, StoreError> {
    let mut out = HashMap::new();
    for chunk in users.chunks(IN_CHUNK) {
        let sql = format!(
            "SELECT user_id, muted_categories, quiet_start, quiet_end, quiet_tz FROM staff_preferences
             WHERE tenant_id = ? AND user_id IN ({})",
            placeholders(chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(tenant.as_str());
        for u in chunk {
            q = q.bind(u.as_str());
        }
        for row in q.fetch_all(&mut **tx).await.map_err(map_err)? {
            let user = UserId::parse(row.get(0)).map_err(corrupt("preferences"))?;
            out.insert(
                user,
                prefs_from_columns(row.get(1), row.get(2), row.get(3), row.get(4))?,
            );
        }
    }
    Ok(out)
}

async fn insert_rows(
    tx: &mut Transaction<'_, Sqlite>,
    rows: &[Notification],
) -> Result<(), StoreError> {
    for chunk in rows.chunks(INSERT_CHUNK) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO notifications (seq, tenant_id, user_id, title, message, type, category, related_type, \
             related_id, link, data, silent, read_at, created_at, updated_at) ",
        );
        qb.push_values(chunk, |mut b, n| {
            let c = &n.content;
            b.push_bind(n.id.seq())
                .push_bind(n.tenant.as_str())
                .push_bind(n.user.as_str())
                .push_bind(c.title.as_str())
                .push_bind(c.message.as_str())
                .push_bind(c.kind.as_str())
                .push_bind(c.category.as_deref())
                .push_bind(c.related.as_ref().map(|r| r.kind.as_str()))
                .push_bind(c.related.as_ref().map(|r| r.id.as_str()))
                .push_bind(c.link.as_deref())
                .push_bind(c.data.as_str())
                .push_bind(i64::from(n.silent))
                .push_bind(None::<i64>)
                .push_bind(millis(n.created_at))
                .push_bind(millis(n.updated_at));
        });
        qb.build().execute(&mut **tx).await.map_err(map_err)?;
    }
    Ok(())
}

/// Reserves the batch's ids from each tenant's counter, in one statement (it replaces
/// reading `sqlite_sequence`, so per-tenant ids cost no extra round trip). Each tenant
/// gets as many ids as its requests name recipients: idempotent replays are only known
/// later, and [`give_back_unused`] returns what they did not use.
async fn reserve_ids(
    tx: &mut Transaction<'_, Sqlite>,
    batch: &[PublishRequest],
) -> Result<IdBlocks, StoreError> {
    let mut wanted: HashMap<&TenantId, i64> = HashMap::new();
    for req in batch.iter().filter(|r| !r.recipients.is_empty()) {
        *wanted.entry(&req.tenant).or_default() += req.recipients.len() as i64;
    }
    let wanted: Vec<(&TenantId, i64)> = wanted.into_iter().collect();
    let mut blocks = IdBlocks::default();
    for chunk in wanted.chunks(IN_CHUNK) {
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO notification_counters (tenant_id, last_seq) ");
        qb.push_values(chunk, |mut b, (tenant, n)| {
            b.push_bind(tenant.as_str()).push_bind(*n);
        });
        qb.push(
            " ON CONFLICT (tenant_id) DO UPDATE SET last_seq = last_seq + excluded.last_seq
             RETURNING tenant_id, last_seq",
        );
        let reserved: HashMap<String, i64> = qb
            .build()
            .fetch_all(&mut **tx)
            .await
            .map_err(map_err)?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        for (tenant, n) in chunk {
            let last = reserved.get(tenant.as_str()).ok_or_else(|| {
                StoreError::Internal(format!("no id counter returned for {tenant}"))
            })?;
            blocks.add((*tenant).clone(), *last, *n);
        }
    }
    Ok(blocks)
}

/// Returns the ids a batch reserved but did not use (its replays' share), so a tenant's
/// ids stay gapless. Rare: only batches with an idempotent replay or a reused key.
async fn give_back_unused(
    tx: &mut Transaction<'_, Sqlite>,
    ids: &IdBlocks,
) -> Result<(), StoreError> {
    for (tenant, n) in ids.unused() {
        sqlx::query("UPDATE notification_counters SET last_seq = last_seq - ? WHERE tenant_id = ?")
            .bind(n)
            .bind(tenant.as_str())
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

/// Adds `delta` to each user's counter and bumps its version; returns the new counts.
async fn bump_counters(
    tx: &mut Transaction<'_, Sqlite>,
    deltas: &[(UserKey, (i64, i64))],
) -> Result<HashMap<(TenantId, UserId), UnreadCount>, StoreError> {
    let mut out = HashMap::with_capacity(deltas.len());
    for chunk in deltas.chunks(IN_CHUNK) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO unread_counters (tenant_id, user_id, unread, version, head) ",
        );
        qb.push_values(chunk, |mut b, ((t, u), (d, head))| {
            b.push_bind(t.as_str())
                .push_bind(u.as_str())
                .push_bind(*d)
                .push_bind(1_i64)
                .push_bind(*head);
        });
        qb.push(
            " ON CONFLICT (tenant_id, user_id) DO UPDATE SET
               unread = MAX(0, unread + excluded.unread), version = version + 1,
               head = MAX(head, excluded.head)
             RETURNING tenant_id, user_id, unread, version, head",
        );
        for row in qb.build().fetch_all(&mut **tx).await.map_err(map_err)? {
            let key = (
                TenantId::parse(row.get(0)).map_err(corrupt("counter"))?,
                UserId::parse(row.get(1)).map_err(corrupt("counter"))?,
            );
            out.insert(
                key,
                UnreadCount {
                    unread: row.get(2),
                    version: row.get(3),
                    head: row.get(4),
                },
            );
        }
    }
    Ok(out)
}

/// Subtracts `n` from one user's counter (or sets it to zero) and bumps its version.
async fn lower_counter(
    tx: &mut Transaction<'_, Sqlite>,
    tenant: &TenantId,
    user: &UserId,
    change: CounterChange,
) -> Result<UnreadCount, StoreError> {
    let (set_zero, n) = match change {
        CounterChange::Minus(n) => (0_i64, n),
        CounterChange::Zero => (1_i64, 0),
    };
    let row = sqlx::query(
        "INSERT INTO unread_counters (tenant_id, user_id, unread, version, head) VALUES (?, ?, 0, 1, 0)
         ON CONFLICT (tenant_id, user_id) DO UPDATE SET
           unread = CASE WHEN ? THEN 0 ELSE MAX(0, unread - ?) END, version = version + 1
         RETURNING unread, version, head",
    )
    .bind(tenant.as_str())
    .bind(user.as_str())
    .bind(set_zero)
    .bind(n)
    .fetch_one(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(UnreadCount {
        unread: row.get(0),
        version: row.get(1),
        head: row.get(2),
    })
}

enum CounterChange {
    Minus(i64),
    Zero,
}

impl SqliteStore {
    async fn read_counter(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<UnreadCount, StoreError> {
        let row = sqlx::query(
            "SELECT unread, version, head FROM unread_counters WHERE tenant_id = ? AND user_id = ?",
        )
        .bind(tenant.as_str())
        .bind(user.as_str())
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?;
        Ok(row
            .map(|r| UnreadCount {
                unread: r.get(0),
                version: r.get(1),
                head: r.get(2),
            })
            .unwrap_or_default())
    }
}

/// A publish batch on the caller's write transaction (the group commit, and a
/// clinic event's notifications inside its own transaction). Must run on the
/// writer connection: the seq assignment below relies on it being the only writer.
pub(super) async fn insert_batch_in(
    tx: &mut Transaction<'_, Sqlite>,
    batch: &[PublishRequest],
) -> Result<Vec<PublishOutcome>, StoreError> {
    {
        // The single writer connection makes this reserve-then-assign race free: ids are
        // handed out in commit order, which is what resume (`since`) relies on.
        let mut ids = reserve_ids(tx, batch).await?;

        // Recipients' preferences decide `silent`: one query per tenant for the whole
        // batch (each statement is a round trip to the database thread).
        let mut recipients: HashMap<&TenantId, HashSet<&UserId>> = HashMap::new();
        for req in batch {
            recipients
                .entry(&req.tenant)
                .or_default()
                .extend(req.recipients.iter());
        }
        let mut prefs: HashMap<UserKey, StaffPreferences> = HashMap::new();
        for (tenant, users) in recipients {
            let users: Vec<UserId> = users.into_iter().cloned().collect();
            for (user, p) in load_preferences(tx, tenant, &users).await? {
                prefs.insert((tenant.clone(), user), p);
            }
        }

        let mut outcomes = Vec::with_capacity(batch.len());
        let mut rows: Vec<Notification> = Vec::new();
        // Per user: (new unread, newest seq) over the whole batch.
        let mut deltas: HashMap<(TenantId, UserId), (i64, i64)> = HashMap::new();
        for req in batch {
            if let Some(claim) = &req.idempotency {
                let existing = sqlx::query(
                    "SELECT request_hash, result FROM idempotency_keys WHERE tenant_id = ? AND scope = ? AND key = ?",
                )
                .bind(req.tenant.as_str())
                .bind(PUBLISH_SCOPE)
                .bind(&claim.key)
                .fetch_optional(&mut **tx)
                .await
                .map_err(map_err)?;
                if let Some(row) = existing {
                    let hash: String = row.get(0);
                    outcomes.push(if hash == claim.request_hash {
                        PublishOutcome::Replayed {
                            created: decode_created(row.get(1))?,
                        }
                    } else {
                        PublishOutcome::KeyReused
                    });
                    continue;
                }
            }
            let first = rows.len();
            for user in &req.recipients {
                let seq = ids.next(&req.tenant)?;
                let silent = prefs
                    .get(&(req.tenant.clone(), user.clone()))
                    .is_some_and(|p| p.silences(req.content.category.as_deref(), req.now));
                let delta = deltas
                    .entry((req.tenant.clone(), user.clone()))
                    .or_default();
                delta.0 += 1;
                delta.1 = seq;
                rows.push(Notification {
                    id: NotificationId::from_seq(seq),
                    tenant: req.tenant.clone(),
                    user: user.clone(),
                    content: req.content.clone(),
                    read_at: None,
                    created_at: req.now,
                    updated_at: req.now,
                    silent,
                });
            }
            if let Some(claim) = &req.idempotency {
                let created: Vec<(i64, &str)> = rows[first..]
                    .iter()
                    .map(|n| (n.id.seq(), n.user.as_str()))
                    .collect();
                sqlx::query(
                    "INSERT INTO idempotency_keys (tenant_id, scope, key, request_hash, result, created_at)
                     VALUES (?, ?, ?, ?, ?, ?)",
                )
                .bind(req.tenant.as_str())
                .bind(PUBLISH_SCOPE)
                .bind(&claim.key)
                .bind(&claim.request_hash)
                .bind(serde_json::to_string(&created).map_err(|e| StoreError::Internal(e.to_string()))?)
                .bind(millis(req.now))
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
            }
            // Placeholder outcome: filled in below once the rows and counters exist.
            outcomes.push(PublishOutcome::Created {
                notifications: Vec::new(),
                counts: Vec::new(),
            });
        }
        give_back_unused(tx, &ids).await?;
        insert_rows(tx, &rows).await?;
        let deltas: Vec<_> = deltas.into_iter().collect();
        let counts = bump_counters(tx, &deltas).await?;

        // Hand each created outcome its rows, in request order.
        let mut rows = rows.into_iter().peekable();
        for (req, outcome) in batch.iter().zip(outcomes.iter_mut()) {
            if let PublishOutcome::Created {
                notifications,
                counts: per_user,
            } = outcome
            {
                notifications.extend(rows.by_ref().take(req.recipients.len()));
                per_user.extend(notifications.iter().filter_map(|n| {
                    counts
                        .get(&(n.tenant.clone(), n.user.clone()))
                        .map(|c| (n.user.clone(), *c))
                }));
            }
        }
        Ok(outcomes)
    }
}

#[async_trait]
impl NotificationStore for SqliteStore {
    async fn insert_batch(
        &self,
        batch: &[PublishRequest],
    ) -> Result<Vec<PublishOutcome>, StoreError> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        let outcomes = insert_batch_in(&mut tx, batch).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(outcomes)
    }

    async fn list(
        &self,
        tenant: &TenantId,
        user: &UserId,
        filter: InboxFilter,
        page: PageRequest,
    ) -> Result<Page<Notification>, StoreError> {
        let unread_only = if filter == InboxFilter::Unread {
            " AND read_at IS NULL"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM notifications
             WHERE tenant_id = ? AND user_id = ? AND archived_at IS NULL AND seq < ?{unread_only}
             ORDER BY seq DESC LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant.as_str())
            .bind(user.as_str())
            .bind(page.before.unwrap_or(i64::MAX))
            .bind(i64::from(page.limit) + 1)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        let items = rows
            .iter()
            .map(notification_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, page.limit, |n| n.id.seq()))
    }

    async fn replay_after(
        &self,
        tenant: &TenantId,
        user: &UserId,
        after: NotificationId,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM notifications
             WHERE tenant_id = ? AND user_id = ? AND seq > ? AND archived_at IS NULL AND silent = 0
             ORDER BY seq ASC LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant.as_str())
            .bind(user.as_str())
            .bind(after.seq())
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.iter().map(notification_from_row).collect()
    }

    async fn unread_count(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<UnreadCount, StoreError> {
        self.read_counter(tenant, user).await
    }

    async fn mark_read(
        &self,
        tenant: &TenantId,
        user: &UserId,
        ids: &[NotificationId],
        at: DateTime<Utc>,
    ) -> Result<ReadOutcome, StoreError> {
        if ids.is_empty() {
            return Ok(ReadOutcome {
                changed: Vec::new(),
                count: self.read_counter(tenant, user).await?,
            });
        }
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        let mut changed = Vec::new();
        for chunk in ids.chunks(IN_CHUNK) {
            let sql = format!(
                "UPDATE notifications SET read_at = ?, updated_at = ?
                 WHERE tenant_id = ? AND user_id = ? AND read_at IS NULL AND archived_at IS NULL
                   AND seq IN ({}) RETURNING seq",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query_scalar::<_, i64>(&sql)
                .bind(millis(at))
                .bind(millis(at))
                .bind(tenant.as_str())
                .bind(user.as_str());
            for id in chunk {
                q = q.bind(id.seq());
            }
            changed.extend(
                q.fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .into_iter()
                    .map(NotificationId::from_seq),
            );
        }
        let count = if changed.is_empty() {
            tx.commit().await.map_err(map_err)?;
            return Ok(ReadOutcome {
                changed,
                count: self.read_counter(tenant, user).await?,
            });
        } else {
            lower_counter(
                &mut tx,
                tenant,
                user,
                CounterChange::Minus(changed.len() as i64),
            )
            .await?
        };
        tx.commit().await.map_err(map_err)?;
        changed.sort();
        Ok(ReadOutcome { changed, count })
    }

    async fn owns(
        &self,
        tenant: &TenantId,
        user: &UserId,
        id: NotificationId,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 FROM notifications WHERE tenant_id = ? AND user_id = ? AND seq = ? AND archived_at IS NULL",
        )
        .bind(tenant.as_str())
        .bind(user.as_str())
        .bind(id.seq())
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?;
        Ok(row.is_some())
    }

    async fn mark_all_read(
        &self,
        tenant: &TenantId,
        user: &UserId,
        at: DateTime<Utc>,
    ) -> Result<ReadOutcome, StoreError> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        let done = sqlx::query(
            "UPDATE notifications SET read_at = ?, updated_at = ?
             WHERE tenant_id = ? AND user_id = ? AND read_at IS NULL AND archived_at IS NULL",
        )
        .bind(millis(at))
        .bind(millis(at))
        .bind(tenant.as_str())
        .bind(user.as_str())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            tx.commit().await.map_err(map_err)?;
            return Ok(ReadOutcome {
                changed: Vec::new(),
                count: self.read_counter(tenant, user).await?,
            });
        }
        let count = lower_counter(&mut tx, tenant, user, CounterChange::Zero).await?;
        tx.commit().await.map_err(map_err)?;
        // `changed` stays empty: the `read_all` event names no ids, and a user may have thousands.
        Ok(ReadOutcome {
            changed: Vec::new(),
            count,
        })
    }

    async fn archive(
        &self,
        tenant: &TenantId,
        user: &UserId,
        id: NotificationId,
        at: DateTime<Utc>,
    ) -> Result<UnreadCount, StoreError> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        let row = sqlx::query(
            "UPDATE notifications SET archived_at = ?, updated_at = ?
             WHERE tenant_id = ? AND user_id = ? AND seq = ? AND archived_at IS NULL
             RETURNING read_at",
        )
        .bind(millis(at))
        .bind(millis(at))
        .bind(tenant.as_str())
        .bind(user.as_str())
        .bind(id.seq())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(row) = row else {
            return Err(StoreError::NotFound);
        };
        let was_unread = row.get::<Option<i64>, _>(0).is_none();
        let count = if was_unread {
            lower_counter(&mut tx, tenant, user, CounterChange::Minus(1)).await?
        } else {
            tx.commit().await.map_err(map_err)?;
            return self.read_counter(tenant, user).await;
        };
        tx.commit().await.map_err(map_err)?;
        Ok(count)
    }

    async fn purge_before(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        let done = sqlx::query(
            // By (tenant, seq): a seq alone names one notification of every tenant.
            "DELETE FROM notifications WHERE (tenant_id, seq) IN (
               SELECT tenant_id, seq FROM notifications
               WHERE (read_at IS NOT NULL OR archived_at IS NOT NULL) AND created_at < ? LIMIT ?)",
        )
        .bind(millis(cutoff))
        .bind(i64::from(limit))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ?")
            .bind(millis(cutoff))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        // The outbound sends' idempotency records age out with the same retention.
        sqlx::query("DELETE FROM outbound_idempotency WHERE created_at < ?")
            .bind(millis(cutoff))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(done.rows_affected())
    }
}

fn decode_created(raw: String) -> Result<Vec<(NotificationId, UserId)>, StoreError> {
    let pairs: Vec<(i64, String)> = serde_json::from_str(&raw)
        .map_err(|e| StoreError::Internal(format!("bad idempotency record: {e}")))?;
    pairs
        .into_iter()
        .map(|(seq, user)| {
            Ok((
                NotificationId::from_seq(seq),
                UserId::parse(&user).map_err(corrupt("idempotency"))?,
            ))
        })
        .collect()
}
