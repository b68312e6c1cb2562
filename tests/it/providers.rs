//! Provider adapters against a local wiremock server speaking each provider's wire
//! format: the tests assert exactly what was sent (path, auth header, form or JSON
//! fields) and replay the providers' real error bodies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use tidings::domain::contact::{Address, PhoneNumber};
use tidings::domain::message::{MessageId, MessageStatus, Money};
use tidings::domain::template::{Channel, Language};
use tidings::provider::breaker::BreakerConfig;
use tidings::provider::config::{build_one, ProviderConfig, Secret};
use tidings::provider::failover::{ChainOutcome, Failover, FailoverChain, FailoverReason};
use tidings::provider::limit::RateLimit;
use tidings::provider::signature::{twilio_signature, verify_twilio};
use tidings::provider::twilio::{callback_url, parse_status_callback, Twilio, TwilioConfig};
use tidings::provider::unifonic::{Unifonic, UnifonicConfig};
use tidings::provider::whatsapp_cloud::{WhatsappCloud, WhatsappCloudConfig};
use tidings::provider::{
    OutboundMessage, Provider, ProviderAccepted, ProviderError, WhatsappTemplate,
};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const AUTH_TOKEN: &str = "twilio-auth-token";
const ARABIC_BODY: &str = "\u{200F}مرحباً أَحْمَد، موعدك غداً الساعة ١٠:٠٠ ✓";

pub fn sms(to: &str, body: &str) -> OutboundMessage {
    OutboundMessage {
        id: MessageId::new_random(),
        channel: Channel::Sms,
        to: Address::Phone(PhoneNumber::parse(to).unwrap()),
        language: Language::Ar,
        subject: None,
        body: body.to_owned(),
        whatsapp_template: None,
    }
}

pub fn twilio_config(base: &str) -> TwilioConfig {
    TwilioConfig {
        account_sid: ACCOUNT_SID.into(),
        auth_token: Secret::new(AUTH_TOKEN),
        from: Some("+14155550100".into()),
        messaging_service_sid: None,
        whatsapp_from: Some("+14155550199".into()),
        status_callback: Some("https://hub.clinic.example/v1/webhooks/twilio".into()),
        base_url: base.to_owned(),
        timeout_ms: 2000,
        rate_limit: RateLimit {
            per_second: 0,
            burst: 0,
        },
    }
}

fn form_of(req: &Request) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(&req.body).expect("form body")
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

fn twilio_path() -> String {
    format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")
}

/// A Message resource as Twilio answers Create Message (trimmed to the fields that matter).
fn twilio_created(sid: &str) -> Value {
    json!({
        "account_sid": ACCOUNT_SID, "api_version": "2010-04-01", "body": "x",
        "date_created": "Thu, 24 Aug 2023 05:01:45 +0000", "direction": "outbound-api",
        "error_code": null, "error_message": null, "from": "+14155550100",
        "num_media": "0", "num_segments": "1", "price": null, "price_unit": "USD",
        "sid": sid, "status": "queued", "to": "+966501234567",
        "uri": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json")
    })
}

fn twilio_error(code: u32, message: &str, status: u16) -> Value {
    json!({"code": code, "message": message, "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status})
}

async fn single_request(server: &MockServer) -> Request {
    let mut reqs = server.received_requests().await.expect("recording on");
    assert_eq!(reqs.len(), 1, "exactly one request");
    reqs.remove(0)
}

#[tokio::test]
async fn twilio_sms_sends_the_documented_form_with_basic_auth() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(twilio_path()))
        .and(header(
            "authorization",
            basic(ACCOUNT_SID, AUTH_TOKEN).as_str(),
        ))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(twilio_created("SM0123456789abcdef0123456789abcdef")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let twilio = Twilio::new("twilio", twilio_config(&server.uri())).unwrap();
    let msg = sms("+966501234567", ARABIC_BODY);
    let accepted = twilio.send(&msg).await.unwrap();
    assert_eq!(
        accepted.provider_message_id,
        "SM0123456789abcdef0123456789abcdef"
    );
    assert_eq!(accepted.price, None);

    let req = single_request(&server).await;
    assert_eq!(
        form_of(&req),
        pairs(&[
            ("To", "+966501234567"),
            ("From", "+14155550100"),
            ("Body", ARABIC_BODY),
            (
                "StatusCallback",
                &format!(
                    "https://hub.clinic.example/v1/webhooks/twilio?message_id={}",
                    msg.id
                )
            ),
        ])
    );
}

#[tokio::test]
async fn twilio_whatsapp_and_messaging_service_senders() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(twilio_path()))
        .respond_with(ResponseTemplate::new(201).set_body_json(twilio_created("SMwa")))
        .mount(&server)
        .await;
    let mut cfg = twilio_config(&server.uri());
    cfg.messaging_service_sid = Some("MG0123456789abcdef0123456789abcdef".into());
    cfg.status_callback = None;
    let twilio = Twilio::new("twilio", cfg).unwrap();
    let mut wa = sms("+966501234567", "hello");
    wa.channel = Channel::Whatsapp;
    twilio.send(&wa).await.unwrap();
    twilio.send(&sms("+966501234567", "hi")).await.unwrap();
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(
        form_of(&reqs[0]),
        pairs(&[
            ("To", "whatsapp:+966501234567"),
            ("From", "whatsapp:+14155550199"),
            ("Body", "hello")
        ])
    );
    assert_eq!(
        form_of(&reqs[1]),
        pairs(&[
            ("To", "+966501234567"),
            ("MessagingServiceSid", "MG0123456789abcdef0123456789abcdef"),
            ("Body", "hi")
        ])
    );
}

#[tokio::test]
async fn twilio_error_bodies_are_classified() {
    let server = MockServer::start().await;
    let cases: Vec<(&str, u16, Value, Option<&str>, ProviderError)> = vec![
        (
            "+966500000001",
            400,
            twilio_error(
                21211,
                "The 'To' number +966500000001 is not a valid phone number.",
                400,
            ),
            None,
            ProviderError::Rejected {
                code: "21211".into(),
                message: "The 'To' number +966500000001 is not a valid phone number.".into(),
            },
        ),
        (
            "+966500000002",
            400,
            twilio_error(21610, "Attempt to send to unsubscribed recipient", 400),
            None,
            ProviderError::Rejected {
                code: "21610".into(),
                message: "Attempt to send to unsubscribed recipient".into(),
            },
        ),
        (
            "+966500000003",
            400,
            twilio_error(21614, "'To' number is not a valid mobile number", 400),
            None,
            ProviderError::Rejected {
                code: "21614".into(),
                message: "'To' number is not a valid mobile number".into(),
            },
        ),
        (
            "+966500000004",
            429,
            twilio_error(20429, "Too Many Requests", 429),
            Some("17"),
            ProviderError::Transient {
                code: "20429".into(),
                message: "Too Many Requests".into(),
                retry_after: Some(Duration::from_secs(17)),
            },
        ),
        (
            "+966500000005",
            401,
            twilio_error(20003, "Authenticate", 401),
            None,
            ProviderError::Misconfigured {
                code: "20003".into(),
                message: "Authenticate".into(),
            },
        ),
        (
            "+966500000006",
            503,
            json!({"code": 20503, "message": "Service Unavailable", "status": 503}),
            None,
            ProviderError::Transient {
                code: "20503".into(),
                message: "Service Unavailable".into(),
                retry_after: None,
            },
        ),
    ];
    for (to, status, body, retry_after, _) in &cases {
        let mut resp = ResponseTemplate::new(*status).set_body_json(body.clone());
        if let Some(ra) = retry_after {
            resp = resp.insert_header("Retry-After", *ra);
        }
        Mock::given(method("POST"))
            .and(path(twilio_path()))
            .and(wiremock::matchers::body_string_contains(format!(
                "To=%2B{}",
                &to[1..]
            )))
            .respond_with(resp)
            .mount(&server)
            .await;
    }
    let twilio = Twilio::new("twilio", twilio_config(&server.uri())).unwrap();
    for (to, _, _, _, want) in cases {
        assert_eq!(twilio.send(&sms(to, "x")).await, Err(want), "to {to}");
    }
}

#[tokio::test]
async fn twilio_timeout_is_unknown_with_a_status_callback_and_transient_without() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(twilio_created("SMslow"))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let mut cfg = twilio_config(&server.uri());
    cfg.timeout_ms = 300;
    let with_callback = Twilio::new("twilio", cfg.clone()).unwrap();
    let started = Instant::now();
    let err = with_callback
        .send(&sms("+966501234567", "x"))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the provider timeout applies"
    );
    assert!(
        matches!(err, ProviderError::Unknown { ref code, .. } if code == "timeout"),
        "{err:?}"
    );

    cfg.status_callback = None;
    let without = Twilio::new("twilio", cfg).unwrap();
    let err = without.send(&sms("+966501234567", "x")).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Transient { ref code, retry_after: None, .. } if code == "timeout"),
        "{err:?}"
    );
    // Both requests did reach the server: exactly the ambiguity the decision is about.
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn connection_refused_is_transient_for_every_http_provider() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let twilio = Twilio::new("twilio", twilio_config(&base)).unwrap();
    let err = twilio.send(&sms("+966501234567", "x")).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Transient { ref code, .. } if code == "connect"),
        "{err:?}"
    );
    let unifonic = Unifonic::new("unifonic", unifonic_config(&base)).unwrap();
    let err = unifonic.send(&sms("+966501234567", "x")).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Transient { ref code, .. } if code == "connect"),
        "{err:?}"
    );
    let wa = WhatsappCloud::new("wa", whatsapp_config(&base)).unwrap();
    let err = wa.send(&whatsapp_msg()).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Transient { ref code, .. } if code == "connect"),
        "{err:?}"
    );
}

fn unifonic_config(base: &str) -> UnifonicConfig {
    UnifonicConfig {
        app_sid: Secret::new("uni-app-sid"),
        sender_id: "CLINIC".into(),
        base_url: base.to_owned(),
        timeout_ms: 2000,
        rate_limit: RateLimit {
            per_second: 0,
            burst: 0,
        },
    }
}

#[tokio::test]
async fn unifonic_sends_the_documented_form_and_reads_cost() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/rest/SMS/messages"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "success": true, "message": "", "errorCode": "ER-00",
            "data": {"MessageID": 42000348806924u64, "CorrelationID": "x", "Status": "Sent", "NumberOfUnits": 2,
                     "Cost": 0.071, "Balance": 99.5, "Recipient": "966501234567",
                     "TimeCreated": "2026-01-01 10:00:00.000", "CurrencyCode": "SAR"}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let unifonic = Unifonic::new("unifonic", unifonic_config(&server.uri())).unwrap();
    let msg = sms("+966501234567", ARABIC_BODY);
    let ok = unifonic.send(&msg).await.unwrap();
    assert_eq!(
        ok,
        ProviderAccepted {
            provider_message_id: "42000348806924".into(),
            price: Some(Money {
                micros: 71_000,
                currency: "SAR".into()
            }),
            raw: ok.raw.clone(),
        }
    );
    let req = single_request(&server).await;
    assert_eq!(
        form_of(&req),
        pairs(&[
            ("AppSid", "uni-app-sid"),
            ("SenderID", "CLINIC"),
            ("Recipient", "966501234567"),
            ("Body", ARABIC_BODY),
            ("responseType", "JSON"),
            ("CorrelationID", &msg.id.to_string()),
        ])
    );
}

#[tokio::test]
async fn unifonic_error_bodies_are_classified() {
    let server = MockServer::start().await;
    let answer = |code: &str, message: &str| json!({"success": false, "message": message, "errorCode": code, "data": {}});
    for (recipient, status, body) in [
        (
            "966500000001",
            200,
            answer("ER-04", "Dest num is too short"),
        ),
        ("966500000002", 200, answer("ER-01", "Invalid AppSid")),
        ("966500000003", 200, answer("ER-17", "Something else")),
        ("966500000004", 503, json!({"message": "unavailable"})),
    ] {
        Mock::given(method("POST"))
            .and(wiremock::matchers::body_string_contains(format!(
                "Recipient={recipient}"
            )))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(&server)
            .await;
    }
    let u = Unifonic::new("unifonic", unifonic_config(&server.uri())).unwrap();
    assert_eq!(
        u.send(&sms("+966500000001", "x")).await,
        Err(ProviderError::Rejected {
            code: "ER-04".into(),
            message: "Dest num is too short".into()
        })
    );
    assert_eq!(
        u.send(&sms("+966500000002", "x")).await,
        Err(ProviderError::Misconfigured {
            code: "ER-01".into(),
            message: "Invalid AppSid".into()
        })
    );
    assert_eq!(
        u.send(&sms("+966500000003", "x")).await,
        Err(ProviderError::Transient {
            code: "ER-17".into(),
            message: "Something else".into(),
            retry_after: None
        })
    );
    assert!(
        matches!(u.send(&sms("+966500000004", "x")).await, Err(ProviderError::Transient { ref code, .. }) if code == "http_503")
    );
}

fn whatsapp_config(base: &str) -> WhatsappCloudConfig {
    WhatsappCloudConfig {
        access_token: Secret::new("EAAG-token"),
        phone_number_id: "106540352242922".into(),
        app_secret: None,
        api_version: "v21.0".into(),
        base_url: base.to_owned(),
        timeout_ms: 2000,
        rate_limit: RateLimit {
            per_second: 0,
            burst: 0,
        },
    }
}

fn whatsapp_msg() -> OutboundMessage {
    OutboundMessage {
        channel: Channel::Whatsapp,
        whatsapp_template: Some(WhatsappTemplate {
            name: "appointment_reminder_24h".into(),
            parameters: vec!["أَحْمَد".into(), "2026-01-02".into(), "10:00".into()],
        }),
        ..sms("+966501234567", "ignored for templates")
    }
}

#[tokio::test]
async fn whatsapp_cloud_sends_a_template_with_bearer_auth() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v21.0/106540352242922/messages"))
        .and(header("authorization", "Bearer EAAG-token"))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": "966501234567", "wa_id": "966501234567"}],
            "messages": [{"id": "wamid.HBgLOTY2NTAxMjM0NTY3FQIAERgSQTRBRjM1", "message_status": "accepted"}]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let wa = WhatsappCloud::new("whatsapp", whatsapp_config(&server.uri())).unwrap();
    let msg = whatsapp_msg();
    let ok = wa.send(&msg).await.unwrap();
    assert_eq!(
        ok.provider_message_id,
        "wamid.HBgLOTY2NTAxMjM0NTY3FQIAERgSQTRBRjM1"
    );
    let req = single_request(&server).await;
    let sent: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(
        sent,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "966501234567",
            "type": "template",
            "biz_opaque_callback_data": msg.id.to_string(),
            "template": {
                "name": "appointment_reminder_24h",
                "language": {"code": "ar"},
                "components": [{"type": "body", "parameters": [
                    {"type": "text", "text": "أَحْمَد"},
                    {"type": "text", "text": "2026-01-02"},
                    {"type": "text", "text": "10:00"}
                ]}]
            }
        })
    );
}

#[tokio::test]
async fn whatsapp_cloud_error_bodies_are_classified() {
    let server = MockServer::start().await;
    let graph = |code: i64, message: &str, details: &str| {
        json!({"error": {"message": message, "type": "OAuthException", "code": code,
                          "error_data": {"messaging_product": "whatsapp", "details": details},
                          "fbtrace_id": "AazWx3n4d0R6wq0Lk6EyQfZ"}})
    };
    let answers = [
        (
            400,
            graph(
                131026,
                "(#131026) Message undeliverable",
                "Message Undeliverable.",
            ),
        ),
        (
            400,
            graph(
                131047,
                "(#131047) Re-engagement message",
                "More than 24 hours have passed since the recipient last replied.",
            ),
        ),
        (
            429,
            graph(
                130429,
                "(#130429) Rate limit hit",
                "Cloud API message throughput has been reached.",
            ),
        ),
        (
            401,
            graph(
                190,
                "Error validating access token: Session has expired",
                "",
            ),
        ),
    ];
    for (i, (status, body)) in answers.iter().enumerate() {
        Mock::given(method("POST"))
            .and(wiremock::matchers::body_string_contains(format!(
                "\"to\":\"96650000000{i}\""
            )))
            .respond_with(ResponseTemplate::new(*status).set_body_json(body.clone()))
            .mount(&server)
            .await;
    }
    let wa = WhatsappCloud::new("whatsapp", whatsapp_config(&server.uri())).unwrap();
    let send = |i: usize| {
        let mut m = whatsapp_msg();
        m.to = Address::Phone(PhoneNumber::parse(&format!("+96650000000{i}")).unwrap());
        m
    };
    assert_eq!(
        wa.send(&send(0)).await,
        Err(ProviderError::Rejected {
            code: "131026".into(),
            message: "(#131026) Message undeliverable (Message Undeliverable.)".into()
        })
    );
    assert!(
        matches!(wa.send(&send(1)).await, Err(ProviderError::Rejected { ref code, .. }) if code == "131047")
    );
    assert!(
        matches!(wa.send(&send(2)).await, Err(ProviderError::Transient { ref code, .. }) if code == "130429")
    );
    assert!(
        matches!(wa.send(&send(3)).await, Err(ProviderError::Misconfigured { ref code, .. }) if code == "190")
    );
}

#[tokio::test]
async fn failover_chain_moves_from_a_failing_twilio_to_unifonic() {
    let twilio_server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(503).set_body_json(
                json!({"code": 20503, "message": "Service Unavailable", "status": 503}),
            ),
        )
        .mount(&twilio_server)
        .await;
    let unifonic_server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/rest/SMS/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"success": true, "data": {"MessageID": 7, "Cost": 0.03, "CurrencyCode": "SAR"}}),
        ))
        .mount(&unifonic_server)
        .await;
    let providers: Vec<Arc<dyn Provider>> = vec![
        Arc::new(Twilio::new("twilio", twilio_config(&twilio_server.uri())).unwrap()),
        Arc::new(Unifonic::new("unifonic", unifonic_config(&unifonic_server.uri())).unwrap()),
    ];
    let chain = FailoverChain::new(
        providers,
        BreakerConfig {
            failure_threshold: 3,
            window_secs: 60,
            cool_down_secs: 600,
        },
    );
    let msg = sms("+966501234567", "x");

    // A message whose retries on Twilio are used up moves to Unifonic.
    match chain.send(&msg, Some("twilio"), true).await {
        ChainOutcome::Attempted {
            provider,
            failovers,
            result,
        } => {
            assert_eq!(provider, "unifonic");
            assert_eq!(
                failovers,
                vec![Failover {
                    from: "twilio".into(),
                    to: "unifonic".into(),
                    reason: FailoverReason::RetriesExhausted
                }]
            );
            assert_eq!(result.unwrap().provider_message_id, "7");
        }
        other => panic!("{other:?}"),
    }
    // Three failures open Twilio's breaker; new messages then go straight to Unifonic.
    for _ in 0..3 {
        let out = chain.send(&sms("+966501234567", "x"), None, false).await;
        assert!(
            matches!(out, ChainOutcome::Attempted { ref provider, result: Err(ProviderError::Transient { .. }), .. } if provider == "twilio")
        );
    }
    let out = chain.send(&sms("+966501234567", "x"), None, false).await;
    match out {
        ChainOutcome::Attempted {
            provider,
            failovers,
            result,
        } => {
            assert_eq!(provider, "unifonic");
            assert_eq!(failovers[0].reason, FailoverReason::CircuitOpen);
            assert!(result.is_ok());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        twilio_server.received_requests().await.unwrap().len(),
        3,
        "no request to an open breaker"
    );
    assert_eq!(unifonic_server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn rate_limit_paces_sends_to_the_configured_rate() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(twilio_created("SMr")))
        .mount(&server)
        .await;
    let mut cfg = twilio_config(&server.uri());
    cfg.rate_limit = RateLimit {
        per_second: 10,
        burst: 1,
    };
    let twilio = Arc::new(Twilio::new("twilio", cfg).unwrap());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..11 {
        let t = twilio.clone();
        tasks.push(tokio::spawn(async move {
            t.send(&sms("+966501234567", "x")).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let took = started.elapsed();
    // 11 sends at 10/s with a burst of 1: the 11th waits ~1 s.
    assert!(took >= Duration::from_millis(950), "took {took:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(server.received_requests().await.unwrap().len(), 11);
}

#[tokio::test]
async fn providers_build_from_toml_configuration() {
    let cfg: ProviderConfig = serde_json::from_value(json!({
        "kind": "twilio", "account_sid": ACCOUNT_SID, "auth_token": "t", "from": "+14155550100"
    }))
    .unwrap();
    let p = build_one("twilio-main", &cfg).unwrap();
    assert_eq!(p.name(), "twilio-main");
    assert!(
        p.supports(Channel::Sms) && !p.supports(Channel::Whatsapp) && !p.supports(Channel::Email)
    );
    let bad: ProviderConfig = serde_json::from_value(
        json!({"kind": "twilio", "account_sid": "nope", "auth_token": "t", "from": "+1"}),
    )
    .unwrap();
    assert_eq!(
        build_one("twilio", &bad).err().unwrap(),
        ProviderError::Misconfigured {
            code: "config".into(),
            message: "providers.twilio.account_sid: must be AC followed by 32 hex digits".into()
        }
    );
    let unknown = serde_json::from_value::<ProviderConfig>(
        json!({"kind": "twilio", "account_sid": ACCOUNT_SID, "auth_token": "t", "form": "+1"}),
    );
    assert!(unknown.is_err(), "a misspelt key is refused");
}

#[tokio::test]
async fn twilio_status_callback_for_a_sent_message_verifies_and_parses() {
    // The URL Twilio calls is the StatusCallback the adapter sent, message id included;
    // the signature covers it, so the id cannot be swapped without breaking it.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(twilio_created("SMcb")))
        .mount(&server)
        .await;
    let twilio = Twilio::new("twilio", twilio_config(&server.uri())).unwrap();
    let msg = sms("+966501234567", "x");
    twilio.send(&msg).await.unwrap();
    let sent = form_of(&single_request(&server).await);
    let url = sent
        .iter()
        .find(|(k, _)| k == "StatusCallback")
        .unwrap()
        .1
        .clone();
    assert_eq!(
        url,
        callback_url("https://hub.clinic.example/v1/webhooks/twilio", msg.id)
    );

    let callback = pairs(&[
        ("AccountSid", ACCOUNT_SID),
        ("ApiVersion", "2010-04-01"),
        ("ErrorCode", "30003"),
        ("From", "+14155550100"),
        ("MessageSid", "SMcb"),
        ("MessageStatus", "undelivered"),
        ("SmsSid", "SMcb"),
        ("SmsStatus", "undelivered"),
        ("To", "+966501234567"),
    ]);
    let signature = twilio_signature(AUTH_TOKEN, &url, &callback);
    assert!(verify_twilio(AUTH_TOKEN, &url, &callback, &signature));
    let other = callback_url(
        "https://hub.clinic.example/v1/webhooks/twilio",
        MessageId::new_random(),
    );
    assert!(
        !verify_twilio(AUTH_TOKEN, &other, &callback, &signature),
        "the id is covered by the signature"
    );

    let query = url.split_once('?').map(|(_, q)| q);
    let update = parse_status_callback(&callback, query).unwrap();
    assert_eq!(update.message_id, Some(msg.id));
    assert_eq!(update.provider_message_id, "SMcb");
    assert_eq!(update.status, MessageStatus::Failed);
    assert_eq!(update.error_code.as_deref(), Some("30003"));
}

#[tokio::test]
async fn a_2xx_cut_off_mid_body_is_unknown_even_without_a_status_callback() {
    // Twilio created the message (201) but the connection dies mid-body: retrying
    // would certainly send it twice, so the outcome is Unknown, not Transient.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let _ = sock.read(&mut buf).await.unwrap();
        sock.write_all(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"sid\": \"SMcut")
            .await
            .unwrap();
        // Dropping the socket cuts the body short.
    });
    let mut cfg = twilio_config(&base);
    cfg.status_callback = None;
    let twilio = Twilio::new("twilio", cfg).unwrap();
    let err = twilio.send(&sms("+966501234567", "x")).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Unknown { ref code, .. } if code == "bad_response"),
        "{err:?}"
    );
    server.await.unwrap();
}
