//! User tokens: `POST /v1/tokens` mints one (API key); revoking a user's tokens
//! and rotating the tenant's signing secret.

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiKey, FullAdmin};
use super::AppState;
use crate::domain::auth::Role;
use crate::domain::ids::UserId;
use crate::domain::user::check_profile;
use crate::domain::Invalid;
use crate::service::ServiceError;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(mint))
        .routes(routes!(revoke_user_tokens))
        .routes(routes!(rotate_secret))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct MintBody {
    pub user_id: String,
    /// admin | front_desk | provider | patient
    pub role: String,
    /// At least 1, default 3600; capped to `auth.max_token_ttl_secs` (default 86400):
    /// `expires_at` says what was granted.
    pub ttl_seconds: Option<i64>,
    pub name: Option<String>,
    pub locale: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct MintResponse {
    pub token: String,
    pub expires_at: String,
}

/// Mint an HS256 user token signed with the tenant's secret (its `kid` header names
/// that secret).
#[utoipa::path(
    post, path = "/v1/tokens", tag = "auth",
    request_body = MintBody,
    responses((status = 200, body = MintResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
               (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)),
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

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct RevokedTokens {
    pub user_id: String,
    /// Tokens of this user issued before this time are refused (401).
    pub not_before: String,
    /// Live connections of the user closed on the node that answered (4001); other
    /// nodes close theirs within `auth.cache_ttl_secs`.
    pub closed_connections: usize,
}

/// Revoke every token of a user issued until now (lost device, staff leaving):
/// refused from now on, and the user's live WebSocket/SSE connections are closed
/// as on token expiry (4001, SSE `token_expired`). Tokens minted afterwards work.
#[utoipa::path(
    post, path = "/v1/users/{user_id}/revoke-tokens", tag = "auth",
    params(("user_id" = String, Path)),
    responses((status = 200, body = RevokedTokens), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
               (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("api_key" = []), ("user_token" = []))
)]
async fn revoke_user_tokens(
    State(state): State<AppState>,
    FullAdmin(admin): FullAdmin,
    Path(user_id): Path<String>,
) -> ApiResult<Json<RevokedTokens>> {
    let user = UserId::parse(&user_id).map_err(ServiceError::from)?;
    let (not_before, closed) = state.auth.revoke_user_tokens(&admin.tenant, &user).await?;
    Ok(Json(RevokedTokens {
        user_id: user.as_str().to_owned(),
        not_before: crate::wire::time(not_before),
        closed_connections: closed,
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RotateBody {
    /// How long tokens of the current secret stay valid, 0..=2592000 (default: the
    /// maximum token lifetime, so no token minted before the rotation breaks).
    pub overlap_secs: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct RotatedSecretBody {
    /// The `kid` header of tokens signed with the new secret.
    pub kid: String,
    /// The new HS256 secret: shown once.
    pub jwt_secret: String,
    pub previous_valid_until: String,
}

/// Longest overlap a rotation may keep the previous secret (30 days).
pub(super) const MAX_OVERLAP_SECS: u64 = 30 * 86_400;

/// Rotate the tenant's signing secret (API key only: the answer holds the secret).
/// The previous secret keeps verifying for `overlap_secs`.
#[utoipa::path(
    post, path = "/v1/tenant/rotate-secret", tag = "auth",
    request_body = RotateBody,
    responses((status = 200, body = RotatedSecretBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
               (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("api_key" = []))
)]
async fn rotate_secret(
    State(state): State<AppState>,
    ApiKey(tenant): ApiKey,
    ApiJson(body): ApiJson<RotateBody>,
) -> ApiResult<Json<RotatedSecretBody>> {
    let overlap = match body.overlap_secs {
        Some(s) if s > MAX_OVERLAP_SECS => {
            return Err(ServiceError::from(Invalid::new(
                "overlap_secs",
                format!("must be 0..{MAX_OVERLAP_SECS}"),
            ))
            .into())
        }
        Some(s) => std::time::Duration::from_secs(s),
        None => state.auth.max_token_ttl(),
    };
    let rotated = state.auth.rotate_secret(&tenant, overlap).await?;
    Ok(Json(RotatedSecretBody {
        kid: rotated.kid,
        jwt_secret: rotated.jwt_secret,
        previous_valid_until: crate::wire::time(rotated.previous_valid_until),
    }))
}
