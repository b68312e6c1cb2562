//! Email over SMTP (lettre, tokio, rustls).
//!
//! Each message gets a `Message-ID` of `<{our message id}@{domain of from}>`, which
//! is also its provider message id. SMTP has no delivery callbacks; a message the
//! server accepted (250 after DATA) is `sent`.
//!
//! Classification (RFC 5321 reply codes): 4xx → `Transient` (greylisting, mailbox
//! busy, too many connections); 5xx → `Rejected` (550 mailbox unavailable, 551, 553
//! bad address, 554), except 530/534/535/538 (authentication) → `Misconfigured`;
//! TLS failures and client errors (STARTTLS required but not offered) →
//! `Misconfigured`; connection errors and timeouts → `Transient` (a timeout after
//! DATA may duplicate an email: there is no callback that could settle it, and a
//! second copy carries the same Message-ID, which many mail stores collapse).

use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::Deserialize;

use super::config::{default_timeout_ms, Secret};
use super::limit::{Limiter, RateLimit};
use super::{KindConfig, OutboundMessage, Provider, ProviderAccepted, ProviderError};
use crate::domain::contact::Address;
use crate::domain::template::Channel;

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    Starttls,
    /// TLS from the first byte ("implicit TLS", port 465).
    Tls,
    /// No encryption: local relays and tests only. Credentials are refused with it.
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// The sender, `Clinic <noreply@clinic.example>`.
    pub from: String,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub rate_limit: RateLimit,
}

impl KindConfig for SmtpConfig {
    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    fn build(&self, name: &str) -> Result<Arc<dyn Provider>, ProviderError> {
        Ok(Arc::new(Smtp::new(name, self.clone())?))
    }
}

pub struct Smtp {
    name: String,
    from: Mailbox,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    limiter: Limiter,
}

impl Smtp {
    pub fn new(name: &str, config: SmtpConfig) -> Result<Self, ProviderError> {
        let bad = |key: &str, why: String| {
            ProviderError::misconfigured("config", format!("providers.{name}.{key}: {why}"))
        };
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| bad("from", format!("not a mailbox: {e}")))?;
        let tls_params =
            || TlsParameters::new(config.host.clone()).map_err(|e| bad("tls", e.to_string()));
        let tls = match config.tls {
            SmtpTls::Starttls => Tls::Required(tls_params()?),
            SmtpTls::Tls => Tls::Wrapper(tls_params()?),
            SmtpTls::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port)
            .tls(tls)
            .timeout(Some(Duration::from_millis(config.timeout_ms)));
        match (config.username, config.password) {
            (Some(user), Some(pass)) => {
                if config.tls == SmtpTls::None {
                    return Err(bad("tls", "credentials need starttls or tls".into()));
                }
                builder = builder.credentials(Credentials::new(user, pass.expose().to_owned()));
            }
            (None, None) => {}
            _ => {
                return Err(bad(
                    "username",
                    "set both username and password, or neither".into(),
                ))
            }
        }
        Ok(Self {
            name: name.to_owned(),
            from,
            transport: builder.build(),
            limiter: Limiter::new(config.rate_limit),
        })
    }

    fn build_message(&self, msg: &OutboundMessage) -> Result<(Message, String), ProviderError> {
        let Address::Email(to) = &msg.to else {
            return Err(ProviderError::misconfigured(
                "address",
                "SMTP sends to email addresses only",
            ));
        };
        let to: Mailbox = to.as_str().parse().map_err(|e| ProviderError::Rejected {
            code: "address".into(),
            message: format!("{e}"),
        })?;
        let domain = self.from.email.domain().to_owned();
        let message_id = format!("<{}@{domain}>", msg.id);
        let email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(msg.subject.clone().unwrap_or_default())
            .message_id(Some(message_id.clone()))
            .header(ContentType::TEXT_PLAIN)
            .body(msg.body.clone())
            .map_err(|e| ProviderError::misconfigured("message", e.to_string()))?;
        Ok((email, message_id))
    }
}

#[async_trait::async_trait]
impl Provider for Smtp {
    fn name(&self) -> &str {
        &self.name
    }

    fn supports(&self, channel: Channel) -> bool {
        channel == Channel::Email
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<ProviderAccepted, ProviderError> {
        let (email, message_id) = self.build_message(msg)?;
        self.limiter.acquire().await;
        match self.transport.send(email).await {
            Ok(response) => Ok(ProviderAccepted {
                provider_message_id: message_id,
                price: None,
                raw: format!(
                    "{} {}",
                    response.code(),
                    response.message().collect::<Vec<_>>().join(" ")
                ),
            }),
            Err(e) => Err(classify(&e)),
        }
    }
}

/// Authentication-related permanent replies: our credentials, not the recipient.
const AUTH_CODES: &[&str] = &["530", "534", "535", "538"];

fn classify(err: &lettre::transport::smtp::Error) -> ProviderError {
    let message = error_chain(err);
    if let Some(code) = err.status() {
        let code = code.to_string();
        if err.is_permanent() && AUTH_CODES.contains(&code.as_str()) {
            return ProviderError::Misconfigured { code, message };
        }
        if err.is_permanent() {
            return ProviderError::Rejected { code, message };
        }
        return ProviderError::Transient {
            code,
            message,
            retry_after: None,
        };
    }
    if err.is_tls() {
        return ProviderError::misconfigured("tls", message);
    }
    // lettre's client errors are ours: chiefly STARTTLS required but not offered.
    if err.is_client() {
        return ProviderError::misconfigured("client", message);
    }
    let code = if err.is_timeout() {
        "timeout"
    } else {
        "connection"
    };
    ProviderError::Transient {
        code: code.into(),
        message,
        retry_after: None,
    }
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        source = s.source();
    }
    out
}
