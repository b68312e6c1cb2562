//! The administrative audit log: `GET /v1/audit`.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{encode_cursor, page_request, Admin, ApiQuery};
use super::AppState;
use crate::store::outbound::AuditFilter;
use crate::wire::outbound::{AuditPage, AuditWire};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit))
}

#[derive(Debug, Deserialize, IntoParams)]
pub(super) struct AuditQuery {
    /// Exact (`template.update`) or a prefix ending in `.` (`template.`).
    pub action: Option<String>,
    /// `api_key:<prefix>` or `user:<id>`.
    pub actor: Option<String>,
    /// At or after (RFC 3339).
    pub from: Option<String>,
    /// Before (RFC 3339).
    pub to: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

fn time(field: &str, v: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    v.filter(|s| !s.is_empty())
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::bad_request(format!("{field} must be an RFC 3339 time"))
                        .with_field(field)
                })
        })
        .transpose()
}

/// Who changed what, newest first: template changes, bulk sends, retries,
/// cancels, patient preference changes.
#[utoipa::path(
    get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("api_key" = []), ("user_token" = []))
)]
async fn list_audit(
    State(state): State<AppState>,
    admin: Admin,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let filter = AuditFilter {
        action: q.action.filter(|s| !s.is_empty()),
        actor: q.actor.filter(|s| !s.is_empty()),
        from: time("from", q.from.as_deref())?,
        to: time("to", q.to.as_deref())?,
    };
    let page = state
        .outbound
        .audit_log(&admin.tenant, &filter, page)
        .await?;
    Ok(Json(AuditPage {
        items: page.items.iter().map(AuditWire::from).collect(),
        next_cursor: page.next.map(encode_cursor),
    }))
}
