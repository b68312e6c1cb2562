//! Templates: create (version 1), edit (a new version; messages keep the version
//! they used), toggle, soft delete, and the test render.

use std::collections::BTreeMap;

use serde_json::json;

use super::audit::{entry, Actor};
use super::Outbound;
use crate::domain::ids::{TemplateId, TenantId};
use crate::domain::template::{Language, Rendered, Template, TemplateDraft};
use crate::service::ServiceError;
use crate::store::outbound::{StoredTemplate, TemplateFilter, TemplateVersion};
use crate::store::{Page, PageRequest, StoreError};

fn target(id: TemplateId) -> String {
    format!("template:{id}")
}

impl Outbound {
    /// Validates and stores version 1. A name already used by a live template of
    /// the tenant is a 409 `template_name_taken`.
    pub async fn create_template(
        &self,
        tenant: &TenantId,
        draft: TemplateDraft,
        actor: &Actor,
    ) -> Result<StoredTemplate, ServiceError> {
        let template = Template::create(draft)?;
        let id = TemplateId::new_random();
        let audit = entry(
            actor,
            "template.create",
            target(id),
            json!({"name": template.name.as_str(), "version": template.version,
                   "channel": template.channel.as_str(), "is_active": template.is_active}),
            self.now(),
        );
        self.store
            .create_template(tenant, id, &template, &audit)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => ServiceError::Conflict {
                    code: "template_name_taken",
                    message: format!(
                        "a template named {} exists; edit it or choose another name",
                        template.name
                    ),
                },
                other => other.into(),
            })
    }

    pub async fn template(
        &self,
        tenant: &TenantId,
        id: TemplateId,
    ) -> Result<StoredTemplate, ServiceError> {
        self.store
            .get_template(tenant, id)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    pub async fn list_templates(
        &self,
        tenant: &TenantId,
        filter: &TemplateFilter,
        page: PageRequest,
    ) -> Result<Page<StoredTemplate>, ServiceError> {
        Ok(self.store.list_templates(tenant, filter, page).await?)
    }

    /// Every version of a template, newest first.
    pub async fn template_versions(
        &self,
        tenant: &TenantId,
        id: TemplateId,
    ) -> Result<Vec<TemplateVersion>, ServiceError> {
        let versions = self.store.template_versions(tenant, id).await?;
        if versions.is_empty() {
            return Err(ServiceError::NotFound);
        }
        Ok(versions)
    }

    /// An edit: the draft replaces the whole template as its next version. Two
    /// edits racing from the same version: the second is a 409 `edit_conflict`.
    pub async fn update_template(
        &self,
        tenant: &TenantId,
        id: TemplateId,
        draft: TemplateDraft,
        actor: &Actor,
    ) -> Result<StoredTemplate, ServiceError> {
        let current = self.template(tenant, id).await?;
        let next = current.template.revise(draft)?;
        let audit = entry(
            actor,
            "template.update",
            target(id),
            json!({"name": next.name.as_str(), "from_version": current.template.version,
                   "version": next.version, "is_active": next.is_active}),
            self.now(),
        );
        self.store
            .update_template(tenant, id, &next, &audit)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => ServiceError::Conflict {
                    code: "edit_conflict",
                    message: "the template changed since it was read; reload and edit again".into(),
                },
                other => other.into(),
            })
    }

    /// Flips `is_active` (no new version: the text did not change).
    pub async fn toggle_template(
        &self,
        tenant: &TenantId,
        id: TemplateId,
        actor: &Actor,
    ) -> Result<StoredTemplate, ServiceError> {
        let current = self.template(tenant, id).await?;
        let active = !current.template.is_active;
        let audit = entry(
            actor,
            "template.toggle",
            target(id),
            json!({"name": current.template.name.as_str(), "is_active": active}),
            self.now(),
        );
        Ok(self
            .store
            .set_template_active(tenant, id, active, &audit)
            .await?)
    }

    /// Soft delete: the name is free again; stored messages keep their version.
    /// A template the clinic-event rules send is a 409 `template_in_use` naming
    /// the rules: deleting it would make every such event fail.
    pub async fn delete_template(
        &self,
        tenant: &TenantId,
        id: TemplateId,
        actor: &Actor,
    ) -> Result<(), ServiceError> {
        let current = self.template(tenant, id).await?;
        let name = current.template.name.as_str();
        let rules = self.rules_using(tenant, name);
        if !rules.is_empty() {
            return Err(ServiceError::Conflict {
                code: "template_in_use",
                message: format!(
                    "template {name} is used by the clinic-event rules {}; change the rules \
                     first, or deactivate it to suppress those messages",
                    rules.join(", ")
                ),
            });
        }
        let audit = entry(
            actor,
            "template.delete",
            target(id),
            json!({"name": current.template.name.as_str(), "version": current.template.version}),
            self.now(),
        );
        Ok(self.store.delete_template(tenant, id, &audit).await?)
    }

    /// Renders the current version with sample values, exactly as a send would
    /// (inactive templates too: that is how a draft is checked before it goes live).
    pub async fn test_template(
        &self,
        tenant: &TenantId,
        id: TemplateId,
        language: Language,
        variables: &BTreeMap<String, String>,
    ) -> Result<Rendered, ServiceError> {
        let current = self.template(tenant, id).await?;
        current
            .template
            .render(language, variables)
            .map_err(|error| ServiceError::Render {
                field: "variables".into(),
                error,
            })
    }
}
