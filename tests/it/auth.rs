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
    let (key, secret) =
        tidings::service::auth::create_tenant(store.as_ref(), &other, "B", chrono::Utc::now())
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

/// Signs with a `kid` header (or none), as the hub's own tokens and a clinic's may.
fn sign_kid(secret: &str, kid: Option<&str>, claims: serde_json::Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn kid_of(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).unwrap().kid
}

#[tokio::test]
async fn token_lifetime_is_bounded_on_verify_and_capped_on_mint() {
    let app = spawn_app_with(|c| c.auth.max_token_ttl_secs = 3600).await;
    let claims = |exp: i64, iat: Option<i64>| {
        let mut c = json!({"sub": "u-1", "tenant": app.tenant, "role": "provider", "exp": exp});
        if let Some(iat) = iat {
            c["iat"] = json!(iat);
        }
        sign(&app.jwt_secret, c)
    };
    let app = &app;
    let get = |t: String| async move { app.get_user(&t, "/v1/me/unread-count").await };
    assert_eq!(get(claims(now() + 3000, Some(now()))).await.0, 200);
    // exp = 2^62: valid for ever, before the fix.
    let (s, b) = get(claims(1 << 62, None)).await;
    assert_error(s, &b, 401, "unauthorized");
    // exp within the limit from now, but the token says it was made to live longer.
    let (s, b) = get(claims(now() + 600, Some(now() - 7200))).await;
    assert_error(s, &b, 401, "unauthorized");
    // An iat in the future would dodge a revocation stamp.
    let (s, b) = get(claims(now() + 3000, Some(now() + 600))).await;
    assert_error(s, &b, 401, "unauthorized");
    // nbf is honoured.
    let mut early = json!({"sub": "u-1", "tenant": app.tenant, "role": "provider", "exp": now() + 600, "nbf": now() + 300});
    let (s, b) = get(sign(&app.jwt_secret, early.clone())).await;
    assert_error(s, &b, 401, "unauthorized");
    early["nbf"] = json!(now() - 1);
    assert_eq!(get(sign(&app.jwt_secret, early)).await.0, 200);

    // Minting caps ttl_seconds to the maximum instead of refusing (the contract's shape).
    let (s, b) = app
        .post_key(
            "/v1/tokens",
            json!({"user_id": "u-1", "role": "provider", "ttl_seconds": 10 * 86400}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let exp = chrono::DateTime::parse_from_rfc3339(b["expires_at"].as_str().unwrap())
        .unwrap()
        .timestamp();
    // Two seconds of margin: the mint and this check read the clock apart.
    assert!((exp - now() - 3600).abs() <= 2, "{b}");
    assert_eq!(get(b["token"].as_str().unwrap().to_owned()).await.0, 200);
}

#[tokio::test]
async fn revoking_a_users_tokens_refuses_them_and_closes_live_connections() {
    let app = spawn_app().await;
    let old = app.token("u-1", "provider").await;
    let bystander = app.token("u-2", "provider").await;
    let mut ws = app.ws(&old, None).await;
    ws.expect("hello").await;
    let mut sse = app.sse(&old, None).await;
    sse.expect("hello").await;
    let mut other = app.ws(&bystander, None).await;
    other.expect("hello").await;

    // front_desk may not; an admin token may.
    let front = app.token("desk", "front_desk").await;
    let (s, b) = app.post_user(&front, "/v1/users/u-1/revoke-tokens").await;
    assert_error(s, &b, 403, "forbidden");
    let admin = app.token("boss", "admin").await;
    let (s, b) = app.post_user(&admin, "/v1/users/u-1/revoke-tokens").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["user_id"], "u-1");
    assert_eq!(b["closed_connections"], 2);

    // Live connections close as on expiry: the client asks for a new token.
    assert_eq!(ws.expect_close(WAIT).await, Some(4001));
    assert_eq!(sse.expect("error").await.data["code"], "token_expired");
    let (s, b) = app.get_user(&old, "/v1/me/unread-count").await;
    assert_error(s, &b, 401, "unauthorized");
    assert_eq!(b["error"]["message"], "token revoked");
    // A token without iat counts as issued a maximum lifetime before its exp.
    let no_iat = sign(
        &app.jwt_secret,
        json!({"sub": "u-1", "tenant": app.tenant, "role": "provider", "exp": now() + 600}),
    );
    let (s, _) = app.get_user(&no_iat, "/v1/me/unread-count").await;
    assert_eq!(s, 401);
    // A token minted afterwards works, and nobody else was touched.
    let fresh = app.token("u-1", "provider").await;
    let (s, _) = app.get_user(&fresh, "/v1/me/unread-count").await;
    assert_eq!(s, 200);
    let mut again = app.ws(&fresh, None).await;
    again.expect("hello").await;
    let (s, _) = app.get_user(&bystander, "/v1/me/unread-count").await;
    assert_eq!(s, 200);
    app.publish_to("u-2", "still here").await;
    assert_eq!(other.expect("notification").await["title"], "still here");
    // Still refused after the credential caches have been refilled.
    let (s, _) = app.get_user(&old, "/v1/me/unread-count").await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn revocations_through_another_node_close_connections_here() {
    // Two nodes on one database: the revocation is written through the store (as
    // node B would) and node A's poll closes its connection.
    let app = spawn_app_with(|c| c.auth.cache_ttl_secs = 1).await;
    let token = app.token("u-1", "provider").await;
    let mut ws = app.ws(&token, None).await;
    ws.expect("hello").await;
    let tenant = tidings::domain::ids::TenantId::parse(&app.tenant).unwrap();
    let user = tidings::domain::ids::UserId::parse("u-1").unwrap();
    let now_ms = chrono::Utc::now().timestamp_millis();
    app.app_store
        .revoke_user_tokens(&tenant, &user, (now() + 1) * 1000, now_ms)
        .await
        .unwrap();
    // The poll runs every second here; ten seconds of margin for a loaded machine.
    assert_eq!(
        ws.expect_close(std::time::Duration::from_secs(10)).await,
        Some(4001)
    );
    let (s, _) = app.get_user(&token, "/v1/me/unread-count").await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn rotating_the_secret_keeps_old_tokens_for_the_overlap_only() {
    let app = spawn_app().await;
    let before = app.token("u-1", "provider").await;
    let old_kid = kid_of(&before).expect("minted tokens name their secret");
    let claims =
        json!({"sub": "u-1", "tenant": app.tenant, "role": "provider", "exp": now() + 600});
    let clinic_made = sign(&app.jwt_secret, claims.clone());

    // Only an API key may rotate (the answer holds the secret).
    let admin = app.token("boss", "admin").await;
    let res = app
        .http
        .post(app.url("/v1/tenant/rotate-secret"))
        .bearer_auth(&admin)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (s, b) = split(res).await;
    assert_error(s, &b, 403, "forbidden");
    let (s, b) = app
        .post_key("/v1/tenant/rotate-secret", json!({"overlap_secs": 3600}))
        .await;
    assert_eq!(s, 200, "{b}");
    let new_secret = b["jwt_secret"].as_str().unwrap().to_owned();
    let new_kid = b["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    assert_ne!(new_secret, app.jwt_secret);

    // During the overlap: old tokens (by kid, and without one) and new ones work.
    for t in [&before, &clinic_made] {
        assert_eq!(app.get_user(t, "/v1/me/unread-count").await.0, 200);
    }
    let after = app.token("u-1", "provider").await;
    assert_eq!(kid_of(&after).as_deref(), Some(new_kid.as_str()));
    assert_eq!(app.get_user(&after, "/v1/me/unread-count").await.0, 200);
    let by_clinic_new = sign_kid(&new_secret, Some(&new_kid), claims.clone());
    assert_eq!(
        app.get_user(&by_clinic_new, "/v1/me/unread-count").await.0,
        200
    );
    // A kid must match its secret, and an unknown kid is refused.
    let mismatched = sign_kid(&app.jwt_secret, Some(&new_kid), claims.clone());
    assert_eq!(
        app.get_user(&mismatched, "/v1/me/unread-count").await.0,
        401
    );
    let unknown = sign_kid(&new_secret, Some("k-nope"), claims.clone());
    assert_eq!(app.get_user(&unknown, "/v1/me/unread-count").await.0, 401);

    // A rotation with no overlap (a leaked secret): the old one is dead at once.
    let (s, b) = app
        .post_key("/v1/tenant/rotate-secret", json!({"overlap_secs": 0}))
        .await;
    assert_eq!(s, 200, "{b}");
    for t in [&before, &clinic_made] {
        assert_eq!(app.get_user(t, "/v1/me/unread-count").await.0, 401);
    }
    // The secret rotated away just now is the previous one, for 0 s: also refused.
    assert_eq!(app.get_user(&after, "/v1/me/unread-count").await.0, 401);
    let latest = app.token("u-1", "provider").await;
    assert_eq!(app.get_user(&latest, "/v1/me/unread-count").await.0, 200);
    let (s, b) = app
        .post_key(
            "/v1/tenant/rotate-secret",
            json!({"overlap_secs": 99_999_999}),
        )
        .await;
    assert_error(s, &b, 422, "invalid");
    assert_eq!(b["error"]["field"], "overlap_secs");
}

#[tokio::test]
async fn sqlite_database_file_and_directory_are_private() {
    use std::os::unix::fs::PermissionsExt;
    if std::env::var("TIDINGS_TEST_BACKEND").as_deref() == Ok("postgres") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").join("nested");
    let db = data.join("tidings.db");
    let url = format!("sqlite://{}", db.display());
    let _app = spawn_app_with(|c| c.database_url = url).await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&db), 0o600, "database file");
    assert_eq!(mode(&data), 0o700, "data directory");
    assert_eq!(mode(&dir.path().join("data")), 0o700, "created parent");
    let wal = data.join("tidings.db-wal");
    if wal.exists() {
        assert_eq!(mode(&wal), 0o600, "write-ahead log");
    }
    // An existing database file made world-readable is narrowed again.
    drop(_app);
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let url = format!("sqlite://{}", db.display());
    let _again = spawn_app_with(|c| c.database_url = url).await;
    assert_eq!(mode(&db), 0o600);
}

#[tokio::test]
async fn no_credentials_are_made_up_beyond_loopback() {
    if std::env::var("TIDINGS_TEST_BACKEND").as_deref() == Ok("postgres") {
        return;
    }
    let start = |listen: &'static str| {
        let dir = tempfile::tempdir().unwrap();
        let mut c = test_config(dir.path());
        c.listen = listen.into();
        c.dev_tenant = "demo".into();
        c.dev_api_key = String::new();
        c.dev_jwt_secret = String::new();
        async move {
            let app = tidings::app::App::build(c).await.unwrap();
            let made = app.created_dev_credentials.is_some();
            let demo = tidings::domain::ids::TenantId::parse("demo").unwrap();
            let exists = app.store().tenant_exists(&demo).await.unwrap();
            drop(dir);
            (made, exists)
        }
    };
    assert_eq!(start("0.0.0.0:0").await, (false, false), "network listener");
    assert_eq!(start("127.0.0.1:0").await, (true, true), "development mode");
}

#[tokio::test]
async fn failed_authentications_are_counted_by_reason() {
    let app = spawn_app().await;
    let res = app
        .http
        .get(app.url("/v1/users"))
        .bearer_auth("tdk_unknownkey_0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let expired = sign(
        &app.jwt_secret,
        json!({"sub": "u-1", "tenant": app.tenant, "role": "provider", "exp": now() - 60}),
    );
    assert_eq!(app.get_user(&expired, "/v1/me/unread-count").await.0, 401);
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for reason in ["unknown_key", "expired_token"] {
        assert!(
            text.contains(&format!(
                "tidings_auth_failures_total{{reason=\"{reason}\"}}"
            )),
            "{reason} missing from /metrics"
        );
    }
}
