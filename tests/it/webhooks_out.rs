//! Webhooks to clinic systems through a real hub and real receivers: local HTTP
//! servers that verify every Standard Webhooks signature with their own HMAC (not the
//! hub's code), fail on cue, and record what they got. Backoff runs on a `ManualClock`.
//! On SQLite, and on PostgreSQL with `TIDINGS_TEST_BACKEND=postgres`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode as AxumStatus};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::Utc;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;
use tidings::domain::ids::TenantId;
use tidings::service::clock::{Clock, ManualClock};

use crate::support::{assert_error, spawn_app_with, spawn_app_with_clock, split, TestApp};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) webhook_id: String,
    pub(crate) timestamp: i64,
    pub(crate) body: Value,
    /// The signature checked against the endpoint's secret by this test's own HMAC.
    pub(crate) verified: bool,
    pub(crate) answered: u16,
}

/// A receiver on 127.0.0.1: answers each request with the next scripted status (200
/// when the script is empty) after `delay`, recording it.
pub(crate) struct Receiver {
    pub(crate) url: String,
    pub(crate) got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
    secret: Arc<Mutex<String>>,
    _server: tokio::task::JoinHandle<()>,
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` with the key of `whsec_<base64>`.
pub(crate) fn verify(secret: &str, id: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    let Ok(key) = BASE64.decode(secret.trim_start_matches("whsec_")) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
    header.split(' ').any(|sig| sig == expected)
}

impl Receiver {
    pub(crate) async fn start(delay: Duration) -> Self {
        let got = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let secret = Arc::new(Mutex::new(String::new()));
        let (g, sc, se) = (got.clone(), script.clone(), secret.clone());
        let handler = move |headers: HeaderMap, body: axum::body::Bytes| {
            let (g, sc, se) = (g.clone(), sc.clone(), se.clone());
            async move {
                // Recorded on arrival, before the answer: a request cut off by a crash
                // of the hub still counts as received.
                let h = |k: &str| {
                    headers
                        .get(k)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                let (id, ts, sig) = (
                    h("webhook-id"),
                    h("webhook-timestamp"),
                    h("webhook-signature"),
                );
                let verified = verify(&se.lock().unwrap(), &id, &ts, &body, &sig);
                let answered = sc.lock().unwrap().pop_front().unwrap_or(200);
                g.lock().unwrap().push(Received {
                    webhook_id: id,
                    timestamp: ts.parse().unwrap_or_default(),
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    verified,
                    answered,
                });
                tokio::time::sleep(delay).await;
                AxumStatus::from_u16(answered).unwrap()
            }
        };
        let app = axum::Router::new().route("/hook", axum::routing::post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            url,
            got,
            script,
            secret,
            _server: server,
        }
    }

    pub(crate) fn answer(&self, statuses: &[u16]) {
        self.script.lock().unwrap().extend(statuses);
    }

    pub(crate) fn set_secret(&self, secret: &str) {
        *self.secret.lock().unwrap() = secret.to_owned();
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `n` requests arrived.
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the receiver got {} of {n} requests: {got:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn key_call(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    call(app, &app.api_key, method, path, body).await
}

async fn call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    split(req.send().await.unwrap()).await
}

/// Creates an endpoint for `receiver` and tells it the secret; returns the endpoint id.
async fn endpoint(app: &TestApp, receiver: &Receiver, types: &[&str]) -> String {
    let (s, e) = key_call(
        app,
        Method::POST,
        "/v1/webhook-endpoints",
        Some(json!({"url": receiver.url, "event_types": types})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    receiver.set_secret(e["secret"].as_str().unwrap());
    e["id"].as_str().unwrap().to_owned()
}

/// A free-text SMS to an ad-hoc number, due now: the `log` provider marks it `sent`.
async fn send_sms(app: &TestApp) -> String {
    let (s, b) = key_call(
        app,
        Method::POST,
        "/v1/messages",
        Some(json!({"to": "+966501234567", "body": "Your results are ready", "kind": "results"})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    b["id"].as_str().unwrap().to_owned()
}

fn fast(c: &mut tidings::config::Config) {
    c.webhooks.allow_internal_targets = true;
    c.webhooks.poll_interval_ms = 20;
    c.outbound.poll_interval_ms = 20;
}

async fn deliveries(app: &TestApp, endpoint: &str) -> Vec<Value> {
    let (s, l) = key_call(
        app,
        Method::GET,
        &format!("/v1/webhook-endpoints/{endpoint}/deliveries"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{l}");
    l["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_events_reach_the_endpoints_that_listen_and_only_those() {
    let app = spawn_app_with(fast).await;
    let messages = Receiver::start(Duration::ZERO).await;
    let reads = Receiver::start(Duration::ZERO).await;
    let (s, e) = key_call(
        &app,
        Method::POST,
        "/v1/webhook-endpoints",
        Some(json!({"url": messages.url, "event_types": ["message.status_changed", "message.failed"]})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    let secret = e["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{e}");
    assert_eq!(
        (e["enabled"].clone(), e["url"].clone()),
        (json!(true), json!(messages.url))
    );
    messages.set_secret(secret);
    let msg_endpoint = e["id"].as_str().unwrap().to_owned();
    // The secret is shown once: never in a GET or a list.
    let (_, got) = key_call(
        &app,
        Method::GET,
        &format!("/v1/webhook-endpoints/{msg_endpoint}"),
        None,
    )
    .await;
    assert!(got.get("secret").is_none(), "{got}");
    assert_eq!(
        got["event_types"],
        json!(["message.status_changed", "message.failed"])
    );
    let (_, list) = key_call(&app, Method::GET, "/v1/webhook-endpoints", None).await;
    assert!(!list.to_string().contains(secret));
    let read_endpoint = endpoint(&app, &reads, &["notification.read"]).await;

    // A message goes out (log provider): one `message.status_changed`, signed.
    let id = send_sms(&app).await;
    let got = messages.wait_for(1).await;
    let r = &got[0];
    assert!(
        r.verified,
        "the signature verifies with the endpoint's secret: {r:?}"
    );
    assert!(r.webhook_id.starts_with("msg_") && !r.webhook_id.contains('.'));
    assert!((r.timestamp - Utc::now().timestamp()).abs() < 60);
    assert_eq!(r.body["type"], "message.status_changed");
    assert_eq!(
        r.body["data"],
        json!({"message_id": id, "channel": "sms", "kind": "results",
               "status": "sent", "previous_status": "sending"})
    );
    assert!(r.body["timestamp"].is_string());
    assert!(
        !r.body.to_string().contains("Your results"),
        "no message text leaves the hub"
    );

    // A read: only the opted-in endpoint hears of it.
    let token = app.token("u-7", "front_desk").await;
    let n = app.publish_to("u-7", "hello").await;
    let (s, _) = app
        .post_user(&token, &format!("/v1/me/notifications/{n}/read"))
        .await;
    assert_eq!(s, StatusCode::OK);
    let got = reads.wait_for(1).await;
    assert!(got[0].verified);
    assert_eq!(got[0].body["type"], "notification.read");
    assert_eq!(
        got[0].body["data"],
        json!({"user_id": "u-7", "notification_ids": [n]})
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        messages.received().len(),
        1,
        "no read events for the message endpoint"
    );
    assert_eq!(
        reads.received().len(),
        1,
        "no message events for the read endpoint"
    );

    // The delivery log: one succeeded delivery, answered 200.
    let log = deliveries(&app, &msg_endpoint).await;
    assert_eq!(log.len(), 1);
    assert_eq!(
        (
            log[0]["status"].clone(),
            log[0]["attempts"].clone(),
            log[0]["last_response_status"].clone()
        ),
        (json!("succeeded"), json!(1), json!(200))
    );
    assert_eq!(log[0]["webhook_id"], json!(got_id(&messages)));
    assert_eq!(log[0]["payload"]["data"]["message_id"], json!(id));
    assert_eq!(deliveries(&app, &read_endpoint).await.len(), 1);

    // Another tenant sees none of it.
    let other = tidings::domain::ids::TenantId::parse("clinic-b").unwrap();
    let (key, _) = app.create_tenant(&other, "B").await;
    let (s, b) = call(
        &app,
        &key.key,
        Method::GET,
        &format!("/v1/webhook-endpoints/{msg_endpoint}"),
        None,
    )
    .await;
    assert_error(s, &b, 404, "not_found");
    let (s, b) = call(
        &app,
        &key.key,
        Method::DELETE,
        &format!("/v1/webhook-endpoints/{msg_endpoint}"),
        None,
    )
    .await;
    assert_error(s, &b, 404, "not_found");
    let (_, l) = call(&app, &key.key, Method::GET, "/v1/webhook-endpoints", None).await;
    assert_eq!(l["items"], json!([]));
}

fn got_id(r: &Receiver) -> String {
    r.received()[0].webhook_id.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_endpoints_are_refused_with_the_field_and_change_nothing() {
    let app = spawn_app_with(fast).await;
    let cases = [
        (
            json!({"url": "ftp://x.example/", "event_types": ["message.failed"]}),
            "url",
        ),
        (
            json!({"url": "https://u:p@x.example/", "event_types": ["message.failed"]}),
            "url",
        ),
        (
            json!({"url": "https://x.example/", "event_types": []}),
            "event_types",
        ),
        (
            json!({"url": "https://x.example/", "event_types": ["message.failed", "order.paid"]}),
            "event_types[1]",
        ),
        (
            json!({"url": "https://x.example/", "event_types": ["message.failed", "message.failed"]}),
            "event_types[1]",
        ),
    ];
    for (body, field) in cases {
        let (s, b) = key_call(
            &app,
            Method::POST,
            "/v1/webhook-endpoints",
            Some(body.clone()),
        )
        .await;
        assert_error(s, &b, 422, "invalid");
        assert_eq!(b["error"]["field"], field, "{body}");
    }
    let (s, b) = key_call(
        &app,
        Method::POST,
        "/v1/webhook-endpoints",
        Some(json!({"url": "https://x.example/"})),
    )
    .await;
    assert_eq!(s.as_u16() / 100, 4, "{b}");
    let (_, l) = key_call(&app, Method::GET, "/v1/webhook-endpoints", None).await;
    assert_eq!(l["items"], json!([]), "nothing was created");
    // patient.* types are accepted (nothing emits them yet).
    let (s, b) = key_call(&app, Method::POST, "/v1/webhook-endpoints",
        Some(json!({"url": "https://x.example/", "event_types": ["patient.replied", "patient.opted_out"], "enabled": false}))).await;
    assert_eq!(
        (s, b["enabled"].clone()),
        (StatusCode::CREATED, json!(false)),
        "{b}"
    );
    // A PUT with a bad body changes nothing.
    let id = b["id"].as_str().unwrap();
    let (s, _) = key_call(
        &app,
        Method::PUT,
        &format!("/v1/webhook-endpoints/{id}"),
        Some(json!({"url": "http//bad", "event_types": ["message.failed"]})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, e) = key_call(
        &app,
        Method::GET,
        &format!("/v1/webhook-endpoints/{id}"),
        None,
    )
    .await;
    assert_eq!(e["url"], "https://x.example/");
    // front_desk may not manage endpoints.
    let desk = app.token("d-1", "front_desk").await;
    let (s, b) = call(&app, &desk, Method::GET, "/v1/webhook-endpoints", None).await;
    assert_error(s, &b, 403, "forbidden");
}

/// One tenant's endpoints are capped (each multiplies its events on the workers every
/// tenant shares); the cap is per tenant, and deleting one makes room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_has_a_bounded_number_of_endpoints() {
    let app = spawn_app_with(fast).await;
    let body = |i: usize| {
        Some(json!({"url": format!("https://h{i}.example/hook"),
                    "event_types": ["message.failed"]}))
    };
    let mut ids = Vec::new();
    for i in 0..20 {
        let (s, b) = key_call(&app, Method::POST, "/v1/webhook-endpoints", body(i)).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        ids.push(b["id"].as_str().unwrap().to_owned());
    }
    let (s, b) = key_call(&app, Method::POST, "/v1/webhook-endpoints", body(20)).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["error"]["code"], "endpoint_limit", "{b}");
    let (s, b) = key_call(&app, Method::GET, "/v1/webhook-endpoints?limit=100", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["items"].as_array().unwrap().len(), 20, "nothing written");
    // Another tenant has its own room.
    let other = TenantId::parse("clinic-b").unwrap();
    let (key_b, _) = app.create_tenant(&other, "B").await;
    let (s, b) = call(
        &app,
        &key_b.key,
        Method::POST,
        "/v1/webhook-endpoints",
        body(0),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let path = format!("/v1/webhook-endpoints/{}", ids[0]);
    let (s, _) = key_call(&app, Method::DELETE, &path, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = key_call(&app, Method::POST, "/v1/webhook-endpoints", body(20)).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_targets_are_refused_unless_the_config_allows_them() {
    let app = spawn_app_with(|c| {
        c.webhooks.poll_interval_ms = 20;
        c.outbound.poll_interval_ms = 20;
    })
    .await;
    let receiver = Receiver::start(Duration::ZERO).await;
    let id = endpoint(&app, &receiver, &["message.status_changed"]).await;
    send_sms(&app).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = deliveries(&app, &id).await;
        if log.first().is_some_and(|d| d["attempts"] == json!(1)) {
            break log;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no attempt recorded: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(log[0]["status"], "pending", "retried later: {log:?}");
    assert_eq!(log[0]["last_response_status"], Value::Null);
    assert!(
        log[0]["last_error"].as_str().unwrap().contains("internal"),
        "{log:?}"
    );
    assert!(receiver.received().is_empty(), "nothing reached 127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_is_retried_on_the_schedule_with_the_same_id_then_recovers() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = spawn_app_with_clock(fast, Some(clock.clone() as Arc<dyn Clock>)).await;
    let receiver = Receiver::start(Duration::ZERO).await;
    receiver.answer(&[500, 503]);
    let id = endpoint(&app, &receiver, &["message.status_changed"]).await;
    send_sms(&app).await;
    let first = receiver.wait_for(1).await;
    assert_eq!(first[0].answered, 500);
    // Not before its time: the next attempt is 5 s (+ up to 20 % jitter) later.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 1);
    let log = wait_attempts(&app, &id, 1).await;
    assert_eq!(
        (
            log[0]["status"].clone(),
            log[0]["last_response_status"].clone()
        ),
        (json!("pending"), json!(500))
    );
    let next: chrono::DateTime<Utc> = log[0]["next_attempt_at"].as_str().unwrap().parse().unwrap();
    let wait = next - clock.now();
    assert!(
        wait >= chrono::Duration::seconds(5) && wait <= chrono::Duration::seconds(6),
        "{wait}"
    );
    clock.advance(chrono::Duration::seconds(7));
    let second = receiver.wait_for(2).await;
    assert_eq!(second[1].answered, 503);
    let log = wait_attempts(&app, &id, 2).await;
    let next: chrono::DateTime<Utc> = log[0]["next_attempt_at"].as_str().unwrap().parse().unwrap();
    let wait = next - clock.now();
    assert!(
        wait >= chrono::Duration::minutes(5) && wait <= chrono::Duration::minutes(6),
        "{wait}"
    );
    clock.advance(chrono::Duration::minutes(7));
    let all = receiver.wait_for(3).await;
    assert_eq!(
        all.iter().map(|r| r.answered).collect::<Vec<_>>(),
        vec![500, 503, 200]
    );
    assert!(
        all.iter()
            .all(|r| r.verified && r.webhook_id == all[0].webhook_id),
        "same webhook-id: {all:?}"
    );
    assert!(
        all[2].timestamp > all[0].timestamp,
        "each attempt has its own timestamp"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let delivery = loop {
        let log = deliveries(&app, &id).await;
        if log[0]["status"] == "succeeded" {
            break log[0].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{log:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let did = delivery["id"].as_str().unwrap();
    let (s, d) = key_call(
        &app,
        Method::GET,
        &format!("/v1/webhook-endpoints/{id}/deliveries/{did}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    let codes: Vec<Value> = d["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["response_status"].clone())
        .collect();
    assert_eq!(codes, vec![json!(500), json!(503), json!(200)]);
    // The endpoint's run of failures ended with the success.
    let (_, e) = key_call(
        &app,
        Method::GET,
        &format!("/v1/webhook-endpoints/{id}"),
        None,
    )
    .await;
    assert_eq!(
        (
            e["consecutive_failures"].clone(),
            e["failing_since"].clone()
        ),
        (json!(0), Value::Null)
    );

    // Manual replay: the same webhook-id once more; a second replay while pending is 409.
    let path = format!("/v1/webhook-endpoints/{id}/deliveries/{did}/replay");
    let (s, r) = key_call(&app, Method::POST, &path, None).await;
    assert_eq!(
        (s, r["status"].clone()),
        (StatusCode::ACCEPTED, json!("pending")),
        "{r}"
    );
    let again = receiver.wait_for(4).await;
    assert_eq!(again[3].webhook_id, all[0].webhook_id);
    assert!(again[3].verified);
    let (s, b) = key_call(
        &app,
        Method::POST,
        &format!(
            "/v1/webhook-endpoints/{id}/deliveries/{}/replay",
            uuid::Uuid::new_v4()
        ),
        None,
    )
    .await;
    assert_error(s, &b, 404, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_disabled_after_the_run_of_failures_or_a_410_and_admins_are_told() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = spawn_app_with_clock(
        |c| {
            fast(c);
            c.webhooks.disable_after_failed_deliveries = 1;
        },
        Some(clock.clone() as Arc<dyn Clock>),
    )
    .await;
    let (s, b) = key_call(
        &app,
        Method::PUT,
        "/v1/users/boss",
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // Always 503: the first attempt fails, the second comes after the 24 h window: failed,
    // which is the run of one that disables it.
    let down = Receiver::start(Duration::ZERO).await;
    down.answer(&[503; 10]);
    let id = endpoint(&app, &down, &["message.status_changed"]).await;
    send_sms(&app).await;
    down.wait_for(1).await;
    clock.advance(chrono::Duration::hours(25));
    down.wait_for(2).await;
    let endpoint_now = wait_disabled(&app, &id).await;
    assert_eq!(endpoint_now["disabled_reason"], "failures");
    let log = deliveries(&app, &id).await;
    assert_eq!(
        (log[0]["status"].clone(), log[0]["attempts"].clone()),
        (json!("failed"), json!(2))
    );
    // Minted now: the manual clock moved a day, past any earlier token's life.
    let admin = app.token("boss", "admin").await;
    let note = wait_notification(&app, &admin, 1).await;
    assert_eq!(note[0]["title"], "Webhook endpoint disabled");
    assert_eq!(note[0]["category"], "webhook.endpoint_disabled");
    assert_eq!(
        note[0]["related"],
        json!({"type": "webhook_endpoint", "id": id})
    );
    // Disabled: new events are not queued for it.
    send_sms(&app).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(deliveries(&app, &id).await.len(), 1);

    // 410 Gone disables at once.
    let gone = Receiver::start(Duration::ZERO).await;
    gone.answer(&[410]);
    let id = endpoint(&app, &gone, &["message.status_changed"]).await;
    send_sms(&app).await;
    gone.wait_for(1).await;
    assert_eq!(wait_disabled(&app, &id).await["disabled_reason"], "gone");
    assert_eq!(wait_notification(&app, &admin, 2).await.len(), 2);
    // Enabled again (PUT): a clean run, and events flow.
    let (s, e) = key_call(
        &app,
        Method::PUT,
        &format!("/v1/webhook-endpoints/{id}"),
        Some(json!({"url": gone.url, "event_types": ["message.status_changed"], "enabled": true})),
    )
    .await;
    assert_eq!(
        (s, e["enabled"].clone(), e["disabled_reason"].clone()),
        (StatusCode::OK, json!(true), Value::Null)
    );
    send_sms(&app).await;
    let got = gone.wait_for(2).await;
    assert_eq!(got[1].answered, 200);
}

/// The endpoint's log once its newest delivery has `n` attempts recorded.
async fn wait_attempts(app: &TestApp, endpoint: &str, n: u64) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let log = deliveries(app, endpoint).await;
        if log.first().is_some_and(|d| d["attempts"] == json!(n)) {
            return log;
        }
        assert!(tokio::time::Instant::now() < deadline, "{log:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_disabled(app: &TestApp, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, e) = key_call(
            app,
            Method::GET,
            &format!("/v1/webhook-endpoints/{id}"),
            None,
        )
        .await;
        if e["enabled"] == json!(false) {
            return e;
        }
        assert!(tokio::time::Instant::now() < deadline, "not disabled: {e}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_notification(app: &TestApp, token: &str, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, l) = app.get_user(token, "/v1/me/notifications").await;
        let items = l["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= n {
            return items;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "admins not told: {l}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn every_webhook_endpoint_path_is_in_the_openapi_document() {
    let app = spawn_app_with(|_| {}).await;
    let (s, api) = split(app.http.get(app.url("/openapi.json")).send().await.unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    for path in [
        "/v1/webhook-endpoints",
        "/v1/webhook-endpoints/{id}",
        "/v1/webhook-endpoints/{id}/deliveries",
        "/v1/webhook-endpoints/{id}/deliveries/{delivery_id}",
        "/v1/webhook-endpoints/{id}/deliveries/{delivery_id}/replay",
    ] {
        assert!(api["paths"][path].is_object(), "openapi lacks {path}");
    }
}

async fn start_hub(config: &std::path::Path, db: &str) -> tokio::process::Child {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env("TIDINGS_LISTEN", "127.0.0.1:0")
        .env("TIDINGS_DATABASE_URL", db)
        .env("TIDINGS_DEV_TENANT", "clinic-a")
        .env("TIDINGS_DEV_API_KEY", "tdk_webhook_crash_key_0123456789")
        .env(
            "TIDINGS_DEV_JWT_SECRET",
            "webhook-crash-jwt-secret-0123456789",
        )
        .env("TIDINGS_LOG_LEVEL", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("listening: ") {
                return;
            }
        }
        panic!("hub exited before listening");
    })
    .await
    .expect("hub starts");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

/// Every delivery of the endpoint, by id: (webhook-id, status).
async fn delivery_states(
    store: &Arc<dyn tidings::store::Store>,
    tenant: &tidings::domain::ids::TenantId,
    endpoint: uuid::Uuid,
) -> std::collections::HashMap<uuid::Uuid, (String, tidings::store::webhooks::DeliveryStatus)> {
    let mut out = std::collections::HashMap::new();
    let mut before = None;
    loop {
        let page = store
            .list_deliveries(
                tenant,
                endpoint,
                tidings::store::PageRequest { limit: 200, before },
            )
            .await
            .unwrap();
        for d in page.items {
            out.insert(d.id, (d.event_id, d.status));
        }
        match page.next {
            Some(n) => before = Some(n),
            None => return out,
        }
    }
}

/// The crash test: the real binary SIGKILLed while deliveries are in flight, restarted
/// on the same database. Nothing is lost (every event reaches the receiver, every
/// delivery ends succeeded), and only deliveries in flight at the kill arrive twice,
/// each time with the same `webhook-id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_killed_mid_delivery_loses_nothing_and_repeats_only_in_flight_ids() {
    use std::collections::{HashMap, HashSet};
    use tidings::domain::webhook::{EventType, SigningSecret};
    use tidings::store::webhooks::{DeliveryStatus, EndpointDraft};
    const EVENTS: usize = 300;
    let receiver = Receiver::start(Duration::from_millis(150)).await;
    let dir = tempfile::tempdir().unwrap();
    let pg = match std::env::var("TIDINGS_TEST_BACKEND").as_deref() {
        Ok("postgres") => {
            let admin =
                crate::support::postgres_admin_url("webhook_crash", true).expect("required");
            Some(crate::support::PgTestDb::create(&admin).await)
        }
        _ => None,
    };
    let db = match &pg {
        Some(pg) => pg.url.clone(),
        None => format!("sqlite://{}/crash.db", dir.path().display()),
    };
    let config = dir.path().join("tidings.toml");
    std::fs::write(
        &config,
        r#"
[outbound]
concurrency = 32
poll_interval_ms = 20

[webhooks]
concurrency = 8
poll_interval_ms = 20
claim_batch = 8
lease_secs = 6
timeout_secs = 1
allow_internal_targets = true
"#,
    )
    .unwrap();
    let mut hub = start_hub(&config, &db).await;
    let store = tidings::store::open(&tidings::store::StoreOptions {
        url: db.clone(),
        max_connections: 2,
        acquire_timeout: Duration::from_secs(10),
        statement_timeout: Duration::from_secs(10),
    })
    .await
    .unwrap();
    let tenant = tidings::domain::ids::TenantId::parse("clinic-a").unwrap();
    let secret = SigningSecret::generate();
    receiver.set_secret(secret.expose());
    let endpoint = uuid::Uuid::new_v4();
    store
        .create_endpoint(
            &tenant,
            endpoint,
            &EndpointDraft {
                url: receiver.url.clone(),
                event_types: vec![EventType::MessageStatusChanged],
                enabled: true,
            },
            &secret,
            Utc::now(),
        )
        .await
        .unwrap();
    let messages: Vec<_> = (0..EVENTS)
        .map(|i| crate::outbound_dispatch::sms(&format!("+9665{i:08}"), Utc::now()))
        .collect();
    crate::outbound_dispatch::enqueue_into(&store, &tenant, messages, Utc::now()).await;

    receiver.wait_for(EVENTS / 4).await;
    hub.kill().await.unwrap(); // SIGKILL
    let _ = hub.wait().await;
    let at_kill = delivery_states(&store, &tenant, endpoint).await;
    let in_flight: HashSet<String> = at_kill
        .values()
        .filter(|(_, s)| *s == DeliveryStatus::Delivering)
        .map(|(id, _)| id.clone())
        .collect();
    let before = receiver.received().len();
    assert!(before < EVENTS, "killed too late to test anything");

    let mut hub = start_hub(&config, &db).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let states = delivery_states(&store, &tenant, endpoint).await;
        let done = states.len() == EVENTS
            && states
                .values()
                .all(|(_, s)| *s == DeliveryStatus::Succeeded)
            && store.pending_messages().await.unwrap() == 0;
        if done {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "deliveries left unsettled after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    hub.kill().await.unwrap();

    let states = delivery_states(&store, &tenant, endpoint).await;
    let stored: HashSet<String> = states.values().map(|(id, _)| id.clone()).collect();
    assert_eq!(
        stored.len(),
        EVENTS,
        "one event per message, each its own webhook-id"
    );
    let got = receiver.received();
    assert!(got.iter().all(|r| r.verified), "every request is signed");
    let mut per_id: HashMap<String, usize> = HashMap::new();
    let mut message_of: HashMap<String, HashSet<String>> = HashMap::new();
    for r in &got {
        *per_id.entry(r.webhook_id.clone()).or_default() += 1;
        message_of
            .entry(r.body["data"]["message_id"].as_str().unwrap().to_owned())
            .or_default()
            .insert(r.webhook_id.clone());
    }
    let received: HashSet<String> = per_id.keys().cloned().collect();
    assert_eq!(received, stored, "nothing lost, nothing invented");
    assert_eq!(message_of.len(), EVENTS);
    assert!(
        message_of.values().all(|ids| ids.len() == 1),
        "a repeated event carries the same webhook-id"
    );
    let repeated: Vec<&String> = per_id
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id)
        .collect();
    let duplicates: usize = per_id.values().map(|n| n - 1).sum();
    println!(
        "webhook crash test: {before} requests before the kill, {} in flight, {duplicates} repeated",
        in_flight.len()
    );
    assert!(
        duplicates <= in_flight.len(),
        "{duplicates} repeats > {} in flight",
        in_flight.len()
    );
    assert!(
        repeated.iter().all(|id| in_flight.contains(*id)),
        "only deliveries in flight at the kill may repeat: {repeated:?}"
    );
    drop(pg);
}
