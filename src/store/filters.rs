//! The WHERE clauses of the outbound lists (messages, audit log), written once for both
//! backends: `QueryBuilder` numbers the parameters in each backend's own style, and the
//! SQL used here (`lower`, `LIKE … ESCAPE`, `substr`) means the same on SQLite and PostgreSQL.

use sqlx::{Database, Encode, QueryBuilder, Type};

use super::columns::outbound::contains_pattern;
use super::outbound::{AuditFilter, MessageFilter};
use crate::domain::ids::TenantId;

/// Appends `WHERE tenant_id = … AND <every filter field>` for `messages`.
///
/// `q` is a case-insensitive substring of the address, the body, the patient id or the
/// provider message id. Case folding is `lower()`: full Unicode on PostgreSQL, ASCII on
/// SQLite (Arabic has no case, so only non-ASCII Latin capitals differ).
pub(crate) fn push_message_filter<'args, DB>(
    qb: &mut QueryBuilder<'args, DB>,
    tenant: &TenantId,
    filter: &MessageFilter,
) where
    DB: Database,
    String: 'args + Encode<'args, DB> + Type<DB>,
    i64: 'args + Encode<'args, DB> + Type<DB>,
{
    qb.push(" WHERE tenant_id = ")
        .push_bind(tenant.as_str().to_owned());
    if let Some(status) = filter.status {
        qb.push(" AND status = ")
            .push_bind(status.as_str().to_owned());
    }
    if let Some(channel) = filter.channel {
        qb.push(" AND channel = ")
            .push_bind(channel.as_str().to_owned());
    }
    if let Some(template) = &filter.template {
        qb.push(" AND template_name = ").push_bind(template.clone());
    }
    if let Some(patient) = &filter.patient {
        qb.push(" AND patient_id = ")
            .push_bind(patient.as_str().to_owned());
    }
    if let Some(batch) = filter.batch {
        qb.push(" AND batch_id = ").push_bind(batch.to_string());
    }
    if let Some(group) = &filter.group_key {
        qb.push(" AND group_key = ").push_bind(group.clone());
    }
    if let Some(from) = filter.from {
        qb.push(" AND created_at >= ")
            .push_bind(from.timestamp_millis());
    }
    if let Some(to) = filter.to {
        qb.push(" AND created_at < ")
            .push_bind(to.timestamp_millis());
    }
    if let Some(q) = filter.q.as_deref().filter(|q| !q.is_empty()) {
        let pattern = contains_pattern(q);
        qb.push(" AND (");
        for (i, column) in ["to_address", "body", "patient_id", "provider_message_id"]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                qb.push(" OR ");
            }
            qb.push(format_args!("lower(COALESCE({column}, '')) LIKE "))
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\'");
        }
        qb.push(")");
    }
}

/// Appends `WHERE tenant_id = … AND <every filter field>` for `audit_log`. An action
/// ending in `.` is a prefix (`template.` matches `template.update`).
pub(crate) fn push_audit_filter<'args, DB>(
    qb: &mut QueryBuilder<'args, DB>,
    tenant: &TenantId,
    filter: &AuditFilter,
) where
    DB: Database,
    String: 'args + Encode<'args, DB> + Type<DB>,
    i64: 'args + Encode<'args, DB> + Type<DB>,
{
    qb.push(" WHERE tenant_id = ")
        .push_bind(tenant.as_str().to_owned());
    match filter.action.as_deref() {
        Some(prefix) if prefix.ends_with('.') => {
            let chars = i64::try_from(prefix.chars().count()).unwrap_or(i64::MAX);
            // CAST: PostgreSQL's substr takes an int4, the bound value is an int8.
            qb.push(" AND substr(action, 1, CAST(")
                .push_bind(chars)
                .push(" AS INTEGER)) = ")
                .push_bind(prefix.to_owned());
        }
        Some(action) => {
            qb.push(" AND action = ").push_bind(action.to_owned());
        }
        None => {}
    }
    if let Some(actor) = &filter.actor {
        qb.push(" AND actor = ").push_bind(actor.clone());
    }
    if let Some(from) = filter.from {
        qb.push(" AND at >= ").push_bind(from.timestamp_millis());
    }
    if let Some(to) = filter.to {
        qb.push(" AND at < ").push_bind(to.timestamp_millis());
    }
}
