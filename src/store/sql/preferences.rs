//! Staff notification preferences: muted categories and quiet hours, one row per user,
//! and the categories a user's notifications carry (what there is to filter or mute).
//! Written once for both backends (see `store/sql/mod.rs`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{map_err, millis, Backend, JSONB};
use crate::domain::ids::{TenantId, UserId};
use crate::domain::preferences::StaffPreferences;
use crate::store::{PreferenceStore, StoreError};

/// The columns both reads select, in the order [`prefs_from_columns`] takes them.
pub(in crate::store) const PREF_COLUMNS: &str =
    "CAST(muted_categories AS TEXT) AS muted, quiet_start, quiet_end, quiet_tz";

use crate::store::columns::prefs_from_columns;

#[async_trait]
impl PreferenceStore for Backend {
    async fn staff_preferences(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<StaffPreferences, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {PREF_COLUMNS} FROM staff_preferences WHERE tenant_id = $1 AND user_id = $2"
        ))
        .bind(tenant.as_str())
        .bind(user.as_str())
        .fetch_optional(self.reader())
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
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let muted = serde_json::to_string(&prefs.muted_categories)
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let q = prefs.quiet_hours.as_ref();
        sqlx::query(&format!(
            "INSERT INTO staff_preferences
               (tenant_id, user_id, muted_categories, quiet_start, quiet_end, quiet_tz, updated_at)
             VALUES ($1, $2, $3{JSONB}, $4, $5, $6, $7)
             ON CONFLICT (tenant_id, user_id) DO UPDATE SET
               muted_categories = excluded.muted_categories, quiet_start = excluded.quiet_start,
               quiet_end = excluded.quiet_end, quiet_tz = excluded.quiet_tz,
               updated_at = excluded.updated_at"
        ))
        .bind(tenant.as_str())
        .bind(user.as_str())
        .bind(muted)
        .bind(q.map(|q| q.start.format("%H:%M").to_string()))
        .bind(q.map(|q| q.end.format("%H:%M").to_string()))
        .bind(q.map(|q| q.tz.name().to_owned()))
        .bind(millis(now))
        .execute(&mut *self.write_conn().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn notification_categories(
        &self,
        tenant: &TenantId,
        user: &UserId,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT DISTINCT category FROM notifications
             WHERE tenant_id = $1 AND user_id = $2 AND archived_at IS NULL AND category IS NOT NULL
             ORDER BY category LIMIT $3",
        )
        .bind(tenant.as_str())
        .bind(user.as_str())
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await
        .map_err(map_err)
    }
}
