//! Patient messaging preferences on SQLite: one row per patient; the kinds a patient
//! never switched are absent from `kinds`, so they keep following the default.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{audit, map_err, millis, placeholders, SqliteStore, IN_CHUNK};
use crate::domain::ids::{PatientId, TenantId};
use crate::domain::message::{ChannelSwitches, PatientPreferences};
use crate::store::columns::outbound::{kinds_json, patient_prefs_from_row};
use crate::store::outbound::AuditEntry;
use crate::store::StoreError;

const COLUMNS: &str =
    "patient_id, phone, email, language, preferred_channel, sms_on, whatsapp_on, email_on, kinds";

fn prefs(row: &SqliteRow) -> Result<PatientPreferences, StoreError> {
    let on = |c: &str| row.get::<i64, _>(c) != 0;
    let channels = ChannelSwitches {
        sms: on("sms_on"),
        whatsapp: on("whatsapp_on"),
        email: on("email_on"),
    };
    patient_prefs_from_row(row, channels)
}

pub(super) async fn patient_preferences(
    store: &SqliteStore,
    tenant: &TenantId,
    patient: &PatientId,
) -> Result<Option<PatientPreferences>, StoreError> {
    let sql =
        format!("SELECT {COLUMNS} FROM patient_preferences WHERE tenant_id = ? AND patient_id = ?");
    let row = sqlx::query(&sql)
        .bind(tenant.as_str())
        .bind(patient.as_str())
        .fetch_optional(&store.reader)
        .await
        .map_err(map_err)?;
    row.as_ref().map(prefs).transpose()
}

pub(super) async fn patient_preferences_many(
    store: &SqliteStore,
    tenant: &TenantId,
    patients: &[PatientId],
) -> Result<BTreeMap<PatientId, PatientPreferences>, StoreError> {
    let mut out = BTreeMap::new();
    for chunk in patients.chunks(IN_CHUNK) {
        let sql = format!(
            "SELECT {COLUMNS} FROM patient_preferences WHERE tenant_id = ? AND patient_id IN ({})",
            placeholders(chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(tenant.as_str());
        for p in chunk {
            q = q.bind(p.as_str());
        }
        for row in q.fetch_all(&store.reader).await.map_err(map_err)? {
            let id = PatientId::parse(row.get("patient_id"))
                .map_err(|e| StoreError::Internal(format!("bad patient preferences row: {e}")))?;
            out.insert(id, prefs(&row)?);
        }
    }
    Ok(out)
}

pub(super) async fn put_patient_preferences(
    store: &SqliteStore,
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
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
    .bind(i64::from(prefs.channels.sms))
    .bind(i64::from(prefs.channels.whatsapp))
    .bind(i64::from(prefs.channels.email))
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
