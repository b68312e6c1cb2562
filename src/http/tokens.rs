//! `POST /v1/tokens`: mint a user token (API key).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiKey};
use super::AppState;
use crate::domain::auth::Role;
use crate::domain::ids::UserId;
use crate::domain::user::check_profile;
use crate::service::ServiceError;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(mint))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct MintBody {
    pub user_id: String,
    /// admin | front_desk | provider | patient
    pub role: String,
    /// 1..604800, default 3600.
    pub ttl_seconds: Option<i64>,
    pub name: Option<String>,
    pub locale: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct MintResponse {
    pub token: String,
    pub expires_at: String,
}

/// Mint an HS256 user token signed with the tenant's secret.
#[utoipa::path(
    post, path = "/v1/tokens", tag = "auth",
    request_body = MintBody,
    responses((status = 200, body = MintResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
               (status = 422, body = ErrorBody)),
    security(("api_key" = []))
)]
async fn mint(
    State(state): State<AppState>,
    ApiKey(tenant): ApiKey,
    ApiJson(body): ApiJson<MintBody>,
) -> ApiResult<Json<MintResponse>> {
    let user = UserId::parse(&body.user_id).map_err(ServiceError::from)?;
    let role: Role = body.role.parse().map_err(ServiceError::from)?;
    // The token's name and locale land in the directory when it connects: the
    // directory's limits apply here, before anything is signed.
    check_profile(body.name.as_deref(), body.locale.as_deref()).map_err(ServiceError::from)?;
    let t = state
        .auth
        .mint(
            &tenant,
            &user,
            role,
            body.ttl_seconds,
            body.name,
            body.locale,
        )
        .await?;
    Ok(Json(MintResponse {
        token: t.token,
        expires_at: crate::wire::time(t.expires_at),
    }))
}
