//! What a redaction removes, written once for both backends (docs/OUTBOUND.md, "PHI
//! lifecycle"). Only the expressions the databases spell differently (an empty JSON
//! object, removing keys from a JSON text) are passed in by the backend.

use sqlx::{Database, Encode, QueryBuilder, Type};

use crate::store::outbound::PhiScope;

/// Keys of a message event's detail that carry provider or free text: the provider's
/// raw answer (`response`) echoes the address and the body, and error texts (`error`,
/// `message`) quote the number. Everything else in a detail is ours and names no
/// patient (provider, codes, attempt counts, times, prices). A new free-text key in an
/// event detail must be added here.
pub(crate) const PHI_EVENT_KEYS: [&str; 3] = ["response", "error", "message"];

/// What a redacted clinic event's payload becomes; its columns (type, appointment,
/// times, outcome, counts) stay.
pub(crate) const REDACTED_PAYLOAD: &str = r#"{"redacted":true}"#;

/// The `SET` list that redacts a `messages` row (the caller adds `redacted_at` and,
/// for an erasure, `patient_id`). `empty_object` is the backend's empty JSON object
/// for `variables`. Kept: status, channel, language, kind, template, times, provider
/// ids (a late callback must still find the message), price, attempts, suppression.
pub(crate) fn redact_message_set(empty_object: &str) -> String {
    format!(
        "to_address = NULL, subject = NULL, body = '', variables = {empty_object}, \
         last_error = NULL"
    )
}

/// Appends ` AND tenant_id …` for a retention scope.
pub(crate) fn push_phi_scope<'args, DB>(qb: &mut QueryBuilder<'args, DB>, scope: &PhiScope)
where
    DB: Database,
    String: 'args + Encode<'args, DB> + Type<DB>,
{
    match scope {
        PhiScope::Tenant(t) => {
            qb.push(" AND tenant_id = ")
                .push_bind(t.as_str().to_owned());
        }
        PhiScope::AllExcept(others) if others.is_empty() => {}
        PhiScope::AllExcept(others) => {
            qb.push(" AND tenant_id NOT IN (");
            let mut list = qb.separated(", ");
            for t in others {
                list.push_bind(t.as_str().to_owned());
            }
            qb.push(")");
        }
    }
}
