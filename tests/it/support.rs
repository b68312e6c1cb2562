//! Test support: a real hub on port 0 with a fresh database, and real clients.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tidings::app::App;
use tidings::config::Config;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const WAIT: Duration = Duration::from_secs(5);

pub struct TestApp {
    pub base: String,
    pub ws_base: String,
    pub api_key: String,
    pub jwt_secret: String,
    pub tenant: String,
    pub http: reqwest::Client,
    pub app_store: std::sync::Arc<dyn tidings::store::Store>,
    /// The node's connection registry (to watch sessions come and go).
    pub hub: std::sync::Arc<tidings::hub::Hub>,
    /// The app's own database (fault-injection tests reach it directly).
    pub database_url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub stopped: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
    /// With `TIDINGS_TEST_BACKEND=postgres`: this app's own database, dropped with it.
    _pg: Option<PgTestDb>,
}

/// Base configuration: defaults, plus `TIDINGS_*` from the environment (so the
/// same suite runs on another database by setting `TIDINGS_DATABASE_URL`).
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut c = Config::load(None).expect("default config");
    c.listen = "127.0.0.1:0".into();
    if !c.database_url.starts_with("postgres") {
        c.database_url = format!("sqlite://{}/tidings.db", dir.display());
    }
    c.dev_tenant = "clinic-a".into();
    c.dev_api_key = format!("tdk_test_{}", uuid::Uuid::new_v4().simple());
    c.dev_jwt_secret = format!("secret-{}", uuid::Uuid::new_v4().simple());
    c.log_level = "warn".into();
    c
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_with_clock(tweak, None).await
}

/// As [`spawn_app_with`], with services reading time from `clock` when one is
/// given (`App::build_with_clock`: outbound retries, scheduled sends, reminders).
pub async fn spawn_app_with_clock(
    tweak: impl FnOnce(&mut Config),
    clock: Option<std::sync::Arc<dyn tidings::service::clock::Clock>>,
) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path());
    let pg = match std::env::var("TIDINGS_TEST_BACKEND").as_deref() {
        Ok("postgres") => {
            let admin = postgres_admin_url("spawn_app", true).expect("required");
            Some(PgTestDb::create(&admin).await)
        }
        _ => None,
    };
    if let Some(db) = &pg {
        config.database_url = db.url.clone();
        // A test machine creating databases for parallel tests may be loaded: the first
        // connection (and the migrations) get more than the 3 s production default.
        config.database.acquire_timeout_ms = config.database.acquire_timeout_ms.max(10_000);
    }
    tweak(&mut config);
    let (api_key, jwt_secret, tenant) = (
        config.dev_api_key.clone(),
        config.dev_jwt_secret.clone(),
        config.dev_tenant.clone(),
    );
    let database_url = config.database_url.clone();
    let app = match clock {
        Some(clock) => App::build_with_clock(config, clock).await,
        None => App::build(config).await,
    }
    .expect("app builds");
    let port = app.port();
    let app_store = app.store().clone();
    let hub = app.hub().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let stopped = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    TestApp {
        base: format!("http://127.0.0.1:{port}"),
        ws_base: format!("ws://127.0.0.1:{port}"),
        api_key,
        jwt_secret,
        tenant,
        http: reqwest::Client::new(),
        app_store,
        hub,
        database_url,
        stop: Some(tx),
        stopped: Some(stopped),
        _dir: dir,
        _pg: pg,
    }
}

impl TestApp {
    /// Another tenant in this app's store, named `name`: its API key and JWT secret.
    pub async fn create_tenant(
        &self,
        tenant: &tidings::domain::ids::TenantId,
        name: &str,
    ) -> (tidings::service::auth::NewApiKey, String) {
        tidings::service::auth::create_tenant(
            self.app_store.as_ref(),
            tenant,
            name,
            chrono::Utc::now(),
        )
        .await
        .expect("create a tenant")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Starts a graceful shutdown (as SIGTERM does).
    pub fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    pub async fn post_key(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let res = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.api_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        split(res).await
    }

    pub async fn publish(&self, body: Value) -> (StatusCode, Value) {
        self.post_key("/v1/notifications", body).await
    }

    /// Publishes one notification to `user` and returns its id.
    pub async fn publish_to(&self, user: &str, title: &str) -> String {
        let (status, body) = self
            .publish(json!({"user_id": user, "title": title, "message": "m"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["notifications"][0]["id"].as_str().unwrap().to_owned()
    }

    pub async fn token(&self, user: &str, role: &str) -> String {
        let (status, body) = self
            .post_key("/v1/tokens", json!({"user_id": user, "role": role}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    pub async fn get_user(&self, token: &str, path: &str) -> (StatusCode, Value) {
        split(
            self.http
                .get(self.url(path))
                .bearer_auth(token)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn post_user(&self, token: &str, path: &str) -> (StatusCode, Value) {
        split(
            self.http
                .post(self.url(path))
                .bearer_auth(token)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn ws(&self, token: &str, since: Option<&str>) -> Ws {
        let mut url = format!("{}/v1/ws?token={token}", self.ws_base);
        if let Some(s) = since {
            url.push_str(&format!("&since={s}"));
        }
        let (stream, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connects");
        Ws { stream }
    }

    /// An event stream on a fresh connection (served by the direct path).
    pub async fn sse(&self, token: &str, last_event_id: Option<&str>) -> Sse {
        self.sse_on(SsePath::Direct, token, last_event_id).await
    }

    /// An event stream served by the path asked for; asserts that it was.
    pub async fn sse_on(&self, path: SsePath, token: &str, last_event_id: Option<&str>) -> Sse {
        let res = self
            .sse_request(
                path,
                &format!("/v1/sse?token={token}"),
                |req| match last_event_id {
                    Some(id) => req.header("Last-Event-ID", id),
                    None => req,
                },
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        Sse {
            headers: res.headers().clone(),
            body: Box::pin(res.bytes_stream()),
            buf: String::new(),
        }
    }

    /// A GET of `path_and_query` on the server path asked for (any status).
    pub async fn sse_request(
        &self,
        path: SsePath,
        path_and_query: &str,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> reqwest::Response {
        let client = match path {
            // No pooling: the stream is the first request of its connection.
            SsePath::Direct => reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
            // One request first, so the stream reuses that kept-alive connection.
            SsePath::Router => {
                let client = reqwest::Client::new();
                let res = client.get(self.url("/healthz")).send().await.unwrap();
                res.bytes().await.unwrap();
                client
            }
        };
        let res = build(client.get(self.url(path_and_query)))
            .send()
            .await
            .unwrap();
        // The direct path always closes after its one request; hyper keeps alive.
        let close = res
            .headers()
            .get("connection")
            .is_some_and(|v| v == "close");
        assert_eq!(
            close,
            path == SsePath::Direct,
            "served by the wrong path: {path:?}"
        );
        res
    }
}

/// Which server path serves an event stream (src/http/sse_direct.rs): `Direct` when
/// the stream is the connection's first request, `Router` (hyper) otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SsePath {
    Direct,
    Router,
}

impl SsePath {
    pub const BOTH: [SsePath; 2] = [SsePath::Direct, SsePath::Router];
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub async fn split(res: reqwest::Response) -> (StatusCode, Value) {
    let status = res.status();
    let text = res.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// Asserts the contract's error shape and code.
pub fn assert_error(status: StatusCode, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status.as_u16(), want_status, "body: {body}");
    assert_eq!(body["error"]["code"], want_code, "body: {body}");
    assert!(body["error"]["message"].is_string(), "body: {body}");
}

pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What a test sees on a live connection.
#[derive(Debug)]
pub enum Event {
    Frame(String, Value),
    Closed(Option<u16>),
}

impl Ws {
    pub async fn next_event(&mut self, within: Duration) -> Option<Event> {
        loop {
            let msg = tokio::time::timeout(within, self.stream.next())
                .await
                .ok()?;
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    return Some(Event::Frame(
                        v["type"].as_str().unwrap().to_owned(),
                        v["data"].clone(),
                    ));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Some(Event::Closed(frame.map(|f| u16::from(f.code))))
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Some(Event::Closed(None)),
            }
        }
    }

    /// The next frame, which must be of type `kind`.
    pub async fn expect(&mut self, kind: &str) -> Value {
        match self.next_event(WAIT).await {
            Some(Event::Frame(t, data)) if t == kind => data,
            other => panic!("expected a {kind} frame, got {other:?}"),
        }
    }

    /// Nothing arrives for `quiet`.
    pub async fn expect_silence(&mut self, quiet: Duration) {
        if let Some(e) = self.next_event(quiet).await {
            panic!("expected no frame, got {e:?}");
        }
    }

    pub async fn expect_close(&mut self, within: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_event(left).await {
                Some(Event::Closed(code)) => return code,
                Some(Event::Frame(..)) => continue,
                None => panic!("connection not closed within {within:?}"),
            }
        }
    }

    pub async fn send(&mut self, v: Value) {
        self.stream
            .send(Message::text(v.to_string()))
            .await
            .unwrap();
    }
}

pub struct Sse {
    pub headers: reqwest::header::HeaderMap,
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

/// One parsed SSE event (or a comment, as type ":").
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: Value,
}

impl Sse {
    pub async fn next_event(&mut self, within: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut ev = SseEvent {
                    event: String::new(),
                    id: None,
                    data: Value::Null,
                };
                let mut any = false;
                for line in block.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        ev.event = ":".into();
                        ev.data = Value::String(c.trim().into());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        ev.event = v.into();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        ev.id = Some(v.into());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        ev.data = serde_json::from_str(v).unwrap();
                    }
                }
                if any {
                    return Some(ev);
                }
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.body.next()).await {
                Ok(Some(Ok(chunk))) => self.buf.push_str(std::str::from_utf8(&chunk).unwrap()),
                _ => return None,
            }
        }
    }

    /// Whether the server ends the stream within `within` (after any events still
    /// buffered, which are dropped); false if it is still open then.
    pub async fn ends_within(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.body.next()).await {
                Ok(Some(Ok(_))) => continue,
                Ok(None) | Ok(Some(Err(_))) => return true,
                Err(_) => return false,
            }
        }
    }

    /// The next non-comment event, which must be of type `kind`.
    pub async fn expect(&mut self, kind: &str) -> SseEvent {
        loop {
            match self.next_event(WAIT).await {
                Some(e) if e.event == ":" => continue,
                Some(e) if e.event == kind => return e,
                other => panic!("expected SSE {kind}, got {other:?}"),
            }
        }
    }
}

/// Signs a token by hand, for the bad-token cases.
pub fn sign(secret: &str, claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The admin URL of the test PostgreSQL server (`TIDINGS_TEST_POSTGRES_URL`, set by
/// `scripts/services.sh`). When it is unset, a PostgreSQL test fails loudly if it is
/// `required`, on CI (`CI` set) or with `TIDINGS_TEST_REQUIRE_POSTGRES=1`; otherwise it
/// says on stderr that it skips, and returns `None`.
pub fn postgres_admin_url(test: &str, required: bool) -> Option<String> {
    if let Some(url) = std::env::var("TIDINGS_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        return Some(url);
    }
    let flag = |name: &str| {
        std::env::var(name)
            .ok()
            .is_some_and(|v| !v.is_empty() && v != "0" && v != "false")
    };
    if required || flag("CI") || flag("TIDINGS_TEST_REQUIRE_POSTGRES") {
        panic!(
            "{test}: PostgreSQL is required here but TIDINGS_TEST_POSTGRES_URL is not set; \
             run scripts/test, or `source scripts/services.sh; services_start` first"
        );
    }
    eprintln!(
        "SKIPPED {test} on PostgreSQL: TIDINGS_TEST_POSTGRES_URL is not set \
         (scripts/test sets it; CI or TIDINGS_TEST_REQUIRE_POSTGRES=1 make this a failure)"
    );
    None
}

/// A fresh database on the test PostgreSQL server (`CREATE DATABASE tidings_t_<uuid>`),
/// dropped (with its open connections) when this value is dropped.
pub struct PgTestDb {
    pub url: String,
    admin: String,
    name: String,
}

impl PgTestDb {
    pub async fn create(admin_url: &str) -> Self {
        use sqlx::{Connection, Executor};
        let name = format!("tidings_t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach test PostgreSQL at {admin_url}: {e}"));
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("CREATE DATABASE");
        let _ = admin.close().await;
        let mut url = reqwest::Url::parse(admin_url).expect("TIDINGS_TEST_POSTGRES_URL is a URL");
        url.set_path(&name);
        PgTestDb {
            url: url.to_string(),
            admin: admin_url.to_owned(),
            name,
        }
    }
}

impl Drop for PgTestDb {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which must not block on itself: a
        // short-lived thread with its own runtime does the DROP DATABASE.
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                use sqlx::{Connection, Executor};
                let mut c = sqlx::PgConnection::connect(&admin).await.ok()?;
                c.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await
                    .ok()?;
                c.close().await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("note: test database {} was not dropped", self.name);
        }
    }
}

/// The store conformance suites' one generator: for each case `async fn <case>(b: &Backend)`
/// of the calling module (which has `Backend` in scope), `sqlite::<case>` and
/// `postgres::<case>` test functions, so a case is written and listed once and runs on
/// both backends. PostgreSQL cases skip (or fail, see [`postgres_admin_url`]) without a server.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&super::Backend::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let test = concat!(module_path!(), "::", stringify!($name));
                    if let Some(b) = super::Backend::postgres(test).await {
                        super::$name(&b).await;
                    }
                }
            )*
        }
    };
}
pub(crate) use conformance;
