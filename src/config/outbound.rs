//! The `[outbound]` section: the queue worker's pace, the retry schedule, the
//! node's providers and each tenant's own providers (credentials, base URLs,
//! timeouts, rate limits, failover order), and the webhook settings.
//!
//! A tenant with an `[outbound.tenants.<tenant_id>]` section uses only what that
//! section says (no merge with the node's `[outbound.default]`): a clinic's
//! messages never go out through another clinic's account by accident.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::domain::ids::TenantId;
use crate::domain::message::RetryPolicy;
use crate::provider::breaker::BreakerConfig;
pub use crate::provider::config::WebhookSecrets;
use crate::provider::config::{ProviderConfig, ProvidersConfig, Routes, WebhookSources};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundSection {
    /// This hub's public base URL as providers reach it (`https://hub.clinic.example`),
    /// behind any proxy. Twilio signs the exact URL it called, so the webhook check
    /// rebuilds it from this, not from the request's Host header. Empty: the request's
    /// own scheme-less `http://Host` is used (development only).
    #[serde(default)]
    pub public_url: String,
    /// Provider calls in flight at once on this node.
    pub concurrency: usize,
    /// How often an idle worker looks for due messages (a fresh enqueue on this
    /// node wakes it at once).
    pub poll_interval_ms: u64,
    /// Most messages claimed per look.
    pub claim_batch: u32,
    /// How long a claimed message belongs to this node; a node that dies holding it
    /// loses it to another node after this.
    pub lease_secs: u64,
    /// The `log` provider writes messages nowhere (and marks them `sent`): allowed
    /// outside development (a non-loopback `listen`) only when this says so.
    pub allow_log_provider: bool,
    /// Most status updates one WhatsApp webhook body may carry (413 beyond): a
    /// bound on the lookups a single signed request causes.
    pub webhook_max_statuses: usize,
    /// Bulk sends writing at once on this node. On SQLite a bulk holds the single
    /// writer while it writes, so other tenants' publishes wait behind at most
    /// this many bulks' chunks.
    pub bulk_concurrency: usize,
    /// Bulk sends of one tenant writing at once; the tenant's others wait their turn.
    pub bulk_concurrency_per_tenant: usize,
    /// Bulk sends of one tenant waiting for a turn (taken before the body is read);
    /// more are refused with 429.
    pub bulk_waiting_per_tenant: usize,
    pub retry: RetrySection,
    /// The node's providers, used by every tenant without its own section.
    #[serde(default)]
    pub default: TenantProviders,
    /// Per-tenant providers, by tenant id.
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantProviders>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySection {
    /// Delay before the first retry of a transient failure.
    pub base_delay_secs: u64,
    /// Each further retry waits this many times longer.
    pub multiplier: u32,
    /// Automatic retries per provider; then failover to the next provider, or `failed`.
    pub max_retries: u32,
    /// Cap on one delay (Retry-After included).
    pub max_delay_secs: u64,
    /// How long a send with an unknown outcome waits for the status callback
    /// before it is retried (docs/OUTBOUND.md, "The Twilio timeout decision").
    pub unknown_outcome_wait_secs: u64,
}

/// One tenant's (or the node's) providers: the `provider::config::ProvidersConfig`
/// shape plus the webhook secrets that are not part of a provider's own settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantProviders {
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    #[serde(default)]
    pub routes: Routes,
    #[serde(default)]
    pub breaker: BreakerConfig,
    #[serde(default)]
    pub webhooks: WebhookSecrets,
}

impl TenantProviders {
    /// Where this section's webhook secrets live (each kind's webhook picks its own).
    pub fn webhook_sources(&self) -> WebhookSources<'_> {
        WebhookSources {
            providers: &self.providers,
            webhooks: &self.webhooks,
        }
    }

    pub fn providers_config(&self) -> ProvidersConfig {
        ProvidersConfig {
            providers: self.providers.clone(),
            routes: self.routes.clone(),
            breaker: self.breaker,
        }
    }
}

impl TenantProviders {
    /// Whether the provider `name` of this section is a `log` provider (the
    /// built-in one exists unless a provider of that name replaces it).
    fn is_log_provider(&self, name: &str) -> bool {
        match self.providers.get(name) {
            Some(p) => matches!(p, ProviderConfig::Log),
            None => name == "log",
        }
    }
}

impl RetrySection {
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            base_delay: Duration::from_secs(self.base_delay_secs),
            multiplier: self.multiplier,
            max_retries: self.max_retries,
            max_delay: Duration::from_secs(self.max_delay_secs),
            unknown_outcome_wait: Duration::from_secs(self.unknown_outcome_wait_secs),
        }
    }
}

/// How much longer than a provider's timeout a lease must be: time to claim, to wait
/// for the provider's rate limit, and to record the outcome.
const LEASE_MARGIN_MS: u64 = 5_000;

impl OutboundSection {
    /// `development`: [`super::Config::is_development`].
    pub(super) fn validate(&self, development: bool) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("key `outbound.{key}`: {why}")));
        if !development && !self.allow_log_provider {
            if let Some(route) = self.log_provider_route() {
                return Err(ConfigError(format!(
                    "key `outbound.allow_log_provider`: {route} uses the `log` provider, which \
                     delivers nothing; outside development (a loopback `listen`) configure a \
                     real provider or set outbound.allow_log_provider = true"
                )));
            }
        }
        if self.webhook_max_statuses == 0 || self.webhook_max_statuses > 10_000 {
            return bad("webhook_max_statuses", "must be 1..10000");
        }
        if self.bulk_concurrency == 0 || self.bulk_concurrency > 1_000 {
            return bad("bulk_concurrency", "must be 1..1000");
        }
        if self.bulk_concurrency_per_tenant == 0
            || self.bulk_concurrency_per_tenant > self.bulk_concurrency
        {
            return bad(
                "bulk_concurrency_per_tenant",
                "must be 1..outbound.bulk_concurrency",
            );
        }
        if self.bulk_waiting_per_tenant > 1_000 {
            return bad("bulk_waiting_per_tenant", "must be 0..1000");
        }
        if !(self.public_url.is_empty()
            || self.public_url.starts_with("http://")
            || self.public_url.starts_with("https://"))
        {
            return bad(
                "public_url",
                "must be empty or http(s)://host[:port][/prefix]",
            );
        }
        if self.concurrency == 0 || self.concurrency > 10_000 {
            return bad("concurrency", "must be 1..10000");
        }
        if self.poll_interval_ms == 0 {
            return bad("poll_interval_ms", "must be at least 1");
        }
        if self.claim_batch == 0 || self.claim_batch > 10_000 {
            return bad("claim_batch", "must be 1..10000");
        }
        if self.lease_secs == 0 {
            return bad("lease_secs", "must be at least 1");
        }
        let r = &self.retry;
        if r.base_delay_secs == 0 {
            return bad("retry.base_delay_secs", "must be at least 1");
        }
        if r.multiplier == 0 {
            return bad("retry.multiplier", "must be at least 1");
        }
        if r.max_delay_secs < r.base_delay_secs {
            return bad(
                "retry.max_delay_secs",
                "must be at least retry.base_delay_secs",
            );
        }
        if r.unknown_outcome_wait_secs == 0 {
            return bad("retry.unknown_outcome_wait_secs", "must be at least 1");
        }
        // A send must end (provider timeout) and be recorded well inside its lease:
        // a lease that runs out mid-send lets a worker claim the message again and
        // send it a second time.
        for (section, tenant) in self.sections() {
            for (name, provider) in &tenant.providers {
                let timeout_ms = provider.kind().timeout().as_millis() as u64;
                if self.lease_secs.saturating_mul(1000) < timeout_ms.saturating_add(LEASE_MARGIN_MS)
                {
                    return Err(ConfigError(format!(
                        "key `outbound.lease_secs`: must exceed outbound.{section}.providers.{name}.timeout_ms ({timeout_ms} ms) by at least {} s",
                        LEASE_MARGIN_MS / 1000
                    )));
                }
            }
        }
        for id in self.tenants.keys() {
            if TenantId::parse(id).is_err() {
                return Err(ConfigError(format!(
                    "key `outbound.tenants.{id}`: not a valid tenant id"
                )));
            }
        }
        Ok(())
    }

    /// The first route (`outbound.default.routes.sms`) that names a `log` provider:
    /// the built-in `log`, or any provider of `kind = "log"`.
    fn log_provider_route(&self) -> Option<String> {
        self.sections().find_map(|(section, tenant)| {
            let r = &tenant.routes;
            [
                ("sms", &r.sms),
                ("whatsapp", &r.whatsapp),
                ("email", &r.email),
            ]
            .into_iter()
            .find(|(_, names)| names.iter().any(|n| tenant.is_log_provider(n)))
            .map(|(channel, _)| format!("outbound.{section}.routes.{channel}"))
        })
    }

    /// `("default", …)` then `("tenants.<id>", …)`: every provider section with the
    /// key prefix its errors name.
    fn sections(&self) -> impl Iterator<Item = (String, &TenantProviders)> {
        std::iter::once(("default".to_owned(), &self.default)).chain(
            self.tenants
                .iter()
                .map(|(id, t)| (format!("tenants.{id}"), t)),
        )
    }

    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use figment::providers::{Format, Toml};
    use figment::Figment;

    use crate::config::{Config, DEFAULTS};
    use crate::domain::message::RetryPolicy;
    use crate::domain::template::Channel;
    use crate::service::outbound::routing::ProviderRouting;

    fn load(extra: &str) -> Result<Config, String> {
        let config: Config = Figment::from(Toml::string(DEFAULTS))
            .merge(Toml::string(extra))
            .extract()
            .map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn defaults_are_the_documented_ones_and_log_everywhere() {
        let c = load("").unwrap();
        let o = &c.outbound;
        assert!(!o.allow_log_provider);
        assert_eq!(
            (
                o.webhook_max_statuses,
                o.bulk_concurrency,
                o.bulk_concurrency_per_tenant
            ),
            (1000, 2, 1)
        );
        assert_eq!(
            (
                o.concurrency,
                o.poll_interval_ms,
                o.claim_batch,
                o.lease_secs
            ),
            (16, 1000, 64, 60)
        );
        assert_eq!(o.retry.policy(), RetryPolicy::default());
        assert!(o.tenants.is_empty());
        let routing = ProviderRouting::build(o).unwrap();
        let any = crate::domain::ids::TenantId::parse("any").unwrap();
        for ch in Channel::FALLBACK_ORDER {
            assert_eq!(routing.chain(&any, ch).names(), vec!["log"]);
        }
    }

    const TENANT: &str = r#"
        [outbound.tenants.clinic-a.providers.twilio]
        kind = "twilio"
        account_sid = "AC0123456789abcdef0123456789abcdef"
        auth_token = "tok-a"
        from = "+14155550100"
        [outbound.tenants.clinic-a.providers.unifonic]
        kind = "unifonic"
        app_sid = "sid"
        sender_id = "CLINIC"
        [outbound.tenants.clinic-a.routes]
        sms = ["twilio", "unifonic"]
        whatsapp = ["log"]
        email = ["log"]
        [outbound.tenants.clinic-a.webhooks]
        unifonic_token = "u-token"
    "#;

    #[test]
    fn a_tenant_section_gets_its_own_chains_and_secrets() {
        let c = load(TENANT).unwrap();
        let routing = ProviderRouting::build(&c.outbound).unwrap();
        let a = crate::domain::ids::TenantId::parse("clinic-a").unwrap();
        let b = crate::domain::ids::TenantId::parse("clinic-b").unwrap();
        assert_eq!(
            routing.chain(&a, Channel::Sms).names(),
            vec!["twilio", "unifonic"]
        );
        assert_eq!(routing.chain(&b, Channel::Sms).names(), vec!["log"]);
        let twilio = crate::provider::config::webhook("twilio").unwrap();
        let unifonic = crate::provider::config::webhook("unifonic").unwrap();
        assert_eq!(routing.route(&a).webhook_secrets(twilio), vec!["tok-a"]);
        assert_eq!(routing.route(&a).webhook_secrets(unifonic), vec!["u-token"]);
        assert!(routing.route(&b).webhook_secrets(twilio).is_empty());
    }

    #[test]
    fn the_log_provider_needs_development_or_an_explicit_yes() {
        let err = load("listen = \"0.0.0.0:8080\"").unwrap_err();
        assert!(
            err.starts_with(
                "configuration error: key `outbound.allow_log_provider`: outbound.default.routes.sms uses the `log` provider"
            ),
            "{err}"
        );
        assert!(load("listen = \"0.0.0.0:8080\"\n[outbound]\nallow_log_provider = true").is_ok());
        assert!(load("listen = \"127.0.0.1:8080\"").is_ok());
        // A tenant section routing email to a `kind = "log"` provider is named too.
        let real = r#"
            listen = "10.0.0.5:8080"
            [outbound.default.providers.mail]
            kind = "smtp"
            host = "127.0.0.1"
            port = 2525
            tls = "none"
            from = "Clinic <noreply@clinic.example>"
            [outbound.default.routes]
            sms = ["mail"]
            whatsapp = ["mail"]
            email = ["mail"]
        "#;
        let with_tenant = format!(
            "{real}\n[outbound.tenants.clinic-a.providers.quiet]\nkind = \"log\"\n[outbound.tenants.clinic-a.routes]\nsms = [\"quiet\"]\nwhatsapp = [\"quiet\"]\nemail = [\"quiet\"]"
        );
        let err = load(&with_tenant).unwrap_err();
        assert!(
            err.contains("outbound.tenants.clinic-a.routes.sms uses the `log` provider"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_key() {
        let err = load("[outbound]\nconcurrency = 0").unwrap_err();
        assert_eq!(
            err,
            "configuration error: key `outbound.concurrency`: must be 1..10000"
        );
        let err = load("[outbound.retry]\nmultiplier = 0").unwrap_err();
        assert!(err.contains("key `outbound.retry.multiplier`"), "{err}");
        let err = load(&TENANT.replace(r#"sms = ["twilio", "unifonic"]"#, r#"sms = ["twilo"]"#))
            .map(|c| ProviderRouting::build(&c.outbound).err())
            .unwrap()
            .unwrap();
        assert_eq!(
            err,
            "key `outbound.tenants.clinic-a`: routes.sms: no provider named \"twilo\""
        );
        let err = load(&format!("{TENANT}\n[outbound]\nlease_secs = 14")).unwrap_err();
        assert_eq!(
            err,
            "configuration error: key `outbound.lease_secs`: must exceed outbound.tenants.clinic-a.providers.twilio.timeout_ms (10000 ms) by at least 5 s"
        );
        assert!(load(&format!("{TENANT}\n[outbound]\nlease_secs = 15")).is_ok());
        let err = load("[outbound.tenants.\"bad tenant\"]").unwrap_err();
        assert!(err.contains("key `outbound.tenants.bad tenant`"), "{err}");
        let err = load("[outbound.tenants.clinic-a.routes]\nsms = []\nwhatsapp = [\"log\"]\nemail = [\"log\"]\n[outbound]\npublic_url = \"hub.example\"").unwrap_err();
        assert!(err.contains("key `outbound.public_url`"), "{err}");
    }
}
