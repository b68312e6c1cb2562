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
use crate::support::split;

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
