//! The `log` provider: the embedded default. It delivers **nowhere**: it notes the
//! message in the log (tracing) and answers with a generated id, so a fresh install
//! runs end to end without any provider account. Its ids start with `log-` so they
//! are never mistaken for a real provider's.
//!
//! It logs ids, the channel and lengths only — never the address, subject or body:
//! those are patient data, and logs travel further than the database. Outside
//! development the hub refuses to start with it unless `[outbound]
//! allow_log_provider = true` (config/outbound.rs).

use std::sync::Arc;
use std::time::Duration;

use crate::domain::template::Channel;

use super::{KindConfig, OutboundMessage, Provider, ProviderAccepted, ProviderError};

/// `kind = "log"` has no settings.
pub struct LogConfig;

impl KindConfig for LogConfig {
    /// It answers at once: nothing for a lease to outlast.
    fn timeout(&self) -> Duration {
        Duration::ZERO
    }

    fn build(&self, name: &str) -> Result<Arc<dyn Provider>, ProviderError> {
        Ok(Arc::new(LogProvider::new(name)))
    }
}

pub struct LogProvider {
    name: String,
}

impl LogProvider {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
        }
    }
}

#[async_trait::async_trait]
impl Provider for LogProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn supports(&self, _channel: Channel) -> bool {
        true
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<ProviderAccepted, ProviderError> {
        let id = format!("log-{}", uuid::Uuid::new_v4().simple());
        tracing::info!(
            provider = %self.name,
            message_id = %msg.id,
            provider_message_id = %id,
            channel = %msg.channel,
            language = %msg.language,
            subject_len = msg.subject.as_deref().map_or(0, str::len),
            body_len = msg.body.len(),
            "outbound message logged, not delivered (log provider)"
        );
        Ok(ProviderAccepted {
            provider_message_id: id,
            price: None,
            raw: String::from("{\"provider\":\"log\",\"delivered\":false}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::contact::{Address, EmailAddress};
    use crate::domain::message::MessageId;
    use crate::domain::template::Language;

    #[tokio::test]
    async fn answers_with_a_distinct_log_id() {
        let p = LogProvider::new("log");
        let msg = OutboundMessage {
            id: MessageId::new_random(),
            channel: Channel::Email,
            to: Address::Email(EmailAddress::parse("p@clinic.example").unwrap()),
            language: Language::En,
            subject: Some("s".into()),
            body: "b".into(),
            whatsapp_template: None,
        };
        let a = p.send(&msg).await.unwrap();
        let b = p.send(&msg).await.unwrap();
        assert!(a.provider_message_id.starts_with("log-") && a.provider_message_id.len() == 36);
        assert_ne!(a.provider_message_id, b.provider_message_id);
        assert_eq!(a.price, None);
    }
}
