//! Operations: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics_text))
}

#[derive(Serialize, ToSchema)]
pub(super) struct Health {
    pub status: &'static str,
}

#[derive(Serialize, ToSchema)]
pub(super) struct Readiness {
    pub status: &'static str,
    pub database: &'static str,
    /// memory | redis
    pub bus: &'static str,
    pub bus_status: &'static str,
    pub connections: usize,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The database and the bus are reachable; 503 otherwise.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
async fn readyz(State(state): State<AppState>) -> Response {
    let db_ok = state.health.ping().await.is_ok();
    let bus = state.hub.bus();
    let bus_ok = bus.is_healthy();
    let ready = db_ok && bus_ok && !state.stopping.is_cancelled();
    let body = Readiness {
        status: if ready { "ready" } else { "unavailable" },
        database: if db_ok { "ok" } else { "down" },
        bus: bus.name(),
        bus_status: if bus_ok { "ok" } else { "down" },
        connections: state.hub.connection_count(),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, content_type = "text/plain")))]
async fn metrics_text(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
