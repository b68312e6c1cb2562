use std::time::Duration;

use serde_json::json;

use crate::support::*;

const QUIET: Duration = Duration::from_millis(300);

#[tokio::test]
async fn three_tabs_get_each_notification_once_and_another_user_gets_none() {
    let app = spawn_app().await;
    let token = app.token("u-1", "provider").await;
    let other = app.token("u-2", "provider").await;
    let mut tabs = [
        app.ws(&token, None).await,
        app.ws(&token, None).await,
        app.ws(&token, None).await,
    ];
    let mut stranger = app.ws(&other, None).await;
    for t in tabs.iter_mut() {
        let hello = t.expect("hello").await;
        assert_eq!(hello["user_id"], "u-1");
        assert_eq!(hello["unread"], 0);
        assert!(hello["connection_id"].is_string());
    }
    stranger.expect("hello").await;

    let id = app.publish_to("u-1", "hi").await;
    for t in tabs.iter_mut() {
        let n = t.expect("notification").await;
        assert_eq!(n["id"], json!(id));
        assert_eq!(n["title"], "hi");
        assert_eq!(t.expect("unread_count").await["unread"], 1);
        t.expect_silence(QUIET).await;
    }
    stranger.expect_silence(QUIET).await;

    // Marking read in one tab updates every tab.
    tabs[0]
        .send(json!({"type": "mark_read", "ids": [id]}))
        .await;
    for t in tabs.iter_mut() {
        assert_eq!(t.expect("read").await["ids"], json!([id]));
        assert_eq!(t.expect("unread_count").await["unread"], 0);
    }
    // So does a REST call.
    app.publish_to("u-1", "two").await;
    app.publish_to("u-1", "three").await;
    for t in tabs.iter_mut() {
        t.expect("notification").await;
        t.expect("unread_count").await;
        t.expect("notification").await;
        assert_eq!(t.expect("unread_count").await["unread"], 2);
    }
    let (_, n) = app.post_user(&token, "/v1/me/notifications/read-all").await;
    assert_eq!(n["unread"], 0);
    for t in tabs.iter_mut() {
        t.expect("read_all").await;
        assert_eq!(t.expect("unread_count").await["unread"], 0);
        t.expect_silence(QUIET).await;
    }
    stranger.expect_silence(QUIET).await;
}

#[tokio::test]
async fn client_frames_ping_bad_frames_and_mark_all_read() {
    let app = spawn_app().await;
    let token = app.token("u-1", "provider").await;
    app.publish_to("u-1", "a").await;
    let mut ws = app.ws(&token, None).await;
    assert_eq!(ws.expect("hello").await["unread"], 1);
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.expect("pong").await, json!({}));
    ws.send(json!({"type": "dance"})).await;
    assert_eq!(ws.expect("error").await["code"], "bad_frame");
    ws.stream
        .send(tokio_tungstenite::tungstenite::Message::text("not json"))
        .await
        .unwrap();
    assert_eq!(ws.expect("error").await["code"], "bad_frame");
    ws.send(json!({"type": "mark_read", "ids": ["nonsense"]}))
        .await;
    assert_eq!(ws.expect("error").await["code"], "bad_frame");
    // Still open: mark_all_read works.
    ws.send(json!({"type": "mark_all_read"})).await;
    ws.expect("read_all").await;
    assert_eq!(ws.expect("unread_count").await["unread"], 0);
}

use futures_util::SinkExt;

#[tokio::test]
async fn resume_with_since_replays_missed_in_order_then_live_without_duplicates() {
    let app = spawn_app().await;
    let token = app.token("u-1", "provider").await;
    let first = app.publish_to("u-1", "seen").await;
    let mut missed = Vec::new();
    for i in 0..3 {
        missed.push(app.publish_to("u-1", &format!("missed-{i}")).await);
    }
    let mut ws = app.ws(&token, Some(&first)).await;
    assert_eq!(ws.expect("hello").await["unread"], 4);
    for id in &missed {
        assert_eq!(ws.expect("notification").await["id"], json!(id));
    }
    ws.expect_silence(QUIET).await;
    let live = app.publish_to("u-1", "live").await;
    assert_eq!(ws.expect("notification").await["id"], json!(live));
    assert_eq!(ws.expect("unread_count").await["unread"], 5);

    // Publishing while clients resume: every notification exactly once, in order.
    let app = std::sync::Arc::new(app);
    let publisher = {
        let app = app.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..60 {
                ids.push(app.publish_to("u-1", &format!("burst-{i}")).await);
            }
            ids
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut resumed = app.ws(&token, Some(&live)).await;
    let published = publisher.await.unwrap();
    resumed.expect("hello").await;
    let mut got = Vec::new();
    while got.len() < published.len() {
        match resumed.next_event(WAIT).await {
            Some(Event::Frame(t, d)) if t == "notification" => {
                got.push(d["id"].as_str().unwrap().to_owned())
            }
            Some(Event::Frame(..)) => {}
            other => panic!(
                "resume ended early: {other:?} after {} of {}",
                got.len(),
                published.len()
            ),
        }
    }
    assert_eq!(got, published, "no gap, no duplicate, oldest first");
    loop {
        match resumed.next_event(QUIET).await {
            None => break,
            Some(Event::Frame(t, d)) => assert_ne!(t, "notification", "duplicate: {d}"),
            Some(e) => panic!("{e:?}"),
        }
    }
    let url = format!("{}/v1/ws?token={token}&since=bogus", app.ws_base);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 400),
        other => panic!("expected 400, got {other:?}"),
    }
}

#[tokio::test]
async fn muted_categories_and_quiet_hours_update_the_count_without_a_push() {
    let app = spawn_app().await;
    let token = app.token("u-1", "provider").await;
    let res = app
        .http
        .put(app.url("/v1/me/preferences"))
        .bearer_auth(&token)
        .json(&json!({"muted_categories": ["appointment.completed"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut ws = app.ws(&token, None).await;
    ws.expect("hello").await;
    let (s, _) = app.publish(json!({"user_id": "u-1", "title": "done", "message": "m", "category": "appointment.completed"})).await;
    assert_eq!(s, 201);
    assert_eq!(
        ws.expect("unread_count").await["unread"],
        1,
        "counted, not pushed"
    );
    app.publish(json!({"user_id": "u-1", "title": "booked", "message": "m", "category": "appointment.booked"})).await;
    assert_eq!(ws.expect("notification").await["title"], "booked");
    assert_eq!(ws.expect("unread_count").await["unread"], 2);
    let (_, list) = app.get_user(&token, "/v1/me/notifications").await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        2,
        "muted ones are stored and listed"
    );

    // Quiet hours covering the whole day except one minute that is not now.
    let now = chrono::Utc::now();
    let start = (now + chrono::Duration::minutes(2))
        .format("%H:%M")
        .to_string();
    let end = (now + chrono::Duration::minutes(1))
        .format("%H:%M")
        .to_string();
    let res = app.http.put(app.url("/v1/me/preferences")).bearer_auth(&token)
        .json(&json!({"muted_categories": [], "quiet_hours": {"start": start, "end": end, "tz": "UTC"}})).send().await.unwrap();
    assert_eq!(res.status(), 200);
    app.publish(json!({"user_id": "u-1", "title": "night", "message": "m"}))
        .await;
    assert_eq!(ws.expect("unread_count").await["unread"], 3);
    ws.expect_silence(QUIET).await;
}

#[tokio::test]
async fn a_slow_consumer_is_closed_with_4008_and_resumes_without_loss() {
    let app = spawn_app_with(|c| c.hub.queue_capacity = 4).await;
    let token = app.token("u-1", "provider").await;
    // A client with a tiny receive window that does not read: the hub's writes block,
    // its queue fills, and it must close the connection instead of buffering.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket
        .connect(app.base.trim_start_matches("http://").parse().unwrap())
        .await
        .unwrap();
    let url = format!("{}/v1/ws?token={token}", app.ws_base);
    let (slow, _) =
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    // ~12 KiB each, ~8 MiB in all: more than the kernel's socket buffers can absorb.
    let big = "x".repeat(4000);
    let data = json!({"blob": "y".repeat(8000)});
    let mut ids = Vec::new();
    for i in 0..700 {
        let (s, b) = app
            .publish(
                json!({"user_id": "u-1", "title": format!("n{i}"), "message": big, "data": data}),
            )
            .await;
        assert_eq!(s, 201);
        ids.push(b["notifications"][0]["id"].as_str().unwrap().to_owned());
    }
    let mut slow = Ws { stream: slow };
    let mut seen = Vec::new();
    let code = loop {
        match slow.next_event(Duration::from_secs(15)).await {
            Some(Event::Frame(t, d)) if t == "notification" => {
                seen.push(d["id"].as_str().unwrap().to_owned())
            }
            Some(Event::Frame(..)) => {}
            Some(Event::Closed(code)) => break code,
            None => panic!("slow consumer never closed"),
        }
    };
    assert_eq!(code, Some(4008));
    assert!(
        seen.len() < ids.len(),
        "it was closed before getting everything"
    );
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("tidings_slow_consumer_closes_total"),
        "{metrics}"
    );
    // Resume from the last one it got: the rest arrive, none twice.
    let mut ws = app.ws(&token, seen.last().map(String::as_str)).await;
    ws.expect("hello").await;
    let mut rest = Vec::new();
    while seen.len() + rest.len() < ids.len() {
        match ws.next_event(WAIT).await {
            Some(Event::Frame(t, d)) if t == "notification" => {
                rest.push(d["id"].as_str().unwrap().to_owned())
            }
            other => panic!("{other:?}"),
        }
    }
    seen.extend(rest);
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn token_expiry_closes_live_connections_with_4001() {
    let app = spawn_app().await;
    let (s, b) = app
        .post_key(
            "/v1/tokens",
            json!({"user_id": "u-1", "role": "provider", "ttl_seconds": 1}),
        )
        .await;
    assert_eq!(s, 200);
    let mut ws = app.ws(b["token"].as_str().unwrap(), None).await;
    ws.expect("hello").await;
    assert_eq!(ws.expect_close(Duration::from_secs(5)).await, Some(4001));
}

#[tokio::test]
async fn shutdown_tells_clients_to_reconnect_with_1012() {
    let mut app = spawn_app().await;
    let token = app.token("u-1", "provider").await;
    let mut ws = app.ws(&token, None).await;
    ws.expect("hello").await;
    app.shutdown();
    assert_eq!(ws.expect_close(WAIT).await, Some(1012));
    let done = tokio::time::timeout(WAIT, app.stopped.take().unwrap()).await;
    assert!(
        matches!(done, Ok(Ok(Ok(())))),
        "graceful shutdown finished: {done:?}"
    );
}
