//! Every route × every kind of caller, against the contract (/work/shared/API.md):
//! API key; user tokens of role admin, front_desk, provider, patient.
//!
//! "Allowed" means authorised: any answer but 401/403 (a 404 or 422 on the made-up
//! ids and bodies below is fine). "Refused" means 403 `forbidden`.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;

/// Who may call: API key, admin, front_desk, provider, patient.
type Who = [bool; 5];
const KEY_ONLY: Who = [true, false, false, false, false];
/// API key or admin token (writes of admin endpoints; the clinic-event log).
const ADMIN: Who = [true, true, false, false, false];
/// Admin endpoints front_desk may use too (reads, single sends, retries).
const DESK: Who = [true, true, true, false, false];
/// The user's own things: any user token, never an API key.
const USERS: Who = [false, true, true, true, true];

const ID: &str = "8a6f0c3e-2b1d-4c5e-9f7a-1b2c3d4e5f60";

fn routes() -> Vec<(Method, String, Option<Value>, Who)> {
    let m = |method: Method, path: &str, body: Option<Value>, who: Who| {
        (method, path.replace("{id}", ID), body, who)
    };
    let empty = || Some(json!({}));
    // Template handlers read the body before the role (a front_desk caller with a
    // malformed body gets 422), so these bodies are valid.
    let template = || {
        Some(json!({"name": "rbac", "channel": "sms", "kind": "billing",
                    "body_en": "Hello", "body_ar": "مرحبا", "variables": []}))
    };
    vec![
        m(Method::POST, "/v1/notifications", empty(), KEY_ONLY),
        m(Method::POST, "/v1/tokens", empty(), KEY_ONLY),
        m(Method::POST, "/v1/events", empty(), KEY_ONLY),
        // Out of range, so nothing rotates: the answer is 422 once authorised.
        m(
            Method::POST,
            "/v1/tenant/rotate-secret",
            Some(json!({"overlap_secs": u64::MAX})),
            KEY_ONLY,
        ),
        m(Method::GET, "/v1/events", None, ADMIN),
        m(Method::POST, "/v1/users/nobody/revoke-tokens", None, ADMIN),
        m(Method::GET, "/v1/users", None, DESK),
        m(
            Method::PUT,
            "/v1/users/u-9",
            Some(json!({"role": "provider"})),
            ADMIN,
        ),
        m(Method::GET, "/v1/me/notifications", None, USERS),
        m(Method::GET, "/v1/me/unread-count", None, USERS),
        m(Method::POST, "/v1/me/notifications/read-all", None, USERS),
        m(
            Method::POST,
            "/v1/me/notifications/n0000000000000001/read",
            None,
            USERS,
        ),
        m(
            Method::DELETE,
            "/v1/me/notifications/n0000000000000001",
            None,
            USERS,
        ),
        m(Method::GET, "/v1/me/preferences", None, USERS),
        m(
            Method::PUT,
            "/v1/me/preferences",
            Some(json!({"muted_categories": [], "quiet_hours": null})),
            USERS,
        ),
        m(Method::GET, "/v1/templates", None, DESK),
        m(Method::POST, "/v1/templates", template(), ADMIN),
        m(Method::GET, "/v1/templates/{id}", None, DESK),
        m(Method::PUT, "/v1/templates/{id}", template(), ADMIN),
        // Webhooks to clinic systems: integration settings with a secret, so not front_desk.
        m(Method::POST, "/v1/webhook-endpoints", empty(), ADMIN),
        m(Method::GET, "/v1/webhook-endpoints", None, ADMIN),
        m(Method::GET, "/v1/webhook-endpoints/{id}", None, ADMIN),
        m(Method::PUT, "/v1/webhook-endpoints/{id}", empty(), ADMIN),
        m(Method::DELETE, "/v1/webhook-endpoints/{id}", None, ADMIN),
        m(
            Method::GET,
            "/v1/webhook-endpoints/{id}/deliveries",
            None,
            ADMIN,
        ),
        m(
            Method::GET,
            &format!("/v1/webhook-endpoints/{{id}}/deliveries/{ID}"),
            None,
            ADMIN,
        ),
        m(
            Method::POST,
            &format!("/v1/webhook-endpoints/{{id}}/deliveries/{ID}/replay"),
            None,
            ADMIN,
        ),
        m(Method::DELETE, "/v1/templates/{id}", None, ADMIN),
        m(Method::POST, "/v1/templates/{id}/toggle", None, ADMIN),
        m(
            Method::POST,
            "/v1/templates/{id}/test",
            Some(json!({"language": "en", "variables": {}})),
            DESK,
        ),
        m(Method::GET, "/v1/templates/{id}/versions", None, DESK),
        m(Method::GET, "/v1/patients/p-1/preferences", None, DESK),
        m(Method::PUT, "/v1/patients/p-1/preferences", empty(), ADMIN),
        m(Method::POST, "/v1/messages", empty(), DESK),
        m(Method::POST, "/v1/messages/bulk", empty(), ADMIN),
        m(Method::GET, "/v1/messages", None, DESK),
        m(Method::GET, "/v1/messages/stats", None, DESK),
        m(Method::GET, "/v1/messages/export.csv", None, DESK),
        m(Method::GET, "/v1/messages/{id}", None, DESK),
        m(Method::POST, "/v1/messages/{id}/retry", None, DESK),
        m(Method::POST, "/v1/messages/{id}/cancel", None, ADMIN),
        m(
            Method::POST,
            "/v1/messages/cancel",
            Some(json!({"group_key": "g"})),
            ADMIN,
        ),
        m(Method::GET, "/v1/messages/batches/{id}", None, DESK),
        m(Method::GET, "/v1/audit", None, DESK),
        m(Method::GET, "/v1/sse", None, USERS),
    ]
}

#[tokio::test]
async fn every_route_honours_every_role() {
    let app = spawn_app().await;
    let mut callers = vec![("api key", app.api_key.clone())];
    for role in ["admin", "front_desk", "provider", "patient"] {
        callers.push((role, app.token(&format!("rbac-{role}"), role).await));
    }
    let mut wrong = Vec::new();
    for (method, path, body, who) in routes() {
        for ((name, credential), allowed) in callers.iter().zip(who) {
            let mut req = app
                .http
                .request(method.clone(), app.url(&path))
                .bearer_auth(credential);
            if let Some(b) = &body {
                req = req.json(b);
            }
            // Headers are enough: an event stream never ends.
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let ok = if allowed {
                status != 401 && status != 403
            } else {
                status == 403
            };
            if !ok {
                wrong.push(format!(
                    "{method} {path} as {name}: {status} (allowed: {allowed})"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
