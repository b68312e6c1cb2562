//! Seeding: a tenant receives the default clinic-event templates (English and
//! Arabic, config/templates.toml) the first time it posts an event.
//!
//! Seeding happens once per tenant (recorded in the store): a template the clinic
//! later deletes stays deleted, and events that need it fail with
//! `template_unavailable` instead of silently bringing it back. A name the tenant
//! already uses is left alone, so a clinic's own wording is never overwritten.

use super::ClinicEvents;
use crate::domain::ids::{TemplateId, TenantId};
use crate::service::ServiceError;
use crate::store::outbound::AuditEntry;
use crate::store::StoreError;

/// The audit actor of seeded templates.
const SEED_ACTOR: &str = "system:clinic_events";

impl ClinicEvents {
    pub(super) async fn seed(&self, tenant: &TenantId) -> Result<(), ServiceError> {
        if self.seeded_in_memory(tenant) {
            return Ok(());
        }
        if !self.store.templates_seeded(tenant).await? {
            let now = self.clock.now();
            for (name, template) in &self.book.texts.templates {
                if self.store.template_by_name(tenant, name).await?.is_some() {
                    continue;
                }
                let id = TemplateId::new_random();
                let audit = AuditEntry {
                    actor: SEED_ACTOR.to_owned(),
                    action: "template.create".to_owned(),
                    target: format!("template:{id}"),
                    detail: serde_json::json!({ "name": name, "seeded": true }).to_string(),
                    at: now,
                };
                match self
                    .store
                    .create_template(tenant, id, template, &audit)
                    .await
                {
                    // Another node (or request) seeded it at the same moment.
                    Ok(_) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            self.store.mark_templates_seeded(tenant, now).await?;
        }
        self.seeded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant.clone());
        Ok(())
    }

    fn seeded_in_memory(&self, tenant: &TenantId) -> bool {
        self.seeded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(tenant)
    }
}
