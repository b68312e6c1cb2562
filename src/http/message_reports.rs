//! Reports over messages: `GET /v1/messages/stats` and `GET /v1/messages/export.csv`.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Admin, ApiQuery};
use super::messages::{message_filter, MessageQuery};
use super::AppState;
use crate::service::outbound::stats::{DEFAULT_STATS_DAYS, MAX_STATS_DAYS};
use crate::wire::outbound::StatsWire;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(stats))
        .routes(routes!(export_csv))
}

#[derive(Debug, Deserialize, IntoParams)]
pub(super) struct StatsQuery {
    /// 1..366 whole UTC days ending today (default 7).
    pub days: Option<i64>,
}

/// Totals, by status, by channel, success rate, daily trend and cost, over the
/// messages created in the last `days` UTC days (today included).
#[utoipa::path(
    get, path = "/v1/messages/stats", tag = "messages", params(StatsQuery),
    responses((status = 200, body = StatsWire), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("api_key" = []), ("user_token" = []))
)]
async fn stats(
    State(state): State<AppState>,
    admin: Admin,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> ApiResult<Json<StatsWire>> {
    let days = match q.days {
        None => DEFAULT_STATS_DAYS,
        Some(d) if (1..=i64::from(MAX_STATS_DAYS)).contains(&d) => d as u32,
        Some(_) => {
            return Err(
                ApiError::bad_request(format!("days must be 1..{MAX_STATS_DAYS}"))
                    .with_field("days"),
            )
        }
    };
    let report = state.outbound.stats(&admin.tenant, days).await?;
    Ok(Json(StatsWire::from(&report)))
}

/// The message list as CSV (same filters as `GET /v1/messages`; `limit` and
/// `cursor` are ignored: everything that matches, newest first), streamed page by
/// page. UTF-8 with a BOM (Excel shows Arabic correctly), RFC 4180 quoting.
#[utoipa::path(
    get, path = "/v1/messages/export.csv", tag = "messages", params(MessageQuery),
    responses((status = 200, content_type = "text/csv", body = String),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("api_key" = []), ("user_token" = []))
)]
async fn export_csv(
    State(state): State<AppState>,
    admin: Admin,
    ApiQuery(q): ApiQuery<MessageQuery>,
) -> ApiResult<Response> {
    let filter = message_filter(&q)?;
    // Logged before the first row leaves: a download cut short was still a read.
    state
        .outbound
        .audit_export(&admin.tenant, &filter, &admin.actor)
        .await?;
    let tenant = admin.tenant.clone();
    let stream = state
        .outbound
        .clone()
        .export_csv(admin.tenant, filter)
        .map(move |chunk| {
            chunk.map(Bytes::from).inspect_err(|e| {
                // The status line is gone: abort the body so the client sees a failure.
                tracing::warn!(error = %e, tenant = %tenant, "CSV export failed mid-way");
            })
        });
    let filename = format!(
        "messages-{}.csv",
        state.clock.now().format("%Y%m%dT%H%M%SZ")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
