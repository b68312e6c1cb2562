//! Issue #11, finding 5: eight concurrent 10,000-recipient bulk sends of one tenant
//! must not hold up another tenant's publishes (they got 503 after 3 s: every bulk
//! held the write side — SQLite's single writer — for its whole streamed
//! transaction). Real hub, real HTTP, the configured backend.
//!
//! The bound asserted here is generous: 2 s, on a debug build (unoptimised SQLite:
//! a 500-message chunk transaction took 100–300 ms; chunks are 100 now) on a shared 2-core machine,
//! with other tests running beside it. Measured there: worst 625 ms and 712 ms (load
//! average 12). Before the fix the publishes waited past the 3 s acquire timeout
//! (503), which any bound below 3 s catches. The 100 ms target is measured by the
//! load suite on a release build. The test prints its figures
//! (`cargo test --test it bulk_fairness -- --nocapture`).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tidings::domain::ids::TenantId;

use crate::support::*;

const BULKS: usize = 8;
const RECIPIENTS: usize = 10_000;
/// A send time in the future: the queue worker leaves these messages alone, so the
/// test measures the bulks' writes, not 80,000 log-provider sends.
const LATER: &str = "2099-01-01T09:00:00Z";

fn template() -> Value {
    json!({"name": "recall", "channel": "sms", "kind": "appointment_reminder",
           "body_en": "Hi {patient_name}, please book your recall visit.",
           "body_ar": "مرحبا {patient_name}، يرجى حجز موعد المراجعة.",
           "variables": ["patient_name"], "is_active": true})
}

fn bulk_body() -> String {
    let recipients: Vec<Value> = (0..RECIPIENTS)
        .map(|i| json!({"to": format!("+9665{i:08}"), "variables": {"patient_name": format!("P{i}")}}))
        .collect();
    json!({"template": "recall", "recipients": recipients, "send_at": LATER}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_bulks_of_one_tenant_do_not_hold_up_another_tenants_publishes() {
    // All eight wait for their turn (by default four of a tenant may wait; more get 429),
    // and the last may wait for seven others: on a loaded 2-core debug build that can
    // exceed the 30 s request timeout, which is not what this test measures.
    let app = spawn_app_with(|c| {
        c.outbound.bulk_waiting_per_tenant = BULKS;
        c.server.request_timeout_secs = 300;
    })
    .await;
    let (s, b) = app.post_key("/v1/templates", template()).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let tenant_b = TenantId::parse("clinic-b").unwrap();
    let (key_b, _) = app.create_tenant(&tenant_b, "B").await;
    let body = bulk_body();

    // The bulks wait for their turn before the hub reads their bodies, so a waiting
    // client's 1.5 MB sits unacknowledged behind a zero window: reqwest's default
    // TCP_USER_TIMEOUT (30 s) aborts such a connection with ETIMEDOUT when the wait is
    // long (a loaded 2-core machine). The clients the hub serves set no such timeout.
    let uploader = reqwest::Client::builder()
        .tcp_user_timeout(None)
        .build()
        .unwrap();
    let started = Instant::now();
    let bulks: Vec<_> = (0..BULKS)
        .map(|_| {
            let req = uploader
                .post(app.url("/v1/messages/bulk"))
                .bearer_auth(&app.api_key)
                .header("content-type", "application/json")
                .body(body.clone());
            tokio::spawn(async move {
                let (s, b) = split(req.send().await.unwrap()).await;
                (s, b, started.elapsed())
            })
        })
        .collect();

    // Tenant B publishes steadily while the bulks run.
    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    while !bulks.iter().all(|b| b.is_finished()) {
        let t = Instant::now();
        let res = app
            .http
            .post(app.url("/v1/notifications"))
            .bearer_auth(&key_b.key)
            .json(&json!({"user_id": "nurse-b", "title": "lab results in", "message": "m"}))
            .send()
            .await
            .unwrap();
        let (s, b) = split(res).await;
        latencies.push(t.elapsed());
        if s != StatusCode::CREATED {
            failures.push((s, b));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut done = Vec::new();
    for b in bulks {
        done.push(b.await.unwrap());
    }
    let total = started.elapsed();

    for (s, b, _) in &done {
        assert_eq!(*s, StatusCode::ACCEPTED, "{b}");
        assert_eq!(b["queued"], RECIPIENTS, "{b}");
    }
    latencies.sort();
    let worst = *latencies.last().unwrap();
    let p50 = latencies[latencies.len() / 2];
    let finishes: Vec<u128> = done.iter().map(|(_, _, at)| at.as_millis()).collect();
    println!(
        "bulk fairness: {BULKS} × {RECIPIENTS} recipients in {} ms (bulks done at {finishes:?} ms); \
         tenant B: {} publishes, p50 {} ms, worst {} ms, failures {}",
        total.as_millis(),
        latencies.len(),
        p50.as_millis(),
        worst.as_millis(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "tenant B's publishes failed: {failures:?}"
    );
    // Enough publishes overlapped the bulks for the worst case to mean something.
    assert!(latencies.len() >= 5, "only {} publishes", latencies.len());
    assert!(
        worst < Duration::from_secs(2),
        "tenant B waited {} ms behind tenant A's bulks",
        worst.as_millis()
    );
}
