//! The administrative audit log: who (an API key or a user), what, on which object.
//!
//! Entries are built here and handed to the store together with the change they
//! describe, so the log cannot claim a change that did not happen, or miss one.
//!
//! Reads of patient data (a message's detail, a message list, an export, a patient's
//! preferences) are logged too, one insert each, after the read and before the
//! answer: a read whose entry cannot be written is not answered (503), so the log
//! never misses one. Entries carry ids and counts, never addresses or texts.

use chrono::{DateTime, Utc};

use super::Outbound;
use crate::domain::ids::{TenantId, UserId};
use crate::service::ServiceError;
use crate::store::outbound::{AuditEntry, AuditFilter, AuditRecord, MessageFilter};
use crate::store::{Page, PageRequest};

/// Who performed an administrative action, as the audit log names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(String);

impl Actor {
    /// A server-to-server caller: `api_key:<prefix>` (the prefix identifies the key
    /// without revealing it).
    pub fn api_key(prefix: &str) -> Self {
        Self(format!("api_key:{prefix}"))
    }

    /// A signed-in staff member: `user:<id>`.
    pub fn user(user: &UserId) -> Self {
        Self(format!("user:{user}"))
    }

    /// The hub itself acting on a rule (e.g. `system:events`), for changes no
    /// person or key asked for directly.
    pub fn system(name: &str) -> Self {
        Self(format!("system:{name}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Builds an entry; `detail` is a JSON object describing the change.
pub(crate) fn entry(
    actor: &Actor,
    action: &str,
    target: String,
    detail: serde_json::Value,
    at: DateTime<Utc>,
) -> AuditEntry {
    AuditEntry {
        actor: actor.0.clone(),
        action: action.to_owned(),
        target,
        detail: detail.to_string(),
        at,
    }
}

/// A message filter as the audit log shows it: every field, except that the search
/// text is reduced to whether one was given (it is often a phone number or a name).
pub(crate) fn filter_summary(f: &MessageFilter) -> serde_json::Value {
    serde_json::json!({
        "status": f.status.map(|s| s.as_str()),
        "channel": f.channel.map(|c| c.as_str()),
        "template": f.template,
        "patient_id": f.patient.as_ref().map(|p| p.as_str()),
        "batch_id": f.batch.map(|b| b.to_string()),
        "group_key": f.group_key,
        "from": f.from.map(crate::wire::time),
        "to": f.to.map(crate::wire::time),
        "q_set": f.q.is_some(),
    })
}

impl Outbound {
    /// Logs a read of patient data (see the module doc): fails closed.
    pub(crate) async fn audit_read(
        &self,
        tenant: &TenantId,
        actor: &Actor,
        action: &str,
        target: String,
        detail: serde_json::Value,
    ) -> Result<(), ServiceError> {
        let entry = entry(actor, action, target, detail, self.now());
        Ok(self.store.record_audit(tenant, &entry).await?)
    }

    /// The tenant's audit log, newest first.
    pub async fn audit_log(
        &self,
        tenant: &TenantId,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditRecord>, ServiceError> {
        Ok(self.store.list_audit(tenant, filter, page).await?)
    }
}
