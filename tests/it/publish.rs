use std::time::Duration;

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn publish_to_one_user_stores_and_returns_ids() {
    let app = spawn_app().await;
    let (status, body) = app
        .publish(json!({"user_id": "u-1", "title": "New appointment", "message": "Ahmed booked Sun 10:00",
                        "type": "success", "category": "appointment.booked",
                        "related": {"type": "appointment", "id": "8a6f"}, "link": "https://clinic.example/a/8a6f",
                        "data": {"room": 3}}))
        .await;
    assert_eq!(status, 201, "{body}");
    let items = body["notifications"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["user_id"], "u-1");
    let token = app.token("u-1", "provider").await;
    let (_, list) = app.get_user(&token, "/v1/me/notifications").await;
    let n = &list["items"][0];
    assert_eq!(n["id"], items[0]["id"]);
    assert_eq!(n["title"], "New appointment");
    assert_eq!(n["type"], "success");
    assert_eq!(n["category"], "appointment.booked");
    assert_eq!(n["related"], json!({"type": "appointment", "id": "8a6f"}));
    assert_eq!(n["link"], "https://clinic.example/a/8a6f");
    assert_eq!(n["data"], json!({"room": 3}));
    assert_eq!(n["is_read"], false);
    assert!(n["read_at"].is_null());
    assert!(n["created_at"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn publish_to_many_users_dedupes_and_to_a_role_uses_the_directory() {
    let app = spawn_app().await;
    let (status, body) = app
        .publish(json!({"user_ids": ["a", "b", "a"], "title": "t", "message": "m"}))
        .await;
    assert_eq!(status, 201);
    let users: Vec<_> = body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["user_id"].clone())
        .collect();
    assert_eq!(users, vec![json!("a"), json!("b")]);

    for (u, role) in [
        ("fd-1", "front_desk"),
        ("fd-2", "front_desk"),
        ("p-1", "provider"),
    ] {
        let res = app
            .http
            .put(app.url(&format!("/v1/users/{u}")))
            .bearer_auth(&app.api_key)
            .json(&json!({"role": role, "name": u}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let (status, body) = app
        .publish(json!({"role": "front_desk", "title": "t", "message": "m"}))
        .await;
    assert_eq!(status, 201);
    let mut users: Vec<_> = body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["user_id"].as_str().unwrap().to_owned())
        .collect();
    users.sort();
    assert_eq!(users, vec!["fd-1", "fd-2"]);
}

#[tokio::test]
async fn invalid_publishes_are_rejected_with_the_field_and_change_nothing() {
    let app = spawn_app().await;
    let cases = [
        (json!({"title": "t", "message": "m"}), "user_id"),
        (
            json!({"user_id": "u", "role": "admin", "title": "t", "message": "m"}),
            "user_id",
        ),
        (
            json!({"user_id": "u", "title": "", "message": "m"}),
            "title",
        ),
        (
            json!({"user_id": "u", "title": "x".repeat(201), "message": "m"}),
            "title",
        ),
        (
            json!({"user_id": "u", "title": "t", "message": "x".repeat(4001)}),
            "message",
        ),
        (
            json!({"user_id": "u", "title": "t", "message": "m", "type": "fatal"}),
            "type",
        ),
        (
            json!({"user_id": "u", "title": "t", "message": "m", "link": "javascript:alert(1)"}),
            "link",
        ),
        (
            json!({"user_id": "u", "title": "t", "message": "m", "data": {"x": "y".repeat(9000)}}),
            "data",
        ),
        (
            json!({"user_ids": [], "title": "t", "message": "m"}),
            "user_ids",
        ),
        (
            json!({"user_ids": ["ok", "bad id"], "title": "t", "message": "m"}),
            "user_ids[1]",
        ),
        (
            json!({"role": "janitor", "title": "t", "message": "m"}),
            "role",
        ),
        (json!({"user_id": "u", "message": "m"}), "title"),
        (json!({"user_id": "u", "title": 5, "message": "m"}), "title"),
    ];
    for (body, field) in cases {
        let (status, err) = app.publish(body.clone()).await;
        assert_error(status, &err, 422, "invalid");
        assert_eq!(err["error"]["field"], field, "for {body}");
    }
    let too_many: Vec<String> = (0..1001).map(|i| format!("u{i}")).collect();
    let (status, err) = app
        .publish(json!({"user_ids": too_many, "title": "t", "message": "m"}))
        .await;
    assert_error(status, &err, 422, "invalid");
    let token = app.token("u", "provider").await;
    let (_, list) = app.get_user(&token, "/v1/me/notifications").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn malformed_oversized_and_wrong_type_bodies_get_400_413_415() {
    let app = spawn_app_with(|c| c.body_limit_bytes = 4096).await;
    let post = |body: String, ct: &'static str| {
        app.http
            .post(app.url("/v1/notifications"))
            .bearer_auth(&app.api_key)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let (s, b) = split(
        post("{\"user_id\": ".into(), "application/json")
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &b, 400, "malformed_json");
    let big = json!({"user_id": "u", "title": "t", "message": "x".repeat(5000)}).to_string();
    let (s, b) = split(post(big, "application/json").await.unwrap()).await;
    assert_error(s, &b, 413, "payload_too_large");
    let (s, b) = split(
        post("user_id=u".into(), "application/x-www-form-urlencoded")
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &b, 415, "unsupported_media_type");
}

#[tokio::test]
async fn idempotency_key_replays_the_first_response_and_conflicts_on_another_body() {
    let app = spawn_app().await;
    let send = |body: serde_json::Value, key: &'static str| {
        app.http
            .post(app.url("/v1/notifications"))
            .bearer_auth(&app.api_key)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let body = json!({"user_ids": ["a", "b"], "title": "t", "message": "m"});
    let (s1, first) = split(send(body.clone(), "k-1").await.unwrap()).await;
    let (s2, second) = split(send(body.clone(), "k-1").await.unwrap()).await;
    assert_eq!((s1.as_u16(), s2.as_u16()), (201, 201));
    assert_eq!(first, second);
    let (s3, err) = split(
        send(
            json!({"user_id": "a", "title": "other", "message": "m"}),
            "k-1",
        )
        .await
        .unwrap(),
    )
    .await;
    assert_error(s3, &err, 409, "idempotency_key_reused");
    // Concurrent retries with one key still create one notification per recipient.
    let (a, b) = tokio::join!(send(body.clone(), "k-2"), send(body.clone(), "k-2"));
    let (_, a) = split(a.unwrap()).await;
    let (_, b) = split(b.unwrap()).await;
    assert_eq!(a, b);
    let token = app.token("a", "provider").await;
    let (_, list) = app.get_user(&token, "/v1/me/notifications").await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        2,
        "one from k-1, one from k-2"
    );
}

/// Issue #11: a tenant's ids count its own notifications only (`n…1`, `n…2`, …), so
/// the gaps between them reveal nothing of another tenant's volume. Resuming from an
/// id a tenant shares with another replays the caller's tenant only, live events
/// follow, and the other tenant's publishes never show.
#[tokio::test]
async fn ids_count_per_tenant_and_resume_stays_in_the_tenant() {
    let app = spawn_app().await;
    let other = tidings::domain::ids::TenantId::parse("clinic-b").unwrap();
    let (key, secret) = app.create_tenant(&other, "B").await;
    let publish_b = |title: String| {
        let req = app
            .http
            .post(app.url("/v1/notifications"))
            .bearer_auth(&key.key)
            .json(&json!({"user_id": "u-1", "title": title, "message": "m"}));
        async move {
            let (status, body) = split(req.send().await.unwrap()).await;
            assert_eq!(status, 201, "{body}");
            body["notifications"][0]["id"].as_str().unwrap().to_owned()
        }
    };
    // Interleaved, clinic-b publishing twice as much as clinic-a.
    let (mut a_ids, mut b_ids) = (Vec::new(), Vec::new());
    for i in 0..3 {
        a_ids.push(app.publish_to("u-1", &format!("a{i}")).await);
        b_ids.push(publish_b(format!("b{i}")).await);
        b_ids.push(publish_b(format!("b{i}'")).await);
    }
    let wire = |n: u64| format!("n{n:016x}");
    assert_eq!(a_ids, (1..=3).map(wire).collect::<Vec<_>>());
    assert_eq!(b_ids, (1..=6).map(wire).collect::<Vec<_>>());

    // clinic-b's u-1 resumes from n…2: clinic-b's n…3 to n…6, none of clinic-a's.
    let b_token = sign(
        &secret,
        json!({"sub": "u-1", "tenant": "clinic-b", "role": "provider", "exp": now() + 600}),
    );
    let mut ws = app.ws(&b_token, Some(&wire(2))).await;
    assert_eq!(ws.expect("hello").await["unread"], 6);
    for (id, title) in b_ids[2..].iter().zip(["b1", "b1'", "b2", "b2'"]) {
        let n = ws.expect("notification").await;
        assert_eq!((&n["id"], &n["title"]), (&json!(id), &json!(title)));
    }
    ws.expect_silence(Duration::from_millis(300)).await;
    // clinic-a's next publish is n…4, which clinic-b's stream must not carry; clinic-b's
    // next is n…7 and arrives live.
    assert_eq!(app.publish_to("u-1", "a3").await, wire(4));
    assert_eq!(publish_b("b live".into()).await, wire(7));
    let live = ws.expect("notification").await;
    assert_eq!(
        (&live["id"], &live["title"]),
        (&json!(wire(7)), &json!("b live"))
    );
    assert_eq!(ws.expect("unread_count").await["unread"], 7);
}
