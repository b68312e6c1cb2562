//! `POST /v1/events` (API key) and `GET /v1/events` (admin): clinic events.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiResult, ErrorBody};
use super::extract::{
    encode_cursor, page_request, parse_json, read_body, ApiKey, ApiQuery, FullAdmin,
};
use super::AppState;
use crate::domain::clinic_event::ClinicEvent;
use crate::domain::ids::AppointmentId;
use crate::service::ServiceError;
use crate::wire::events::{EventAnswer, EventBody, EventLogEntry, EventPage};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_event, list_events))
}

/// Report what happened to an appointment; the rules decide who hears about it.
///
/// Applied atomically: every notification, message and reminder change the event
/// causes is committed, or none. The same event `id` again answers the first
/// result and changes nothing. See docs/EVENTS.md.
#[utoipa::path(
    post, path = "/v1/events", tag = "clinic events",
    request_body = EventBody,
    responses(
        (status = 202, body = EventAnswer),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "template_unavailable: a template the rules need is missing or unusable"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "unknown type or malformed payload; `field` names it"),
        (status = 503, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn post_event(
    State(state): State<AppState>,
    ApiKey(tenant): ApiKey,
    req: axum::extract::Request,
) -> ApiResult<(StatusCode, Json<EventAnswer>)> {
    let headers = req.headers().clone();
    let bytes = read_body(req, &state).await?;
    let body: EventBody = parse_json(&headers, &bytes)?;
    let event = ClinicEvent::parse(&body.into_input()).map_err(ServiceError::from)?;
    // Valid JSON (parsed above): kept verbatim in the event log.
    let payload = String::from_utf8_lossy(&bytes).into_owned();
    let counts = state.events.apply(&tenant, &event, payload).await?;
    Ok((StatusCode::ACCEPTED, Json(counts.into())))
}

#[derive(Debug, Deserialize, IntoParams)]
pub(super) struct EventQuery {
    /// Only this appointment's events.
    pub appointment_id: Option<String>,
    /// 1..200, default 50.
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The event log, newest first (every event received, with what it caused). API key
/// or `admin` token: the payloads name patients, so `front_desk` gets 403, and every
/// read is audited (`read.events`).
#[utoipa::path(
    get, path = "/v1/events", tag = "clinic events",
    params(EventQuery),
    responses((status = 200, body = EventPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
               (status = 403, body = ErrorBody)),
    security(("api_key" = []), ("user_token" = []))
)]
async fn list_events(
    State(state): State<AppState>,
    FullAdmin(admin): FullAdmin,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> ApiResult<Json<EventPage>> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let appointment = q
        .appointment_id
        .as_deref()
        .map(AppointmentId::parse)
        .transpose()
        .map_err(|e| super::error::ApiError::bad_request(e.message).with_field("appointment_id"))?;
    let page = state
        .events
        .list(&admin.tenant, appointment.as_ref(), page, &admin.actor)
        .await?;
    Ok(Json(EventPage {
        items: page
            .items
            .into_iter()
            .map(EventLogEntry::from_record)
            .collect(),
        next_cursor: page.next.map(encode_cursor),
    }))
}
