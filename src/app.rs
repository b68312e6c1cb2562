//! Wiring: builds the store, bus, hub, services and router from a [`Config`],
//! binds the listener, and runs until a shutdown signal.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::bus::memory::MemoryBus;
use crate::bus::redis::RedisBus;
use crate::bus::Bus;
use crate::config::Config;
use crate::domain::ids::{NodeId, TenantId};
use crate::http::{self, AppState, HttpOptions, RealtimeSettings};
use crate::hub::session::ReplayLimits;
use crate::hub::{Hub, HubConfig};
use crate::service::auth::{self, AuthSettings, Authenticator};
use crate::service::clock::{Clock, SystemClock};
use crate::service::directory::Directory;
use crate::service::escalation::Escalator;
use crate::service::events::ClinicEvents;
use crate::service::inbox::Inbox;
use crate::service::leased::{self, LeaseSettings};
use crate::service::outbound::bulk::BulkLimits;
use crate::service::outbound::callbacks::Callbacks;
use crate::service::outbound::dispatch::Dispatcher;
use crate::service::outbound::routing::ProviderRouting;
use crate::service::outbound::Outbound;
use crate::service::publish::{PublishConfig, Publisher};
use crate::service::ratelimit::RateLimits;
use crate::service::realtime::Realtime;
use crate::service::retention;
use crate::service::webhooks::deliver::WebhookWorker;
use crate::service::webhooks::Webhooks;
use crate::store::outbound::OutboundStore;
use crate::store::{self, Store};

/// Credentials of the development tenant when this start created them (shown once).
#[derive(Debug, Clone)]
pub struct DevCredentials {
    pub tenant: String,
    pub api_key: String,
    pub jwt_secret: String,
}

pub struct App {
    listener: TcpListener,
    router: axum::Router,
    direct_sse: http::DirectSse,
    limits: http::ServerLimits,
    state: AppState,
    grace: Duration,
    retention: retention::RetentionSettings,
    /// The workers of the leased queues, started by `run_until_stopped`.
    outbound_worker: Arc<leased::Worker<Dispatcher>>,
    webhook_worker: Arc<leased::Worker<WebhookWorker>>,
    escalation_worker: Arc<leased::Worker<Escalator>>,
    /// The store, for the node's background tasks (retention) and the tests' set-up;
    /// the HTTP handlers reach it only through the services (and `/readyz` its health).
    store: Arc<dyn Store>,
    pub created_dev_credentials: Option<DevCredentials>,
}

impl App {
    /// Builds the node with the bus the config names.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let bus: Arc<dyn Bus> = if config.redis_url.is_empty() {
            Arc::new(MemoryBus::standalone())
        } else {
            Arc::new(
                RedisBus::connect(&config.redis_url)
                    .await
                    .with_context(|| {
                        format!(
                            "connecting to Redis at {} (key `redis_url`)",
                            redact(&config.redis_url)
                        )
                    })?,
            )
        };
        Self::build_with_bus(config, bus).await
    }

    /// Builds the node on a given bus (tests join several nodes on one in-process network).
    pub async fn build_with_bus(config: Config, bus: Arc<dyn Bus>) -> anyhow::Result<App> {
        Self::build_with_parts(config, bus, Arc::new(SystemClock)).await
    }

    /// Builds the node on the config's bus with a given clock (tests drive
    /// retries and reminders with a `ManualClock`).
    pub async fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<App> {
        let bus: Arc<dyn Bus> = Arc::new(MemoryBus::standalone());
        anyhow::ensure!(
            config.redis_url.is_empty(),
            "build_with_clock runs on the in-process bus; leave `redis_url` empty"
        );
        Self::build_with_parts(config, bus, clock).await
    }

    /// Builds the node from its parts.
    pub async fn build_with_parts(
        config: Config,
        bus: Arc<dyn Bus>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<App> {
        let store = store::open(&config.store_options())
            .await
            .with_context(|| format!("opening database {}", redact(&config.database_url)))?;
        let created_dev_credentials = ensure_dev_tenant(store.as_ref(), &config).await?;

        // Before anything registers a metric: a handle taken before the recorder is
        // installed is a no-op forever (the hub's `tidings_connections` was).
        let metrics = crate::telemetry::metrics_handle();
        let hub = Hub::new(
            NodeId::random(),
            HubConfig {
                queue_capacity: config.hub.queue_capacity,
                queue_bytes: config.hub.queue_bytes,
                max_connections_per_user: config.hub.max_connections_per_user,
            },
            bus,
        );
        let directory = Arc::new(Directory::new(store.clone(), clock.clone()));
        let outbound_store: Arc<dyn OutboundStore> = store.clone();
        let routing = Arc::new(
            ProviderRouting::build(&config.outbound)
                .map_err(|e| anyhow::anyhow!("configuration error: {e}"))?,
        );
        let outbound_worker = leased::Worker::new(
            "outbound",
            Dispatcher::new(
                outbound_store.clone(),
                routing.clone(),
                clock.clone(),
                config.outbound.retry.policy(),
            ),
            clock.clone(),
            LeaseSettings {
                concurrency: config.outbound.concurrency,
                poll_interval: config.outbound.poll_interval(),
                claim_batch: config.outbound.claim_batch,
                lease: config.outbound.lease(),
            },
        );
        let outbound_callbacks = Arc::new(Callbacks::new(
            outbound_store.clone(),
            routing,
            clock.clone(),
            &config.outbound.public_url,
            config.outbound.webhook_max_statuses,
        ));
        let publisher = Publisher::start(
            store.clone(),
            hub.clone(),
            directory.clone(),
            PublishConfig {
                max_batch_rows: config.publish.max_batch_rows,
                queue: config.publish.queue,
            },
            clock.clone(),
        );
        let webhook_settings = config.webhooks.settings();
        let webhook_worker = leased::Worker::new(
            "webhooks",
            WebhookWorker::new(
                store.clone(),
                publisher.clone(),
                clock.clone(),
                webhook_settings.clone(),
            )
            .map_err(|e| anyhow::anyhow!("webhook sender: {e}"))?,
            clock.clone(),
            webhook_settings.queue,
        );
        let escalation_worker = leased::Worker::new(
            "escalation",
            Escalator::new(store.clone(), directory.clone(), hub.clone(), clock.clone()),
            clock.clone(),
            config.escalation.settings(),
        );
        let events_book = crate::config::events::load(&config.events)?;
        let events = Arc::new(
            ClinicEvents::new(
                store.clone(),
                hub.clone(),
                directory.clone(),
                events_book.clone(),
                clock.clone(),
            )
            .waking(outbound_worker.wake_handle()),
        );
        let state = AppState {
            events,
            auth: Arc::new(Authenticator::new(
                store.clone(),
                hub.clone(),
                AuthSettings {
                    cache_ttl: Duration::from_secs(config.auth.cache_ttl_secs),
                    max_token_ttl: Duration::from_secs(config.auth.max_token_ttl_secs),
                },
                RateLimits::new(&config.rate_limits),
                clock.clone(),
            )),
            publisher,
            inbox: Arc::new(Inbox::new(store.clone(), hub.clone(), clock.clone())),
            realtime: Arc::new(Realtime::new(
                store.clone(),
                hub.clone(),
                directory.clone(),
                ReplayLimits {
                    page: config.hub.replay_page,
                    max: config.hub.max_replay,
                },
                config.hub.replay_concurrency(),
                clock.clone(),
            )),
            directory,
            health: store.clone(),
            hub,
            metrics,
            settings: RealtimeSettings {
                ws_ping_interval: Duration::from_secs(config.hub.ws_ping_interval_secs),
                sse_heartbeat: Duration::from_secs(config.hub.sse_heartbeat_secs),
                write_timeout: Duration::from_secs(config.hub.write_timeout_secs),
                client_frames_per_sec: config.hub.client_frames_per_sec,
                client_frames_burst: config.hub.client_frames_burst,
            },
            stopping: CancellationToken::new(),
            outbound: Arc::new(
                Outbound::new(outbound_store, clock.clone(), Arc::new(events_book))
                    .waking(outbound_worker.wake_handle())
                    .bulk_limits(BulkLimits::new(
                        config.outbound.bulk_concurrency,
                        config.outbound.bulk_concurrency_per_tenant,
                        config.outbound.bulk_waiting_per_tenant,
                    )),
            ),
            webhooks: Arc::new(Webhooks::new(
                store.clone(),
                clock.clone(),
                config.is_development(),
            )),
            clock,
            outbound_callbacks,
            outbound_wake: outbound_worker.wake_handle(),
        };
        let options = HttpOptions {
            body_limit: config.body_limit_bytes,
            cors_origins: config.cors_origins.clone(),
        };
        let router = http::router(state.clone(), &options);
        let direct_sse = http::direct_sse(state.clone(), &options);
        let listener = http::bind(config.listen_addr())
            .with_context(|| format!("binding {} (key `listen`)", config.listen))?;
        Ok(App {
            listener,
            router,
            direct_sse,
            limits: server_limits(&config),
            state,
            grace: Duration::from_secs(config.shutdown.grace_secs),
            retention: config.retention.settings(),
            outbound_worker,
            webhook_worker,
            escalation_worker,
            store,
            created_dev_credentials,
        })
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.state.hub
    }

    /// Wakes this node's outbound worker (what an enqueue on this node calls).
    pub fn outbound_wake(&self) -> leased::Wake {
        self.state.outbound_wake.clone()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Serves until `shutdown` resolves, then: `/readyz` turns 503, every live
    /// connection is told to reconnect (WS 1012, SSE error event), in-flight
    /// requests get `grace` to finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stopping = self.state.stopping.clone();
        let hub = self.state.hub.clone();
        let retention = tokio::spawn(retention::run(
            self.store.clone(),
            self.state.clock.clone(),
            self.retention.clone(),
            stopping.clone(),
        ));
        let workers = [
            (
                "outbound",
                tokio::spawn(self.outbound_worker.clone().run(stopping.clone())),
            ),
            (
                "webhooks",
                tokio::spawn(self.webhook_worker.clone().run(stopping.clone())),
            ),
            (
                "escalation",
                tokio::spawn(self.escalation_worker.clone().run(stopping.clone())),
            ),
        ];
        let revocations = tokio::spawn(self.state.auth.clone().watch_revocations(stopping.clone()));
        tracing::info!(port = self.port(), node = ?hub.node(), "tidings listening");

        let signal = {
            let stopping = stopping.clone();
            let hub = hub.clone();
            async move {
                shutdown.await;
                tracing::info!("shutting down: telling clients to reconnect");
                stopping.cancel();
                hub.shutdown_all();
            }
        };
        let server = http::serve(
            self.listener,
            self.router,
            self.direct_sse,
            self.limits,
            signal,
        );
        let serving = tokio::spawn(server);
        stopping.cancelled().await;
        // Upgraded connections are not tracked by the server; wait for sessions to close.
        let deadline = tokio::time::Instant::now() + self.grace;
        while hub.connection_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        match tokio::time::timeout(self.grace, serving).await {
            Ok(joined) => joined.context("server task")?.context("server")?,
            Err(_) => tracing::warn!("in-flight requests still running after the grace period"),
        }
        // The workers stopped claiming at the signal; their jobs in flight get the grace.
        for (queue, worker) in workers {
            if tokio::time::timeout(self.grace, worker).await.is_err() {
                tracing::warn!(
                    queue,
                    "jobs still in flight after the grace period; they are claimed again after their lease"
                );
            }
        }
        retention.abort();
        revocations.abort();
        Ok(())
    }
}

/// The connection limits of `[server]`, the global cap derived from the open-file
/// limit when not set.
fn server_limits(config: &Config) -> http::ServerLimits {
    let s = &config.server;
    let max_connections = s.connection_cap(open_file_limit());
    tracing::info!(
        max_connections,
        reserved = s.reserved_connections,
        "connection limits"
    );
    http::ServerLimits {
        gate: http::GateLimits {
            max_connections,
            reserved_connections: s.reserved_connections,
            max_connections_per_ip: s.max_connections_per_ip,
        },
        trusted_proxies: http::TrustedProxies::new(s.trusted_proxy_nets()),
        request_timeout: Duration::from_secs(s.request_timeout_secs),
        header_read_timeout: Duration::from_secs(s.header_read_timeout_secs),
    }
}

/// The process's soft open-file limit (RLIMIT_NOFILE), read from /proc (Linux);
/// `None` elsewhere. Read without `unsafe` (the crate forbids it).
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Makes sure the development tenant exists; returns its credentials if this start
/// created them. Generated credentials only in development mode (loopback listen
/// address); configured ones (`dev_api_key`, `dev_jwt_secret`) always.
async fn ensure_dev_tenant(
    store: &dyn Store,
    config: &Config,
) -> anyhow::Result<Option<DevCredentials>> {
    let tenant = TenantId::parse(&config.dev_tenant)
        .map_err(|e| anyhow::anyhow!("key `dev_tenant`: {e}"))?;
    match (
        config.dev_api_key.is_empty(),
        config.dev_jwt_secret.is_empty(),
    ) {
        (false, false) => {
            store
                .upsert_tenant(
                    &tenant,
                    tenant.as_str(),
                    &config.dev_jwt_secret,
                    chrono::Utc::now(),
                )
                .await?;
            let key = &config.dev_api_key;
            store
                .insert_api_key(
                    &tenant,
                    &auth::key_prefix(key),
                    &auth::hash_key(key),
                    chrono::Utc::now(),
                )
                .await?;
            Ok(None)
        }
        (true, true) => {
            if store.tenant_exists(&tenant).await? {
                return Ok(None);
            }
            if !config.is_development() {
                // A hub others can reach never makes credentials up by itself.
                tracing::warn!(
                    listen = %config.listen,
                    "no development tenant created: the hub listens beyond loopback; \
                     create a tenant with `tidings tenant create ID --name NAME`"
                );
                return Ok(None);
            }
            let (key, secret) =
                auth::create_tenant(store, &tenant, tenant.as_str(), chrono::Utc::now())
                    .await
                    .map_err(|e| anyhow::anyhow!("creating the development tenant: {e}"))?;
            Ok(Some(DevCredentials {
                tenant: tenant.to_string(),
                api_key: key.key,
                jwt_secret: secret,
            }))
        }
        (false, true) => anyhow::bail!(
            "configuration error: key `dev_jwt_secret`: must be set when dev_api_key is"
        ),
        (true, false) => anyhow::bail!(
            "configuration error: key `dev_api_key`: must be set when dev_jwt_secret is"
        ),
    }
}

/// A database URL with its password hidden, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
