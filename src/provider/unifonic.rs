//! Unifonic SMS (the REST API used across the Gulf).
//!
//! `POST {base}/rest/SMS/messages`, form-encoded `AppSid`, `SenderID`, `Recipient`
//! (international digits without `+` or `00`), `Body`, `responseType=JSON`,
//! `CorrelationID` (our message id). The AppSid in the form is the credential.
//! Answers: `{"success": true, "errorCode": "ER-00", "data": {"MessageID": 42000348806924,
//! "Status": "Sent", "Cost": 0.0355, "CurrencyCode": "SAR", …}}` or
//! `{"success": false, "errorCode": "ER-04", "message": "Dest num is too short", "data": {}}`.
//!
//! A timeout after sending is `Transient` (retried, a duplicate possible): Unifonic's
//! delivery reports carry only its own MessageID, so nothing could settle an
//! unknown outcome. Unifonic is typically the second provider of an SMS chain.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::config::{default_timeout_ms, Secret, WebhookSources};
use super::limit::{Limiter, RateLimit};
use super::signature::same_secret;
use super::transport;
use super::{
    CallbackError, CallbackRequest, KindConfig, OutboundMessage, Provider, ProviderAccepted,
    ProviderError, StatusUpdate, Webhook,
};
use crate::domain::contact::Address;
use crate::domain::message::{MessageStatus, Money};
use crate::domain::template::Channel;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnifonicConfig {
    pub app_sid: Secret,
    /// The registered sender name (e.g. `CLINIC`).
    pub sender_id: String,
    #[serde(default = "default_base_url")]
    pub base_url: String,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub rate_limit: RateLimit,
}

fn default_base_url() -> String {
    "https://el.cloud.unifonic.com".to_owned()
}

pub struct Unifonic {
    name: String,
    config: UnifonicConfig,
    http: reqwest::Client,
    limiter: Limiter,
}

impl Unifonic {
    pub fn new(name: &str, config: UnifonicConfig) -> Result<Self, ProviderError> {
        if config.app_sid.expose().is_empty() || config.sender_id.is_empty() {
            return Err(ProviderError::misconfigured(
                "config",
                format!("providers.{name}: app_sid and sender_id are required"),
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            http: transport::client(Duration::from_millis(config.timeout_ms))?,
            limiter: Limiter::new(config.rate_limit),
            config,
        })
    }
}

#[async_trait::async_trait]
impl Provider for Unifonic {
    fn name(&self) -> &str {
        &self.name
    }

    fn supports(&self, channel: Channel) -> bool {
        channel == Channel::Sms
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<ProviderAccepted, ProviderError> {
        let (Channel::Sms, Address::Phone(to)) = (msg.channel, &msg.to) else {
            return Err(ProviderError::misconfigured(
                "channel",
                "Unifonic sends SMS to phone numbers only",
            ));
        };
        let form = [
            ("AppSid", self.config.app_sid.expose().to_owned()),
            ("SenderID", self.config.sender_id.clone()),
            ("Recipient", to.digits().to_owned()),
            ("Body", msg.body.clone()),
            ("responseType", "JSON".to_owned()),
            ("CorrelationID", msg.id.to_string()),
        ];
        self.limiter.acquire().await;
        let request = self
            .http
            .post(transport::join(&self.config.base_url, "/rest/SMS/messages"))
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form);
        transport::send_and_classify(request, false, classify).await
    }
}

impl KindConfig for UnifonicConfig {
    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    fn build(&self, name: &str) -> Result<Arc<dyn Provider>, ProviderError> {
        Ok(Arc::new(Unifonic::new(name, self.clone())?))
    }
}

/// `POST /v1/webhooks/unifonic?token=…`: Unifonic signs nothing, so the URL
/// carries the tenant's `[…webhooks] unifonic_token`.
pub struct UnifonicWebhook;

impl Webhook for UnifonicWebhook {
    fn kind(&self) -> &'static str {
        "unifonic"
    }

    fn secrets<'a>(&self, section: WebhookSources<'a>) -> Vec<&'a str> {
        section
            .webhooks
            .unifonic_token
            .iter()
            .map(|t| t.expose())
            .collect()
    }

    fn verify(&self, request: &CallbackRequest<'_>, secret: &str) -> Result<bool, CallbackError> {
        Ok(request
            .query_param("token")
            .is_some_and(|token| same_secret(secret, &token)))
    }

    fn parse(&self, request: &CallbackRequest<'_>) -> Result<Vec<StatusUpdate>, CallbackError> {
        parse_delivery_report(request.body).map(|u| vec![u])
    }
}

#[derive(Deserialize)]
struct Answer {
    success: Option<bool>,
    #[serde(rename = "errorCode")]
    error_code: Option<String>,
    message: Option<String>,
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "MessageID")]
    message_id: Option<serde_json::Value>,
    #[serde(rename = "Cost")]
    cost: Option<serde_json::Value>,
    #[serde(rename = "CurrencyCode")]
    currency_code: Option<String>,
}

/// Unifonic error codes whose meaning we rely on: the two that Unifonic's own
/// examples show. Any other `errorCode` is `Transient`: Unifonic does not publish a
/// complete list, and retrying then failing an unknown code is recoverable (manual
/// retry) where bouncing it is not. Add codes here as they are confirmed.
pub const ERROR_CODES: &[(&str, &str, Class)] = &[
    ("ER-01", "invalid AppSid", Class::Misconfigured),
    (
        "ER-04",
        "invalid recipient (destination number malformed or too short)",
        Class::Permanent,
    ),
];

/// How an error code is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Permanent,
    Misconfigured,
}

/// Classifies a send response: HTTP 429 and 5xx are `Transient`; 401/403
/// `Misconfigured`; `success: true` with a `MessageID` is accepted; otherwise the
/// `errorCode` is looked up in [`ERROR_CODES`] (unknown codes: `Transient`).
pub fn classify(
    status: u16,
    body: &str,
    retry_after: Option<Duration>,
) -> Result<ProviderAccepted, ProviderError> {
    if status == 429 || status >= 500 {
        return Err(ProviderError::Transient {
            code: format!("http_{status}"),
            message: transport::truncate(body),
            retry_after,
        });
    }
    if status == 401 || status == 403 {
        return Err(ProviderError::misconfigured(
            &format!("http_{status}"),
            transport::truncate(body),
        ));
    }
    let answer: Answer = serde_json::from_str(body).map_err(|e| ProviderError::Unknown {
        code: "bad_response".into(),
        message: format!(
            "HTTP {status} with an unreadable body ({e}): {}",
            transport::truncate(body)
        ),
    })?;
    if answer.success == Some(true) {
        let data = answer.data.ok_or_else(|| ProviderError::Unknown {
            code: "bad_response".into(),
            message: "success without data".into(),
        })?;
        let id = match data.message_id {
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(serde_json::Value::String(s)) if !s.is_empty() => s,
            _ => {
                return Err(ProviderError::Unknown {
                    code: "bad_response".into(),
                    message: "success without a MessageID".into(),
                })
            }
        };
        let cost = match data.cost {
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            Some(serde_json::Value::String(s)) => Some(s),
            _ => None,
        };
        let price = match (cost, data.currency_code) {
            (Some(c), Some(cur)) if !cur.is_empty() => Money::parse_price(&c, &cur).ok(),
            _ => None,
        };
        return Ok(ProviderAccepted {
            provider_message_id: id,
            price,
            raw: transport::truncate(body),
        });
    }
    let code = answer
        .error_code
        .unwrap_or_else(|| format!("http_{status}"));
    let message = answer.message.unwrap_or_default();
    match ERROR_CODES.iter().find(|(c, _, _)| *c == code) {
        Some((_, _, Class::Permanent)) => Err(ProviderError::Rejected { code, message }),
        Some((_, _, Class::Misconfigured)) => Err(ProviderError::Misconfigured { code, message }),
        None => Err(ProviderError::Transient {
            code,
            message,
            retry_after,
        }),
    }
}

/// Parses a delivery report (DLR webhook): form-encoded or JSON with `MessageID`,
/// `DLR` (`Delivered` | `Undeliverable`), `Recipient`, `TimeCreated`, `SCTS`,
/// `DLRTimestamp`, `Comments`. Reports carrying a send `Status` instead of `DLR`
/// (`Sent`, `Queued`, `Rejected`, `Failed`) are accepted too.
pub fn parse_delivery_report(body: &[u8]) -> Result<StatusUpdate, CallbackError> {
    let fields: Vec<(String, String)> = if body.trim_ascii_start().starts_with(b"{") {
        let obj: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
            .map_err(|e| CallbackError::Malformed(format!("not a JSON object: {e}")))?;
        obj.into_iter()
            .filter_map(|(k, v)| match v {
                serde_json::Value::String(s) => Some((k, s)),
                serde_json::Value::Number(n) => Some((k, n.to_string())),
                _ => None,
            })
            .collect()
    } else {
        serde_urlencoded::from_bytes(body)
            .map_err(|e| CallbackError::Malformed(format!("not a form: {e}")))?
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let id = field("MessageID")
        .ok_or_else(|| CallbackError::Malformed("MessageID is missing".into()))?;
    let (status, error_code) = match (field("DLR"), field("Status")) {
        (Some(dlr), _) => match dlr.to_ascii_lowercase().as_str() {
            "delivered" => (MessageStatus::Delivered, None),
            "undeliverable" => (MessageStatus::Failed, Some("undeliverable".to_owned())),
            other => return Err(CallbackError::Ignored(format!("DLR {other}"))),
        },
        (None, Some(s)) => match s.to_ascii_lowercase().as_str() {
            "sent" | "queued" => (MessageStatus::Sent, None),
            "rejected" => (MessageStatus::Bounced, Some("rejected".to_owned())),
            "failed" => (MessageStatus::Failed, Some("failed".to_owned())),
            other => return Err(CallbackError::Ignored(format!("Status {other}"))),
        },
        (None, None) => return Err(CallbackError::Malformed("neither DLR nor Status".into())),
    };
    Ok(StatusUpdate {
        provider_message_id: id.to_owned(),
        message_id: None,
        status,
        error_code,
        error_message: field("Comments").map(str::to_owned),
        price: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_reads_cost() {
        let body = r#"{"success": true, "message": "", "errorCode": "ER-00", "data": {"MessageID": 42000348806924, "CorrelationID": "c", "Status": "Sent", "NumberOfUnits": 1, "Cost": 0.0355, "Balance": 10, "Recipient": "966501234567", "TimeCreated": "2022-09-06 14:06:25.979", "CurrencyCode": "SAR"}}"#;
        let ok = classify(200, body, None).unwrap();
        assert_eq!(ok.provider_message_id, "42000348806924");
        assert_eq!(
            ok.price,
            Some(Money {
                micros: 35_500,
                currency: "SAR".into()
            })
        );
        let no_currency =
            r#"{"success": true, "data": {"MessageID": "4200", "Cost": 0, "CurrencyCode": ""}}"#;
        assert_eq!(classify(200, no_currency, None).unwrap().price, None);
    }

    #[test]
    fn classifies_error_codes() {
        let err = |code: &str| {
            format!(r#"{{"success": false, "message": "m", "errorCode": "{code}", "data": {{}}}}"#)
        };
        assert_eq!(
            classify(200, &err("ER-04"), None),
            Err(ProviderError::Rejected {
                code: "ER-04".into(),
                message: "m".into()
            })
        );
        assert!(matches!(
            classify(200, &err("ER-01"), None),
            Err(ProviderError::Misconfigured { .. })
        ));
        assert!(matches!(
            classify(400, &err("ER-01"), None),
            Err(ProviderError::Misconfigured { .. })
        ));
        assert!(
            matches!(classify(200, &err("ER-99"), None), Err(ProviderError::Transient { ref code, .. }) if code == "ER-99")
        );
        assert!(
            matches!(classify(503, "down", None), Err(ProviderError::Transient { ref code, .. }) if code == "http_503")
        );
        assert!(matches!(
            classify(401, "", None),
            Err(ProviderError::Misconfigured { .. })
        ));
        assert!(matches!(
            classify(200, "<html>", None),
            Err(ProviderError::Unknown { .. })
        ));
    }

    #[test]
    fn the_webhook_is_proven_by_the_urls_token_only() {
        let request = |query| CallbackRequest {
            url: "http://h/v1/webhooks/unifonic",
            query,
            headers: &[],
            body: b"MessageID=1&DLR=Delivered",
        };
        assert_eq!(
            UnifonicWebhook.verify(&request(Some("token=s3cret")), "s3cret"),
            Ok(true)
        );
        assert_eq!(
            UnifonicWebhook.verify(&request(Some("token=guess")), "s3cret"),
            Ok(false)
        );
        assert_eq!(UnifonicWebhook.verify(&request(None), "s3cret"), Ok(false));
        let updates = UnifonicWebhook.parse(&request(None)).unwrap();
        assert_eq!(updates[0].provider_message_id, "1");
    }

    #[test]
    fn parses_delivery_reports_as_form_or_json() {
        let form = b"MessageID=42000348806924&DLR=Delivered&Recipient=966501234567&TimeCreated=2026-01-01+10%3A00%3A00&SCTS=2026-01-01+10%3A00%3A05&DLRTimestamp=2026-01-01+10%3A00%3A06&Comments=";
        let u = parse_delivery_report(form).unwrap();
        assert_eq!(
            (u.provider_message_id.as_str(), u.status, u.error_code),
            ("42000348806924", MessageStatus::Delivered, None)
        );
        let json = br#"{"MessageID": 42000348806925, "DLR": "Undeliverable", "Recipient": "966501234567", "Comments": "Absent subscriber"}"#;
        let u = parse_delivery_report(json).unwrap();
        assert_eq!(u.provider_message_id, "42000348806925");
        assert_eq!(u.status, MessageStatus::Failed);
        assert_eq!(u.error_code.as_deref(), Some("undeliverable"));
        assert_eq!(u.error_message.as_deref(), Some("Absent subscriber"));
        assert_eq!(
            parse_delivery_report(b"MessageID=1&Status=Rejected")
                .unwrap()
                .status,
            MessageStatus::Bounced
        );
        assert_eq!(
            parse_delivery_report(b"DLR=Delivered"),
            Err(CallbackError::Malformed("MessageID is missing".into()))
        );
        assert_eq!(
            parse_delivery_report(b"MessageID=1&DLR=Pending"),
            Err(CallbackError::Ignored("DLR pending".into()))
        );
    }
}
