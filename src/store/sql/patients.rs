//! Patient messaging preferences: one row per patient; the kinds a patient
//! never switched are absent from `kinds`, so they keep following the default.
//! Written once for both backends (see `store/sql/mod.rs`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Row};

use super::{audit, map_err, millis, phi, Backend, Db, DbRow, JSONB};
use crate::domain::ids::{PatientId, TenantId};
use crate::domain::message::{ChannelSwitches, PatientPreferences};
use crate::store::columns::outbound::{kinds_json, patient_prefs_from_row};
use crate::store::columns::{push_in_list, IN_CHUNK};
use crate::store::outbound::{
    AuditEntry, ErasureAudit, ErasureCounts, PatientStore, PhiScope, RedactionCounts,
};
use crate::store::StoreError;

const COLUMNS: &str = "patient_id, phone, email, language, preferred_channel, sms_on, \
     whatsapp_on, email_on, CAST(kinds AS TEXT) AS kinds";

fn prefs(row: &DbRow) -> Result<PatientPreferences, StoreError> {
    let channels = ChannelSwitches {
        sms: row.get("sms_on"),
        whatsapp: row.get("whatsapp_on"),
        email: row.get("email_on"),
    };
    patient_prefs_from_row(row, channels)
}

#[async_trait]
impl PatientStore for Backend {
    async fn patient_preferences(
        &self,
        tenant: &TenantId,
        patient: &PatientId,
    ) -> Result<Option<PatientPreferences>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM patient_preferences WHERE tenant_id = $1 AND patient_id = $2"
        );
        let row = sqlx::query(&sql)
            .bind(tenant.as_str())
            .bind(patient.as_str())
            .fetch_optional(self.reader())
            .await
            .map_err(map_err)?;
        row.as_ref().map(prefs).transpose()
    }

    async fn patient_preferences_many(
        &self,
        tenant: &TenantId,
        patients: &[PatientId],
    ) -> Result<BTreeMap<PatientId, PatientPreferences>, StoreError> {
        let mut out = BTreeMap::new();
        for chunk in patients.chunks(IN_CHUNK) {
            let mut qb: QueryBuilder<Db> = QueryBuilder::new(format!(
                "SELECT {COLUMNS} FROM patient_preferences WHERE tenant_id = "
            ));
            qb.push_bind(tenant.as_str()).push(" AND patient_id");
            push_in_list(&mut qb, chunk.iter().map(PatientId::as_str));
            for row in qb.build().fetch_all(self.reader()).await.map_err(map_err)? {
                let id = PatientId::parse(row.get("patient_id")).map_err(|e| {
                    StoreError::Internal(format!("bad patient preferences row: {e}"))
                })?;
                out.insert(id, prefs(&row)?);
            }
        }
        Ok(out)
    }

    async fn put_patient_preferences(
        &self,
        tenant: &TenantId,
        patient: &PatientId,
        prefs: &PatientPreferences,
        audit: Option<&AuditEntry>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(&format!(
            "INSERT INTO patient_preferences (tenant_id, patient_id, phone, email, language,
           preferred_channel, sms_on, whatsapp_on, email_on, kinds, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10{JSONB}, $11)
         ON CONFLICT (tenant_id, patient_id) DO UPDATE SET
           phone = excluded.phone, email = excluded.email, language = excluded.language,
           preferred_channel = excluded.preferred_channel, sms_on = excluded.sms_on,
           whatsapp_on = excluded.whatsapp_on, email_on = excluded.email_on,
           kinds = excluded.kinds, updated_at = excluded.updated_at"
        ))
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

    async fn redact_phi(
        &self,
        scope: &PhiScope,
        cutoff: DateTime<Utc>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<RedactionCounts, StoreError> {
        phi::redact_phi(self, scope, cutoff, limit, now).await
    }

    async fn erase_patient(
        &self,
        tenant: &TenantId,
        patient: &PatientId,
        audit: ErasureAudit<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<ErasureCounts>, StoreError> {
        phi::erase_patient(self, tenant, patient, audit, now).await
    }
}
