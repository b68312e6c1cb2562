//! Provider status webhooks through real HTTP: valid, invalid and replayed
//! signatures (Twilio, WhatsApp Cloud), Unifonic's URL token, out-of-order
//! callbacks, and a callback settling a send whose outcome was unknown.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tidings::domain::message::{MessageId, MessageStatus};
use tidings::provider::config::{ProviderConfig, Secret};
use tidings::provider::limit::RateLimit;
use tidings::provider::signature::{meta_signature, twilio_signature};
use tidings::provider::whatsapp_cloud::WhatsappCloudConfig;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::outbound_dispatch::*;
use crate::support::{assert_error, split};

/// Twilio's published example (twilio.com/docs/usage/security): the check the
/// webhook uses is exactly the one that reproduces it.
#[test]
fn twilio_published_signature_vector() {
    let params: Vec<(String, String)> = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675310"),
        ("Digits", "1234"),
        ("From", "+14158675310"),
        ("To", "+18005551212"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(
        twilio_signature(
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            &params
        ),
        "GvWf1cFY/Q7PnoempGyD5oXAezc="
    );
}

fn form(pairs: &[(&str, &str)]) -> (String, Vec<(String, String)>) {
    let owned: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (serde_urlencoded::to_string(&owned).unwrap(), owned)
}

async fn post_twilio(
    ob: &Outbound,
    id: MessageId,
    pairs: &[(&str, &str)],
    token: &str,
) -> (StatusCode, Value) {
    let query = format!("message_id={id}");
    let (body, params) = form(pairs);
    // Twilio signs the public URL it called (the hub is behind a proxy here).
    let public = format!("{PUBLIC_URL}/v1/webhooks/twilio?{query}");
    let sig = twilio_signature(token, &public, &params);
    let res = ob
        .app
        .http
        .post(ob.app.url(&format!("/v1/webhooks/twilio?{query}")))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    split(res).await
}

async fn sent_through_twilio(sid: &str) -> (MockServer, Outbound, MessageId) {
    let fake = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(twilio_path()))
        .respond_with(twilio_created(sid))
        .mount(&fake)
        .await;
    let ob = start(
        providers(vec![("twilio", twilio(&fake.uri(), 2000))], &["twilio"]),
        |_| {},
    )
    .await;
    let id = ob.enqueue(sms("+966501234567", ob.now())).await;
    ob.wait_status(id, MessageStatus::Sent).await;
    (fake, ob, id)
}

#[tokio::test]
async fn twilio_callbacks_valid_invalid_replayed_and_out_of_order() {
    let (_fake, ob, id) = sent_through_twilio("SM1000").await;
    let delivered = [
        ("AccountSid", ACCOUNT_SID),
        ("MessageSid", "SM1000"),
        ("MessageStatus", "delivered"),
        ("Price", "-0.00750"),
        ("PriceUnit", "USD"),
    ];
    let before = ob.events(id).await.len();

    // A forged callback (wrong token): 403, nothing changes.
    let (status, body) = post_twilio(&ob, id, &delivered, "not-the-token").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "bad_signature");
    assert_eq!(ob.message(id).await.status, MessageStatus::Sent);
    assert_eq!(ob.events(id).await.len(), before);

    // No signature at all: the same.
    let (raw, _) = form(&delivered);
    let res = ob
        .app
        .http
        .post(ob.app.url(&format!("/v1/webhooks/twilio?message_id={id}")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // Signed: applied.
    let (status, body) = post_twilio(&ob, id, &delivered, AUTH_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"applied": 1, "stale": 0, "replayed": 0, "ignored": 0})
    );
    assert_eq!(ob.message(id).await.status, MessageStatus::Delivered);
    let after = ob.events(id).await;
    assert_eq!(after.len(), before + 1);
    assert_eq!(after.last().unwrap().0, "delivered");
    assert_eq!(after.last().unwrap().1["source"], "callback");

    // The same callback again (Twilio retries): acknowledged, nothing written.
    let (status, body) = post_twilio(&ob, id, &delivered, AUTH_TOKEN).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["replayed"], 1);
    assert_eq!(ob.events(id).await.len(), before + 1);

    // A late `sent` after `delivered`: recorded, but the status does not move back.
    let late = [("MessageSid", "SM1000"), ("MessageStatus", "sent")];
    let (status, body) = post_twilio(&ob, id, &late, AUTH_TOKEN).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["stale"], 1);
    let m = ob.message(id).await;
    assert_eq!(m.status, MessageStatus::Delivered);
    assert_eq!(m.provider_message_id.as_deref(), Some("SM1000"));

    // A callback about a message we do not know: acknowledged, ignored.
    let (status, body) = post_twilio(
        &ob,
        MessageId::new_random(),
        &[("MessageSid", "SM404"), ("MessageStatus", "delivered")],
        AUTH_TOKEN,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["ignored"], 1);
}

#[tokio::test]
async fn a_callback_settles_a_send_whose_outcome_was_unknown() {
    let fake = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(twilio_path()))
        .respond_with(twilio_created("SMslow").set_delay(Duration::from_secs(3)))
        .mount(&fake)
        .await;
    let ob = start(
        providers(vec![("twilio", twilio(&fake.uri(), 300))], &["twilio"]),
        |_| {},
    )
    .await;
    let id = ob.enqueue(sms("+966501234567", ob.now())).await;
    ob.wait_for(id, |m| m.attempts == 1).await;
    assert_eq!(ob.message(id).await.status, MessageStatus::Sending);
    // Twilio did create it; its callback (carrying our id) says so.
    let (status, body) = post_twilio(
        &ob,
        id,
        &[("MessageSid", "SMslow"), ("MessageStatus", "delivered")],
        AUTH_TOKEN,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let m = ob.message(id).await;
    assert_eq!(m.status, MessageStatus::Delivered);
    assert_eq!(m.provider_message_id.as_deref(), Some("SMslow"));
    // The unknown-outcome deadline passes: nothing is sent again.
    ob.advance(601);
    settle().await;
    assert_eq!(requests(&fake).await, 1);
    assert_eq!(ob.message(id).await.status, MessageStatus::Delivered);
}

const APP_SECRET: &str = "meta-app-secret";

fn whatsapp_cloud(base: &str) -> ProviderConfig {
    ProviderConfig::WhatsappCloud(WhatsappCloudConfig {
        access_token: Secret::new("EAAG-token"),
        phone_number_id: "106540352242922".into(),
        app_secret: Some(Secret::new(APP_SECRET)),
        api_version: "v21.0".into(),
        base_url: base.to_owned(),
        timeout_ms: 2000,
        rate_limit: RateLimit {
            per_second: 0,
            burst: 0,
        },
    })
}

fn status_hook(wamid: &str, id: MessageId, status: &str) -> String {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550000000", "phone_number_id": "106540352242922"},
                  "statuses": [{"id": wamid, "status": status, "timestamp": "1764237600",
                                "recipient_id": "966501234567", "biz_opaque_callback_data": id.to_string()}]}}]}]})
    .to_string()
}

#[tokio::test]
async fn whatsapp_webhooks_check_the_app_secret_and_the_handshake() {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v21.0/106540352242922/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": "966501234567", "wa_id": "966501234567"}],
            "messages": [{"id": "wamid.HBgM"}]
        })))
        .mount(&graph)
        .await;
    let mut tenant = providers(vec![("whatsapp", whatsapp_cloud(&graph.uri()))], &["log"]);
    tenant.routes.whatsapp = vec!["whatsapp".into()];
    tenant.webhooks.whatsapp_verify_token = Some(Secret::new("verify-me"));
    let ob = start(tenant, |_| {}).await;
    let mut msg = sms("+966501234567", ob.now());
    msg.channel = tidings::domain::template::Channel::Whatsapp;
    let id = ob.enqueue(msg).await;
    let m = ob.wait_status(id, MessageStatus::Sent).await;
    assert_eq!(m.provider_message_id.as_deref(), Some("wamid.HBgM"));

    let post = |body: String, sig: String| {
        let ob = &ob;
        async move {
            split(
                ob.app
                    .http
                    .post(ob.app.url("/v1/webhooks/whatsapp"))
                    .header("content-type", "application/json")
                    .header("x-hub-signature-256", sig)
                    .body(body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let read = status_hook("wamid.HBgM", id, "read");
    let (status, _) = post(
        read.clone(),
        meta_signature("wrong-secret", read.as_bytes()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(ob.message(id).await.status, MessageStatus::Sent);

    let (status, body) = post(read.clone(), meta_signature(APP_SECRET, read.as_bytes())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["applied"], 1);
    assert_eq!(ob.message(id).await.status, MessageStatus::Read);
    let (_, body) = post(read.clone(), meta_signature(APP_SECRET, read.as_bytes())).await;
    assert_eq!(body["replayed"], 1);
    // `delivered` after `read`: stale.
    let delivered = status_hook("wamid.HBgM", id, "delivered");
    let (_, body) = post(
        delivered.clone(),
        meta_signature(APP_SECRET, delivered.as_bytes()),
    )
    .await;
    assert_eq!(body["stale"], 1);
    assert_eq!(ob.message(id).await.status, MessageStatus::Read);

    // Meta's registration handshake.
    let verify = |token: &str| {
        ob.app.http.get(ob.app.url(&format!(
            "/v1/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444"
        )))
    };
    let res = verify("verify-me").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "1158201444");
    assert_eq!(
        verify("guess").send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn unifonic_reports_need_the_tenants_url_token() {
    let uni = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/rest/SMS/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "success": true, "message": "", "errorCode": "ER-00",
            "data": {"MessageID": 42000348806924u64, "Status": "Sent", "Cost": 0.0355, "CurrencyCode": "SAR"}
        })))
        .mount(&uni)
        .await;
    let mut tenant = providers(vec![("unifonic", unifonic(&uni.uri()))], &["unifonic"]);
    tenant.webhooks.unifonic_token = Some(Secret::new("uni-secret-token"));
    let ob = start(tenant, |_| {}).await;
    let id = ob.enqueue(sms("+966501234567", ob.now())).await;
    ob.wait_status(id, MessageStatus::Sent).await;
    let report = "MessageID=42000348806924&DLR=Delivered&Recipient=966501234567";
    let post = |token: &str| {
        ob.app
            .http
            .post(ob.app.url(&format!("/v1/webhooks/unifonic?token={token}")))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(report)
    };
    assert_eq!(
        post("wrong").send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(ob.message(id).await.status, MessageStatus::Sent);
    let (status, body) = split(post("uni-secret-token").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["applied"], 1);
    assert_eq!(ob.message(id).await.status, MessageStatus::Delivered);
}

// ---- Issue #11, finding 8: verify before any lookup, one answer for unknown and
// other tenants' ids, a callback URL per tenant, JSON 413s.

const TOKEN_B: &str = "clinic-b-twilio-token";
const APP_SECRET_B: &str = "clinic-b-meta-app-secret";
const UNI_A: &str = "uni-token-a";
const UNI_B: &str = "uni-token-b";

fn with_token(provider: ProviderConfig, token: &str) -> ProviderConfig {
    match provider {
        ProviderConfig::Twilio(mut c) => {
            c.auth_token = Secret::new(token);
            ProviderConfig::Twilio(c)
        }
        ProviderConfig::WhatsappCloud(mut c) => {
            c.app_secret = Some(Secret::new(token));
            ProviderConfig::WhatsappCloud(c)
        }
        other => other,
    }
}

/// clinic-a sends SMS through a fake Twilio (message `SM2000` sent); clinic-b has
/// its own Twilio token, WhatsApp app secret, Unifonic and verify tokens.
async fn two_clinics() -> (MockServer, Outbound, MessageId) {
    let fake = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(twilio_path()))
        .respond_with(twilio_created("SM2000"))
        .mount(&fake)
        .await;
    let mut a = providers(vec![("twilio", twilio(&fake.uri(), 2000))], &["twilio"]);
    a.webhooks.unifonic_token = Some(Secret::new(UNI_A));
    a.webhooks.whatsapp_verify_token = Some(Secret::new("verify-a"));
    let ob = start(a, |c| {
        let unused = "http://127.0.0.1:9";
        let mut b = providers(
            vec![
                ("twilio", with_token(twilio(unused, 2000), TOKEN_B)),
                ("wa", with_token(whatsapp_cloud(unused), APP_SECRET_B)),
            ],
            &["twilio"],
        );
        b.webhooks.unifonic_token = Some(Secret::new(UNI_B));
        b.webhooks.whatsapp_verify_token = Some(Secret::new("verify-b"));
        c.outbound.tenants.insert("clinic-b".into(), b);
    })
    .await;
    let id = ob.enqueue(sms("+966501234567", ob.now())).await;
    ob.wait_status(id, MessageStatus::Sent).await;
    (fake, ob, id)
}

/// A Twilio callback at `path` (`?message_id=<id>`), signed with `token` over the
/// public URL.
async fn twilio_at(
    ob: &Outbound,
    at: &str,
    id: MessageId,
    pairs: &[(&str, &str)],
    token: &str,
) -> (StatusCode, Value) {
    let (body, params) = form(pairs);
    let path_and_query = format!("{at}?message_id={id}");
    let sig = twilio_signature(token, &format!("{PUBLIC_URL}{path_and_query}"), &params);
    let res = ob
        .app
        .http
        .post(ob.app.url(&path_and_query))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    split(res).await
}

async fn post_raw(
    ob: &Outbound,
    at: &str,
    headers: &[(&str, &str)],
    body: String,
) -> (StatusCode, Value) {
    let mut req = ob.app.http.post(ob.app.url(at));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    split(req.body(body).send().await.unwrap()).await
}

async fn whatsapp_signed(
    ob: &Outbound,
    at: &str,
    body: String,
    secret: &str,
) -> (StatusCode, Value) {
    let sig = meta_signature(secret, body.as_bytes());
    post_raw(
        ob,
        at,
        &[
            ("content-type", "application/json"),
            ("x-hub-signature-256", &sig),
        ],
        body,
    )
    .await
}

fn ignored_one() -> Value {
    json!({"applied": 0, "stale": 0, "replayed": 0, "ignored": 1})
}

#[tokio::test]
async fn callbacks_are_verified_before_any_lookup_and_answer_alike_for_unknown_and_foreign_ids() {
    let (_fake, ob, id) = two_clinics().await;
    let hook = "/v1/webhooks/twilio";
    let known = [("MessageSid", "SM2000"), ("MessageStatus", "delivered")];
    let unknown = [("MessageSid", "SM404"), ("MessageStatus", "delivered")];
    let stranger = MessageId::new_random();

    // No valid signature: 403 whether the id exists or not (it was 200 for an
    // unknown id and 403 for a known one: an oracle).
    let (s, b) = twilio_at(&ob, hook, id, &known, "guess").await;
    assert_error(s, &b, 403, "bad_signature");
    let (s, b) = twilio_at(&ob, hook, stranger, &unknown, "guess").await;
    assert_error(s, &b, 403, "bad_signature");

    // Signed by clinic-b: clinic-a's message is answered exactly like an unknown
    // one, and does not move.
    let foreign = twilio_at(&ob, hook, id, &known, TOKEN_B).await;
    let missing = twilio_at(&ob, hook, stranger, &unknown, TOKEN_B).await;
    assert_eq!(foreign, (StatusCode::OK, ignored_one()));
    assert_eq!(missing, foreign);
    assert_eq!(ob.message(id).await.status, MessageStatus::Sent);

    // Unifonic: a wrong token is 403 for any MessageID (Unifonic's ids are
    // sequential: an answer that differs for known ones would list them).
    let uni = |token: &str, message: &str| {
        let at = format!("/v1/webhooks/unifonic?token={token}");
        let body = format!("MessageID={message}&DLR=Delivered");
        let ob = &ob;
        async move {
            post_raw(
                ob,
                &at,
                &[("content-type", "application/x-www-form-urlencoded")],
                body,
            )
            .await
        }
    };
    let (s, b) = uni("guess", "42000348806925").await;
    assert_error(s, &b, 403, "bad_signature");
    assert_eq!(
        uni(UNI_B, "42000348806925").await,
        (StatusCode::OK, ignored_one())
    );

    // WhatsApp: the signature is checked before the body is even parsed …
    let (s, b) = post_raw(
        &ob,
        "/v1/webhooks/whatsapp",
        &[
            ("content-type", "application/json"),
            ("x-hub-signature-256", "sha256=00"),
        ],
        "not json".into(),
    )
    .await;
    assert_error(s, &b, 403, "bad_signature");
    // … and a status about clinic-a's message signed with clinic-b's secret is
    // ignored like a status about nothing (it was a 403).
    let foreign = whatsapp_signed(
        &ob,
        "/v1/webhooks/whatsapp",
        status_hook("wamid.A", id, "read"),
        APP_SECRET_B,
    )
    .await;
    let missing = whatsapp_signed(
        &ob,
        "/v1/webhooks/whatsapp",
        status_hook("wamid.Z", stranger, "read"),
        APP_SECRET_B,
    )
    .await;
    assert_eq!(foreign, (StatusCode::OK, ignored_one()));
    assert_eq!(missing, foreign);
    assert_eq!(ob.message(id).await.status, MessageStatus::Sent);

    // The owner's own signature still applies.
    let (s, b) = twilio_at(&ob, hook, id, &known, AUTH_TOKEN).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["applied"], 1);
    assert_eq!(ob.message(id).await.status, MessageStatus::Delivered);
}

#[tokio::test]
async fn each_tenant_has_its_own_callback_urls() {
    let (_fake, ob, id) = two_clinics().await;
    let delivered = [("MessageSid", "SM2000"), ("MessageStatus", "delivered")];

    // clinic-b's URL checks clinic-b's token only: clinic-a's token is a 403 there …
    let (s, b) = twilio_at(
        &ob,
        "/v1/webhooks/twilio/clinic-b",
        id,
        &delivered,
        AUTH_TOKEN,
    )
    .await;
    assert_error(s, &b, 403, "bad_signature");
    // … and clinic-b's own signature cannot reach clinic-a's message through it.
    let at_b = twilio_at(&ob, "/v1/webhooks/twilio/clinic-b", id, &delivered, TOKEN_B).await;
    assert_eq!(at_b, (StatusCode::OK, ignored_one()));
    assert_eq!(ob.message(id).await.status, MessageStatus::Sent);
    // A tenant id that cannot exist is refused like a bad signature.
    let (s, b) = twilio_at(
        &ob,
        "/v1/webhooks/twilio/no!such",
        id,
        &delivered,
        AUTH_TOKEN,
    )
    .await;
    assert_error(s, &b, 403, "bad_signature");
    // clinic-a's URL with clinic-a's token: applied.
    let (s, b) = twilio_at(
        &ob,
        "/v1/webhooks/twilio/clinic-a",
        id,
        &delivered,
        AUTH_TOKEN,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["applied"], 1);
    assert_eq!(ob.message(id).await.status, MessageStatus::Delivered);

    // Unifonic per tenant: another tenant's token is a 403.
    let form_ct = [("content-type", "application/x-www-form-urlencoded")];
    let report = "MessageID=1&DLR=Delivered".to_string();
    let (s, b) = post_raw(
        &ob,
        &format!("/v1/webhooks/unifonic/clinic-b?token={UNI_A}"),
        &form_ct,
        report.clone(),
    )
    .await;
    assert_error(s, &b, 403, "bad_signature");
    let ok = post_raw(
        &ob,
        &format!("/v1/webhooks/unifonic/clinic-a?token={UNI_A}"),
        &form_ct,
        report,
    )
    .await;
    assert_eq!(ok, (StatusCode::OK, ignored_one()));

    // WhatsApp per tenant: the app secret and the handshake's verify token.
    let (s, b) = whatsapp_signed(
        &ob,
        "/v1/webhooks/whatsapp/clinic-a",
        status_hook("wamid.Z", MessageId::new_random(), "read"),
        APP_SECRET_B,
    )
    .await;
    assert_error(s, &b, 403, "bad_signature");
    let handshake = |tenant: &str, token: &str| {
        ob.app.http.get(ob.app.url(&format!(
            "/v1/webhooks/whatsapp/{tenant}?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=77"
        )))
    };
    assert_eq!(
        handshake("clinic-b", "verify-a")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    let res = handshake("clinic-b", "verify-b").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "77");
}

/// `n` WhatsApp statuses about unknown messages, compact (about 100 bytes each).
fn many_statuses(n: usize) -> String {
    let statuses: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("wamid.{i:06}"), "status": "delivered", "timestamp": "1764237600", "recipient_id": "966501234567"}))
        .collect();
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages",
        "value": {"messaging_product": "whatsapp", "statuses": statuses}}]}]})
    .to_string()
}

#[tokio::test]
async fn oversized_webhooks_get_the_contracts_json_413_and_statuses_are_capped() {
    let (_fake, ob, _id) = two_clinics().await;
    // Over body_limit_bytes (256 KiB): the contract's JSON error, not axum's text.
    let huge = "a=".to_string() + &"x".repeat(300 * 1024);
    for hook in [
        "/v1/webhooks/twilio",
        "/v1/webhooks/twilio/clinic-a",
        "/v1/webhooks/whatsapp",
        "/v1/webhooks/unifonic?token=t",
    ] {
        let (s, b) = post_raw(
            &ob,
            hook,
            &[("content-type", "application/x-www-form-urlencoded")],
            huge.clone(),
        )
        .await;
        assert_error(s, &b, 413, "payload_too_large");
    }
    // 1,500 statuses fit in the body limit (the report's 245 KiB case): unsigned,
    // refused before any of them is looked up; signed, refused over the cap
    // (`webhook_max_statuses`, 1,000) before any lookup either.
    let body = many_statuses(1_500);
    assert!(body.len() < 256 * 1024, "{}", body.len());
    let (s, b) = whatsapp_signed(&ob, "/v1/webhooks/whatsapp", body.clone(), "guess").await;
    assert_error(s, &b, 403, "bad_signature");
    let (s, b) = whatsapp_signed(&ob, "/v1/webhooks/whatsapp", body, APP_SECRET_B).await;
    assert_error(s, &b, 413, "payload_too_large");
    // At the cap: read, each unknown status ignored.
    let (s, b) = whatsapp_signed(
        &ob,
        "/v1/webhooks/whatsapp",
        many_statuses(1_000),
        APP_SECRET_B,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["ignored"], 1_000);
}

/// One generic route per URL shape: an unknown kind is a 404 like any unknown
/// URL, a GET is only Meta's handshake (405 for other kinds), a malformed
/// callback is a 400 only once it is proven, and the OpenAPI document
/// describes the generic paths.
#[tokio::test]
async fn webhook_routes_dispatch_on_the_kind() {
    let (_fake, ob, _id) = two_clinics().await;
    let form_ct = [("content-type", "application/x-www-form-urlencoded")];
    for at in ["/v1/webhooks/nope", "/v1/webhooks/nope/clinic-a"] {
        let (s, b) = post_raw(&ob, at, &form_ct, "a=1".into()).await;
        assert_error(s, &b, 404, "not_found");
    }
    let get = |at: &str| ob.app.http.get(ob.app.url(at)).send();
    let (s, b) = split(get("/v1/webhooks/twilio").await.unwrap()).await;
    assert_error(s, &b, 405, "method_not_allowed");
    let (s, b) = split(get("/v1/webhooks/nope/clinic-a").await.unwrap()).await;
    assert_error(s, &b, 404, "not_found");
    // A callback without a MessageSid: unproven, a 403; proven, a 400.
    let no_sid = [("MessageStatus", "delivered")];
    let stranger = MessageId::new_random();
    let (s, b) = twilio_at(&ob, "/v1/webhooks/twilio", stranger, &no_sid, "guess").await;
    assert_error(s, &b, 403, "bad_signature");
    let (s, b) = twilio_at(&ob, "/v1/webhooks/twilio", stranger, &no_sid, AUTH_TOKEN).await;
    assert_error(s, &b, 400, "bad_request");

    let (s, api) = split(
        ob.app
            .http
            .get(ob.app.url("/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let paths = &api["paths"];
    for p in ["/v1/webhooks/{kind}", "/v1/webhooks/{kind}/{tenant}"] {
        assert!(paths[p]["post"].is_object(), "{p}: {}", paths[p]);
        assert!(paths[p]["get"].is_object(), "{p}: {}", paths[p]);
    }
    assert!(paths["/v1/webhooks/twilio"].is_null());
}
