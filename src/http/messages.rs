//! Outbound messages: `POST /v1/messages` (send one), `POST /v1/messages/bulk`,
//! `GET /v1/messages`, `GET /v1/messages/{id}`, `POST /v1/messages/{id}/retry`,
//! `POST /v1/messages/{id}/cancel`, `POST /v1/messages/cancel` (a group) and
//! `GET /v1/messages/batches/{id}` (an extension).

use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{
    encode_cursor, idempotency_claim, idempotency_key, missing_field, page_request, parse_json,
    read_body, Admin, ApiJson, ApiQuery, IdempotentJson,
};
use super::AppState;
use crate::domain::ids::{BatchId, PatientId};
use crate::domain::message::{MessageId, MessageStatus};
use crate::domain::template::{Channel, Language, MessageKind};
use crate::domain::Invalid;
use crate::service::outbound::bulk::{BulkRecipient, BulkRequest, MAX_BULK_RECIPIENTS};
use crate::service::outbound::enqueue::{parse_address, MessageContent, SendOutcome, SendRequest};
use crate::service::ServiceError;
use crate::store::outbound::MessageFilter;
use crate::wire::outbound::{
    BatchWire, BulkBody, BulkResponse, CancelGroupBody, CancelGroupResponse, MessageDetailWire,
    MessagePage, MessageWire, RecipientWire, SendBody, SendResponse,
};

/// Largest bulk request body. 10,000 recipients with a few variables each are
/// about 1.5 MiB; the general `body_limit_bytes` (256 KiB) would refuse them.
const MAX_BULK_BODY_BYTES: usize = 8 * 1024 * 1024;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send, list_messages))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(send_bulk))
                .layer(DefaultBodyLimit::max(MAX_BULK_BODY_BYTES)),
        )
        .routes(routes!(get_message))
        .routes(routes!(retry_message))
        .routes(routes!(cancel_message))
        .routes(routes!(cancel_group))
        .routes(routes!(batch_status))
}

/// An id that cannot exist is simply not found.
fn message_id(raw: &str) -> Result<MessageId, ApiError> {
    MessageId::parse(raw).map_err(|_| ServiceError::NotFound.into())
}

fn invalid(field: impl Into<String>, e: Invalid) -> ApiError {
    ServiceError::from(Invalid::new(field, e.message)).into()
}

fn parse_time(field: &str, raw: &str) -> Result<DateTime<Utc>, Invalid> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| Invalid::new(field, "must be an RFC 3339 time, e.g. 2026-11-27T10:00:00Z"))
}

fn send_request(b: SendBody) -> Result<SendRequest, ApiError> {
    let content = match (b.template, b.body) {
        (Some(name), None) => MessageContent::Template {
            name,
            variables: b.variables,
        },
        (None, Some(body)) => MessageContent::Text {
            subject: b.subject,
            body,
        },
        _ => {
            return Err(invalid(
                "template",
                Invalid::new("", "give exactly one of template, body"),
            ))
        }
    };
    Ok(SendRequest {
        patient: b
            .patient_id
            .as_deref()
            .map(PatientId::parse)
            .transpose()
            .map_err(ServiceError::from)?,
        to: b
            .to
            .as_deref()
            .map(|t| parse_address("to", t))
            .transpose()
            .map_err(ServiceError::from)?,
        channel: b
            .channel
            .as_deref()
            .map(Channel::parse)
            .transpose()
            .map_err(ServiceError::from)?,
        content,
        language: b
            .language
            .as_deref()
            .map(Language::parse)
            .transpose()
            .map_err(ServiceError::from)?,
        kind: b
            .kind
            .as_deref()
            .map(MessageKind::parse)
            .transpose()
            .map_err(ServiceError::from)?,
        send_at: b
            .send_at
            .as_deref()
            .map(|t| parse_time("send_at", t))
            .transpose()
            .map_err(ServiceError::from)?,
        group_key: b.group_key,
    })
}

/// Send one message to a patient (their preferences decide the channel, language
/// and whether it may be sent) or to an ad-hoc `to` address.
///
/// Committed before the answer: `202` queued, or `200` suppressed with the reason.
/// With `Idempotency-Key`, a retry with the same body returns the first answer.
#[utoipa::path(
    post, path = "/v1/messages", tag = "messages",
    request_body = SendBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "retry-safe key, 1..255 chars")),
    responses(
        (status = 202, body = SendResponse, description = "queued"),
        (status = 200, body = SendResponse, description = "suppressed by the patient's preferences"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Idempotency-Key reused with another body"),
        (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "invalid field, unknown or inactive template, missing_variables"),
        (status = 503, body = ErrorBody),
    ),
    security(("api_key" = []), ("user_token" = []))
)]
async fn send(
    State(state): State<AppState>,
    admin: Admin,
    req: IdempotentJson<SendBody>,
) -> ApiResult<(StatusCode, Json<SendResponse>)> {
    // Single sends are open to front_desk too (the contract: read-only plus retry/single send).
    let request = send_request(req.body)?;
    let outcome = state
        .outbound
        .send(&admin.tenant, &request, req.claim.as_ref())
        .await?;
    Ok(match outcome {
        SendOutcome::Queued { id, channel } => (
            StatusCode::ACCEPTED,
            Json(SendResponse {
                id: id.to_string(),
                status: MessageStatus::Queued.as_str(),
                channel: channel.as_str(),
                reason: None,
                detail: None,
            }),
        ),
        SendOutcome::Suppressed {
            id,
            channel,
            reason,
            detail,
        } => (
            StatusCode::OK,
            Json(SendResponse {
                id: id.to_string(),
                status: MessageStatus::Suppressed.as_str(),
                channel: channel.as_str(),
                reason: Some(reason),
                detail: Some(detail),
            }),
        ),
    })
}

/// Parses recipient `i` from its raw JSON; errors name `recipients[i].<field>`.
fn recipient(i: usize, raw: &serde_json::value::RawValue) -> Result<BulkRecipient, Invalid> {
    let at = |f: &str| format!("recipients[{i}].{f}");
    let de = &mut serde_json::Deserializer::from_str(raw.get());
    let r: RecipientWire = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let missing = missing_field(&inner).map(str::to_owned);
        let field = match (path.as_str(), missing) {
            (".", Some(m)) => at(&m),
            (".", None) => format!("recipients[{i}]"),
            (p, _) => at(p),
        };
        Invalid::new(field, inner)
    })?;
    Ok(BulkRecipient {
        patient: r
            .patient_id
            .as_deref()
            .map(|p| PatientId::parse(p).map_err(|e| Invalid::new(at("patient_id"), e.message)))
            .transpose()?,
        to: r
            .to
            .as_deref()
            .map(|t| parse_address(&at("to"), t))
            .transpose()?,
        language: r
            .language
            .as_deref()
            .map(|l| Language::parse(l).map_err(|e| Invalid::new(at("language"), e.message)))
            .transpose()?,
        variables: r.variables,
    })
}

/// Send one template to up to 10,000 recipients, all or nothing: one invalid
/// recipient is a 422 naming `recipients[i].<field>` and nothing is stored.
/// Recipients are processed in chunks as they are written (the request body is
/// the only full copy). Body limit 8 MiB. With `Idempotency-Key`, a retry with the
/// same body returns the first answer.
#[utoipa::path(
    post, path = "/v1/messages/bulk", tag = "messages",
    request_body = BulkBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "retry-safe key, 1..255 chars")),
    responses(
        (status = 202, body = BulkResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("api_key" = []), ("user_token" = []))
)]
async fn send_bulk(
    State(state): State<AppState>,
    admin: Admin,
    req: Request,
) -> ApiResult<(StatusCode, Json<BulkResponse>)> {
    admin.require_full()?;
    let headers = req.headers().clone();
    let key = idempotency_key(&headers)?;
    // The turn before the body: a waiting bulk holds a connection, not its recipients.
    let turn = state.outbound.bulk_turn(&admin.tenant).await?;
    let bytes = read_body(req, &state).await?;
    let body: BulkBody<'_> = parse_json(&headers, &bytes)?;
    if body.recipients.is_empty() || body.recipients.len() > MAX_BULK_RECIPIENTS {
        return Err(ServiceError::from(Invalid::new(
            "recipients",
            format!("must list 1 to {MAX_BULK_RECIPIENTS} recipients"),
        ))
        .into());
    }
    let request = BulkRequest {
        template: body.template,
        channel: body
            .channel
            .as_deref()
            .map(Channel::parse)
            .transpose()
            .map_err(ServiceError::from)?,
        send_at: body
            .send_at
            .as_deref()
            .map(|t| parse_time("send_at", t))
            .transpose()
            .map_err(ServiceError::from)?,
        group_key: body.group_key,
    };
    let claim = key.map(|k| idempotency_claim(k, &bytes));
    let recipients = &body.recipients;
    let outcome = state
        .outbound
        .send_bulk(
            turn,
            &request,
            recipients.len(),
            |i| recipient(i, recipients[i]),
            claim.as_ref(),
            &admin.actor,
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(BulkResponse {
            batch_id: outcome.batch.to_string(),
            queued: outcome.queued,
            suppressed: outcome.suppressed,
        }),
    ))
}

/// The filters of the message list and the CSV export.
#[derive(Debug, Deserialize, IntoParams)]
pub(super) struct MessageQuery {
    /// queued | sending | sent | delivered | read | failed | bounced | cancelled | suppressed
    pub status: Option<String>,
    /// sms | whatsapp | email
    pub channel: Option<String>,
    /// Template name.
    pub template: Option<String>,
    /// Created at or after (RFC 3339).
    pub from: Option<String>,
    /// Created before (RFC 3339).
    pub to: Option<String>,
    /// Case-insensitive search in the address, body, patient id and provider message id.
    pub q: Option<String>,
    pub patient_id: Option<String>,
    pub batch_id: Option<String>,
    pub group_key: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// A bad filter is a bad query: 400 naming the parameter.
pub(super) fn message_filter(q: &MessageQuery) -> Result<MessageFilter, ApiError> {
    let bad = |field: &str, m: String| ApiError::bad_request(m).with_field(field);
    let time = |field: &str, v: &Option<String>| {
        v.as_deref()
            .filter(|s| !s.is_empty())
            .map(|t| parse_time(field, t).map_err(|e| bad(field, e.message)))
            .transpose()
    };
    let nonempty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    Ok(MessageFilter {
        status: q
            .status
            .as_deref()
            .map(MessageStatus::parse)
            .transpose()
            .map_err(|e| bad("status", e.message))?,
        channel: q
            .channel
            .as_deref()
            .map(Channel::parse)
            .transpose()
            .map_err(|e| bad("channel", e.message))?,
        template: nonempty(&q.template),
        patient: q
            .patient_id
            .as_deref()
            .map(PatientId::parse)
            .transpose()
            .map_err(|e| bad("patient_id", e.message))?,
        batch: q
            .batch_id
            .as_deref()
            .map(BatchId::parse)
            .transpose()
            .map_err(|e| bad("batch_id", e.message))?,
        group_key: nonempty(&q.group_key),
        from: time("from", &q.from)?,
        to: time("to", &q.to)?,
        q: nonempty(&q.q),
    })
}

/// List messages, newest first, with filters. Audited (`read.messages`).
#[utoipa::path(
    get, path = "/v1/messages", tag = "messages", params(MessageQuery),
    responses((status = 200, body = MessagePage), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("api_key" = []), ("user_token" = []))
)]
async fn list_messages(
    State(state): State<AppState>,
    admin: Admin,
    ApiQuery(q): ApiQuery<MessageQuery>,
) -> ApiResult<Json<MessagePage>> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let filter = message_filter(&q)?;
    let page = state
        .outbound
        .list_messages(&admin.tenant, &filter, page, &admin.actor)
        .await?;
    Ok(Json(MessagePage {
        items: page.items.iter().map(MessageWire::from).collect(),
        next_cursor: page.next.map(encode_cursor),
    }))
}

/// One message with its variables and its event timeline (oldest first). Audited
/// (`read.message`). A redacted message has `"body": null` and a `redacted_at`.
#[utoipa::path(
    get, path = "/v1/messages/{id}", tag = "messages", params(("id" = String, Path)),
    responses((status = 200, body = MessageDetailWire), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("user_token" = []))
)]
async fn get_message(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<MessageDetailWire>> {
    let (m, events) = state
        .outbound
        .message(&admin.tenant, message_id(&id)?, &admin.actor)
        .await?;
    Ok(Json(MessageDetailWire::new(&m, &events)))
}

/// Retry a failed or bounced message now (else 409 `invalid_status`).
#[utoipa::path(
    post, path = "/v1/messages/{id}/retry", tag = "messages", params(("id" = String, Path)),
    responses((status = 200, body = MessageWire), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "invalid_status")),
    security(("api_key" = []), ("user_token" = []))
)]
async fn retry_message(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<MessageWire>> {
    // front_desk may retry (the contract).
    let m = state
        .outbound
        .retry_message(&admin.tenant, message_id(&id)?, &admin.actor)
        .await?;
    Ok(Json(MessageWire::from(&m)))
}

/// Cancel a message that is still queued (else 409 `invalid_status`).
#[utoipa::path(
    post, path = "/v1/messages/{id}/cancel", tag = "messages", params(("id" = String, Path)),
    responses((status = 200, body = MessageWire), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "invalid_status")),
    security(("api_key" = []), ("user_token" = []))
)]
async fn cancel_message(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<MessageWire>> {
    admin.require_full()?;
    let m = state
        .outbound
        .cancel_message(&admin.tenant, message_id(&id)?, &admin.actor)
        .await?;
    Ok(Json(MessageWire::from(&m)))
}

/// Cancel every still-queued message of a group (e.g. an appointment's reminders).
#[utoipa::path(
    post, path = "/v1/messages/cancel", tag = "messages",
    request_body = CancelGroupBody,
    responses((status = 200, body = CancelGroupResponse), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 415, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("api_key" = []), ("user_token" = []))
)]
async fn cancel_group(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(body): ApiJson<CancelGroupBody>,
) -> ApiResult<Json<CancelGroupResponse>> {
    admin.require_full()?;
    let cancelled = state
        .outbound
        .cancel_group(&admin.tenant, &body.group_key, &admin.actor)
        .await?;
    Ok(Json(CancelGroupResponse {
        group_key: body.group_key,
        cancelled,
    }))
}

/// A bulk send's messages counted by status (an extension).
#[utoipa::path(
    get, path = "/v1/messages/batches/{id}", tag = "messages", params(("id" = String, Path)),
    responses((status = 200, body = BatchWire), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("user_token" = []))
)]
async fn batch_status(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<BatchWire>> {
    let id = BatchId::parse(&id).map_err(|_| ApiError::from(ServiceError::NotFound))?;
    let b = state.outbound.batch(&admin.tenant, id).await?;
    Ok(Json(BatchWire::from(&b)))
}
