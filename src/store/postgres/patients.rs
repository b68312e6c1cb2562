//! Patient messaging preferences on PostgreSQL: one row per patient; the kinds a patient
//! never switched are absent from `kinds`, so they keep following the default.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::{audit, map_err, millis, PostgresStore};
use crate::domain::ids::{PatientId, TenantId};
use crate::domain::message::{ChannelSwitches, PatientPreferences};
use crate::store::columns::outbound::{kinds_json, patient_prefs_from_row};
use crate::store::outbound::AuditEntry;
use crate::store::StoreError;

const COLUMNS: &str = "patient_id, phone, email, language, preferred_channel, sms_on, \
     whatsapp_on, email_on, kinds::text AS kinds";

fn prefs(row: &PgRow) -> Result<PatientPreferences, StoreError> {
    let channels = ChannelSwitches {
        sms: row.get("sms_on"),
        whatsapp: row.get("whatsapp_on"),
        email: row.get("email_on"),
    };
    patient_prefs_from_row(row, channels)
}

pub(super) async fn patient_preferences(
    store: &PostgresStore,
    tenant: &TenantId,
    patient: &PatientId,
) -> Result<Option<PatientPreferences>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM patient_preferences WHERE tenant_id = $1 AND patient_id = $2"
    );
    let row = sqlx::query(&sql)
        .bind(tenant.as_str())
        .bind(patient.as_str())
        .fetch_optional(&store.pool)
        .await
        .map_err(map_err)?;
    row.as_ref().map(prefs).transpose()
}

pub(super) async fn patient_preferences_many(
    store: &PostgresStore,
    tenant: &TenantId,
    patients: &[PatientId],
) -> Result<BTreeMap<PatientId, PatientPreferences>, StoreError> {
    let ids: Vec<&str> = patients.iter().map(|p| p.as_str()).collect();
    let sql = format!(
        "SELECT {COLUMNS} FROM patient_preferences WHERE tenant_id = $1 AND patient_id = ANY($2::text[])"
    );
    let rows = sqlx::query(&sql)
        .bind(tenant.as_str())
        .bind(&ids)
        .fetch_all(&store.pool)
        .await
        .map_err(map_err)?;
    let mut out = BTreeMap::new();
    for row in rows {
        let id = PatientId::parse(row.get("patient_id"))
            .map_err(|e| StoreError::Internal(format!("bad patient preferences row: {e}")))?;
        out.insert(id, prefs(&row)?);
    }
    Ok(out)
}

pub(super) async fn put_patient_preferences(
    store: &PostgresStore,
    tenant: &TenantId,
    patient: &PatientId,
    prefs: &PatientPreferences,
    audit: Option<&AuditEntry>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut tx = store.begin_write().await?;
    sqlx::query(
        "INSERT INTO patient_preferences (tenant_id, patient_id, phone, email, language,
           preferred_channel, sms_on, whatsapp_on, email_on, kinds, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11)
         ON CONFLICT (tenant_id, patient_id) DO UPDATE SET
           phone = excluded.phone, email = excluded.email, language = excluded.language,
           preferred_channel = excluded.preferred_channel, sms_on = excluded.sms_on,
           whatsapp_on = excluded.whatsapp_on, email_on = excluded.email_on,
           kinds = excluded.kinds, updated_at = excluded.updated_at",
    )
    .bind(tenant.as_str())
    .bind(patient.as_str())
    .bind(prefs.phone.as_ref().map(|p| p.as_str()))
    .bind(prefs.email.as_ref().map(|e| e.as_str()))
    .bind(prefs.language.code())
    .bind(prefs.preferred_channel.map(|c| c.as_str()))
    .bind(prefs.channels.sms)
    .bind(prefs.channels.whatsapp)
    .bind(prefs.channels.email)
    .bind(kinds_json(&prefs.kinds)?)
    .bind(millis(now))
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    if let Some(entry) = audit {
        audit::insert(&mut tx, tenant, entry).await?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(())
}
