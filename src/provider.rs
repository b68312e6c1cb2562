//! The outbound port: one [`Provider`] trait for every SMS, WhatsApp and email
//! provider, the error classification that drives retries, and the parsed form of
//! the providers' status callbacks.
//!
//! # Layout
//! - [`twilio`], [`unifonic`], [`whatsapp_cloud`], [`smtp`], [`log`]: one adapter per
//!   provider, each speaking that provider's real wire format, each with its own
//!   credentials, base URL, timeout and rate limit ([`limit`]).
//! - [`failover`]: an ordered chain of providers per channel, with a
//!   [`breaker`] (circuit breaker) per provider.
//! - [`signature`]: webhook signature checks (Twilio, Meta).
//! - [`config`]: the configuration shape, building providers and chains from it.
//!
//! # The registry of kinds
//! The module list below, [`ProviderConfig`] (a `kind` → its config type, which
//! says its timeout and builds its adapter: [`KindConfig`]), [`WEBHOOKS`] (a URL
//! `{kind}` → its status webhook: [`Webhook`]) and [`WebhookSecrets`] (secrets that
//! are not a provider's own settings) are the only places that list the kinds.
//! Adding a provider touches its adapter, this registry and the docs.
//!
//! **Only `provider/` knows reqwest and lettre.** The trait speaks domain types
//! ([`OutboundMessage`] in, [`ProviderAccepted`] or [`ProviderError`] out), so the
//! queue worker, the store and the HTTP layer never see a vendor type.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use self::config::Secret;
use sha2::{Digest, Sha256};

use crate::domain::contact::Address;
use crate::domain::message::{MessageId, MessageStatus, Money};
use crate::domain::template::{Channel, Language};

pub mod breaker;
pub mod clinic_webhooks;
pub mod config;
pub mod failover;
pub mod limit;
pub mod log;
pub mod signature;
pub mod smtp;
pub mod twilio;
pub mod unifonic;
pub mod whatsapp_cloud;

mod transport;

/// One provider instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProviderConfig {
    Log,
    Twilio(twilio::TwilioConfig),
    Unifonic(unifonic::UnifonicConfig),
    WhatsappCloud(whatsapp_cloud::WhatsappCloudConfig),
    Smtp(smtp::SmtpConfig),
}

impl ProviderConfig {
    /// The kind's own view of its configuration: the one `match` on kinds.
    pub fn kind(&self) -> &dyn KindConfig {
        match self {
            ProviderConfig::Log => &log::LogConfig,
            ProviderConfig::Twilio(c) => c,
            ProviderConfig::Unifonic(c) => c,
            ProviderConfig::WhatsappCloud(c) => c,
            ProviderConfig::Smtp(c) => c,
        }
    }
}

/// The status webhooks, by the `{kind}` of `/v1/webhooks/{kind}`.
pub static WEBHOOKS: &[&dyn Webhook] = &[
    &twilio::TwilioWebhook,
    &whatsapp_cloud::WhatsappWebhook,
    &unifonic::UnifonicWebhook,
];

/// The webhook of a URL's `{kind}`.
pub fn webhook(kind: &str) -> Option<&'static dyn Webhook> {
    WEBHOOKS.iter().copied().find(|w| w.kind() == kind)
}

/// Secrets for the webhooks whose providers sign nothing or need a handshake
/// (`[outbound.default.webhooks]`, `[outbound.tenants.<id>.webhooks]`). Twilio's
/// auth token and WhatsApp's app secret come from the providers themselves.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSecrets {
    /// Unifonic signs nothing: its delivery-report URL carries this token
    /// (`/v1/webhooks/unifonic?token=…`). Without it, Unifonic reports for this
    /// tenant are refused (403).
    #[serde(default)]
    pub unifonic_token: Option<Secret>,
    /// What Meta sends as `hub.verify_token` when the webhook is registered
    /// (`GET /v1/webhooks/whatsapp`).
    #[serde(default)]
    pub whatsapp_verify_token: Option<Secret>,
}

/// Where one tenant's (or the node's) webhook secrets live: its providers'
/// settings and its `webhooks` table.
#[derive(Debug, Clone, Copy)]
pub struct WebhookSources<'a> {
    pub providers: &'a BTreeMap<String, ProviderConfig>,
    pub webhooks: &'a WebhookSecrets,
}

impl<'a> WebhookSources<'a> {
    /// Every provider's settings of the kind `pick` recognises.
    pub fn each<T: 'a>(
        self,
        pick: impl Fn(&'a ProviderConfig) -> Option<T> + 'a,
    ) -> impl Iterator<Item = T> + 'a {
        self.providers.values().filter_map(pick)
    }
}

/// One message, rendered and addressed, ready for a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    /// Our id. Providers that can carry a reference (Twilio's StatusCallback URL,
    /// WhatsApp's `biz_opaque_callback_data`, Unifonic's CorrelationID, the email
    /// Message-ID) carry it, so a callback finds the message even when the send's
    /// response was lost.
    pub id: MessageId,
    pub channel: Channel,
    pub to: Address,
    pub language: Language,
    /// Email only.
    pub subject: Option<String>,
    /// The rendered text (SMS, email, and WhatsApp without an approved template).
    pub body: String,
    /// The approved WhatsApp template to send instead of free text, when the
    /// message came from one: WhatsApp refuses business-initiated free text outside
    /// the 24-hour customer-service window.
    pub whatsapp_template: Option<WhatsappTemplate>,
}

/// A pre-approved WhatsApp template and its positional body parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhatsappTemplate {
    pub name: String,
    pub parameters: Vec<String>,
}

/// A provider took the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderAccepted {
    /// The provider's id for the message (Twilio `SM…`, WhatsApp `wamid.…`, Unifonic
    /// `MessageID`, the email's Message-ID): what status callbacks refer to.
    pub provider_message_id: String,
    /// What the provider says the message costs, when it says so at send time.
    pub price: Option<Money>,
    /// The provider's response body, for the message's event trail.
    pub raw: String,
}

/// Why a send did not succeed, classified for the retry policy.
///
/// `code` is the provider's own error code (`21211`, `ER-04`, `131026`, `550`) or
/// one of ours for transport failures (`timeout`, `connect`, `http_503`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// Permanent: the same request will fail again (invalid number, unsubscribed,
    /// not a mobile, mailbox unavailable). The message becomes `bounced` at once.
    #[error("rejected ({code}): {message}")]
    Rejected { code: String, message: String },
    /// Temporary: retry later (timeouts before the request left, connection errors,
    /// 429, 5xx, the provider's transient codes), no sooner than `retry_after`.
    #[error("temporarily failed ({code}): {message}")]
    Transient {
        code: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// The request may have reached the provider, and we cannot tell whether it
    /// created the message (a timeout after sending, a connection cut before the
    /// response). Retrying could send it twice. The caller keeps the message in
    /// `sending` and lets the status callback, which carries our message id,
    /// settle it; see docs/OUTBOUND.md, "The Twilio timeout decision".
    #[error("outcome unknown ({code}): {message}")]
    Unknown { code: String, message: String },
    /// Our side is wrong (bad credentials, unknown sender, missing setting): no
    /// message will get through this provider until the configuration is fixed. A
    /// failover chain moves on to its next provider at once.
    #[error("misconfigured ({code}): {message}")]
    Misconfigured { code: String, message: String },
}

impl ProviderError {
    pub fn code(&self) -> &str {
        match self {
            ProviderError::Rejected { code, .. }
            | ProviderError::Transient { code, .. }
            | ProviderError::Unknown { code, .. }
            | ProviderError::Misconfigured { code, .. } => code,
        }
    }

    /// Whether the provider itself looks unhealthy (counts towards its circuit
    /// breaker). A rejection is about the message, not the provider.
    pub fn counts_against_provider(&self) -> bool {
        !matches!(self, ProviderError::Rejected { .. })
    }

    pub(crate) fn misconfigured(code: &str, message: impl Into<String>) -> Self {
        ProviderError::Misconfigured {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// An SMS, WhatsApp or email provider.
#[async_trait::async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The configured name (`twilio`, `unifonic-ksa`), recorded on each attempt.
    fn name(&self) -> &str;

    /// Whether this provider can carry `channel`.
    fn supports(&self, channel: Channel) -> bool;

    /// Sends one message. Waits for the provider's rate limit first.
    async fn send(&self, msg: &OutboundMessage) -> Result<ProviderAccepted, ProviderError>;
}

/// What every provider kind's configuration type says about itself, so that no
/// code outside the registry (`config::ProviderConfig::kind`) matches on kinds.
pub trait KindConfig {
    /// The longest one send may take: a claim's lease must outlast it.
    fn timeout(&self) -> Duration;

    /// The running adapter, named `name`. Errors name the key at fault.
    fn build(&self, name: &str) -> Result<Arc<dyn Provider>, ProviderError>;
}

/// A status callback as it arrived, transport-free: the exact bytes and URL the
/// provider signed.
#[derive(Debug, Clone, Copy)]
pub struct CallbackRequest<'a> {
    /// The full URL the provider called, as it signed it (`[outbound] public_url`
    /// + path + query: behind a proxy the Host header is the proxy's).
    pub url: &'a str,
    /// The URL's query string, without `?`.
    pub query: Option<&'a str>,
    /// The request headers, lowercase names.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

impl<'a> CallbackRequest<'a> {
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// The first value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        serde_urlencoded::from_str::<Vec<(String, String)>>(self.query?)
            .ok()?
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// A provider kind's status webhook (`POST /v1/webhooks/{kind}[/{tenant}]`): the
/// adapter owns what proves a callback and what it says; the callbacks service
/// owns the order (verify against every candidate secret, *then* look up) and
/// the tenant checks.
pub trait Webhook: Send + Sync + 'static {
    /// The `{kind}` of the URL, also the provider label of metrics and events.
    fn kind(&self) -> &'static str;

    /// The secrets of one tenant's section (`providers` and `[…webhooks]`) that
    /// may prove this kind's callbacks.
    fn secrets<'a>(&self, section: WebhookSources<'a>) -> Vec<&'a str>;

    /// Whether `request` is proven by `secret` (constant-time). `Ok(false)` for a
    /// missing or wrong signature; `Err` only for a body the signature covers but
    /// that is not what the provider sends. Reads nothing else.
    fn verify(&self, request: &CallbackRequest<'_>, secret: &str) -> Result<bool, CallbackError>;

    /// The status updates a verified callback carries, in order.
    fn parse(&self, request: &CallbackRequest<'_>) -> Result<Vec<StatusUpdate>, CallbackError>;

    /// What identifies update `index` of `request`, so that a replay of the same
    /// callback writes nothing. Default: the body (one update per callback).
    fn receipt(&self, request: &CallbackRequest<'_>, _index: usize) -> String {
        receipt(self.kind(), &[request.body])
    }
}

/// SHA-256 of the kind and a callback's identifying bytes (hex).
pub fn receipt(kind: &str, parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    for p in parts {
        h.update([0u8]);
        h.update(p);
    }
    hex::encode(h.finalize())
}

/// A provider's status callback, parsed: which message, and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    pub provider_message_id: String,
    /// Our id, when the callback carries it (see [`OutboundMessage::id`]).
    pub message_id: Option<MessageId>,
    /// The status to apply, subject to [`crate::domain::message::advance`].
    pub status: MessageStatus,
    /// The provider's error code for failures (`30003`, `131026`).
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub price: Option<Money>,
}

/// A status callback that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// The body is not what the provider sends (a 400 for the sender).
    #[error("malformed callback: {0}")]
    Malformed(String),
    /// A well-formed callback about something we do not track (an inbound message,
    /// an intermediate status we have no name for): acknowledged and ignored.
    #[error("ignored callback: {0}")]
    Ignored(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rejections_spare_the_circuit_breaker() {
        let e = |s: &str| s.to_owned();
        assert!(!ProviderError::Rejected {
            code: e("21211"),
            message: e("x")
        }
        .counts_against_provider());
        assert!(ProviderError::Transient {
            code: e("http_503"),
            message: e("x"),
            retry_after: None
        }
        .counts_against_provider());
        assert!(ProviderError::Unknown {
            code: e("timeout"),
            message: e("x")
        }
        .counts_against_provider());
        assert!(ProviderError::misconfigured("20003", "x").counts_against_provider());
        assert_eq!(
            ProviderError::misconfigured("20003", "bad token").to_string(),
            "misconfigured (20003): bad token"
        );
    }
}
