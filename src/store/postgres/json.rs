//! JSON columns in PostgreSQL's words. Why this differs per backend: the texts handed
//! back byte for byte are `json` (JSONB would reorder keys), so they are edited through a
//! `jsonb` cast; SQLite keeps JSON as TEXT and uses `json_remove` (see `sqlite/json.rs`).

use sqlx::PgConnection;

use super::map_err;
use crate::store::columns::phi::PHI_EVENT_KEYS;
use crate::store::StoreError;

/// An empty JSON object where a JSONB column is overwritten by a literal.
pub(super) const EMPTY_OBJECT: &str = "'{}'::jsonb";

/// Removes the provider and free texts from the event trails of `ids` (one tenant's).
/// `detail` is JSON (kept byte for byte elsewhere); the keys are removed through JSONB.
pub(super) async fn strip_event_texts(
    conn: &mut PgConnection,
    tenant: &str,
    ids: &[String],
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE message_events SET detail = (detail::jsonb - $3::text[])::json
         WHERE tenant_id = $1 AND message_id = ANY($2)",
    )
    .bind(tenant)
    .bind(ids)
    .bind(&PHI_EVENT_KEYS[..])
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}
