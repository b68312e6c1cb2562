use async_trait::async_trait;
use chrono::Utc;
use sqlx::Row;

use super::{map_err, millis, SqliteStore};
use crate::domain::ids::TenantId;
use crate::store::{ApiKeyRecord, StoreError, TenantStore};

#[async_trait]
impl TenantStore for SqliteStore {
    async fn create_tenant(
        &self,
        tenant: &TenantId,
        name: &str,
        jwt_secret: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO tenants (id, name, jwt_secret, created_at) VALUES (?, ?, ?, ?)")
            .bind(tenant.as_str())
            .bind(name)
            .bind(jwt_secret)
            .bind(millis(Utc::now()))
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn upsert_tenant(
        &self,
        tenant: &TenantId,
        name: &str,
        jwt_secret: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tenants (id, name, jwt_secret, created_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, jwt_secret = excluded.jwt_secret",
        )
        .bind(tenant.as_str())
        .bind(name)
        .bind(jwt_secret)
        .bind(millis(Utc::now()))
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn tenant_exists(&self, tenant: &TenantId) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM tenants WHERE id = ?")
            .bind(tenant.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(row.is_some())
    }

    async fn jwt_secret(&self, tenant: &TenantId) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT jwt_secret FROM tenants WHERE id = ?")
            .bind(tenant.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn insert_api_key(
        &self,
        tenant: &TenantId,
        prefix: &str,
        key_hash: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (prefix, tenant_id, key_hash, created_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (key_hash) DO NOTHING",
        )
        .bind(prefix)
        .bind(tenant.as_str())
        .bind(key_hash)
        .bind(millis(Utc::now()))
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row =
            sqlx::query("SELECT tenant_id, prefix, revoked_at FROM api_keys WHERE key_hash = ?")
                .bind(key_hash)
                .fetch_optional(&self.reader)
                .await
                .map_err(map_err)?;
        row.map(|r| {
            let tenant: String = r.get(0);
            Ok(ApiKeyRecord {
                tenant: TenantId::parse(&tenant)
                    .map_err(|e| StoreError::Internal(e.to_string()))?,
                prefix: r.get(1),
                revoked: r.get::<Option<i64>, _>(2).is_some(),
            })
        })
        .transpose()
    }

    async fn revoke_api_keys(&self, prefix: &str) -> Result<u64, StoreError> {
        // Prefixes are random base62, so LIKE wildcards cannot appear in them; escape anyway.
        let pattern = format!(
            "{}%",
            prefix
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = ? WHERE prefix LIKE ? ESCAPE '\\' AND revoked_at IS NULL",
        )
        .bind(millis(Utc::now()))
        .bind(pattern)
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }
}
