//! The scenarios, one file each, and what they share: the run [`Context`], fleet specs, the
//! wait for late deliveries, the connect-phase table.

pub(crate) mod burst;
pub(crate) mod hostile;
pub(crate) mod idle;
pub(crate) mod outbound;
pub(crate) mod steady;
pub(crate) mod storm;

use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};
use tokio::time::{sleep, Instant};

use crate::cli::{FleetArgs, HubArgs};
use crate::fleet::{Fleet, FleetSpec};
use crate::procfs::{Memory, WatchedProcess};
use crate::report::{mib, ms, Table};
use crate::rest::RestClient;
use crate::stats::{unix_us, ConnectReport, DeliveryReport, Latency};
use crate::tokens::{Credentials, TokenMode};

/// What every scenario needs about the hub and the run.
pub(crate) struct Context {
    pub(crate) url: String,
    pub(crate) tenant: String,
    pub(crate) credentials: Credentials,
    pub(crate) token_mode: TokenMode,
    pub(crate) token_ttl: u64,
    /// The hub process, when `--hub-pid` was given.
    pub(crate) hub: Option<WatchedProcess>,
    pub(crate) threads: Option<usize>,
    /// The run's hard limit; worker processes get a little more and end by themselves.
    pub(crate) hard_timeout: Duration,
}

impl Context {
    pub(crate) fn new(hub: &HubArgs, hard_timeout: Duration) -> Result<Self> {
        let credentials = Credentials {
            api_key: hub.api_key.clone(),
            jwt_secret: hub.jwt_secret.clone(),
        };
        Ok(Self {
            url: hub.url.trim_end_matches('/').to_string(),
            tenant: hub.tenant.clone(),
            token_mode: hub.tokens.resolve(&credentials)?,
            credentials,
            token_ttl: hub.token_ttl,
            hub: hub.hub_pid.map(WatchedProcess::new).transpose()?,
            threads: hub.threads,
            hard_timeout,
        })
    }

    pub(crate) fn fleet_spec(
        &self,
        fleet: &FleetArgs,
        users: u32,
        conns_per_user: u32,
        run_tag: &str,
    ) -> FleetSpec {
        FleetSpec {
            url: self.url.clone(),
            tenant: self.tenant.clone(),
            transport: fleet.transport,
            user_prefix: fleet.user_prefix.clone(),
            role: fleet.role.clone(),
            user_start: 0,
            user_end: users,
            conns_per_user,
            source_ips: fleet.source_ips.clone(),
            connect_concurrency: fleet.connect_concurrency,
            connect_timeout_ms: fleet.connect_timeout * 1000,
            ws_read_buffer: fleet.ws_read_buffer,
            token_mode: self.token_mode,
            token_ttl_seconds: self.token_ttl,
            run_tag: run_tag.to_string(),
            hard_timeout_seconds: self.hard_timeout.as_secs() + 30,
        }
    }

    pub(crate) fn rest(&self, pool: usize, timeout: Duration) -> Result<RestClient> {
        RestClient::new(
            &self.url,
            self.credentials.api_key.as_deref(),
            pool,
            timeout,
        )
    }

    /// The hub's CPU seconds so far, if it is watched and readable.
    pub(crate) fn hub_cpu(&self) -> Option<f64> {
        self.hub.as_ref().and_then(|hub| hub.cpu_seconds().ok())
    }

    pub(crate) fn hub_memory(&self) -> Option<Memory> {
        self.hub.as_ref().and_then(|hub| hub.memory().ok())
    }

    /// A warning when the hub cannot hold `connections` sockets under its open-files limit.
    pub(crate) fn hub_capacity_note(&self, connections: u64) -> Option<String> {
        let limit = self.hub.as_ref()?.open_files_limit()?;
        (connections + 50 > limit).then(|| {
            format!(
                "the hub's open-files limit is {limit}: {connections} connections plus its own \
                 files will not fit (expect accept errors)"
            )
        })
    }
}

/// A tag unique to this run, put in every notification it publishes.
pub(crate) fn run_tag() -> String {
    format!("r{:x}", unix_us())
}

/// Polls the fleet until `expected` unique deliveries of `step` arrived, or `grace` passed.
pub(crate) async fn wait_for_deliveries(
    fleet: &mut Fleet,
    step: u32,
    expected: u64,
    grace: Duration,
) -> Result<u64> {
    let deadline = Instant::now() + grace;
    loop {
        let unique = fleet
            .unique_counts()
            .await?
            .get(&step)
            .copied()
            .unwrap_or(0);
        if unique >= expected || Instant::now() >= deadline {
            return Ok(unique);
        }
        sleep(Duration::from_millis(100)).await;
    }
}

/// The connect phase as table rows.
pub(crate) fn connect_rows(table: &mut Table, connect: &ConnectReport) {
    let latency = Latency::from_snapshot(&connect.latency).summary();
    table.metric("connections requested", connect.requested);
    table.metric("connections up", connect.connected);
    table.metric("connections failed", connect.failed);
    for (kind, count) in &connect.failures {
        table.metric(&format!("  failed: {kind}"), count);
    }
    table.metric("connect phase, s", format!("{:.2}", connect.span_seconds()));
    table.metric(
        "connections accepted/s",
        format!("{:.0}", connect.accepted_per_second()),
    );
    table.metric(
        "connect p50 / p99 / max, ms",
        format!(
            "{} / {} / {}",
            ms(latency.p50_us),
            ms(latency.p99_us),
            ms(latency.max_us)
        ),
    );
    table.metric(
        &format!("load tool RSS ({} process(es)), MiB", connect.processes),
        mib(connect.client_rss_kib),
    );
}

/// The connect phase as JSON.
pub(crate) fn connect_json(connect: &ConnectReport) -> Value {
    json!({
        "requested": connect.requested,
        "connected": connect.connected,
        "failed": connect.failed,
        "failures": connect.failures,
        "span_seconds": connect.span_seconds(),
        "accepted_per_second": connect.accepted_per_second(),
        "latency": Latency::from_snapshot(&connect.latency).summary(),
        "client_rss_kib": connect.client_rss_kib,
        "processes": connect.processes,
    })
}

/// One line to stderr about the connect phase.
pub(crate) fn announce_connected(connect: &ConnectReport) {
    eprintln!(
        "  {} of {} connections up in {:.2} s ({:.0}/s), {} failed",
        connect.connected,
        connect.requested,
        connect.span_seconds(),
        connect.accepted_per_second(),
        connect.failed
    );
}

/// Notes about frames that were not clean deliveries, for any scenario.
pub(crate) fn delivery_notes(deliveries: &DeliveryReport) -> Vec<String> {
    let mut notes = Vec::new();
    if deliveries.misrouted > 0 {
        notes.push(format!(
            "{} notifications arrived on a connection of another user (routing bug)",
            deliveries.misrouted
        ));
    }
    if deliveries.foreign > 0 {
        notes.push(format!(
            "{} notifications without this run's tag were received (another publisher or run)",
            deliveries.foreign
        ));
    }
    if deliveries.parse_errors > 0 {
        notes.push(format!(
            "{} frames could not be parsed",
            deliveries.parse_errors
        ));
    }
    if deliveries.disconnects > 0 {
        notes.push(format!(
            "{} connections were closed during the run: {:?}",
            deliveries.disconnects, deliveries.disconnect_reasons
        ));
    }
    notes
}
