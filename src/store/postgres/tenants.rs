use async_trait::async_trait;
use chrono::Utc;
use sqlx::Row;

use super::{map_err, millis, PostgresStore};
use crate::domain::ids::TenantId;
use crate::store::{ApiKeyRecord, StoreError, TenantStore};

fn now_millis() -> i64 {
    millis(Utc::now())
}

#[async_trait]
impl TenantStore for PostgresStore {
    async fn create_tenant(
        &self,
        tenant: &TenantId,
        name: &str,
        jwt_secret: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tenants (id, name, jwt_secret, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(tenant.as_str())
        .bind(name)
        .bind(jwt_secret)
        .bind(now_millis())
        .execute(&self.pool)
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
            "INSERT INTO tenants (id, name, jwt_secret, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, jwt_secret = excluded.jwt_secret",
        )
        .bind(tenant.as_str())
        .bind(name)
        .bind(jwt_secret)
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn tenant_exists(&self, tenant: &TenantId) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM tenants WHERE id = $1")
            .bind(tenant.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(row.is_some())
    }

    async fn jwt_secret(&self, tenant: &TenantId) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT jwt_secret FROM tenants WHERE id = $1")
            .bind(tenant.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn insert_api_key(
        &self,
        tenant: &TenantId,
        prefix: &str,
        key_hash: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (prefix, tenant_id, key_hash, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (key_hash) DO NOTHING",
        )
        .bind(prefix)
        .bind(tenant.as_str())
        .bind(key_hash)
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row =
            sqlx::query("SELECT tenant_id, prefix, revoked_at FROM api_keys WHERE key_hash = $1")
                .bind(key_hash)
                .fetch_optional(&self.pool)
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
            "UPDATE api_keys SET revoked_at = $1
             WHERE prefix LIKE $2 ESCAPE '\\' AND revoked_at IS NULL",
        )
        .bind(now_millis())
        .bind(pattern)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }
}
