//! Provider status webhooks: one generic handler per URL shape,
//! `POST /v1/webhooks/{kind}` (the shared URL of the public contract) and
//! `POST /v1/webhooks/{kind}/{tenant}` (a tenant's own, checked with that tenant's
//! secrets only), dispatching on the kind through the registry
//! (`provider::config::WEBHOOKS`); Meta's GET handshake apart. No API key: each provider proves
//! itself with its signature (Twilio, Meta) or the URL's token (Unifonic), checked
//! in `service::outbound::callbacks` *before* anything is read from the store.
//! The body is read raw: signatures cover the exact bytes received.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, OriginalUri, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::read_body;
use super::AppState;
use crate::domain::ids::TenantId;
use crate::provider::CallbackRequest;
use crate::service::outbound::callbacks::{CallbackReport, Scope, WebhookError};
use crate::service::ServiceError;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handshake, callback))
        .routes(routes!(handshake_tenant, callback_tenant))
}

/// What a callback did, per status update it carried.
#[derive(Serialize, ToSchema)]
pub(super) struct CallbackResult {
    /// Moved a message forward.
    pub applied: u32,
    /// Recorded, but the message was already further along (out of order).
    pub stale: u32,
    /// Received before (same bytes): nothing written.
    pub replayed: u32,
    /// About nothing this URL's tenant tracks (unknown message, inbound traffic).
    pub ignored: u32,
}

impl From<CallbackReport> for CallbackResult {
    fn from(r: CallbackReport) -> Self {
        Self {
            applied: r.applied,
            stale: r.stale,
            replayed: r.replayed,
            ignored: r.ignored,
        }
    }
}

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::BadSignature => bad_signature(),
            WebhookError::Malformed(m) => ApiError::bad_request(m),
            WebhookError::TooManyStatuses(_) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                e.to_string(),
            ),
            WebhookError::UnknownKind => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
            }
            WebhookError::Store(e) => ServiceError::from(e).into(),
        }
    }
}

fn bad_signature() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "bad_signature",
        "the callback's signature or token does not match",
    )
}

/// The raw body; over the size limit it is the contract's JSON 413, not axum's
/// plain-text one.
pub(super) struct WebhookBody(Bytes);

impl<S: Send + Sync> FromRequest<S> for WebhookBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_body(req, state).await.map(WebhookBody)
    }
}

/// The scope of a tenant's own URL. An impossible tenant id is a 403 like any
/// other unproven callback (it must not tell which ids are well-formed tenants).
fn tenant_scope(tenant: &str) -> Result<Scope, ApiError> {
    TenantId::parse(tenant)
        .map(Scope::Tenant)
        .map_err(|_| bad_signature())
}

/// The request as the provider signed it: the public URL, query, headers, body.
fn callback_request<'a>(
    state: &AppState,
    uri: &'a Uri,
    headers: &'a [(&'a str, &'a str)],
    body: &'a [u8],
    url: &'a mut String,
) -> CallbackRequest<'a> {
    let host = headers.iter().find(|(k, _)| *k == "host").map(|(_, v)| *v);
    let path_and_query = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    *url = state.outbound_callbacks.public_url_of(host, path_and_query);
    CallbackRequest {
        url,
        query: uri.query(),
        headers,
        body,
    }
}

async fn callback_in(
    state: &AppState,
    kind: &str,
    scope: Scope,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Json<CallbackResult>> {
    // Values that are not visible ASCII cannot be a signature or a host.
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let mut url = String::new();
    let request = callback_request(state, uri, &headers, body, &mut url);
    let report = state
        .outbound_callbacks
        .handle(kind, &scope, &request)
        .await?;
    Ok(Json(report.into()))
}

/// A provider's status callback, one generic route for every kind of
/// `provider::config::WEBHOOKS`. Each kind proves itself its own way, checked
/// against every configured tenant's secrets before any lookup; the message's
/// own tenant's secret must be one that matches:
///
/// - `twilio`: form-encoded; `X-Twilio-Signature` over `[outbound] public_url` +
///   path + query and the sorted form fields (HMAC-SHA1 with an auth token);
///   `?message_id=` (added to the StatusCallback URL) names our message.
/// - `whatsapp`: Meta's JSON (`entry[].changes[].value.statuses[]`);
///   `X-Hub-Signature-256` = HMAC-SHA256 of the raw body with an app secret,
///   checked before the body is parsed. At most `[outbound] webhook_max_statuses`
///   statuses (413 beyond).
/// - `unifonic`: a delivery report (form or JSON: MessageID, DLR or Status,
///   Comments). Unifonic signs nothing: the URL carries a tenant's
///   `unifonic_token` (`?token=…`).
#[utoipa::path(post, path = "/v1/webhooks/{kind}", tag = "webhooks",
    request_body(content = String, description = "the provider's own callback body, byte for byte (form or JSON, per kind)"),
    params(("kind" = String, Path, description = "a provider kind with a status webhook (the registry `provider::WEBHOOKS`; docs/API.md describes each)"),
        ("message_id" = Option<String>, Query, description = "twilio: our message id, added to the StatusCallback URL"),
        ("token" = Option<String>, Query, description = "unifonic: the tenant's [outbound.tenants.<id>.webhooks] unifonic_token")),
    responses((status = 200, body = CallbackResult, description = "unknown ids and other tenants' ids count as `ignored`"),
        (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody, description = "bad signature or token: nothing read, nothing changed"),
        (status = 404, body = super::error::ErrorBody, description = "no provider kind of that name"),
        (status = 413, body = super::error::ErrorBody, description = "body over the limit, or too many statuses")))]
async fn callback(
    State(state): State<AppState>,
    Path(kind): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    WebhookBody(body): WebhookBody,
) -> ApiResult<Json<CallbackResult>> {
    callback_in(&state, &kind, Scope::AnyTenant, &uri, &headers, &body).await
}

/// A tenant's own status callback URL: checked with that tenant's secrets only;
/// only that tenant's messages change.
#[utoipa::path(post, path = "/v1/webhooks/{kind}/{tenant}", tag = "webhooks",
    request_body(content = String, description = "the provider's own callback body, byte for byte (form or JSON, per kind)"),
    params(("kind" = String, Path, description = "a provider kind with a status webhook (the registry `provider::WEBHOOKS`; docs/API.md describes each)"),
        ("tenant" = String, Path, description = "the tenant id this URL was given for"),
        ("message_id" = Option<String>, Query, description = "twilio: our message id, added to the StatusCallback URL"),
        ("token" = Option<String>, Query, description = "unifonic: the tenant's [outbound.tenants.<id>.webhooks] unifonic_token")),
    responses((status = 200, body = CallbackResult, description = "unknown ids and other tenants' ids count as `ignored`"),
        (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody, description = "bad signature or token: nothing read, nothing changed"),
        (status = 404, body = super::error::ErrorBody, description = "no provider kind of that name"),
        (status = 413, body = super::error::ErrorBody, description = "body over the limit, or too many statuses")))]
async fn callback_tenant(
    State(state): State<AppState>,
    Path((kind, tenant)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    WebhookBody(body): WebhookBody,
) -> ApiResult<Json<CallbackResult>> {
    let scope = tenant_scope(&tenant)?;
    callback_in(&state, &kind, scope, &uri, &headers, &body).await
}

/// Meta's handshake is not a status callback: only `whatsapp` has one; any other
/// kind answers as a URL without a GET.
fn handshake_in(
    state: &AppState,
    kind: &str,
    scope: Scope,
    q: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    if kind != "whatsapp" {
        return Err(match crate::provider::config::webhook(kind) {
            Some(_) => ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed here",
            ),
            None => WebhookError::UnknownKind.into(),
        });
    }
    let get = |k: &str| q.get(k).map(String::as_str);
    let challenge = state.outbound_callbacks.whatsapp_verify(
        &scope,
        get("hub.mode"),
        get("hub.verify_token"),
        get("hub.challenge"),
    )?;
    Ok(([(header::CONTENT_TYPE, "text/plain")], challenge).into_response())
}

/// Meta's webhook verification handshake (`kind` = `whatsapp` only): answers
/// `hub.challenge` when `hub.mode=subscribe` and `hub.verify_token` is a
/// configured `whatsapp_verify_token`; 403 otherwise.
#[utoipa::path(get, path = "/v1/webhooks/{kind}", tag = "webhooks",
    params(("kind" = String, Path, description = "`whatsapp`"),
        ("hub.mode" = String, Query), ("hub.verify_token" = String, Query), ("hub.challenge" = String, Query)),
    responses((status = 200, content_type = "text/plain", description = "the challenge, echoed"),
        (status = 403, body = super::error::ErrorBody),
        (status = 405, body = super::error::ErrorBody, description = "a kind without a handshake")))]
async fn handshake(
    State(state): State<AppState>,
    Path(kind): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    handshake_in(&state, &kind, Scope::AnyTenant, &q)
}

/// Meta's handshake on a tenant's own URL: that tenant's `whatsapp_verify_token` only.
#[utoipa::path(get, path = "/v1/webhooks/{kind}/{tenant}", tag = "webhooks",
    params(("kind" = String, Path, description = "`whatsapp`"),
        ("tenant" = String, Path, description = "the tenant id this URL was given for"),
        ("hub.mode" = String, Query), ("hub.verify_token" = String, Query), ("hub.challenge" = String, Query)),
    responses((status = 200, content_type = "text/plain", description = "the challenge, echoed"),
        (status = 403, body = super::error::ErrorBody),
        (status = 405, body = super::error::ErrorBody, description = "a kind without a handshake")))]
async fn handshake_tenant(
    State(state): State<AppState>,
    Path((kind, tenant)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let scope = tenant_scope(&tenant)?;
    handshake_in(&state, &kind, scope, &q)
}
