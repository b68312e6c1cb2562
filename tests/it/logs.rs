//! Issue #11, finding 9: the hub's own log output (the real binary, at debug level)
//! must hold no secret and no patient data: user tokens in `?token=`, the Unifonic
//! webhook token, Meta's verify token, the API key, patients' phones, emails and
//! message texts. And the `log` provider, which delivers nothing, refuses to start
//! outside development unless allowed.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::split;

const API_KEY: &str = "tdk_logs_test_key_SECRET_0123456789";
const JWT_SECRET: &str = "logs-test-jwt-secret-0123456789";
const UNI_TOKEN: &str = "uni-SECRET-token-5f2a9c";
const VERIFY_TOKEN: &str = "verify-SECRET-token-81d0e4";
const PHONE: &str = "+966501234567";
const EMAIL: &str = "layla.patient@example.org";
const BODY: &str = "Layla Haddad, your biopsy results are ready";

/// The hub's stderr, collected line by line.
type Logs = Arc<Mutex<String>>;

async fn start_hub(dir: &std::path::Path) -> (Child, String, Logs) {
    let config = dir.join("tidings.toml");
    std::fs::write(
        &config,
        format!(
            "[outbound.default.webhooks]\nunifonic_token = \"{UNI_TOKEN}\"\nwhatsapp_verify_token = \"{VERIFY_TOKEN}\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env("TIDINGS_LISTEN", "127.0.0.1:0")
        .env(
            "TIDINGS_DATABASE_URL",
            format!("sqlite://{}/logs.db", dir.display()),
        )
        .env("TIDINGS_DEV_TENANT", "clinic-a")
        .env("TIDINGS_DEV_API_KEY", API_KEY)
        .env("TIDINGS_DEV_JWT_SECRET", JWT_SECRET)
        .env("TIDINGS_OUTBOUND__POLL_INTERVAL_MS", "50")
        // Everything every crate logs, ours and the libraries'.
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let logs: Logs = Arc::default();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    let sink = logs.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = err.next_line().await {
            let mut all = sink.lock().unwrap();
            all.push_str(&line);
            all.push('\n');
        }
    });
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = out.next_line().await.unwrap() {
            if let Some(addr) = line.strip_prefix("listening: ") {
                return addr.to_owned();
            }
        }
        panic!("hub exited before listening");
    })
    .await
    .expect("hub starts");
    tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
    (child, format!("http://{addr}"), logs)
}

async fn call(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    split(req.bearer_auth(API_KEY).send().await.unwrap()).await
}

#[tokio::test]
async fn debug_logs_hold_no_secret_and_no_patient_data() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base, logs) = start_hub(dir.path()).await;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{base}{p}");

    let (s, b) = call(
        http.post(url("/v1/tokens"))
            .json(&json!({"user_id": "nurse-1", "role": "admin"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let jwt = b["token"].as_str().unwrap().to_owned();

    // Tokens in query strings: WebSocket, both event-stream paths, the webhooks.
    let ws_url = format!("{}/v1/ws?token={jwt}", base.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let _hello = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
    let sse = http
        .get(url(&format!("/v1/sse?token={jwt}")))
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), StatusCode::OK);
    let handshake = http
        .get(url(&format!(
            "/v1/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=99"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(handshake.status(), StatusCode::OK);
    let report = http
        .post(url(&format!("/v1/webhooks/unifonic?token={UNI_TOKEN}")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("MessageID=123&DLR=Delivered")
        .send()
        .await
        .unwrap();
    assert_eq!(report.status(), StatusCode::OK);

    // Patient data: an address on file, two sends through the `log` provider, a search.
    let (s, b) = call(
        http.put(url("/v1/patients/p-77/preferences"))
            .json(&json!({"phone": PHONE, "email": EMAIL, "language": "en"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let mut ids = Vec::new();
    for (channel, subject) in [("sms", None), ("email", Some("Your results"))] {
        let mut send =
            json!({"patient_id": "p-77", "channel": channel, "body": BODY, "kind": "results"});
        if let Some(subject) = subject {
            send["subject"] = json!(subject);
        }
        let (s, b) = call(http.post(url("/v1/messages")).json(&send)).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
        ids.push(b["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        wait_sent(&http, &url(&format!("/v1/messages/{id}"))).await;
    }
    let (s, _) = call(
        http.get(url("/v1/messages"))
            .query(&[("q", PHONE), ("limit", "5")]),
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    drop(ws);
    drop(sse);
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().await.unwrap();
    let logs = logs.lock().unwrap().clone();

    // The log is really there, at debug level, and names the sends by id.
    assert!(
        logs.contains("\"level\":\"DEBUG\""),
        "no debug lines:\n{logs}"
    );
    for id in &ids {
        assert!(
            logs.contains(id.as_str()),
            "message {id} not logged:\n{logs}"
        );
    }
    let jwt_signature = jwt.rsplit('.').next().unwrap();
    for (what, secret) in [
        ("the user token", jwt.as_str()),
        ("the user token's signature", jwt_signature),
        ("the API key", API_KEY),
        ("the JWT secret", JWT_SECRET),
        ("the Unifonic token", UNI_TOKEN),
        ("the WhatsApp verify token", VERIFY_TOKEN),
        ("a phone number", "501234567"),
        ("an email address", EMAIL),
        ("an email's local part", "layla.patient"),
        ("a message body", "biopsy"),
        ("a patient name", "Haddad"),
    ] {
        let at = logs.find(secret);
        assert!(
            at.is_none(),
            "{what} is in the log: …{}…",
            &logs[at.unwrap().saturating_sub(200)..(at.unwrap() + 50).min(logs.len())]
        );
    }
    // The URIs are there, redacted.
    assert!(
        logs.contains("token=***"),
        "redacted URIs expected:\n{logs}"
    );
}

async fn wait_sent(http: &reqwest::Client, at: &str) {
    for _ in 0..200 {
        let (_, m) = call(http.get(at)).await;
        if m["status"] == "sent" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{at} never became sent");
}

#[tokio::test]
async fn the_log_provider_refuses_to_start_outside_development() {
    let dir = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .arg("serve")
        // Not loopback: a real deployment. The config check fails before any bind.
        .env("TIDINGS_LISTEN", "0.0.0.0:0")
        .env(
            "TIDINGS_DATABASE_URL",
            format!("sqlite://{}/refuse.db", dir.path().display()),
        )
        .kill_on_drop(true)
        .output();
    // A hub that starts anyway is killed when the timeout drops it.
    let out = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the hub must refuse to start, not serve")
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("key `outbound.allow_log_provider`")
            && err.contains("outbound.default.routes.sms"),
        "{err}"
    );
    assert!(!dir.path().join("refuse.db").exists(), "nothing was opened");
}
