//! The directory's upsert, written once for both backends (`QueryBuilder` numbers the
//! parameters in each backend's own style; `ON CONFLICT … DO UPDATE` and `excluded`
//! mean the same on SQLite and PostgreSQL).

use sqlx::{Database, Encode, QueryBuilder, Type};

use crate::domain::ids::TenantId;
use crate::domain::user::DirectoryUser;

/// Rows per multi-row upsert (7 parameters each, far below either database's limit).
pub(crate) const UPSERT_CHUNK: usize = 200;

/// `INSERT … VALUES (…), (…) ON CONFLICT DO UPDATE` for at most [`UPSERT_CHUNK`]
/// users, each at most once (PostgreSQL refuses to update one row twice in a statement).
pub(crate) fn upsert_users<'a, DB>(chunk: &'a [(TenantId, DirectoryUser)]) -> QueryBuilder<'a, DB>
where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
    Option<&'a str>: Encode<'a, DB> + Type<DB>,
    i64: 'a + Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new(
        "INSERT INTO users (tenant_id, user_id, role, name, locale, created_at, updated_at) ",
    );
    qb.push_values(chunk, |mut b, (tenant, user)| {
        let at = user.updated_at.timestamp_millis();
        b.push_bind(tenant.as_str())
            .push_bind(user.user.as_str())
            .push_bind(user.role.as_str())
            .push_bind(user.name.as_deref())
            .push_bind(user.locale.as_deref())
            .push_bind(at)
            .push_bind(at);
    });
    qb.push(
        " ON CONFLICT (tenant_id, user_id) DO UPDATE SET
           role = excluded.role, name = excluded.name, locale = excluded.locale,
           updated_at = excluded.updated_at",
    );
    qb
}
