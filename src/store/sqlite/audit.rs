//! The administrative audit log on SQLite: written inside the transaction of the change
//! it describes, read newest first.

use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::{map_err, millis, SqliteStore};
use crate::domain::ids::TenantId;
use crate::store::columns::outbound::audit_from_row;
use crate::store::filters::push_audit_filter;
use crate::store::outbound::{AuditEntry, AuditFilter, AuditRecord};
use crate::store::{Page, PageRequest, StoreError};

/// Appends one entry, on the caller's transaction.
pub(super) async fn insert(
    conn: &mut SqliteConnection,
    tenant: &TenantId,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, actor, action, target, detail, at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(tenant.as_str())
    .bind(&entry.actor)
    .bind(&entry.action)
    .bind(&entry.target)
    .bind(&entry.detail)
    .bind(millis(entry.at))
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Appends one entry on its own: a read of patient data, which has nothing else to commit.
pub(super) async fn record(
    store: &SqliteStore,
    tenant: &TenantId,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    let mut conn = store.writer.acquire().await.map_err(map_err)?;
    insert(&mut conn, tenant, entry).await
}

pub(super) async fn list_audit(
    store: &SqliteStore,
    tenant: &TenantId,
    filter: &AuditFilter,
    page: PageRequest,
) -> Result<Page<AuditRecord>, StoreError> {
    let mut qb: QueryBuilder<Sqlite> =
        QueryBuilder::new("SELECT seq, actor, action, target, detail, at FROM audit_log");
    push_audit_filter(&mut qb, tenant, filter);
    qb.push(" AND seq < ")
        .push_bind(page.before.unwrap_or(i64::MAX))
        .push(" ORDER BY seq DESC LIMIT ")
        .push_bind(i64::from(page.limit) + 1);
    let rows = qb.build().fetch_all(&store.reader).await.map_err(map_err)?;
    let items = rows.iter().map(audit_from_row).collect();
    Ok(Page::from_overfetch(
        items,
        page.limit,
        |r: &AuditRecord| r.seq,
    ))
}
