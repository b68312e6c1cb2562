//! Webhooks to clinic systems: `POST|GET /v1/webhook-endpoints`,
//! `GET|PUT|DELETE /v1/webhook-endpoints/{id}`, the delivery log
//! `GET /v1/webhook-endpoints/{id}/deliveries[/{delivery_id}]` and the manual replay
//! `POST /v1/webhook-endpoints/{id}/deliveries/{delivery_id}/replay`. An API key or an
//! `admin` token, like the other clinic-system endpoints (`front_desk` gets 403: the
//! secret and the URLs are integration settings).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{encode_cursor, page_request, ApiJson, ApiQuery, FullAdmin};
use super::AppState;
use crate::service::webhooks::EndpointInput;
use crate::service::ServiceError;
use crate::wire::webhooks::{
    AttemptWire, DeliveryPage, DeliveryWire, EndpointBody, EndpointPage, EndpointWire,
};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_endpoint, list_endpoints))
        .routes(routes!(get_endpoint, update_endpoint, delete_endpoint))
        .routes(routes!(list_deliveries))
        .routes(routes!(get_delivery))
        .routes(routes!(replay_delivery))
}

/// An id that cannot exist is simply not found.
fn uuid(raw: &str) -> Result<uuid::Uuid, ApiError> {
    raw.parse().map_err(|_| ServiceError::NotFound.into())
}

fn delivery_wire(d: &crate::store::webhooks::Delivery) -> Result<DeliveryWire, ApiError> {
    DeliveryWire::new(d).map_err(|e| {
        ServiceError::Internal(format!("delivery {} has a corrupt payload: {e}", d.id)).into()
    })
}

fn input(b: EndpointBody) -> EndpointInput {
    EndpointInput {
        url: b.url,
        event_types: b.event_types,
        enabled: b.enabled,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub(super) struct PageQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Create an endpoint. The answer carries its signing secret (`whsec_…`), shown only here.
#[utoipa::path(
    post, path = "/v1/webhook-endpoints", tag = "webhooks",
    request_body = EndpointBody,
    responses(
        (status = 201, body = EndpointWire),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
    ),
    security(("api_key" = []), ("user_token" = []))
)]
async fn create_endpoint(
    State(state): State<AppState>,
    FullAdmin(admin): FullAdmin,
    ApiJson(body): ApiJson<EndpointBody>,
) -> ApiResult<(StatusCode, Json<EndpointWire>)> {
    let (endpoint, secret) = state.webhooks.create(&admin.tenant, input(body)).await?;
    let mut wire = EndpointWire::from(&endpoint);
    wire.secret = Some(secret.expose().to_owned());
    Ok((StatusCode::CREATED, Json(wire)))
}

/// The tenant's endpoints, newest first (without secrets).
#[utoipa::path(
    get, path = "/v1/webhook-endpoints", tag = "webhooks", params(PageQuery),
    responses((status = 200, body = EndpointPage), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("api_key" = []), ("user_token" = []))
)]
async fn list_endpoints(
    State(state): State<AppState>,
    FullAdmin(admin): FullAdmin,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<EndpointPage>> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let page = state.webhooks.list(&admin.tenant, page).await?;
    Ok(Json(EndpointPage {
        items: page.items.iter().map(EndpointWire::from).collect(),
        next_cursor: page.next.map(encode_cursor),
    }))
}

/// One endpoint (without its secret).
#[utoipa::path(
    get, path = "/v1/webhook-endpoints/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = EndpointWire), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("user_token" = []))
)]
async fn get_endpoint(
    State(state): State<AppState>,
    FullAdmin(admin): FullAdmin,
    Path(id): Path<String>,
) -> ApiResult<Json<EndpointWire>> {
    let e = state.webhooks.get(&admin.tenant, uuid(&id)?).await?;
    Ok(Json(EndpointWire::from(&e)))
}

/// Replace an endpoint's URL, event types and `enabled` (the secret stays). Enabling a
/// disabled endpoint clears its run of failures; its waiting deliveries resume.
#[utoipa::path(
    put, path = "/v1/webhook-endpoints/{id}", tag = "webhooks", params(("id" = String, Path)),
    request_body = EndpointBody,
    responses((status = 200, body = EndpointWire), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = []), ("user_token" = []))
)]
async fn update_endpoint(
    State(state): State<AppState>,
    FullAdmin(admin): FullAdmin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<EndpointBody>,
) -> ApiResult<Json<EndpointWire>> {
    let id = uuid(&id)?;
    let e = state
        .webhooks
        .update(&admin.tenant, id, input(body))
        .await?;
    Ok(Json(EndpointWire::from(&e)))
}

/// Delete an endpoint, with its waiting deliveries and its delivery log.
#[utoipa::path(
    delete, path = "/v1/webhook-endpoints/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("user_token" = []))
)]
async fn delete_endpoint(
    State(state): State<AppState>,
    FullAdmin(admin): FullAdmin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.webhooks.delete(&admin.tenant, uuid(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The endpoint's delivery log, newest first: each delivery's status, attempts and
/// last response code.
#[utoipa::path(
    get, path = "/v1/webhook-endpoints/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path), PageQuery),
    responses((status = 200, body = DeliveryPage), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("user_token" = []))
)]
async fn list_deliveries(
    State(state): State<AppState>,
    FullAdmin(admin): FullAdmin,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<DeliveryPage>> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let page = state
        .webhooks
        .deliveries(&admin.tenant, uuid(&id)?, page)
        .await?;
    Ok(Json(DeliveryPage {
        items: page
            .items
            .iter()
            .map(delivery_wire)
            .collect::<Result<_, _>>()?,
        next_cursor: page.next.map(encode_cursor),
    }))
}

/// One delivery with every attempt (`attempt_log`).
#[utoipa::path(
    get, path = "/v1/webhook-endpoints/{id}/deliveries/{delivery_id}", tag = "webhooks",
    params(("id" = String, Path), ("delivery_id" = String, Path)),
    responses((status = 200, body = DeliveryWire), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = []), ("user_token" = []))
)]
async fn get_delivery(
    State(state): State<AppState>,
    FullAdmin(admin): FullAdmin,
    Path((id, delivery_id)): Path<(String, String)>,
) -> ApiResult<Json<DeliveryWire>> {
    let (d, attempts) = state
        .webhooks
        .delivery(&admin.tenant, uuid(&id)?, uuid(&delivery_id)?)
        .await?;
    let mut wire = delivery_wire(&d)?;
    wire.attempt_log = Some(attempts.iter().map(AttemptWire::from).collect());
    Ok(Json(wire))
}

/// Send a settled (`succeeded` or `failed`) delivery again: same `webhook-id`, a new
/// 24-hour retry window. 409 `delivery_not_settled` while it is pending or in flight.
#[utoipa::path(
    post, path = "/v1/webhook-endpoints/{id}/deliveries/{delivery_id}/replay", tag = "webhooks",
    params(("id" = String, Path), ("delivery_id" = String, Path)),
    responses((status = 202, body = DeliveryWire), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "delivery_not_settled")),
    security(("api_key" = []), ("user_token" = []))
)]
async fn replay_delivery(
    State(state): State<AppState>,
    FullAdmin(admin): FullAdmin,
    Path((id, delivery_id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<DeliveryWire>)> {
    let d = state
        .webhooks
        .replay(&admin.tenant, uuid(&id)?, uuid(&delivery_id)?)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(delivery_wire(&d)?)))
}
