//! Provider status webhooks. Each provider has two URLs: the shared one of the
//! public contract (`POST /v1/webhooks/twilio`, `GET|POST /v1/webhooks/whatsapp`,
//! `POST /v1/webhooks/unifonic`) and a tenant's own (`…/twilio/{tenant}`, …), which
//! is checked with that tenant's secrets only. No API key: each provider proves
//! itself with its signature (Twilio, Meta) or the URL's token (Unifonic), checked
//! in `service::outbound::callbacks` *before* anything is read from the store.
//! The body is read raw: signatures cover the exact bytes received.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, OriginalUri, Path, Query, RawQuery, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
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
use crate::service::outbound::callbacks::{CallbackReport, Scope, WebhookError};
use crate::service::ServiceError;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(twilio))
        .routes(routes!(twilio_tenant))
        .routes(routes!(whatsapp_verify, whatsapp))
        .routes(routes!(whatsapp_verify_tenant, whatsapp_tenant))
        .routes(routes!(unifonic))
        .routes(routes!(unifonic_tenant))
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

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn twilio_in(
    state: &AppState,
    scope: Scope,
    uri: &axum::http::Uri,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Json<CallbackResult>> {
    let callbacks = &state.outbound_callbacks;
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/v1/webhooks/twilio");
    let url = callbacks.public_url_of(header_str(headers, "host"), path_and_query);
    let signature = header_str(headers, "x-twilio-signature");
    let report = callbacks
        .twilio(&scope, &url, query, body, signature)
        .await?;
    Ok(Json(report.into()))
}

/// Twilio message status callback (form-encoded; `X-Twilio-Signature` over
/// `[outbound] public_url` + path + query and the sorted form fields). Checked
/// against every configured tenant's Twilio auth token before any lookup; the
/// message's own tenant's token must be the one that matches.
#[utoipa::path(post, path = "/v1/webhooks/twilio", tag = "webhooks",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "Twilio's status callback fields (MessageSid, MessageStatus, ErrorCode, Price, PriceUnit, …)"),
    params(("message_id" = Option<String>, Query, description = "our message id, added to the StatusCallback URL")),
    responses((status = 200, body = CallbackResult, description = "unknown ids and other tenants' ids count as `ignored`"),
        (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody, description = "bad signature: nothing read, nothing changed"),
        (status = 413, body = super::error::ErrorBody)))]
async fn twilio(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    WebhookBody(body): WebhookBody,
) -> ApiResult<Json<CallbackResult>> {
    twilio_in(
        &state,
        Scope::AnyTenant,
        &uri,
        query.as_deref(),
        &headers,
        &body,
    )
    .await
}

/// A tenant's own Twilio status callback URL: checked with that tenant's auth
/// token only; only that tenant's messages change.
#[utoipa::path(post, path = "/v1/webhooks/twilio/{tenant}", tag = "webhooks",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "Twilio's status callback fields"),
    params(("tenant" = String, Path, description = "the tenant id this URL was given for"),
        ("message_id" = Option<String>, Query, description = "our message id, added to the StatusCallback URL")),
    responses((status = 200, body = CallbackResult, description = "unknown ids and other tenants' ids count as `ignored`"),
        (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody, description = "bad signature: nothing read, nothing changed"),
        (status = 413, body = super::error::ErrorBody)))]
async fn twilio_tenant(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    WebhookBody(body): WebhookBody,
) -> ApiResult<Json<CallbackResult>> {
    let scope = tenant_scope(&tenant)?;
    twilio_in(&state, scope, &uri, query.as_deref(), &headers, &body).await
}

async fn whatsapp_in(
    state: &AppState,
    scope: Scope,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Json<CallbackResult>> {
    let report = state
        .outbound_callbacks
        .whatsapp(&scope, body, header_str(headers, "x-hub-signature-256"))
        .await?;
    Ok(Json(report.into()))
}

/// WhatsApp Cloud API webhook (JSON; `X-Hub-Signature-256` = HMAC-SHA256 of the
/// raw body with an app secret). Checked against every configured app secret
/// before the body is parsed; each status counts only for a message of a tenant
/// whose secret signed it. At most `[outbound] webhook_max_statuses` statuses.
#[utoipa::path(post, path = "/v1/webhooks/whatsapp", tag = "webhooks",
    request_body(content = serde_json::Value, description = "Meta's webhook body (entry[].changes[].value.statuses[])"),
    responses((status = 200, body = CallbackResult), (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody, description = "bad signature: nothing read, nothing changed"),
        (status = 413, body = super::error::ErrorBody, description = "body over the limit, or too many statuses")))]
async fn whatsapp(
    State(state): State<AppState>,
    headers: HeaderMap,
    WebhookBody(body): WebhookBody,
) -> ApiResult<Json<CallbackResult>> {
    whatsapp_in(&state, Scope::AnyTenant, &headers, &body).await
}

/// A tenant's own WhatsApp Cloud webhook URL: that tenant's app secrets only.
#[utoipa::path(post, path = "/v1/webhooks/whatsapp/{tenant}", tag = "webhooks",
    request_body(content = serde_json::Value, description = "Meta's webhook body (entry[].changes[].value.statuses[])"),
    params(("tenant" = String, Path, description = "the tenant id this URL was given for")),
    responses((status = 200, body = CallbackResult), (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody, description = "bad signature: nothing read, nothing changed"),
        (status = 413, body = super::error::ErrorBody, description = "body over the limit, or too many statuses")))]
async fn whatsapp_tenant(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    WebhookBody(body): WebhookBody,
) -> ApiResult<Json<CallbackResult>> {
    let scope = tenant_scope(&tenant)?;
    whatsapp_in(&state, scope, &headers, &body).await
}

fn whatsapp_verify_in(
    state: &AppState,
    scope: Scope,
    q: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let get = |k: &str| q.get(k).map(String::as_str);
    let challenge = state.outbound_callbacks.whatsapp_verify(
        &scope,
        get("hub.mode"),
        get("hub.verify_token"),
        get("hub.challenge"),
    )?;
    Ok(([(header::CONTENT_TYPE, "text/plain")], challenge).into_response())
}

/// Meta's webhook verification handshake: answers `hub.challenge` when
/// `hub.mode=subscribe` and `hub.verify_token` is a configured
/// `whatsapp_verify_token`; 403 otherwise.
#[utoipa::path(get, path = "/v1/webhooks/whatsapp", tag = "webhooks",
    params(("hub.mode" = String, Query), ("hub.verify_token" = String, Query), ("hub.challenge" = String, Query)),
    responses((status = 200, content_type = "text/plain", description = "the challenge, echoed"),
        (status = 403, body = super::error::ErrorBody)))]
async fn whatsapp_verify(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    whatsapp_verify_in(&state, Scope::AnyTenant, &q)
}

/// Meta's handshake on a tenant's own URL: that tenant's `whatsapp_verify_token` only.
#[utoipa::path(get, path = "/v1/webhooks/whatsapp/{tenant}", tag = "webhooks",
    params(("tenant" = String, Path, description = "the tenant id this URL was given for"),
        ("hub.mode" = String, Query), ("hub.verify_token" = String, Query), ("hub.challenge" = String, Query)),
    responses((status = 200, content_type = "text/plain", description = "the challenge, echoed"),
        (status = 403, body = super::error::ErrorBody)))]
async fn whatsapp_verify_tenant(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    whatsapp_verify_in(&state, tenant_scope(&tenant)?, &q)
}

async fn unifonic_in(
    state: &AppState,
    scope: Scope,
    q: &HashMap<String, String>,
    body: &[u8],
) -> ApiResult<Json<CallbackResult>> {
    let report = state
        .outbound_callbacks
        .unifonic(&scope, body, q.get("token").map(String::as_str))
        .await?;
    Ok(Json(report.into()))
}

/// Unifonic delivery report (form or JSON). Unifonic signs nothing: the URL
/// carries a tenant's `unifonic_token` (`?token=…`), checked against every
/// configured tenant's before any lookup.
#[utoipa::path(post, path = "/v1/webhooks/unifonic", tag = "webhooks",
    request_body(content = String, description = "MessageID, DLR or Status, Comments (form or JSON)"),
    params(("token" = String, Query, description = "the tenant's [outbound.tenants.<id>.webhooks] unifonic_token")),
    responses((status = 200, body = CallbackResult, description = "unknown ids and other tenants' ids count as `ignored`"),
        (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody, description = "missing or wrong token: nothing read, nothing changed"),
        (status = 413, body = super::error::ErrorBody)))]
async fn unifonic(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    WebhookBody(body): WebhookBody,
) -> ApiResult<Json<CallbackResult>> {
    unifonic_in(&state, Scope::AnyTenant, &q, &body).await
}

/// A tenant's own Unifonic delivery-report URL: that tenant's token only.
#[utoipa::path(post, path = "/v1/webhooks/unifonic/{tenant}", tag = "webhooks",
    request_body(content = String, description = "MessageID, DLR or Status, Comments (form or JSON)"),
    params(("tenant" = String, Path, description = "the tenant id this URL was given for"),
        ("token" = String, Query, description = "the tenant's [outbound.tenants.<id>.webhooks] unifonic_token")),
    responses((status = 200, body = CallbackResult, description = "unknown ids and other tenants' ids count as `ignored`"),
        (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody, description = "missing or wrong token: nothing read, nothing changed"),
        (status = 413, body = super::error::ErrorBody)))]
async fn unifonic_tenant(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    WebhookBody(body): WebhookBody,
) -> ApiResult<Json<CallbackResult>> {
    let scope = tenant_scope(&tenant)?;
    unifonic_in(&state, scope, &q, &body).await
}
