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
    pub hub: HubSection,
    pub publish: PublishSection,
    pub auth: AuthSection,
    pub retention: RetentionSection,
    pub shutdown: ShutdownSection,
    pub events: events::EventsSection,
    pub outbound: outbound::OutboundSection,
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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishSection {
    pub max_batch_rows: usize,
    pub queue: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    pub cache_ttl_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSection {
    pub max_age_days: u64,
    pub interval_secs: u64,
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
    "hub",
    "publish",
    "auth",
    "retention",
    "shutdown",
    "events",
    "outbound",
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
        if self.hub.sse_heartbeat_secs == 0 || self.hub.sse_heartbeat_secs > 15 {
            return bad("hub.sse_heartbeat_secs", "must be 1..15");
        }
        if self.hub.ws_ping_interval_secs == 0 {
            return bad("hub.ws_ping_interval_secs", "must be at least 1");
        }
        if self.publish.max_batch_rows == 0 {
            return bad("publish.max_batch_rows", "must be at least 1");
        }
        if self.retention.interval_secs == 0 {
            return bad("retention.interval_secs", "must be at least 1");
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
