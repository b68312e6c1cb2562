//! Several hub *processes* behind no load balancer: tabs of one user on different
//! nodes, fan-out through a real Redis, and the failures of issue #3 (Redis restarted,
//! a node killed). Every test asserts exact delivery counts.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::*;

/// A redis-server this test owns (so it can kill and restart it).
struct Redis {
    port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Redis {
    async fn start() -> Redis {
        let mut r = Redis {
            port: free_port(),
            child: None,
        };
        r.restart().await;
        r
    }

    async fn restart(&mut self) {
        let bin =
            std::env::var("TIDINGS_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let child = Command::new(&bin)
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin} (scripts/test installs redis-server): {e}")
            });
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis did not start on {}", self.port);
    }

    async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().await.unwrap();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// One hub process.
struct Node {
    base: String,
    ws_base: String,
    child: Child,
}

struct Cluster {
    nodes: Vec<Node>,
    api_key: String,
    env: Vec<(String, String)>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
    _pg: Option<PgTestDb>,
}

impl Cluster {
    async fn start(n: usize, redis: &Redis) -> Cluster {
        Cluster::start_with(n, redis, None, &[]).await
    }

    /// `database_url`: a database of the test's own (else a fresh one per cluster);
    /// `extra`: more environment for every node.
    async fn start_with(
        n: usize,
        redis: &Redis,
        database_url: Option<String>,
        extra: &[(&str, &str)],
    ) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        // The nodes share one database: PostgreSQL in the suite's PostgreSQL pass (the
        // deployment the scale-out is for), else one SQLite file.
        let pg = match std::env::var("TIDINGS_TEST_BACKEND").as_deref() {
            _ if database_url.is_some() => None,
            Ok("postgres") => Some(
                PgTestDb::create(&postgres_admin_url("multinode", true).expect("required")).await,
            ),
            _ => None,
        };
        let database_url = match (&pg, database_url) {
            (_, Some(url)) => url,
            (Some(db), None) => db.url.clone(),
            (None, None) => format!("sqlite://{}/shared.db", dir.path().display()),
        };
        let api_key = format!("tdk_multi_{}", uuid::Uuid::new_v4().simple());
        let mut env = vec![
            ("TIDINGS_DATABASE_URL".to_owned(), database_url),
            ("TIDINGS_REDIS_URL".to_owned(), redis.url()),
            ("TIDINGS_DEV_TENANT".to_owned(), "clinic-a".to_owned()),
            ("TIDINGS_DEV_API_KEY".to_owned(), api_key.clone()),
            (
                "TIDINGS_DEV_JWT_SECRET".to_owned(),
                "multi-node-secret-0123456789".to_owned(),
            ),
            (
                "TIDINGS_LOG_LEVEL".to_owned(),
                std::env::var("TIDINGS_TEST_NODE_LOG_LEVEL").unwrap_or_else(|_| "warn".into()),
            ),
        ];
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let mut cluster = Cluster {
            nodes: Vec::new(),
            api_key,
            env,
            http: reqwest::Client::new(),
            _dir: dir,
            _pg: pg,
        };
        for _ in 0..n {
            let node = cluster.spawn_node().await;
            cluster.nodes.push(node);
        }
        cluster
    }

    async fn spawn_node(&self) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tidings"))
            .arg("serve")
            .env("TIDINGS_LISTEN", "127.0.0.1:0")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(match std::env::var("TIDINGS_TEST_NODE_LOGS") {
                // For debugging: TIDINGS_TEST_NODE_LOGS=DIR keeps each node's JSON log.
                Ok(dir) => Stdio::from(
                    std::fs::File::create(format!(
                        "{dir}/node-{}.log",
                        uuid::Uuid::new_v4().simple()
                    ))
                    .unwrap(),
                ),
                Err(_) => Stdio::null(),
            })
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Generous: three debug builds start at once on a loaded 2-core machine.
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(a) = line.strip_prefix("listening: ") {
                    return a.to_owned();
                }
            }
            panic!("node exited before listening");
        })
        .await
        .expect("node starts");
        Node {
            base: format!("http://{addr}"),
            ws_base: format!("ws://{addr}"),
            child,
        }
    }

    async fn publish(&self, node: usize, body: Value) -> Value {
        let res = self
            .http
            .post(format!("{}/v1/notifications", self.nodes[node].base))
            .bearer_auth(&self.api_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let (s, b) = split(res).await;
        assert_eq!(s, 201, "{b}");
        b
    }

    async fn token(&self, user: &str) -> String {
        let res = self
            .http
            .post(format!("{}/v1/tokens", self.nodes[0].base))
            .bearer_auth(&self.api_key)
            .json(&json!({"user_id": user, "role": "front_desk"}))
            .send()
            .await
            .unwrap();
        split(res).await.1["token"].as_str().unwrap().to_owned()
    }

    async fn ws(&self, node: usize, token: &str, since: Option<&str>) -> Ws {
        let mut url = format!("{}/v1/ws?token={token}", self.nodes[node].ws_base);
        if let Some(s) = since {
            url.push_str(&format!("&since={s}"));
        }
        let (stream, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connects");
        Ws { stream }
    }
}

/// Collects notification ids (and the last unread count) from a connection until
/// `want` distinct ids arrived; panics on a duplicate.
async fn collect(ws: &mut Ws, want: usize, within: Duration) -> (Vec<String>, Option<i64>) {
    let mut ids = Vec::new();
    let mut unread = None;
    let deadline = tokio::time::Instant::now() + within;
    while ids.len() < want {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match ws.next_event(left).await {
            Some(Event::Frame(t, d)) if t == "notification" => {
                let id = d["id"].as_str().unwrap().to_owned();
                assert!(!ids.contains(&id), "duplicate delivery of {id}");
                ids.push(id);
            }
            Some(Event::Frame(t, d)) if t == "unread_count" => unread = d["unread"].as_i64(),
            Some(Event::Frame(..)) => {}
            other => panic!("after {} of {want}: {other:?}", ids.len()),
        }
    }
    (ids, unread)
}

#[tokio::test]
async fn tabs_on_three_nodes_each_get_every_event_once_with_one_count() {
    let redis = Redis::start().await;
    let cluster = Cluster::start(3, &redis).await;
    let token = cluster.token("u-1").await;
    let mut tabs = Vec::new();
    for node in 0..3 {
        let mut ws = cluster.ws(node, &token, None).await;
        ws.expect("hello").await;
        tabs.push(ws);
    }
    // Publish via node 1: every tab, on every node, gets it exactly once.
    let body = cluster
        .publish(0, json!({"user_id": "u-1", "title": "t", "message": "m"}))
        .await;
    let id = body["notifications"][0]["id"].as_str().unwrap().to_owned();
    for t in tabs.iter_mut() {
        assert_eq!(t.expect("notification").await["id"], json!(id));
        assert_eq!(t.expect("unread_count").await["unread"], 1);
        t.expect_silence(Duration::from_millis(300)).await;
    }
    // Read via node 2: every tab sees it; the count on node 3 agrees.
    let res = cluster
        .http
        .post(format!(
            "{}/v1/me/notifications/{id}/read",
            cluster.nodes[1].base
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    for t in tabs.iter_mut() {
        assert_eq!(t.expect("read").await["ids"], json!([id]));
        assert_eq!(t.expect("unread_count").await["unread"], 0);
    }
    let res = cluster
        .http
        .get(format!("{}/v1/me/unread-count", cluster.nodes[2].base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(split(res).await.1["unread"], 0);
    for node in 0..3 {
        let (s, ready) = split(
            cluster
                .http
                .get(format!("{}/readyz", cluster.nodes[node].base))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(s, 200);
        assert_eq!(ready["bus"], "redis");
    }
}

#[tokio::test]
async fn a_role_broadcast_reaches_every_connection_on_every_node_once() {
    let redis = Redis::start().await;
    let cluster = Cluster::start(3, &redis).await;
    // 30 users (more than the per-user channel threshold: the tenant channel is used),
    // two connections each on two different nodes.
    let mut conns = Vec::new();
    for i in 0..30 {
        let user = format!("fd-{i}");
        let token = cluster.token(&user).await;
        for k in 0..2 {
            let mut ws = cluster.ws((i + k) % 3, &token, None).await;
            ws.expect("hello").await;
            conns.push((user.clone(), ws));
        }
    }
    let body = cluster
        .publish(
            1,
            json!({"role": "front_desk", "title": "all hands", "message": "m"}),
        )
        .await;
    let by_user: HashMap<String, String> = body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["user_id"].as_str().unwrap().to_owned(),
                n["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(by_user.len(), 30);
    for (user, ws) in conns.iter_mut() {
        let (ids, unread) = collect(ws, 1, WAIT).await;
        assert_eq!(ids, vec![by_user[user].clone()]);
        if unread.is_none() {
            assert_eq!(ws.expect("unread_count").await["unread"], 1);
        }
        ws.expect_silence(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn redis_restarted_mid_stream_loses_nothing_and_duplicates_nothing() {
    let mut redis = Redis::start().await;
    let cluster = Cluster::start(3, &redis).await;
    let token = cluster.token("u-1").await;
    let mut tab_b = cluster.ws(1, &token, None).await;
    let mut tab_c = cluster.ws(2, &token, None).await;
    tab_b.expect("hello").await;
    tab_c.expect("hello").await;
    let mut published = Vec::new();
    for i in 0..40 {
        if i == 15 {
            redis.kill().await;
            // While Redis is down, publishing still works (it is stored) and readiness says so.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let (s, ready) = split(
                cluster
                    .http
                    .get(format!("{}/readyz", cluster.nodes[0].base))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(s, 503, "{ready}");
            assert_eq!(ready["bus_status"], "down");
        }
        if i == 25 {
            redis.restart().await;
        }
        let b = cluster
            .publish(
                0,
                json!({"user_id": "u-1", "title": format!("n{i}"), "message": "m"}),
            )
            .await;
        published.push(b["notifications"][0]["id"].as_str().unwrap().to_owned());
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    for tab in [&mut tab_b, &mut tab_c] {
        let (mut ids, _) = collect(tab, published.len(), Duration::from_secs(20)).await;
        ids.sort();
        assert_eq!(
            ids, published,
            "every notification exactly once after the restart"
        );
        // The count converges to the truth.
        let mut last = None;
        while let Some(Event::Frame(t, d)) = tab.next_event(Duration::from_millis(500)).await {
            assert_ne!(t, "notification", "duplicate: {d}");
            if t == "unread_count" {
                last = d["unread"].as_i64();
            }
        }
        let res = cluster
            .http
            .get(format!("{}/v1/me/unread-count", cluster.nodes[0].base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(split(res).await.1["unread"], 40);
        if let Some(n) = last {
            assert_eq!(n, 40);
        }
    }
}

#[tokio::test]
async fn a_node_killed_mid_stream_its_clients_resume_elsewhere_without_gap() {
    let redis = Redis::start().await;
    let mut cluster = Cluster::start(3, &redis).await;
    let token = cluster.token("u-1").await;
    let mut tab = cluster.ws(2, &token, None).await;
    tab.expect("hello").await;
    let mut published = Vec::new();
    let mut seen = Vec::new();
    for i in 0..10 {
        let b = cluster
            .publish(
                0,
                json!({"user_id": "u-1", "title": format!("a{i}"), "message": "m"}),
            )
            .await;
        published.push(b["notifications"][0]["id"].as_str().unwrap().to_owned());
    }
    let (got, _) = collect(&mut tab, 10, WAIT).await;
    seen.extend(got);
    // SIGKILL node 3, keep publishing through node 1.
    cluster.nodes[2].child.start_kill().unwrap();
    cluster.nodes[2].child.wait().await.unwrap();
    // The client notices the dead node (after any frames still in flight).
    tab.expect_close(WAIT).await;
    for i in 0..10 {
        let b = cluster
            .publish(
                0,
                json!({"user_id": "u-1", "title": format!("b{i}"), "message": "m"}),
            )
            .await;
        published.push(b["notifications"][0]["id"].as_str().unwrap().to_owned());
    }
    // The client reconnects to node 2 with the last id it saw.
    let mut again = cluster.ws(1, &token, seen.last().map(String::as_str)).await;
    assert_eq!(again.expect("hello").await["unread"], 20);
    let (rest, _) = collect(&mut again, 10, WAIT).await;
    seen.extend(rest);
    assert_eq!(seen, published, "no gap, no duplicate, in order");
    again.expect_silence(Duration::from_millis(300)).await;
}

/// Kills every non-pub/sub client connection of a Redis (the nodes' publishers),
/// leaving the subscribers up: publishes fail for a moment while delivery works.
async fn kill_publishers(redis: &Redis) {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", redis.port))
        .await
        .unwrap();
    s.write_all(b"*4\r\n$6\r\nCLIENT\r\n$4\r\nKILL\r\n$4\r\nTYPE\r\n$6\r\nnormal\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        tokio::io::AsyncReadExt::read(&mut s, &mut buf),
    )
    .await;
}

#[tokio::test]
async fn publishes_that_fail_while_delivery_works_are_caught_up_exactly_once() {
    let redis = Redis::start().await;
    let cluster = Cluster::start(2, &redis).await;
    let token = cluster.token("u-1").await;
    let mut tab = cluster.ws(1, &token, None).await;
    tab.expect("hello").await;
    let mut published = Vec::new();
    for round in 0..8 {
        kill_publishers(&redis).await;
        for i in 0..4 {
            let b = cluster
                .publish(
                    0,
                    json!({"user_id": "u-1", "title": format!("r{round}-{i}"), "message": "m"}),
                )
                .await;
            published.push(b["notifications"][0]["id"].as_str().unwrap().to_owned());
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    }
    let (mut ids, _) = collect(&mut tab, published.len(), Duration::from_secs(20)).await;
    ids.sort();
    published.sort();
    assert_eq!(ids, published, "every notification exactly once");
    loop {
        match tab.next_event(Duration::from_millis(700)).await {
            None => break,
            Some(Event::Frame(t, d)) => assert_ne!(t, "notification", "duplicate: {d}"),
            Some(e) => panic!("{e:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_started_under_three_nodes() {
    let Some(bin) = crate::pg_faults::pg_bin() else {
        return;
    };
    let pg = tokio::task::block_in_place(|| crate::pg_faults::Cluster::start_new(bin));
    let redis = Redis::start().await;
    // Answer 503 quickly while the database is away, and do not serve credentials from
    // cache for long: the outage must show on every path.
    let fast = [
        ("TIDINGS_DATABASE__ACQUIRE_TIMEOUT_MS", "1000"),
        ("TIDINGS_AUTH__CACHE_TTL_SECS", "1"),
    ];
    let cluster = Cluster::start_with(3, &redis, Some(pg.url()), &fast).await;
    let token = cluster.token("u-1").await;
    let mut tab_b = cluster.ws(1, &token, None).await;
    let mut tab_c = cluster.ws(2, &token, None).await;
    tab_b.expect("hello").await;
    tab_c.expect("hello").await;
    cluster
        .publish(
            0,
            json!({"user_id": "u-1", "title": "before", "message": "m"}),
        )
        .await;
    for tab in [&mut tab_b, &mut tab_c] {
        assert_eq!(tab.expect("notification").await["title"], "before");
    }

    tokio::task::block_in_place(|| pg.stop_fast());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for node in &cluster.nodes {
        let res = cluster
            .http
            .post(format!("{}/v1/notifications", node.base))
            .bearer_auth(&cluster.api_key)
            .json(&json!({"user_id": "u-1", "title": "during", "message": "m"}))
            .send()
            .await
            .unwrap();
        let (s, b) = split(res).await;
        assert_error(s, &b, 503, "unavailable");
        let res = cluster
            .http
            .get(format!("{}/v1/me/unread-count", node.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let (s, b) = split(res).await;
        assert_error(s, &b, 503, "unavailable");
    }
    // Live connections stay open through the outage.
    for tab in [&mut tab_b, &mut tab_c] {
        match tab.next_event(Duration::from_millis(300)).await {
            None | Some(Event::Frame(..)) => {}
            Some(Event::Closed(code)) => {
                panic!("connection closed during the database outage: {code:?}")
            }
        }
    }

    tokio::task::block_in_place(|| pg.start());
    // Each node recovers by itself; the first publish that succeeds reaches both tabs.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let after = loop {
        let res = cluster
            .http
            .post(format!("{}/v1/notifications", cluster.nodes[0].base))
            .bearer_auth(&cluster.api_key)
            .json(&json!({"user_id": "u-1", "title": "after", "message": "m"}))
            .send()
            .await
            .unwrap();
        let (s, b) = split(res).await;
        if s == 201 {
            break b["notifications"][0]["id"].as_str().unwrap().to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no recovery: {s} {b}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    for tab in [&mut tab_b, &mut tab_c] {
        let (ids, _) = collect(tab, 1, Duration::from_secs(10)).await;
        assert_eq!(ids, vec![after.clone()]);
    }
    for node in &cluster.nodes {
        let res = cluster
            .http
            .get(format!("{}/v1/me/unread-count", node.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(split(res).await.1["unread"], 2, "one count everywhere");
    }
}
