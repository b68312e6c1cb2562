//! Priority and escalation (issue #16) on a real hub: `priority` round trips and its
//! 422s, critical notifications pushed live through mutes and quiet hours, and
//! escalation steps fired by the worker when a `ManualClock` passes their time —
//! cancelled by a read, fired once by two nodes on one database, and fired by a new
//! node after a restart. Runs on SQLite, and on PostgreSQL with
//! `TIDINGS_TEST_BACKEND=postgres`.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tidings::config::Config;
use tidings::domain::ids::{NotificationId, TenantId};
use tidings::service::clock::ManualClock;
use tidings::store::escalations::EscalationState;

use crate::support::*;

/// 23:00 UTC: inside a 22:00–07:00 UTC quiet window.
fn late_evening() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 23, 0, 0).unwrap()
}

/// The worker looks every 20 ms, so a test waits for it in milliseconds.
fn fast(c: &mut Config) {
    c.escalation.poll_interval_ms = 20;
}

async fn clocked(tweak: impl FnOnce(&mut Config)) -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(late_evening()));
    let app = spawn_app_with_clock(
        |c| {
            fast(c);
            tweak(c);
        },
        Some(clock.clone()),
    )
    .await;
    (app, clock)
}

async fn put_user(app: &TestApp, user: &str, role: &str) {
    let res = app
        .http
        .put(app.url(&format!("/v1/users/{user}")))
        .bearer_auth(&app.api_key)
        .json(&json!({"role": role}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// Every notification of `user`, newest first.
async fn inbox(app: &TestApp, user: &str) -> Vec<Value> {
    let token = app.token(user, "front_desk").await;
    let (status, page) = app
        .get_user(&token, "/v1/me/notifications?status=all")
        .await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

/// Waits until `user` has `n` notifications (the worker fires on its own poll).
async fn wait_for_inbox(app: &TestApp, user: &str, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let items = inbox(app, user).await;
        if items.len() >= n {
            assert_eq!(items.len(), n, "{items:?}");
            return items;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{user} has {} notifications, want {n}",
            items.len()
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

/// Lets the worker poll several times, then checks `user` still has exactly `n`.
async fn still(app: &TestApp, user: &str, n: usize) {
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    assert_eq!(inbox(app, user).await.len(), n, "{user}");
}

async fn steps(app: &TestApp, chain: &str) -> Vec<EscalationState> {
    app.app_store
        .escalation_steps(
            &TenantId::parse(&app.tenant).unwrap(),
            NotificationId::parse(chain).unwrap(),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.state)
        .collect()
}

/// Publishes to `u-1`, escalated to the front desk after 300 s and to `u-3` after 600 s.
async fn publish_escalated(app: &TestApp, title: &str) -> String {
    let (status, body) = app
        .publish(json!({
            "user_id": "u-1", "title": title, "message": "m", "priority": "high",
            "escalate": [
                {"after_s": 300, "to": {"role": "front_desk"}},
                {"after_s": 600, "to": {"user_id": "u-3"}}
            ]
        }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["notifications"][0]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn priority_round_trips_everywhere_and_anything_else_is_422() {
    let app = spawn_app().await;
    let token = app.token("u-1", "provider").await;
    let mut ws = app.ws(&token, None).await;
    ws.expect("hello").await;
    for p in ["low", "normal", "high", "critical"] {
        let (s, b) = app
            .publish(json!({"user_id": "u-1", "title": p, "message": "m", "priority": p}))
            .await;
        assert_eq!(s, 201, "{b}");
        let live = ws.expect("notification").await;
        assert_eq!(
            (live["title"].as_str(), live["priority"].as_str()),
            (Some(p), Some(p))
        );
        assert_eq!(live["escalated_from"], Value::Null);
        ws.expect("unread_count").await;
    }
    let id = app.publish_to("u-1", "no priority").await;
    assert_eq!(ws.expect("notification").await["priority"], "normal");
    let (_, page) = app.get_user(&token, "/v1/me/notifications").await;
    let listed: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["priority"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["normal", "critical", "high", "normal", "low"]);
    // Replay (resume) and SSE carry it too.
    let mut sse = app.sse(&token, Some("n0000000000000003")).await;
    sse.expect("hello").await;
    let replayed = sse.expect("notification").await;
    assert_eq!(replayed.data["priority"], "critical");

    for bad in [
        json!("urgent"),
        json!("CRITICAL"),
        json!(3),
        json!(""),
        json!({}),
    ] {
        let (s, e) = app
            .publish(json!({"user_id": "u-1", "title": "t", "message": "m", "priority": bad}))
            .await;
        assert_error(s, &e, 422, "invalid");
        assert_eq!(e["error"]["field"], "priority", "{bad}");
    }
    let (_, count) = app.get_user(&token, "/v1/me/unread-count").await;
    assert_eq!(count["unread"], 5, "a refused publish stores nothing");
    assert!(id.starts_with('n'));
}

#[tokio::test]
async fn escalate_is_validated_strictly_and_errors_name_the_path() {
    let app = spawn_app().await;
    let step = |after: Value, to: Value| json!({"after_s": after, "to": to});
    let user = json!({"user_id": "u-2"});
    let cases = [
        (json!([]), "escalate"),
        (json!(vec![step(json!(1), user.clone()); 6]), "escalate"),
        (json!([step(json!(0), user.clone())]), "escalate[0].after_s"),
        (
            json!([step(json!(-5), user.clone())]),
            "escalate[0].after_s",
        ),
        (
            json!([step(json!(604_801), user.clone())]),
            "escalate[0].after_s",
        ),
        (
            json!([step(json!(1.5), user.clone())]),
            "escalate[0].after_s",
        ),
        (
            json!([step(json!("300"), user.clone())]),
            "escalate[0].after_s",
        ),
        (
            json!([
                step(json!(300), user.clone()),
                step(json!(300), user.clone())
            ]),
            "escalate[1].after_s",
        ),
        (
            json!([
                step(json!(300), user.clone()),
                step(json!(200), user.clone())
            ]),
            "escalate[1].after_s",
        ),
        (json!([{"to": user.clone()}]), "escalate[0].after_s"),
        (json!([step(json!(300), json!({}))]), "escalate[0].to"),
        (
            json!([step(json!(300), json!({"user_id": "u-2", "role": "admin"}))]),
            "escalate[0].to",
        ),
        (
            json!([step(json!(300), json!({"role": "janitor"}))]),
            "escalate[0].to.role",
        ),
        (
            json!([step(json!(300), json!({"user_id": ""}))]),
            "escalate[0].to.user_id",
        ),
        (
            json!([step(json!(300), json!({"team": "x"}))]),
            "escalate[0].to",
        ),
        (json!([{"after_s": 300}]), "escalate[0].to"),
    ];
    for (escalate, field) in cases {
        let (s, e) = app
            .publish(json!({"user_id": "u-1", "title": "t", "message": "m", "escalate": escalate}))
            .await;
        assert_error(s, &e, 422, "invalid");
        assert!(
            e["error"]["field"].as_str().unwrap().starts_with(field),
            "{escalate}: {e}"
        );
    }
    assert!(inbox(&app, "u-1").await.is_empty(), "nothing was stored");
    // The bounds themselves are accepted.
    let five: Vec<Value> = (1..=5)
        .map(|i| step(json!(i * 100_000 + 4_801), user.clone()))
        .collect();
    let (s, b) = app
        .publish(json!({"user_id": "u-1", "title": "t", "message": "m", "escalate": five}))
        .await;
    assert_eq!(s, 201, "{b}");
    let chain = b["notifications"][0]["id"].as_str().unwrap();
    assert_eq!(steps(&app, chain).await, [EscalationState::Pending; 5]);
}

#[tokio::test]
async fn critical_is_pushed_live_in_a_muted_category_and_in_quiet_hours() {
    let (app, _clock) = clocked(|_| {}).await;
    let token = app.token("u-1", "provider").await;
    let res = app
        .http
        .put(app.url("/v1/me/preferences"))
        .bearer_auth(&token)
        .json(&json!({"muted_categories": ["billing"], "quiet_hours": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut ws = app.ws(&token, None).await;
    ws.expect("hello").await;
    let publish = |category: Option<&str>, priority: &str| {
        app.publish(json!({"user_id": "u-1", "title": priority, "message": "m",
                           "category": category, "priority": priority}))
    };
    // Muted: high stays in the inbox (count only), critical is pushed.
    assert_eq!(publish(Some("billing"), "high").await.0, 201);
    ws.expect("unread_count").await;
    assert_eq!(publish(Some("billing"), "critical").await.0, 201);
    assert_eq!(ws.expect("notification").await["title"], "critical");
    ws.expect("unread_count").await;

    // Quiet hours (22:00–07:00 UTC, and the clock says 23:00): the same.
    let res = app
        .http
        .put(app.url("/v1/me/preferences"))
        .bearer_auth(&token)
        .json(&json!({"muted_categories": [],
                      "quiet_hours": {"start": "22:00", "end": "07:00", "tz": "UTC"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(publish(None, "normal").await.0, 201);
    ws.expect("unread_count").await;
    assert_eq!(publish(None, "low").await.0, 201);
    ws.expect("unread_count").await;
    assert_eq!(publish(None, "critical").await.0, 201);
    let live = ws.expect("notification").await;
    assert_eq!(
        (&live["title"], &live["priority"]),
        (&json!("critical"), &json!("critical"))
    );
    ws.expect("unread_count").await;
    ws.expect_silence(StdDuration::from_millis(200)).await;

    // A resume replays the two critical ones only; the inbox has all five.
    let mut again = app.ws(&token, Some("n0000000000000000")).await;
    again.expect("hello").await;
    for _ in 0..2 {
        assert_eq!(again.expect("notification").await["priority"], "critical");
    }
    again.expect_silence(StdDuration::from_millis(200)).await;
    assert_eq!(inbox(&app, "u-1").await.len(), 5);
}

#[tokio::test]
async fn steps_fire_at_their_time_to_their_recipients_until_the_chain_is_read() {
    let (app, clock) = clocked(|_| {}).await;
    put_user(&app, "fd-1", "front_desk").await;
    put_user(&app, "fd-2", "front_desk").await;
    let fd = app.token("fd-1", "front_desk").await;
    let mut ws = app.ws(&fd, None).await;
    ws.expect("hello").await;
    let original = publish_escalated(&app, "Patient arrived").await;

    clock.advance(Duration::seconds(299));
    still(&app, "fd-1", 0).await;
    clock.advance(Duration::seconds(1));
    let copies = wait_for_inbox(&app, "fd-1", 1).await;
    assert_eq!(copies[0]["escalated_from"], original.as_str());
    assert_eq!(copies[0]["title"], "Patient arrived");
    assert_eq!(copies[0]["priority"], "high");
    assert_eq!(
        wait_for_inbox(&app, "fd-2", 1).await[0]["escalated_from"],
        original.as_str()
    );
    // Pushed live as a publish is.
    let live = ws.expect("notification").await;
    assert_eq!(live["escalated_from"], original.as_str());
    assert_eq!(ws.expect("unread_count").await["unread"], 1);
    assert_eq!(
        steps(&app, &original).await,
        [EscalationState::Fired, EscalationState::Pending]
    );

    // The front desk reads its copy (over the WebSocket): step 2 never fires.
    let copy = copies[0]["id"].as_str().unwrap();
    ws.send(json!({"type": "mark_read", "ids": [copy]})).await;
    assert_eq!(ws.expect("read").await["ids"], json!([copy]));
    assert_eq!(ws.expect("unread_count").await["unread"], 0);
    assert_eq!(
        steps(&app, &original).await,
        [EscalationState::Fired, EscalationState::Cancelled]
    );
    clock.advance(Duration::seconds(3600));
    still(&app, "u-3", 0).await;
    // The original itself stays unread: acknowledging a chain reads nobody else's copy.
    assert_eq!(inbox(&app, "u-1").await[0]["is_read"], false);
}

#[tokio::test]
async fn the_last_step_fires_when_nobody_reads() {
    let (app, clock) = clocked(|_| {}).await;
    let original = publish_escalated(&app, "Lab critical value").await;
    clock.advance(Duration::seconds(600));
    // No front desk user: step 1 fires to nobody; step 2 reaches u-3.
    let copies = wait_for_inbox(&app, "u-3", 1).await;
    assert_eq!(copies[0]["escalated_from"], original.as_str());
    assert_eq!(
        steps(&app, &original).await,
        [EscalationState::Fired, EscalationState::Fired]
    );
    still(&app, "u-3", 1).await;
}

#[tokio::test]
async fn reading_the_original_before_the_first_step_cancels_every_step() {
    let (app, clock) = clocked(|_| {}).await;
    put_user(&app, "fd-1", "front_desk").await;
    let by_rest = publish_escalated(&app, "read by REST").await;
    let by_read_all = publish_escalated(&app, "read by read-all").await;
    let token = app.token("u-1", "provider").await;
    let (s, _) = app
        .post_user(&token, &format!("/v1/me/notifications/{by_rest}/read"))
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        steps(&app, &by_rest).await,
        [EscalationState::Cancelled, EscalationState::Cancelled]
    );
    assert_eq!(
        steps(&app, &by_read_all).await,
        [EscalationState::Pending, EscalationState::Pending],
        "a read acknowledges its own chain only"
    );
    let (s, _) = app.post_user(&token, "/v1/me/notifications/read-all").await;
    assert_eq!(s, 200);
    assert_eq!(
        steps(&app, &by_read_all).await,
        [EscalationState::Cancelled, EscalationState::Cancelled]
    );
    clock.advance(Duration::seconds(3600));
    still(&app, "fd-1", 0).await;
    still(&app, "u-3", 0).await;
}

#[tokio::test]
async fn a_pending_step_survives_a_restart_and_the_new_node_fires_it() {
    let dir = tempfile::tempdir().unwrap();
    let pg = shared_database().await;
    let db = match &pg {
        Some(db) => db.url.clone(),
        None => format!("sqlite://{}/restart.db", dir.path().display()),
    };
    let clock = Arc::new(ManualClock::new(late_evening()));
    let url = db.clone();
    let mut first = spawn_app_with_clock(
        |c| {
            fast(c);
            c.database_url = url;
        },
        Some(clock.clone()),
    )
    .await;
    let original = publish_escalated(&first, "before the restart").await;
    let (key, secret) = (first.api_key.clone(), first.jwt_secret.clone());
    first.shutdown();
    first.stopped.take().unwrap().await.unwrap().unwrap();
    drop(first);

    clock.advance(Duration::seconds(600));
    let second = spawn_app_with_clock(
        |c| {
            fast(c);
            c.database_url = db;
            c.dev_api_key = key;
            c.dev_jwt_secret = secret;
        },
        Some(clock.clone()),
    )
    .await;
    let copies = wait_for_inbox(&second, "u-3", 1).await;
    assert_eq!(copies[0]["escalated_from"], original.as_str());
    assert_eq!(copies[0]["title"], "before the restart");
}

#[tokio::test]
async fn two_nodes_on_one_database_fire_each_step_once() {
    let dir = tempfile::tempdir().unwrap();
    let pg = shared_database().await;
    let db = match &pg {
        Some(db) => db.url.clone(),
        None => format!("sqlite://{}/shared.db", dir.path().display()),
    };
    let clock = Arc::new(ManualClock::new(late_evening()));
    let node = |first: bool| {
        let db = db.clone();
        move |c: &mut Config| {
            fast(c);
            c.database_url = db;
            c.escalation.claim_batch = 3; // several claims per pass, on both nodes
            if !first {
                // The first node created the tenant.
                c.dev_api_key.clear();
                c.dev_jwt_secret.clear();
            }
        }
    };
    let a = spawn_app_with_clock(node(true), Some(clock.clone())).await;
    let mut b = spawn_app_with_clock(node(false), Some(clock.clone())).await;
    b.api_key = a.api_key.clone();
    put_user(&a, "fd-1", "front_desk").await;
    let n = 30;
    let mut originals = Vec::new();
    for i in 0..n {
        originals.push(publish_escalated(&a, &format!("chain {i}")).await);
    }
    clock.advance(Duration::seconds(600));
    let fd = wait_for_inbox(&b, "fd-1", n).await;
    let u3 = wait_for_inbox(&a, "u-3", n).await;
    still(&a, "fd-1", n).await;
    still(&b, "u-3", n).await;
    for copies in [fd, u3] {
        let mut from: Vec<&str> = copies
            .iter()
            .map(|c| c["escalated_from"].as_str().unwrap())
            .collect();
        from.sort_unstable();
        let mut want: Vec<&str> = originals.iter().map(String::as_str).collect();
        want.sort_unstable();
        assert_eq!(from, want, "one copy per chain and step");
    }
}

/// With `TIDINGS_TEST_BACKEND=postgres`, a fresh PostgreSQL database the test's nodes
/// share; else `None` (they share an SQLite file).
async fn shared_database() -> Option<PgTestDb> {
    match std::env::var("TIDINGS_TEST_BACKEND").as_deref() {
        Ok("postgres") => {
            let admin = postgres_admin_url("escalation", true).expect("required");
            Some(PgTestDb::create(&admin).await)
        }
        _ => None,
    }
}

#[tokio::test]
async fn the_openapi_document_describes_priority_and_escalation() {
    let app = spawn_app().await;
    let (s, api) = split(app.http.get(app.url("/openapi.json")).send().await.unwrap()).await;
    assert_eq!(s, 200);
    let schemas = &api["components"]["schemas"];
    for (schema, field) in [
        ("PublishBody", "priority"),
        ("PublishBody", "escalate"),
        ("EscalateStepBody", "after_s"),
        ("EscalateStepBody", "to"),
        ("EscalateToBody", "user_id"),
        ("EscalateToBody", "role"),
        ("NotificationWire", "priority"),
        ("NotificationWire", "escalated_from"),
    ] {
        assert!(
            schemas[schema]["properties"][field].is_object(),
            "openapi: {schema}.{field} missing in {}",
            schemas[schema]
        );
    }
}

/// A clinic event about patient `p-77` with provider `dr-1`.
fn clinic_event(id: &str, kind: &str, at: DateTime<Utc>) -> Value {
    let iso = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({
        "id": id, "type": format!("appointment.{kind}"), "occurred_at": iso(at),
        "appointment": {
            "id": "apt-1", "number": "APT-1", "start_at": iso(at + Duration::hours(1)),
            "provider": {"id": "dr-1", "name": "Dr. Sara"},
            "patient": {"id": "p-77", "name": "Ahmed Al-Saud", "phone": "+966501234567"},
            "financially_cleared": true, "consent_verified": true
        }
    })
}

#[tokio::test]
async fn an_arrival_unread_by_the_provider_reaches_the_front_desk_after_ten_minutes() {
    let (app, clock) = clocked(|_| {}).await;
    put_user(&app, "fd-1", "front_desk").await;
    put_user(&app, "dr-1", "provider").await;
    for (id, kind) in [("e1", "booked"), ("e2", "arrived")] {
        let (s, b) = app
            .post_key("/v1/events", clinic_event(id, kind, late_evening()))
            .await;
        assert_eq!(s, 202, "{b}");
    }
    let provider = inbox(&app, "dr-1").await;
    let arrival = &provider[0];
    assert_eq!(arrival["priority"], "high");
    assert!(arrival["title"].as_str().unwrap().contains("Ahmed Al-Saud"));
    assert_eq!(
        provider[1]["priority"], "normal",
        "booked keeps the default"
    );
    clock.advance(Duration::seconds(599));
    still(&app, "fd-1", 0).await;
    clock.advance(Duration::seconds(1));
    let copy = &wait_for_inbox(&app, "fd-1", 1).await[0];
    assert_eq!(copy["escalated_from"], arrival["id"]);
    assert_eq!(copy["title"], arrival["title"]);
    assert_eq!(copy["priority"], "high");

    // The copy names the patient as the original does: an erasure redacts both.
    let (s, b) = split(
        app.http
            .delete(app.url("/v1/patients/p-77/data"))
            .bearer_auth(&app.api_key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    for user in ["dr-1", "fd-1"] {
        for n in inbox(&app, user).await {
            assert_eq!(n["title"], "[redacted]", "{user}: {n}");
        }
    }
}
