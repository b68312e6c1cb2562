//! The crash test: 2,000 queued SMS, a slow fake Twilio that counts every request
//! by message id, the real `tidings` binary SIGKILLed mid-way and restarted on the
//! same database. Every message must end terminal, and only messages that were in
//! flight at the kill may have been sent twice.

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tidings::domain::ids::TenantId;
use tidings::domain::message::MessageStatus;
use tidings::store::outbound::MessageFilter;
use tidings::store::{PageRequest, Store, StoreOptions};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

use crate::outbound_dispatch::{
    enqueue_into, message_id_of, sms, twilio_created, twilio_path, ACCOUNT_SID, TENANT,
};

const MESSAGES: usize = 2_000;

async fn start_hub(config: &std::path::Path, db: &str) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env("TIDINGS_LISTEN", "127.0.0.1:0")
        .env("TIDINGS_DATABASE_URL", db)
        .env("TIDINGS_DEV_TENANT", TENANT)
        .env("TIDINGS_DEV_API_KEY", "tdk_crash_test_key_0123456789")
        .env("TIDINGS_DEV_JWT_SECRET", "crash-test-jwt-secret-0123456789")
        .env("TIDINGS_LOG_LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("listening: ") {
                return;
            }
        }
        panic!("hub exited before listening");
    })
    .await
    .expect("hub starts");
    // Keep reading stdout so the hub never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

async fn statuses(store: &Arc<dyn Store>, tenant: &TenantId) -> HashMap<String, MessageStatus> {
    let mut out = HashMap::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_messages(
                tenant,
                &MessageFilter::default(),
                PageRequest {
                    limit: 500,
                    before: cursor,
                },
            )
            .await
            .unwrap();
        for m in page.items {
            out.insert(m.id.to_string(), m.status);
        }
        match page.next {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_killed_mid_way_sends_everything_once_except_what_was_in_flight() {
    let fake = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(twilio_path()))
        .respond_with(twilio_created("SMcrash").set_delay(Duration::from_millis(30)))
        .mount(&fake)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/crash.db", dir.path().display());
    let config = dir.path().join("tidings.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[outbound]
concurrency = 32
poll_interval_ms = 50
claim_batch = 64
lease_secs = 3

[outbound.tenants.{TENANT}.providers.twilio]
kind = "twilio"
account_sid = "{ACCOUNT_SID}"
auth_token = "t"
from = "+14155550100"
status_callback = "http://127.0.0.1:9/v1/webhooks/twilio"
base_url = "{base}"
timeout_ms = 10000
rate_limit = {{ per_second = 0, burst = 0 }}

[outbound.tenants.{TENANT}.routes]
sms = ["twilio"]
whatsapp = ["log"]
email = ["log"]
"#,
            base = fake.uri()
        ),
    )
    .unwrap();

    let mut hub = start_hub(&config, &db).await;
    let store = tidings::store::open(&StoreOptions {
        url: db.clone(),
        max_connections: 2,
        acquire_timeout: Duration::from_secs(10),
        statement_timeout: Duration::from_secs(10),
    })
    .await
    .unwrap();
    let tenant = TenantId::parse(TENANT).unwrap();
    let messages: Vec<_> = (0..MESSAGES)
        .map(|i| sms(&format!("+9665{i:08}"), Utc::now()))
        .collect();
    enqueue_into(&store, &tenant, messages, Utc::now()).await;

    // Kill it mid-way.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while fake.received_requests().await.unwrap().len() < MESSAGES / 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the hub is not sending"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    hub.kill().await.unwrap(); // SIGKILL
    let _ = hub.wait().await;
    let at_kill = statuses(&store, &tenant).await;
    let in_flight: HashSet<&String> = at_kill
        .iter()
        .filter(|(_, s)| **s == MessageStatus::Sending)
        .map(|(id, _)| id)
        .collect();
    let sent_before = fake.received_requests().await.unwrap().len();
    assert!(sent_before < MESSAGES, "killed too late to test anything");

    let mut hub = start_hub(&config, &db).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    while store.pending_messages().await.unwrap() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "messages left pending after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    hub.kill().await.unwrap();

    let after = statuses(&store, &tenant).await;
    assert_eq!(after.len(), MESSAGES);
    assert!(
        after.values().all(|s| *s == MessageStatus::Sent),
        "every message ends sent: {:?}",
        after
            .values()
            .filter(|s| **s != MessageStatus::Sent)
            .count()
    );
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for req in fake.received_requests().await.unwrap() {
        *per_id.entry(message_id_of(&req)).or_default() += 1;
    }
    assert_eq!(per_id.len(), MESSAGES, "every message reached the provider");
    let duplicated: Vec<&String> = per_id
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id)
        .collect();
    let duplicates: usize = per_id.values().map(|n| n - 1).sum();
    println!(
        "crash test: {sent_before} requests before the kill, {} in flight at the kill, {duplicates} duplicate sends",
        in_flight.len()
    );
    assert!(
        duplicates <= in_flight.len(),
        "{duplicates} duplicates > {} in flight",
        in_flight.len()
    );
    assert!(
        duplicated.iter().all(|id| in_flight.contains(id)),
        "only messages in flight at the kill may repeat"
    );
}
