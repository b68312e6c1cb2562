//! Which providers carry a tenant's messages: the running failover chains built
//! once at start from `[outbound.default]` and `[outbound.tenants.<id>]`, and the
//! webhook secrets that go with them.
//!
//! Chains (and so circuit breakers and rate limits) are per tenant: one clinic's
//! Twilio account being down or throttled says nothing about another's.

use std::collections::HashMap;

use crate::config::outbound::{OutboundSection, TenantProviders};
use crate::domain::ids::TenantId;
use crate::domain::template::Channel;
use crate::provider::config::Providers;
use crate::provider::failover::FailoverChain;
use crate::provider::Webhook;

/// One tenant's running providers and their configuration (for webhook secrets).
pub struct TenantRoute {
    pub providers: Providers,
    pub config: TenantProviders,
}

/// Every tenant's providers; tenants without a section share the node's default.
pub struct ProviderRouting {
    default: TenantRoute,
    tenants: HashMap<TenantId, TenantRoute>,
}

impl ProviderRouting {
    /// Builds every chain. An error names the key at fault
    /// (`outbound.tenants.clinic-a.routes.sms: no provider named "twilo"`).
    pub fn build(section: &OutboundSection) -> Result<Self, String> {
        let build = |prefix: &str, cfg: &TenantProviders| -> Result<TenantRoute, String> {
            let providers = Providers::build(&cfg.providers_config())
                .map_err(|e| format!("key `{prefix}`: {}", error_text(&e)))?;
            Ok(TenantRoute {
                providers,
                config: cfg.clone(),
            })
        };
        let default = build("outbound.default", &section.default)?;
        let mut tenants = HashMap::new();
        for (id, cfg) in &section.tenants {
            let tenant = TenantId::parse(id)
                .map_err(|_| format!("key `outbound.tenants.{id}`: not a valid tenant id"))?;
            tenants.insert(tenant, build(&format!("outbound.tenants.{id}"), cfg)?);
        }
        Ok(Self { default, tenants })
    }

    pub fn route(&self, tenant: &TenantId) -> &TenantRoute {
        self.tenants.get(tenant).unwrap_or(&self.default)
    }

    pub fn chain(&self, tenant: &TenantId, channel: Channel) -> &FailoverChain {
        self.route(tenant).providers.chain(channel)
    }

    /// Every distinct route (the default and each tenant's), for the WhatsApp
    /// verification handshake, which names no tenant.
    pub fn all(&self) -> impl Iterator<Item = &TenantRoute> {
        std::iter::once(&self.default).chain(self.tenants.values())
    }
}

impl TenantRoute {
    /// This tenant's secrets that may prove a callback of `webhook`'s kind.
    pub fn webhook_secrets(&self, webhook: &dyn Webhook) -> Vec<&str> {
        webhook.secrets(self.config.webhook_sources())
    }
}

/// `ProviderError::Misconfigured` messages already name the key below the section.
fn error_text(e: &crate::provider::ProviderError) -> String {
    match e {
        crate::provider::ProviderError::Misconfigured { message, .. } => message.clone(),
        other => other.to_string(),
    }
}
