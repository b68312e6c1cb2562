//! Notifications on PostgreSQL: a group-commit batch in a handful of bulk
//! statements (UNNEST arrays), whatever the number of recipients. Why per backend: the
//! arrays and the id-ordering lock below (SQLite's single writer needs no lock).
//!
//! # Ids in commit order, with several nodes writing
//!
//! Resume (`since`, `Last-Event-ID`) relies on one rule: a notification committed
//! later never has a smaller id than one a reader could already have seen for the
//! same user. A PostgreSQL sequence does not give that: node A can take id 9, node B
//! id 10, B commits, a client sees 10, and then A commits 9, which that client skips
//! for ever on its next resume.
//!
//! So `insert_batch` first takes a transaction-scoped advisory lock for each tenant
//! in the batch, and only then takes ids from the tenant's own counter (a row of
//! `notification_counters`: ids count per tenant, so their gaps reveal nothing of
//! other tenants' volume; one upsert reserves every tenant's block of the batch).
//! Two batches for one tenant are therefore serialized from id assignment to commit:
//! the later one waits until the earlier has committed (PostgreSQL makes a commit
//! visible before it releases the transaction's locks), so its ids are larger and
//! become visible later. Ids
//! across *different* tenants may still commit out of order, which is harmless:
//! a reader only ever reads one user's, and so one tenant's, notifications.
//!
//! Why per tenant and not per user or one global lock: a global lock would serialize
//! every tenant's writers on every node; per-user locks would cost one lock per
//! recipient (10,000 for a role broadcast). Per tenant it is one lock per batch in the
//! common case, held only for the few statements of the batch. Within one node the
//! writer task already sends one batch at a time, so the lock only ever waits for
//! another node. Locks are taken in ascending key order so two multi-tenant batches
//! cannot deadlock; keys live in the two-`int4` advisory key space under a class of
//! their own, which never overlaps the single-`bigint` key sqlx's migrator uses.
//!
//! The same lock makes the idempotency check-then-record race free across nodes: the
//! second request with a key waits for the first to commit, then finds its record.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};

use super::sql::escalations::{acknowledge_read, purge_ended};
use super::sql::preferences::PREF_COLUMNS;
use super::{map_err, millis, PostgresStore};
use crate::domain::ids::{NotificationId, TenantId, UserId};
use crate::domain::notification::{Notification, UnreadCount};
use crate::domain::preferences::StaffPreferences;
use crate::store::columns::{prefs_from_columns, NOTIFICATION_COLUMNS};
use crate::store::notification_ids::{escalations_for, rows_for, IdBlocks, NewEscalation, UserKey};
use crate::store::{
    IdempotencyClaim, InboxFilter, NotificationStore, Page, PageRequest, PublishOutcome,
    PublishRequest, ReadOutcome, StoreError,
};

const PUBLISH_SCOPE: &str = "publish";
/// The advisory-lock class of "assigning notification ids for a tenant" ("tdng").
const ID_LOCK_CLASS: i32 = 0x7464_6e67;

fn corrupt(what: &str) -> impl Fn(crate::domain::Invalid) -> StoreError + '_ {
    move |e| StoreError::Internal(format!("bad {what} row: {e}"))
}

/// Every column a notification is read with.
fn columns() -> String {
    format!("{NOTIFICATION_COLUMNS}, silent")
}

fn notification_from_row(row: &PgRow) -> Result<Notification, StoreError> {
    crate::store::columns::notification_from_row(row, row.get("silent"))
}

/// The advisory-lock key of a tenant: the first 4 bytes of the SHA-256 of its id.
/// Stable across nodes and releases (unlike `Hash`); a collision only serializes
/// two tenants' writers, it never breaks the ordering.
fn tenant_lock_key(tenant: &TenantId) -> i32 {
    let digest = Sha256::digest(tenant.as_str().as_bytes());
    i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Takes the id-assignment lock of every tenant in the batch, in ascending key order.
async fn lock_tenants(
    tx: &mut Transaction<'_, Postgres>,
    batch: &[PublishRequest],
) -> Result<(), StoreError> {
    let mut keys: Vec<i32> = batch.iter().map(|r| tenant_lock_key(&r.tenant)).collect();
    keys.sort_unstable();
    keys.dedup();
    // UNNEST yields the array in order, and each row's lock is taken as the row is produced.
    sqlx::query("SELECT pg_advisory_xact_lock($1, k) FROM UNNEST($2::int4[]) AS k")
        .bind(ID_LOCK_CLASS)
        .bind(&keys)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// What one request of a batch turns into.
enum Step {
    /// New rows.
    Create,
    /// The key was recorded by an earlier, committed request with the same body.
    Replay(Vec<(NotificationId, UserId)>),
    /// The key was first used by request `i` of this same batch, with the same body.
    SameAs(usize),
    /// The key was used with another body.
    KeyReused,
}

/// Looks up every idempotency key of the batch at once and decides each request's step.
async fn plan(
    tx: &mut Transaction<'_, Postgres>,
    batch: &[PublishRequest],
) -> Result<Vec<Step>, StoreError> {
    let claims: Vec<(&TenantId, &IdempotencyClaim)> = batch
        .iter()
        .filter_map(|r| r.idempotency.as_ref().map(|c| (&r.tenant, c)))
        .collect();
    let mut recorded: HashMap<(String, String), (String, String)> = HashMap::new();
    if !claims.is_empty() {
        let tenants: Vec<&str> = claims.iter().map(|(t, _)| t.as_str()).collect();
        let keys: Vec<&str> = claims.iter().map(|(_, c)| c.key.as_str()).collect();
        let rows = sqlx::query(
            "SELECT i.tenant_id, i.key, i.request_hash, i.result::text FROM idempotency_keys i
             JOIN UNNEST($1::text[], $2::text[]) AS k(tenant_id, key)
               ON i.tenant_id = k.tenant_id AND i.key = k.key
             WHERE i.scope = $3",
        )
        .bind(&tenants)
        .bind(&keys)
        .bind(PUBLISH_SCOPE)
        .fetch_all(&mut **tx)
        .await
        .map_err(map_err)?;
        for row in rows {
            recorded.insert((row.get(0), row.get(1)), (row.get(2), row.get(3)));
        }
    }
    let mut first_use: HashMap<(&str, &str), usize> = HashMap::new();
    batch
        .iter()
        .enumerate()
        .map(|(i, req)| {
            let Some(claim) = &req.idempotency else {
                return Ok(Step::Create);
            };
            let key = (req.tenant.as_str().to_owned(), claim.key.clone());
            if let Some((hash, result)) = recorded.get(&key) {
                return Ok(if *hash == claim.request_hash {
                    Step::Replay(decode_created(result)?)
                } else {
                    Step::KeyReused
                });
            }
            match first_use.get(&(req.tenant.as_str(), claim.key.as_str())) {
                Some(&j) => {
                    let same = batch[j]
                        .idempotency
                        .as_ref()
                        .is_some_and(|c| c.request_hash == claim.request_hash);
                    Ok(if same {
                        Step::SameAs(j)
                    } else {
                        Step::KeyReused
                    })
                }
                None => {
                    first_use.insert((req.tenant.as_str(), claim.key.as_str()), i);
                    Ok(Step::Create)
                }
            }
        })
        .collect()
}

/// Loads the preferences of the given users, in one query; users without a row have none.
async fn load_preferences(
    tx: &mut Transaction<'_, Postgres>,
    users: &HashSet<(&TenantId, &UserId)>,
) -> Result<HashMap<UserKey, StaffPreferences>, StoreError> {
    if users.is_empty() {
        return Ok(HashMap::new());
    }
    let tenants: Vec<&str> = users.iter().map(|(t, _)| t.as_str()).collect();
    let ids: Vec<&str> = users.iter().map(|(_, u)| u.as_str()).collect();
    let rows = sqlx::query(&format!(
        "SELECT p.tenant_id, p.user_id, {PREF_COLUMNS} FROM staff_preferences p
         JOIN UNNEST($1::text[], $2::text[]) AS k(tenant_id, user_id)
           ON p.tenant_id = k.tenant_id AND p.user_id = k.user_id"
    ))
    .bind(&tenants)
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await
    .map_err(map_err)?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
        let key = (
            TenantId::parse(row.get(0)).map_err(corrupt("preferences"))?,
            UserId::parse(row.get(1)).map_err(corrupt("preferences"))?,
        );
        out.insert(
            key,
            prefs_from_columns(row.get(2), row.get(3), row.get(4), row.get(5))?,
        );
    }
    Ok(out)
}

/// Reserves each tenant's ids for the batch from its own counter, in one statement for
/// every tenant (it replaces the `nextval` call: no extra round trip). Call only under
/// [`lock_tenants`]: the lock, not the counter row, is what orders a tenant's batches
/// from id assignment to commit across nodes.
async fn reserve_ids(
    tx: &mut Transaction<'_, Postgres>,
    wanted: BTreeMap<&TenantId, i64>,
) -> Result<IdBlocks, StoreError> {
    let mut blocks = IdBlocks::default();
    if wanted.is_empty() {
        return Ok(blocks);
    }
    // Tenant order: concurrent batches on different tenants lock counter rows in one order.
    let tenants: Vec<&str> = wanted.keys().map(|t| t.as_str()).collect();
    let counts: Vec<i64> = wanted.values().copied().collect();
    let rows = sqlx::query(
        "INSERT INTO notification_counters (tenant_id, last_seq)
         SELECT * FROM UNNEST($1::text[], $2::int8[])
         ON CONFLICT (tenant_id) DO UPDATE
           SET last_seq = notification_counters.last_seq + excluded.last_seq
         RETURNING tenant_id, last_seq",
    )
    .bind(&tenants)
    .bind(&counts)
    .fetch_all(&mut **tx)
    .await
    .map_err(map_err)?;
    let reserved: HashMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    for (tenant, n) in wanted {
        let last = reserved
            .get(tenant.as_str())
            .ok_or_else(|| StoreError::Internal(format!("no id counter returned for {tenant}")))?;
        blocks.add(tenant.clone(), *last, n);
    }
    Ok(blocks)
}

/// Inserts the rows of the created requests in one statement. The content is sent once
/// per request, not once per recipient: a 10,000-recipient broadcast sends its text once.
async fn insert_rows(
    tx: &mut Transaction<'_, Postgres>,
    created: &[(&PublishRequest, &[Notification])],
) -> Result<(), StoreError> {
    let rows = created.iter().map(|(_, rows)| rows.len()).sum::<usize>();
    if rows == 0 {
        return Ok(());
    }
    let (mut seqs, mut reqs, mut users, mut silent) = (
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
    );
    for (i, (_, notifications)) in created.iter().enumerate() {
        for n in notifications.iter() {
            seqs.push(n.id.seq());
            // WITH ORDINALITY below counts from 1.
            reqs.push(i as i64 + 1);
            users.push(n.user.as_str());
            silent.push(n.silent);
        }
    }
    let content = |f: fn(&PublishRequest) -> Option<&str>| -> Vec<Option<&str>> {
        created.iter().map(|(r, _)| f(r)).collect()
    };
    let at: Vec<i64> = created.iter().map(|(r, _)| millis(r.now)).collect();
    let priority: Vec<i16> = created
        .iter()
        .map(|(r, _)| r.content.priority.code())
        .collect();
    // A request's rows share their chain (its first row's, or the original's for a copy).
    let chain: Vec<Option<i64>> = created
        .iter()
        .map(|(_, rows)| rows.first().and_then(|n| n.chain).map(|id| id.seq()))
        .collect();
    let escalated_from: Vec<Option<i64>> = created
        .iter()
        .map(|(r, _)| r.escalated_from.map(|id| id.seq()))
        .collect();
    sqlx::query(
        "INSERT INTO notifications (seq, tenant_id, user_id, title, message, type, category,
           related_type, related_id, link, data, silent, read_at, created_at, updated_at,
           priority, chain_seq, escalated_from)
         SELECT r.seq, c.tenant_id, r.user_id, c.title, c.message, c.type, c.category,
           c.related_type, c.related_id, c.link, c.data::json, r.silent, NULL, c.at, c.at,
           c.priority, c.chain_seq, c.escalated_from
         FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::bool[]) AS r(seq, req, user_id, silent)
         JOIN UNNEST($5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                     $11::text[], $12::text[], $13::text[], $14::int8[], $15::int2[], $16::int8[],
                     $17::int8[])
              WITH ORDINALITY AS c(tenant_id, title, message, type, category, related_type,
                                   related_id, link, data, at, priority, chain_seq,
                                   escalated_from, req)
           ON c.req = r.req",
    )
    .bind(&seqs)
    .bind(&reqs)
    .bind(&users)
    .bind(&silent)
    .bind(content(|r| Some(r.tenant.as_str())))
    .bind(content(|r| Some(r.content.title.as_str())))
    .bind(content(|r| Some(r.content.message.as_str())))
    .bind(content(|r| Some(r.content.kind.as_str())))
    .bind(content(|r| r.content.category.as_deref()))
    .bind(content(|r| {
        r.content.related.as_ref().map(|x| x.kind.as_str())
    }))
    .bind(content(|r| {
        r.content.related.as_ref().map(|x| x.id.as_str())
    }))
    .bind(content(|r| r.content.link.as_deref()))
    .bind(content(|r| Some(r.content.data.as_str())))
    .bind(&at)
    .bind(&priority)
    .bind(&chain)
    .bind(&escalated_from)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Stores the escalation steps of the batch's publishes with `escalate`, in one
/// statement; a batch without any (almost every one) sends nothing.
async fn insert_escalations(
    tx: &mut Transaction<'_, Postgres>,
    steps: &[NewEscalation],
) -> Result<(), StoreError> {
    if steps.is_empty() {
        return Ok(());
    }
    let tenants: Vec<&str> = steps.iter().map(|e| e.tenant.as_str()).collect();
    let chains: Vec<i64> = steps.iter().map(|e| e.chain_seq).collect();
    let numbers: Vec<i16> = steps.iter().map(|e| e.step as i16).collect();
    let due: Vec<i64> = steps.iter().map(|e| e.due_at).collect();
    let users: Vec<Option<&str>> = steps.iter().map(|e| e.to_user.as_deref()).collect();
    let roles: Vec<Option<&str>> = steps.iter().map(|e| e.to_role).collect();
    sqlx::query(
        "INSERT INTO escalations (tenant_id, chain_seq, step, due_at, to_user, to_role)
         SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int2[], $4::int8[], $5::text[], $6::text[])",
    )
    .bind(&tenants)
    .bind(&chains)
    .bind(&numbers)
    .bind(&due)
    .bind(&users)
    .bind(&roles)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Records the idempotency keys of the created requests, in the batch's transaction.
async fn record_keys(
    tx: &mut Transaction<'_, Postgres>,
    created: &[(&PublishRequest, &[Notification])],
) -> Result<(), StoreError> {
    let mut tenants = Vec::new();
    let mut keys = Vec::new();
    let mut hashes = Vec::new();
    let mut results = Vec::new();
    let mut at = Vec::new();
    for (req, rows) in created {
        let Some(claim) = &req.idempotency else {
            continue;
        };
        let pairs: Vec<(i64, &str)> = rows.iter().map(|n| (n.id.seq(), n.user.as_str())).collect();
        tenants.push(req.tenant.as_str());
        keys.push(claim.key.as_str());
        hashes.push(claim.request_hash.as_str());
        results
            .push(serde_json::to_string(&pairs).map_err(|e| StoreError::Internal(e.to_string()))?);
        at.push(millis(req.now));
    }
    if tenants.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO idempotency_keys (tenant_id, scope, key, request_hash, result, created_at)
         SELECT t, $1, k, h, r::jsonb, c
         FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::int8[]) AS x(t, k, h, r, c)",
    )
    .bind(PUBLISH_SCOPE)
    .bind(&tenants)
    .bind(&keys)
    .bind(&hashes)
    .bind(&results)
    .bind(&at)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Adds each user's new rows to their counter, bumps its version and moves its head;
/// returns the new counts. Rows are upserted in key order, so counter row locks are
/// always taken in the same order.
async fn bump_counters(
    tx: &mut Transaction<'_, Postgres>,
    deltas: HashMap<UserKey, (i64, i64)>,
) -> Result<HashMap<UserKey, UnreadCount>, StoreError> {
    let mut deltas: Vec<_> = deltas.into_iter().collect();
    deltas.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let tenants: Vec<&str> = deltas.iter().map(|((t, _), _)| t.as_str()).collect();
    let users: Vec<&str> = deltas.iter().map(|((_, u), _)| u.as_str()).collect();
    let added: Vec<i64> = deltas.iter().map(|(_, (n, _))| *n).collect();
    let heads: Vec<i64> = deltas.iter().map(|(_, (_, h))| *h).collect();
    let rows = sqlx::query(
        "INSERT INTO unread_counters (tenant_id, user_id, unread, version, head)
         SELECT t, u, n, 1, h FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[]) AS d(t, u, n, h)
         ON CONFLICT (tenant_id, user_id) DO UPDATE SET
           unread = GREATEST(0, unread_counters.unread + excluded.unread),
           version = unread_counters.version + 1,
           head = GREATEST(unread_counters.head, excluded.head)
         RETURNING tenant_id, user_id, unread, version, head",
    )
    .bind(&tenants)
    .bind(&users)
    .bind(&added)
    .bind(&heads)
    .fetch_all(&mut **tx)
    .await
    .map_err(map_err)?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
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
    Ok(out)
}

enum CounterChange {
    Minus(i64),
    Zero,
}

/// Subtracts `n` from one user's counter (or sets it to zero) and bumps its version.
async fn lower_counter(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
    user: &UserId,
    change: CounterChange,
) -> Result<UnreadCount, StoreError> {
    let (set_zero, n) = match change {
        CounterChange::Minus(n) => (false, n),
        CounterChange::Zero => (true, 0),
    };
    let row = sqlx::query(
        "INSERT INTO unread_counters (tenant_id, user_id, unread, version, head)
         VALUES ($1, $2, 0, 1, 0)
         ON CONFLICT (tenant_id, user_id) DO UPDATE SET
           unread = CASE WHEN $3 THEN 0 ELSE GREATEST(0, unread_counters.unread - $4) END,
           version = unread_counters.version + 1
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

impl PostgresStore {
    async fn read_counter(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<UnreadCount, StoreError> {
        let row = sqlx::query(
            "SELECT unread, version, head FROM unread_counters WHERE tenant_id = $1 AND user_id = $2",
        )
        .bind(tenant.as_str())
        .bind(user.as_str())
        .fetch_optional(&self.pool)
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

/// A publish batch on the caller's transaction (the group commit, and a clinic
/// event's notifications inside its own transaction). Takes the tenants' id-order
/// locks first, so the caller must not have touched `notification_counters` before;
/// the locks are held until the caller commits.
pub(super) async fn insert_batch_in(
    tx: &mut Transaction<'_, Postgres>,
    batch: &[PublishRequest],
) -> Result<Vec<PublishOutcome>, StoreError> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    {
        // Before anything else: ids and idempotency records are decided under the lock.
        lock_tenants(tx, batch).await?;
        let steps = plan(tx, batch).await?;

        let creating = || {
            batch
                .iter()
                .zip(&steps)
                .filter(|(_, s)| matches!(s, Step::Create))
                .map(|(r, _)| r)
        };
        let recipients: HashSet<(&TenantId, &UserId)> = creating()
            .flat_map(|r| r.recipients.iter().map(move |u| (&r.tenant, u)))
            .collect();
        let prefs = load_preferences(tx, &recipients).await?;
        let mut wanted: BTreeMap<&TenantId, i64> = BTreeMap::new();
        for req in creating().filter(|r| !r.recipients.is_empty()) {
            *wanted.entry(&req.tenant).or_default() += req.recipients.len() as i64;
        }
        let mut ids = reserve_ids(tx, wanted).await?;

        // The rows of each created request, in request order; per user: (added, newest seq).
        let mut rows: Vec<Vec<Notification>> = Vec::with_capacity(batch.len());
        let mut deltas: HashMap<UserKey, (i64, i64)> = HashMap::new();
        for (req, step) in batch.iter().zip(&steps) {
            if !matches!(step, Step::Create) {
                rows.push(Vec::new());
                continue;
            }
            rows.push(rows_for(req, &mut ids, &prefs, &mut deltas)?);
        }
        let created: Vec<(&PublishRequest, &[Notification])> = batch
            .iter()
            .zip(&steps)
            .zip(&rows)
            .filter(|((_, s), _)| matches!(s, Step::Create))
            .map(|((r, _), rows)| (r, rows.as_slice()))
            .collect();
        insert_rows(tx, &created).await?;
        let escalations: Vec<NewEscalation> = created
            .iter()
            .flat_map(|(req, rows)| escalations_for(req, rows))
            .collect();
        insert_escalations(tx, &escalations).await?;
        record_keys(tx, &created).await?;
        let counts = if deltas.is_empty() {
            HashMap::new()
        } else {
            bump_counters(tx, deltas).await?
        };

        let created_ids = |rows: &[Notification]| -> Vec<(NotificationId, UserId)> {
            rows.iter().map(|n| (n.id, n.user.clone())).collect()
        };
        let mut outcomes = Vec::with_capacity(batch.len());
        for (i, step) in steps.into_iter().enumerate() {
            outcomes.push(match step {
                Step::Create => {
                    let notifications = std::mem::take(&mut rows[i]);
                    let per_user = notifications
                        .iter()
                        .filter_map(|n| {
                            counts
                                .get(&(n.tenant.clone(), n.user.clone()))
                                .map(|c| (n.user.clone(), *c))
                        })
                        .collect();
                    PublishOutcome::Created {
                        notifications,
                        counts: per_user,
                    }
                }
                Step::Replay(created) => PublishOutcome::Replayed { created },
                Step::SameAs(j) => PublishOutcome::Replayed {
                    created: match &outcomes[j] {
                        PublishOutcome::Created { notifications, .. } => created_ids(notifications),
                        _ => {
                            return Err(StoreError::Internal(
                                "idempotency: first use is not a create".into(),
                            ))
                        }
                    },
                },
                Step::KeyReused => PublishOutcome::KeyReused,
            });
        }
        Ok(outcomes)
    }
}

#[async_trait]
impl NotificationStore for PostgresStore {
    async fn insert_batch(
        &self,
        batch: &[PublishRequest],
    ) -> Result<Vec<PublishOutcome>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
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
            "SELECT {} FROM notifications
             WHERE tenant_id = $1 AND user_id = $2 AND archived_at IS NULL AND seq < $3{unread_only}
             ORDER BY seq DESC LIMIT $4",
            columns()
        );
        let rows = sqlx::query(&sql)
            .bind(tenant.as_str())
            .bind(user.as_str())
            .bind(page.before.unwrap_or(i64::MAX))
            .bind(i64::from(page.limit) + 1)
            .fetch_all(&self.pool)
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
             WHERE tenant_id = $1 AND user_id = $2 AND seq > $3 AND archived_at IS NULL
               AND NOT silent
             ORDER BY seq ASC LIMIT $4",
            columns()
        );
        let rows = sqlx::query(&sql)
            .bind(tenant.as_str())
            .bind(user.as_str())
            .bind(after.seq())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
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
        let seqs: Vec<i64> = ids.iter().map(|id| id.seq()).collect();
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // `read_at IS NULL` is re-checked after waiting for a concurrent writer's row
        // lock, so two nodes marking the same id read count it once.
        let mut changed: Vec<NotificationId> = sqlx::query_scalar::<_, i64>(
            "UPDATE notifications SET read_at = $1, updated_at = $1
             WHERE tenant_id = $2 AND user_id = $3 AND read_at IS NULL AND archived_at IS NULL
               AND seq = ANY($4)
             RETURNING seq",
        )
        .bind(millis(at))
        .bind(tenant.as_str())
        .bind(user.as_str())
        .bind(&seqs)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?
        .into_iter()
        .map(NotificationId::from_seq)
        .collect();
        if changed.is_empty() {
            tx.commit().await.map_err(map_err)?;
            return Ok(ReadOutcome {
                changed,
                count: self.read_counter(tenant, user).await?,
            });
        }
        acknowledge_read(&mut tx, tenant, user, at).await?;
        let count = lower_counter(
            &mut tx,
            tenant,
            user,
            CounterChange::Minus(changed.len() as i64),
        )
        .await?;
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
            "SELECT 1 FROM notifications
             WHERE tenant_id = $1 AND user_id = $2 AND seq = $3 AND archived_at IS NULL",
        )
        .bind(tenant.as_str())
        .bind(user.as_str())
        .bind(id.seq())
        .fetch_optional(&self.pool)
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
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let done = sqlx::query(
            "UPDATE notifications SET read_at = $1, updated_at = $1
             WHERE tenant_id = $2 AND user_id = $3 AND read_at IS NULL AND archived_at IS NULL",
        )
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
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let read_at: Option<Option<i64>> = sqlx::query_scalar(
            "UPDATE notifications SET archived_at = $1, updated_at = $1
             WHERE tenant_id = $2 AND user_id = $3 AND seq = $4 AND archived_at IS NULL
             RETURNING read_at",
        )
        .bind(millis(at))
        .bind(tenant.as_str())
        .bind(user.as_str())
        .bind(id.seq())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(read_at) = read_at else {
            return Err(StoreError::NotFound);
        };
        if read_at.is_some() {
            tx.commit().await.map_err(map_err)?;
            return self.read_counter(tenant, user).await;
        }
        let count = lower_counter(&mut tx, tenant, user, CounterChange::Minus(1)).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(count)
    }

    async fn purge_before(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let done = sqlx::query(
            // By (tenant, seq): a seq alone names one notification of every tenant.
            "DELETE FROM notifications WHERE (tenant_id, seq) IN (
               SELECT tenant_id, seq FROM notifications
               WHERE (read_at IS NOT NULL OR archived_at IS NOT NULL) AND created_at < $1
               LIMIT $2)",
        )
        .bind(millis(cutoff))
        .bind(i64::from(limit))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(millis(cutoff))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        purge_ended(&mut tx, cutoff).await?;
        // The outbound sends' idempotency records age out with the same retention.
        sqlx::query("DELETE FROM outbound_idempotency WHERE created_at < $1")
            .bind(millis(cutoff))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(done.rows_affected())
    }
}

fn decode_created(raw: &str) -> Result<Vec<(NotificationId, UserId)>, StoreError> {
    let pairs: Vec<(i64, String)> = serde_json::from_str(raw)
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
    conn: &mut sqlx::PgConnection,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_lock_keys_are_stable_and_distinct() {
        let a = TenantId::parse("clinic-a").unwrap();
        let b = TenantId::parse("clinic-b").unwrap();
        assert_eq!(tenant_lock_key(&a), tenant_lock_key(&a.clone()));
        assert_ne!(tenant_lock_key(&a), tenant_lock_key(&b));
        // Pinned: nodes of different releases must agree on the key (python3:
        // struct.unpack('>i', hashlib.sha256(b'clinic-a').digest()[:4])).
        assert_eq!(tenant_lock_key(&a), -1_313_915_432);
    }
}
