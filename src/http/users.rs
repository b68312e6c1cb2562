//! The user directory: `PUT /v1/users/{user_id}`, `GET /v1/users`.

use axum::extract::{Path, State};
use axum::Json;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiResult, ErrorBody};
use super::extract::{encode_cursor, page_request, Admin, ApiJson, ApiQuery};
use super::AppState;
use crate::domain::auth::Role;
use crate::domain::ids::UserId;
use crate::domain::user::{check_profile, DirectoryUser};
use crate::service::ServiceError;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_user))
        .routes(routes!(list_users))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct PutUserBody {
    /// admin | front_desk | provider | patient
    pub role: String,
    pub name: Option<String>,
    pub locale: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct UserWire {
    pub user_id: String,
    pub role: String,
    pub name: Option<String>,
    pub locale: Option<String>,
    pub updated_at: String,
}

impl From<DirectoryUser> for UserWire {
    fn from(u: DirectoryUser) -> Self {
        UserWire {
            user_id: u.user.as_str().to_owned(),
            role: u.role.as_str().to_owned(),
            name: u.name,
            locale: u.locale,
            updated_at: crate::wire::time(u.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct UserPage {
    pub items: Vec<UserWire>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub(super) struct UserQuery {
    pub role: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Create or update a directory user (who `role` publishes reach).
#[utoipa::path(
    put, path = "/v1/users/{user_id}", tag = "directory",
    params(("user_id" = String, Path)),
    request_body = PutUserBody,
    responses((status = 200, body = UserWire), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
               (status = 422, body = ErrorBody)),
    security(("api_key" = []), ("user_token" = []))
)]
async fn put_user(
    State(state): State<AppState>,
    admin: Admin,
    Path(user_id): Path<String>,
    ApiJson(body): ApiJson<PutUserBody>,
) -> ApiResult<Json<UserWire>> {
    admin.require_full()?;
    check_profile(body.name.as_deref(), body.locale.as_deref()).map_err(ServiceError::from)?;
    let user = DirectoryUser {
        user: UserId::parse(&user_id).map_err(ServiceError::from)?,
        role: body.role.parse::<Role>().map_err(ServiceError::from)?,
        name: body.name,
        locale: body.locale,
        updated_at: state.clock.now(),
    };
    let saved = state.directory.put(&admin.tenant, user).await?;
    Ok(Json(saved.into()))
}

/// List directory users, newest first, optionally of one role.
#[utoipa::path(
    get, path = "/v1/users", tag = "directory",
    params(UserQuery),
    responses((status = 200, body = UserPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
               (status = 403, body = ErrorBody)),
    security(("api_key" = []), ("user_token" = []))
)]
async fn list_users(
    State(state): State<AppState>,
    admin: Admin,
    ApiQuery(q): ApiQuery<UserQuery>,
) -> ApiResult<Json<UserPage>> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let role = q
        .role
        .as_deref()
        .map(str::parse::<Role>)
        .transpose()
        .map_err(|e| super::error::ApiError::bad_request(e.message).with_field("role"))?;
    let page = state.directory.list(&admin.tenant, role, page).await?;
    Ok(Json(UserPage {
        items: page.items.into_iter().map(UserWire::from).collect(),
        next_cursor: page.next.map(encode_cursor),
    }))
}
