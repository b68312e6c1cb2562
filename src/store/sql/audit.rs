//! The administrative audit log: written inside the transaction of the change it
//! describes, read newest first. `detail` is JSON (on PostgreSQL not JSONB), so it comes
//! back byte for byte.
//! Written once for both backends (see `store/sql/mod.rs`).

use async_trait::async_trait;
use sqlx::QueryBuilder;

use super::{map_err, millis, Backend, Conn, Db, JSON};
use crate::domain::ids::TenantId;
use crate::store::columns::outbound::audit_from_row;
use crate::store::filters::push_audit_filter;
use crate::store::outbound::{AuditEntry, AuditFilter, AuditRecord, AuditStore};
use crate::store::{Page, PageRequest, StoreError};

/// Appends one entry, on the caller's transaction.
pub(in crate::store) async fn insert(
    conn: &mut Conn,
    tenant: &TenantId,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "INSERT INTO audit_log (tenant_id, actor, action, target, detail, at)
         VALUES ($1, $2, $3, $4, $5{JSON}, $6)"
    ))
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

#[async_trait]
impl AuditStore for Backend {
    /// Appends one entry on its own: a read of patient data, which has nothing else to commit.
    async fn record_audit(&self, tenant: &TenantId, entry: &AuditEntry) -> Result<(), StoreError> {
        let mut conn = self.write_conn().await?;
        insert(&mut conn, tenant, entry).await
    }

    async fn list_audit(
        &self,
        tenant: &TenantId,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditRecord>, StoreError> {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(
            "SELECT seq, actor, action, target, CAST(detail AS TEXT) AS detail, at FROM audit_log",
        );
        push_audit_filter(&mut qb, tenant, filter);
        qb.push(" AND seq < ")
            .push_bind(page.before.unwrap_or(i64::MAX))
            .push(" ORDER BY seq DESC LIMIT ")
            .push_bind(i64::from(page.limit) + 1);
        let rows = qb.build().fetch_all(self.reader()).await.map_err(map_err)?;
        let items = rows.iter().map(audit_from_row).collect();
        Ok(Page::from_overfetch(
            items,
            page.limit,
            |r: &AuditRecord| r.seq,
        ))
    }
}
