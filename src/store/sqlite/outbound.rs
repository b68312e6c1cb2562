//! [`OutboundStore`] on Sqlite: each method hands over to the file of its area
//! (`templates`, `patients`, `queue`, `messages`, `callbacks`, `audit`), so this
//! file is only the trait's table of contents.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use tokio::sync::mpsc;

use super::{audit, callbacks, messages, patients, phi, queue, templates, SqliteStore};
use crate::domain::ids::{BatchId, PatientId, TemplateId, TenantId};
use crate::domain::message::{MessageId, PatientPreferences};
use crate::domain::template::Template;
use crate::store::outbound::{
    AttemptUpdate, AuditEntry, AuditFilter, AuditRecord, AuditStore, BatchStatus, CallbackOutcome,
    CallbackStore, CallbackTarget, CallbackUpdate, ClaimedMessage, EnqueueFeed, EnqueueOutcome,
    ErasureAudit, ErasureCounts, MessageEvent, MessageFilter, MessageRecord, MessageStats,
    MessageStore, NewBatch, PatientStore, PhiScope, QueueStore, RedactionCounts, StoredTemplate,
    TemplateFilter, TemplateStore, TemplateVersion,
};
use crate::store::{IdempotencyClaim, Page, PageRequest, StoreError};

#[async_trait]
impl TemplateStore for SqliteStore {
    async fn create_template(
        &self,
        tenant: &TenantId,
        id: TemplateId,
        template: &Template,
        audit: &AuditEntry,
    ) -> Result<StoredTemplate, StoreError> {
        templates::create_template(self, tenant, id, template, audit).await
    }

    async fn get_template(
        &self,
        tenant: &TenantId,
        id: TemplateId,
    ) -> Result<Option<StoredTemplate>, StoreError> {
        templates::get_template(self, tenant, id).await
    }

    async fn template_by_name(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Option<StoredTemplate>, StoreError> {
        templates::template_by_name(self, tenant, name).await
    }

    async fn template_version(
        &self,
        tenant: &TenantId,
        id: TemplateId,
        version: u32,
    ) -> Result<Option<Template>, StoreError> {
        templates::template_version(self, tenant, id, version).await
    }

    async fn list_templates(
        &self,
        tenant: &TenantId,
        filter: &TemplateFilter,
        page: PageRequest,
    ) -> Result<Page<StoredTemplate>, StoreError> {
        templates::list_templates(self, tenant, filter, page).await
    }

    async fn update_template(
        &self,
        tenant: &TenantId,
        id: TemplateId,
        template: &Template,
        audit: &AuditEntry,
    ) -> Result<StoredTemplate, StoreError> {
        templates::update_template(self, tenant, id, template, audit).await
    }

    async fn set_template_active(
        &self,
        tenant: &TenantId,
        id: TemplateId,
        active: bool,
        audit: &AuditEntry,
    ) -> Result<StoredTemplate, StoreError> {
        templates::set_template_active(self, tenant, id, active, audit).await
    }

    async fn delete_template(
        &self,
        tenant: &TenantId,
        id: TemplateId,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        templates::delete_template(self, tenant, id, audit).await
    }

    async fn template_versions(
        &self,
        tenant: &TenantId,
        id: TemplateId,
    ) -> Result<Vec<TemplateVersion>, StoreError> {
        templates::template_versions(self, tenant, id).await
    }
}

#[async_trait]
impl PatientStore for SqliteStore {
    async fn patient_preferences(
        &self,
        tenant: &TenantId,
        patient: &PatientId,
    ) -> Result<Option<PatientPreferences>, StoreError> {
        patients::patient_preferences(self, tenant, patient).await
    }

    async fn patient_preferences_many(
        &self,
        tenant: &TenantId,
        patients: &[PatientId],
    ) -> Result<BTreeMap<PatientId, PatientPreferences>, StoreError> {
        patients::patient_preferences_many(self, tenant, patients).await
    }

    async fn put_patient_preferences(
        &self,
        tenant: &TenantId,
        patient: &PatientId,
        prefs: &PatientPreferences,
        audit: Option<&AuditEntry>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        patients::put_patient_preferences(self, tenant, patient, prefs, audit, now).await
    }

    #[allow(clippy::too_many_arguments)]

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

#[async_trait]
impl QueueStore for SqliteStore {
    async fn enqueue(
        &self,
        tenant: &TenantId,
        batch: Option<&NewBatch>,
        feed: mpsc::Receiver<EnqueueFeed>,
        idempotency: Option<(&IdempotencyClaim, &str)>,
        audit: Option<&AuditEntry>,
        now: DateTime<Utc>,
    ) -> Result<EnqueueOutcome, StoreError> {
        queue::enqueue(self, tenant, batch, feed, idempotency, audit, now).await
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedMessage>, StoreError> {
        queue::claim_due(self, now, lease_until, limit).await
    }

    async fn finish_attempt(
        &self,
        tenant: &TenantId,
        id: MessageId,
        lease_token: uuid::Uuid,
        update: &AttemptUpdate,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        queue::finish_attempt(self, tenant, id, lease_token, update, now).await
    }
}

#[async_trait]
impl MessageStore for SqliteStore {
    async fn get_message(
        &self,
        tenant: &TenantId,
        id: MessageId,
    ) -> Result<Option<MessageRecord>, StoreError> {
        messages::get_message(self, tenant, id).await
    }

    async fn message_events(
        &self,
        tenant: &TenantId,
        id: MessageId,
    ) -> Result<Vec<MessageEvent>, StoreError> {
        messages::message_events(self, tenant, id).await
    }

    async fn list_messages(
        &self,
        tenant: &TenantId,
        filter: &MessageFilter,
        page: PageRequest,
    ) -> Result<Page<MessageRecord>, StoreError> {
        messages::list_messages(self, tenant, filter, page).await
    }

    async fn cancel_message(
        &self,
        tenant: &TenantId,
        id: MessageId,
        audit: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<MessageRecord, StoreError> {
        messages::cancel_message(self, tenant, id, audit, now).await
    }

    async fn cancel_group(
        &self,
        tenant: &TenantId,
        group_key: &str,
        audit: Option<&AuditEntry>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        messages::cancel_group(self, tenant, group_key, audit, now).await
    }

    async fn retry_message(
        &self,
        tenant: &TenantId,
        id: MessageId,
        audit: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<MessageRecord, StoreError> {
        messages::retry_message(self, tenant, id, audit, now).await
    }

    async fn batch_status(
        &self,
        tenant: &TenantId,
        id: BatchId,
    ) -> Result<Option<BatchStatus>, StoreError> {
        messages::batch_status(self, tenant, id).await
    }

    async fn message_stats(
        &self,
        tenant: &TenantId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<MessageStats, StoreError> {
        messages::message_stats(self, tenant, from, to).await
    }

    async fn pending_messages(&self) -> Result<u64, StoreError> {
        messages::pending_messages(self).await
    }

    async fn count_messages(
        &self,
        tenant: &TenantId,
        filter: &MessageFilter,
    ) -> Result<u64, StoreError> {
        messages::count_messages(self, tenant, filter).await
    }
}

#[async_trait]
impl CallbackStore for SqliteStore {
    async fn callback_target(
        &self,
        message_id: Option<MessageId>,
        provider_message_id: Option<&str>,
    ) -> Result<Option<CallbackTarget>, StoreError> {
        callbacks::callback_target(self, message_id, provider_message_id).await
    }

    async fn apply_callback(
        &self,
        tenant: &TenantId,
        id: MessageId,
        update: &CallbackUpdate,
        now: DateTime<Utc>,
    ) -> Result<CallbackOutcome, StoreError> {
        callbacks::apply_callback(self, tenant, id, update, now).await
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn record_audit(&self, tenant: &TenantId, entry: &AuditEntry) -> Result<(), StoreError> {
        audit::record(self, tenant, entry).await
    }

    async fn list_audit(
        &self,
        tenant: &TenantId,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditRecord>, StoreError> {
        audit::list_audit(self, tenant, filter, page).await
    }
}
