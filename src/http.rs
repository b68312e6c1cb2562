//! The HTTP edge: the only module that knows axum. One file per resource; the
//! error table in `error.rs`; the OpenAPI document is generated from the
//! handlers' annotations, so it cannot drift from the routes.

mod admin;
mod audit;
pub mod client_ip;
#[cfg(test)]
mod decode_props;
pub mod error;
mod events;
pub mod extract;
mod gate;
mod head;
mod me;
mod message_reports;
mod messages;
mod notifications;
mod ops;
mod patients;
mod realtime;
mod redact;
mod serve;
mod sse_direct;
mod templates;
mod tokens;
mod users;
mod webhook_endpoints;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi;
use utoipa::Modify;
use utoipa_axum::router::OpenApiRouter;

use self::error::ApiError;
use crate::hub::Hub;
use crate::service::auth::Authenticator;
use crate::service::directory::Directory;
use crate::service::inbox::Inbox;
use crate::service::publish::Publisher;
use crate::service::realtime::Realtime;
use crate::store::Health;

/// Timings of the live transports.
#[derive(Debug, Clone)]
pub struct RealtimeSettings {
    pub ws_ping_interval: Duration,
    pub sse_heartbeat: Duration,
    pub write_timeout: Duration,
    /// Client frames per second per WebSocket, and the burst above it.
    pub client_frames_per_sec: u32,
    pub client_frames_burst: u32,
}

/// What handlers reach: services, plus the few infrastructure handles `/readyz` probes.
#[derive(Clone)]
pub struct AppState {
    pub auth: Arc<Authenticator>,
    pub publisher: Arc<Publisher>,
    pub inbox: Arc<Inbox>,
    pub events: Arc<crate::service::events::ClinicEvents>,
    pub directory: Arc<Directory>,
    pub realtime: Arc<Realtime>,
    /// The store's health check (`/readyz`); handlers reach data only through services.
    pub health: Arc<dyn Health>,
    pub hub: Arc<Hub>,
    pub metrics: PrometheusHandle,
    pub settings: RealtimeSettings,
    /// Cancelled when the node starts shutting down (`/readyz` turns 503 at once).
    pub stopping: CancellationToken,
    /// The services' time source (a `ManualClock` in schedule tests).
    pub clock: Arc<dyn crate::service::clock::Clock>,
    /// Provider status webhooks (authenticate, find the message, apply).
    pub outbound_callbacks: Arc<crate::service::outbound::callbacks::Callbacks>,
    /// Wakes this node's outbound worker at once after an enqueue.
    pub outbound_wake: crate::service::leased::Wake,
    /// Outbound patient messages: templates, preferences, sends, reports, audit.
    pub outbound: Arc<crate::service::outbound::Outbound>,
    /// Webhooks to clinic systems: endpoints, the delivery log, replays.
    pub webhooks: Arc<crate::service::webhooks::Webhooks>,
}

pub use client_ip::TrustedProxies;
pub use gate::GateLimits;
pub use serve::{bind, serve, ServerLimits};
pub use sse_direct::DirectSse;

pub struct HttpOptions {
    pub body_limit: usize,
    pub cors_origins: Vec<String>,
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, api: &mut OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        let bearer = |desc: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(desc.to_owned()))
                    .build(),
            )
        };
        components.add_security_scheme("api_key", bearer("tenant API key"));
        components.add_security_scheme("user_token", bearer("HS256 user JWT"));
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Tidings", description = "Realtime notification hub. Contract: docs/API.md."),
    modifiers(&SecuritySchemes)
)]
struct ApiDoc;

/// All documented routes, with their OpenAPI description.
fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
        .merge(notifications::routes())
        .merge(users::routes())
        .merge(tokens::routes())
        .merge(me::routes())
        .merge(realtime::routes())
        .merge(ops::routes())
        .merge(events::routes())
        .merge(webhooks::routes())
        .merge(templates::routes())
        .merge(patients::routes())
        .merge(messages::routes())
        .merge(message_reports::routes())
        .merge(audit::routes())
        .merge(webhook_endpoints::routes())
        .merge(admin::routes())
}

/// The OpenAPI document (also served at `/openapi.json`).
pub fn openapi() -> OpenApi {
    documented().into_openapi()
}

/// What serves event streams whose connection starts with them (see [`serve`]).
pub fn direct_sse(state: AppState, options: &HttpOptions) -> DirectSse {
    DirectSse {
        state,
        cors: cors_layer(options),
    }
}

/// CORS for the configured origins: the router's layer, also run by the direct
/// event-stream path so both answer a browser the same way.
fn cors_layer(options: &HttpOptions) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(
            options
                .cors_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        ))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            axum::http::header::AUTHORIZATION,
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderName::from_static("idempotency-key"),
            axum::http::HeaderName::from_static("last-event-id"),
        ])
        .max_age(Duration::from_secs(3600))
}

pub fn router(state: AppState, options: &HttpOptions) -> Router {
    let (router, api) = documented().split_for_parts();
    let api = Arc::new(api);
    let cors = cors_layer(options);
    router
        .route(
            "/openapi.json",
            get(move || async move { Json(api.as_ref().clone()) }),
        )
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed here",
            )
            .into_response()
        })
        .layer(DefaultBodyLimit::max(options.body_limit))
        .layer(axum::middleware::map_response(no_store_by_default))
        .layer(cors)
        // The default span logs the full URI, tokens in the query included.
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(redact::request_span))
        .with_state(state)
}

/// API answers carry patient data: no browser or proxy may keep a copy
/// (`Cache-Control: no-store`, errors included). A response that chose its own
/// caching keeps it: the admin console's assets (`no-cache` + ETag), event streams.
async fn no_store_by_default(mut res: axum::response::Response) -> axum::response::Response {
    res.headers_mut()
        .entry(axum::http::header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}
