//! JSON columns in SQLite's words. Why this differs per backend: SQLite keeps JSON as
//! TEXT and edits it with `json_remove`; PostgreSQL keeps the texts handed back byte
//! for byte as `json` and edits them through `jsonb` (see `postgres/json.rs`).

use sqlx::SqliteConnection;

use super::{map_err, placeholders, IN_CHUNK};
use crate::store::columns::phi::PHI_EVENT_KEYS;
use crate::store::StoreError;

/// An empty JSON object where a JSON column is overwritten by a literal.
pub(super) const EMPTY_OBJECT: &str = "'{}'";

/// Removes the provider and free texts from the event trails of `ids` (one tenant's).
pub(super) async fn strip_event_texts(
    conn: &mut SqliteConnection,
    tenant: &str,
    ids: &[String],
) -> Result<(), StoreError> {
    let paths: Vec<String> = PHI_EVENT_KEYS.iter().map(|k| format!("'$.{k}'")).collect();
    for chunk in ids.chunks(IN_CHUNK) {
        // Details are JSON the hub wrote; anything else is dropped rather than kept.
        let sql = format!(
            "UPDATE message_events SET detail = CASE WHEN json_valid(detail)
               THEN json_remove(detail, {}) ELSE '{{}}' END
             WHERE tenant_id = ? AND message_id IN ({})",
            paths.join(", "),
            placeholders(chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(tenant);
        for id in chunk {
            q = q.bind(id);
        }
        q.execute(&mut *conn).await.map_err(map_err)?;
    }
    Ok(())
}
