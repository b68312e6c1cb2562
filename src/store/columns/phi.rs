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

/// What a redacted notification's title and message become: the contract requires
/// both to be non-empty, so a fixed marker rather than the message rows' empty body.
pub(crate) const REDACTED_TEXT: &str = "[redacted]";

/// The `related.type` by which a notification published through the API names a
/// patient (`related.id` is the patient id): an erasure of that patient finds it.
pub(crate) const PATIENT_RELATED_TYPE: &str = "patient";

/// The `SET` list that redacts a `notifications` row (the caller adds `updated_at`
/// and unlinks the patient). A `related` naming the patient goes too; one naming an
/// appointment stays (the clinic's own id, no personal data). Kept: id, user, type,
/// category, read and archived state, created time: what the inbox lists, orders by
/// and counts as unread. The markers are our constants (no quote in them), written
/// as literals so each backend converts `data`'s to its own JSON column type.
pub(crate) fn redact_notification_set() -> String {
    let patient = PATIENT_RELATED_TYPE;
    format!(
        "title = '{REDACTED_TEXT}', message = '{REDACTED_TEXT}', link = NULL, \
         data = '{REDACTED_PAYLOAD}', \
         related_id = CASE WHEN related_type = '{patient}' THEN NULL ELSE related_id END, \
         related_type = CASE WHEN related_type = '{patient}' THEN NULL ELSE related_type END"
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
