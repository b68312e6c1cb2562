//! The outbound queue worker against fake providers (wiremock speaking Twilio's and
//! Unifonic's wire formats, a real aiosmtpd), driven by a `ManualClock`: the retry
//! schedule is checked to the second without sleeping for minutes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tidings::config::outbound::TenantProviders;
use tidings::config::Config;
use tidings::domain::contact::{Address, EmailAddress, PhoneNumber};
use tidings::domain::ids::{PatientId, TenantId};
use tidings::domain::message::{
    ChannelSwitches, MessageId, MessageStatus, Money, PatientPreferences,
};
use tidings::domain::template::{Channel, Language, MessageKind};
use tidings::provider::breaker::BreakerConfig;
use tidings::provider::config::{ProviderConfig, Routes, Secret};
use tidings::provider::limit::RateLimit;
use tidings::provider::smtp::{SmtpConfig, SmtpTls};
use tidings::provider::twilio::TwilioConfig;
use tidings::provider::unifonic::UnifonicConfig;
use tidings::service::clock::ManualClock;
use tidings::store::outbound::{EnqueueFeed, EnqueueOutcome, MessageRecord, NewMessage};
use tidings::store::Store;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::*;

pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const AUTH_TOKEN: &str = "twilio-auth-token";
pub const PUBLIC_URL: &str = "https://hub.clinic.example";
pub const TENANT: &str = "clinic-a";

pub fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-27T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

pub fn twilio_path() -> String {
    format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")
}

pub fn twilio(base: &str, timeout_ms: u64) -> ProviderConfig {
    ProviderConfig::Twilio(TwilioConfig {
        account_sid: ACCOUNT_SID.into(),
        auth_token: Secret::new(AUTH_TOKEN),
        from: Some("+14155550100".into()),
        messaging_service_sid: None,
        whatsapp_from: None,
        status_callback: Some(format!("{PUBLIC_URL}/v1/webhooks/twilio")),
        base_url: base.to_owned(),
        timeout_ms,
        rate_limit: RateLimit {
            per_second: 0,
            burst: 0,
        },
    })
}

pub fn unifonic(base: &str) -> ProviderConfig {
    ProviderConfig::Unifonic(UnifonicConfig {
        app_sid: Secret::new("unifonic-app-sid"),
        sender_id: "CLINIC".into(),
        base_url: base.to_owned(),
        timeout_ms: 2000,
        rate_limit: RateLimit {
            per_second: 0,
            burst: 0,
        },
    })
}

/// A tenant's providers: `named` providers, `sms` the SMS failover order.
pub fn providers(named: Vec<(&str, ProviderConfig)>, sms: &[&str]) -> TenantProviders {
    TenantProviders {
        providers: named
            .into_iter()
            .map(|(n, p)| (n.to_owned(), p))
            .collect::<BTreeMap<_, _>>(),
        routes: Routes {
            sms: sms.iter().map(|s| s.to_string()).collect(),
            whatsapp: vec!["log".into()],
            email: vec!["log".into()],
        },
        breaker: BreakerConfig::default(),
        webhooks: Default::default(),
    }
}

pub fn twilio_created(sid: &str) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "sid": sid, "status": "queued", "price": "-0.00750", "price_unit": "USD",
        "account_sid": ACCOUNT_SID, "to": "+966501234567", "from": "+14155550100",
        "body": "b", "num_segments": "1", "direction": "outbound-api",
        "api_version": "2010-04-01", "error_code": null, "error_message": null
    }))
}

pub fn twilio_error(status: u16, code: u32, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "code": code, "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status
    }))
}

/// Our message id from a Twilio request (its StatusCallback URL carries it).
pub fn message_id_of(req: &Request) -> String {
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&req.body).unwrap();
    let cb = &form.iter().find(|(k, _)| k == "StatusCallback").unwrap().1;
    cb.split("message_id=").nth(1).unwrap().to_owned()
}

pub struct Outbound {
    pub app: TestApp,
    pub clock: Arc<ManualClock>,
    pub tenant: TenantId,
}

/// A hub on a manual clock at [`t0`], polling every 20 ms, `clinic-a` on `providers`.
pub async fn start(tenant: TenantProviders, tweak: impl FnOnce(&mut Config)) -> Outbound {
    let clock = Arc::new(ManualClock::new(t0()));
    let app = spawn_app_with_clock(
        |c| {
            c.outbound.poll_interval_ms = 20;
            c.outbound.public_url = PUBLIC_URL.into();
            c.outbound.tenants.insert(TENANT.into(), tenant);
            tweak(c);
        },
        Some(clock.clone()),
    )
    .await;
    Outbound {
        app,
        clock,
        tenant: TenantId::parse(TENANT).unwrap(),
    }
}

pub fn sms(to: &str, send_at: DateTime<Utc>) -> NewMessage {
    NewMessage {
        id: MessageId::new_random(),
        patient: None,
        channel: Channel::Sms,
        to: Some(Address::Phone(PhoneNumber::parse(to).unwrap())),
        language: Language::En,
        kind: MessageKind::AppointmentReminder,
        template: None,
        variables: BTreeMap::new(),
        subject: None,
        body: "Your appointment is tomorrow at 10:00".into(),
        status: MessageStatus::Queued,
        suppression: None,
        send_at,
        group_key: None,
        batch: None,
    }
}

/// Commits `messages` as one enqueue, as the API does.
pub async fn enqueue_into(
    store: &Arc<dyn Store>,
    tenant: &TenantId,
    messages: Vec<NewMessage>,
    now: DateTime<Utc>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let feed = tokio::spawn(async move {
        for chunk in messages.chunks(500) {
            tx.send(EnqueueFeed::Chunk(chunk.to_vec())).await.unwrap();
        }
        tx.send(EnqueueFeed::Commit).await.unwrap();
    });
    let out = store
        .enqueue(tenant, None, rx, None, None, now)
        .await
        .unwrap();
    feed.await.unwrap();
    assert!(matches!(out, EnqueueOutcome::Committed { .. }), "{out:?}");
}

impl Outbound {
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.app.app_store
    }

    pub fn now(&self) -> DateTime<Utc> {
        tidings::service::clock::Clock::now(self.clock.as_ref())
    }

    pub fn advance(&self, secs: i64) {
        self.clock.advance(chrono::Duration::seconds(secs));
    }

    pub async fn enqueue(&self, msg: NewMessage) -> MessageId {
        let id = msg.id;
        enqueue_into(self.store(), &self.tenant, vec![msg], self.now()).await;
        id
    }

    pub async fn message(&self, id: MessageId) -> MessageRecord {
        self.store()
            .get_message(&self.tenant, id)
            .await
            .unwrap()
            .expect("message exists")
    }

    /// Waits (real time, a few seconds at most) until the message satisfies `ok`.
    pub async fn wait_for(
        &self,
        id: MessageId,
        ok: impl Fn(&MessageRecord) -> bool,
    ) -> MessageRecord {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let m = self.message(id).await;
            if ok(&m) {
                return m;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "message never reached the expected state; it is {:?} with events {:?}",
                m.status,
                self.events(id).await
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn wait_status(&self, id: MessageId, status: MessageStatus) -> MessageRecord {
        self.wait_for(id, |m| m.status == status).await
    }

    /// The event trail as (event, detail).
    pub async fn events(&self, id: MessageId) -> Vec<(String, Value)> {
        self.store()
            .message_events(&self.tenant, id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| {
                (
                    e.event,
                    serde_json::from_str(&e.detail).unwrap_or(Value::Null),
                )
            })
            .collect()
    }

    pub async fn event_names(&self, id: MessageId) -> Vec<String> {
        self.events(id).await.into_iter().map(|(e, _)| e).collect()
    }
}

/// Long enough for several polls (20 ms) to prove that nothing happens.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(250)).await;
}

pub async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

#[tokio::test]
async fn a_queued_sms_is_sent_with_the_provider_id_and_price() {
    let fake = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(twilio_path()))
        .respond_with(twilio_created("SM0001"))
        .mount(&fake)
        .await;
    let ob = start(
        providers(vec![("twilio", twilio(&fake.uri(), 2000))], &["twilio"]),
        |_| {},
    )
    .await;
    let id = ob.enqueue(sms("+966501234567", ob.now())).await;
    let m = ob.wait_status(id, MessageStatus::Sent).await;
    assert_eq!(m.provider.as_deref(), Some("twilio"));
    assert_eq!(m.provider_message_id.as_deref(), Some("SM0001"));
    assert_eq!(
        m.price,
        Some(Money {
            micros: 7_500,
            currency: "USD".into()
        })
    );
    assert_eq!((m.attempts, m.failures), (1, 0));
    assert_eq!(
        ob.event_names(id).await,
        ["created", "queued", "sending", "sent"]
    );
    let sent = ob.events(id).await.pop().unwrap().1;
    assert_eq!(sent["provider"], "twilio");
    assert_eq!(sent["provider_message_id"], "SM0001");
    let reqs = fake.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 1);
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&reqs[0].body).unwrap();
    assert_eq!(form["To"], "+966501234567");
    assert_eq!(form["From"], "+14155550100");
    assert_eq!(form["Body"], "Your appointment is tomorrow at 10:00");
    assert_eq!(
        form["StatusCallback"],
        format!("{PUBLIC_URL}/v1/webhooks/twilio?message_id={id}")
    );
}

/// A WhatsApp message rendered from a template goes out as that approved template,
/// its variables as positional parameters in the template's declared order (not the
/// alphabetical order the message stores them in; undeclared values left out).
#[tokio::test]
async fn a_whatsapp_template_message_sends_its_parameters_in_declared_order() {
    use tidings::domain::ids::TemplateId;
    use tidings::domain::template::{Template, TemplateDraft};
    use tidings::provider::whatsapp_cloud::WhatsappCloudConfig;
    use tidings::store::outbound::{AuditEntry, TemplateRef};

    let fake = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v21.0/106540352242922/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": "966501234567", "wa_id": "966501234567"}],
            "messages": [{"id": "wamid.HBgLOTY2NTAxMjM0NTY3", "message_status": "accepted"}]
        })))
        .mount(&fake)
        .await;
    let wa = ProviderConfig::WhatsappCloud(WhatsappCloudConfig {
        access_token: Secret::new("EAAG-token"),
        phone_number_id: "106540352242922".into(),
        app_secret: None,
        api_version: "v21.0".into(),
        base_url: fake.uri(),
        timeout_ms: 2000,
        rate_limit: RateLimit {
            per_second: 0,
            burst: 0,
        },
    });
    let mut tenant = providers(vec![("wa", wa)], &["log"]);
    tenant.routes.whatsapp = vec!["wa".into()];
    let ob = start(tenant, |_| {}).await;

    let template = Template::create(TemplateDraft {
        name: "appointment_reminder".into(),
        channel: "whatsapp".into(),
        kind: "appointment_reminder".into(),
        body_en: "Hi {patient_name}, see you on {date} at {time}.".into(),
        body_ar: "مرحباً {patient_name}، موعدك يوم {date} الساعة {time}.".into(),
        variables: vec!["patient_name".into(), "date".into(), "time".into()],
        is_active: true,
        ..Default::default()
    })
    .unwrap();
    let template_id = TemplateId::new_random();
    let audit = AuditEntry {
        actor: "user:admin".into(),
        action: "template.create".into(),
        target: format!("template:{template_id}"),
        detail: "{}".into(),
        at: ob.now(),
    };
    ob.store()
        .create_template(&ob.tenant, template_id, &template, &audit)
        .await
        .unwrap();
    let variables: BTreeMap<String, String> = [
        ("time", "10:00"),
        ("patient_name", "أحمد"),
        ("date", "2026-11-28"),
        ("clinic", "not declared"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let msg = NewMessage {
        channel: Channel::Whatsapp,
        language: Language::Ar,
        template: Some(TemplateRef {
            id: template_id,
            name: "appointment_reminder".into(),
            version: 1,
        }),
        variables,
        body: "مرحباً أحمد، موعدك يوم 2026-11-28 الساعة 10:00.".into(),
        ..sms("+966501234567", ob.now())
    };
    let id = ob.enqueue(msg).await;
    let m = ob.wait_status(id, MessageStatus::Sent).await;
    assert_eq!(m.provider.as_deref(), Some("wa"));
    assert_eq!(
        m.provider_message_id.as_deref(),
        Some("wamid.HBgLOTY2NTAxMjM0NTY3")
    );
    let reqs = fake.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 1);
    let sent: Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert_eq!(sent["type"], "template");
    assert_eq!(
        sent["template"],
        json!({
            "name": "appointment_reminder",
            "language": {"code": "ar"},
            "components": [{"type": "body", "parameters": [
                {"type": "text", "text": "أحمد"},
                {"type": "text", "text": "2026-11-28"},
                {"type": "text", "text": "10:00"}
            ]}]
        })
    );
}

#[tokio::test]
async fn transient_failures_retry_after_60_120_240_seconds_then_fail() {
    let fake = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(twilio_path()))
        .respond_with(twilio_error(503, 20503, "Service unavailable"))
        .mount(&fake)
        .await;
    let ob = start(
        providers(vec![("twilio", twilio(&fake.uri(), 2000))], &["twilio"]),
        |_| {},
    )
    .await;
    let id = ob.enqueue(sms("+966501234567", ob.now())).await;
    ob.wait_for(id, |m| m.failures == 1 && m.status == MessageStatus::Queued)
        .await;
    let mut elapsed = 0;
    for (n, wait) in [(1, 60), (2, 120), (3, 240)] {
        let retry = ob
            .events(id)
            .await
            .into_iter()
            .filter(|(e, _)| e == "retry")
            .nth(n - 1)
            .unwrap()
            .1;
        elapsed += wait;
        let due = t0() + chrono::Duration::seconds(elapsed);
        assert_eq!(retry["retry_at"], due.to_rfc3339(), "retry {n}");
        assert_eq!(retry["code"], "20503");
        assert_eq!(retry["provider"], "twilio");
        // One second early: nothing happens.
        ob.advance(wait - 1);
        settle().await;
        assert_eq!(requests(&fake).await, n, "no send before retry {n} is due");
        ob.advance(1);
        ob.wait_for(id, |m| m.attempts == n as u32 + 1).await;
    }
    let m = ob.wait_status(id, MessageStatus::Failed).await;
    assert_eq!(requests(&fake).await, 4);
    assert_eq!((m.attempts, m.failures), (4, 4));
    assert!(m.last_error.unwrap().starts_with("20503"));
    let names = ob.event_names(id).await;
    assert_eq!(
        names,
        [
            "created", "queued", "sending", "retry", "sending", "retry", "sending", "retry",
            "sending", "failed"
        ]
    );
    // Nothing more, however long we wait.
    ob.advance(86_400);
    settle().await;
    assert_eq!(requests(&fake).await, 4);
}

#[tokio::test]
async fn retry_after_is_honoured_when_longer_than_the_backoff() {
    let fake = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(twilio_path()))
        .respond_with(
            twilio_error(429, 20429, "Too Many Requests").insert_header("Retry-After", "300"),
        )
        .up_to_n_times(1)
        .mount(&fake)
        .await;
    Mock::given(method("POST"))
        .and(path(twilio_path()))
        .respond_with(twilio_created("SM0429"))
        .mount(&fake)
        .await;
    let ob = start(
        providers(vec![("twilio", twilio(&fake.uri(), 2000))], &["twilio"]),
        |_| {},
    )
    .await;
    let id = ob.enqueue(sms("+966501234567", ob.now())).await;
    ob.wait_for(id, |m| m.failures == 1).await;
    let retry = ob
        .events(id)
        .await
        .into_iter()
        .find(|(e, _)| e == "retry")
        .unwrap()
        .1;
    assert_eq!(
        retry["retry_at"],
        (t0() + chrono::Duration::seconds(300)).to_rfc3339()
    );
    assert_eq!(retry["retry_after_secs"], 300);
    ob.advance(299);
    settle().await;
    assert_eq!(
        requests(&fake).await,
        1,
        "the 60 s backoff gave way to Retry-After"
    );
    ob.advance(1);
    let m = ob.wait_status(id, MessageStatus::Sent).await;
    assert_eq!(m.provider_message_id.as_deref(), Some("SM0429"));
}

#[tokio::test]
async fn an_invalid_number_bounces_at_once() {
    let fake = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(twilio_path()))
        .respond_with(twilio_error(
            400,
            21211,
            "The 'To' number +15005550001 is not a valid phone number.",
        ))
        .mount(&fake)
        .await;
    let ob = start(
        providers(vec![("twilio", twilio(&fake.uri(), 2000))], &["twilio"]),
        |_| {},
    )
    .await;
    let id = ob.enqueue(sms("+15005550001", ob.now())).await;
    let m = ob.wait_status(id, MessageStatus::Bounced).await;
    assert_eq!(m.attempts, 1);
    let bounced = ob.events(id).await.pop().unwrap();
    assert_eq!(bounced.0, "bounced");
    assert_eq!(bounced.1["code"], "21211");
    assert_eq!(bounced.1["provider"], "twilio");
    ob.advance(3600);
    settle().await;
    assert_eq!(requests(&fake).await, 1, "a bounce is never retried");
}

fn unifonic_ok(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "success": true, "message": "", "errorCode": "ER-00",
        "data": {"MessageID": id, "CorrelationID": "c", "Status": "Sent", "NumberOfUnits": 1,
                 "Cost": 0.0355, "Balance": 10, "Recipient": "966501234567",
                 "TimeCreated": "2026-11-27 10:00:00", "CurrencyCode": "SAR"}
    }))
}

#[tokio::test]
async fn twilio_down_until_its_retries_run_out_fails_over_to_unifonic() {
    let tw = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(twilio_path()))
        .respond_with(ResponseTemplate::new(503).set_body_string("<html>down</html>"))
        .mount(&tw)
        .await;
    let uni = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/rest/SMS/messages"))
        .respond_with(unifonic_ok("41882"))
        .mount(&uni)
        .await;
    let ob = start(
        providers(
            vec![
                ("twilio", twilio(&tw.uri(), 2000)),
                ("unifonic", unifonic(&uni.uri())),
            ],
            &["twilio", "unifonic"],
        ),
        |_| {},
    )
    .await;
    let id = ob.enqueue(sms("+966501234567", ob.now())).await;
    for (n, wait) in [(1u32, 60), (2, 120), (3, 240)] {
        ob.wait_for(id, |m| m.failures == n).await;
        ob.advance(wait);
    }
    let m = ob.wait_status(id, MessageStatus::Sent).await;
    assert_eq!(m.provider.as_deref(), Some("unifonic"));
    assert_eq!(m.provider_message_id.as_deref(), Some("41882"));
    assert_eq!(
        m.price,
        Some(Money {
            micros: 35_500,
            currency: "SAR".into()
        })
    );
    assert_eq!((requests(&tw).await, requests(&uni).await), (4, 1));
    let events = ob.events(id).await;
    let failover = events.iter().find(|(e, _)| e == "failover").unwrap();
    assert_eq!(
        failover.1,
        json!({"from": "twilio", "to": "unifonic", "reason": "retries_exhausted"})
    );
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(&names[names.len() - 2..], ["failover", "sent"]);
}

#[tokio::test]
async fn an_open_breaker_sends_the_next_message_through_unifonic_at_once() {
    let tw = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(twilio_path()))
        .respond_with(twilio_error(503, 20503, "Service unavailable"))
        .mount(&tw)
        .await;
    let uni = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/rest/SMS/messages"))
        .respond_with(unifonic_ok("41883"))
        .mount(&uni)
        .await;
    let mut cfg = providers(
        vec![
            ("twilio", twilio(&tw.uri(), 2000)),
            ("unifonic", unifonic(&uni.uri())),
        ],
        &["twilio", "unifonic"],
    );
    cfg.breaker = BreakerConfig {
        failure_threshold: 1,
        window_secs: 60,
        cool_down_secs: 30,
    };
    let ob = start(cfg, |_| {}).await;
    let first = ob.enqueue(sms("+966501234567", ob.now())).await;
    ob.wait_for(first, |m| m.failures == 1).await;
    let second = ob.enqueue(sms("+966501234568", ob.now())).await;
    let m = ob.wait_status(second, MessageStatus::Sent).await;
    assert_eq!(m.provider.as_deref(), Some("unifonic"));
    let failover = ob
        .events(second)
        .await
        .into_iter()
        .find(|(e, _)| e == "failover")
        .unwrap();
    assert_eq!(
        failover.1,
        json!({"from": "twilio", "to": "unifonic", "reason": "circuit_open"})
    );
    assert_eq!((requests(&tw).await, requests(&uni).await), (1, 1));
}

#[tokio::test]
async fn a_timed_out_send_waits_for_its_deadline_then_is_retried() {
    let fake = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(twilio_path()))
        .respond_with(twilio_created("SMlost").set_delay(Duration::from_secs(3)))
        .up_to_n_times(1)
        .mount(&fake)
        .await;
    Mock::given(method("POST"))
        .and(path(twilio_path()))
        .respond_with(twilio_created("SM0002"))
        .mount(&fake)
        .await;
    let ob = start(
        providers(vec![("twilio", twilio(&fake.uri(), 300))], &["twilio"]),
        |c| {
            c.outbound.lease_secs = 30;
        },
    )
    .await;
    let id = ob.enqueue(sms("+966501234567", ob.now())).await;
    ob.wait_for(id, |m| m.attempts == 1).await;
    let m = ob.message(id).await;
    assert_eq!(
        m.status,
        MessageStatus::Sending,
        "outcome unknown: no blind retry"
    );
    let unknown = ob.events(id).await.pop().unwrap();
    assert_eq!(unknown.0, "unknown");
    assert_eq!(unknown.1["code"], "timeout");
    assert_eq!(
        unknown.1["wait_until"],
        (t0() + chrono::Duration::seconds(600)).to_rfc3339()
    );
    // Past the lease but before the unknown-outcome deadline: still waiting.
    ob.advance(599);
    settle().await;
    assert_eq!(requests(&fake).await, 1);
    // No callback came: treated as one transient failure and sent again.
    ob.advance(2);
    let m = ob.wait_status(id, MessageStatus::Sent).await;
    assert_eq!(m.provider_message_id.as_deref(), Some("SM0002"));
    assert_eq!((m.attempts, m.failures), (2, 1));
    assert_eq!(requests(&fake).await, 2);
    let names = ob.event_names(id).await;
    assert_eq!(
        names,
        ["created", "queued", "sending", "unknown", "sending", "retry", "sent"]
    );
}

#[tokio::test]
async fn a_preference_switched_off_after_enqueue_suppresses_at_send_time() {
    let fake = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(twilio_path()))
        .respond_with(twilio_created("SM0003"))
        .mount(&fake)
        .await;
    let ob = start(
        providers(vec![("twilio", twilio(&fake.uri(), 2000))], &["twilio"]),
        |_| {},
    )
    .await;
    let patient = PatientId::parse("p-100").unwrap();
    let mut prefs = PatientPreferences {
        phone: Some(PhoneNumber::parse("+966501234567").unwrap()),
        ..Default::default()
    };
    ob.store()
        .put_patient_preferences(&ob.tenant, &patient, &prefs, None, ob.now())
        .await
        .unwrap();
    let mut msg = sms("+966501234567", ob.now() + chrono::Duration::hours(1));
    msg.patient = Some(patient.clone());
    let id = ob.enqueue(msg).await;
    prefs.channels = ChannelSwitches {
        sms: false,
        whatsapp: true,
        email: true,
    };
    ob.store()
        .put_patient_preferences(&ob.tenant, &patient, &prefs, None, ob.now())
        .await
        .unwrap();
    ob.advance(3600);
    let m = ob.wait_status(id, MessageStatus::Suppressed).await;
    assert_eq!(m.attempts, 0);
    let last = ob.events(id).await.pop().unwrap();
    assert_eq!(last.0, "suppressed");
    assert_eq!(last.1["reason"], "channel_disabled");
    assert_eq!(last.1["at"], "send");
    assert_eq!(requests(&fake).await, 0);
}

#[tokio::test]
async fn an_email_goes_out_through_a_real_smtp_server() {
    let server = crate::providers_smtp::start_smtp().await;
    let mut tenant = providers(vec![], &["log"]);
    tenant.providers.insert(
        "mail".into(),
        ProviderConfig::Smtp(SmtpConfig {
            host: "127.0.0.1".into(),
            port: server.port,
            tls: SmtpTls::None,
            username: None,
            password: None,
            from: "Clinic <noreply@clinic.example>".into(),
            timeout_ms: 5000,
            rate_limit: RateLimit {
                per_second: 0,
                burst: 0,
            },
        }),
    );
    tenant.routes.email = vec!["mail".into()];
    let ob = start(tenant, |_| {}).await;
    let mut msg = sms("+966501234567", ob.now());
    msg.channel = Channel::Email;
    msg.to = Some(Address::Email(
        EmailAddress::parse("patient@example.org").unwrap(),
    ));
    msg.subject = Some("تذكير بموعدك".into());
    msg.body = "موعدك غداً الساعة ١٠:٠٠".into();
    let id = ob.enqueue(msg).await;
    let m = ob.wait_status(id, MessageStatus::Sent).await;
    assert_eq!(m.provider.as_deref(), Some("mail"));
    assert_eq!(
        m.provider_message_id,
        Some(format!("<{id}@clinic.example>"))
    );
    let got = crate::providers_smtp::received(server.dir.path());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["subject"], "تذكير بموعدك");
    assert_eq!(got[0]["rcpt_tos"], json!(["patient@example.org"]));

    // A 550 from the server bounces the message.
    let mut bad = sms("+966501234567", ob.now());
    bad.channel = Channel::Email;
    bad.to = Some(Address::Email(
        EmailAddress::parse("nobody@example.org").unwrap(),
    ));
    bad.subject = Some("s".into());
    let bad = ob.enqueue(bad).await;
    ob.wait_status(bad, MessageStatus::Bounced).await;
}

#[tokio::test]
async fn two_nodes_on_one_database_never_send_a_message_twice() {
    let fake = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(twilio_path()))
        .respond_with(twilio_created("SMx").set_delay(Duration::from_millis(10)))
        .mount(&fake)
        .await;
    // One database for both nodes: PostgreSQL (FOR UPDATE SKIP LOCKED) with
    // TIDINGS_TEST_BACKEND=postgres, else one SQLite file (the atomic claim).
    let dir = tempfile::tempdir().unwrap();
    let pg = match std::env::var("TIDINGS_TEST_BACKEND").as_deref() {
        Ok("postgres") => {
            let admin = postgres_admin_url("two_nodes", true).expect("required");
            Some(PgTestDb::create(&admin).await)
        }
        _ => None,
    };
    let db = match &pg {
        Some(db) => db.url.clone(),
        None => format!("sqlite://{}/shared.db", dir.path().display()),
    };
    let tenant = providers(vec![("twilio", twilio(&fake.uri(), 5000))], &["twilio"]);
    let node = |first: bool| {
        let (db, tenant) = (db.clone(), tenant.clone());
        move |c: &mut Config| {
            c.database_url = db;
            c.outbound.poll_interval_ms = 20;
            c.outbound.concurrency = 8;
            c.outbound.claim_batch = 16;
            c.outbound.tenants.insert(TENANT.into(), tenant);
            if !first {
                // The first node created the tenant.
                c.dev_api_key.clear();
                c.dev_jwt_secret.clear();
            }
        }
    };
    let a = spawn_app_with(node(true)).await;
    let b = spawn_app_with(node(false)).await;
    let tenant_id = TenantId::parse(TENANT).unwrap();
    let n = 300;
    let messages: Vec<NewMessage> = (0..n)
        .map(|i| sms(&format!("+9665012{i:05}"), Utc::now()))
        .collect();
    let ids: Vec<MessageId> = messages.iter().map(|m| m.id).collect();
    enqueue_into(&a.app_store, &tenant_id, messages, Utc::now()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while a.app_store.pending_messages().await.unwrap() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the two nodes did not drain the queue"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for req in fake.received_requests().await.unwrap() {
        *per_id.entry(message_id_of(&req)).or_default() += 1;
    }
    assert_eq!(per_id.len(), n, "every message was sent");
    assert!(per_id.values().all(|&c| c == 1), "a message was sent twice");
    for id in ids {
        let m = b
            .app_store
            .get_message(&tenant_id, id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.status, MessageStatus::Sent);
    }
}

#[tokio::test]
async fn a_message_enqueued_through_the_api_is_sent_at_once_not_at_the_next_poll() {
    let fake = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(twilio_path()))
        .respond_with(twilio_created("SMapi"))
        .mount(&fake)
        .await;
    // A poll interval far longer than the test: only the enqueue's wake-up can send it.
    let ob = start(
        providers(vec![("twilio", twilio(&fake.uri(), 2000))], &["twilio"]),
        |c| c.outbound.poll_interval_ms = 600_000,
    )
    .await;
    settle().await; // the worker's first look (at start) finds nothing
    let (status, body) = ob
        .app
        .post_key(
            "/v1/messages",
            json!({"to": "+966501234567", "channel": "sms", "body": "Your results are ready",
                   "kind": "results"}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body}");
    let id = MessageId::parse(body["id"].as_str().unwrap()).unwrap();
    let m = ob.wait_status(id, MessageStatus::Sent).await;
    assert_eq!(m.provider_message_id.as_deref(), Some("SMapi"));
    let reqs = fake.received_requests().await.unwrap();
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&reqs[0].body).unwrap();
    assert_eq!(form["Body"], "Your results are ready");
}

#[tokio::test]
async fn shutdown_finishes_the_sends_in_flight_and_claims_nothing_more() {
    let fake = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(twilio_path()))
        .respond_with(twilio_created("SMgrace").set_delay(Duration::from_millis(700)))
        .mount(&fake)
        .await;
    let mut ob = start(
        providers(vec![("twilio", twilio(&fake.uri(), 5000))], &["twilio"]),
        |_| {},
    )
    .await;
    let in_flight = ob.enqueue(sms("+966501234567", ob.now())).await;
    let later = ob
        .enqueue(sms(
            "+966501234568",
            ob.now() + chrono::Duration::seconds(60),
        ))
        .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while requests(&fake).await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the send never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    ob.app.shutdown(); // as SIGTERM
    tokio::time::sleep(Duration::from_millis(100)).await;
    ob.advance(120); // `later` is due now, but the worker has stopped claiming
    ob.app.stopped.take().unwrap().await.unwrap().unwrap();
    let m = ob.message(in_flight).await;
    assert_eq!(
        m.status,
        MessageStatus::Sent,
        "the send in flight was finished and recorded"
    );
    assert_eq!(m.provider_message_id.as_deref(), Some("SMgrace"));
    assert_eq!(ob.message(later).await.status, MessageStatus::Queued);
    assert_eq!(requests(&fake).await, 1);
}
