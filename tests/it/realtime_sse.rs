use std::time::Duration;

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn sse_streams_the_same_events_with_ids_and_headers() {
    let app = spawn_app().await;
    let token = app.token("u-1", "provider").await;
    let mut sse = app.sse(&token, None).await;
    assert_eq!(sse.headers["content-type"], "text/event-stream");
    assert_eq!(sse.headers["x-accel-buffering"], "no");
    assert_eq!(sse.expect("hello").await.data["user_id"], "u-1");
    let id = app.publish_to("u-1", "hello sse").await;
    let ev = sse.expect("notification").await;
    assert_eq!(ev.id.as_deref(), Some(id.as_str()));
    assert_eq!(ev.data["title"], "hello sse");
    assert_eq!(sse.expect("unread_count").await.data["unread"], 1);
    let (_, _) = app
        .post_user(&token, &format!("/v1/me/notifications/{id}/read"))
        .await;
    assert_eq!(sse.expect("read").await.data["ids"], json!([id]));
    assert_eq!(sse.expect("unread_count").await.data["unread"], 0);
}

#[tokio::test]
async fn sse_resumes_from_last_event_id_header_or_query() {
    let app = spawn_app().await;
    let token = app.token("u-1", "provider").await;
    let first = app.publish_to("u-1", "first").await;
    let second = app.publish_to("u-1", "second").await;
    let third = app.publish_to("u-1", "third").await;
    let mut sse = app.sse(&token, Some(&first)).await;
    sse.expect("hello").await;
    assert_eq!(
        sse.expect("notification").await.id.as_deref(),
        Some(second.as_str())
    );
    assert_eq!(
        sse.expect("notification").await.id.as_deref(),
        Some(third.as_str())
    );

    let mut by_query = app
        .sse(&format!("{token}&last_event_id={second}"), None)
        .await;
    by_query.expect("hello").await;
    assert_eq!(
        by_query.expect("notification").await.id.as_deref(),
        Some(third.as_str())
    );
    let res = app
        .http
        .get(app.url(&format!("/v1/sse?token={token}")))
        .header("Last-Event-ID", "bogus")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn sse_sends_comment_heartbeats() {
    let app = spawn_app_with(|c| c.hub.sse_heartbeat_secs = 1).await;
    let token = app.token("u-1", "provider").await;
    let mut sse = app.sse(&token, None).await;
    sse.expect("hello").await;
    let ev = sse
        .next_event(Duration::from_secs(3))
        .await
        .expect("a heartbeat");
    assert_eq!(ev.event, ":");
    assert_eq!(ev.data, json!("ping"));
}
