//! The administrative audit log: who (an API key or a user), what, on which object.
//!
//! Entries are built here and handed to the store together with the change they
//! describe, so the log cannot claim a change that did not happen, or miss one.

use chrono::{DateTime, Utc};

use super::Outbound;
use crate::domain::ids::{TenantId, UserId};
use crate::service::ServiceError;
use crate::store::outbound::{AuditEntry, AuditFilter, AuditRecord};
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

impl Outbound {
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
