//! PostgreSQL down (issue #3, 3.3): publish and inbox calls answer 503 with the
//! contract's error body, open connections stay open, and service resumes by
//! itself when the database is back. The test runs its OWN PostgreSQL cluster
//! (initdb in a tempdir), so stopping it disturbs no other test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

/// A throwaway PostgreSQL cluster on a free loopback port, stopped on drop.
pub(crate) struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

/// PostgreSQL refuses to run as root: run its tools as the `postgres` user then.
fn pg_command(bin: &Path, tool: &str) -> Command {
    let exe = bin.join(tool);
    // Are we root? (`id -u`, to keep libc out of the tests.)
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false);
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(exe);
        c
    } else {
        Command::new(exe)
    }
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `$TIDINGS_TEST_PG_BIN`, else the newest /usr/lib/postgresql/*/bin; `None` means skip
/// (or a loud failure on CI, as for every PostgreSQL test).
pub(crate) fn pg_bin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("TIDINGS_TEST_PG_BIN").filter(|b| !b.is_empty()) {
        return Some(PathBuf::from(bin));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort();
    if let Some(bin) = found.pop() {
        return Some(bin);
    }
    // Same policy as the other PostgreSQL tests: fails on CI, skips loudly elsewhere.
    postgres_admin_url("pg_faults (no TIDINGS_TEST_PG_BIN)", false)?;
    panic!("pg_faults: TIDINGS_TEST_POSTGRES_URL is set but no PostgreSQL binaries were found; set TIDINGS_TEST_PG_BIN");
}

impl Cluster {
    pub(crate) fn start_new(bin: PathBuf) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        // The postgres user must be able to reach its data directory inside our tempdir.
        run(
            {
                let mut c = Command::new("chmod");
                c.arg("755").arg(dir.path());
                c
            },
            "chmod",
        );
        let data = dir.path().join("pg");
        std::fs::create_dir(&data).unwrap();
        if pg_command(&bin, "initdb").get_program() == "runuser" {
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg("postgres:postgres").arg(&data);
                    c
                },
                "chown",
            );
        }
        let mut initdb = pg_command(&bin, "initdb");
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "--no-sync"]);
        run(initdb, "initdb");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n",
            data.display()
        );
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap()
            .write_all(conf.as_bytes())
            .unwrap();
        let cluster = Cluster {
            bin,
            data,
            port,
            _dir: dir,
        };
        cluster.start();
        cluster
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn pg_ctl(&self, args: &[&str]) -> Command {
        let mut c = pg_command(&self.bin, "pg_ctl");
        c.arg("-D").arg(&self.data).args(args);
        c
    }

    pub(crate) fn start(&self) {
        let log = self.data.join("log");
        let mut c = self.pg_ctl(&["-w", "-l"]);
        c.arg(log).arg("start");
        run(c, "pg_ctl start");
    }

    pub(crate) fn stop_fast(&self) {
        run(self.pg_ctl(&["-w", "-m", "fast", "stop"]), "pg_ctl stop");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-m", "immediate", "stop"]).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_answers_503_keeps_sockets_and_recovers_by_itself() {
    let Some(bin) = pg_bin() else { return };
    let cluster = tokio::task::block_in_place(|| Cluster::start_new(bin));
    let url = cluster.url();
    let app = spawn_app_with(|c| {
        c.database_url = url;
        // Answer 503 quickly while the database is away.
        c.database.acquire_timeout_ms = 1000;
        // Keys and tenant secrets are re-read from the database after this: the
        // outage must not depend on what happens to be cached.
        c.auth.cache_ttl_secs = 1;
    })
    .await;
    let token = app.token("u-1", "provider").await;
    let mut ws = app.ws(&token, None).await;
    assert_eq!(ws.expect("hello").await["unread"], 0);
    let first = app.publish_to("u-1", "before").await;
    assert_eq!(ws.expect("notification").await["id"], json!(first));
    assert_eq!(ws.expect("unread_count").await["unread"], 1);

    tokio::task::block_in_place(|| cluster.stop_fast());
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the auth cache

    let started = Instant::now();
    let (status, body) = app
        .publish(json!({"user_id": "u-1", "title": "during", "message": "m"}))
        .await;
    assert_error(status, &body, 503, "unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "503 within the acquire timeout, took {:?}",
        started.elapsed()
    );
    let (status, body) = app.get_user(&token, "/v1/me/notifications").await;
    assert_error(status, &body, 503, "unavailable");
    let (status, body) = app
        .post_user(&token, &format!("/v1/me/notifications/{first}/read"))
        .await;
    assert_error(status, &body, 503, "unavailable");
    let (status, _) = split(app.http.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // The open connection is not dropped because the database is away.
    ws.expect_silence(Duration::from_millis(500)).await;

    tokio::task::block_in_place(|| cluster.start());

    // No operator action: the very first publish after the restart succeeds
    // (the pool pings and replaces the connections the restart killed).
    let (status, body) = app
        .publish(json!({"user_id": "u-1", "title": "after", "message": "m"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let after = body["notifications"][0]["id"].as_str().unwrap().to_owned();
    let n = ws.expect("notification").await;
    assert_eq!(
        (n["id"].as_str(), n["title"].as_str()),
        (Some(after.as_str()), Some("after"))
    );
    // Nothing from the outage was stored: the count is the two that succeeded.
    assert_eq!(ws.expect("unread_count").await["unread"], 2);
    ws.expect_silence(Duration::from_millis(300)).await;
    let (status, body) = app.get_user(&token, "/v1/me/notifications").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let titles: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["after", "before"]);
    let (status, _) = split(app.http.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    drop(app);
    drop(cluster);
}
