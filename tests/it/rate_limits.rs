//! Request quotas (per API key, per tenant) and failed-authentication throttling
//! per client address: 429 `rate_limited` with `Retry-After`.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

/// Sends `n` requests one after another; returns their statuses and the first 429.
async fn burst(
    app: &TestApp,
    n: usize,
    credential: &str,
) -> (Vec<StatusCode>, Option<(String, serde_json::Value)>) {
    let mut statuses = Vec::new();
    let mut first_429 = None;
    for _ in 0..n {
        let res = app
            .http
            .get(app.url("/v1/users"))
            .bearer_auth(credential)
            .send()
            .await
            .unwrap();
        let retry_after = res
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let (s, b) = split(res).await;
        if s == StatusCode::TOO_MANY_REQUESTS && first_429.is_none() {
            first_429 = Some((retry_after.expect("429 carries Retry-After"), b));
        }
        statuses.push(s);
    }
    (statuses, first_429)
}

/// A rate of one a minute: nothing refills during the test, however slow the machine.
fn slow(c: &mut tidings::config::Config) {
    c.rate_limits.per_key_per_sec = 1;
    c.rate_limits.per_tenant_per_sec = 1;
}

#[tokio::test]
async fn an_api_key_over_its_quota_gets_429_with_retry_after() {
    // A burst of 5 at 1/s: 30 requests back to back go over it unless each took
    // most of a second (they take milliseconds).
    let app = spawn_app_with(|c| {
        slow(c);
        c.rate_limits.per_key_burst = 5;
        c.rate_limits.per_tenant_burst = 1000;
    })
    .await;
    let (statuses, first) = burst(&app, 30, &app.api_key).await;
    assert!(statuses[..5].iter().all(|s| *s == 200), "{statuses:?}");
    let (retry_after, body) = first.expect("over the quota");
    assert_error(StatusCode::TOO_MANY_REQUESTS, &body, 429, "rate_limited");
    let secs: u64 = retry_after.parse().unwrap();
    assert!((1..=2).contains(&secs), "Retry-After {secs}");
    // Another key of the same tenant has its own bucket.
    let other = another_key(&app).await;
    assert_eq!(burst(&app, 1, &other).await.0, [200]);
}

#[tokio::test]
async fn a_tenant_over_its_quota_gets_429_whichever_credential() {
    let app = spawn_app_with(|c| {
        slow(c);
        c.rate_limits.per_key_burst = 1000;
        c.rate_limits.per_tenant_burst = 6;
    })
    .await;
    let other = another_key(&app).await;
    let token = app.token("boss", "admin").await; // the first of the six
    let (a, _) = burst(&app, 3, &app.api_key).await;
    let (b, _) = burst(&app, 2, &other).await;
    assert!(a.iter().chain(&b).all(|s| *s == 200), "{a:?} {b:?}");
    let (c, first) = burst(&app, 20, &token).await;
    assert!(c.contains(&StatusCode::TOO_MANY_REQUESTS), "{c:?}");
    assert_error(
        StatusCode::TOO_MANY_REQUESTS,
        &first.unwrap().1,
        429,
        "rate_limited",
    );
}

#[tokio::test]
async fn failed_authentications_throttle_the_address_even_for_a_good_key() {
    // Three failures a minute at most: the fourth is answered 429, and so is a
    // good key from the same address until a retry has been earned (~20 s here).
    let app = spawn_app_with(|c| {
        c.rate_limits.failed_auth_per_min = 3;
        c.rate_limits.failed_auth_burst = 3;
    })
    .await;
    let (statuses, first) = burst(&app, 4, "tdk_guessing_0123456789").await;
    assert_eq!(statuses[..3], [401, 401, 401], "{statuses:?}");
    assert_eq!(statuses[3], 429);
    let (retry_after, body) = first.unwrap();
    assert_error(StatusCode::TOO_MANY_REQUESTS, &body, 429, "rate_limited");
    assert!(retry_after.parse::<u64>().unwrap() >= 5, "{retry_after}");
    let (good, _) = burst(&app, 1, &app.api_key).await;
    assert_eq!(good, [429], "a blocked address cannot go on guessing");
}

#[tokio::test]
async fn the_defaults_let_a_busy_clinic_through() {
    // 300 publishes back to back with one key, and 300 reads with a user token:
    // well inside the defaults (bursts of 2,000 per key and 4,000 per tenant).
    let app = spawn_app().await;
    for i in 0..300 {
        let (s, b) = app
            .publish(json!({"user_id": "u-1", "title": format!("n{i}"), "message": "m"}))
            .await;
        assert_eq!(s, 201, "{b}");
    }
    let token = app.token("u-1", "provider").await;
    for _ in 0..300 {
        assert_eq!(app.get_user(&token, "/v1/me/unread-count").await.0, 200);
    }
}

async fn another_key(app: &TestApp) -> String {
    let tenant = tidings::domain::ids::TenantId::parse(&app.tenant).unwrap();
    let key = tidings::service::auth::generate_api_key();
    app.app_store
        .insert_api_key(&tenant, &key.prefix, &key.hash, chrono::Utc::now())
        .await
        .unwrap();
    key.key
}
