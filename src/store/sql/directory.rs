//! The staff directory: users as the tokens named them, upserted in batches, listed by role.
//! Written once for both backends (see `store/sql/mod.rs`).

use async_trait::async_trait;
use sqlx::Row;

use super::{from_millis, map_err, Backend, Db, DbRow};
use crate::domain::auth::Role;
use crate::domain::ids::{TenantId, UserId};
use crate::domain::user::DirectoryUser;
use crate::store::columns::directory::{upsert_users, UPSERT_CHUNK};
use crate::store::{DirectoryStore, Page, PageRequest, StoreError};

fn user_from_row(row: &DbRow) -> Result<(i64, DirectoryUser), StoreError> {
    let corrupt = |e: crate::domain::Invalid| StoreError::Internal(format!("bad user row: {e}"));
    let user: String = row.get("user_id");
    let role: String = row.get("role");
    Ok((
        row.get("seq"),
        DirectoryUser {
            user: UserId::parse(&user).map_err(corrupt)?,
            role: role.parse().map_err(corrupt)?,
            name: row.get("name"),
            locale: row.get("locale"),
            updated_at: from_millis(row.get("updated_at")),
        },
    ))
}

#[async_trait]
impl DirectoryStore for Backend {
    async fn upsert_users(&self, users: &[(TenantId, DirectoryUser)]) -> Result<(), StoreError> {
        for chunk in users.chunks(UPSERT_CHUNK) {
            upsert_users::<Db>(chunk)
                .build()
                .execute(&mut *self.write_conn().await?)
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }

    async fn list_users(
        &self,
        tenant: &TenantId,
        role: Option<Role>,
        page: PageRequest,
    ) -> Result<Page<DirectoryUser>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, user_id, role, name, locale, updated_at FROM users
             WHERE tenant_id = $1 AND (CAST($2 AS TEXT) IS NULL OR role = $2) AND seq < $3
             ORDER BY seq DESC LIMIT $4",
        )
        .bind(tenant.as_str())
        .bind(role.map(Role::as_str))
        .bind(page.before.unwrap_or(i64::MAX))
        .bind(i64::from(page.limit) + 1)
        .fetch_all(self.reader())
        .await
        .map_err(map_err)?;
        let rows = rows
            .iter()
            .map(user_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let page = Page::from_overfetch(rows, page.limit, |(seq, _)| *seq);
        Ok(Page {
            items: page.items.into_iter().map(|(_, u)| u).collect(),
            next: page.next,
        })
    }

    async fn user_ids_with_role(
        &self,
        tenant: &TenantId,
        role: Role,
    ) -> Result<Vec<UserId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT user_id FROM users WHERE tenant_id = $1 AND role = $2 ORDER BY seq",
        )
        .bind(tenant.as_str())
        .bind(role.as_str())
        .fetch_all(self.reader())
        .await
        .map_err(map_err)?;
        ids.iter()
            .map(|u| UserId::parse(u).map_err(|e| StoreError::Internal(e.to_string())))
            .collect()
    }
}
