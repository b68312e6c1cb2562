//! The PHI lifecycle through the API on a real hub (SQLite, or PostgreSQL with
//! `TIDINGS_TEST_BACKEND=postgres`): retention redacts after the tenant's `phi_days`
//! (driven by a `ManualClock`) while stats keep counting; `DELETE
//! /v1/patients/{id}/data` leaves no trace of the patient in any database row; reads
//! of patient data are audited.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tidings::domain::ids::TenantId;
use tidings::service::clock::ManualClock;

use crate::support::{spawn_app_with_clock, split, TestApp};

const PHONE: &str = "+966501112233";
const EMAIL: &str = "fatimah.zahra@example.com";
const NAME: &str = "Fatimah Zahra";

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn call(app: &TestApp, key: &str, method: Method, path: &str) -> (StatusCode, Value) {
    split(
        app.http
            .request(method, app.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn get(app: &TestApp, path: &str) -> Value {
    let (s, b) = call(app, &app.api_key, Method::GET, path).await;
    assert_eq!(s, StatusCode::OK, "GET {path}: {b}");
    b
}

async fn post_as(app: &TestApp, key: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let res = app
        .http
        .post(app.url(path))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    split(res).await
}

/// A hub whose retention job runs every second on `clock`.
async fn hub(
    clock: &Arc<ManualClock>,
    tweak: impl FnOnce(&mut tidings::config::Config),
) -> TestApp {
    spawn_app_with_clock(
        |c| {
            c.retention.interval_secs = 1;
            tweak(c);
        },
        Some(clock.clone()),
    )
    .await
}

/// Sends a free-text SMS naming the patient; returns its id.
async fn send(app: &TestApp, key: &str, body: Value) -> String {
    let (s, b) = post_as(app, key, "/v1/messages", body).await;
    assert!(s == StatusCode::ACCEPTED || s == StatusCode::OK, "{s} {b}");
    b["id"].as_str().unwrap().to_owned()
}

fn text_to(to: &str, patient: Option<&str>) -> Value {
    json!({"to": to, "patient_id": patient, "kind": "appointment_reminder",
           "body": format!("Dear {NAME}, your results are ready. Reply to {to}.")})
}

/// Polls a message until `done` holds (the worker and the retention job run on their
/// own schedules; 60 s is far beyond either on a loaded machine).
async fn wait_message(app: &TestApp, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let m = get(app, &format!("/v1/messages/{id}")).await;
        if done(&m) {
            return m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "message never got there: {m}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every text of every row of every table, as `(table, text)`: what the database
/// really holds, read beside the hub (SQLite in WAL mode allows it).
async fn database_texts(url: &str) -> Vec<(String, String)> {
    use sqlx::{Column, Connection, Row};
    let mut out = Vec::new();
    if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .fetch_all(&mut c)
        .await
        .unwrap();
        for table in tables {
            let rows: Vec<String> =
                sqlx::query_scalar(&format!("SELECT row_to_json(t)::text FROM \"{table}\" t"))
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
            out.extend(rows.into_iter().map(|r| (table.clone(), r)));
        }
    } else {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                .fetch_all(&mut c)
                .await
                .unwrap();
        for table in tables {
            let rows = sqlx::query(&format!("SELECT * FROM \"{table}\""))
                .fetch_all(&mut c)
                .await
                .unwrap();
            for row in rows {
                for col in row.columns() {
                    // Text columns decode; integer ones do not and hold no names.
                    if let Ok(Some(v)) = row.try_get::<Option<String>, _>(col.ordinal()) {
                        out.push((table.clone(), v));
                    }
                }
            }
        }
    }
    out
}

/// The rows (outside `except`) that still hold one of `needles`.
async fn traces(app: &TestApp, needles: &[&str], except: &[&str]) -> Vec<(String, String)> {
    database_texts(&app.database_url)
        .await
        .into_iter()
        .filter(|(table, text)| {
            !except.contains(&table.as_str()) && needles.iter().any(|n| text.contains(n))
        })
        .collect()
}

async fn audit(app: &TestApp, query: &str) -> Vec<Value> {
    get(app, &format!("/v1/audit?{query}")).await["items"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn retention_redacts_after_phi_days_and_stats_keep_counting() {
    let clock = Arc::new(ManualClock::new(t("2026-11-02T09:00:00Z")));
    let app = hub(&clock, |c| c.retention.phi_days = 30).await;
    let old = send(&app, &app.api_key, text_to(PHONE, Some("p-old"))).await;
    let sent = wait_message(&app, &old, |m| m["status"] == "sent").await;
    assert!(sent["redacted_at"].is_null() && sent["body"].as_str().unwrap().contains(NAME));
    let before = get(&app, "/v1/messages/stats?days=60").await;
    assert_eq!(before["total"], 1);

    // 29 days on: still within the 30 kept.
    clock.advance(chrono::Duration::days(29));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let m = get(&app, &format!("/v1/messages/{old}")).await;
    assert!(m["redacted_at"].is_null(), "redacted too early: {m}");

    // 31 days on: the next run redacts it; a message sent now stays whole.
    clock.advance(chrono::Duration::days(2));
    let mut other = text_to("+966509998877", Some("p-new"));
    other["body"] = json!("Dear Omar Nasser, your results are ready.");
    let fresh = send(&app, &app.api_key, other).await;
    let m = wait_message(&app, &old, |m| !m["redacted_at"].is_null()).await;
    assert_eq!(m["body"], Value::Null, "{m}");
    assert_eq!(m["to"], Value::Null);
    assert_eq!(m["variables"], json!({}));
    assert_eq!(
        m["status"], "sent",
        "status, channel, patient and times stay"
    );
    assert_eq!(m["channel"], "sms");
    assert_eq!(m["patient_id"], "p-old");
    assert_eq!(m["created_at"], sent["created_at"]);
    for e in m["events"].as_array().unwrap() {
        assert!(
            e["detail"].get("response").is_none(),
            "provider answer kept: {e}"
        );
    }
    let f = wait_message(&app, &fresh, |m| m["status"] == "sent").await;
    assert!(f["redacted_at"].is_null() && f["body"].as_str().unwrap().contains("Omar"));

    let after = get(&app, "/v1/messages/stats?days=60").await;
    assert_eq!(after["total"], 2, "the old message and the fresh one");
    assert_eq!(after["by_status"]["sent"], 2);
    // The old message's day still counts it.
    let day = &sent["created_at"].as_str().unwrap()[..10];
    let old_day = after["daily"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["date"] == day)
        .unwrap_or_else(|| panic!("no {day} in {after}"));
    assert_eq!(old_day["total"], 1, "{after}");
    // No row names the old message's patient any more; the fresh one is whole.
    let left = traces(&app, &[PHONE, NAME], &[]).await;
    assert!(left.is_empty(), "old rows still hold PHI: {left:?}");
    assert!(!traces(&app, &["Omar Nasser"], &[]).await.is_empty());
}

#[tokio::test]
async fn a_tenant_override_redacts_sooner_and_zero_keeps() {
    let clock = Arc::new(ManualClock::new(t("2026-11-02T09:00:00Z")));
    let app = hub(&clock, |c| {
        c.retention.phi_days = 365;
        c.retention.tenants.insert(
            "clinic-a".into(),
            tidings::config::TenantRetention { phi_days: 7 },
        );
        c.retention.tenants.insert(
            "clinic-keep".into(),
            tidings::config::TenantRetention { phi_days: 0 },
        );
    })
    .await;
    let mut keys = Vec::new();
    for name in ["clinic-b", "clinic-keep"] {
        let tenant = TenantId::parse(name).unwrap();
        let (key, _) = app.create_tenant(&tenant, name).await;
        keys.push(key.key);
    }
    let a = send(&app, &app.api_key, text_to(PHONE, None)).await;
    let b = send(&app, &keys[0], text_to(PHONE, None)).await;
    let keep = send(&app, &keys[1], text_to(PHONE, None)).await;
    wait_message(&app, &a, |m| m["status"] == "sent").await;
    for (key, id) in [(&keys[0], &b), (&keys[1], &keep)] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while call(&app, key, Method::GET, &format!("/v1/messages/{id}"))
            .await
            .1["status"]
            != "sent"
        {
            assert!(tokio::time::Instant::now() < deadline, "{id} never sent");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    clock.advance(chrono::Duration::days(400));
    // clinic-a (7 days) and clinic-b (the 365-day default) are redacted; clinic-keep never.
    wait_message(&app, &a, |m| !m["redacted_at"].is_null()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, m) = call(&app, &keys[0], Method::GET, &format!("/v1/messages/{b}")).await;
        if !m["redacted_at"].is_null() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "default never applied: {m}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The job has run past clinic-keep by now (it runs every pass each second).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, k) = call(&app, &keys[1], Method::GET, &format!("/v1/messages/{keep}")).await;
    assert!(k["redacted_at"].is_null(), "phi_days = 0 must keep: {k}");
    assert!(k["body"].as_str().unwrap().contains(NAME));
}

#[tokio::test]
async fn a_tenant_override_alone_applies_before_the_default() {
    let clock = Arc::new(ManualClock::new(t("2026-11-02T09:00:00Z")));
    let app = hub(&clock, |c| {
        c.retention.phi_days = 365;
        c.retention.tenants.insert(
            "clinic-a".into(),
            tidings::config::TenantRetention { phi_days: 7 },
        );
    })
    .await;
    let other = TenantId::parse("clinic-b").unwrap();
    let (key_b, _) = app.create_tenant(&other, "B").await;
    let a = send(&app, &app.api_key, text_to(PHONE, None)).await;
    let b = send(&app, &key_b.key, text_to(PHONE, None)).await;
    wait_message(&app, &a, |m| m["status"] == "sent").await;
    clock.advance(chrono::Duration::days(8));
    wait_message(&app, &a, |m| !m["redacted_at"].is_null()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, m) = call(&app, &key_b.key, Method::GET, &format!("/v1/messages/{b}")).await;
    assert!(m["redacted_at"].is_null(), "clinic-b keeps 365 days: {m}");
}

/// A booking for patient `p-erase` naming them with their phone and email.
fn booking(id: &str, apt: &str, patient: &str, name: &str, phone: &str, email: &str) -> Value {
    json!({
        "id": id,
        "type": "appointment.booked",
        "occurred_at": "2026-11-02T08:00:00Z",
        "appointment": {
            "id": apt,
            "number": format!("APT-{apt}"),
            "start_at": "2026-11-20T09:00:00Z",
            "provider": {"id": "dr-1", "name": "Dr. Sara Al-Harbi"},
            "patient": {"id": patient, "name": name, "phone": phone, "email": email},
            "reason": format!("follow-up for {name}")
        }
    })
}

#[tokio::test]
async fn erasing_a_patient_leaves_no_trace_keeps_counts_and_is_audited() {
    let clock = Arc::new(ManualClock::new(t("2026-11-02T09:00:00Z")));
    let app = hub(&clock, |_| {}).await;
    let key = app.api_key.clone();
    let (s, b) = app
        .post_key(
            "/v1/events",
            booking("ev-1", "apt-1", "p-erase", NAME, PHONE, EMAIL),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let res = app
        .http
        .put(app.url("/v1/patients/p-erase/preferences"))
        .bearer_auth(&key)
        .json(&json!({"phone": PHONE, "email": EMAIL, "language": "en"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let now_sent = send(&app, &key, text_to(PHONE, Some("p-erase"))).await;
    let mut later = text_to(PHONE, Some("p-erase"));
    later["send_at"] = json!("2026-11-10T09:00:00Z");
    let queued = send(&app, &key, later).await;
    wait_message(&app, &now_sent, |m| m["status"] == "sent").await;
    // Another patient of the same clinic: untouched.
    let (s, _) = app
        .post_key(
            "/v1/events",
            booking(
                "ev-2",
                "apt-2",
                "p-other",
                "Omar Nasser",
                "+966507770000",
                "omar@example.com",
            ),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let other = send(
        &app,
        &key,
        json!({"to": "+966507770000", "patient_id": "p-other",
        "kind": "appointment_reminder", "body": "Dear Omar Nasser"}),
    )
    .await;
    let stats_before = get(&app, "/v1/messages/stats?days=7").await;
    let listed = get(&app, "/v1/messages?patient_id=p-erase&limit=100").await;
    let patient_messages = listed["items"].as_array().unwrap().len();
    assert!(patient_messages >= 2, "{listed}");
    assert!(!traces(&app, &[PHONE, NAME, EMAIL], &[]).await.is_empty());

    // front_desk may not erase; another tenant cannot see the patient.
    let desk = app.token("desk-1", "front_desk").await;
    let (s, b) = call(&app, &desk, Method::DELETE, "/v1/patients/p-erase/data").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let other_tenant = TenantId::parse("clinic-b").unwrap();
    let (key_b, _) = app.create_tenant(&other_tenant, "B").await;
    let (s, b) = call(
        &app,
        &key_b.key,
        Method::DELETE,
        "/v1/patients/p-erase/data",
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (s, _) = call(&app, &key, Method::DELETE, "/v1/patients/p-nobody/data").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (s, erased) = call(&app, &key, Method::DELETE, "/v1/patients/p-erase/data").await;
    assert_eq!(s, StatusCode::OK, "{erased}");
    assert_eq!(erased["patient_id"], "p-erase");
    // Their own messages, and the staff notices of their booking that name them.
    assert!(
        erased["messages"].as_u64().unwrap() > patient_messages as u64,
        "{erased}"
    );
    assert!(
        erased["cancelled"].as_u64().unwrap() >= 1,
        "the scheduled one: {erased}"
    );
    assert_eq!(erased["events"], 1);
    assert_eq!(erased["preferences"], true);
    assert_eq!(erased["notifications"], 1, "the provider's booking notice");

    // No row of the database names the patient any more, the staff inbox included;
    // only the audit log and the erasure record keep the clinic's pseudonymous id.
    let left = traces(
        &app,
        &[PHONE, NAME, EMAIL, "p-erase"],
        &["audit_log", "erased_patients"],
    )
    .await;
    assert!(left.is_empty(), "PHI left after the erasure: {left:?}");
    // The other patient is whole, in their messages and in the staff inbox.
    assert!(!traces(&app, &["Omar Nasser"], &["notifications"])
        .await
        .is_empty());
    assert!(
        !traces(&app, &["Omar Nasser"], &["messages", "clinic_events"])
            .await
            .is_empty()
    );
    let o = get(&app, &format!("/v1/messages/{other}")).await;
    assert!(o["redacted_at"].is_null() && o["patient_id"] == "p-other");

    let q = get(&app, &format!("/v1/messages/{queued}")).await;
    assert_eq!(q["status"], "cancelled");
    assert_eq!(q["body"], Value::Null);
    assert_eq!(q["patient_id"], Value::Null);
    assert!(!q["redacted_at"].is_null());
    let stats_after = get(&app, "/v1/messages/stats?days=7").await;
    assert_eq!(
        stats_after["total"], stats_before["total"],
        "rows stay as counts"
    );
    assert_eq!(stats_after["by_channel"], stats_before["by_channel"]);
    let (_, prefs) = call(&app, &key, Method::GET, "/v1/patients/p-erase/preferences").await;
    assert_eq!(prefs["stored"], false);
    let events = get(&app, "/v1/events?appointment_id=apt-1").await;
    assert_eq!(
        events["items"][0]["payload"],
        json!({"redacted": true}),
        "{events}"
    );

    let entries = audit(&app, "action=patient.erased").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["target"], "patient:p-erase");
    assert!(entries[0]["actor"]
        .as_str()
        .unwrap()
        .starts_with("api_key:"));
    assert_eq!(entries[0]["detail"]["messages"], erased["messages"]);
    assert!(!entries[0].to_string().contains(PHONE));

    // Idempotent: a repeat answers 200 with nothing left to erase, and is audited.
    let (s, again) = call(&app, &key, Method::DELETE, "/v1/patients/p-erase/data").await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(
        (
            again["messages"].clone(),
            again["events"].clone(),
            again["preferences"].clone()
        ),
        (json!(0), json!(0), json!(false))
    );
    assert_eq!(audit(&app, "action=patient.erased").await.len(), 2);
}

#[tokio::test]
async fn reads_of_patient_data_are_audited_with_the_actor() {
    let clock = Arc::new(ManualClock::new(t("2026-11-02T09:00:00Z")));
    let app = hub(&clock, |_| {}).await;
    let id = send(&app, &app.api_key, text_to(PHONE, Some("p-read"))).await;
    let desk = app.token("desk-7", "front_desk").await;

    let (s, _) = call(&app, &desk, Method::GET, &format!("/v1/messages/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    let viewed = audit(&app, "action=read.message").await;
    assert_eq!(viewed.len(), 1, "{viewed:?}");
    assert_eq!(viewed[0]["actor"], "user:desk-7");
    assert_eq!(viewed[0]["target"], format!("message:{id}"));
    assert_eq!(viewed[0]["detail"]["patient_id"], "p-read");

    let (s, _) = call(
        &app,
        &app.api_key,
        Method::GET,
        &format!("/v1/messages?q={}", "%2B966501112233"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let listed = audit(&app, "action=read.messages").await;
    assert_eq!(listed.len(), 1);
    assert!(listed[0]["actor"].as_str().unwrap().starts_with("api_key:"));
    assert_eq!(listed[0]["detail"]["rows"], 1);
    assert_eq!(listed[0]["detail"]["filter"]["q_set"], true);
    assert!(
        !listed[0].to_string().contains("501112233"),
        "the search text is PHI"
    );

    let (s, _) = call(
        &app,
        &desk,
        Method::GET,
        "/v1/messages/export.csv?patient_id=p-read",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let exported = audit(&app, "action=read.export").await;
    assert_eq!(exported.len(), 1);
    assert_eq!(exported[0]["actor"], "user:desk-7");
    assert_eq!(exported[0]["detail"]["rows"], 1);
    assert_eq!(exported[0]["detail"]["filter"]["patient_id"], "p-read");

    let (s, _) = call(&app, &desk, Method::GET, "/v1/patients/p-read/preferences").await;
    assert_eq!(s, StatusCode::OK);
    let viewed = audit(&app, "action=read.patient").await;
    assert_eq!(viewed.len(), 1);
    assert_eq!(viewed[0]["target"], "patient:p-read");
    assert_eq!(viewed[0]["actor"], "user:desk-7");

    // The clinic-event log names patients too: its reads are audited.
    let (s, _) = call(
        &app,
        &app.api_key,
        Method::GET,
        "/v1/events?appointment_id=apt-9",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let listed = audit(&app, "action=read.events").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0]["actor"].as_str().unwrap().starts_with("api_key:"));
    assert_eq!(listed[0]["detail"]["appointment_id"], "apt-9");

    // Another tenant's message is a 404 and no read happened.
    let (s, _) = call(
        &app,
        &desk,
        Method::GET,
        &format!("/v1/messages/{}", uuid::Uuid::new_v4()),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(audit(&app, "action=read.message").await.len(), 1);
}

/// A staff user's whole inbox as they see it (`status=all`: read ones too), newest first.
async fn inbox(app: &TestApp, token: &str) -> Vec<Value> {
    let (s, b) = app
        .get_user(token, "/v1/me/notifications?status=all&limit=200")
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["items"].as_array().unwrap().clone()
}

async fn unread(app: &TestApp, token: &str) -> Value {
    app.get_user(token, "/v1/me/unread-count").await.1["unread"].clone()
}

/// A user token of the tenant that `key` belongs to.
async fn token_with(app: &TestApp, key: &str, user: &str, role: &str) -> String {
    let (s, b) = post_as(
        app,
        key,
        "/v1/tokens",
        json!({"user_id": user, "role": role}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["token"].as_str().unwrap().to_owned()
}

/// A notification published through the API about `patient` (the contract's
/// `related` naming a patient), its texts naming them.
async fn publish_about(app: &TestApp, key: &str, user: &str, patient: &str, name: &str) -> String {
    let body = json!({
        "user_id": user, "title": format!("Lab results for {name}"),
        "message": format!("Call {name} back about the results"),
        "type": "warning", "category": "lab.results",
        "related": {"type": "patient", "id": patient},
        "link": format!("/patients/{patient}/results"),
        "data": {"patient_name": name}
    });
    let (s, b) = post_as(app, key, "/v1/notifications", body).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["notifications"][0]["id"].as_str().unwrap().to_owned()
}

fn by_id<'a>(items: &'a [Value], id: &str) -> &'a Value {
    items
        .iter()
        .find(|n| n["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {items:?}"))
}

/// What stays of a redacted notification: everything the inbox counts and orders by.
fn kept(n: &Value) -> Value {
    json!([
        n["id"],
        n["user_id"],
        n["type"],
        n["category"],
        n["is_read"],
        n["read_at"],
        n["created_at"]
    ])
}

fn assert_notification_redacted(n: &Value, before: &Value) {
    assert_eq!(n["title"], "[redacted]", "{n}");
    assert_eq!(n["message"], "[redacted]", "{n}");
    assert_eq!(n["data"], json!({"redacted": true}), "{n}");
    assert_eq!(n["link"], Value::Null, "{n}");
    assert_eq!(kept(n), kept(before), "counts and order stay");
}

#[tokio::test]
async fn erasing_a_patient_redacts_the_staff_notifications_that_name_them() {
    let clock = Arc::new(ManualClock::new(t("2026-11-02T09:00:00Z")));
    let app = hub(&clock, |_| {}).await;
    let key = app.api_key.clone();
    // Bookings of P and of Q: their provider dr-1 gets "New appointment: <name>".
    let (s, ev) = app
        .post_key(
            "/v1/events",
            booking("ev-1", "apt-1", "p-erase", NAME, PHONE, EMAIL),
        )
        .await;
    assert_eq!(
        (s, ev["notifications"].clone()),
        (StatusCode::ACCEPTED, json!(1)),
        "{ev}"
    );
    let q = booking(
        "ev-2",
        "apt-2",
        "p-other",
        "Omar Nasser",
        "+966507770000",
        "o@example.com",
    );
    assert_eq!(app.post_key("/v1/events", q).await.0, StatusCode::ACCEPTED);
    // Published through the API about P and about Q, to a front-desk user.
    let about_p = publish_about(&app, &key, "desk-1", "p-erase", NAME).await;
    let about_q = publish_about(&app, &key, "desk-1", "p-other", "Omar Nasser").await;
    // Another clinic whose patient has the same id: a different person, untouched.
    let other = TenantId::parse("clinic-b").unwrap();
    let (key_b, _) = app.create_tenant(&other, "B").await;
    let elsewhere = publish_about(&app, &key_b.key, "desk-1", "p-erase", "Layla Haddad").await;
    let booking_b = booking(
        "ev-1",
        "apt-1",
        "p-erase",
        "Layla Haddad",
        "+966501234567",
        "l@example.com",
    );
    let (s, b) = post_as(&app, &key_b.key, "/v1/events", booking_b).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");

    let (dr, desk) = (
        app.token("dr-1", "provider").await,
        app.token("desk-1", "front_desk").await,
    );
    let desk_b = token_with(&app, &key_b.key, "desk-1", "front_desk").await;
    let dr_b = token_with(&app, &key_b.key, "dr-1", "provider").await;
    // One of them read: its read state must survive the erasure.
    let (s, _) = app
        .post_user(&desk, &format!("/v1/me/notifications/{about_p}/read"))
        .await;
    assert_eq!(s, StatusCode::OK);
    let before_dr = inbox(&app, &dr).await;
    let before_desk = inbox(&app, &desk).await;
    let notice_p = before_dr
        .iter()
        .find(|n| n["title"].as_str().unwrap().contains(NAME));
    let notice_p = notice_p
        .unwrap_or_else(|| panic!("no notice names P: {before_dr:?}"))
        .clone();
    let notice_q = before_dr
        .iter()
        .find(|n| n["title"].as_str().unwrap().contains("Omar"));
    let notice_q = notice_q.unwrap().clone();
    let unread_before = (unread(&app, &dr).await, unread(&app, &desk).await);
    let tenant_b_before = (inbox(&app, &desk_b).await, inbox(&app, &dr_b).await);
    assert_eq!((tenant_b_before.0.len(), tenant_b_before.1.len()), (1, 1));

    let (s, erased) = call(&app, &key, Method::DELETE, "/v1/patients/p-erase/data").await;
    assert_eq!(s, StatusCode::OK, "{erased}");
    assert_eq!(
        erased["notifications"], 2,
        "the booking notice and the published one: {erased}"
    );

    let dr_now = inbox(&app, &dr).await;
    let desk_now = inbox(&app, &desk).await;
    assert_eq!(
        (dr_now.len(), desk_now.len()),
        (before_dr.len(), before_desk.len())
    );
    let n = by_id(&dr_now, notice_p["id"].as_str().unwrap());
    assert_notification_redacted(n, &notice_p);
    assert_eq!(
        n["related"], notice_p["related"],
        "the appointment is not the patient"
    );
    let n = by_id(&desk_now, &about_p);
    assert_notification_redacted(n, by_id(&before_desk, &about_p));
    assert_eq!(n["is_read"], true);
    assert_eq!(n["related"], Value::Null, "it named the patient");
    // Q's notifications and the other clinic's are whole.
    assert_eq!(by_id(&dr_now, notice_q["id"].as_str().unwrap()), &notice_q);
    assert_eq!(by_id(&desk_now, &about_q), by_id(&before_desk, &about_q));
    assert_eq!(
        (inbox(&app, &desk_b).await, inbox(&app, &dr_b).await),
        tenant_b_before
    );
    assert!(by_id(&tenant_b_before.0, &elsewhere)["title"]
        .as_str()
        .unwrap()
        .contains("Layla"));
    assert_eq!(
        (unread(&app, &dr).await, unread(&app, &desk).await),
        unread_before
    );
    // No database row names P any more (the other clinic's Layla is another person).
    let left = traces(&app, &[PHONE, NAME, EMAIL], &[]).await;
    assert!(left.is_empty(), "PHI left after the erasure: {left:?}");

    let entries = audit(&app, "action=patient.erased").await;
    assert_eq!(entries[0]["detail"]["notifications"], 2, "{entries:?}");
    let (s, again) = call(&app, &key, Method::DELETE, "/v1/patients/p-erase/data").await;
    assert_eq!(
        (s, again["notifications"].clone()),
        (StatusCode::OK, json!(0)),
        "{again}"
    );
    // The OpenAPI document describes the count.
    let (_, api) = split(app.http.get(app.url("/openapi.json")).send().await.unwrap()).await;
    let erasure = &api["components"]["schemas"]["ErasureWire"]["properties"];
    assert!(erasure["notifications"].is_object(), "{erasure}");
}
