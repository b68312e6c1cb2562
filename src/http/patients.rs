//! Patient preferences: `GET|PUT /v1/patients/{patient_id}/preferences`.

use axum::extract::{Path, State};
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiResult, ErrorBody};
use super::extract::{Admin, ApiJson};
use super::AppState;
use crate::domain::ids::PatientId;
use crate::service::outbound::patients::{parse_preferences, PreferencesDraft};
use crate::service::ServiceError;
use crate::wire::outbound::PreferencesWire;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_preferences, put_preferences))
}

fn patient_id(raw: &str) -> Result<PatientId, ServiceError> {
    Ok(PatientId::parse(raw)?)
}

/// A patient's messaging preferences. A patient the clinic never configured gets
/// the defaults a message would use (`"stored": false`).
#[utoipa::path(
    get, path = "/v1/patients/{patient_id}/preferences", tag = "patients",
    params(("patient_id" = String, Path)),
    responses((status = 200, body = PreferencesWire), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = []), ("user_token" = []))
)]
async fn get_preferences(
    State(state): State<AppState>,
    admin: Admin,
    Path(patient): Path<String>,
) -> ApiResult<Json<PreferencesWire>> {
    let patient = patient_id(&patient)?;
    let (prefs, stored) = state
        .outbound
        .patient_preferences(&admin.tenant, &patient)
        .await?;
    Ok(Json(PreferencesWire::from_domain(&prefs, stored)))
}

/// Replace a patient's preferences. `phone` must be E.164, `email` a valid address.
#[utoipa::path(
    put, path = "/v1/patients/{patient_id}/preferences", tag = "patients",
    params(("patient_id" = String, Path)),
    request_body = PreferencesWire,
    responses((status = 200, body = PreferencesWire), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 415, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("api_key" = []), ("user_token" = []))
)]
async fn put_preferences(
    State(state): State<AppState>,
    admin: Admin,
    Path(patient): Path<String>,
    ApiJson(body): ApiJson<PreferencesWire>,
) -> ApiResult<Json<PreferencesWire>> {
    admin.require_full()?;
    let patient = patient_id(&patient)?;
    let prefs = parse_preferences(PreferencesDraft {
        phone: body.phone,
        email: body.email,
        language: body.language,
        preferred_channel: body.preferred_channel,
        channels: body.channels,
        kinds: body.kinds,
    })
    .map_err(ServiceError::from)?;
    state
        .outbound
        .put_patient_preferences(&admin.tenant, &patient, &prefs, &admin.actor)
        .await?;
    Ok(Json(PreferencesWire::from_domain(&prefs, true)))
}
