//! Outbound REST API through real HTTP against a real hub: templates, patient
//! preferences, sends (single, bulk), the message list and detail, cancel and
//! retry, batches, stats, the CSV export and the audit log.
//!
//! Messages whose status a test asserts are scheduled far in the future
//! (`LATER`), so a queue worker running in the same hub never claims them; the
//! tests move them along by hand through the store port, as a worker would.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tidings::domain::ids::TenantId;
use tidings::domain::message::{MessageId, MessageStatus, Money};
use tidings::store::outbound::{AttemptUpdate, CallbackUpdate, MessageEvent};

use crate::support::{assert_error, spawn_app, split, TestApp};

/// A send time no worker reaches during a test.
const LATER: &str = "2099-01-01T00:00:00Z";

fn later() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(LATER)
        .unwrap()
        .with_timezone(&Utc)
}

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = app.http.request(method, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    split(req.send().await.unwrap()).await
}

async fn key_call(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    call(app, method, path, Some(&app.api_key), body).await
}

fn key_actor(app: &TestApp) -> String {
    format!(
        "api_key:{}",
        tidings::service::auth::key_prefix(&app.api_key)
    )
}

const BODY_AR: &str = "\u{200F}عَزِيزِي {patient_name}، مَوْعِدُكَ مَعَ {provider_name} فِي {time}";

fn reminder(name: &str) -> Value {
    json!({
        "name": name,
        "channel": "sms",
        "kind": "appointment_reminder",
        "body_en": "Hi {patient_name}, see {provider_name} at {time}, \"room 2\".",
        "body_ar": BODY_AR,
        "variables": ["patient_name", "provider_name", "time"],
        "is_active": true
    })
}

fn vars() -> Value {
    json!({"patient_name": "Ahmed", "provider_name": "Dr. Sara", "time": "10:00"})
}

async fn create_template(app: &TestApp, body: Value) -> String {
    let (s, b) = key_call(app, Method::POST, "/v1/templates", Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["id"].as_str().unwrap().to_owned()
}

async fn put_prefs(app: &TestApp, patient: &str, body: Value) {
    let (s, b) = key_call(
        app,
        Method::PUT,
        &format!("/v1/patients/{patient}/preferences"),
        Some(body),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

async fn audit(app: &TestApp, query: &str) -> Vec<Value> {
    let (s, b) = key_call(app, Method::GET, &format!("/v1/audit?{query}"), None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["items"].as_array().unwrap().clone()
}

async fn other_tenant(app: &TestApp) -> String {
    let other = TenantId::parse("clinic-b").unwrap();
    let (key, _) = app.create_tenant(&other, "B").await;
    key.key
}

#[tokio::test]
async fn templates_versions_roles_and_arabic_text() {
    let app = spawn_app().await;
    let id = create_template(&app, reminder("reminder_24h")).await;
    let (s, t) = key_call(&app, Method::GET, &format!("/v1/templates/{id}"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(t["name"], "reminder_24h");
    assert_eq!(t["channel"], "sms");
    assert_eq!(t["kind"], "appointment_reminder");
    assert_eq!(t["version"], 1);
    assert_eq!(t["is_active"], true);
    assert_eq!(t["subject_en"], Value::Null);
    assert_eq!(
        t["variables"],
        json!(["patient_name", "provider_name", "time"])
    );
    // Stored byte for byte: RLM, tashkeel.
    assert_eq!(
        t["body_ar"].as_str().unwrap().as_bytes(),
        BODY_AR.as_bytes()
    );

    // Rendering in both languages.
    let test = |language: &str, variables: Value| {
        let app = &app;
        let id = id.clone();
        let body = json!({"language": language, "variables": variables});
        async move {
            key_call(
                app,
                Method::POST,
                &format!("/v1/templates/{id}/test"),
                Some(body),
            )
            .await
        }
    };
    let (s, r) = test("en", vars()).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(
        r,
        json!({"subject": null, "body": "Hi Ahmed, see Dr. Sara at 10:00, \"room 2\"."})
    );
    let name_ar = "مُحَمَّد\u{200F} الْعُتَيْبِيّ";
    let (s, r) = test(
        "ar",
        json!({"patient_name": name_ar, "provider_name": "د. سارة", "time": "١٠:٠٠"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let want = format!("\u{200F}عَزِيزِي {name_ar}، مَوْعِدُكَ مَعَ د. سارة فِي ١٠:٠٠");
    assert_eq!(r["body"].as_str().unwrap().as_bytes(), want.as_bytes());
    let (s, r) = test("en", json!({"patient_name": "A"})).await;
    assert_error(s, &r, 422, "missing_variables");
    assert_eq!(r["error"]["field"], "variables");
    assert_eq!(
        r["error"]["message"],
        "missing variables: provider_name, time"
    );

    // Invalid drafts name the field; duplicate names are a conflict.
    let mut bad = reminder("other");
    bad["body_en"] = json!("Hi {patient_nmae}");
    let (s, b) = key_call(&app, Method::POST, "/v1/templates", Some(bad)).await;
    assert_error(s, &b, 422, "invalid");
    assert_eq!(b["error"]["field"], "variables");
    assert_eq!(
        b["error"]["message"],
        "not declared but used in the text: patient_nmae"
    );
    let mut bad = reminder("other");
    bad["channel"] = json!("fax");
    let (s, b) = key_call(&app, Method::POST, "/v1/templates", Some(bad)).await;
    assert_error(s, &b, 422, "invalid");
    assert_eq!(b["error"]["field"], "channel");
    let (s, b) = key_call(
        &app,
        Method::POST,
        "/v1/templates",
        Some(reminder("reminder_24h")),
    )
    .await;
    assert_error(s, &b, 409, "template_name_taken");

    // An edit is a new version; the history keeps both.
    let mut edit = reminder("reminder_24h");
    edit["body_en"] = json!("Reminder: {patient_name}, {provider_name}, {time}");
    let (s, t) = key_call(
        &app,
        Method::PUT,
        &format!("/v1/templates/{id}"),
        Some(edit),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(t["version"], 2);
    assert_eq!(
        t["body_en"],
        "Reminder: {patient_name}, {provider_name}, {time}"
    );
    let mut rename = reminder("renamed");
    rename["is_active"] = json!(true);
    let (s, b) = key_call(
        &app,
        Method::PUT,
        &format!("/v1/templates/{id}"),
        Some(rename),
    )
    .await;
    assert_error(s, &b, 422, "invalid");
    assert_eq!(b["error"]["field"], "name");
    let (s, v) = key_call(
        &app,
        Method::GET,
        &format!("/v1/templates/{id}/versions"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let versions: Vec<i64> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, vec![2, 1]);
    assert_eq!(v["items"][1]["body_en"], reminder("x")["body_en"]);
    assert_eq!(v["items"][0]["actor"], key_actor(&app));

    // What GET returns can be PUT back (read-only fields are ignored): a new version.
    let (_, current) = key_call(&app, Method::GET, &format!("/v1/templates/{id}"), None).await;
    let (s, t) = key_call(
        &app,
        Method::PUT,
        &format!("/v1/templates/{id}"),
        Some(current),
    )
    .await;
    assert_eq!((s, t["version"].clone()), (StatusCode::OK, json!(3)), "{t}");
    let mut typo = reminder("reminder_24h");
    typo["subjet_en"] = json!("x");
    let (s, b) = key_call(
        &app,
        Method::PUT,
        &format!("/v1/templates/{id}"),
        Some(typo),
    )
    .await;
    assert_error(s, &b, 422, "invalid");
    assert_eq!(b["error"]["field"], "subjet_en");

    // Toggle twice.
    let (s, t) = key_call(
        &app,
        Method::POST,
        &format!("/v1/templates/{id}/toggle"),
        None,
    )
    .await;
    assert_eq!(
        (s, t["is_active"].clone(), t["version"].clone()),
        (StatusCode::OK, json!(false), json!(3))
    );
    let (_, t) = key_call(
        &app,
        Method::POST,
        &format!("/v1/templates/{id}/toggle"),
        None,
    )
    .await;
    assert_eq!(t["is_active"], true);

    // List with filters.
    let email = json!({
        "name": "results_ready", "channel": "email", "kind": "results",
        "body_en": "Your results are ready, {patient_name}.", "body_ar": "نتائجك جاهزة يا {patient_name}.",
        "subject_en": "Results", "subject_ar": "النتائج",
        "variables": ["patient_name"], "is_active": false
    });
    let email_id = create_template(&app, email).await;
    let (s, l) = key_call(&app, Method::GET, "/v1/templates", None).await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = l["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["results_ready", "reminder_24h"]);
    let (_, l) = key_call(&app, Method::GET, "/v1/templates?channel=email", None).await;
    assert_eq!(l["items"].as_array().unwrap().len(), 1);
    assert_eq!(l["items"][0]["subject_ar"], "النتائج");
    let (_, l) = key_call(&app, Method::GET, "/v1/templates?active=true", None).await;
    assert_eq!(l["items"][0]["name"], "reminder_24h");
    assert_eq!(l["items"].as_array().unwrap().len(), 1);
    let (_, l) = key_call(&app, Method::GET, "/v1/templates?limit=1", None).await;
    assert_eq!(l["items"].as_array().unwrap().len(), 1);
    let cursor = l["next_cursor"].as_str().unwrap().to_owned();
    let (_, l2) = key_call(
        &app,
        Method::GET,
        &format!("/v1/templates?limit=1&cursor={cursor}"),
        None,
    )
    .await;
    assert_eq!(l2["items"][0]["name"], "reminder_24h");
    assert_eq!(l2["next_cursor"], Value::Null);
    let (s, b) = key_call(&app, Method::GET, "/v1/templates?channel=fax", None).await;
    assert_error(s, &b, 400, "bad_request");

    // Roles: front_desk reads (and test-renders) but does not write; provider and patient get 403.
    let desk = app.token("desk-1", "front_desk").await;
    let (s, _) = call(&app, Method::GET, "/v1/templates", Some(&desk), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = call(
        &app,
        Method::POST,
        "/v1/templates",
        Some(&desk),
        Some(reminder("x")),
    )
    .await;
    assert_error(s, &b, 403, "forbidden");
    let (s, b) = call(
        &app,
        Method::POST,
        &format!("/v1/templates/{id}/toggle"),
        Some(&desk),
        None,
    )
    .await;
    assert_error(s, &b, 403, "forbidden");
    for role in ["provider", "patient"] {
        let t = app.token("u-9", role).await;
        let (s, b) = call(&app, Method::GET, "/v1/templates", Some(&t), None).await;
        assert_error(s, &b, 403, "forbidden");
    }
    let (s, b) = call(&app, Method::GET, "/v1/templates", None, None).await;
    assert_error(s, &b, 401, "unauthorized");
    // An admin token writes, and is named in the audit log as its user.
    let boss = app.token("boss-1", "admin").await;
    let (s, _) = call(
        &app,
        Method::POST,
        &format!("/v1/templates/{email_id}/toggle"),
        Some(&boss),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    // Another tenant sees none of it.
    let other = other_tenant(&app).await;
    let (s, b) = call(
        &app,
        Method::GET,
        &format!("/v1/templates/{id}"),
        Some(&other),
        None,
    )
    .await;
    assert_error(s, &b, 404, "not_found");
    let (s, b) = call(
        &app,
        Method::PUT,
        &format!("/v1/templates/{id}"),
        Some(&other),
        Some(reminder("reminder_24h")),
    )
    .await;
    assert_error(s, &b, 404, "not_found");
    let (_, l) = call(&app, Method::GET, "/v1/templates", Some(&other), None).await;
    assert_eq!(l["items"], json!([]));
    let (s, b) = key_call(&app, Method::GET, "/v1/templates/not-a-uuid", None).await;
    assert_error(s, &b, 404, "not_found");

    // Delete: gone, and the name is free again.
    let (s, _) = key_call(&app, Method::DELETE, &format!("/v1/templates/{id}"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = key_call(&app, Method::GET, &format!("/v1/templates/{id}"), None).await;
    assert_error(s, &b, 404, "not_found");
    let (s, b) = key_call(&app, Method::DELETE, &format!("/v1/templates/{id}"), None).await;
    assert_error(s, &b, 404, "not_found");
    create_template(&app, reminder("reminder_24h")).await;

    // The audit log has every change, newest first, with who did it.
    let log = audit(&app, "action=template.").await;
    let seen: Vec<(String, String, String)> = log
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
                e["target"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let me = key_actor(&app);
    let t = |x: &str| format!("template:{x}");
    let newest = log[0]["target"].as_str().unwrap().to_owned();
    assert_eq!(
        seen,
        vec![
            ("template.create".into(), me.clone(), newest),
            ("template.delete".into(), me.clone(), t(&id)),
            ("template.toggle".into(), "user:boss-1".into(), t(&email_id)),
            ("template.create".into(), me.clone(), t(&email_id)),
            ("template.toggle".into(), me.clone(), t(&id)),
            ("template.toggle".into(), me.clone(), t(&id)),
            ("template.update".into(), me.clone(), t(&id)),
            ("template.update".into(), me.clone(), t(&id)),
            ("template.create".into(), me.clone(), t(&id)),
        ]
    );
    assert_eq!(log[6]["detail"]["version"], 3);
    assert_eq!(log[7]["detail"]["version"], 2);
    assert_eq!(log[7]["detail"]["from_version"], 1);
    assert_eq!(audit(&app, "actor=user:boss-1").await.len(), 1);
    assert_eq!(audit(&app, "action=template.update").await.len(), 2);
    let (s, b) = key_call(&app, Method::GET, "/v1/audit?from=yesterday", None).await;
    assert_error(s, &b, 400, "bad_request");
    let (s, b) = call(&app, Method::GET, "/v1/audit", Some(&other), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["items"], json!([]));
}

#[tokio::test]
async fn patient_preferences_validate_and_default() {
    let app = spawn_app().await;
    let (s, p) = key_call(&app, Method::GET, "/v1/patients/p-1/preferences", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        p,
        json!({
            "phone": null, "email": null, "language": "en", "preferred_channel": null,
            "channels": {"sms": true, "whatsapp": true, "email": true},
            "kinds": {"appointment_reminder": true, "appointment_confirmation": true,
                      "appointment_update": true, "results": true, "billing": true, "marketing": false},
            "stored": false
        })
    );
    let body = json!({
        "phone": "+966501234567", "email": "ahmed@clinic.example", "language": "ar",
        "preferred_channel": "whatsapp",
        "channels": {"sms": true, "whatsapp": true, "email": false},
        "kinds": {"marketing": true, "billing": false}
    });
    let (s, p) = key_call(
        &app,
        Method::PUT,
        "/v1/patients/p-1/preferences",
        Some(body),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let want = json!({
        "phone": "+966501234567", "email": "ahmed@clinic.example", "language": "ar",
        "preferred_channel": "whatsapp",
        "channels": {"sms": true, "whatsapp": true, "email": false},
        "kinds": {"appointment_reminder": true, "appointment_confirmation": true,
                  "appointment_update": true, "results": true, "billing": false, "marketing": true},
        "stored": true
    });
    assert_eq!(p, want);
    let (_, p) = key_call(&app, Method::GET, "/v1/patients/p-1/preferences", None).await;
    assert_eq!(p, want);
    // What GET returns can be PUT back.
    let (s, _) = key_call(
        &app,
        Method::PUT,
        "/v1/patients/p-1/preferences",
        Some(want.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    for (body, field) in [
        (json!({"phone": "0501234567"}), "phone"),
        (json!({"phone": "+966 50 123 4567"}), "phone"),
        (json!({"email": "ahmed@localhost"}), "email"),
        (json!({"language": "fr"}), "language"),
        (json!({"preferred_channel": "fax"}), "preferred_channel"),
        (json!({"channels": {"pigeon": true}}), "channels.pigeon"),
        (json!({"kinds": {"spam": true}}), "kinds.spam"),
        (json!({"phne": "+966501234567"}), "phne"),
    ] {
        let (s, b) = key_call(
            &app,
            Method::PUT,
            "/v1/patients/p-2/preferences",
            Some(body.clone()),
        )
        .await;
        assert_error(s, &b, 422, "invalid");
        assert_eq!(b["error"]["field"], field, "{body} -> {b}");
    }
    let (s, b) = key_call(
        &app,
        Method::PUT,
        "/v1/patients/a%20b/preferences",
        Some(json!({})),
    )
    .await;
    assert_error(s, &b, 422, "invalid");
    assert_eq!(b["error"]["field"], "patient_id");

    let desk = app.token("desk-1", "front_desk").await;
    let (s, _) = call(
        &app,
        Method::GET,
        "/v1/patients/p-1/preferences",
        Some(&desk),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = call(
        &app,
        Method::PUT,
        "/v1/patients/p-1/preferences",
        Some(&desk),
        Some(json!({})),
    )
    .await;
    assert_error(s, &b, 403, "forbidden");
    let other = other_tenant(&app).await;
    let (_, p) = call(
        &app,
        Method::GET,
        "/v1/patients/p-1/preferences",
        Some(&other),
        None,
    )
    .await;
    assert_eq!(
        p["stored"], false,
        "another tenant's patient p-1 is a different patient"
    );

    let log = audit(&app, "action=patient.preferences").await;
    assert_eq!(log.len(), 2);
    assert_eq!(log[0]["target"], "patient:p-1");
    assert_eq!(log[0]["actor"], key_actor(&app));
    assert_eq!(log[0]["detail"]["phone_set"], true);
    assert!(
        !log[0]["detail"].to_string().contains("+966501234567"),
        "addresses stay out of the log"
    );
}

#[tokio::test]
async fn single_sends_queue_suppress_validate_and_replay() {
    let app = spawn_app().await;
    let tpl = create_template(&app, reminder("reminder_24h")).await;
    put_prefs(
        &app,
        "p-ar",
        json!({"phone": "+966501234567", "language": "ar"}),
    )
    .await;
    put_prefs(
        &app,
        "p-nokind",
        json!({"phone": "+966501234568", "kinds": {"appointment_reminder": false}}),
    )
    .await;
    put_prefs(
        &app,
        "p-nosms",
        json!({"phone": "+966501234569", "channels": {"sms": false}}),
    )
    .await;
    put_prefs(
        &app,
        "p-email",
        json!({"email": "p@clinic.example", "preferred_channel": "email"}),
    )
    .await;

    // Queued, rendered in the patient's language.
    let send = json!({"patient_id": "p-ar", "template": "reminder_24h", "variables": vars(),
                      "kind": "appointment_reminder", "send_at": LATER, "group_key": "appt-1"});
    let res = app
        .http
        .post(app.url("/v1/messages"))
        .bearer_auth(&app.api_key)
        .header("Idempotency-Key", "send-1")
        .json(&send)
        .send()
        .await
        .unwrap();
    let (s, first) = split(res).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{first}");
    assert_eq!(first["status"], "queued");
    assert_eq!(first["channel"], "sms");
    let id = first["id"].as_str().unwrap().to_owned();
    let (s, m) = key_call(&app, Method::GET, &format!("/v1/messages/{id}"), None).await;
    assert_eq!(s, StatusCode::OK, "{m}");
    let want_body = "\u{200F}عَزِيزِي Ahmed، مَوْعِدُكَ مَعَ Dr. Sara فِي 10:00";
    assert_eq!(m["body"].as_str().unwrap().as_bytes(), want_body.as_bytes());
    assert_eq!(m["status"], "queued");
    assert_eq!(m["to"], "+966501234567");
    assert_eq!(m["language"], "ar");
    assert_eq!(m["patient_id"], "p-ar");
    assert_eq!(m["group_key"], "appt-1");
    assert_eq!(m["send_at"], "2099-01-01T00:00:00.000Z");
    assert_eq!(
        m["template"],
        json!({"id": tpl, "name": "reminder_24h", "version": 1})
    );
    assert_eq!(m["variables"], vars());
    let events: Vec<&str> = m["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, vec!["created", "queued"]);

    // The same key and body: the first answer, nothing new. Another body: 409.
    for _ in 0..2 {
        let res = app
            .http
            .post(app.url("/v1/messages"))
            .bearer_auth(&app.api_key)
            .header("Idempotency-Key", "send-1")
            .json(&send)
            .send()
            .await
            .unwrap();
        let (s, again) = split(res).await;
        assert_eq!(s, StatusCode::ACCEPTED);
        assert_eq!(again, first);
    }
    let mut changed = send.clone();
    changed["patient_id"] = json!("p-email");
    let res = app
        .http
        .post(app.url("/v1/messages"))
        .bearer_auth(&app.api_key)
        .header("Idempotency-Key", "send-1")
        .json(&changed)
        .send()
        .await
        .unwrap();
    let (s, b) = split(res).await;
    assert_error(s, &b, 409, "idempotency_key_reused");
    let (_, l) = key_call(&app, Method::GET, "/v1/messages", None).await;
    assert_eq!(l["items"].as_array().unwrap().len(), 1);

    // Suppressed: 200 with the reason, and stored as such.
    let suppressed = [
        (
            "p-nokind",
            "kind_disabled",
            "the patient turned off appointment_reminder messages",
        ),
        ("p-nosms", "channel_disabled", "the patient turned off sms"),
        (
            "p-unknown",
            "no_address",
            "the patient has no phone number for sms",
        ),
    ];
    for (patient, reason, detail) in suppressed {
        let (s, b) = key_call(
            &app,
            Method::POST,
            "/v1/messages",
            Some(json!({"patient_id": patient, "template": "reminder_24h", "variables": vars()})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["status"], "suppressed");
        assert_eq!(b["reason"], reason);
        assert_eq!(b["detail"], detail);
        assert_eq!(b["channel"], "sms");
        let (_, m) = key_call(
            &app,
            Method::GET,
            &format!("/v1/messages/{}", b["id"].as_str().unwrap()),
            None,
        )
        .await;
        assert_eq!(m["status"], "suppressed");
        assert_eq!(m["reason"], reason);
        assert_eq!(m["reason_detail"], detail);
        let events: Vec<&str> = m["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        assert_eq!(events, vec!["created", "suppressed"]);
    }
    // Free text by email with a subject of its own (without one: see
    // `plain_text_by_email_gets_a_localized_default_subject`).
    let (s, b) = key_call(&app, Method::POST, "/v1/messages",
        Some(json!({"patient_id": "p-email", "subject": "Invoice", "body": "Your invoice is ready", "kind": "billing", "send_at": LATER}))).await;
    assert_eq!(
        (s, b["channel"].clone(), b["status"].clone()),
        (StatusCode::ACCEPTED, json!("email"), json!("queued")),
        "{b}"
    );
    // Ad hoc `to`: the address decides the channel; no switches apply.
    let (s, b) = key_call(
        &app,
        Method::POST,
        "/v1/messages",
        Some(json!({"to": "+14155550100", "body": "Offer", "kind": "marketing", "send_at": LATER})),
    )
    .await;
    assert_eq!(
        (s, b["channel"].clone()),
        (StatusCode::ACCEPTED, json!("sms")),
        "{b}"
    );
    let (s, b) = key_call(&app, Method::POST, "/v1/messages",
        Some(json!({"to": "x@clinic.example", "channel": "email", "subject": "S", "body": "B", "kind": "results", "send_at": LATER}))).await;
    assert_eq!(
        (s, b["channel"].clone()),
        (StatusCode::ACCEPTED, json!("email")),
        "{b}"
    );

    // 422s name the field.
    let inactive = create_template(&app, reminder("inactive_one")).await;
    key_call(
        &app,
        Method::POST,
        &format!("/v1/templates/{inactive}/toggle"),
        None,
    )
    .await;
    let cases = [
        (
            json!({"patient_id": "p-ar", "template": "reminder_24h", "variables": {"patient_name": "A"}}),
            "missing_variables",
            "variables",
            Some("missing variables: provider_name, time"),
        ),
        (
            json!({"patient_id": "p-ar", "template": "nope", "variables": vars()}),
            "invalid",
            "template",
            None,
        ),
        (
            json!({"patient_id": "p-ar", "template": "inactive_one", "variables": vars()}),
            "invalid",
            "template",
            None,
        ),
        (
            json!({"patient_id": "p-ar", "template": "reminder_24h", "channel": "email", "variables": vars()}),
            "invalid",
            "channel",
            None,
        ),
        (
            json!({"patient_id": "p-ar", "template": "reminder_24h", "kind": "billing", "variables": vars()}),
            "invalid",
            "kind",
            None,
        ),
        (
            json!({"to": "0501234567", "template": "reminder_24h", "variables": vars()}),
            "invalid",
            "to",
            None,
        ),
        (
            json!({"to": "+96650", "template": "reminder_24h", "variables": vars()}),
            "invalid",
            "to",
            None,
        ),
        (
            json!({"to": "x@clinic.example", "template": "reminder_24h", "variables": vars()}),
            "invalid",
            "to",
            None,
        ),
        (
            json!({"patient_id": "p-ar", "template": "reminder_24h", "body": "x", "variables": vars()}),
            "invalid",
            "template",
            None,
        ),
        (
            json!({"patient_id": "p-ar", "body": "x"}),
            "invalid",
            "kind",
            None,
        ),
        (
            json!({"template": "reminder_24h", "variables": vars()}),
            "invalid",
            "patient_id",
            None,
        ),
        (
            json!({"patient_id": "p-ar", "template": "reminder_24h", "variables": vars(), "send_at": "tomorrow"}),
            "invalid",
            "send_at",
            None,
        ),
        (
            json!({"patient_id": "p-ar", "template": "reminder_24h", "variables": vars(), "language": "fr"}),
            "invalid",
            "language",
            None,
        ),
        (
            json!({"patient_id": "p-ar", "template": "reminder_24h", "variables": {"time": 10}}),
            "invalid",
            "variables.time",
            None,
        ),
    ];
    for (body, code, field, message) in cases {
        let (s, b) = key_call(&app, Method::POST, "/v1/messages", Some(body.clone())).await;
        assert_error(s, &b, 422, code);
        assert_eq!(b["error"]["field"], field, "{body} -> {b}");
        if let Some(m) = message {
            assert_eq!(b["error"]["message"], m);
        }
    }
    let res = app
        .http
        .post(app.url("/v1/messages"))
        .bearer_auth(&app.api_key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (s, b) = split(res).await;
    assert_error(s, &b, 400, "malformed_json");

    // front_desk may send; provider may not; no credential is 401.
    let desk = app.token("desk-1", "front_desk").await;
    let one = json!({"patient_id": "p-ar", "template": "reminder_24h", "variables": vars(), "send_at": LATER});
    let (s, _) = call(
        &app,
        Method::POST,
        "/v1/messages",
        Some(&desk),
        Some(one.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let prov = app.token("dr-1", "provider").await;
    let (s, b) = call(
        &app,
        Method::POST,
        "/v1/messages",
        Some(&prov),
        Some(one.clone()),
    )
    .await;
    assert_error(s, &b, 403, "forbidden");
    let (s, b) = call(&app, Method::POST, "/v1/messages", None, Some(one)).await;
    assert_error(s, &b, 401, "unauthorized");
}

/// Moves a message along as a worker and a provider callback would.
async fn settle(app: &TestApp, id: &str, to: MessageStatus, price: Option<&str>) {
    let store = app.app_store.clone();
    let tenant = TenantId::parse(&app.tenant).unwrap();
    let id = MessageId::parse(id).unwrap();
    let now = later() + chrono::Duration::seconds(1);
    // Claim exactly this message: everything due is claimed, the others are put back.
    let claimed = store
        .claim_due(now, now + chrono::Duration::seconds(60), 1000)
        .await
        .unwrap();
    let mut found = false;
    for c in claimed {
        let mine = c.message.id == id;
        found |= mine;
        let status = match (mine, to) {
            (false, _) => MessageStatus::Queued,
            (true, MessageStatus::Delivered | MessageStatus::Read) => MessageStatus::Sent,
            (true, s) => s,
        };
        let update = AttemptUpdate {
            status,
            due_at: Some(later()),
            provider: mine.then(|| "log".to_owned()),
            provider_message_id: mine.then(|| format!("SM{}", id.as_uuid().simple())),
            price: price
                .filter(|_| mine)
                .map(|p| Money::parse_price(p, "USD").unwrap()),
            attempted: mine,
            failures: u32::from(mine && to == MessageStatus::Failed),
            last_error: (mine && matches!(to, MessageStatus::Failed | MessageStatus::Bounced))
                .then(|| "provider said no".to_owned()),
            events: vec![],
        };
        assert!(store
            .finish_attempt(&c.message.tenant, c.message.id, c.lease_token, &update, now)
            .await
            .unwrap());
    }
    assert!(found, "message {id} was not due");
    if matches!(to, MessageStatus::Delivered | MessageStatus::Read) {
        let update = CallbackUpdate {
            status: to,
            provider_message_id: None,
            price: None,
            error: None,
            receipt: format!("{id}-{to}"),
            event: MessageEvent {
                event: to.as_str().to_owned(),
                at: now,
                detail: json!({"provider": "log"}).to_string(),
            },
        };
        store
            .apply_callback(&tenant, id, &update, now)
            .await
            .unwrap();
    }
}

async fn send_one(app: &TestApp, body: Value) -> String {
    let (s, b) = key_call(app, Method::POST, "/v1/messages", Some(body)).await;
    assert!(s == StatusCode::ACCEPTED || s == StatusCode::OK, "{s} {b}");
    b["id"].as_str().unwrap().to_owned()
}

fn to_sms(n: u32, group: Option<&str>) -> Value {
    json!({"to": format!("+9665{n:08}"), "template": "reminder_24h", "variables": vars(),
           "send_at": LATER, "group_key": group})
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn message_list_filters_cancel_retry_groups_and_tenants() {
    let app = spawn_app().await;
    create_template(&app, reminder("reminder_24h")).await;
    let a = send_one(&app, to_sms(1, Some("appt-7"))).await;
    let b = send_one(&app, to_sms(2, Some("appt-7"))).await;
    let c = send_one(&app, to_sms(3, Some("appt-8"))).await;
    let d = send_one(
        &app,
        json!({"to": "ali@clinic.example", "subject": "Invoice, March", "body": "Total: 100 SAR",
                                  "kind": "billing", "send_at": LATER}),
    )
    .await;
    let e = send_one(
        &app,
        json!({"patient_id": "p-none", "template": "reminder_24h", "variables": vars()}),
    )
    .await;

    let (s, all) = key_call(&app, Method::GET, "/v1/messages", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        ids(&all),
        vec![e.clone(), d.clone(), c.clone(), b.clone(), a.clone()]
    );
    let q = |query: &'static str| {
        let app = &app;
        async move {
            ids(
                &key_call(app, Method::GET, &format!("/v1/messages?{query}"), None)
                    .await
                    .1,
            )
        }
    };
    assert_eq!(q("status=suppressed").await, vec![e.clone()]);
    assert_eq!(q("channel=email").await, vec![d.clone()]);
    assert_eq!(
        q("template=reminder_24h&status=queued").await,
        vec![c.clone(), b.clone(), a.clone()]
    );
    assert_eq!(q("q=%2B96650000000").await.len(), 3);
    assert_eq!(q("q=ALI%40CLINIC").await, vec![d.clone()]);
    assert_eq!(q("group_key=appt-7").await, vec![b.clone(), a.clone()]);
    assert_eq!(
        q("from=2000-01-01T00:00:00Z&to=2098-01-01T00:00:00Z")
            .await
            .len(),
        5
    );
    assert_eq!(q("from=2098-01-01T00:00:00Z").await.len(), 0);
    let (_, p1) = key_call(&app, Method::GET, "/v1/messages?limit=2", None).await;
    assert_eq!(ids(&p1), vec![e.clone(), d.clone()]);
    let cur = p1["next_cursor"].as_str().unwrap();
    let (_, p2) = key_call(
        &app,
        Method::GET,
        &format!("/v1/messages?limit=2&cursor={cur}"),
        None,
    )
    .await;
    assert_eq!(ids(&p2), vec![c.clone(), b.clone()]);
    for bad in [
        "status=lost",
        "channel=fax",
        "from=monday",
        "limit=0",
        "cursor=%%%",
    ] {
        let (s, body) = key_call(&app, Method::GET, &format!("/v1/messages?{bad}"), None).await;
        assert_error(s, &body, 400, "bad_request");
    }

    // Cancel one (queued only), then a group.
    let (s, m) = key_call(
        &app,
        Method::POST,
        &format!("/v1/messages/{c}/cancel"),
        None,
    )
    .await;
    assert_eq!(
        (s, m["status"].clone()),
        (StatusCode::OK, json!("cancelled")),
        "{m}"
    );
    let (s, body) = key_call(
        &app,
        Method::POST,
        &format!("/v1/messages/{c}/cancel"),
        None,
    )
    .await;
    assert_error(s, &body, 409, "invalid_status");
    assert_eq!(
        body["error"]["message"],
        "only queued messages can be cancelled; this one is cancelled"
    );
    let (s, body) = key_call(
        &app,
        Method::POST,
        &format!("/v1/messages/{e}/cancel"),
        None,
    )
    .await;
    assert_error(s, &body, 409, "invalid_status");
    let (s, r) = key_call(
        &app,
        Method::POST,
        "/v1/messages/cancel",
        Some(json!({"group_key": "appt-7"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r, json!({"group_key": "appt-7", "cancelled": 2}));
    let (_, r) = key_call(
        &app,
        Method::POST,
        "/v1/messages/cancel",
        Some(json!({"group_key": "appt-7"})),
    )
    .await;
    assert_eq!(r["cancelled"], 0);
    let (s, body) = key_call(
        &app,
        Method::POST,
        "/v1/messages/cancel",
        Some(json!({"group_key": ""})),
    )
    .await;
    assert_error(s, &body, 422, "invalid");
    assert_eq!(body["error"]["field"], "group_key");
    let (_, m) = key_call(&app, Method::GET, &format!("/v1/messages/{a}"), None).await;
    assert_eq!(m["status"], "cancelled");
    let events: Vec<&str> = m["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, vec!["created", "queued", "cancelled"]);

    // Retry: failed or bounced only.
    let (s, body) = key_call(&app, Method::POST, &format!("/v1/messages/{d}/retry"), None).await;
    assert_error(s, &body, 409, "invalid_status");
    assert_eq!(
        body["error"]["message"],
        "only failed or bounced messages can be retried; this one is queued"
    );
    settle(&app, &d, MessageStatus::Failed, None).await;
    let (_, m) = key_call(&app, Method::GET, &format!("/v1/messages/{d}"), None).await;
    assert_eq!(
        (
            m["status"].clone(),
            m["last_error"].clone(),
            m["attempts"].clone()
        ),
        (json!("failed"), json!("provider said no"), json!(1))
    );
    let desk = app.token("desk-1", "front_desk").await;
    let (s, m) = call(
        &app,
        Method::POST,
        &format!("/v1/messages/{d}/retry"),
        Some(&desk),
        None,
    )
    .await;
    assert_eq!(
        (s, m["status"].clone()),
        (StatusCode::OK, json!("queued")),
        "{m}"
    );
    let (_, m) = key_call(&app, Method::GET, &format!("/v1/messages/{d}"), None).await;
    assert!(
        m["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "retry"),
        "{m}"
    );
    let (s, body) = call(
        &app,
        Method::POST,
        &format!("/v1/messages/{d}/cancel"),
        Some(&desk),
        None,
    )
    .await;
    assert_error(s, &body, 403, "forbidden");
    let (s, body) = call(
        &app,
        Method::POST,
        "/v1/messages/cancel",
        Some(&desk),
        Some(json!({"group_key": "x"})),
    )
    .await;
    assert_error(s, &body, 403, "forbidden");
    let pat = app.token("p-1", "patient").await;
    let (s, body) = call(&app, Method::GET, "/v1/messages", Some(&pat), None).await;
    assert_error(s, &body, 403, "forbidden");

    // Another tenant: every id is unknown.
    let other = other_tenant(&app).await;
    for (method, path) in [
        (Method::GET, format!("/v1/messages/{a}")),
        (Method::POST, format!("/v1/messages/{b}/retry")),
        (Method::POST, format!("/v1/messages/{d}/cancel")),
    ] {
        let (s, body) = call(&app, method, &path, Some(&other), None).await;
        assert_error(s, &body, 404, "not_found");
    }
    let (_, r) = call(
        &app,
        Method::POST,
        "/v1/messages/cancel",
        Some(&other),
        Some(json!({"group_key": "appt-8"})),
    )
    .await;
    assert_eq!(r["cancelled"], 0);
    let (_, l) = call(&app, Method::GET, "/v1/messages", Some(&other), None).await;
    assert_eq!(l["items"], json!([]));
    let (s, body) = key_call(&app, Method::GET, "/v1/messages/123", None).await;
    assert_error(s, &body, 404, "not_found");

    // Audited: the cancels, the group cancel and the retry (by the front desk user).
    let log = audit(&app, "action=message.").await;
    let seen: Vec<(String, String, String)> = log
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
                e["target"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let me = key_actor(&app);
    assert_eq!(
        seen,
        vec![
            (
                "message.retry".into(),
                "user:desk-1".into(),
                format!("message:{d}")
            ),
            (
                "message.cancel_group".into(),
                me.clone(),
                "group:appt-7".into()
            ),
            (
                "message.cancel_group".into(),
                me.clone(),
                "group:appt-7".into()
            ),
            ("message.cancel".into(), me.clone(), format!("message:{c}")),
        ],
        "{log:?}"
    );
}

fn bulk_body(template: &str, n: usize, bad: Option<(usize, Value)>) -> Value {
    let recipients: Vec<Value> = (0..n)
        .map(|i| {
            if let Some((at, r)) = &bad {
                if *at == i {
                    return r.clone();
                }
            }
            if i < 500 {
                json!({"patient_id": format!("p-{}", i % 50), "variables": vars()})
            } else {
                json!({"to": format!("+9665{i:08}"), "variables": vars()})
            }
        })
        .collect();
    json!({"template": template, "recipients": recipients, "send_at": LATER})
}

#[tokio::test]
async fn bulk_of_ten_thousand_is_exact_and_all_or_nothing() {
    let app = spawn_app().await;
    create_template(&app, reminder("reminder_24h")).await;
    create_template(&app, reminder("never_sent")).await;
    // p-0..p-39 reachable by SMS; p-40..p-49 turned SMS off.
    for i in 0..50 {
        let prefs = if i < 40 {
            json!({"phone": format!("+96655{i:07}"), "language": if i % 2 == 0 { "ar" } else { "en" }})
        } else {
            json!({"phone": format!("+96655{i:07}"), "channels": {"sms": false}})
        };
        put_prefs(&app, &format!("p-{i}"), prefs).await;
    }

    // One bad recipient deep in the list: 422 naming it, nothing stored.
    let bad = bulk_body(
        "never_sent",
        10_000,
        Some((7_345, json!({"to": "0501234567", "variables": vars()}))),
    );
    let (s, b) = key_call(&app, Method::POST, "/v1/messages/bulk", Some(bad)).await;
    assert_error(s, &b, 422, "invalid");
    assert_eq!(b["error"]["field"], "recipients[7345].to");
    let missing = bulk_body(
        "never_sent",
        10_000,
        Some((
            9_999,
            json!({"to": "+966512345678", "variables": {"time": "x"}}),
        )),
    );
    let (s, b) = key_call(&app, Method::POST, "/v1/messages/bulk", Some(missing)).await;
    assert_error(s, &b, 422, "missing_variables");
    assert_eq!(b["error"]["field"], "recipients[9999].variables");
    assert_eq!(
        b["error"]["message"],
        "missing variables: patient_name, provider_name"
    );
    let odd = bulk_body(
        "never_sent",
        3,
        Some((
            1,
            json!({"to": "+966512345678", "variables": vars(), "colour": "red"}),
        )),
    );
    let (s, b) = key_call(&app, Method::POST, "/v1/messages/bulk", Some(odd)).await;
    assert_error(s, &b, 422, "invalid");
    assert_eq!(b["error"]["field"], "recipients[1].colour");
    let neither = bulk_body("never_sent", 3, Some((2, json!({"variables": vars()}))));
    let (s, b) = key_call(&app, Method::POST, "/v1/messages/bulk", Some(neither)).await;
    assert_eq!(b["error"]["field"], "recipients[2].patient_id", "{s} {b}");
    let (_, l) = key_call(&app, Method::GET, "/v1/messages?template=never_sent", None).await;
    assert_eq!(l["items"], json!([]), "a refused bulk stores nothing");
    let (_, l) = key_call(&app, Method::GET, "/v1/messages?limit=1", None).await;
    assert_eq!(l["items"], json!([]));
    let too_many = bulk_body("reminder_24h", 10_001, None);
    let (s, b) = key_call(&app, Method::POST, "/v1/messages/bulk", Some(too_many)).await;
    assert_error(s, &b, 422, "invalid");
    assert_eq!(b["error"]["field"], "recipients");
    let (s, b) = key_call(&app, Method::POST, "/v1/messages/bulk",
        Some(json!({"template": "nope", "recipients": [{"to": "+966512345678", "variables": vars()}]}))).await;
    assert_error(s, &b, 422, "invalid");
    assert_eq!(b["error"]["field"], "template");

    // 10,000 at once: 500 by patient (100 of them SMS off), 9,500 ad hoc.
    let started = std::time::Instant::now();
    let res = app
        .http
        .post(app.url("/v1/messages/bulk"))
        .bearer_auth(&app.api_key)
        .header("Idempotency-Key", "bulk-1")
        .json(&bulk_body("reminder_24h", 10_000, None))
        .send()
        .await
        .unwrap();
    let (s, r) = split(res).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{r}");
    eprintln!("bulk of 10,000 took {:?}", started.elapsed());
    assert_eq!(
        (r["queued"].clone(), r["suppressed"].clone()),
        (json!(9_900), json!(100))
    );
    let batch = r["batch_id"].as_str().unwrap().to_owned();
    let (s, st) = key_call(
        &app,
        Method::GET,
        &format!("/v1/messages/batches/{batch}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{st}");
    assert_eq!(st["total"], 10_000);
    assert_eq!(st["template"], "reminder_24h");
    assert_eq!(
        st["by_status"],
        json!({"queued": 9_900, "suppressed": 100, "sending": 0, "sent": 0,
        "delivered": 0, "read": 0, "failed": 0, "bounced": 0, "cancelled": 0})
    );
    // The same request again: the first answer, nothing new.
    let res = app
        .http
        .post(app.url("/v1/messages/bulk"))
        .bearer_auth(&app.api_key)
        .header("Idempotency-Key", "bulk-1")
        .json(&bulk_body("reminder_24h", 10_000, None))
        .send()
        .await
        .unwrap();
    let (s, again) = split(res).await;
    assert_eq!((s, again), (StatusCode::ACCEPTED, r.clone()));
    let (_, st) = key_call(
        &app,
        Method::GET,
        &format!("/v1/messages/batches/{batch}"),
        None,
    )
    .await;
    assert_eq!(st["total"], 10_000);
    let res = app
        .http
        .post(app.url("/v1/messages/bulk"))
        .bearer_auth(&app.api_key)
        .header("Idempotency-Key", "bulk-1")
        .json(&bulk_body("reminder_24h", 9_999, None))
        .send()
        .await
        .unwrap();
    let (s, b) = split(res).await;
    assert_error(s, &b, 409, "idempotency_key_reused");
    // Over the bulk body limit (8 MiB): 413, nothing read.
    let huge = json!({"template": "reminder_24h", "recipients": [{"to": "+966512345678",
        "variables": {"patient_name": "x".repeat(9 * 1024 * 1024)}}]});
    let (s, b) = key_call(&app, Method::POST, "/v1/messages/bulk", Some(huge)).await;
    assert_error(s, &b, 413, "payload_too_large");
    // Rendered per recipient, in each patient's language.
    let (_, l) = key_call(
        &app,
        Method::GET,
        &format!("/v1/messages?batch_id={batch}&q=%2B966550000002"),
        None,
    )
    .await;
    // p-2 is recipient 2, 52, 102, … 452: ten times, each in Arabic.
    let items = l["items"].as_array().unwrap();
    assert_eq!(items.len(), 10, "{l}");
    let want = "\u{200F}عَزِيزِي Ahmed، مَوْعِدُكَ مَعَ Dr. Sara فِي 10:00";
    for m in items {
        assert_eq!(
            (m["language"].as_str(), m["patient_id"].as_str()),
            (Some("ar"), Some("p-2"))
        );
        assert_eq!(m["body"].as_str().unwrap().as_bytes(), want.as_bytes());
    }
    let (_, l) = key_call(
        &app,
        Method::GET,
        &format!("/v1/messages?batch_id={batch}&q=%2B966550000003"),
        None,
    )
    .await;
    assert_eq!(l["items"][0]["language"], "en");
    assert_eq!(
        l["items"][0]["body"],
        "Hi Ahmed, see Dr. Sara at 10:00, \"room 2\"."
    );

    let log = audit(&app, "action=message.bulk").await;
    assert_eq!(log.len(), 1, "refused bulks leave no audit entry");
    assert_eq!(log[0]["target"], format!("batch:{batch}"));
    assert_eq!(log[0]["detail"]["recipients"], 10_000);

    let (s, b) = key_call(
        &app,
        Method::GET,
        &format!("/v1/messages/batches/{}", uuid::Uuid::new_v4()),
        None,
    )
    .await;
    assert_error(s, &b, 404, "not_found");
    let other = other_tenant(&app).await;
    let (s, b) = call(
        &app,
        Method::GET,
        &format!("/v1/messages/batches/{batch}"),
        Some(&other),
        None,
    )
    .await;
    assert_error(s, &b, 404, "not_found");
    let desk = app.token("desk-1", "front_desk").await;
    let (s, b) = call(
        &app,
        Method::POST,
        "/v1/messages/bulk",
        Some(&desk),
        Some(bulk_body("reminder_24h", 1, None)),
    )
    .await;
    assert_error(s, &b, 403, "forbidden");
}

/// RFC 4180 reader for the test: fields, quoted fields with doubled quotes and line breaks.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {
                chars.next();
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(field.is_empty() && row.is_empty(), "CSV ends with CRLF");
    rows
}

#[tokio::test]
async fn csv_export_streams_every_page_quoted_with_arabic_intact() {
    let app = spawn_app().await;
    create_template(&app, reminder("reminder_24h")).await;
    put_prefs(
        &app,
        "p-ar",
        json!({"phone": "+966501234567", "language": "ar"}),
    )
    .await;
    let tricky = "Line one, with comma\nline \"two\"";
    let text_id = send_one(
        &app,
        json!({"to": "+966501234599", "body": tricky, "kind": "billing", "send_at": LATER}),
    )
    .await;
    let formula_id = send_one(&app, json!({"to": "+966501234598", "body": "=HYPERLINK(\"http://x\")", "kind": "billing", "send_at": LATER})).await;
    let ar_id = send_one(&app, json!({"patient_id": "p-ar", "template": "reminder_24h",
        "variables": {"patient_name": "مُحَمَّد", "provider_name": "د. سارة", "time": "١٠:٠٠"}, "send_at": LATER})).await;
    // Enough rows for several export pages.
    let (s, r) = key_call(
        &app,
        Method::POST,
        "/v1/messages/bulk",
        Some(bulk_body("reminder_24h", 1_200, None)),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{r}");

    let res = app
        .http
        .get(app.url("/v1/messages/export.csv"))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
    let disposition = res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"messages-")
            && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    assert!(
        res.headers().get("content-length").is_none(),
        "streamed, not buffered"
    );
    let bytes = res.bytes().await.unwrap();
    assert_eq!(&bytes[..3], b"\xEF\xBB\xBF", "UTF-8 BOM");
    let text = std::str::from_utf8(&bytes[3..]).unwrap();
    let rows = parse_csv(text);
    let header = &rows[0];
    assert_eq!(header[..4], ["id", "created_at", "updated_at", "status"]);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let data = &rows[1..];
    assert_eq!(data.len(), 1_203);
    let unique: std::collections::BTreeSet<&String> = data.iter().map(|r| &r[0]).collect();
    assert_eq!(unique.len(), 1_203, "no row twice across pages");
    assert!(data.iter().all(|r| r.len() == header.len()));
    let by_id: BTreeMap<&str, &Vec<String>> = data.iter().map(|r| (r[0].as_str(), r)).collect();
    assert_eq!(by_id[text_id.as_str()][col("body")], tricky);
    // Every column is formula-guarded: a phone number reads as text in a spreadsheet.
    assert_eq!(by_id[text_id.as_str()][col("to")], "'+966501234599");
    assert_eq!(
        by_id[formula_id.as_str()][col("body")],
        "'=HYPERLINK(\"http://x\")"
    );
    let ar = by_id[ar_id.as_str()];
    let want = "\u{200F}عَزِيزِي مُحَمَّد، مَوْعِدُكَ مَعَ د. سارة فِي ١٠:٠٠";
    assert_eq!(ar[col("body")].as_bytes(), want.as_bytes());
    assert_eq!(
        (
            ar[col("language")].as_str(),
            ar[col("template")].as_str(),
            ar[col("template_version")].as_str()
        ),
        ("ar", "reminder_24h", "1")
    );
    assert_eq!(ar[col("patient_id")], "p-ar");

    // Same filters as the list.
    let res = app
        .http
        .get(app.url("/v1/messages/export.csv?channel=sms&q=HYPERLINK"))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    let text = res.text().await.unwrap();
    let rows = parse_csv(text.trim_start_matches('\u{FEFF}'));
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1][0], formula_id);
    let res = app
        .http
        .get(app.url("/v1/messages/export.csv?status=nope"))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    let (s, b) = split(res).await;
    assert_error(s, &b, 400, "bad_request");
    let desk = app.token("desk-1", "front_desk").await;
    let res = app
        .http
        .get(app.url("/v1/messages/export.csv"))
        .bearer_auth(&desk)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let prov = app.token("dr-1", "provider").await;
    let res = app
        .http
        .get(app.url("/v1/messages/export.csv"))
        .bearer_auth(&prov)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn stats_count_exactly() {
    let app = spawn_app().await;
    create_template(&app, reminder("reminder_24h")).await;
    let sms: Vec<String> = {
        let mut v = Vec::new();
        for n in 0..6 {
            v.push(send_one(&app, to_sms(n, None)).await);
        }
        v
    };
    let wa = send_one(&app, json!({"to": "+966501111111", "channel": "whatsapp", "body": "hi", "kind": "results", "send_at": LATER})).await;
    let mail = send_one(&app, json!({"to": "a@clinic.example", "subject": "s", "body": "b", "kind": "results", "send_at": LATER})).await;
    send_one(
        &app,
        json!({"patient_id": "nobody", "template": "reminder_24h", "variables": vars()}),
    )
    .await; // suppressed
    let cancelled = send_one(&app, to_sms(50, Some("g"))).await;
    key_call(
        &app,
        Method::POST,
        &format!("/v1/messages/{cancelled}/cancel"),
        None,
    )
    .await;

    settle(&app, &sms[0], MessageStatus::Delivered, Some("-0.0075")).await;
    settle(&app, &sms[1], MessageStatus::Read, Some("0.0075")).await;
    settle(&app, &sms[2], MessageStatus::Sent, Some("0.0100")).await;
    settle(&app, &sms[3], MessageStatus::Failed, None).await;
    settle(&app, &sms[4], MessageStatus::Bounced, None).await;
    settle(&app, &wa, MessageStatus::Delivered, Some("0.05")).await;
    // sms[5] and the email stay queued.
    let _ = &mail;

    let (s, st) = key_call(&app, Method::GET, "/v1/messages/stats?days=7", None).await;
    assert_eq!(s, StatusCode::OK, "{st}");
    assert_eq!(st["total"], 10);
    assert_eq!(
        st["by_status"],
        json!({"queued": 2, "sending": 0, "sent": 1, "delivered": 2, "read": 1,
        "failed": 1, "bounced": 1, "cancelled": 1, "suppressed": 1})
    );
    assert_eq!(
        st["by_channel"],
        json!({"sms": 8, "whatsapp": 1, "email": 1})
    );
    // (delivered 2 + read 1) / (sent 1 + delivered 2 + read 1 + failed 1 + bounced 1) = 3/6
    assert_eq!(st["success_rate"], 0.5);
    assert_eq!(st["attempted"], 6);
    let daily = st["daily"].as_array().unwrap();
    assert_eq!(daily.len(), 7);
    let today = Utc::now().date_naive().to_string();
    assert_eq!(
        daily[6],
        json!({"date": today, "total": 10, "delivered": 3, "failed": 2})
    );
    assert!(daily[..6].iter().all(|d| d["total"] == 0));
    assert_eq!(st["to"], today);
    assert_eq!(
        st["cost"],
        json!({"total": 0.075, "by_channel": {"sms": 0.025, "whatsapp": 0.05, "email": 0.0},
        "currency": "USD", "other_currencies": []})
    );

    let (_, st1) = key_call(&app, Method::GET, "/v1/messages/stats", None).await;
    assert_eq!(
        st1["daily"].as_array().unwrap().len(),
        7,
        "7 days by default"
    );
    let (_, st1) = key_call(&app, Method::GET, "/v1/messages/stats?days=1", None).await;
    assert_eq!(st1["total"], 10);
    for bad in ["days=0", "days=367", "days=week"] {
        let (s, b) = key_call(
            &app,
            Method::GET,
            &format!("/v1/messages/stats?{bad}"),
            None,
        )
        .await;
        assert_error(s, &b, 400, "bad_request");
    }
    let other = other_tenant(&app).await;
    let (_, st) = call(&app, Method::GET, "/v1/messages/stats", Some(&other), None).await;
    assert_eq!(st["total"], 0);
    assert_eq!(st["success_rate"], 0.0);
    assert_eq!(st["cost"]["currency"], Value::Null);
}

#[tokio::test]
async fn every_outbound_path_is_in_the_openapi_document() {
    let app = spawn_app().await;
    let (s, api) = split(app.http.get(app.url("/openapi.json")).send().await.unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    for path in [
        "/v1/templates",
        "/v1/templates/{id}",
        "/v1/templates/{id}/toggle",
        "/v1/templates/{id}/test",
        "/v1/templates/{id}/versions",
        "/v1/patients/{patient_id}/preferences",
        "/v1/messages",
        "/v1/messages/bulk",
        "/v1/messages/{id}",
        "/v1/messages/{id}/retry",
        "/v1/messages/{id}/cancel",
        "/v1/messages/cancel",
        "/v1/messages/batches/{id}",
        "/v1/messages/stats",
        "/v1/messages/export.csv",
        "/v1/audit",
    ] {
        assert!(api["paths"][path].is_object(), "openapi lacks {path}");
    }
    // The extensions: a template names the rules that send it, and deleting one of
    // those is a documented 409.
    let template = &api["components"]["schemas"]["TemplateWire"];
    assert!(
        template["properties"]["used_by_rules"].is_object(),
        "{template}"
    );
    let delete = &api["paths"]["/v1/templates/{id}"]["delete"]["responses"];
    assert!(delete["409"].is_object(), "{delete}");
}

/// Issue #15 part 7: a plain-text message (`body`, no `subject`) that goes by email
/// (here the patient's preferred channel) is sent with a subject made of its kind and
/// the clinic's name, in the patient's language, instead of being refused.
#[tokio::test]
async fn plain_text_by_email_gets_a_localized_default_subject() {
    let app = crate::support::spawn_app_with(|c| {
        c.events.clinic_name_en = "Nour Clinic".into();
        c.events.clinic_name_ar = "عيادة نور".into();
    })
    .await;
    for (patient, language) in [("p-en", "en"), ("p-ar", "ar")] {
        put_prefs(
            &app,
            patient,
            json!({"email": format!("{patient}@clinic.example"), "preferred_channel": "email", "language": language}),
        )
        .await;
    }
    let mut subjects = Vec::new();
    for (patient, kind) in [
        ("p-en", "billing"),
        ("p-ar", "results"),
        ("p-en", "appointment_reminder"),
    ] {
        let (s, b) = key_call(&app, Method::POST, "/v1/messages",
            Some(json!({"patient_id": patient, "body": "Your document is ready", "kind": kind, "send_at": LATER}))).await;
        assert_eq!(
            (s, b["channel"].clone()),
            (StatusCode::ACCEPTED, json!("email")),
            "{b}"
        );
        let (_, m) = key_call(
            &app,
            Method::GET,
            &format!("/v1/messages/{}", b["id"].as_str().unwrap()),
            None,
        )
        .await;
        subjects.push(m["subject"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(
        subjects,
        vec![
            "Billing from Nour Clinic",
            "نتائج من عيادة نور",
            "Appointment reminder from Nour Clinic",
        ]
    );
    // A subject the caller gives is kept; SMS stays without one.
    let (s, b) = key_call(&app, Method::POST, "/v1/messages",
        Some(json!({"patient_id": "p-en", "subject": "March invoice", "body": "B", "kind": "billing", "send_at": LATER}))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let (_, m) = key_call(
        &app,
        Method::GET,
        &format!("/v1/messages/{}", b["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(m["subject"], "March invoice");
    let (s, b) = key_call(
        &app,
        Method::POST,
        "/v1/messages",
        Some(json!({"to": "+966501234567", "body": "B", "kind": "billing", "send_at": LATER})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let (_, m) = key_call(
        &app,
        Method::GET,
        &format!("/v1/messages/{}", b["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(m["subject"], Value::Null);
}
