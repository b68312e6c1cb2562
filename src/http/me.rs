//! The signed-in staff member's own notifications and preferences (user token).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{encode_cursor, page_request, ApiJson, ApiQuery, User};
use super::AppState;
use crate::domain::ids::NotificationId;
use crate::domain::notification::Notification;
use crate::domain::preferences::{QuietHours, StaffPreferences};
use crate::service::ServiceError;
use crate::store::InboxFilter;
use crate::wire::{NotificationWire, UnreadWire};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(unread_count))
        .routes(routes!(read_one))
        .routes(routes!(read_all))
        .routes(routes!(archive))
        .routes(routes!(get_preferences, put_preferences))
        .routes(routes!(categories))
}

#[derive(Debug, Deserialize, IntoParams)]
pub(super) struct ListQuery {
    /// unread | all (default all)
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// A page of notifications: `{"items": [...], "next_cursor": "…" | null}`.
#[derive(Serialize, ToSchema)]
pub(super) struct NotificationPage<'a> {
    pub items: Vec<NotificationWire<'a>>,
    pub next_cursor: Option<String>,
}

fn page_json(items: &[Notification], next: Option<i64>) -> Response {
    let page = NotificationPage {
        items: items.iter().map(NotificationWire::from_domain).collect(),
        next_cursor: next.map(encode_cursor),
    };
    Json(page).into_response()
}

fn notification_id(raw: &str) -> Result<NotificationId, ApiError> {
    // An id that cannot exist is simply not found: never a hint about the format of others.
    NotificationId::parse(raw).map_err(|_| ServiceError::NotFound.into())
}

/// List my notifications, newest first (archived ones excluded).
#[utoipa::path(
    get, path = "/v1/me/notifications", tag = "inbox", params(ListQuery),
    responses((status = 200, body = NotificationPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("user_token" = []))
)]
async fn list(
    State(state): State<AppState>,
    User(me): User,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Response> {
    let filter = match q.status.as_deref() {
        None | Some("all") => InboxFilter::All,
        Some("unread") => InboxFilter::Unread,
        Some(_) => {
            return Err(ApiError::bad_request("status must be unread or all").with_field("status"))
        }
    };
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let page = state.inbox.list(&me.tenant, &me.user, filter, page).await?;
    Ok(page_json(&page.items, page.next))
}

/// My unread count.
#[utoipa::path(
    get, path = "/v1/me/unread-count", tag = "inbox",
    responses((status = 200, body = UnreadWire), (status = 401, body = ErrorBody)),
    security(("user_token" = []))
)]
async fn unread_count(
    State(state): State<AppState>,
    User(me): User,
) -> ApiResult<Json<UnreadWire>> {
    Ok(Json(state.inbox.unread(&me.tenant, &me.user).await?.into()))
}

/// Mark one notification read (idempotent). 404 if it is not mine.
#[utoipa::path(
    post, path = "/v1/me/notifications/{id}/read", tag = "inbox", params(("id" = String, Path)),
    responses((status = 200, body = UnreadWire), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("user_token" = []))
)]
async fn read_one(
    State(state): State<AppState>,
    User(me): User,
    Path(id): Path<String>,
) -> ApiResult<Json<UnreadWire>> {
    let id = notification_id(&id)?;
    Ok(Json(
        state.inbox.read_one(&me.tenant, &me.user, id).await?.into(),
    ))
}

/// Mark all my notifications read.
#[utoipa::path(
    post, path = "/v1/me/notifications/read-all", tag = "inbox",
    responses((status = 200, body = UnreadWire), (status = 401, body = ErrorBody)),
    security(("user_token" = []))
)]
async fn read_all(State(state): State<AppState>, User(me): User) -> ApiResult<Json<UnreadWire>> {
    Ok(Json(
        state.inbox.read_all(&me.tenant, &me.user).await?.into(),
    ))
}

/// Archive one notification: gone from lists and counts.
#[utoipa::path(
    delete, path = "/v1/me/notifications/{id}", tag = "inbox", params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("user_token" = []))
)]
async fn archive(
    State(state): State<AppState>,
    User(me): User,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = notification_id(&id)?;
    state.inbox.archive(&me.tenant, &me.user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(super) struct QuietHoursWire {
    /// HH:MM, 24-hour
    pub start: String,
    pub end: String,
    /// IANA zone, e.g. Asia/Riyadh
    pub tz: String,
}

/// Staff in-app preferences. Muted categories and quiet hours stop live pushes;
/// notifications are still stored and counted.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(super) struct PreferencesWire {
    #[serde(default)]
    pub muted_categories: Vec<String>,
    #[serde(default)]
    pub quiet_hours: Option<QuietHoursWire>,
}

impl From<StaffPreferences> for PreferencesWire {
    fn from(p: StaffPreferences) -> Self {
        PreferencesWire {
            muted_categories: p.muted_categories,
            quiet_hours: p.quiet_hours.map(|q| QuietHoursWire {
                start: q.start.format("%H:%M").to_string(),
                end: q.end.format("%H:%M").to_string(),
                tz: q.tz.name().to_owned(),
            }),
        }
    }
}

/// My preferences.
#[utoipa::path(
    get, path = "/v1/me/preferences", tag = "inbox",
    responses((status = 200, body = PreferencesWire), (status = 401, body = ErrorBody)),
    security(("user_token" = []))
)]
async fn get_preferences(
    State(state): State<AppState>,
    User(me): User,
) -> ApiResult<Json<PreferencesWire>> {
    Ok(Json(
        state.inbox.preferences(&me.tenant, &me.user).await?.into(),
    ))
}

/// The categories of my notifications: `{"categories": ["appointments", ...]}`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct CategoriesWire {
    /// Sorted; archived notifications are not counted; at most 500.
    pub categories: Vec<String>,
}

/// Every category my notifications carry (an extension): what a notification
/// center offers as filters and as categories to mute, loaded pages or not.
#[utoipa::path(
    get, path = "/v1/me/categories", tag = "inbox",
    responses((status = 200, body = CategoriesWire), (status = 401, body = ErrorBody)),
    security(("user_token" = []))
)]
async fn categories(
    State(state): State<AppState>,
    User(me): User,
) -> ApiResult<Json<CategoriesWire>> {
    Ok(Json(CategoriesWire {
        categories: state.inbox.categories(&me.tenant, &me.user).await?,
    }))
}

/// Replace my preferences.
#[utoipa::path(
    put, path = "/v1/me/preferences", tag = "inbox", request_body = PreferencesWire,
    responses((status = 200, body = PreferencesWire), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("user_token" = []))
)]
async fn put_preferences(
    State(state): State<AppState>,
    User(me): User,
    ApiJson(body): ApiJson<PreferencesWire>,
) -> ApiResult<Json<PreferencesWire>> {
    let quiet = body
        .quiet_hours
        .map(|q| QuietHours::parse(&q.start, &q.end, &q.tz))
        .transpose()
        .map_err(ServiceError::from)?;
    let prefs = StaffPreferences::new(body.muted_categories, quiet).map_err(ServiceError::from)?;
    Ok(Json(
        state
            .inbox
            .set_preferences(&me.tenant, &me.user, prefs)
            .await?
            .into(),
    ))
}
