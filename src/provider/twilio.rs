//! Twilio Messages API (SMS and WhatsApp).
//!
//! `POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json`, HTTP Basic auth
//! (AccountSid:AuthToken), form-encoded `To`, `From` or `MessagingServiceSid`,
//! `Body`, `StatusCallback`. WhatsApp goes through the same endpoint with
//! `whatsapp:+…` addresses. Success is `201` with the Message resource (`sid`,
//! `status`, `price`, `price_unit`); errors are
//! `{"code": 21211, "message": …, "more_info": …, "status": 400}`.
//!
//! # The timeout decision
//!
//! Create Message has no idempotency key: if the request times out after it was
//! sent, Twilio may or may not have created the message, and a retry may text the
//! patient twice. We do **not** retry blindly. When a `status_callback` is
//! configured, every request's StatusCallback URL carries our message id
//! (`?message_id=…`), and Twilio calls it for any message it created (queued →
//! sent → delivered/undelivered/failed), even one whose create response we never
//! saw. So a timeout after sending is [`ProviderError::Unknown`]: the message stays
//! `sending` and the callback settles it; only if no callback arrives within the
//! worker's unknown-outcome deadline is it retried (a duplicate then needs both a
//! lost response and a lost callback). Without a status callback nothing could
//! ever settle the outcome, so a timeout is `Transient` and retried, accepting the
//! rare duplicate over a reminder that silently never went out. A failure to
//! *connect* is always `Transient`: the request never left.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::config::{default_timeout_ms, ProviderConfig, Secret, WebhookSources};
use super::limit::{Limiter, RateLimit};
use super::signature::verify_twilio;
use super::transport;
use super::{
    receipt, CallbackError, CallbackRequest, KindConfig, OutboundMessage, Provider,
    ProviderAccepted, ProviderError, StatusUpdate, Webhook,
};
use crate::domain::contact::Address;
use crate::domain::message::{MessageId, MessageStatus, Money};
use crate::domain::template::Channel;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    /// `AC` + 32 hex digits.
    pub account_sid: String,
    pub auth_token: Secret,
    /// The SMS sender: a Twilio number (E.164) or an alphanumeric sender id.
    #[serde(default)]
    pub from: Option<String>,
    /// Used instead of `from` for SMS when set (Twilio picks the sender).
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    /// The WhatsApp sender number (E.164, without the `whatsapp:` prefix).
    #[serde(default)]
    pub whatsapp_from: Option<String>,
    /// Our public URL for `POST /v1/webhooks/twilio`. Strongly recommended: it is
    /// what makes a timed-out send safe (see the module docs).
    #[serde(default)]
    pub status_callback: Option<String>,
    #[serde(default = "default_base_url")]
    pub base_url: String,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub rate_limit: RateLimit,
}

fn default_base_url() -> String {
    "https://api.twilio.com".to_owned()
}

pub struct Twilio {
    name: String,
    config: TwilioConfig,
    http: reqwest::Client,
    limiter: Limiter,
}

impl Twilio {
    pub fn new(name: &str, config: TwilioConfig) -> Result<Self, ProviderError> {
        let sid = &config.account_sid;
        if !(sid.len() == 34
            && sid.starts_with("AC")
            && sid[2..].bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(ProviderError::misconfigured(
                "config",
                format!("providers.{name}.account_sid: must be AC followed by 32 hex digits"),
            ));
        }
        if config.from.is_none()
            && config.messaging_service_sid.is_none()
            && config.whatsapp_from.is_none()
        {
            return Err(ProviderError::misconfigured(
                "config",
                format!("providers.{name}: set from, messaging_service_sid or whatsapp_from"),
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            http: transport::client(Duration::from_millis(config.timeout_ms))?,
            limiter: Limiter::new(config.rate_limit),
            config,
        })
    }

    /// The form fields of a Create Message request, in the order sent.
    pub fn form(
        &self,
        msg: &OutboundMessage,
    ) -> Result<Vec<(&'static str, String)>, ProviderError> {
        let Address::Phone(to) = &msg.to else {
            return Err(ProviderError::misconfigured(
                "address",
                "Twilio sends to phone numbers only",
            ));
        };
        let mut form = Vec::with_capacity(4);
        match msg.channel {
            Channel::Sms => {
                form.push(("To", to.as_str().to_owned()));
                match (&self.config.messaging_service_sid, &self.config.from) {
                    (Some(ms), _) => form.push(("MessagingServiceSid", ms.clone())),
                    (None, Some(from)) => form.push(("From", from.clone())),
                    (None, None) => {
                        return Err(ProviderError::misconfigured(
                            "config",
                            format!(
                                "providers.{}: no SMS sender (from or messaging_service_sid)",
                                self.name
                            ),
                        ))
                    }
                }
            }
            Channel::Whatsapp => {
                let from = self.config.whatsapp_from.as_ref().ok_or_else(|| {
                    ProviderError::misconfigured(
                        "config",
                        format!("providers.{}: no whatsapp_from", self.name),
                    )
                })?;
                form.push(("To", format!("whatsapp:{}", to.as_str())));
                form.push(("From", format!("whatsapp:{from}")));
            }
            Channel::Email => {
                return Err(ProviderError::misconfigured(
                    "channel",
                    "Twilio does not send email",
                ));
            }
        }
        form.push(("Body", msg.body.clone()));
        if let Some(cb) = &self.config.status_callback {
            form.push(("StatusCallback", callback_url(cb, msg.id)));
        }
        Ok(form)
    }
}

/// The StatusCallback URL for one message: the configured URL plus our id.
pub fn callback_url(base: &str, id: MessageId) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}message_id={id}")
}

#[async_trait::async_trait]
impl Provider for Twilio {
    fn name(&self) -> &str {
        &self.name
    }

    fn supports(&self, channel: Channel) -> bool {
        match channel {
            Channel::Sms => {
                self.config.from.is_some() || self.config.messaging_service_sid.is_some()
            }
            Channel::Whatsapp => self.config.whatsapp_from.is_some(),
            Channel::Email => false,
        }
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<ProviderAccepted, ProviderError> {
        let form = self.form(msg)?;
        self.limiter.acquire().await;
        let url = transport::join(
            &self.config.base_url,
            &format!(
                "/2010-04-01/Accounts/{}/Messages.json",
                self.config.account_sid
            ),
        );
        let request = self
            .http
            .post(url)
            .basic_auth(
                &self.config.account_sid,
                Some(self.config.auth_token.expose()),
            )
            .form(&form);
        transport::send_and_classify(request, self.config.status_callback.is_some(), classify).await
    }
}

impl KindConfig for TwilioConfig {
    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    fn build(&self, name: &str) -> Result<Arc<dyn Provider>, ProviderError> {
        Ok(Arc::new(Twilio::new(name, self.clone())?))
    }
}

/// `POST /v1/webhooks/twilio`: `X-Twilio-Signature` over the URL Twilio called and
/// the form fields, proven by any of the tenant's Twilio auth tokens.
pub struct TwilioWebhook;

impl TwilioWebhook {
    fn form(request: &CallbackRequest<'_>) -> Result<Vec<(String, String)>, CallbackError> {
        serde_urlencoded::from_bytes(request.body)
            .map_err(|e| CallbackError::Malformed(format!("not a form: {e}")))
    }
}

impl Webhook for TwilioWebhook {
    fn kind(&self) -> &'static str {
        "twilio"
    }

    fn secrets<'a>(&self, section: WebhookSources<'a>) -> Vec<&'a str> {
        section
            .each(|p| match p {
                ProviderConfig::Twilio(c) => Some(c.auth_token.expose()),
                _ => None,
            })
            .collect()
    }

    fn verify(&self, request: &CallbackRequest<'_>, secret: &str) -> Result<bool, CallbackError> {
        let Some(signature) = request.header("x-twilio-signature") else {
            return Ok(false);
        };
        let form = Self::form(request)?;
        Ok(verify_twilio(secret, request.url, &form, signature))
    }

    fn parse(&self, request: &CallbackRequest<'_>) -> Result<Vec<StatusUpdate>, CallbackError> {
        parse_status_callback(&Self::form(request)?, request.query).map(|u| vec![u])
    }

    /// The query carries our message id, which the form does not.
    fn receipt(&self, request: &CallbackRequest<'_>, _index: usize) -> String {
        receipt(
            self.kind(),
            &[request.query.unwrap_or("").as_bytes(), request.body],
        )
    }
}

#[derive(Deserialize)]
struct Created {
    sid: Option<String>,
    price: Option<String>,
    price_unit: Option<String>,
}

#[derive(Deserialize)]
struct ApiError {
    code: Option<u32>,
    message: Option<String>,
}

/// Twilio error codes that mean "this message can never be sent as is"
/// (the message becomes `bounced`).
pub const PERMANENT_CODES: &[(u32, &str)] = &[
    (21211, "invalid To phone number"),
    (21217, "phone number does not appear to be valid"),
    (21401, "invalid phone number"),
    (21407, "this phone number type does not support SMS"),
    (21408, "permission to send to this region is not enabled"),
    (21610, "the recipient replied STOP (unsubscribed)"),
    (21612, "the To number cannot be reached from this sender"),
    (21614, "To is not a mobile number"),
    (21617, "the body exceeds the maximum length"),
    (
        63016,
        "WhatsApp free-form message outside the 24-hour window",
    ),
];

/// Codes that mean our account or sender is wrong (the chain fails over).
pub const MISCONFIGURED_CODES: &[(u32, &str)] = &[
    (20003, "authentication failed"),
    (20404, "account or resource not found"),
    (21212, "invalid From number"),
    (21606, "the From number is not SMS-capable on this account"),
    (
        21659,
        "the From number is not a Twilio number on this account",
    ),
];

/// Codes that mean "try later".
pub const TRANSIENT_CODES: &[u32] = &[20429, 20500, 20503, 30001];

/// Classifies a Create Message response.
///
/// | answer | classification |
/// |---|---|
/// | 2xx with a `sid` | accepted |
/// | 429, code 20429, 5xx, codes 20500/20503/30001 | `Transient` (Retry-After honoured) |
/// | 401/403, codes 20003, 20404, 21212, 21606, 21659 | `Misconfigured` |
/// | codes 21211, 21217, 21401, 21407, 21408, 21610, 21612, 21614, 21617, 63016 | `Rejected` |
/// | any other 4xx | `Rejected` (Twilio validated and refused the request) |
pub fn classify(
    status: u16,
    body: &str,
    retry_after: Option<Duration>,
) -> Result<ProviderAccepted, ProviderError> {
    if (200..300).contains(&status) {
        let created: Created = serde_json::from_str(body).map_err(|e| ProviderError::Unknown {
            code: "bad_response".into(),
            message: format!("HTTP {status} with an unreadable body: {e}"),
        })?;
        let sid = created
            .sid
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ProviderError::Unknown {
                code: "bad_response".into(),
                message: format!("HTTP {status} without a sid"),
            })?;
        let price = match (created.price, created.price_unit) {
            (Some(p), Some(u)) => Money::parse_price(&p, &u).ok(),
            _ => None,
        };
        return Ok(ProviderAccepted {
            provider_message_id: sid,
            price,
            raw: transport::truncate(body),
        });
    }
    let err: Option<ApiError> = serde_json::from_str(body).ok();
    let code = err.as_ref().and_then(|e| e.code);
    let message = err
        .and_then(|e| e.message)
        .unwrap_or_else(|| transport::truncate(body));
    let code_str = code.map_or_else(|| format!("http_{status}"), |c| c.to_string());
    let known = |table: &[(u32, &str)]| {
        code.and_then(|c| table.iter().find(|(k, _)| *k == c))
            .is_some()
    };
    if status == 429 || status >= 500 || code.is_some_and(|c| TRANSIENT_CODES.contains(&c)) {
        return Err(ProviderError::Transient {
            code: code_str,
            message,
            retry_after,
        });
    }
    if status == 401 || status == 403 || known(MISCONFIGURED_CODES) {
        return Err(ProviderError::Misconfigured {
            code: code_str,
            message,
        });
    }
    // Every other 4xx is permanent: PERMANENT_CODES lists the common ones.
    Err(ProviderError::Rejected {
        code: code_str,
        message,
    })
}

/// Parses a status callback (`application/x-www-form-urlencoded` fields).
/// `query` is the callback URL's query string, which carries our `message_id`.
///
/// `MessageStatus` mapping: `queued`, `accepted`, `scheduled`, `sending`, `sent` →
/// sent; `delivered` → delivered; `read` → read; `undelivered`, `failed`,
/// `canceled` → failed (with `ErrorCode`). Inbound statuses (`receiving`,
/// `received`) are ignored.
pub fn parse_status_callback(
    form: &[(String, String)],
    query: Option<&str>,
) -> Result<StatusUpdate, CallbackError> {
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let sid = field("MessageSid")
        .or_else(|| field("SmsSid"))
        .ok_or_else(|| CallbackError::Malformed("MessageSid is missing".into()))?;
    let raw_status = field("MessageStatus")
        .or_else(|| field("SmsStatus"))
        .ok_or_else(|| CallbackError::Malformed("MessageStatus is missing".into()))?;
    let status = match raw_status {
        "queued" | "accepted" | "scheduled" | "sending" | "sent" => MessageStatus::Sent,
        "delivered" => MessageStatus::Delivered,
        "read" => MessageStatus::Read,
        "undelivered" | "failed" | "canceled" => MessageStatus::Failed,
        other => return Err(CallbackError::Ignored(format!("MessageStatus {other}"))),
    };
    let price = match (field("Price"), field("PriceUnit")) {
        (Some(p), Some(u)) => {
            Some(Money::parse_price(p, u).map_err(|e| CallbackError::Malformed(e.to_string()))?)
        }
        _ => None,
    };
    let message_id = query.and_then(|q| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .ok()?
            .into_iter()
            .find(|(k, _)| k == "message_id")
            .and_then(|(_, v)| MessageId::parse(&v).ok())
    });
    Ok(StatusUpdate {
        provider_message_id: sid.to_owned(),
        message_id,
        status,
        error_code: field("ErrorCode").map(str::to_owned),
        error_message: field("ErrorMessage").map(str::to_owned),
        price,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn classifies_the_documented_errors() {
        let body = |code: u32, status: u16| {
            format!(
                r#"{{"code": {code}, "message": "m{code}", "more_info": "https://www.twilio.com/docs/errors/{code}", "status": {status}}}"#
            )
        };
        for (code, _) in PERMANENT_CODES {
            let code = *code;
            assert_eq!(
                classify(400, &body(code, 400), None),
                Err(ProviderError::Rejected {
                    code: code.to_string(),
                    message: format!("m{code}")
                }),
            );
        }
        assert_eq!(
            classify(429, &body(20429, 429), Some(Duration::from_secs(7))),
            Err(ProviderError::Transient {
                code: "20429".into(),
                message: "m20429".into(),
                retry_after: Some(Duration::from_secs(7))
            })
        );
        assert!(
            matches!(classify(503, "<html>busy</html>", None), Err(ProviderError::Transient { ref code, .. }) if code == "http_503")
        );
        assert!(matches!(
            classify(500, &body(20500, 500), None),
            Err(ProviderError::Transient { .. })
        ));
        assert!(
            matches!(classify(401, &body(20003, 401), None), Err(ProviderError::Misconfigured { ref code, .. }) if code == "20003")
        );
        assert!(matches!(
            classify(400, &body(21606, 400), None),
            Err(ProviderError::Misconfigured { .. })
        ));
        assert!(
            matches!(classify(400, &body(21999, 400), None), Err(ProviderError::Rejected { ref code, .. }) if code == "21999")
        );
    }

    #[test]
    fn reads_sid_and_price_from_a_created_message() {
        let body = r#"{"sid": "SM1f0e8ae6ade43cb3c0ce4525424e404f", "status": "queued", "price": "-0.00750", "price_unit": "USD"}"#;
        let ok = classify(201, body, None).unwrap();
        assert_eq!(ok.provider_message_id, "SM1f0e8ae6ade43cb3c0ce4525424e404f");
        assert_eq!(
            ok.price,
            Some(Money {
                micros: 7_500,
                currency: "USD".into()
            })
        );
        let no_price = classify(
            201,
            r#"{"sid": "SMx", "price": null, "price_unit": "USD"}"#,
            None,
        )
        .unwrap();
        assert_eq!(no_price.price, None);
        assert!(matches!(
            classify(201, "{}", None),
            Err(ProviderError::Unknown { .. })
        ));
    }

    #[test]
    fn parses_status_callbacks() {
        let id = MessageId::new_random();
        let q = format!("message_id={id}");
        let delivered = parse_status_callback(
            &form(&[
                ("SmsSid", "SM1"),
                ("SmsStatus", "delivered"),
                ("MessageStatus", "delivered"),
                ("To", "+966501234567"),
                ("MessageSid", "SM1"),
                ("AccountSid", "AC1"),
                ("From", "+14155550100"),
                ("ApiVersion", "2010-04-01"),
            ]),
            Some(&q),
        )
        .unwrap();
        assert_eq!(
            delivered,
            StatusUpdate {
                provider_message_id: "SM1".into(),
                message_id: Some(id),
                status: MessageStatus::Delivered,
                error_code: None,
                error_message: None,
                price: None,
            }
        );
        let failed = parse_status_callback(
            &form(&[
                ("MessageSid", "SM2"),
                ("MessageStatus", "undelivered"),
                ("ErrorCode", "30003"),
                ("Price", "-0.0075"),
                ("PriceUnit", "USD"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(failed.status, MessageStatus::Failed);
        assert_eq!(failed.error_code.as_deref(), Some("30003"));
        assert_eq!(
            failed.price,
            Some(Money {
                micros: 7_500,
                currency: "USD".into()
            })
        );
        assert_eq!(failed.message_id, None);
        assert_eq!(
            parse_status_callback(
                &form(&[("MessageSid", "SM3"), ("MessageStatus", "read")]),
                None
            )
            .unwrap()
            .status,
            MessageStatus::Read
        );
        assert_eq!(
            parse_status_callback(
                &form(&[("MessageSid", "SM3"), ("MessageStatus", "received")]),
                None
            ),
            Err(CallbackError::Ignored("MessageStatus received".into()))
        );
        assert_eq!(
            parse_status_callback(&form(&[("MessageStatus", "sent")]), None),
            Err(CallbackError::Malformed("MessageSid is missing".into()))
        );
    }

    #[test]
    fn the_webhook_verifies_with_the_signed_url_and_names_each_callback_by_query_and_body() {
        let url = "https://hub.example/v1/webhooks/twilio?message_id=x";
        let body = b"MessageSid=SM1&MessageStatus=delivered";
        let params = form(&[("MessageSid", "SM1"), ("MessageStatus", "delivered")]);
        let signature = crate::provider::signature::twilio_signature("tok", url, &params);
        let headers = [("x-twilio-signature", signature.as_str())];
        let request = CallbackRequest {
            url,
            query: Some("message_id=x"),
            headers: &headers,
            body,
        };
        assert_eq!(TwilioWebhook.verify(&request, "tok"), Ok(true));
        assert_eq!(TwilioWebhook.verify(&request, "other"), Ok(false));
        let unsigned = CallbackRequest {
            headers: &[],
            ..request
        };
        assert_eq!(TwilioWebhook.verify(&unsigned, "tok"), Ok(false));
        let updates = TwilioWebhook.parse(&request).unwrap();
        assert_eq!(updates.len(), 1);
        assert_eq!(updates[0].status, MessageStatus::Delivered);
        // Replays of callbacks stored before are still recognised: same formula.
        assert_eq!(
            TwilioWebhook.receipt(&request, 0),
            receipt("twilio", &[b"message_id=x", body])
        );
        let other_query = CallbackRequest {
            query: Some("message_id=y"),
            ..request
        };
        assert_ne!(
            TwilioWebhook.receipt(&other_query, 0),
            TwilioWebhook.receipt(&request, 0)
        );
    }

    #[test]
    fn callback_url_carries_the_message_id() {
        let id = MessageId::new_random();
        assert_eq!(
            callback_url("https://h/v1/webhooks/twilio", id),
            format!("https://h/v1/webhooks/twilio?message_id={id}")
        );
        assert_eq!(
            callback_url("https://h/cb?t=1", id),
            format!("https://h/cb?t=1&message_id={id}")
        );
    }
}
