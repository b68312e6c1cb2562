//! WhatsApp Cloud API (Meta Graph API).
//!
//! `POST {base}/{version}/{phone_number_id}/messages`, `Authorization: Bearer
//! <token>`, JSON. Business-initiated messages are approved templates:
//! `{"messaging_product": "whatsapp", "recipient_type": "individual", "to": "9665…",
//! "type": "template", "template": {"name": …, "language": {"code": "ar"},
//! "components": [{"type": "body", "parameters": [{"type": "text", "text": …}]}]},
//! "biz_opaque_callback_data": "<our message id>"}`. A message without a template
//! goes as `"type": "text"` (only delivered inside the 24-hour service window).
//! Success: `{"messages": [{"id": "wamid.…"}]}`. Errors:
//! `{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`.
//!
//! Status webhooks echo `biz_opaque_callback_data`, so a timeout after sending is
//! `Unknown` (settled by the webhook), as for Twilio.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::config::{default_timeout_ms, ProviderConfig, Secret, WebhookSources};
use super::limit::{Limiter, RateLimit};
use super::signature::verify_meta;
use super::transport;
use super::{
    receipt, CallbackError, CallbackRequest, KindConfig, OutboundMessage, Provider,
    ProviderAccepted, ProviderError, StatusUpdate, Webhook,
};
use crate::domain::contact::Address;
use crate::domain::message::{MessageId, MessageStatus};
use crate::domain::template::Channel;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsappCloudConfig {
    /// A system-user access token with `whatsapp_business_messaging`.
    pub access_token: Secret,
    /// The sending number's id (not the number itself).
    pub phone_number_id: String,
    /// The app secret, for `X-Hub-Signature-256` on status webhooks.
    #[serde(default)]
    pub app_secret: Option<Secret>,
    #[serde(default = "default_api_version")]
    pub api_version: String,
    #[serde(default = "default_base_url")]
    pub base_url: String,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub rate_limit: RateLimit,
}

fn default_api_version() -> String {
    "v21.0".to_owned()
}

fn default_base_url() -> String {
    "https://graph.facebook.com".to_owned()
}

pub struct WhatsappCloud {
    name: String,
    config: WhatsappCloudConfig,
    http: reqwest::Client,
    limiter: Limiter,
}

impl WhatsappCloud {
    pub fn new(name: &str, config: WhatsappCloudConfig) -> Result<Self, ProviderError> {
        if config.phone_number_id.is_empty()
            || !config.phone_number_id.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ProviderError::misconfigured(
                "config",
                format!("providers.{name}.phone_number_id: must be the numeric id of the sending number"),
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            http: transport::client(Duration::from_millis(config.timeout_ms))?,
            limiter: Limiter::new(config.rate_limit),
            config,
        })
    }

    /// The JSON body for one message.
    pub fn payload(msg: &OutboundMessage) -> Result<serde_json::Value, ProviderError> {
        let (Channel::Whatsapp, Address::Phone(to)) = (msg.channel, &msg.to) else {
            return Err(ProviderError::misconfigured(
                "channel",
                "WhatsApp sends to phone numbers only",
            ));
        };
        let mut body = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to.digits(),
            "biz_opaque_callback_data": msg.id.to_string(),
        });
        match &msg.whatsapp_template {
            Some(t) => {
                let mut template = json!({
                    "name": t.name,
                    "language": { "code": msg.language.code() },
                });
                if !t.parameters.is_empty() {
                    let parameters: Vec<_> = t
                        .parameters
                        .iter()
                        .map(|p| json!({ "type": "text", "text": p }))
                        .collect();
                    template["components"] = json!([{ "type": "body", "parameters": parameters }]);
                }
                body["type"] = json!("template");
                body["template"] = template;
            }
            None => {
                body["type"] = json!("text");
                body["text"] = json!({ "preview_url": false, "body": msg.body });
            }
        }
        Ok(body)
    }
}

#[async_trait::async_trait]
impl Provider for WhatsappCloud {
    fn name(&self) -> &str {
        &self.name
    }

    fn supports(&self, channel: Channel) -> bool {
        channel == Channel::Whatsapp
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<ProviderAccepted, ProviderError> {
        let payload = Self::payload(msg)?;
        self.limiter.acquire().await;
        let url = transport::join(
            &self.config.base_url,
            &format!(
                "/{}/{}/messages",
                self.config.api_version, self.config.phone_number_id
            ),
        );
        let request = self
            .http
            .post(url)
            .bearer_auth(self.config.access_token.expose())
            .json(&payload);
        transport::send_and_classify(request, true, classify).await
    }
}

impl KindConfig for WhatsappCloudConfig {
    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    fn build(&self, name: &str) -> Result<Arc<dyn Provider>, ProviderError> {
        Ok(Arc::new(WhatsappCloud::new(name, self.clone())?))
    }
}

/// `POST /v1/webhooks/whatsapp`: `X-Hub-Signature-256` over the raw body, proven
/// by any of the tenant's WhatsApp Cloud app secrets. (Meta's GET handshake is
/// not a status callback: `service::outbound::callbacks` answers it.)
pub struct WhatsappWebhook;

impl Webhook for WhatsappWebhook {
    fn kind(&self) -> &'static str {
        "whatsapp"
    }

    fn secrets<'a>(&self, section: WebhookSources<'a>) -> Vec<&'a str> {
        section
            .each(|p| match p {
                ProviderConfig::WhatsappCloud(c) => c.app_secret.as_ref().map(|s| s.expose()),
                _ => None,
            })
            .collect()
    }

    /// The signature is over the raw bytes: checked before the body is parsed.
    fn verify(&self, request: &CallbackRequest<'_>, secret: &str) -> Result<bool, CallbackError> {
        Ok(request
            .header("x-hub-signature-256")
            .is_some_and(|signature| verify_meta(secret, request.body, signature)))
    }

    fn parse(&self, request: &CallbackRequest<'_>) -> Result<Vec<StatusUpdate>, CallbackError> {
        parse_status_webhook(request.body)
    }

    /// One body may carry several statuses: the receipt names which one.
    fn receipt(&self, request: &CallbackRequest<'_>, index: usize) -> String {
        receipt(self.kind(), &[index.to_string().as_bytes(), request.body])
    }
}

#[derive(Deserialize)]
struct Sent {
    messages: Option<Vec<SentMessage>>,
}

#[derive(Deserialize)]
struct SentMessage {
    id: String,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: GraphError,
}

#[derive(Deserialize)]
struct GraphError {
    message: Option<String>,
    code: Option<i64>,
    error_subcode: Option<i64>,
    error_data: Option<ErrorData>,
}

#[derive(Deserialize)]
struct ErrorData {
    details: Option<String>,
}

/// Graph API / WhatsApp error codes that mean "try later".
pub const TRANSIENT_CODES: &[i64] = &[
    1, 2, 4, 80007, 130429, 131000, 131016, 131048, 131056, 133004,
];
/// Codes that mean our token, app or number is wrong (the chain fails over).
pub const MISCONFIGURED_CODES: &[i64] = &[
    0, 3, 10, 190, 200, 131005, 131031, 132001, 132015, 132016, 133010,
];
/// Codes that mean this message to this person cannot be sent.
pub const PERMANENT_CODES: &[i64] = &[
    131008, 131009, 131021, 131026, 131030, 131047, 131049, 131050, 131051, 132000, 132012,
];

/// Classifies a send response: a 2xx with `messages[0].id` is accepted; errors by
/// `error.code` (tables above); an unlisted code is `Transient` on 429/5xx and
/// `Rejected` on other 4xx.
pub fn classify(
    status: u16,
    body: &str,
    retry_after: Option<Duration>,
) -> Result<ProviderAccepted, ProviderError> {
    if (200..300).contains(&status) {
        let sent: Sent = serde_json::from_str(body).map_err(|e| ProviderError::Unknown {
            code: "bad_response".into(),
            message: format!("HTTP {status} with an unreadable body: {e}"),
        })?;
        let id = sent
            .messages
            .and_then(|m| m.into_iter().next())
            .map(|m| m.id)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| ProviderError::Unknown {
                code: "bad_response".into(),
                message: format!("HTTP {status} without messages[0].id"),
            })?;
        return Ok(ProviderAccepted {
            provider_message_id: id,
            price: None,
            raw: transport::truncate(body),
        });
    }
    let parsed: Option<GraphError> = serde_json::from_str::<ErrorEnvelope>(body)
        .ok()
        .map(|e| e.error);
    let code = parsed.as_ref().and_then(|e| e.code);
    let message = match &parsed {
        Some(e) => {
            let mut m = e.message.clone().unwrap_or_default();
            if let Some(details) = e.error_data.as_ref().and_then(|d| d.details.as_ref()) {
                m = format!("{m} ({details})");
            }
            if let Some(sub) = e.error_subcode {
                m = format!("{m} [subcode {sub}]");
            }
            m
        }
        None => transport::truncate(body),
    };
    let code_str = code.map_or_else(|| format!("http_{status}"), |c| c.to_string());
    let is = |table: &[i64]| code.is_some_and(|c| table.contains(&c));
    if is(TRANSIENT_CODES) {
        return Err(ProviderError::Transient {
            code: code_str,
            message,
            retry_after,
        });
    }
    if is(MISCONFIGURED_CODES) || status == 401 || status == 403 {
        return Err(ProviderError::Misconfigured {
            code: code_str,
            message,
        });
    }
    if is(PERMANENT_CODES) {
        return Err(ProviderError::Rejected {
            code: code_str,
            message,
        });
    }
    if status == 429 || status >= 500 {
        return Err(ProviderError::Transient {
            code: code_str,
            message,
            retry_after,
        });
    }
    Err(ProviderError::Rejected {
        code: code_str,
        message,
    })
}

#[derive(Deserialize)]
struct WebhookBody {
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Change {
    value: Option<ChangeValue>,
}

#[derive(Deserialize)]
struct ChangeValue {
    #[serde(default)]
    statuses: Vec<WaStatus>,
}

#[derive(Deserialize)]
struct WaStatus {
    id: String,
    status: String,
    biz_opaque_callback_data: Option<String>,
    #[serde(default)]
    errors: Vec<WaError>,
}

#[derive(Deserialize)]
struct WaError {
    code: Option<i64>,
    title: Option<String>,
    message: Option<String>,
}

/// Parses a status webhook body: every `entry[].changes[].value.statuses[]`, in
/// order. `sent` → sent, `delivered` → delivered, `read` → read, `failed` → failed
/// (with `errors[0].code`); other statuses (`deleted`, `warning`) are skipped.
/// A webhook with no statuses (an inbound message) gives an empty list. WhatsApp
/// reports pricing categories, not amounts, so `price` is `None`.
pub fn parse_status_webhook(body: &[u8]) -> Result<Vec<StatusUpdate>, CallbackError> {
    let hook: WebhookBody = serde_json::from_slice(body)
        .map_err(|e| CallbackError::Malformed(format!("not a WhatsApp webhook: {e}")))?;
    let mut out = Vec::new();
    for status in hook
        .entry
        .into_iter()
        .flat_map(|e| e.changes)
        .filter_map(|c| c.value)
        .flat_map(|v| v.statuses)
    {
        let mapped = match status.status.as_str() {
            "sent" => MessageStatus::Sent,
            "delivered" => MessageStatus::Delivered,
            "read" => MessageStatus::Read,
            "failed" => MessageStatus::Failed,
            _ => continue,
        };
        let first_error = status.errors.into_iter().next();
        out.push(StatusUpdate {
            provider_message_id: status.id,
            message_id: status
                .biz_opaque_callback_data
                .as_deref()
                .and_then(|d| MessageId::parse(d).ok()),
            status: mapped,
            error_code: first_error
                .as_ref()
                .and_then(|e| e.code)
                .map(|c| c.to_string()),
            error_message: first_error.and_then(|e| e.message.or(e.title)),
            price: None,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::contact::PhoneNumber;
    use crate::domain::template::Language;
    use crate::provider::WhatsappTemplate;

    fn msg(template: Option<WhatsappTemplate>) -> OutboundMessage {
        OutboundMessage {
            id: MessageId::parse("7f1c2a4e-8d7b-4c11-9a3e-2b5f6c7d8e9f").unwrap(),
            channel: Channel::Whatsapp,
            to: Address::Phone(PhoneNumber::parse("+966501234567").unwrap()),
            language: Language::Ar,
            subject: None,
            body: "مرحبا".into(),
            whatsapp_template: template,
        }
    }

    #[test]
    fn template_payload_has_the_documented_shape() {
        let p = WhatsappCloud::payload(&msg(Some(WhatsappTemplate {
            name: "appointment_reminder_24h".into(),
            parameters: vec!["أحمد".into(), "10:00".into()],
        })))
        .unwrap();
        assert_eq!(
            p,
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "966501234567",
                "biz_opaque_callback_data": "7f1c2a4e-8d7b-4c11-9a3e-2b5f6c7d8e9f",
                "type": "template",
                "template": {
                    "name": "appointment_reminder_24h",
                    "language": {"code": "ar"},
                    "components": [{"type": "body", "parameters": [
                        {"type": "text", "text": "أحمد"}, {"type": "text", "text": "10:00"}
                    ]}]
                }
            })
        );
        let text = WhatsappCloud::payload(&msg(None)).unwrap();
        assert_eq!(text["type"], "text");
        assert_eq!(text["text"]["body"], "مرحبا");
    }

    #[test]
    fn classifies_graph_errors() {
        let err = |code: i64, sub: Option<i64>| {
            format!(
                r#"{{"error": {{"message": "m", "type": "OAuthException", "code": {code}, "error_subcode": {}, "error_data": {{"messaging_product": "whatsapp", "details": "d"}}, "fbtrace_id": "AbC"}}}}"#,
                sub.map_or("null".to_string(), |s| s.to_string())
            )
        };
        assert_eq!(
            classify(400, &err(131026, None), None),
            Err(ProviderError::Rejected {
                code: "131026".into(),
                message: "m (d)".into()
            })
        );
        assert!(matches!(
            classify(400, &err(131047, None), None),
            Err(ProviderError::Rejected { .. })
        ));
        assert!(matches!(
            classify(400, &err(130429, None), Some(Duration::from_secs(3))),
            Err(ProviderError::Transient {
                retry_after: Some(_),
                ..
            })
        ));
        assert!(matches!(
            classify(500, &err(131000, None), None),
            Err(ProviderError::Transient { .. })
        ));
        assert_eq!(
            classify(401, &err(190, Some(463)), None),
            Err(ProviderError::Misconfigured {
                code: "190".into(),
                message: "m (d) [subcode 463]".into()
            })
        );
        assert!(matches!(
            classify(400, &err(99999, None), None),
            Err(ProviderError::Rejected { .. })
        ));
        assert!(
            matches!(classify(502, "bad gateway", None), Err(ProviderError::Transient { ref code, .. }) if code == "http_502")
        );
        let ok = classify(200, r#"{"messaging_product": "whatsapp", "contacts": [{"input": "966501234567", "wa_id": "966501234567"}], "messages": [{"id": "wamid.HBgL", "message_status": "accepted"}]}"#, None).unwrap();
        assert_eq!(ok.provider_message_id, "wamid.HBgL");
    }

    #[test]
    fn parses_status_webhooks() {
        let body = br#"{
          "object": "whatsapp_business_account",
          "entry": [{
            "id": "102290129340398",
            "changes": [{
              "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                "statuses": [
                  {"id": "wamid.A", "status": "delivered", "timestamp": "1750263773", "recipient_id": "966501234567",
                   "biz_opaque_callback_data": "7f1c2a4e-8d7b-4c11-9a3e-2b5f6c7d8e9f",
                   "conversation": {"id": "c1", "origin": {"type": "utility"}},
                   "pricing": {"billable": true, "pricing_model": "PMP", "category": "utility", "type": "regular"}},
                  {"id": "wamid.B", "status": "failed", "timestamp": "1750263774", "recipient_id": "966501234568",
                   "errors": [{"code": 131026, "title": "Message undeliverable", "message": "Message undeliverable",
                               "error_data": {"details": "Message Undeliverable."}}]},
                  {"id": "wamid.C", "status": "deleted", "timestamp": "1750263775", "recipient_id": "966501234569"}
                ]
              },
              "field": "messages"
            }]
          }]
        }"#;
        let updates = parse_status_webhook(body).unwrap();
        assert_eq!(
            updates,
            vec![
                StatusUpdate {
                    provider_message_id: "wamid.A".into(),
                    message_id: Some(
                        MessageId::parse("7f1c2a4e-8d7b-4c11-9a3e-2b5f6c7d8e9f").unwrap()
                    ),
                    status: MessageStatus::Delivered,
                    error_code: None,
                    error_message: None,
                    price: None,
                },
                StatusUpdate {
                    provider_message_id: "wamid.B".into(),
                    message_id: None,
                    status: MessageStatus::Failed,
                    error_code: Some("131026".into()),
                    error_message: Some("Message undeliverable".into()),
                    price: None,
                },
            ]
        );
        let inbound = br#"{"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"value": {"messaging_product": "whatsapp", "messages": [{"from": "966501234567", "id": "wamid.in", "type": "text", "text": {"body": "hi"}}]}, "field": "messages"}]}]}"#;
        assert_eq!(parse_status_webhook(inbound).unwrap(), vec![]);
        assert!(matches!(
            parse_status_webhook(b"not json"),
            Err(CallbackError::Malformed(_))
        ));
    }
}
