//! `POST /v1/notifications`: publish (API key).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiKey, IdempotentJson};
use super::AppState;
use crate::domain::escalation::{parse_steps, StepInput};
use crate::domain::ids::UserId;
use crate::domain::notification::{ContentInput, NotificationContent};
use crate::service::publish::Target;
use crate::wire::RelatedWire;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(publish))
}

/// Exactly one of `user_id`, `user_ids`, `role`, plus the notification fields.
#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct PublishBody {
    pub user_id: Option<String>,
    /// 1..1000 user ids; duplicates are sent once.
    pub user_ids: Option<Vec<String>>,
    /// Every directory user of this role in the tenant.
    pub role: Option<String>,
    /// 1..200 characters.
    pub title: String,
    /// 1..4000 characters.
    pub message: String,
    /// info (default) | warning | error | success
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub category: Option<String>,
    pub related: Option<RelatedWire>,
    /// http(s) URL or absolute path.
    pub link: Option<String>,
    /// Free JSON, at most 8 KiB.
    #[schema(value_type = Object)]
    pub data: Option<Box<RawValue>>,
    /// low | normal (default) | high | critical. `critical` is pushed live even in a
    /// muted category or the recipient's quiet hours; `low` is never pushed outside
    /// the inbox (no web push).
    pub priority: Option<String>,
    /// 1..5 steps, `after_s` increasing (1..604800): when no notification of this
    /// publish (nor an earlier step's copy) has been read `after_s` seconds after the
    /// publish, the step's recipients get a copy with `escalated_from`.
    pub escalate: Option<Vec<EscalateStepBody>>,
}

/// One escalation step.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EscalateStepBody {
    /// Seconds after the publish.
    pub after_s: Option<i64>,
    pub to: EscalateToBody,
}

/// Exactly one of `user_id`, `role`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EscalateToBody {
    pub user_id: Option<String>,
    /// Every directory user of this role when the step fires.
    pub role: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct PublishedItem {
    pub id: String,
    pub user_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct PublishResponse {
    pub notifications: Vec<PublishedItem>,
}

fn target(body: &PublishBody) -> Result<Target, ApiError> {
    let given = [
        body.user_id.is_some(),
        body.user_ids.is_some(),
        body.role.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "give exactly one of user_id, user_ids, role",
        )
        .with_field("user_id"));
    }
    if let Some(u) = &body.user_id {
        return Ok(Target::User(
            UserId::parse(u).map_err(crate::service::ServiceError::from)?,
        ));
    }
    if let Some(list) = &body.user_ids {
        let users = list
            .iter()
            .enumerate()
            .map(|(i, u)| {
                UserId::parse(u).map_err(|e| {
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.message)
                        .with_field(format!("user_ids[{i}]"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Target::Users(users));
    }
    let role = body.role.as_deref().unwrap_or_default();
    Ok(Target::Role(
        role.parse().map_err(crate::service::ServiceError::from)?,
    ))
}

/// Publish a notification to one user, a list of users, or every user of a role.
///
/// Stored before the response, then pushed to every open connection of each
/// recipient on every node. With `Idempotency-Key`, a retry with the same body
/// returns the first response and creates nothing.
#[utoipa::path(
    post, path = "/v1/notifications", tag = "publishing",
    request_body = PublishBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "retry-safe key, 1..255 chars")),
    responses(
        (status = 201, body = PublishResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Idempotency-Key reused with another body"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn publish(
    State(state): State<AppState>,
    ApiKey(tenant): ApiKey,
    req: IdempotentJson<PublishBody>,
) -> ApiResult<(StatusCode, Json<PublishResponse>)> {
    let body = req.body;
    let target = target(&body)?;
    let data_json = body
        .data
        .as_ref()
        .map(|d| d.get().to_owned())
        .filter(|d| d != "null");
    let content = NotificationContent::parse(ContentInput {
        title: &body.title,
        message: &body.message,
        kind: body.kind.as_deref(),
        category: body.category.as_deref(),
        related: body
            .related
            .as_ref()
            .map(|r| (r.kind.as_str(), r.id.as_str())),
        link: body.link.as_deref(),
        data_json,
        priority: body.priority.as_deref(),
    })
    .map_err(crate::service::ServiceError::from)?;
    let escalate = match &body.escalate {
        None => Vec::new(),
        Some(steps) => {
            let steps: Vec<StepInput<'_>> = steps
                .iter()
                .map(|s| StepInput {
                    after_s: s.after_s,
                    user_id: s.to.user_id.as_deref(),
                    role: s.to.role.as_deref(),
                })
                .collect();
            parse_steps(&steps).map_err(crate::service::ServiceError::from)?
        }
    };
    let published = state
        .publisher
        .publish(&tenant, target, content, escalate, req.claim)
        .await?;
    let notifications = published
        .created
        .into_iter()
        .map(|(id, user)| PublishedItem {
            id: id.to_string(),
            user_id: user.as_str().to_owned(),
        })
        .collect();
    Ok((StatusCode::CREATED, Json(PublishResponse { notifications })))
}
