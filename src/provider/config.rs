//! The provider configuration's shape, and building providers and failover chains
//! from it. The service layer embeds [`ProvidersConfig`] (per tenant) in its own
//! configuration; this module only knows how to turn it into running adapters.
//!
//! The registry of kinds ([`ProviderConfig`], [`WEBHOOKS`], [`WebhookSecrets`]) lives
//! in `provider.rs`, next to the adapters' module list, and is re-exported here.
//!
//! ```toml
//! [providers.twilio]
//! kind = "twilio"
//! account_sid = "AC…"
//! auth_token = "…"
//! from = "+14155550100"
//! status_callback = "https://hub.clinic.example/v1/webhooks/twilio"
//! timeout_ms = 10000
//! rate_limit = { per_second = 1, burst = 1 }
//!
//! [providers.unifonic]
//! kind = "unifonic"
//! app_sid = "…"
//! sender_id = "CLINIC"
//!
//! [routes]
//! sms = ["twilio", "unifonic"]   # failover order
//! whatsapp = ["twilio"]
//! email = ["log"]
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;

use super::breaker::BreakerConfig;
use super::failover::FailoverChain;
use super::{log, Provider, ProviderError};
pub use super::{webhook, ProviderConfig, WebhookSecrets, WebhookSources, WEBHOOKS};
use crate::domain::template::Channel;

/// A credential. Never printed: `Debug` shows `***`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The failover order of provider names per channel.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Routes {
    pub sms: Vec<String>,
    pub whatsapp: Vec<String>,
    pub email: Vec<String>,
}

impl Default for Routes {
    fn default() -> Self {
        let log = vec!["log".to_owned()];
        Self {
            sms: log.clone(),
            whatsapp: log.clone(),
            email: log,
        }
    }
}

/// Every provider of one tenant (or of the node, by default) and their routes.
/// The default is the embedded `log` provider on every channel.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvidersConfig {
    /// By name. A provider named `log` of kind `log` always exists.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    #[serde(default)]
    pub routes: Routes,
    #[serde(default)]
    pub breaker: BreakerConfig,
}

/// Running providers: one failover chain per channel.
pub struct Providers {
    sms: FailoverChain,
    whatsapp: FailoverChain,
    email: FailoverChain,
}

impl Providers {
    /// Builds every configured provider and the chains. Errors name the provider
    /// or route at fault (`Misconfigured`), for a clear message at start.
    pub fn build(config: &ProvidersConfig) -> Result<Self, ProviderError> {
        let mut built: BTreeMap<&str, Arc<dyn Provider>> = BTreeMap::new();
        built.insert("log", Arc::new(log::LogProvider::new("log")));
        for (name, cfg) in &config.providers {
            built.insert(name, build_one(name, cfg)?);
        }
        let chain = |channel: Channel, names: &[String]| -> Result<FailoverChain, ProviderError> {
            if names.is_empty() {
                return Err(ProviderError::misconfigured(
                    "config",
                    format!("routes.{channel}: list at least one provider"),
                ));
            }
            let mut providers = Vec::new();
            for name in names {
                let p = built.get(name.as_str()).ok_or_else(|| {
                    ProviderError::misconfigured(
                        "config",
                        format!("routes.{channel}: no provider named {name:?}"),
                    )
                })?;
                if !p.supports(channel) {
                    return Err(ProviderError::misconfigured(
                        "config",
                        format!("routes.{channel}: provider {name:?} cannot send {channel}"),
                    ));
                }
                providers.push(p.clone());
            }
            Ok(FailoverChain::new(providers, config.breaker))
        };
        Ok(Self {
            sms: chain(Channel::Sms, &config.routes.sms)?,
            whatsapp: chain(Channel::Whatsapp, &config.routes.whatsapp)?,
            email: chain(Channel::Email, &config.routes.email)?,
        })
    }

    pub fn chain(&self, channel: Channel) -> &FailoverChain {
        match channel {
            Channel::Sms => &self.sms,
            Channel::Whatsapp => &self.whatsapp,
            Channel::Email => &self.email,
        }
    }
}

/// Builds one provider from its configuration.
pub fn build_one(name: &str, cfg: &ProviderConfig) -> Result<Arc<dyn Provider>, ProviderError> {
    cfg.kind().build(name)
}

pub(crate) fn default_timeout_ms() -> u64 {
    10_000
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn default_is_the_log_provider_everywhere() {
        let p = Providers::build(&ProvidersConfig::default()).unwrap();
        for c in Channel::FALLBACK_ORDER {
            assert_eq!(p.chain(c).names(), vec!["log"]);
        }
    }

    #[test]
    fn every_webhook_kind_is_listed_once() {
        let mut kinds: Vec<&str> = WEBHOOKS.iter().map(|w| w.kind()).collect();
        kinds.sort_unstable();
        let listed = kinds.len();
        kinds.dedup();
        assert_eq!(
            kinds.len(),
            listed,
            "a URL kind names one webhook: {kinds:?}"
        );
        for kind in kinds {
            assert_eq!(webhook(kind).map(|w| w.kind()), Some(kind));
        }
        assert!(webhook("twilio").is_some());
        assert!(webhook("nope").is_none());
    }

    #[test]
    fn timeouts_come_from_each_kind() {
        assert_eq!(ProviderConfig::Log.kind().timeout(), Duration::ZERO);
        let cfg: ProviderConfig = serde_json::from_value(serde_json::json!({
            "kind": "unifonic", "app_sid": "s", "sender_id": "C", "timeout_ms": 2500
        }))
        .unwrap();
        assert_eq!(cfg.kind().timeout(), Duration::from_millis(2500));
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "***");
    }

    #[test]
    fn routes_must_name_capable_providers() {
        let toml = r#"
            [providers.twilio]
            kind = "twilio"
            account_sid = "AC00000000000000000000000000000000"
            auth_token = "t"
            from = "+14155550100"
            whatsapp_from = "+14155550199"
            [providers.mail]
            kind = "smtp"
            host = "127.0.0.1"
            port = 2525
            tls = "none"
            from = "Clinic <noreply@clinic.example>"
            [routes]
            sms = ["twilio", "log"]
            whatsapp = ["twilio"]
            email = ["twilio"]
        "#;
        let cfg: ProvidersConfig = serde_json::from_value(toml_to_json(toml)).unwrap();
        let err = Providers::build(&cfg).err().unwrap();
        assert_eq!(
            err,
            ProviderError::misconfigured(
                "config",
                "routes.email: provider \"twilio\" cannot send email"
            )
        );
        let cfg = ProvidersConfig {
            routes: Routes {
                email: vec!["mail".into()],
                ..cfg.routes.clone()
            },
            ..cfg
        };
        let p = Providers::build(&cfg).unwrap();
        assert_eq!(p.chain(Channel::Sms).names(), vec!["twilio", "log"]);
        let cfg = ProvidersConfig {
            routes: Routes {
                sms: vec!["nope".into()],
                ..cfg.routes.clone()
            },
            ..cfg
        };
        assert_eq!(
            Providers::build(&cfg).err().unwrap(),
            ProviderError::misconfigured("config", "routes.sms: no provider named \"nope\"")
        );
    }

    /// The config crate (figment) reads TOML; this test only needs the shape.
    fn toml_to_json(toml: &str) -> serde_json::Value {
        use figment::providers::{Format, Toml};
        figment::Figment::from(Toml::string(toml))
            .extract()
            .unwrap()
    }
}
