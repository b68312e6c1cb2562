//! Contract check of the Twilio adapter against Twilio's own OpenAPI document
//! (../shared/specs/twilio_api_v2010.json), served by Stoplight Prism as a
//! validating mock: Prism answers 422 to a request the spec does not allow
//! (missing `To`, a malformed AccountSid or URL, wrong types) and 401 without
//! Basic auth, and every form field the adapter sends must be a property of the
//! spec's CreateMessageRequest, so a misspelt field name fails here.
//!
//! Prism: `TIDINGS_TEST_PRISM` (the binary; scripts/test installs it with npm into
//! tests/contract/), else tests/contract/node_modules/.bin/prism. When neither
//! exists the test fails under `TIDINGS_TEST_STRICT=1` or `CI` (scripts/test sets
//! the former) and is skipped, loudly, otherwise.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tidings::domain::template::Channel;
use tidings::provider::twilio::Twilio;
use tidings::provider::{Provider, ProviderError};
use tokio::process::{Child, Command};

use crate::providers::{sms, twilio_config, ACCOUNT_SID, AUTH_TOKEN};

fn spec_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/specs/twilio_api_v2010.json")
}

fn prism_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("TIDINGS_TEST_PRISM") {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "TIDINGS_TEST_PRISM={} does not exist",
            p.display()
        );
        return Some(p);
    }
    let local =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/contract/node_modules/.bin/prism");
    if local.exists() {
        return Some(local);
    }
    let strict =
        std::env::var("TIDINGS_TEST_STRICT").is_ok_and(|v| v == "1") || std::env::var("CI").is_ok();
    assert!(
        !strict,
        "Prism is required: set TIDINGS_TEST_PRISM or run `npm install` in tests/contract (scripts/test does)"
    );
    eprintln!("SKIPPED twilio contract test: Prism not installed (run scripts/test, or npm install in tests/contract)");
    None
}

struct Prism {
    base: String,
    _child: Child,
}

async fn start_prism(bin: &Path) -> Prism {
    let spec = spec_path();
    assert!(
        spec.exists(),
        "the Twilio spec is missing at {}",
        spec.display()
    );
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let child = Command::new(bin)
        .args(["mock", "-h", "127.0.0.1", "-p", &port.to_string()])
        .arg(&spec)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start prism");
    // Loading the 1.8 MB document takes Prism a few seconds: wait, bounded.
    let deadline = Instant::now() + Duration::from_secs(120);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "Prism did not listen on {port} within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Prism {
        base: format!("http://127.0.0.1:{port}"),
        _child: child,
    }
}

/// The property names of Create Message's form body, from the spec itself.
fn spec_form_fields() -> Vec<String> {
    let spec: Value = serde_json::from_slice(&std::fs::read(spec_path()).unwrap()).unwrap();
    let schema = &spec["paths"]["/2010-04-01/Accounts/{AccountSid}/Messages.json"]["post"]
        ["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"];
    schema["properties"]
        .as_object()
        .expect("CreateMessageRequest properties")
        .keys()
        .cloned()
        .collect()
}

#[tokio::test]
async fn twilio_create_message_matches_twilios_openapi_document() {
    let Some(bin) = prism_binary() else { return };
    let prism = start_prism(&bin).await;

    // 1. Every field name the adapter can send is one the spec defines.
    let allowed = spec_form_fields();
    assert!(allowed.contains(&"To".to_string()) && allowed.contains(&"Body".to_string()));
    let mut with_service = twilio_config(&prism.base);
    with_service.messaging_service_sid = Some("MG0123456789abcdef0123456789abcdef".into());
    let plain = Twilio::new("twilio", twilio_config(&prism.base)).unwrap();
    let service = Twilio::new("twilio", with_service).unwrap();
    let mut whatsapp = sms("+966501234567", "x");
    whatsapp.channel = Channel::Whatsapp;
    for (adapter, msg) in [
        (&plain, sms("+966501234567", "x")),
        (&service, sms("+966501234567", "x")),
        (&plain, whatsapp.clone()),
    ] {
        for (name, _) in adapter.form(&msg).unwrap() {
            assert!(
                allowed.iter().any(|a| a == name),
                "field {name} is not in Twilio's CreateMessageRequest"
            );
        }
    }

    // 2. Prism validates the real requests (path, Basic auth, form types, formats) and
    //    answers with the spec's example, which the adapter must read.
    for (adapter, msg) in [
        (&plain, sms("+966501234567", "مرحبا")),
        (&service, sms("+14155550123", "hi")),
        (&plain, whatsapp),
    ] {
        let accepted = adapter
            .send(&msg)
            .await
            .unwrap_or_else(|e| panic!("Prism refused the adapter's request: {e}"));
        assert!(
            accepted.provider_message_id.starts_with("SM"),
            "{accepted:?}"
        );
    }

    // 3. Prism really validates: the same request with a wrong field name, or
    //    without auth, is refused, so step 2 could have failed.
    let http = reqwest::Client::new();
    let url = format!(
        "{}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        prism.base
    );
    let wrong_name = http
        .post(&url)
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .form(&[
            ("to", "+966501234567"),
            ("From", "+14155550100"),
            ("Body", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        wrong_name.status().as_u16(),
        422,
        "a lower-case `to` must be refused"
    );
    let no_auth = http
        .post(&url)
        .form(&[
            ("To", "+966501234567"),
            ("From", "+14155550100"),
            ("Body", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(no_auth.status().as_u16(), 401);
    // And the adapter classifies Prism's refusal of a bad account as a 4xx error.
    let mut bad = twilio_config(&prism.base);
    bad.status_callback = Some("not a url".into());
    let adapter = Twilio::new("twilio", bad).unwrap();
    let err = adapter.send(&sms("+966501234567", "x")).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Rejected { ref code, .. } if code == "http_422"),
        "{err:?}"
    );
}
