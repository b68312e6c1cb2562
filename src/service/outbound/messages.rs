//! Messages after they were queued: list, detail with the event trail, manual
//! retry, cancel (one, or every unsent message of a group), batch status. Lists,
//! details and exports are reads of patient data: each writes an audit entry.

use serde_json::json;

use super::audit::{entry, filter_summary, Actor};
use super::Outbound;
use crate::domain::ids::{BatchId, TenantId};
use crate::domain::message::{MessageId, MessageStatus};
use crate::service::ServiceError;
use crate::store::outbound::{BatchStatus, MessageEvent, MessageFilter, MessageRecord};
use crate::store::{Page, PageRequest, StoreError};

fn wrong_status(action: &str, allowed: &str, status: MessageStatus) -> ServiceError {
    ServiceError::Conflict {
        code: "invalid_status",
        message: format!("only {allowed} messages can be {action}; this one is {status}"),
    }
}

impl Outbound {
    /// A page of messages, audited as `read.messages` (the filter and the rows shown).
    pub async fn list_messages(
        &self,
        tenant: &TenantId,
        filter: &MessageFilter,
        page: PageRequest,
        actor: &Actor,
    ) -> Result<Page<MessageRecord>, ServiceError> {
        let page = self.store.list_messages(tenant, filter, page).await?;
        let detail = json!({"filter": filter_summary(filter), "rows": page.items.len()});
        self.audit_read(tenant, actor, "read.messages", "messages".into(), detail)
            .await?;
        Ok(page)
    }

    /// A message and its event trail (oldest first), audited as `read.message`.
    pub async fn message(
        &self,
        tenant: &TenantId,
        id: MessageId,
        actor: &Actor,
    ) -> Result<(MessageRecord, Vec<MessageEvent>), ServiceError> {
        let record = self
            .store
            .get_message(tenant, id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        let events = self.store.message_events(tenant, id).await?;
        let detail = json!({"patient_id": record.patient.as_ref().map(|p| p.as_str())});
        self.audit_read(
            tenant,
            actor,
            "read.message",
            format!("message:{id}"),
            detail,
        )
        .await?;
        Ok((record, events))
    }

    /// Audits an export before its first row leaves (`read.export`, with the
    /// filter and the rows it matches now), so a download cut short is logged too.
    pub async fn audit_export(
        &self,
        tenant: &TenantId,
        filter: &MessageFilter,
        actor: &Actor,
    ) -> Result<(), ServiceError> {
        let rows = self.store.count_messages(tenant, filter).await?;
        let detail = json!({"filter": filter_summary(filter), "rows": rows});
        self.audit_read(tenant, actor, "read.export", "messages".into(), detail)
            .await
    }

    /// Manual retry of a `failed` or `bounced` message (else 409 `invalid_status`):
    /// queued again, due now, from the top of the provider chain.
    pub async fn retry_message(
        &self,
        tenant: &TenantId,
        id: MessageId,
        actor: &Actor,
    ) -> Result<MessageRecord, ServiceError> {
        let current = self
            .store
            .get_message(tenant, id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        if !current.status.can_retry_manually() {
            return Err(wrong_status("retried", "failed or bounced", current.status));
        }
        if current.redacted_at.is_some() {
            // Its address and text are gone: there is nothing left to send.
            return Err(ServiceError::Conflict {
                code: "redacted",
                message: "this message's content was redacted; send a new message".into(),
            });
        }
        let now = self.now();
        let audit = entry(
            actor,
            "message.retry",
            format!("message:{id}"),
            json!({"from_status": current.status.as_str(), "attempts": current.attempts}),
            now,
        );
        self.store
            .retry_message(tenant, id, &audit, now)
            .await
            .map_err(|e| self.raced(e, "retried", "failed or bounced"))
    }

    /// Cancels a `queued` message (else 409 `invalid_status`).
    pub async fn cancel_message(
        &self,
        tenant: &TenantId,
        id: MessageId,
        actor: &Actor,
    ) -> Result<MessageRecord, ServiceError> {
        let current = self
            .store
            .get_message(tenant, id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        if !current.status.can_cancel() {
            return Err(wrong_status("cancelled", "queued", current.status));
        }
        let now = self.now();
        let audit = entry(
            actor,
            "message.cancel",
            format!("message:{id}"),
            json!({"from_status": current.status.as_str()}),
            now,
        );
        self.store
            .cancel_message(tenant, id, &audit, now)
            .await
            .map_err(|e| self.raced(e, "cancelled", "queued"))
    }

    /// A worker or a callback moved the message between our read and our write.
    fn raced(&self, e: StoreError, action: &str, allowed: &str) -> ServiceError {
        match e {
            StoreError::Conflict(_) => ServiceError::Conflict {
                code: "invalid_status",
                message: format!("only {allowed} messages can be {action}; this one just moved on"),
            },
            other => other.into(),
        }
    }

    /// Cancels every still-queued message of the group; returns how many.
    pub async fn cancel_group(
        &self,
        tenant: &TenantId,
        group_key: &str,
        actor: &Actor,
    ) -> Result<u64, ServiceError> {
        super::enqueue::check_group_key("group_key", group_key)?;
        let now = self.now();
        let audit = entry(
            actor,
            "message.cancel_group",
            format!("group:{group_key}"),
            json!({"group_key": group_key}),
            now,
        );
        Ok(self
            .store
            .cancel_group(tenant, group_key, Some(&audit), now)
            .await?)
    }

    pub async fn batch(&self, tenant: &TenantId, id: BatchId) -> Result<BatchStatus, ServiceError> {
        self.store
            .batch_status(tenant, id)
            .await?
            .ok_or(ServiceError::NotFound)
    }
}
