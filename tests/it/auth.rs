use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn missing_bad_and_wrong_kind_credentials() {
    let app = spawn_app().await;
    let res = app
        .http
        .post(app.url("/v1/notifications"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (s, b) = split(res).await;
    assert_error(s, &b, 401, "unauthorized");
    let res = app
        .http
        .post(app.url("/v1/notifications"))
        .bearer_auth("tdk_nope")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (s, b) = split(res).await;
    assert_error(s, &b, 401, "unauthorized");
    // A user token is authenticated, but publishing needs an API key.
    let token = app.token("u-1", "admin").await;
    let res = app
        .http
        .post(app.url("/v1/notifications"))
        .bearer_auth(&token)
        .json(&json!({"user_id": "u", "title": "t", "message": "m"}))
        .send()
        .await
        .unwrap();
    let (s, b) = split(res).await;
    assert_error(s, &b, 403, "forbidden");
    // ... and the inbox needs a user token.
    let res = app
        .http
        .get(app.url("/v1/me/notifications"))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    let (s, b) = split(res).await;
    assert_error(s, &b, 403, "forbidden");
}

#[tokio::test]
async fn expired_forged_unsigned_and_claimless_tokens_are_401() {
    let app = spawn_app().await;
    let good = json!({"sub": "u-1", "tenant": app.tenant, "role": "provider", "exp": now() + 600});
    let (s, _) = app
        .get_user(&sign(&app.jwt_secret, good.clone()), "/v1/me/unread-count")
        .await;
    assert_eq!(s, 200);

    let mut expired = good.clone();
    expired["exp"] = json!(now() - 120);
    let (s, b) = app
        .get_user(&sign(&app.jwt_secret, expired), "/v1/me/unread-count")
        .await;
    assert_error(s, &b, 401, "token_expired");

    let (s, b) = app
        .get_user(
            &sign("not-the-secret-at-all", good.clone()),
            "/v1/me/unread-count",
        )
        .await;
    assert_error(s, &b, 401, "unauthorized");

    let mut no_exp = good.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    let (s, b) = app
        .get_user(&sign(&app.jwt_secret, no_exp), "/v1/me/unread-count")
        .await;
    assert_error(s, &b, 401, "unauthorized");

    // alg: none, no signature.
    use base64::Engine;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(good.clone())
    );
    let (s, b) = app.get_user(&none, "/v1/me/unread-count").await;
    assert_error(s, &b, 401, "unauthorized");
    // HS512 with the right secret: the algorithm is pinned to HS256.
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &good,
        &jsonwebtoken::EncodingKey::from_secret(app.jwt_secret.as_bytes()),
    )
    .unwrap();
    let (s, b) = app.get_user(&hs512, "/v1/me/unread-count").await;
    assert_error(s, &b, 401, "unauthorized");

    let mut unknown_tenant = good.clone();
    unknown_tenant["tenant"] = json!("nobody");
    let (s, b) = app
        .get_user(
            &sign(&app.jwt_secret, unknown_tenant),
            "/v1/me/unread-count",
        )
        .await;
    assert_error(s, &b, 401, "unauthorized");

    let mut bad_role = good;
    bad_role["role"] = json!("superuser");
    let (s, b) = app
        .get_user(&sign(&app.jwt_secret, bad_role), "/v1/me/unread-count")
        .await;
    assert_error(s, &b, 401, "unauthorized");

    // The WebSocket rejects a bad token with 401 before the upgrade.
    let url = format!("{}/v1/ws?token=garbage.token.here", app.ws_base);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 401),
        other => panic!("expected HTTP 401, got {other:?}"),
    }
    let res = app.http.get(app.url("/v1/sse")).send().await.unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn tokens_mint_validates_and_honours_ttl() {
    let app = spawn_app().await;
    let (s, b) = app.post_key("/v1/tokens", json!({"user_id": "u-1", "role": "provider", "ttl_seconds": 60, "name": "Dr A", "locale": "ar"})).await;
    assert_eq!(s, 200);
    let exp = chrono::DateTime::parse_from_rfc3339(b["expires_at"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert!((exp - now() - 60).abs() <= 2);
    let (s, b) = app
        .post_key("/v1/tokens", json!({"user_id": "u-1", "role": "root"}))
        .await;
    assert_error(s, &b, 422, "invalid");
    assert_eq!(b["error"]["field"], "role");
    let (s, b) = app
        .post_key(
            "/v1/tokens",
            json!({"user_id": "u-1", "role": "admin", "ttl_seconds": 0}),
        )
        .await;
    assert_error(s, &b, 422, "invalid");
    assert_eq!(b["error"]["field"], "ttl_seconds");
}

#[tokio::test]
async fn another_tenant_sees_nothing_and_another_users_object_is_404() {
    let a = spawn_app().await;
    let id = a.publish_to("u-1", "secret").await;
    // A second tenant on the same database.
    let store = a.app_store.clone();
    let other = tidings::domain::ids::TenantId::parse("clinic-b").unwrap();
    let (key, secret) = tidings::service::auth::create_tenant(store.as_ref(), &other, "B")
        .await
        .unwrap();
    let b_token = sign(
        &secret,
        json!({"sub": "u-1", "tenant": "clinic-b", "role": "provider", "exp": now() + 600}),
    );
    let (s, list) = a.get_user(&b_token, "/v1/me/notifications").await;
    assert_eq!(s, 200);
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        0,
        "same user id, other tenant: nothing"
    );
    let (s, b) = a
        .post_user(&b_token, &format!("/v1/me/notifications/{id}/read"))
        .await;
    assert_error(s, &b, 404, "not_found");
    // The same for another user of the same tenant.
    let other_user = a.token("u-2", "provider").await;
    let (s, b) = a
        .post_user(&other_user, &format!("/v1/me/notifications/{id}/read"))
        .await;
    assert_error(s, &b, 404, "not_found");
    let res = a
        .http
        .delete(a.url(&format!("/v1/me/notifications/{id}")))
        .bearer_auth(&other_user)
        .send()
        .await
        .unwrap();
    let (s, b) = split(res).await;
    assert_error(s, &b, 404, "not_found");
    // Tenant B's key publishes into B only.
    let res = a
        .http
        .post(a.url("/v1/notifications"))
        .bearer_auth(&key.key)
        .json(&json!({"user_id": "u-1", "title": "b", "message": "m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let a_token = a.token("u-1", "provider").await;
    let (_, list) = a.get_user(&a_token, "/v1/me/notifications").await;
    let titles: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].clone())
        .collect();
    assert_eq!(titles, vec![json!("secret")]);
    // B's user sees exactly the one notification B published.
    let (_, users) = a.get_user(&b_token, "/v1/me/unread-count").await;
    assert_eq!(users["unread"], 1);
}

#[tokio::test]
async fn admin_endpoints_honour_roles() {
    let app = spawn_app().await;
    let put = |token: String, body: serde_json::Value| {
        app.http
            .put(app.url("/v1/users/u-9"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let admin = app.token("boss", "admin").await;
    let front = app.token("desk", "front_desk").await;
    let provider = app.token("doc", "provider").await;
    let (s, _) = split(
        put(admin.clone(), json!({"role": "provider"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    let (s, b) = split(
        put(front.clone(), json!({"role": "provider"}))
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &b, 403, "forbidden");
    let (s, b) = split(
        put(provider.clone(), json!({"role": "provider"}))
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &b, 403, "forbidden");
    let (s, list) = app.get_user(&front, "/v1/users?role=provider").await;
    assert_eq!(s, 200);
    let ids: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_id"].clone())
        .collect();
    assert!(ids.contains(&json!("u-9")), "{list}");
    let (s, b) = app.get_user(&provider, "/v1/users").await;
    assert_error(s, &b, 403, "forbidden");
    let (s, b) = app.get_user(&admin, "/v1/users?role=janitor").await;
    assert_error(s, &b, 400, "bad_request");
}
