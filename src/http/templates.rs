//! Templates: `POST|GET /v1/templates`, `GET|PUT|DELETE /v1/templates/{id}`,
//! `POST /v1/templates/{id}/toggle`, `POST /v1/templates/{id}/test`, and the
//! version history `GET /v1/templates/{id}/versions` (an extension).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{encode_cursor, page_request, Admin, ApiJson, ApiQuery};
use super::AppState;
use crate::domain::ids::TemplateId;
use crate::domain::template::{Channel, Language, MessageKind, TemplateDraft};
use crate::service::ServiceError;
use crate::store::outbound::{StoredTemplate, TemplateFilter};
use crate::wire::outbound::{
    RenderedWire, TemplateBody, TemplatePage, TemplateVersionWire, TemplateVersionsWire,
    TemplateWire, TestRenderBody,
};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_template, list_templates))
        .routes(routes!(get_template, update_template, delete_template))
        .routes(routes!(toggle_template))
        .routes(routes!(test_template))
        .routes(routes!(template_versions))
}

/// A template id that cannot exist is simply not found.
pub(super) fn template_id(raw: &str) -> Result<TemplateId, ApiError> {
    TemplateId::parse(raw).map_err(|_| ServiceError::NotFound.into())
}

/// A template as answered, with the clinic-event rules that send it.
fn wire(state: &AppState, admin: &Admin, t: &StoredTemplate) -> TemplateWire {
    let rules = state
        .outbound
        .rules_using(&admin.tenant, t.template.name.as_str());
    TemplateWire::new(t, rules)
}

fn draft(b: TemplateBody) -> TemplateDraft {
    TemplateDraft {
        name: b.name,
        channel: b.channel,
        kind: b.kind,
        body_en: b.body_en,
        body_ar: b.body_ar,
        subject_en: b.subject_en,
        subject_ar: b.subject_ar,
        variables: b.variables,
        is_active: b.is_active,
    }
}

/// Create a template (version 1).
#[utoipa::path(
    post, path = "/v1/templates", tag = "templates",
    request_body = TemplateBody,
    responses(
        (status = 201, body = TemplateWire),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "template_name_taken"),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
    ),
    security(("api_key" = []), ("user_token" = []))
)]
async fn create_template(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(body): ApiJson<TemplateBody>,
) -> ApiResult<(StatusCode, Json<TemplateWire>)> {
    admin.require_full()?;
    let t = state
        .outbound
        .create_template(&admin.tenant, draft(body), &admin.actor)
        .await?;
    Ok((StatusCode::CREATED, Json(wire(&state, &admin, &t))))
}

#[derive(Debug, Deserialize, IntoParams)]
pub(super) struct TemplateQuery {
    /// sms | whatsapp | email
    pub channel: Option<String>,
    pub kind: Option<String>,
    /// true | false
    pub active: Option<bool>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// List templates, newest first.
#[utoipa::path(
    get, path = "/v1/templates", tag = "templates", params(TemplateQuery),
    responses((status = 200, body = TemplatePage), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("api_key" = []), ("user_token" = []))
)]
async fn list_templates(
    State(state): State<AppState>,
    admin: Admin,
    ApiQuery(q): ApiQuery<TemplateQuery>,
) -> ApiResult<Json<TemplatePage>> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let bad = |field: &str, m: String| ApiError::bad_request(m).with_field(field);
    let filter = TemplateFilter {
        channel: q
            .channel
            .as_deref()
            .map(Channel::parse)
            .transpose()
            .map_err(|e| bad("channel", e.message))?,
        kind: q
            .kind
            .as_deref()
            .map(MessageKind::parse)
            .transpose()
            .map_err(|e| bad("kind", e.message))?,
        active: q.active,
    };
    let page = state
        .outbound
        .list_templates(&admin.tenant, &filter, page)
        .await?;
    Ok(Json(TemplatePage {
        items: page.items.iter().map(|t| wire(&state, &admin, t)).collect(),
        next_cursor: page.next.map(encode_cursor),
    }))
}

/// One template (its current version).
#[utoipa::path(
    get, path = "/v1/templates/{id}", tag = "templates", params(("id" = String, Path)),
    responses((status = 200, body = TemplateWire), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("user_token" = []))
)]
async fn get_template(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<TemplateWire>> {
    let t = state
        .outbound
        .template(&admin.tenant, template_id(&id)?)
        .await?;
    Ok(Json(wire(&state, &admin, &t)))
}

/// Edit a template: the body is the whole next version (the name cannot change).
/// Messages already sent keep the version they were rendered from.
#[utoipa::path(
    put, path = "/v1/templates/{id}", tag = "templates", params(("id" = String, Path)),
    request_body = TemplateBody,
    responses((status = 200, body = TemplateWire), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "edit_conflict"),
              (status = 422, body = ErrorBody)),
    security(("api_key" = []), ("user_token" = []))
)]
async fn update_template(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TemplateBody>,
) -> ApiResult<Json<TemplateWire>> {
    admin.require_full()?;
    let t = state
        .outbound
        .update_template(&admin.tenant, template_id(&id)?, draft(body), &admin.actor)
        .await?;
    Ok(Json(wire(&state, &admin, &t)))
}

/// Delete a template (its name becomes free; its versions stay for the messages that used them).
#[utoipa::path(
    delete, path = "/v1/templates/{id}", tag = "templates", params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "template_in_use: the clinic-event rules send it; the message names them")),
    security(("api_key" = []), ("user_token" = []))
)]
async fn delete_template(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    admin.require_full()?;
    state
        .outbound
        .delete_template(&admin.tenant, template_id(&id)?, &admin.actor)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Switch a template on or off (no new version).
#[utoipa::path(
    post, path = "/v1/templates/{id}/toggle", tag = "templates", params(("id" = String, Path)),
    responses((status = 200, body = TemplateWire), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("user_token" = []))
)]
async fn toggle_template(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<TemplateWire>> {
    admin.require_full()?;
    let t = state
        .outbound
        .toggle_template(&admin.tenant, template_id(&id)?, &admin.actor)
        .await?;
    Ok(Json(wire(&state, &admin, &t)))
}

/// Render the current version with sample values. A missing variable is a 422
/// `missing_variables` whose message names every one (field `variables`).
#[utoipa::path(
    post, path = "/v1/templates/{id}/test", tag = "templates", params(("id" = String, Path)),
    request_body = TestRenderBody,
    responses((status = 200, body = RenderedWire), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("api_key" = []), ("user_token" = []))
)]
async fn test_template(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TestRenderBody>,
) -> ApiResult<Json<RenderedWire>> {
    let id = template_id(&id)?;
    let language = body
        .language
        .as_deref()
        .map(Language::parse)
        .transpose()
        .map_err(ServiceError::from)?
        .unwrap_or_default();
    let r = state
        .outbound
        .test_template(&admin.tenant, id, language, &body.variables)
        .await?;
    Ok(Json(RenderedWire {
        subject: r.subject,
        body: r.body,
    }))
}

/// Every version of a template, newest first (an extension).
#[utoipa::path(
    get, path = "/v1/templates/{id}/versions", tag = "templates", params(("id" = String, Path)),
    responses((status = 200, body = TemplateVersionsWire), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("user_token" = []))
)]
async fn template_versions(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<TemplateVersionsWire>> {
    let versions = state
        .outbound
        .template_versions(&admin.tenant, template_id(&id)?)
        .await?;
    Ok(Json(TemplateVersionsWire {
        items: versions.iter().map(TemplateVersionWire::from).collect(),
    }))
}
