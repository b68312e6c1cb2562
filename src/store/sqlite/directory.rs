use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite};

use super::{from_millis, map_err, SqliteStore};
use crate::domain::auth::Role;
use crate::domain::ids::{TenantId, UserId};
use crate::domain::user::DirectoryUser;
use crate::store::columns::directory::{upsert_users, UPSERT_CHUNK};
use crate::store::{DirectoryStore, Page, PageRequest, StoreError};

fn user_from_row(row: &SqliteRow) -> Result<(i64, DirectoryUser), StoreError> {
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
impl DirectoryStore for SqliteStore {
    async fn upsert_users(&self, users: &[(TenantId, DirectoryUser)]) -> Result<(), StoreError> {
        for chunk in users.chunks(UPSERT_CHUNK) {
            upsert_users::<Sqlite>(chunk)
                .build()
                .execute(&self.writer)
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
             WHERE tenant_id = ? AND (? IS NULL OR role = ?) AND seq < ?
             ORDER BY seq DESC LIMIT ?",
        )
        .bind(tenant.as_str())
        .bind(role.map(Role::as_str))
        .bind(role.map(Role::as_str))
        .bind(page.before.unwrap_or(i64::MAX))
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&self.reader)
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
        let rows =
            sqlx::query("SELECT user_id FROM users WHERE tenant_id = ? AND role = ? ORDER BY seq")
                .bind(tenant.as_str())
                .bind(role.as_str())
                .fetch_all(&self.reader)
                .await
                .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                UserId::parse(r.get::<&str, _>(0)).map_err(|e| StoreError::Internal(e.to_string()))
            })
            .collect()
    }
}
