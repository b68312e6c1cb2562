use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn list_pages_newest_first_with_an_opaque_cursor() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(app.publish_to("u-1", &format!("n{i}")).await);
    }
    let token = app.token("u-1", "provider").await;
    let (s, p1) = app.get_user(&token, "/v1/me/notifications?limit=2").await;
    assert_eq!(s, 200);
    let titles = |p: &serde_json::Value| {
        p["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["title"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(titles(&p1), ["n4", "n3"]);
    let c1 = p1["next_cursor"].as_str().unwrap();
    let (_, p2) = app
        .get_user(&token, &format!("/v1/me/notifications?limit=2&cursor={c1}"))
        .await;
    assert_eq!(titles(&p2), ["n2", "n1"]);
    let c2 = p2["next_cursor"].as_str().unwrap();
    let (_, p3) = app
        .get_user(&token, &format!("/v1/me/notifications?limit=2&cursor={c2}"))
        .await;
    assert_eq!(titles(&p3), ["n0"]);
    assert!(p3["next_cursor"].is_null());
    // Ids sort like their creation order.
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, ids);
    for bad in ["limit=0", "limit=abc", "cursor=!!", "status=maybe"] {
        let (s, b) = app
            .get_user(&token, &format!("/v1/me/notifications?{bad}"))
            .await;
        assert_error(s, &b, 400, "bad_request");
    }
    let (_, big) = app
        .get_user(&token, "/v1/me/notifications?limit=5000")
        .await;
    assert_eq!(
        big["items"].as_array().unwrap().len(),
        5,
        "limit is capped, not rejected"
    );
}

#[tokio::test]
async fn read_read_all_archive_keep_the_count_right() {
    let app = spawn_app().await;
    let a = app.publish_to("u-1", "a").await;
    let b = app.publish_to("u-1", "b").await;
    let c = app.publish_to("u-1", "c").await;
    let token = app.token("u-1", "provider").await;
    let (_, n) = app.get_user(&token, "/v1/me/unread-count").await;
    assert_eq!(n["unread"], 3);

    let (s, n) = app
        .post_user(&token, &format!("/v1/me/notifications/{a}/read"))
        .await;
    assert_eq!((s.as_u16(), n["unread"].clone()), (200, json!(2)));
    let (s, n) = app
        .post_user(&token, &format!("/v1/me/notifications/{a}/read"))
        .await;
    assert_eq!(
        (s.as_u16(), n["unread"].clone()),
        (200, json!(2)),
        "idempotent"
    );
    let (s, e) = app
        .post_user(&token, "/v1/me/notifications/n00000000000fffff/read")
        .await;
    assert_error(s, &e, 404, "not_found");
    let (s, e) = app
        .post_user(&token, "/v1/me/notifications/garbage/read")
        .await;
    assert_error(s, &e, 404, "not_found");

    let (_, unread) = app
        .get_user(&token, "/v1/me/notifications?status=unread")
        .await;
    let titles: Vec<_> = unread["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].clone())
        .collect();
    assert_eq!(titles, vec![json!("c"), json!("b")]);
    let (_, all) = app
        .get_user(&token, "/v1/me/notifications?status=all")
        .await;
    let read_a = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == json!(a))
        .unwrap()
        .clone();
    assert_eq!(read_a["is_read"], true);
    assert!(read_a["read_at"].is_string());

    // Archiving an unread one lowers the count; it disappears from lists.
    let res = app
        .http
        .delete(app.url(&format!("/v1/me/notifications/{b}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let (_, n) = app.get_user(&token, "/v1/me/unread-count").await;
    assert_eq!(n["unread"], 1);
    let res = app
        .http
        .delete(app.url(&format!("/v1/me/notifications/{b}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let (_, all) = app.get_user(&token, "/v1/me/notifications").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2);

    let (s, n) = app.post_user(&token, "/v1/me/notifications/read-all").await;
    assert_eq!((s.as_u16(), n["unread"].clone()), (200, json!(0)));
    let (_, unread) = app
        .get_user(&token, "/v1/me/notifications?status=unread")
        .await;
    assert!(unread["items"].as_array().unwrap().is_empty());
    let _ = c;
}

#[tokio::test]
async fn preferences_round_trip_and_validate() {
    let app = spawn_app().await;
    let token = app.token("u-1", "provider").await;
    let (s, p) = app.get_user(&token, "/v1/me/preferences").await;
    assert_eq!(s, 200);
    assert_eq!(p, json!({"muted_categories": [], "quiet_hours": null}));
    let put = |body: serde_json::Value| {
        app.http
            .put(app.url("/v1/me/preferences"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let want = json!({"muted_categories": ["appointment.completed"], "quiet_hours": {"start": "22:00", "end": "07:00", "tz": "Asia/Riyadh"}});
    let (s, p) = split(put(want.clone()).await.unwrap()).await;
    assert_eq!((s.as_u16(), &p), (200, &want));
    let (_, p) = app.get_user(&token, "/v1/me/preferences").await;
    assert_eq!(p, want);
    for (bad, field) in [
        (
            json!({"quiet_hours": {"start": "25:00", "end": "07:00", "tz": "UTC"}}),
            "quiet_hours.start",
        ),
        (
            json!({"quiet_hours": {"start": "22:00", "end": "07:00", "tz": "Moon/Base"}}),
            "quiet_hours.tz",
        ),
        (json!({"muted_categories": [""]}), "muted_categories"),
    ] {
        let (s, e) = split(put(bad).await.unwrap()).await;
        assert_error(s, &e, 422, "invalid");
        assert_eq!(e["error"]["field"], field);
    }
    let (_, p) = app.get_user(&token, "/v1/me/preferences").await;
    assert_eq!(p, want, "a rejected update changes nothing");
}

/// `GET /v1/me/categories`: every category of my notifications, sorted, loaded
/// pages or not; archived ones and other users' (or tenants') do not count.
#[tokio::test]
async fn categories_are_the_users_own_sorted() {
    let app = spawn_app().await;
    let token = app.token("u-cat", "provider").await;
    let (s, body) = app.get_user(&token, "/v1/me/categories").await;
    assert_eq!((s.as_u16(), body), (200, json!({"categories": []})));
    for (user, category) in [
        ("u-cat", Some("results.lab")),
        ("u-cat", Some("appointments")),
        ("u-cat", Some("results.lab")),
        ("u-cat", None),
        ("u-cat", Some("billing")),
        ("u-other", Some("someone_elses")),
    ] {
        let (s, _) = app
            .publish(json!({"user_id": user, "title": "t", "message": "m", "category": category}))
            .await;
        assert_eq!(s, 201);
    }
    let (_, body) = app.get_user(&token, "/v1/me/categories").await;
    assert_eq!(
        body,
        json!({"categories": ["appointments", "billing", "results.lab"]})
    );
    // Archiving the only `billing` one removes it.
    let (_, page) = app.get_user(&token, "/v1/me/notifications").await;
    let billing = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["category"] == "billing")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .http
        .delete(app.url(&format!("/v1/me/notifications/{billing}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let (_, body) = app.get_user(&token, "/v1/me/categories").await;
    assert_eq!(body, json!({"categories": ["appointments", "results.lab"]}));
    // An API key is not a user.
    let res = app
        .http
        .get(app.url("/v1/me/categories"))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}
