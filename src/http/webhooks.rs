//! Provider status webhooks: `POST /v1/webhooks/twilio`, `GET|POST
//! /v1/webhooks/whatsapp`, `POST /v1/webhooks/unifonic`. No API key: each provider
//! proves itself with its signature (Twilio, Meta) or the URL's token (Unifonic),
//! checked in `service::outbound::callbacks` with the message's tenant's secrets.
//! The body is read raw: signatures cover the exact bytes received.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Query, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::service::outbound::callbacks::{CallbackReport, WebhookError};
use crate::service::ServiceError;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(twilio))
        .routes(routes!(whatsapp_verify, whatsapp))
        .routes(routes!(unifonic))
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
    /// About nothing we track.
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
            WebhookError::BadSignature => ApiError::new(
                StatusCode::FORBIDDEN,
                "bad_signature",
                "the callback's signature or token does not match",
            ),
            WebhookError::Malformed(m) => ApiError::bad_request(m),
            WebhookError::Store(e) => ServiceError::from(e).into(),
        }
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Twilio message status callback (form-encoded; `X-Twilio-Signature` over
/// `[outbound] public_url` + path + query and the sorted form fields, with the
/// message's tenant's auth token).
#[utoipa::path(post, path = "/v1/webhooks/twilio", tag = "webhooks",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "Twilio's status callback fields (MessageSid, MessageStatus, ErrorCode, Price, PriceUnit, …)"),
    params(("message_id" = Option<String>, Query, description = "our message id, added to the StatusCallback URL")),
    responses((status = 200, body = CallbackResult), (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody, description = "bad signature: nothing changed")))]
async fn twilio(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<CallbackResult>> {
    let callbacks = &state.outbound_callbacks;
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/v1/webhooks/twilio");
    let url = callbacks.public_url_of(header_str(&headers, "host"), path_and_query);
    let report = callbacks
        .twilio(
            &url,
            query.as_deref(),
            &body,
            header_str(&headers, "x-twilio-signature"),
        )
        .await?;
    Ok(Json(report.into()))
}

/// WhatsApp Cloud API webhook (JSON; `X-Hub-Signature-256` = HMAC-SHA256 of the
/// raw body with the message's tenant's app secret).
#[utoipa::path(post, path = "/v1/webhooks/whatsapp", tag = "webhooks",
    request_body(content = serde_json::Value, description = "Meta's webhook body (entry[].changes[].value.statuses[])"),
    responses((status = 200, body = CallbackResult), (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody, description = "bad signature: nothing changed")))]
async fn whatsapp(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<CallbackResult>> {
    let report = state
        .outbound_callbacks
        .whatsapp(&body, header_str(&headers, "x-hub-signature-256"))
        .await?;
    Ok(Json(report.into()))
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
    let get = |k: &str| q.get(k).map(String::as_str);
    let challenge = state.outbound_callbacks.whatsapp_verify(
        get("hub.mode"),
        get("hub.verify_token"),
        get("hub.challenge"),
    )?;
    Ok(([(header::CONTENT_TYPE, "text/plain")], challenge).into_response())
}

/// Unifonic delivery report (form or JSON). Unifonic signs nothing: the URL
/// carries the tenant's `unifonic_token` (`?token=…`).
#[utoipa::path(post, path = "/v1/webhooks/unifonic", tag = "webhooks",
    request_body(content = String, description = "MessageID, DLR or Status, Comments (form or JSON)"),
    params(("token" = String, Query, description = "the tenant's [outbound.tenants.<id>.webhooks] unifonic_token")),
    responses((status = 200, body = CallbackResult), (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody, description = "missing or wrong token: nothing changed")))]
async fn unifonic(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult<Json<CallbackResult>> {
    let report = state
        .outbound_callbacks
        .unifonic(&body, q.get("token").map(String::as_str))
        .await?;
    Ok(Json(report.into()))
}
