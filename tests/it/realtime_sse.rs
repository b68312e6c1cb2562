//! Server-Sent Events, on both server paths: the direct one (the stream is the
//! connection's first request) and the router's (a reused keep-alive connection).

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

#[tokio::test]
async fn sse_streams_the_same_events_with_ids_and_headers() {
    for path in SsePath::BOTH {
        let app = spawn_app().await;
        let token = app.token("u-1", "provider").await;
        let mut sse = app.sse_on(path, &token, None).await;
        assert_eq!(sse.headers["content-type"], "text/event-stream", "{path:?}");
        assert_eq!(sse.headers["cache-control"], "no-cache", "{path:?}");
        assert_eq!(sse.headers["x-accel-buffering"], "no", "{path:?}");
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
}

#[tokio::test]
async fn sse_resumes_from_last_event_id_header_or_query() {
    for path in SsePath::BOTH {
        let app = spawn_app().await;
        let token = app.token("u-1", "provider").await;
        let first = app.publish_to("u-1", "first").await;
        let second = app.publish_to("u-1", "second").await;
        let third = app.publish_to("u-1", "third").await;
        let mut sse = app.sse_on(path, &token, Some(&first)).await;
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
            .sse_on(path, &format!("{token}&last_event_id={second}"), None)
            .await;
        by_query.expect("hello").await;
        assert_eq!(
            by_query.expect("notification").await.id.as_deref(),
            Some(third.as_str())
        );
        let res = app
            .sse_request(path, &format!("/v1/sse?token={token}"), |r| {
                r.header("Last-Event-ID", "bogus")
            })
            .await;
        let (s, b) = split(res).await;
        assert_error(s, &b, 400, "bad_request");
        assert_eq!(b["error"]["field"], "Last-Event-ID", "{path:?}");
    }
}

#[tokio::test]
async fn sse_sends_comment_heartbeats() {
    for path in SsePath::BOTH {
        let app = spawn_app_with(|c| c.hub.sse_heartbeat_secs = 1).await;
        let token = app.token("u-1", "provider").await;
        let mut sse = app.sse_on(path, &token, None).await;
        sse.expect("hello").await;
        let ev = sse
            .next_event(Duration::from_secs(3))
            .await
            .expect("a heartbeat");
        assert_eq!(ev.event, ":");
        assert_eq!(ev.data, json!("ping"));
    }
}

#[tokio::test]
async fn sse_ends_with_an_error_event_at_token_expiry_and_at_shutdown() {
    for path in SsePath::BOTH {
        let mut app = spawn_app().await;
        let (s, b) = app
            .post_key(
                "/v1/tokens",
                json!({"user_id": "u-1", "role": "provider", "ttl_seconds": 1}),
            )
            .await;
        assert_eq!(s, 200);
        let mut expiring = app.sse_on(path, b["token"].as_str().unwrap(), None).await;
        expiring.expect("hello").await;
        assert_eq!(
            expiring.expect("error").await.data["code"],
            "token_expired",
            "{path:?}"
        );
        assert!(
            expiring.ends_within(WAIT).await,
            "{path:?}: the stream ends"
        );

        let token = app.token("u-2", "provider").await;
        let mut sse = app.sse_on(path, &token, None).await;
        sse.expect("hello").await;
        app.shutdown();
        assert_eq!(
            sse.expect("error").await.data["code"],
            "shutdown",
            "{path:?}"
        );
        assert!(sse.ends_within(WAIT).await, "{path:?}: the stream ends");
        let done = tokio::time::timeout(WAIT, app.stopped.take().unwrap()).await;
        assert!(
            matches!(done, Ok(Ok(Ok(())))),
            "{path:?}: graceful shutdown finished: {done:?}"
        );
    }
}

#[tokio::test]
async fn sse_errors_are_the_contracts_json_on_both_paths() {
    let app = spawn_app().await;
    let expired = sign(
        &app.jwt_secret,
        json!({"sub": "u-1", "tenant": app.tenant, "role": "provider", "exp": 1}),
    );
    for path in SsePath::BOTH {
        let res = app.sse_request(path, "/v1/sse", |r| r).await;
        assert_eq!(res.headers()["content-type"], "application/json");
        let (s, b) = split(res).await;
        assert_error(s, &b, 401, "unauthorized");

        let res = app
            .sse_request(path, &format!("/v1/sse?token={expired}"), |r| r)
            .await;
        let (s, b) = split(res).await;
        assert_error(s, &b, 401, "token_expired");

        // An API key is a server credential, not a user.
        let res = app
            .sse_request(path, "/v1/sse", |r| r.bearer_auth(&app.api_key))
            .await;
        let (s, b) = split(res).await;
        assert_error(s, &b, 403, "forbidden");
    }
}

#[tokio::test]
async fn sse_answers_cors_for_configured_origins_on_both_paths() {
    let app = spawn_app_with(|c| c.cors_origins = vec!["https://clinic.example".into()]).await;
    let token = app.token("u-1", "provider").await;
    for path in SsePath::BOTH {
        for (origin, allowed) in [
            ("https://clinic.example", true),
            ("https://evil.example", false),
        ] {
            let res = app
                .sse_request(path, &format!("/v1/sse?token={token}"), |r| {
                    r.header("Origin", origin)
                })
                .await;
            assert_eq!(res.status(), 200);
            let acao = res.headers().get("access-control-allow-origin");
            assert_eq!(
                acao.map(|v| v.to_str().unwrap()),
                allowed.then_some(origin),
                "{path:?} {origin}"
            );
            assert!(
                res.headers()["vary"].to_str().unwrap().contains("origin"),
                "{path:?}"
            );
        }
        // Errors carry CORS too, so a browser can read why.
        let res = app
            .sse_request(path, "/v1/sse", |r| {
                r.header("Origin", "https://clinic.example")
            })
            .await;
        assert_eq!(res.status(), 401);
        assert_eq!(
            res.headers()["access-control-allow-origin"],
            "https://clinic.example",
            "{path:?}"
        );
    }
}

/// Writes a raw request on a fresh connection and reads until the server closes.
async fn raw_exchange(app: &TestApp, request: &[u8]) -> String {
    let mut tcp = TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    tcp.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut out))
        .await
        .expect("the server closes")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn json_body(response: &str) -> Value {
    serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap()
}

#[tokio::test]
async fn direct_sse_rejects_malformed_and_oversized_requests_with_json() {
    let app = spawn_app().await;
    let bad = raw_exchange(&app, b"GET /v1/sse HTTP/1.1\r\nno colon here\r\n\r\n").await;
    assert!(bad.starts_with("HTTP/1.1 400 "), "{bad}");
    assert!(bad.contains("connection: close\r\n"), "{bad}");
    assert_eq!(json_body(&bad)["error"]["code"], "bad_request");

    // Over the 16 KiB head limit every first request is read with (src/http/head.rs).
    let mut big = b"GET /v1/sse HTTP/1.1\r\nx-padding: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 17_000));
    big.extend_from_slice(b"\r\n\r\n");
    let too_big = raw_exchange(&app, &big).await;
    assert!(too_big.starts_with("HTTP/1.1 431 "), "{too_big}");
    assert_eq!(json_body(&too_big)["error"]["code"], "headers_too_large");

    // A path that only starts like the stream's is not taken for it.
    let other = raw_exchange(
        &app,
        b"GET /v1/sse2 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(other.starts_with("HTTP/1.1 404 "), "{other}");
}

#[tokio::test]
async fn direct_sse_speaks_chunked_to_http11_and_close_delimited_to_http10() {
    let app = spawn_app_with(|c| c.hub.sse_heartbeat_secs = 1).await;
    let token = app.token("u-1", "provider").await;
    for (version, chunked) in [("HTTP/1.1", true), ("HTTP/1.0", false)] {
        let mut tcp = TcpStream::connect(app.base.trim_start_matches("http://"))
            .await
            .unwrap();
        let req = format!("GET /v1/sse?token={token} {version}\r\nhost: x\r\n\r\n");
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut got = String::new();
        let mut buf = [0u8; 4096];
        // Until the first heartbeat: head, retry hint, hello, ping.
        while !got.contains(": ping") {
            let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "closed early: {got}");
            got.push_str(std::str::from_utf8(&buf[..n]).unwrap());
        }
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        assert_eq!(
            got.contains("transfer-encoding: chunked\r\n"),
            chunked,
            "{got}"
        );
        let body = got
            .split("\r\n\r\n")
            .skip(1)
            .collect::<Vec<_>>()
            .join("\r\n\r\n");
        if chunked {
            // "d\r\nretry: 2000\n\n\r\n": the retry hint is one chunk of 13 bytes.
            assert!(body.starts_with("d\r\nretry: 2000\n\n\r\n"), "{body:?}");
        } else {
            assert!(
                body.starts_with("retry: 2000\n\nevent: hello\n"),
                "{body:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_closed_direct_stream_leaves_the_hub() {
    let app = spawn_app().await;
    let token = app.token("u-1", "provider").await;
    let connections = || app.hub.connection_count();
    let mut sse = app.sse(&token, None).await;
    sse.expect("hello").await;
    assert_eq!(connections(), 1);
    drop(sse);
    // No event is pending, so only the socket's close can end the session.
    let deadline = tokio::time::Instant::now() + WAIT;
    while connections() != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream outlived its client"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
