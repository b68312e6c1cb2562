//! Notifications on SQLite: the group commit, the inbox reads and writes, retention.
//!
//! Why this file is SQLite's own (`postgres/notifications.rs` is the other): ids stay in
//! commit order because there is one writer at a time (the writer's turn, `writer.rs`),
//! which assigns them inside its transaction (PostgreSQL needs a per-tenant lock for
//! that). A publish batch runs whole on the writer thread ([`publish_batch`]); a clinic
//! event's notifications run the same steps inside the event's sqlx transaction
//! ([`insert_batch_in`]). Both read what [`Reads`] lists, let [`plan`] decide every row,
//! and write the [`Plan`], with the same statements.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::sql::escalations::{acknowledge_read, purge_ended};
use super::{map_err, millis, placeholders, rusqlite_err, SqliteStore, IN_CHUNK};
use crate::domain::ids::{NotificationId, TenantId, UserId};
use crate::domain::notification::{Notification, UnreadCount};
use crate::domain::preferences::StaffPreferences;
use crate::store::columns::{prefs_from_columns, NOTIFICATION_COLUMNS};
use crate::store::notification_ids::{escalations_for, rows_for, IdBlocks, NewEscalation, UserKey};
use crate::store::{
    InboxFilter, NotificationStore, Page, PageRequest, PublishOutcome, PublishRequest, ReadOutcome,
    StoreError,
};

const PUBLISH_SCOPE: &str = "publish";

// The statements of a publish batch, one row each: on the writer thread a statement is a
// function call, not a round trip, so prepared single-row statements beat building
// multi-row ones.
/// Reserves `?2` ids from the tenant's counter; returns the counter after it.
const RESERVE_IDS: &str = "INSERT INTO notification_counters (tenant_id, last_seq) VALUES (?1, ?2)
     ON CONFLICT (tenant_id) DO UPDATE SET last_seq = last_seq + excluded.last_seq
     RETURNING last_seq";
/// Returns ids reserved but not used (an idempotent replay's), so ids stay gapless.
const GIVE_BACK_IDS: &str =
    "UPDATE notification_counters SET last_seq = last_seq - ?2 WHERE tenant_id = ?1";
const PREFERENCES: &str =
    "SELECT muted_categories, quiet_start, quiet_end, quiet_tz FROM staff_preferences
     WHERE tenant_id = ?1 AND user_id = ?2";
const FIND_CLAIM: &str = "SELECT request_hash, result FROM idempotency_keys
     WHERE tenant_id = ?1 AND scope = ?2 AND key = ?3";
const INSERT_CLAIM: &str = "INSERT INTO idempotency_keys
     (tenant_id, scope, key, request_hash, result, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
const INSERT_ROW: &str = "INSERT INTO notifications (seq, tenant_id, user_id, title, message, type,
     category, related_type, related_id, link, data, silent, read_at, created_at, updated_at,
     priority, chain_seq, escalated_from)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, NULL, ?13, ?13, ?14, ?15, ?16)";
/// One escalation step of a publish with `escalate` (none otherwise).
const INSERT_ESCALATION: &str = "INSERT INTO escalations
     (tenant_id, chain_seq, step, due_at, to_user, to_role) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
/// Adds `?3` unread to the user's counter, bumps its version; returns the counter.
const BUMP_COUNTER: &str =
    "INSERT INTO unread_counters (tenant_id, user_id, unread, version, head) VALUES (?1, ?2, ?3, 1, ?4)
     ON CONFLICT (tenant_id, user_id) DO UPDATE SET
       unread = MAX(0, unread + excluded.unread), version = version + 1,
       head = MAX(head, excluded.head)
     RETURNING unread, version, head";

fn corrupt(what: &str) -> impl Fn(crate::domain::Invalid) -> StoreError + '_ {
    move |e| StoreError::Internal(format!("bad {what} row: {e}"))
}

/// Every column a notification is read with.
fn columns() -> String {
    format!("{NOTIFICATION_COLUMNS}, silent")
}

fn notification_from_row(row: &SqliteRow) -> Result<Notification, StoreError> {
    crate::store::columns::notification_from_row(row, row.get::<i64, _>("silent") != 0)
}

/// What a batch reads before it decides anything.
#[derive(Default)]
struct Reads {
    ids: IdBlocks,
    prefs: HashMap<UserKey, StaffPreferences>,
    /// Per request, the stored claim of its idempotency key: (request hash, result).
    claims: Vec<Option<(String, String)>>,
}

/// Per tenant, the ids the batch may use: one per recipient (replays are only known
/// later; [`Plan::unused`] gives their share back).
fn wanted_ids(batch: &[PublishRequest]) -> HashMap<&TenantId, i64> {
    let mut wanted: HashMap<&TenantId, i64> = HashMap::new();
    for req in batch.iter().filter(|r| !r.recipients.is_empty()) {
        *wanted.entry(&req.tenant).or_default() += req.recipients.len() as i64;
    }
    wanted
}

/// Every (tenant, user) the batch names once: their preferences decide `silent`.
fn recipients(batch: &[PublishRequest]) -> HashSet<(&TenantId, &UserId)> {
    batch
        .iter()
        .flat_map(|r| r.recipients.iter().map(move |u| (&r.tenant, u)))
        .collect()
}

/// An idempotency key to record with the ids it created.
struct Claim<'a> {
    req: &'a PublishRequest,
    key: &'a str,
    hash: &'a str,
    result: String,
}

/// What a batch writes, decided from its [`Reads`].
struct Plan<'a> {
    rows: Vec<Notification>,
    escalations: Vec<NewEscalation>,
    claims: Vec<Claim<'a>>,
    /// Per user: (new unread, newest seq) over the whole batch.
    deltas: Vec<(UserKey, (i64, i64))>,
    /// In request order; `Created` ones get their rows and counts in [`Plan::finish`].
    outcomes: Vec<PublishOutcome>,
    unused: Vec<(TenantId, i64)>,
}

/// Decides every row of a batch: ids in request order, `silent` from preferences, and
/// each idempotency key's outcome, including a key claimed earlier in the same batch.
fn plan<'a>(batch: &'a [PublishRequest], reads: Reads) -> Result<Plan<'a>, StoreError> {
    let Reads {
        mut ids,
        prefs,
        claims: stored,
    } = reads;
    let mut rows: Vec<Notification> = Vec::new();
    let mut escalations = Vec::new();
    let mut claims: Vec<Claim<'a>> = Vec::new();
    let mut deltas: HashMap<UserKey, (i64, i64)> = HashMap::new();
    let mut outcomes = Vec::with_capacity(batch.len());
    for (req, stored) in batch.iter().zip(stored) {
        if let Some(claim) = &req.idempotency {
            let earlier = claims
                .iter()
                .find(|c| c.req.tenant == req.tenant && c.key == claim.key)
                .map(|c| (c.hash.to_owned(), c.result.clone()));
            if let Some((hash, result)) = stored.or(earlier) {
                outcomes.push(if hash == claim.request_hash {
                    PublishOutcome::Replayed {
                        created: decode_created(result)?,
                    }
                } else {
                    PublishOutcome::KeyReused
                });
                continue;
            }
        }
        let first = rows.len();
        rows.extend(rows_for(req, &mut ids, &prefs, &mut deltas)?);
        escalations.extend(escalations_for(req, &rows[first..]));
        if let Some(claim) = &req.idempotency {
            let created: Vec<(i64, &str)> = rows[first..]
                .iter()
                .map(|n| (n.id.seq(), n.user.as_str()))
                .collect();
            claims.push(Claim {
                req,
                key: &claim.key,
                hash: &claim.request_hash,
                result: serde_json::to_string(&created)
                    .map_err(|e| StoreError::Internal(e.to_string()))?,
            });
        }
        outcomes.push(PublishOutcome::Created {
            notifications: Vec::new(),
            counts: Vec::new(),
        });
    }
    let unused = ids.unused().map(|(t, n)| (t.clone(), n)).collect();
    Ok(Plan {
        rows,
        escalations,
        claims,
        deltas: deltas.into_iter().collect(),
        outcomes,
        unused,
    })
}

impl Plan<'_> {
    /// Hands each created outcome its rows, in request order, and its users' counts.
    fn finish(
        self,
        batch: &[PublishRequest],
        counts: HashMap<UserKey, UnreadCount>,
    ) -> Vec<PublishOutcome> {
        let mut outcomes = self.outcomes;
        let mut rows = self.rows.into_iter();
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
        outcomes
    }
}

/// A publish batch in one transaction on the writer thread (the group commit).
pub(super) fn publish_batch(
    conn: &mut rusqlite::Connection,
    batch: &[PublishRequest],
) -> Result<Vec<PublishOutcome>, StoreError> {
    use rusqlite::params;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(rusqlite_err)?;
    let mut reads = Reads::default();
    {
        let mut reserve = tx.prepare_cached(RESERVE_IDS).map_err(rusqlite_err)?;
        for (tenant, n) in wanted_ids(batch) {
            let last: i64 = reserve
                .query_row(params![tenant.as_str(), n], |r| r.get(0))
                .map_err(rusqlite_err)?;
            reads.ids.add(tenant.clone(), last, n);
        }
        let mut prefs = tx.prepare_cached(PREFERENCES).map_err(rusqlite_err)?;
        for (tenant, user) in recipients(batch) {
            let found = prefs
                .query_row(params![tenant.as_str(), user.as_str()], |r| {
                    let muted: String = r.get(0)?;
                    Ok(prefs_from_columns(&muted, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()
                .map_err(rusqlite_err)?
                .transpose()?;
            if let Some(p) = found {
                reads.prefs.insert((tenant.clone(), user.clone()), p);
            }
        }
        let mut find = tx.prepare_cached(FIND_CLAIM).map_err(rusqlite_err)?;
        for req in batch {
            let stored = match &req.idempotency {
                Some(c) => find
                    .query_row(params![req.tenant.as_str(), PUBLISH_SCOPE, c.key], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .optional()
                    .map_err(rusqlite_err)?,
                None => None,
            };
            reads.claims.push(stored);
        }
    }
    let plan = plan(batch, reads)?;
    let mut counts = HashMap::with_capacity(plan.deltas.len());
    {
        let mut give_back = tx.prepare_cached(GIVE_BACK_IDS).map_err(rusqlite_err)?;
        for (tenant, n) in &plan.unused {
            give_back
                .execute(params![tenant.as_str(), n])
                .map_err(rusqlite_err)?;
        }
        let mut insert = tx.prepare_cached(INSERT_ROW).map_err(rusqlite_err)?;
        for n in &plan.rows {
            let c = &n.content;
            insert
                .execute(params![
                    n.id.seq(),
                    n.tenant.as_str(),
                    n.user.as_str(),
                    c.title,
                    c.message,
                    c.kind.as_str(),
                    c.category,
                    c.related.as_ref().map(|r| r.kind.as_str()),
                    c.related.as_ref().map(|r| r.id.as_str()),
                    c.link,
                    c.data.as_str(),
                    i64::from(n.silent),
                    millis(n.created_at),
                    c.priority.code(),
                    n.chain.map(|id| id.seq()),
                    n.escalated_from.map(|id| id.seq()),
                ])
                .map_err(rusqlite_err)?;
        }
        if !plan.escalations.is_empty() {
            let mut escalate = tx.prepare_cached(INSERT_ESCALATION).map_err(rusqlite_err)?;
            for e in &plan.escalations {
                escalate
                    .execute(params![
                        e.tenant.as_str(),
                        e.chain_seq,
                        e.step,
                        e.due_at,
                        e.to_user,
                        e.to_role
                    ])
                    .map_err(rusqlite_err)?;
            }
        }
        let mut claim = tx.prepare_cached(INSERT_CLAIM).map_err(rusqlite_err)?;
        for c in &plan.claims {
            claim
                .execute(params![
                    c.req.tenant.as_str(),
                    PUBLISH_SCOPE,
                    c.key,
                    c.hash,
                    c.result,
                    millis(c.req.now)
                ])
                .map_err(rusqlite_err)?;
        }
        let mut bump = tx.prepare_cached(BUMP_COUNTER).map_err(rusqlite_err)?;
        for ((tenant, user), (unread, head)) in &plan.deltas {
            let count = bump
                .query_row(params![tenant.as_str(), user.as_str(), unread, head], |r| {
                    Ok(UnreadCount {
                        unread: r.get(0)?,
                        version: r.get(1)?,
                        head: r.get(2)?,
                    })
                })
                .map_err(rusqlite_err)?;
            counts.insert((tenant.clone(), user.clone()), count);
        }
    }
    tx.commit().map_err(rusqlite_err)?;
    Ok(plan.finish(batch, counts))
}

/// A publish batch inside the caller's write transaction: a clinic event's
/// notifications, committed with the event. The same steps as [`publish_batch`], on
/// the sqlx writer connection (its caller holds the writer's turn).
pub(super) async fn insert_batch_in(
    conn: &mut SqliteConnection,
    batch: &[PublishRequest],
) -> Result<Vec<PublishOutcome>, StoreError> {
    let mut reads = Reads::default();
    for (tenant, n) in wanted_ids(batch) {
        let last: i64 = sqlx::query_scalar(RESERVE_IDS)
            .bind(tenant.as_str())
            .bind(n)
            .fetch_one(&mut *conn)
            .await
            .map_err(map_err)?;
        reads.ids.add(tenant.clone(), last, n);
    }
    for (tenant, user) in recipients(batch) {
        let row = sqlx::query(PREFERENCES)
            .bind(tenant.as_str())
            .bind(user.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_err)?;
        if let Some(row) = row {
            let p = prefs_from_columns(row.get(0), row.get(1), row.get(2), row.get(3))?;
            reads.prefs.insert((tenant.clone(), user.clone()), p);
        }
    }
    for req in batch {
        let stored = match &req.idempotency {
            Some(c) => sqlx::query_as(FIND_CLAIM)
                .bind(req.tenant.as_str())
                .bind(PUBLISH_SCOPE)
                .bind(&c.key)
                .fetch_optional(&mut *conn)
                .await
                .map_err(map_err)?,
            None => None,
        };
        reads.claims.push(stored);
    }
    let plan = plan(batch, reads)?;
    for (tenant, n) in &plan.unused {
        sqlx::query(GIVE_BACK_IDS)
            .bind(tenant.as_str())
            .bind(n)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    }
    for n in &plan.rows {
        let c = &n.content;
        sqlx::query(INSERT_ROW)
            .bind(n.id.seq())
            .bind(n.tenant.as_str())
            .bind(n.user.as_str())
            .bind(c.title.as_str())
            .bind(c.message.as_str())
            .bind(c.kind.as_str())
            .bind(c.category.as_deref())
            .bind(c.related.as_ref().map(|r| r.kind.as_str()))
            .bind(c.related.as_ref().map(|r| r.id.as_str()))
            .bind(c.link.as_deref())
            .bind(c.data.as_str())
            .bind(i64::from(n.silent))
            .bind(millis(n.created_at))
            .bind(c.priority.code())
            .bind(n.chain.map(|id| id.seq()))
            .bind(n.escalated_from.map(|id| id.seq()))
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    }
    for e in &plan.escalations {
        sqlx::query(INSERT_ESCALATION)
            .bind(e.tenant.as_str())
            .bind(e.chain_seq)
            .bind(e.step)
            .bind(e.due_at)
            .bind(e.to_user.as_deref())
            .bind(e.to_role)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    }
    for c in &plan.claims {
        sqlx::query(INSERT_CLAIM)
            .bind(c.req.tenant.as_str())
            .bind(PUBLISH_SCOPE)
            .bind(c.key)
            .bind(c.hash)
            .bind(&c.result)
            .bind(millis(c.req.now))
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    }
    let mut counts = HashMap::with_capacity(plan.deltas.len());
    for ((tenant, user), (unread, head)) in &plan.deltas {
        let row = sqlx::query(BUMP_COUNTER)
            .bind(tenant.as_str())
            .bind(user.as_str())
            .bind(unread)
            .bind(head)
            .fetch_one(&mut *conn)
            .await
            .map_err(map_err)?;
        let count = UnreadCount {
            unread: row.get(0),
            version: row.get(1),
            head: row.get(2),
        };
        counts.insert((tenant.clone(), user.clone()), count);
    }
    Ok(plan.finish(batch, counts))
}

/// Subtracts `n` from one user's counter (or sets it to zero) and bumps its version.
async fn lower_counter(
    tx: &mut SqliteConnection,
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
    .fetch_one(&mut *tx)
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

#[async_trait]
impl NotificationStore for SqliteStore {
    async fn insert_batch(
        &self,
        batch: &[PublishRequest],
    ) -> Result<Vec<PublishOutcome>, StoreError> {
        // The batch moves to the writer thread and comes back with its outcomes.
        let batch = batch.to_vec();
        self.writer
            .run(move |conn| publish_batch(conn, &batch))
            .await
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
            "SELECT {} FROM notifications
             WHERE tenant_id = ? AND user_id = ? AND archived_at IS NULL AND seq < ?{unread_only}
             ORDER BY seq DESC LIMIT ?",
            columns()
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
            "SELECT {} FROM notifications
             WHERE tenant_id = ? AND user_id = ? AND seq > ? AND archived_at IS NULL AND silent = 0
             ORDER BY seq ASC LIMIT ?",
            columns()
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
        let mut tx = self.writer.begin().await?;
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
            acknowledge_read(&mut tx, tenant, user, at).await?;
            lower_counter(
                &mut tx,
                tenant,
                user,
                CounterChange::Minus(changed.len() as i64),
            )
            .await?
        };
        changed.sort();
        emit_read(&mut tx, tenant, user, Some(&changed), at).await?;
        tx.commit().await.map_err(map_err)?;
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
        let mut tx = self.writer.begin().await?;
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
        acknowledge_read(&mut tx, tenant, user, at).await?;
        let count = lower_counter(&mut tx, tenant, user, CounterChange::Zero).await?;
        emit_read(&mut tx, tenant, user, None, at).await?;
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
        let mut tx = self.writer.begin().await?;
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
        let mut tx = self.writer.begin().await?;
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
        purge_ended(&mut tx, cutoff).await?;
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

/// `notification.read` for the endpoints that opted in, written with the read
/// (`ids: None`: all of the user's notifications).
async fn emit_read(
    conn: &mut sqlx::SqliteConnection,
    tenant: &TenantId,
    user: &UserId,
    ids: Option<&[NotificationId]>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let event = crate::store::webhooks::WebhookEvent::NotificationsRead {
        user: user.clone(),
        ids: ids.map(<[NotificationId]>::to_vec),
    };
    super::sql::webhooks::emit(conn, tenant, &event, at).await?;
    Ok(())
}
