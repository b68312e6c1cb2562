//! [`OutboundStore`] on PostgreSQL: TEMPORARY, see `pending`. Each method will hand over to the file of its area
//! (`templates`, `patients`, `queue`, `messages`, `callbacks`, `audit`), so this
//! file is only the trait's table of contents.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use tokio::sync::mpsc;

use super::PostgresStore;
use crate::domain::ids::{BatchId, PatientId, TemplateId, TenantId};
use crate::domain::message::{MessageId, PatientPreferences};
use crate::domain::template::Template;
use crate::store::outbound::{
    AttemptUpdate, AuditEntry, AuditFilter, AuditRecord, BatchStatus, CallbackOutcome,
    CallbackTarget, CallbackUpdate, ClaimedMessage, EnqueueFeed, EnqueueOutcome, MessageEvent,
    MessageFilter, MessageRecord, MessageStats, NewBatch, OutboundStore, StoredTemplate,
    TemplateFilter, TemplateVersion,
};
use crate::store::{IdempotencyClaim, Page, PageRequest, StoreError};

/// Until the PostgreSQL implementation lands (the "postgres ready:" commit), every
/// outbound call on PostgreSQL fails loudly instead of pretending.
fn pending() -> StoreError {
    StoreError::Internal("the outbound store is not implemented on PostgreSQL yet".to_owned())
}

#[async_trait]
#[allow(unused_variables)]
impl OutboundStore for PostgresStore {
    async fn create_template(
        &self,
        tenant: &TenantId,
        id: TemplateId,
        template: &Template,
        audit: &AuditEntry,
    ) -> Result<StoredTemplate, StoreError> {
        Err(pending())
    }

    async fn get_template(
        &self,
        tenant: &TenantId,
        id: TemplateId,
    ) -> Result<Option<StoredTemplate>, StoreError> {
        Err(pending())
    }

    async fn template_by_name(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Option<StoredTemplate>, StoreError> {
        Err(pending())
    }

    async fn template_version(
        &self,
        tenant: &TenantId,
        id: TemplateId,
        version: u32,
    ) -> Result<Option<Template>, StoreError> {
        Err(pending())
    }

    async fn list_templates(
        &self,
        tenant: &TenantId,
        filter: &TemplateFilter,
        page: PageRequest,
    ) -> Result<Page<StoredTemplate>, StoreError> {
        Err(pending())
    }

    async fn update_template(
        &self,
        tenant: &TenantId,
        id: TemplateId,
        template: &Template,
        audit: &AuditEntry,
    ) -> Result<StoredTemplate, StoreError> {
        Err(pending())
    }

    async fn set_template_active(
        &self,
        tenant: &TenantId,
        id: TemplateId,
        active: bool,
        audit: &AuditEntry,
    ) -> Result<StoredTemplate, StoreError> {
        Err(pending())
    }

    async fn delete_template(
        &self,
        tenant: &TenantId,
        id: TemplateId,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        Err(pending())
    }

    async fn template_versions(
        &self,
        tenant: &TenantId,
        id: TemplateId,
    ) -> Result<Vec<TemplateVersion>, StoreError> {
        Err(pending())
    }

    async fn patient_preferences(
        &self,
        tenant: &TenantId,
        patient: &PatientId,
    ) -> Result<Option<PatientPreferences>, StoreError> {
        Err(pending())
    }

    async fn patient_preferences_many(
        &self,
        tenant: &TenantId,
        patients: &[PatientId],
    ) -> Result<BTreeMap<PatientId, PatientPreferences>, StoreError> {
        Err(pending())
    }

    async fn put_patient_preferences(
        &self,
        tenant: &TenantId,
        patient: &PatientId,
        prefs: &PatientPreferences,
        audit: Option<&AuditEntry>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        Err(pending())
    }

    #[allow(clippy::too_many_arguments)]
    async fn enqueue(
        &self,
        tenant: &TenantId,
        batch: Option<&NewBatch>,
        feed: mpsc::Receiver<EnqueueFeed>,
        idempotency: Option<(&IdempotencyClaim, &str)>,
        audit: Option<&AuditEntry>,
        now: DateTime<Utc>,
    ) -> Result<EnqueueOutcome, StoreError> {
        Err(pending())
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedMessage>, StoreError> {
        Err(pending())
    }

    async fn finish_attempt(
        &self,
        tenant: &TenantId,
        id: MessageId,
        lease_token: uuid::Uuid,
        update: &AttemptUpdate,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Err(pending())
    }

    async fn get_message(
        &self,
        tenant: &TenantId,
        id: MessageId,
    ) -> Result<Option<MessageRecord>, StoreError> {
        Err(pending())
    }

    async fn message_events(
        &self,
        tenant: &TenantId,
        id: MessageId,
    ) -> Result<Vec<MessageEvent>, StoreError> {
        Err(pending())
    }

    async fn list_messages(
        &self,
        tenant: &TenantId,
        filter: &MessageFilter,
        page: PageRequest,
    ) -> Result<Page<MessageRecord>, StoreError> {
        Err(pending())
    }

    async fn cancel_message(
        &self,
        tenant: &TenantId,
        id: MessageId,
        audit: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<MessageRecord, StoreError> {
        Err(pending())
    }

    async fn cancel_group(
        &self,
        tenant: &TenantId,
        group_key: &str,
        audit: Option<&AuditEntry>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        Err(pending())
    }

    async fn retry_message(
        &self,
        tenant: &TenantId,
        id: MessageId,
        audit: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<MessageRecord, StoreError> {
        Err(pending())
    }

    async fn callback_target(
        &self,
        message_id: Option<MessageId>,
        provider_message_id: Option<&str>,
    ) -> Result<Option<CallbackTarget>, StoreError> {
        Err(pending())
    }

    async fn apply_callback(
        &self,
        tenant: &TenantId,
        id: MessageId,
        update: &CallbackUpdate,
        now: DateTime<Utc>,
    ) -> Result<CallbackOutcome, StoreError> {
        Err(pending())
    }

    async fn batch_status(
        &self,
        tenant: &TenantId,
        id: BatchId,
    ) -> Result<Option<BatchStatus>, StoreError> {
        Err(pending())
    }

    async fn message_stats(
        &self,
        tenant: &TenantId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<MessageStats, StoreError> {
        Err(pending())
    }

    async fn pending_messages(&self) -> Result<u64, StoreError> {
        Err(pending())
    }

    async fn list_audit(
        &self,
        tenant: &TenantId,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditRecord>, StoreError> {
        Err(pending())
    }
}
