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
    let out = tidings(&db)
        .args(["apikey", "revoke", prefix])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "revoked: 1");
    let out = tidings(&db)
        .args(["apikey", "revoke", prefix])
        .output()
        .unwrap();
    assert!(!out.status.success(), "nothing left to revoke");
    let out = tidings(&db)
        .args(["apikey", "revoke", "tdk_"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a short prefix is refused");
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
