//! The one table from errors to HTTP status + stable `code` + JSON body.
//!
//! Internal details are logged here and never returned to the caller.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::service::ServiceError;

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code; match on this, not on `message`.
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(inv) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", inv.message)
                    .with_field(inv.field)
            }
            ServiceError::NotFound => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such object")
            }
            ServiceError::Unauthorized(why) => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", why)
            }
            ServiceError::Busy {
                message,
                retry_after_secs,
            } => {
                let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
                e.retry_after = Some(retry_after_secs);
                e
            }
            ServiceError::TokenExpired => {
                ApiError::new(StatusCode::UNAUTHORIZED, "token_expired", "token expired")
            }
            ServiceError::Forbidden(why) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", why),
            ServiceError::Conflict { code, message } => {
                ApiError::new(StatusCode::CONFLICT, code, message)
            }
            ServiceError::Render { field, error } => {
                let code = if error.missing.is_empty() {
                    "undeclared_variables"
                } else {
                    "missing_variables"
                };
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, error.to_string())
                    .with_field(field)
            }
            ServiceError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "dependency unavailable");
                let mut e = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "a dependency (database or bus) is unavailable; retry later",
                );
                e.retry_after = Some(1);
                e
            }
            ServiceError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                field: self.field,
            },
        };
        let mut res = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, secs.into());
        }
        res
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
