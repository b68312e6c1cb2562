//! What the edge refuses and what one bad request may not break (issue #11):
//! control characters in every text field (422 naming it, nothing stored), links
//! that leave the site, trailing bytes after a JSON body, `data` nesting, token
//! names; the CSV formula guard and `Cache-Control: no-store`; and batch isolation:
//! a request the database refuses inside a group-commit batch fails alone.
//!
//! Run on both backends: PostgreSQL is where a NUL used to be a 500 (it cannot
//! store one in `text` or `jsonb`) and fail every other tenant's publish in the
//! same batch.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::{Connection, Executor};

use crate::support::{assert_error, spawn_app, spawn_app_with, split, TestApp};

/// A send time no worker reaches during a test.
const LATER: &str = "2099-01-01T00:00:00Z";

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = app
        .http
        .request(method, app.url(path))
        .bearer_auth(&app.api_key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    split(req.send().await.unwrap()).await
}

async fn raw_post(app: &TestApp, path: &str, body: &str) -> (StatusCode, Value) {
    let res = app
        .http
        .post(app.url(path))
        .bearer_auth(&app.api_key)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    split(res).await
}

async fn count(app: &TestApp, path: &str) -> usize {
    let (s, b) = call(app, Method::GET, path, None).await;
    assert_eq!(s, StatusCode::OK, "{path}: {b}");
    b["items"].as_array().unwrap().len()
}

fn template(name: &str) -> Value {
    json!({"name": name, "channel": "sms", "kind": "billing",
           "body_en": "Hi {patient_name}", "body_ar": "مرحبا {patient_name}",
           "variables": ["patient_name"], "is_active": true})
}

fn event() -> Value {
    json!({"id": "e1", "type": "appointment.booked", "occurred_at": "2026-01-01T10:00:00+03:00",
           "appointment": {"id": "a1", "number": "APT-1", "start_at": "2099-01-02T10:00:00+03:00",
             "provider": {"id": "dr-1", "name": "Dr. Sara"},
             "patient": {"id": "p-1", "name": "Ahmed", "phone": "+966501234567"}}})
}

/// `value` with the string at `pointer` replaced by `text`.
fn with(mut value: Value, pointer: &str, text: &str) -> Value {
    *value
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer}")) = json!(text);
    value
}

#[tokio::test]
async fn control_characters_in_every_text_field_are_422_naming_it_and_change_nothing() {
    let app = spawn_app().await;
    let publish = json!({"user_id": "u1", "title": "t", "message": "m", "category": "c",
                         "related": {"type": "appointment", "id": "a1"}, "link": "/x",
                         "data": {"list": [{"k": "v"}]}});
    let send = json!({"to": "+966501234567", "body": "b", "kind": "billing", "send_at": LATER,
                      "group_key": "g", "variables": {}});
    let bulk = json!({"template": "t1", "send_at": LATER, "recipients": [
        {"to": "+966501234567", "variables": {"patient_name": "A"}},
        {"to": "+966501234568", "variables": {"patient_name": "B"}}]});
    // NUL (PostgreSQL's nemesis), ESC (terminal escapes), BS and FF (short JSON escapes).
    let cases: Vec<(Method, &str, Value, &str)> = vec![
        (
            Method::POST,
            "/v1/notifications",
            with(publish.clone(), "/title", "a\0b"),
            "title",
        ),
        (
            Method::POST,
            "/v1/notifications",
            with(publish.clone(), "/message", "\u{1b}[31m"),
            "message",
        ),
        (
            Method::POST,
            "/v1/notifications",
            with(publish.clone(), "/category", "c\u{8}"),
            "category",
        ),
        (
            Method::POST,
            "/v1/notifications",
            with(publish.clone(), "/related/type", "\0"),
            "related.type",
        ),
        (
            Method::POST,
            "/v1/notifications",
            with(publish.clone(), "/related/id", "a\u{c}"),
            "related.id",
        ),
        (
            Method::POST,
            "/v1/notifications",
            with(publish.clone(), "/link", "/x\0"),
            "link",
        ),
        (
            Method::POST,
            "/v1/notifications",
            with(publish.clone(), "/data/list/0/k", "v\0"),
            "data.list[0].k",
        ),
        (
            Method::POST,
            "/v1/notifications",
            json!({"user_id": "u1", "title": "t", "message": "m",
            "data": {"bad\u{0}key": 1}}),
            "data.bad\\0key",
        ),
        (
            Method::PUT,
            "/v1/users/u1",
            json!({"role": "provider", "name": "Dr\0"}),
            "name",
        ),
        (
            Method::PUT,
            "/v1/users/u1",
            json!({"role": "provider", "locale": "en\u{1}"}),
            "locale",
        ),
        (
            Method::POST,
            "/v1/tokens",
            json!({"user_id": "u1", "role": "provider", "name": "\0"}),
            "name",
        ),
        (
            Method::POST,
            "/v1/templates",
            with(template("t0"), "/body_en", "Hi\0 {patient_name}"),
            "body_en",
        ),
        (
            Method::POST,
            "/v1/templates",
            with(template("t0"), "/variables/0", "patient_name\0"),
            "variables[0]",
        ),
        (
            Method::PUT,
            "/v1/patients/p-1/preferences",
            json!({"language": "en\0"}),
            "language",
        ),
        (
            Method::POST,
            "/v1/messages",
            with(send.clone(), "/body", "b\0"),
            "body",
        ),
        (
            Method::POST,
            "/v1/messages",
            with(send.clone(), "/group_key", "g\u{1f}"),
            "group_key",
        ),
        (
            Method::POST,
            "/v1/messages",
            json!({"to": "+966501234567", "template": "t1", "send_at": LATER,
            "variables": {"patient_name": "A\0"}}),
            "variables.patient_name",
        ),
        (
            Method::POST,
            "/v1/messages/bulk",
            with(bulk.clone(), "/recipients/1/variables/patient_name", "B\0"),
            "recipients[1].variables.patient_name",
        ),
        (
            Method::POST,
            "/v1/events",
            with(event(), "/appointment/patient/name", "Ahmed\0"),
            "appointment.patient.name",
        ),
        (
            Method::POST,
            "/v1/events",
            with(event(), "/appointment/number", "\u{7}"),
            "appointment.number",
        ),
        (
            Method::PUT,
            "/v1/me/preferences",
            json!({"muted_categories": ["ok", "bad\0"]}),
            "muted_categories[1]",
        ),
    ];
    let staff = app.token("u1", "provider").await;
    for (method, path, body, field) in cases {
        let mut req = app.http.request(method.clone(), app.url(path)).json(&body);
        req = if path.starts_with("/v1/me/") {
            req.bearer_auth(&staff)
        } else {
            req.bearer_auth(&app.api_key)
        };
        let (s, b) = split(req.send().await.unwrap()).await;
        assert_error(s, &b, 422, "invalid");
        assert_eq!(b["error"]["field"], field, "{method} {path}: {b}");
    }
    // Nothing was stored anywhere.
    let (s, inbox) = app.get_user(&staff, "/v1/me/notifications").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(inbox["items"], json!([]));
    assert_eq!(count(&app, "/v1/users").await, 0);
    assert_eq!(count(&app, "/v1/templates").await, 0);
    assert_eq!(count(&app, "/v1/messages").await, 0);
    assert_eq!(count(&app, "/v1/events").await, 0);
    let (_, prefs) = call(&app, Method::GET, "/v1/patients/p-1/preferences", None).await;
    assert_eq!(prefs["stored"], false, "{prefs}");
    let (_, mine) = app.get_user(&staff, "/v1/me/preferences").await;
    assert_eq!(mine["muted_categories"], json!([]), "{mine}");
    // Tab, LF and CR are text; so is the rest of Unicode.
    let fine = with(publish, "/message", "line 1\r\n\tline 2 \u{7f} موعد");
    let (s, b) = call(&app, Method::POST, "/v1/notifications", Some(fine)).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
}

#[tokio::test]
async fn control_characters_in_query_parameters_are_422_naming_them() {
    let app = spawn_app().await;
    for (path, field) in [
        ("/v1/messages?q=a%00b", "q"),
        ("/v1/messages?group_key=%1B", "group_key"),
        ("/v1/users?role=provider&cursor=%00", "cursor"),
    ] {
        let (s, b) = call(&app, Method::GET, path, None).await;
        assert_error(s, &b, 422, "invalid");
        assert_eq!(b["error"]["field"], field, "{path}: {b}");
    }
    let (s, b) = call(&app, Method::GET, "/v1/messages?q=%09tab%20ok", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

#[tokio::test]
async fn links_are_http_urls_or_paths_with_a_single_slash() {
    let app = spawn_app().await;
    for bad in [
        "/\\evil.example/phish",
        "//evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
        "evil.example/x",
        "https:evil.example",
    ] {
        let (s, b) = app
            .publish(json!({"user_id": "u1", "title": "t", "message": "m", "link": bad}))
            .await;
        assert_error(s, &b, 422, "invalid");
        assert_eq!(b["error"]["field"], "link", "{bad:?}: {b}");
    }
    for good in [
        "/appointments/42?tab=notes#top",
        "https://clinic.example/a",
        "HTTP://clinic.example",
    ] {
        let (s, b) = app
            .publish(json!({"user_id": "u1", "title": "t", "message": "m", "link": good}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{good:?}: {b}");
    }
}

#[tokio::test]
async fn trailing_bytes_after_a_json_body_are_400_and_change_nothing() {
    let app = spawn_app().await;
    let one = r#"{"user_id":"u1","title":"t","message":"m"}"#;
    for body in [
        format!("{one}garbage"),
        format!("{one} {one}"),
        format!("{one}]"),
    ] {
        let (s, b) = raw_post(&app, "/v1/notifications", &body).await;
        assert_error(s, &b, 400, "malformed_json");
    }
    let (s, b) = raw_post(
        &app,
        "/v1/tokens",
        r#"{"user_id":"u1","role":"admin"}{"role":"x"}"#,
    )
    .await;
    assert_error(s, &b, 400, "malformed_json");
    // Whitespace after the value is not a second value.
    let (s, b) = raw_post(&app, "/v1/notifications", &format!("{one} \r\n\t")).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let staff = app.token("u1", "provider").await;
    let (_, inbox) = app.get_user(&staff, "/v1/me/notifications").await;
    assert_eq!(inbox["items"].as_array().unwrap().len(), 1, "{inbox}");
}

#[tokio::test]
async fn data_nested_deeper_than_32_levels_is_422_naming_data() {
    let app = spawn_app().await;
    let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let body = |data: String| {
        format!(r#"{{"user_id":"u1","title":"t","message":"m","data":{{"a":{data}}}}}"#)
    };
    // `data` itself is level 1: 31 arrays inside it make 32.
    let (s, b) = raw_post(&app, "/v1/notifications", &body(nested(31))).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    for depth in [32, 4_000] {
        let (s, b) = raw_post(&app, "/v1/notifications", &body(nested(depth))).await;
        assert_error(s, &b, 422, "invalid");
        assert_eq!(b["error"]["field"], "data", "{depth}: {b}");
    }
    let staff = app.token("u1", "provider").await;
    let (_, inbox) = app.get_user(&staff, "/v1/me/notifications").await;
    assert_eq!(inbox["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn token_names_have_the_directory_limits() {
    let app = spawn_app().await;
    for (name, locale, field) in [
        ("x".repeat(200 * 1024), "en".to_owned(), "name"),
        ("ش".repeat(201), "en".to_owned(), "name"),
        ("ok".to_owned(), "x".repeat(36), "locale"),
    ] {
        let (s, b) = call(
            &app,
            Method::POST,
            "/v1/tokens",
            Some(json!({"user_id": "u1", "role": "provider", "name": name, "locale": locale})),
        )
        .await;
        // (A body is not printed on failure: a minted token would be 270 KB.)
        assert_eq!(
            (s.as_u16(), b["error"]["field"].as_str()),
            (422, Some(field))
        );
        // The same limits as the directory's.
        let (s, b) = call(
            &app,
            Method::PUT,
            "/v1/users/u1",
            Some(json!({"role": "provider", "name": name, "locale": locale})),
        )
        .await;
        // (A body is not printed on failure: a minted token would be 270 KB.)
        assert_eq!(
            (s.as_u16(), b["error"]["field"].as_str()),
            (422, Some(field))
        );
    }
    let (s, b) = call(&app, Method::POST, "/v1/tokens",
        Some(json!({"user_id": "u1", "role": "provider", "name": "ش".repeat(200), "locale": "ar-SA"}))).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

#[tokio::test]
async fn api_answers_are_not_cached_and_admin_assets_keep_their_etag() {
    let app = spawn_app().await;
    let staff = app.token("u1", "provider").await;
    let no_store = |res: &reqwest::Response| {
        res.headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let res = app
        .http
        .get(app.url("/v1/me/notifications"))
        .bearer_auth(&staff)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(no_store(&res).as_deref(), Some("no-store"));
    let res = app
        .http
        .post(app.url("/v1/notifications"))
        .bearer_auth(&app.api_key)
        .json(&json!({"user_id": "u1", "title": "t", "message": "m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(no_store(&res).as_deref(), Some("no-store"));
    // Errors carry patient data too (a field's value may be quoted): same header.
    let res = app
        .http
        .get(app.url("/v1/messages/nope"))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error());
    assert_eq!(no_store(&res).as_deref(), Some("no-store"));
    let res = app.http.get(app.url("/v1/users")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(no_store(&res).as_deref(), Some("no-store"));
    let res = app.http.get(app.url("/admin")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(no_store(&res).as_deref(), Some("no-cache"));
    assert!(res.headers().contains_key("etag"));
}

#[tokio::test]
async fn every_csv_column_is_formula_guarded() {
    let app = spawn_app().await;
    let to = "=cmd|'/Ccalc'!A0@clinic.example";
    let (s, b) = call(&app, Method::POST, "/v1/messages", Some(json!({"to": to, "channel": "email",
        "subject": "@SUM(1+1)", "body": "-2+3", "kind": "billing", "send_at": LATER, "group_key": "+g"}))).await;
    assert!(s == StatusCode::ACCEPTED || s == StatusCode::OK, "{s} {b}");
    let res = app
        .http
        .get(app.url("/v1/messages/export.csv"))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let text = res.text().await.unwrap();
    let row = text.lines().nth(1).expect("one message row");
    for guarded in [
        "\"'=cmd|'/Ccalc'!A0@clinic.example\"",
        "\"'@SUM(1+1)\"",
        "\"'-2+3\"",
        "\"'+g\"",
    ] {
        assert!(row.contains(guarded), "{guarded} in {row}");
    }
    // No cell of the row starts with a formula character unguarded.
    for cell in row.split(',') {
        assert!(!cell.starts_with(['=', '+', '-', '@']), "{cell} in {row}");
    }
}

// --- batch isolation -------------------------------------------------------------

/// A second connection to the app's own database: it makes the database refuse
/// rows of the user `poison` (a trigger: a value that passes every validation and
/// that the database still refuses), and holds a table's write lock so that
/// requests queue up and the next group commit takes them all at once.
enum Db {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Db {
    async fn open(app: &TestApp) -> Db {
        if app.database_url.starts_with("postgres") {
            Db::Postgres(
                sqlx::PgConnection::connect(&app.database_url)
                    .await
                    .unwrap(),
            )
        } else {
            Db::Sqlite(
                sqlx::SqliteConnection::connect(&app.database_url)
                    .await
                    .unwrap(),
            )
        }
    }

    async fn run(&mut self, sql: &str) {
        match self {
            Db::Sqlite(c) => {
                c.execute(sqlx::raw_sql(sql)).await.unwrap();
            }
            Db::Postgres(c) => {
                c.execute(sqlx::raw_sql(sql)).await.unwrap();
            }
        }
    }

    async fn poison(&mut self, table: &str) {
        let sql = match self {
            Db::Sqlite(_) => format!(
                "CREATE TRIGGER poison_{table} BEFORE INSERT ON {table} WHEN NEW.user_id = 'poison'
                 BEGIN SELECT RAISE(ABORT, 'poisoned row'); END"
            ),
            Db::Postgres(_) => format!(
                "CREATE OR REPLACE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN IF NEW.user_id = 'poison' THEN RAISE EXCEPTION 'poisoned row'; END IF; RETURN NEW; END $$;
                 CREATE TRIGGER poison_{table} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION poison()"
            ),
        };
        self.run(&sql).await;
    }

    async fn lock(&mut self, table: &str) {
        match self {
            Db::Sqlite(_) => self.run("BEGIN IMMEDIATE").await,
            Db::Postgres(_) => {
                self.run(&format!("BEGIN; LOCK TABLE {table} IN EXCLUSIVE MODE"))
                    .await
            }
        }
    }

    async fn unlock(&mut self) {
        self.run("COMMIT").await;
    }
}

/// Requests in flight get this long to reach the writer's queue while the lock is
/// held: local HTTP on a loaded 2-core machine takes milliseconds; a straggler
/// would only land in a later batch (the test would then check less, never fail).
const SETTLE: Duration = Duration::from_millis(1_500);

#[tokio::test]
async fn a_publish_the_database_refuses_fails_alone_in_its_batch() {
    // The writer waits on the held lock: give the database a busy timeout / statement
    // timeout far above SETTLE.
    let app = spawn_app_with(|c| c.database.statement_timeout_ms = 30_000).await;
    let other = tidings::domain::ids::TenantId::parse("clinic-b").unwrap();
    let (key_b, _) = app.create_tenant(&other, "B").await;
    let mut db = Db::open(&app).await;
    db.poison("notifications").await;
    db.lock("notifications").await;
    let post = |key: String, user: String| {
        let (http, url) = (app.http.clone(), app.url("/v1/notifications"));
        tokio::spawn(async move {
            let res = http
                .post(url)
                .bearer_auth(key)
                .json(&json!({"user_id": user, "title": "t", "message": "m"}))
                .send()
                .await
                .unwrap();
            split(res).await
        })
    };
    // The first publish takes the writer and waits on the lock; everything sent
    // after it queues and goes into the next batch together.
    let first = post(key_b.key.clone(), "b-first".into());
    tokio::time::sleep(SETTLE).await;
    let guilty = post(app.api_key.clone(), "poison".into());
    let mut innocent = Vec::new();
    for i in 0..10 {
        innocent.push(post(key_b.key.clone(), format!("b-{i}")));
        innocent.push(post(app.api_key.clone(), format!("a-{i}")));
    }
    tokio::time::sleep(SETTLE).await;
    db.unlock().await;

    let (s, b) = first.await.unwrap();
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = guilty.await.unwrap();
    assert_error(s, &b, 500, "internal");
    for (i, task) in innocent.into_iter().enumerate() {
        let (s, b) = task.await.unwrap();
        assert_eq!(
            s,
            StatusCode::CREATED,
            "publish {i} shared the guilty one's fate: {b}"
        );
    }
    // Stored, not only answered.
    let staff = app.token("a-3", "provider").await;
    let (_, inbox) = app.get_user(&staff, "/v1/me/notifications").await;
    assert_eq!(inbox["items"].as_array().unwrap().len(), 1, "{inbox}");
    let poisoned = app.token("poison", "provider").await;
    let (_, inbox) = app.get_user(&poisoned, "/v1/me/notifications").await;
    assert_eq!(inbox["items"], json!([]));
}

#[tokio::test]
async fn a_directory_row_the_database_refuses_fails_alone_in_its_batch() {
    let app = spawn_app_with(|c| c.database.statement_timeout_ms = 30_000).await;
    let mut db = Db::open(&app).await;
    db.poison("users").await;
    let mut tokens = Vec::new();
    for user in ["first", "poison", "u-0", "u-1", "u-2", "u-3", "u-4"] {
        tokens.push((user, app.token(user, "provider").await));
    }
    db.lock("users").await;
    let ws_base = app.ws_base.clone();
    let connect = |token: String| {
        let url = format!("{ws_base}/v1/ws?token={token}");
        tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            // The hello comes after the claims were noted (written or refused).
            use futures_util::StreamExt;
            ws.next().await.unwrap().unwrap()
        })
    };
    let mut tokens = tokens.into_iter();
    let first = connect(tokens.next().unwrap().1);
    tokio::time::sleep(SETTLE).await;
    let rest: Vec<_> = tokens.map(|(_, t)| connect(t)).collect();
    tokio::time::sleep(SETTLE).await;
    db.unlock().await;
    first.await.unwrap();
    for task in rest {
        // A refused directory write does not keep anyone from their notifications.
        let hello = task.await.unwrap();
        assert!(hello.to_text().unwrap().contains("hello"), "{hello:?}");
    }
    let (s, b) = call(&app, Method::GET, "/v1/users?limit=200", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let mut users: Vec<&str> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_id"].as_str().unwrap())
        .collect();
    users.sort();
    assert_eq!(users, ["first", "u-0", "u-1", "u-2", "u-3", "u-4"]);
}
