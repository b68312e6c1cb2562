//! Patient preferences: `GET|PUT /v1/patients/{patient_id}/preferences`, and the
//! erasure of a patient's data: `DELETE /v1/patients/{patient_id}/data`.

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
use crate::wire::outbound::{ErasureWire, PreferencesWire};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_preferences, put_preferences))
        .routes(routes!(erase_patient))
}

fn patient_id(raw: &str) -> Result<PatientId, ServiceError> {
    Ok(PatientId::parse(raw)?)
}

/// A patient's messaging preferences. A patient the clinic never configured gets
/// the defaults a message would use (`"stored": false`). Audited (`read.patient`).
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
        .patient_preferences(&admin.tenant, &patient, &admin.actor)
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

/// Erase a patient's personal data: their preferences and contacts, the address,
/// texts and patient id of every message to them (queued ones are cancelled first),
/// their name and contacts in the stored clinic events, and the title, message, link
/// and data of the staff notifications about them (those of their clinic events, and
/// those published with `related` `{"type": "patient", "id": patient_id}`). The rows
/// stay as anonymous counts, so stats, exports and unread counts keep adding up. One
/// transaction, audited as `patient.erased` with the counts. Idempotent: a repeat
/// answers 200 with zero counts. 404 when the tenant holds nothing of the patient and
/// never erased them. API key or admin only.
#[utoipa::path(
    delete, path = "/v1/patients/{patient_id}/data", tag = "patients",
    params(("patient_id" = String, Path)),
    responses((status = 200, body = ErasureWire), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("api_key" = []), ("user_token" = []))
)]
async fn erase_patient(
    State(state): State<AppState>,
    admin: Admin,
    Path(patient): Path<String>,
) -> ApiResult<Json<ErasureWire>> {
    admin.require_full()?;
    let patient = patient_id(&patient)?;
    let c = state
        .outbound
        .erase_patient(&admin.tenant, &patient, &admin.actor)
        .await?;
    Ok(Json(ErasureWire {
        patient_id: patient.to_string(),
        messages: c.messages,
        cancelled: c.cancelled,
        events: c.events,
        preferences: c.preferences,
        notifications: c.notifications,
    }))
}
