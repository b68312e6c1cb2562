//! Tenants, their API keys and JWT signing secrets, and per-user token revocations.
//! Written once for both backends (see `store/sql/mod.rs`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{found, map_err, millis, Backend};
use crate::domain::ids::{TenantId, UserId};
use crate::store::{
    ApiKeyRecord, SecretColumns, SigningSecret, StoreError, TenantSecrets, TenantStore,
    TokenRevocation, SECRET_COLUMNS,
};

/// One tenant row; `on_conflict` is empty (a second create is a conflict) or the
/// upsert's clause.
async fn insert_tenant(
    store: &Backend,
    on_conflict: &str,
    tenant: &TenantId,
    name: &str,
    jwt_secret: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO tenants (id, name, jwt_secret, created_at) VALUES ($1, $2, $3, $4) {on_conflict}"
    );
    sqlx::query(&sql)
        .bind(tenant.as_str())
        .bind(name)
        .bind(jwt_secret)
        .bind(millis(now))
        .execute(&mut *store.write_conn().await?)
        .await
        .map_err(map_err)?;
    Ok(())
}

#[async_trait]
impl TenantStore for Backend {
    async fn create_tenant(
        &self,
        tenant: &TenantId,
        name: &str,
        jwt_secret: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        insert_tenant(self, "", tenant, name, jwt_secret, now).await
    }

    async fn upsert_tenant(
        &self,
        tenant: &TenantId,
        name: &str,
        jwt_secret: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let replace = "ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
                       jwt_secret = excluded.jwt_secret";
        insert_tenant(self, replace, tenant, name, jwt_secret, now).await
    }

    async fn tenant_exists(&self, tenant: &TenantId) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM tenants WHERE id = $1")
            .bind(tenant.as_str())
            .fetch_optional(self.reader())
            .await
            .map_err(map_err)?;
        Ok(row.is_some())
    }

    async fn jwt_secret(&self, tenant: &TenantId) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT jwt_secret FROM tenants WHERE id = $1")
            .bind(tenant.as_str())
            .fetch_optional(self.reader())
            .await
            .map_err(map_err)
    }

    async fn insert_api_key(
        &self,
        tenant: &TenantId,
        prefix: &str,
        key_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (prefix, tenant_id, key_hash, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (key_hash) DO NOTHING",
        )
        .bind(prefix)
        .bind(tenant.as_str())
        .bind(key_hash)
        .bind(millis(now))
        .execute(&mut *self.write_conn().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row =
            sqlx::query("SELECT tenant_id, prefix, revoked_at FROM api_keys WHERE key_hash = $1")
                .bind(key_hash)
                .fetch_optional(self.reader())
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

    async fn revoke_api_key(
        &self,
        tenant: &TenantId,
        prefix: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1
             WHERE tenant_id = $2 AND prefix = $3 AND revoked_at IS NULL",
        )
        .bind(millis(now))
        .bind(tenant.as_str())
        .bind(prefix)
        .execute(&mut *self.write_conn().await?)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn jwt_secrets(&self, tenant: &TenantId) -> Result<Option<TenantSecrets>, StoreError> {
        let row: Option<SecretColumns> = sqlx::query_as(&format!(
            "SELECT {SECRET_COLUMNS} FROM tenants WHERE id = $1"
        ))
        .bind(tenant.as_str())
        .fetch_optional(self.reader())
        .await
        .map_err(map_err)?;
        Ok(row.map(TenantSecrets::from_columns))
    }

    async fn rotate_jwt_secret(
        &self,
        tenant: &TenantId,
        next: &SigningSecret,
        previous_until: i64,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE tenants SET previous_jwt_kid = jwt_kid, previous_jwt_secret = jwt_secret,
                 previous_valid_until = $1, jwt_kid = $2, jwt_secret = $3
             WHERE id = $4",
        )
        .bind(previous_until)
        .bind(&next.kid)
        .bind(&next.secret)
        .bind(tenant.as_str())
        .execute(&mut *self.write_conn().await?)
        .await
        .map_err(map_err)?;
        found(done.rows_affected())
    }

    async fn revoke_user_tokens(
        &self,
        tenant: &TenantId,
        user: &UserId,
        not_before: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO token_revocations (tenant_id, user_id, not_before, revoked_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, user_id) DO UPDATE SET
                 not_before = CASE WHEN excluded.not_before > token_revocations.not_before
                     THEN excluded.not_before ELSE token_revocations.not_before END,
                 revoked_at = excluded.revoked_at",
        )
        .bind(tenant.as_str())
        .bind(user.as_str())
        .bind(not_before)
        .bind(now)
        .execute(&mut *self.write_conn().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn token_revocations(
        &self,
        tenant: &TenantId,
        since: i64,
    ) -> Result<Vec<(UserId, i64)>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT user_id, not_before FROM token_revocations
             WHERE tenant_id = $1 AND not_before > $2",
        )
        .bind(tenant.as_str())
        .bind(since)
        .fetch_all(self.reader())
        .await
        .map_err(map_err)?;
        rows.into_iter()
            .map(|(user, at)| Ok((parse_user(&user)?, at)))
            .collect()
    }

    async fn recent_token_revocations(
        &self,
        since: i64,
    ) -> Result<Vec<TokenRevocation>, StoreError> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT tenant_id, user_id, not_before FROM token_revocations WHERE revoked_at > $1",
        )
        .bind(since)
        .fetch_all(self.reader())
        .await
        .map_err(map_err)?;
        rows.into_iter()
            .map(|(tenant, user, not_before)| {
                Ok(TokenRevocation {
                    tenant: TenantId::parse(&tenant)
                        .map_err(|e| StoreError::Internal(e.to_string()))?,
                    user: parse_user(&user)?,
                    not_before,
                })
            })
            .collect()
    }
}

fn parse_user(user: &str) -> Result<UserId, StoreError> {
    UserId::parse(user).map_err(|e| StoreError::Internal(e.to_string()))
}
