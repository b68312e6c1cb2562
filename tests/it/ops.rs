use std::time::Duration;

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn health_readiness_metrics_and_openapi() {
    let app = spawn_app().await;
    let res = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let (s, ready) = split(app.http.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(s, 200);
    assert_eq!(ready["database"], "ok");
    assert_eq!(ready["bus"], "memory");
    let token = app.token("u-1", "provider").await;
    let mut ws = app.ws(&token, None).await;
    ws.expect("hello").await;
    app.publish_to("u-1", "x").await;
    ws.expect("notification").await;
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "tidings_connections",
        "tidings_frames_pushed_total",
        "tidings_publish_seconds_bucket",
    ] {
        assert!(metrics.contains(name), "missing {name} in:\n{metrics}");
    }
    let (s, api) = split(app.http.get(app.url("/openapi.json")).send().await.unwrap()).await;
    assert_eq!(s, 200);
    for path in [
        "/v1/notifications",
        "/v1/users",
        "/v1/users/{user_id}",
        "/v1/tokens",
        "/v1/me/notifications",
        "/v1/me/unread-count",
        "/v1/me/notifications/{id}/read",
        "/v1/me/notifications/read-all",
        "/v1/me/notifications/{id}",
        "/v1/me/preferences",
        "/v1/me/categories",
        "/v1/ws",
        "/v1/sse",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(api["paths"][path].is_object(), "openapi lacks {path}");
    }
    let (s, b) = split(
        app.http
            .get(app.url("/v1/nothing-here"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &b, 404, "not_found");
}

#[tokio::test]
async fn cors_allows_configured_origins_only() {
    let app = spawn_app_with(|c| c.cors_origins = vec!["https://clinic.example".into()]).await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/v1/me/notifications"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "authorization")
            .send()
    };
    let ok = preflight("https://clinic.example").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://clinic.example"
    );
    let no = preflight("https://evil.example").await.unwrap();
    assert!(no.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn retention_deletes_only_old_read_or_archived_notifications() {
    let app = spawn_app().await;
    let read = app.publish_to("u-1", "read").await;
    let archived = app.publish_to("u-1", "archived").await;
    app.publish_to("u-1", "unread").await;
    let token = app.token("u-1", "provider").await;
    app.post_user(&token, &format!("/v1/me/notifications/{read}/read"))
        .await;
    app.http
        .delete(app.url(&format!("/v1/me/notifications/{archived}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let store = app.app_store.clone();
    let past = chrono::Utc::now() - chrono::Duration::days(1);
    assert_eq!(
        store.purge_before(past, 100).await.unwrap(),
        0,
        "nothing is old enough yet"
    );
    let future = chrono::Utc::now() + chrono::Duration::seconds(5);
    assert_eq!(store.purge_before(future, 100).await.unwrap(), 2);
    let (_, list) = app.get_user(&token, "/v1/me/notifications").await;
    let titles: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].clone())
        .collect();
    assert_eq!(titles, vec![json!("unread")]);
    let (_, n) = app.get_user(&token, "/v1/me/unread-count").await;
    assert_eq!(n["unread"], 1);
}

/// The embedded store checkpoints its WAL in the background (never in a commit):
/// the database file itself grows once committed pages are copied back into it.
#[tokio::test]
async fn sqlite_wal_is_checkpointed_in_the_background() {
    let app = spawn_app().await;
    let Some(path) = app.database_url.strip_prefix("sqlite://") else {
        return; // PostgreSQL run: nothing to check.
    };
    let db = std::path::PathBuf::from(path);
    let wal = db.with_extension("db-wal");
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let before = size(&db);
    let users: Vec<String> = (0..1000).map(|i| format!("u-{i}")).collect();
    for round in 0..3 {
        let (s, b) = app
            .publish(json!({"user_ids": users, "title": format!("round {round}"), "message": "m"}))
            .await;
        assert_eq!(s, 201, "{b}");
    }
    assert!(size(&wal) > 0, "the commits are in the WAL first");
    let deadline = tokio::time::Instant::now() + WAIT;
    while size(&db) <= before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no checkpoint within {WAIT:?}: database file still {before} bytes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
