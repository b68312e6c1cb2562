use async_trait::async_trait;
use chrono::Utc;
use sqlx::Row;

use super::{map_err, millis, SqliteStore};
use crate::domain::ids::{TenantId, UserId};
use crate::domain::preferences::StaffPreferences;
use crate::store::{PreferenceStore, StoreError};

pub(super) use crate::store::columns::prefs_from_columns;

#[async_trait]
impl PreferenceStore for SqliteStore {
    async fn staff_preferences(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<StaffPreferences, StoreError> {
        let row = sqlx::query(
            "SELECT muted_categories, quiet_start, quiet_end, quiet_tz FROM staff_preferences
             WHERE tenant_id = ? AND user_id = ?",
        )
        .bind(tenant.as_str())
        .bind(user.as_str())
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?;
        match row {
            None => Ok(StaffPreferences::default()),
            Some(r) => prefs_from_columns(r.get(0), r.get(1), r.get(2), r.get(3)),
        }
    }

    async fn put_staff_preferences(
        &self,
        tenant: &TenantId,
        user: &UserId,
        prefs: &StaffPreferences,
    ) -> Result<(), StoreError> {
        let muted = serde_json::to_string(&prefs.muted_categories)
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let q = prefs.quiet_hours.as_ref();
        sqlx::query(
            "INSERT INTO staff_preferences
               (tenant_id, user_id, muted_categories, quiet_start, quiet_end, quiet_tz, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (tenant_id, user_id) DO UPDATE SET
               muted_categories = excluded.muted_categories, quiet_start = excluded.quiet_start,
               quiet_end = excluded.quiet_end, quiet_tz = excluded.quiet_tz, updated_at = excluded.updated_at",
        )
        .bind(tenant.as_str())
        .bind(user.as_str())
        .bind(muted)
        .bind(q.map(|q| q.start.format("%H:%M").to_string()))
        .bind(q.map(|q| q.end.format("%H:%M").to_string()))
        .bind(q.map(|q| q.tz.name().to_owned()))
        .bind(millis(Utc::now()))
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(())
    }
}
