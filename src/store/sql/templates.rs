//! Templates: a `templates` row per template (name, current version, active
//! flag, soft delete) and a `template_versions` row per version with its full content.
//! Written once for both backends (see `store/sql/mod.rs`).

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row};

use super::{audit, found, map_err, millis, Backend, Conn, Db, DbRow, WriteTx, JSONB};
use crate::domain::ids::{TemplateId, TenantId};
use crate::domain::template::Template;
use crate::store::columns::outbound::{
    stored_template_from_row, template_from_row, template_version_from_row, to_json,
};
use crate::store::outbound::{
    AuditEntry, StoredTemplate, TemplateFilter, TemplateStore, TemplateVersion,
};
use crate::store::{Page, PageRequest, StoreError};

/// A template with its current version's content.
const CURRENT: &str = "SELECT t.seq, t.id, t.version, t.is_active, t.created_at, t.updated_at, \
     v.name, v.channel, v.kind, v.body_en, v.body_ar, v.subject_en, v.subject_ar, \
     CAST(v.variables AS TEXT) AS variables \
     FROM templates t JOIN template_versions v \
       ON v.tenant_id = t.tenant_id AND v.template_id = t.id AND v.version = t.version";

const VERSION: &str = "SELECT version, is_active, created_at, actor, name, channel, kind, \
     body_en, body_ar, subject_en, subject_ar, CAST(variables AS TEXT) AS variables FROM template_versions";

fn stored(row: &DbRow) -> Result<StoredTemplate, StoreError> {
    stored_template_from_row(row, row.get::<bool, _>("is_active"))
}

async fn insert_version(
    conn: &mut Conn,
    tenant: &TenantId,
    id: TemplateId,
    template: &Template,
    audit: &AuditEntry,
) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "INSERT INTO template_versions (tenant_id, template_id, version, name, channel, kind,
           body_en, body_ar, subject_en, subject_ar, variables, is_active, actor, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11{JSONB}, $12, $13, $14)"
    ))
    .bind(tenant.as_str())
    .bind(id.to_string())
    .bind(i64::from(template.version))
    .bind(template.name.as_str())
    .bind(template.channel.as_str())
    .bind(template.kind.as_str())
    .bind(template.body.en.as_str())
    .bind(template.body.ar.as_str())
    .bind(template.subject.as_ref().map(|s| s.en.as_str()))
    .bind(template.subject.as_ref().map(|s| s.ar.as_str()))
    .bind(to_json(&template.variables)?)
    .bind(template.is_active)
    .bind(&audit.actor)
    .bind(millis(audit.at))
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// The current version of a live template, on the caller's connection.
async fn current(
    conn: &mut Conn,
    tenant: &TenantId,
    id: TemplateId,
) -> Result<Option<StoredTemplate>, StoreError> {
    let sql = format!("{CURRENT} WHERE t.tenant_id = $1 AND t.id = $2 AND t.deleted_at IS NULL");
    let row = sqlx::query(&sql)
        .bind(tenant.as_str())
        .bind(id.to_string())
        .fetch_optional(conn)
        .await
        .map_err(map_err)?;
    row.as_ref().map(stored).transpose()
}

/// Whether a live template has this id (to tell `NotFound` from `Conflict`).
/// Ends a template write: records `audit` and commits, returning the template as stored.
async fn audited_current(
    mut tx: WriteTx<'_>,
    tenant: &TenantId,
    id: TemplateId,
    audit: &AuditEntry,
) -> Result<StoredTemplate, StoreError> {
    audit::insert(&mut tx, tenant, audit).await?;
    let stored = current(&mut tx, tenant, id)
        .await?
        .ok_or(StoreError::NotFound)?;
    tx.commit().await.map_err(map_err)?;
    Ok(stored)
}

async fn live_version(
    conn: &mut Conn,
    tenant: &TenantId,
    id: TemplateId,
) -> Result<Option<i64>, StoreError> {
    sqlx::query_scalar(
        "SELECT version FROM templates WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
    )
    .bind(tenant.as_str())
    .bind(id.to_string())
    .fetch_optional(conn)
    .await
    .map_err(map_err)
}

fn name_taken(template: &Template) -> impl Fn(StoreError) -> StoreError + '_ {
    move |e| match e {
        StoreError::Conflict(_) => {
            StoreError::Conflict(format!("a template named {} exists", template.name))
        }
        e => e,
    }
}

#[async_trait]
impl TemplateStore for Backend {
    async fn create_template(
        &self,
        tenant: &TenantId,
        id: TemplateId,
        template: &Template,
        audit: &AuditEntry,
    ) -> Result<StoredTemplate, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
        "INSERT INTO templates (id, tenant_id, name, version, is_active, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id.to_string())
    .bind(tenant.as_str())
    .bind(template.name.as_str())
    .bind(i64::from(template.version))
    .bind(template.is_active)
    .bind(millis(audit.at))
    .bind(millis(audit.at))
    .execute(&mut *tx)
    .await
    .map_err(map_err)
    .map_err(name_taken(template))?;
        insert_version(&mut tx, tenant, id, template, audit).await?;
        audited_current(tx, tenant, id, audit).await
    }

    async fn get_template(
        &self,
        tenant: &TenantId,
        id: TemplateId,
    ) -> Result<Option<StoredTemplate>, StoreError> {
        let mut conn = self.reader().acquire().await.map_err(map_err)?;
        current(&mut conn, tenant, id).await
    }

    async fn template_by_name(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Option<StoredTemplate>, StoreError> {
        let sql =
            format!("{CURRENT} WHERE t.tenant_id = $1 AND t.name = $2 AND t.deleted_at IS NULL");
        let row = sqlx::query(&sql)
            .bind(tenant.as_str())
            .bind(name)
            .fetch_optional(self.reader())
            .await
            .map_err(map_err)?;
        row.as_ref().map(stored).transpose()
    }

    async fn template_version(
        &self,
        tenant: &TenantId,
        id: TemplateId,
        version: u32,
    ) -> Result<Option<Template>, StoreError> {
        let sql = format!("{VERSION} WHERE tenant_id = $1 AND template_id = $2 AND version = $3");
        let row = sqlx::query(&sql)
            .bind(tenant.as_str())
            .bind(id.to_string())
            .bind(i64::from(version))
            .fetch_optional(self.reader())
            .await
            .map_err(map_err)?;
        row.map(|r| template_from_row(&r, r.get::<bool, _>("is_active")))
            .transpose()
    }

    async fn list_templates(
        &self,
        tenant: &TenantId,
        filter: &TemplateFilter,
        page: PageRequest,
    ) -> Result<Page<StoredTemplate>, StoreError> {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(CURRENT);
        qb.push(" WHERE t.tenant_id = ")
            .push_bind(tenant.as_str())
            .push(" AND t.deleted_at IS NULL AND t.seq < ")
            .push_bind(page.before.unwrap_or(i64::MAX));
        if let Some(channel) = filter.channel {
            qb.push(" AND v.channel = ").push_bind(channel.as_str());
        }
        if let Some(kind) = filter.kind {
            qb.push(" AND v.kind = ").push_bind(kind.as_str());
        }
        if let Some(active) = filter.active {
            qb.push(" AND t.is_active = ").push_bind(active);
        }
        qb.push(" ORDER BY t.seq DESC LIMIT ")
            .push_bind(i64::from(page.limit) + 1);
        let rows = qb.build().fetch_all(self.reader()).await.map_err(map_err)?;
        let items = rows
            .iter()
            .map(|r| Ok((r.get::<i64, _>("seq"), stored(r)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let page = Page::from_overfetch(items, page.limit, |(seq, _)| *seq);
        Ok(Page {
            items: page.items.into_iter().map(|(_, t)| t).collect(),
            next: page.next,
        })
    }

    async fn update_template(
        &self,
        tenant: &TenantId,
        id: TemplateId,
        template: &Template,
        audit: &AuditEntry,
    ) -> Result<StoredTemplate, StoreError> {
        let previous = i64::from(template.version) - 1;
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE templates SET version = $1, name = $2, is_active = $3, updated_at = $4
         WHERE tenant_id = $5 AND id = $6 AND deleted_at IS NULL AND version = $7",
        )
        .bind(i64::from(template.version))
        .bind(template.name.as_str())
        .bind(template.is_active)
        .bind(millis(audit.at))
        .bind(tenant.as_str())
        .bind(id.to_string())
        .bind(previous)
        .execute(&mut *tx)
        .await
        .map_err(map_err)
        .map_err(name_taken(template))?;
        if done.rows_affected() == 0 {
            return Err(match live_version(&mut tx, tenant, id).await? {
                Some(v) => StoreError::Conflict(format!(
                    "the template is at version {v}, not {previous}: it was edited meanwhile"
                )),
                None => StoreError::NotFound,
            });
        }
        insert_version(&mut tx, tenant, id, template, audit).await?;
        audited_current(tx, tenant, id, audit).await
    }

    async fn set_template_active(
        &self,
        tenant: &TenantId,
        id: TemplateId,
        active: bool,
        audit: &AuditEntry,
    ) -> Result<StoredTemplate, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE templates SET is_active = $1, updated_at = $2
         WHERE tenant_id = $3 AND id = $4 AND deleted_at IS NULL",
        )
        .bind(active)
        .bind(millis(audit.at))
        .bind(tenant.as_str())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        found(done.rows_affected())?;
        audited_current(tx, tenant, id, audit).await
    }

    async fn delete_template(
        &self,
        tenant: &TenantId,
        id: TemplateId,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE templates SET deleted_at = $1, updated_at = $2
         WHERE tenant_id = $3 AND id = $4 AND deleted_at IS NULL",
        )
        .bind(millis(audit.at))
        .bind(millis(audit.at))
        .bind(tenant.as_str())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        found(done.rows_affected())?;
        audit::insert(&mut tx, tenant, audit).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(())
    }

    async fn template_versions(
        &self,
        tenant: &TenantId,
        id: TemplateId,
    ) -> Result<Vec<TemplateVersion>, StoreError> {
        let sql =
            format!("{VERSION} WHERE tenant_id = $1 AND template_id = $2 ORDER BY version DESC");
        let rows = sqlx::query(&sql)
            .bind(tenant.as_str())
            .bind(id.to_string())
            .fetch_all(self.reader())
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|r| template_version_from_row(r, r.get::<bool, _>("is_active")))
            .collect()
    }
}
