//! Typed configuration: embedded defaults (config/tidings.toml) → an optional file
//! → `TIDINGS_*` environment variables. Validated once at start; an error names the key.

pub mod events;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;

pub mod outbound;

/// The defaults file, compiled in so the binary runs from any directory.
pub const DEFAULTS: &str = include_str!("../config/tidings.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    pub database_url: String,
    pub redis_url: String,
    pub dev_tenant: String,
    pub dev_api_key: String,
    pub dev_jwt_secret: String,
    pub cors_origins: Vec<String>,
    pub body_limit_bytes: usize,
    pub log_level: String,
    pub database: DatabaseConfig,
    pub server: ServerSection,
    pub hub: HubSection,
    pub publish: PublishSection,
    pub auth: AuthSection,
    pub rate_limits: RateLimitsSection,
    pub retention: RetentionSection,
    pub shutdown: ShutdownSection,
    pub events: events::EventsSection,
    pub outbound: outbound::OutboundSection,
    pub webhooks: WebhooksSection,
    pub escalation: EscalationSection,
}

/// `[webhooks]`: webhooks to clinic systems (the delivery worker and when the hub
/// disables an endpoint by itself).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksSection {
    /// Deliveries in flight at once on this node.
    pub concurrency: usize,
    /// How often an idle worker looks for due deliveries.
    pub poll_interval_ms: u64,
    /// Most deliveries claimed per look.
    pub claim_batch: u32,
    /// How long a claimed delivery belongs to this node.
    pub lease_secs: u64,
    /// How long a receiver has to answer.
    pub timeout_secs: u64,
    /// Deliveries ended `failed` in a row that disable an endpoint.
    pub disable_after_failed_deliveries: u32,
    /// Days of failing every attempt that disable an endpoint.
    pub disable_after_failing_days: u32,
    /// Whether deliveries may go to internal addresses (loopback, private, link-local).
    pub allow_internal_targets: bool,
}

impl WebhooksSection {
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("key `webhooks.{key}`: {why}")));
        if self.concurrency == 0 || self.concurrency > 10_000 {
            return bad("concurrency", "must be 1..10000");
        }
        if self.poll_interval_ms == 0 {
            return bad("poll_interval_ms", "must be at least 1");
        }
        if self.claim_batch == 0 || self.claim_batch > 10_000 {
            return bad("claim_batch", "must be 1..10000");
        }
        if self.timeout_secs == 0 || self.timeout_secs > 300 {
            return bad("timeout_secs", "must be 1..300");
        }
        // A send must end and be recorded inside its lease, or another node sends it again.
        if self.lease_secs < self.timeout_secs + 5 {
            return bad(
                "lease_secs",
                "must exceed webhooks.timeout_secs by at least 5",
            );
        }
        if self.disable_after_failed_deliveries == 0 {
            return bad("disable_after_failed_deliveries", "must be at least 1");
        }
        if self.disable_after_failing_days == 0 {
            return bad("disable_after_failing_days", "must be at least 1");
        }
        Ok(())
    }

    pub fn settings(&self) -> crate::service::webhooks::deliver::DeliverySettings {
        crate::service::webhooks::deliver::DeliverySettings {
            queue: crate::service::leased::LeaseSettings {
                concurrency: self.concurrency,
                poll_interval: Duration::from_millis(self.poll_interval_ms),
                claim_batch: self.claim_batch,
                lease: Duration::from_secs(self.lease_secs),
            },
            timeout: Duration::from_secs(self.timeout_secs),
            policy: crate::domain::webhook::DisablePolicy {
                after_failed_deliveries: self.disable_after_failed_deliveries,
                after_failing_for: Duration::from_secs(
                    u64::from(self.disable_after_failing_days) * 86_400,
                ),
            },
            allow_internal: self.allow_internal_targets,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
    pub statement_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubSection {
    pub queue_capacity: usize,
    pub ws_ping_interval_secs: u64,
    pub sse_heartbeat_secs: u64,
    pub write_timeout_secs: u64,
    pub max_replay: u32,
    /// Connections one user may hold on this node; more are refused (WS 4029, SSE 429).
    pub max_connections_per_user: usize,
    /// Bytes queued for one connection (live queue + replay page) before it is a slow consumer.
    pub queue_bytes: usize,
    /// Notifications read from the store per replay page (the next page is read when
    /// the previous one has been written).
    pub replay_page: u32,
    /// Replay pages read and encoded at once on this node; 0: one per core the process
    /// may run on. See [`HubSection::replay_concurrency`].
    pub replay_concurrency: usize,
    /// Client frames (mark_read, mark_all_read, ping) per second per connection.
    pub client_frames_per_sec: u32,
    /// Client frames a connection may send at once above the rate.
    pub client_frames_burst: u32,
}

impl HubSection {
    /// `replay_concurrency`, with 0 read as the cores this process may run on (its CPU
    /// affinity, so a hub pinned to one core replays one page at a time).
    pub fn replay_concurrency(&self) -> usize {
        match self.replay_concurrency {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }
}

/// Connection-level limits of the HTTP server (src/http/serve.rs).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Open connections (any kind) on this node; 0: derived from the process's
    /// open-file limit (see [`ServerSection::connection_cap`]).
    pub max_connections: usize,
    /// Connections kept above `max_connections` for `/healthz`, `/readyz` and `/metrics` only.
    pub reserved_connections: usize,
    /// Open connections per client address (the resolved [`crate::http::client_ip::ClientIp`]).
    pub max_connections_per_ip: usize,
    /// Proxies (CIDRs) whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<String>,
    /// A request body, from when its handler starts reading it.
    pub request_timeout_secs: u64,
    /// Time a connection has to send a complete request head.
    pub header_read_timeout_secs: u64,
}

impl ServerSection {
    /// The global connection cap: the configured one, or, when 0, what fits under
    /// the open-file limit `nofile` with room for the reserve, the database pool,
    /// Redis, log files and the listener (a tenth of the limit, at least 64).
    pub fn connection_cap(&self, nofile: Option<u64>) -> usize {
        if self.max_connections > 0 {
            return self.max_connections;
        }
        let nofile = nofile.unwrap_or(1024) as usize;
        let headroom = (nofile / 10).max(64) + self.reserved_connections;
        nofile.saturating_sub(headroom).max(1)
    }

    /// The parsed `trusted_proxies` (validated at load).
    pub fn trusted_proxy_nets(&self) -> Vec<ipnet::IpNet> {
        self.trusted_proxies
            .iter()
            .filter_map(|s| parse_cidr(s))
            .collect()
    }
}

/// A CIDR, or a bare address (a /32 or /128).
fn parse_cidr(s: &str) -> Option<ipnet::IpNet> {
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishSection {
    pub max_batch_rows: usize,
    pub queue: usize,
}

/// The escalation worker's pace (one worker per node; steps are shared through the store).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationSection {
    /// How often the worker looks for due steps: how late a step may fire.
    pub poll_interval_ms: u64,
    /// How long a claimed step belongs to this node before another may take it.
    pub lease_secs: u64,
    /// Most steps claimed per look.
    pub claim_batch: u32,
}

impl EscalationSection {
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("key `escalation.{key}`: {why}")));
        if self.poll_interval_ms == 0 {
            return bad("poll_interval_ms", "must be at least 1");
        }
        if self.lease_secs == 0 {
            return bad("lease_secs", "must be at least 1");
        }
        if self.claim_batch == 0 {
            return bad("claim_batch", "must be at least 1");
        }
        Ok(())
    }

    /// The worker fires the steps of one claim concurrently (each is one transaction).
    pub fn settings(&self) -> crate::service::leased::LeaseSettings {
        crate::service::leased::LeaseSettings {
            concurrency: self.claim_batch as usize,
            poll_interval: Duration::from_millis(self.poll_interval_ms),
            claim_batch: self.claim_batch,
            lease: Duration::from_secs(self.lease_secs),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    pub cache_ttl_secs: u64,
    /// Longest a user token may live (`exp - iat`, and `exp - now`), checked on verify.
    pub max_token_ttl_secs: u64,
}

/// Request quotas (token buckets). `*_per_sec = 0` turns that limit off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsSection {
    pub per_key_per_sec: u32,
    pub per_key_burst: u32,
    pub per_tenant_per_sec: u32,
    pub per_tenant_burst: u32,
    pub failed_auth_per_min: u32,
    pub failed_auth_burst: u32,
    /// Most keys (API keys, tenants, client addresses) each limiter tracks.
    pub max_tracked_keys: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSection {
    pub max_age_days: u64,
    pub interval_secs: u64,
    /// Days patient data (message texts and addresses, event payloads) is kept before
    /// the retention job redacts it; 0 keeps it.
    pub phi_days: u32,
    /// Messages (and clinic events) redacted per transaction.
    pub phi_batch_rows: u32,
    /// Per-tenant overrides: `[retention.tenants.<id>] phi_days = 30`.
    #[serde(default)]
    pub tenants: std::collections::BTreeMap<String, TenantRetention>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantRetention {
    pub phi_days: u32,
}

/// A century: more is a typo, and `0` already means "keep".
const MAX_PHI_DAYS: u32 = 36_500;

impl RetentionSection {
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: String, why: &str| Err(ConfigError(format!("key `{key}`: {why}")));
        if self.interval_secs == 0 {
            return bad("retention.interval_secs".into(), "must be at least 1");
        }
        if self.phi_days > MAX_PHI_DAYS {
            return bad("retention.phi_days".into(), "must be 0 (keep) to 36500");
        }
        if !(1..=10_000).contains(&self.phi_batch_rows) {
            return bad("retention.phi_batch_rows".into(), "must be 1..10000");
        }
        for (tenant, t) in &self.tenants {
            if crate::domain::ids::TenantId::parse(tenant).is_err() {
                return bad(
                    format!("retention.tenants.{tenant}"),
                    "not a valid tenant id",
                );
            }
            if t.phi_days > MAX_PHI_DAYS {
                return bad(
                    format!("retention.tenants.{tenant}.phi_days"),
                    "must be 0 (keep) to 36500",
                );
            }
        }
        Ok(())
    }

    /// The job's settings (validated at load).
    pub fn settings(&self) -> crate::service::retention::RetentionSettings {
        let tenants = self
            .tenants
            .iter()
            .filter_map(|(id, t)| Some((crate::domain::ids::TenantId::parse(id).ok()?, t.phi_days)))
            .collect();
        crate::service::retention::RetentionSettings {
            notifications_max_age: Duration::from_secs(self.max_age_days * 86_400),
            every: Duration::from_secs(self.interval_secs),
            phi: crate::service::retention::PhiRetention {
                default_days: self.phi_days,
                tenants,
            },
            phi_batch: self.phi_batch_rows,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSection {
    pub grace_secs: u64,
}

/// A configuration error, naming the key at fault.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

/// Top-level keys (and sections) that environment variables may set; other
/// `TIDINGS_*` variables belong to scripts and are ignored.
const ENV_KEYS: &[&str] = &[
    "listen",
    "database_url",
    "redis_url",
    "dev_tenant",
    "dev_api_key",
    "dev_jwt_secret",
    "cors_origins",
    "body_limit_bytes",
    "log_level",
    "database",
    "server",
    "hub",
    "publish",
    "auth",
    "rate_limits",
    "retention",
    "shutdown",
    "events",
    "outbound",
    "webhooks",
    "escalation",
];

impl Config {
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Toml::string(DEFAULTS));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file(path));
        }
        // The filter sees the variable name without the prefix, before `__` is split.
        let env = Env::prefixed("TIDINGS_")
            .filter(|k| {
                let k = k.as_str().to_ascii_lowercase();
                ENV_KEYS
                    .iter()
                    .any(|top| k == *top || k.starts_with(&format!("{top}__")))
            })
            .split("__");
        fig = fig.merge(env);
        let config: Config = fig.extract().map_err(|e| {
            let key = e.path.join(".");
            let msg = e.to_string();
            ConfigError(if key.is_empty() {
                msg
            } else {
                format!("key `{key}`: {msg}")
            })
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("key `{key}`: {why}")));
        if self.listen.parse::<SocketAddr>().is_err() {
            return bad(
                "listen",
                "must be host:port with a numeric host, e.g. 127.0.0.1:8080",
            );
        }
        let db = self.database_url.as_str();
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres:")
            || db.starts_with("postgresql:"))
        {
            return bad("database_url", "must start with sqlite:// or postgres://");
        }
        let redis_schemes = [
            "redis://",
            "rediss://",
            "redis-cluster://",
            "rediss-cluster://",
        ];
        if !(self.redis_url.is_empty()
            || redis_schemes.iter().any(|s| self.redis_url.starts_with(s)))
        {
            return bad(
                "redis_url",
                "must be empty or start with redis://, rediss:// or redis-cluster://",
            );
        }
        if crate::domain::ids::TenantId::parse(&self.dev_tenant).is_err() {
            return bad(
                "dev_tenant",
                "must be a valid tenant id (letters, digits, - _ . @ :)",
            );
        }
        if !self.dev_api_key.is_empty() && self.dev_api_key.len() < 16 {
            return bad("dev_api_key", "must be at least 16 characters");
        }
        if !self.dev_jwt_secret.is_empty() && self.dev_jwt_secret.len() < 16 {
            return bad("dev_jwt_secret", "must be at least 16 characters");
        }
        if self.body_limit_bytes < 1024 {
            return bad("body_limit_bytes", "must be at least 1024");
        }
        if self.database.max_connections == 0 {
            return bad("database.max_connections", "must be at least 1");
        }
        if self.hub.queue_capacity == 0 {
            return bad("hub.queue_capacity", "must be at least 1");
        }
        self.validate_limits()?;
        if self.hub.sse_heartbeat_secs == 0 || self.hub.sse_heartbeat_secs > 15 {
            return bad("hub.sse_heartbeat_secs", "must be 1..15");
        }
        if self.hub.ws_ping_interval_secs == 0 {
            return bad("hub.ws_ping_interval_secs", "must be at least 1");
        }
        if self.publish.max_batch_rows == 0 {
            return bad("publish.max_batch_rows", "must be at least 1");
        }
        if self.auth.max_token_ttl_secs < 60 {
            return bad("auth.max_token_ttl_secs", "must be at least 60");
        }
        self.rate_limits.validate()?;
        self.retention.validate()?;
        self.escalation.validate()?;
        // Rules and texts are read and validated here so a bad rule stops the start
        // like any other configuration error (exit 2), naming the rule.
        events::load(&self.events)?;
        for origin in &self.cors_origins {
            if axum::http::HeaderValue::from_str(origin).is_err()
                || !(origin.starts_with("http://") || origin.starts_with("https://"))
            {
                return bad("cors_origins", "each origin must be http(s)://host[:port]");
            }
        }
        self.outbound.validate(self.is_development())?;
        self.webhooks.validate()?;
        Ok(())
    }

    /// The connection limits of `[server]` and `[hub]`: each must be at least 1.
    fn validate_limits(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        let h = &self.hub;
        let at_least_one = [
            (
                "server.max_connections_per_ip",
                s.max_connections_per_ip as u64,
            ),
            ("server.request_timeout_secs", s.request_timeout_secs),
            (
                "server.header_read_timeout_secs",
                s.header_read_timeout_secs,
            ),
            (
                "hub.max_connections_per_user",
                h.max_connections_per_user as u64,
            ),
            ("hub.replay_page", u64::from(h.replay_page)),
            (
                "hub.client_frames_per_sec",
                u64::from(h.client_frames_per_sec),
            ),
            ("hub.client_frames_burst", u64::from(h.client_frames_burst)),
        ];
        if let Some((key, _)) = at_least_one.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError(format!("key `{key}`: must be at least 1")));
        }
        if h.queue_bytes < 64 * 1024 {
            return Err(ConfigError(
                "key `hub.queue_bytes`: must be at least 65536 (one largest frame)".into(),
            ));
        }
        if let Some(bad) = s.trusted_proxies.iter().find(|p| parse_cidr(p).is_none()) {
            return Err(ConfigError(format!(
                "key `server.trusted_proxies`: `{bad}` is not a CIDR (10.0.0.0/8) or an address"
            )));
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.listen.parse().expect("validated at load")
    }

    /// Development mode: the hub listens on a loopback address only, so nobody but
    /// this machine can reach it. Conveniences that would be unsafe on a network
    /// (a generated tenant and key, the `log` provider) are allowed only here.
    pub fn is_development(&self) -> bool {
        self.listen_addr().ip().is_loopback()
    }

    pub fn store_options(&self) -> crate::store::StoreOptions {
        crate::store::StoreOptions {
            url: self.database_url.clone(),
            max_connections: self.database.max_connections,
            acquire_timeout: Duration::from_millis(self.database.acquire_timeout_ms),
            statement_timeout: Duration::from_millis(self.database.statement_timeout_ms),
        }
    }
}

impl RateLimitsSection {
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str| {
            Err(ConfigError(format!(
                "key `rate_limits.{key}`: must be at least 1 when its rate is set"
            )))
        };
        if self.per_key_per_sec > 0 && self.per_key_burst == 0 {
            return bad("per_key_burst");
        }
        if self.per_tenant_per_sec > 0 && self.per_tenant_burst == 0 {
            return bad("per_tenant_burst");
        }
        if self.failed_auth_per_min > 0 && self.failed_auth_burst == 0 {
            return bad("failed_auth_burst");
        }
        if self.max_tracked_keys < 100 {
            return Err(ConfigError(
                "key `rate_limits.max_tracked_keys`: must be at least 100".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phi_retention_keys_are_validated_and_named() {
        let c = Config::load(None).expect("defaults");
        assert_eq!(
            (c.retention.phi_days, c.retention.phi_batch_rows),
            (90, 500)
        );
        let mut bad = c.clone();
        bad.retention.phi_batch_rows = 0;
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("retention.phi_batch_rows"), "{e}");
        let mut bad = c.clone();
        bad.retention.phi_days = 40_000;
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("retention.phi_days"));
        let mut bad = c.clone();
        bad.retention
            .tenants
            .insert("no spaces".into(), TenantRetention { phi_days: 7 });
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("retention.tenants.no spaces"), "{e}");
        let mut ok = c;
        ok.retention
            .tenants
            .insert("clinic-a".into(), TenantRetention { phi_days: 0 });
        ok.validate().expect("0 keeps a tenant's data");
        let settings = ok.retention.settings();
        assert_eq!(settings.phi.default_days, 90);
        assert_eq!(settings.phi.tenants.len(), 1);
    }

    #[test]
    fn webhook_keys_are_validated_and_named() {
        let c = Config::load(None).expect("defaults");
        assert!(
            !c.webhooks.allow_internal_targets,
            "the SSRF guard is on by default"
        );
        let s = c.webhooks.settings();
        assert_eq!(s.policy.after_failed_deliveries, 20);
        assert_eq!(s.policy.after_failing_for, Duration::from_secs(5 * 86_400));
        let mut bad = c.clone();
        bad.webhooks.lease_secs = bad.webhooks.timeout_secs + 4;
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("webhooks.lease_secs"), "{e}");
        let mut bad = c.clone();
        bad.webhooks.disable_after_failed_deliveries = 0;
        let e = bad.validate().unwrap_err().to_string();
        assert!(
            e.contains("webhooks.disable_after_failed_deliveries"),
            "{e}"
        );
        let mut bad = c;
        bad.webhooks.timeout_secs = 0;
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("webhooks.timeout_secs"), "{e}");
    }

    #[test]
    fn development_mode_is_loopback_only() {
        let mut c = Config::load(None).expect("defaults");
        assert!(c.is_development(), "the default listens on 127.0.0.1");
        c.listen = "[::1]:8080".into();
        assert!(c.is_development());
        c.listen = "0.0.0.0:8080".into();
        assert!(!c.is_development());
        c.listen = "10.0.0.5:8080".into();
        assert!(!c.is_development());
    }

    #[test]
    fn the_derived_connection_cap_stays_below_the_open_file_limit() {
        let mut s = Config::load(None).expect("defaults").server;
        s.max_connections = 0;
        s.reserved_connections = 32;
        // 20,000 fds (the review's limit): 2,000 + 32 kept for everything else.
        assert_eq!(s.connection_cap(Some(20_000)), 17_968);
        assert_eq!(s.connection_cap(Some(1024)), 1024 - 102 - 32);
        s.max_connections = 50;
        assert_eq!(s.connection_cap(Some(20_000)), 50);
    }

    #[test]
    fn trusted_proxies_must_be_cidrs() {
        let mut c = Config::load(None).expect("defaults");
        c.server.trusted_proxies = vec!["10.0.0.0/8".into(), "::1".into()];
        assert!(c.validate().is_ok());
        assert_eq!(c.server.trusted_proxy_nets().len(), 2);
        c.server.trusted_proxies.push("not-a-net".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("server.trusted_proxies"), "{e}");
    }
}
