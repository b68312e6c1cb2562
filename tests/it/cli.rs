//! The `tidings` binary itself: tenant and key management, bad configuration.

use std::process::Command;

fn tidings(db: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidings"));
    cmd.env("TIDINGS_DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("TIDINGS_LOG_LEVEL", "error");
    cmd
}

#[test]
fn tenant_create_apikey_create_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let out = tidings(&db)
        .args([
            "tenant", "create", "clinic-x", "--name", "Clinic X", "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tenant_id"], "clinic-x");
    let key = v["api_key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("tdk_") && key.len() > 30);
    assert!(v["jwt_secret"].as_str().unwrap().len() >= 32);

    let again = tidings(&db)
        .args(["tenant", "create", "clinic-x", "--name", "X"])
        .output()
        .unwrap();
    assert!(
        !again.status.success(),
        "a second create of the same id fails"
    );

    let out = tidings(&db)
        .args(["tenant", "create", "clinic-y", "--name", "Y"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("tenant_id: clinic-y")
            && text.contains("api_key: tdk_")
            && text.contains("jwt_secret: ")
    );

    let out = tidings(&db)
        .args(["apikey", "create", "--tenant", "clinic-x", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let second: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(second["api_key"], v["api_key"]);

    let out = tidings(&db)
        .args(["apikey", "create", "--tenant", "nobody"])
        .output()
        .unwrap();
    assert!(!out.status.success());

    let prefix = &key[..12];
    let revoke = |tenant: &str, prefix: &str| {
        tidings(&db)
            .args(["apikey", "revoke", "--tenant", tenant, prefix])
            .output()
            .unwrap()
    };
    let out = tidings(&db)
        .args(["apikey", "revoke", prefix])
        .output()
        .unwrap();
    assert!(!out.status.success(), "--tenant is required");
    // Exact and case-sensitive, within the tenant named: no prefix matching, no
    // reaching into another tenant.
    assert!(
        !revoke("clinic-x", &prefix[..8]).status.success(),
        "a shorter prefix"
    );
    assert!(
        !revoke("clinic-x", &prefix.to_uppercase()).status.success(),
        "another case"
    );
    assert!(
        !revoke("clinic-y", prefix).status.success(),
        "another tenant"
    );
    let out = revoke("clinic-x", prefix);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "revoked: 1");
    assert!(
        !revoke("clinic-x", prefix).status.success(),
        "nothing left to revoke"
    );
    // The second key of the tenant is untouched.
    let second_prefix = second["prefix"].as_str().unwrap();
    assert!(revoke("clinic-x", second_prefix).status.success());
}

#[test]
fn tenant_rotate_secret_prints_the_new_secret_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let out = tidings(&db)
        .args(["tenant", "create", "clinic-x", "--name", "X", "--json"])
        .output()
        .unwrap();
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let out = tidings(&db)
        .args([
            "tenant",
            "rotate-secret",
            "clinic-x",
            "--overlap-secs",
            "60",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tenant_id"], "clinic-x");
    assert!(v["jwt_secret"].as_str().unwrap().len() >= 32);
    assert_ne!(v["jwt_secret"], created["jwt_secret"]);
    assert!(v["kid"].as_str().unwrap().starts_with('k'));
    let until = chrono::DateTime::parse_from_rfc3339(v["previous_valid_until"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert!((until - chrono::Utc::now().timestamp() - 60).abs() <= 5);
    let out = tidings(&db)
        .args(["tenant", "rotate-secret", "nobody"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no tenant nobody"));
}

#[test]
fn serve_beyond_loopback_on_an_empty_database_makes_no_credentials() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("net.db");
    let mut child = tidings(&db)
        .env("TIDINGS_LISTEN", "0.0.0.0:0")
        .env("TIDINGS_LOG_LEVEL", "warn")
        // Beyond loopback the default `log` provider needs an explicit yes (tested in
        // logs.rs); this test is about credentials.
        .env("TIDINGS_OUTBOUND__ALLOW_LOG_PROVIDER", "true")
        .env_remove("TIDINGS_DEV_API_KEY")
        .env_remove("TIDINGS_DEV_JWT_SECRET")
        .arg("serve")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    // The first stdout line is `listening: …` once the hub is up.
    let mut printed = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        let done = line.starts_with("listening:");
        printed.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        printed.iter().all(|l| !l.contains("api_key")),
        "no key printed: {printed:?}"
    );
    assert!(
        log.contains("tidings tenant create"),
        "a log line says how to create a tenant: {log}"
    );
    let out = tidings(&db)
        .args(["apikey", "create", "--tenant", "demo"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "no demo tenant exists");
}

#[test]
fn bad_configuration_exits_non_zero_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cfg.db");
    for (var, value, key) in [
        ("TIDINGS_LISTEN", "not-an-address", "listen"),
        ("TIDINGS_DATABASE_URL", "mysql://x", "database_url"),
        ("TIDINGS_HUB__QUEUE_CAPACITY", "0", "hub.queue_capacity"),
        (
            "TIDINGS_HUB__SSE_HEARTBEAT_SECS",
            "60",
            "hub.sse_heartbeat_secs",
        ),
        (
            "TIDINGS_PUBLISH__MAX_BATCH_ROWS",
            "lots",
            "publish.max_batch_rows",
        ),
    ] {
        let out = tidings(&db).env(var, value).arg("serve").output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{var}={value}: {err}");
    }
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\nlisten_port = 9\n").unwrap();
    let out = tidings(&db)
        .args(["serve", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen_port"));
}
