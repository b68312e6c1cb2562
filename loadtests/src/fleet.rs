//! A fleet is the receiving side of a run: `users × conns_per_user` connections (WS or SSE),
//! each a task that connects, waits for its first event, then counts deliveries until the fleet
//! stops.
//!
//! A fleet lives in this process ([`LocalFleet`]) or is split over worker processes
//! (`--procs`, see `worker`), since one process may hold at most ~20,000 open files. Scenarios
//! only see the [`Fleet`] facade, which gives the same reports either way.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::procfs;
use crate::session::{ConnPlan, Session, Shared, SharedSettings, Target};
use crate::stats::{ConnectReport, DeliveryReport};
use crate::tokens::{self, Credentials, TokenMode, TokenRequest};
use crate::worker::WorkerSet;
use crate::{sse_client, ws_client};

/// Which realtime endpoint the fleet's connections use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Transport {
    /// `GET /v1/ws`: ready at `hello`.
    Ws,
    /// `GET /v1/sse`: ready at the first event.
    Sse,
}

/// Open files a process needs besides its connections (stdio, the runtime, a REST pool).
const SPARE_FILES: u64 = 200;

/// Everything needed to build a fleet, in a process of its own if need be (it is what a
/// worker gets on its command line, so it holds no secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FleetSpec {
    pub(crate) url: String,
    pub(crate) tenant: String,
    pub(crate) transport: Transport,
    /// User ids are `<user_prefix>-<index>`.
    pub(crate) user_prefix: String,
    /// The `role` claim of every user token.
    pub(crate) role: String,
    /// Global user indexes `user_start..user_end` (a worker holds a contiguous share).
    pub(crate) user_start: u32,
    pub(crate) user_end: u32,
    pub(crate) conns_per_user: u32,
    /// Client source addresses, used round-robin by global connection index.
    pub(crate) source_ips: Vec<Ipv4Addr>,
    /// Connection attempts in flight at once.
    pub(crate) connect_concurrency: usize,
    /// Budget of one attempt, TCP connect to first event.
    pub(crate) connect_timeout_ms: u64,
    /// tungstenite's eagerly allocated read buffer per WS connection.
    pub(crate) ws_read_buffer: usize,
    pub(crate) token_mode: TokenMode,
    pub(crate) token_ttl_seconds: u64,
    /// The publisher's `data.lt`: notifications with another tag are foreign.
    pub(crate) run_tag: String,
    /// A worker ends by itself after this long, whatever its parent does.
    pub(crate) hard_timeout_seconds: u64,
}

impl FleetSpec {
    pub(crate) fn users(&self) -> Range<u32> {
        self.user_start..self.user_end
    }

    pub(crate) fn connections(&self) -> u64 {
        u64::from(self.user_end - self.user_start) * u64::from(self.conns_per_user)
    }

    /// `n` fleets holding contiguous shares of the users, together this fleet.
    pub(crate) fn shards(&self, n: usize) -> Vec<FleetSpec> {
        let users = u64::from(self.user_end - self.user_start);
        let n = (n as u64).clamp(1, users.max(1));
        (0..n)
            .map(|i| {
                let mut shard = self.clone();
                shard.user_start = self.user_start + (users * i / n) as u32;
                shard.user_end = self.user_start + (users * (i + 1) / n) as u32;
                shard.connect_concurrency = (self.connect_concurrency / n as usize).max(1);
                shard
            })
            .collect()
    }

    /// Refuses a fleet that cannot work on this machine before opening anything.
    pub(crate) fn preflight(&self, procs: usize) -> Result<()> {
        if self.user_end <= self.user_start || self.conns_per_user == 0 {
            bail!("the fleet needs at least one user and one connection per user");
        }
        let total = self.connections();
        let procs = procs.max(1) as u64;
        if procs > u64::from(self.user_end - self.user_start) {
            bail!("--procs {procs} is more than the number of users");
        }
        let per_process = total.div_ceil(procs);
        if let Some(limit) = procfs::own_open_files_limit() {
            if per_process + SPARE_FILES > limit {
                let needed = total.div_ceil(limit.saturating_sub(SPARE_FILES).max(1));
                bail!(
                    "{per_process} connections per process exceed the open-files limit ({limit}): \
                     use --procs {needed} or more"
                );
            }
        }
        if let Some(ports) = procfs::ephemeral_port_count() {
            let addresses = self.source_ips.len().max(1) as u64;
            if total.div_ceil(addresses) > ports {
                bail!(
                    "{total} connections over {addresses} source address(es) exceed the {ports} \
                     ephemeral ports of each: add loopback addresses with --source-ips"
                );
            }
        }
        Ok(())
    }
}

/// The user id of a global user index.
pub(crate) fn user_id(prefix: &str, index: u32) -> String {
    format!("{prefix}-{index}")
}

/// The global user index of a user id, if it is one of ours.
pub(crate) fn user_index(prefix: &str, id: &str) -> Option<u32> {
    id.strip_prefix(prefix)?.strip_prefix('-')?.parse().ok()
}

/// The scenarios' view of a fleet, wherever its connections live.
pub(crate) enum Fleet {
    Local(LocalFleet),
    Workers(WorkerSet),
}

impl Fleet {
    /// Prepares the fleet (tokens, tasks or worker processes) without connecting yet.
    pub(crate) async fn launch(
        spec: FleetSpec,
        credentials: &Credentials,
        procs: usize,
        threads: Option<usize>,
    ) -> Result<Fleet> {
        spec.preflight(procs)?;
        if procs <= 1 {
            Ok(Fleet::Local(LocalFleet::prepare(spec, credentials).await?))
        } else {
            Ok(Fleet::Workers(
                WorkerSet::spawn(&spec, credentials, procs, threads).await?,
            ))
        }
    }

    /// Opens every connection and waits until each is up (first event) or has failed.
    pub(crate) async fn connect(&mut self) -> Result<ConnectReport> {
        match self {
            Fleet::Local(fleet) => {
                fleet.go();
                let total = fleet.connections();
                Ok(fleet
                    .wait_connected(|done, connected| print_progress(done, connected, total))
                    .await)
            }
            Fleet::Workers(workers) => workers.connect().await,
        }
    }

    /// Unique deliveries so far, by step.
    pub(crate) async fn unique_counts(&mut self) -> Result<BTreeMap<u32, u64>> {
        match self {
            Fleet::Local(fleet) => Ok(fleet.shared.unique_counts()),
            Fleet::Workers(workers) => workers.unique_counts().await,
        }
    }

    /// Everything received so far.
    pub(crate) async fn report(&mut self) -> Result<DeliveryReport> {
        match self {
            Fleet::Local(fleet) => Ok(fleet.shared.delivery_report()),
            Fleet::Workers(workers) => workers.report().await,
        }
    }

    /// Closes every connection; the final report.
    pub(crate) async fn stop(self) -> Result<DeliveryReport> {
        match self {
            Fleet::Local(fleet) => Ok(fleet.stop().await),
            Fleet::Workers(workers) => workers.stop().await,
        }
    }
}

/// Prints connect progress to stderr (every ~2 s while connecting).
pub(crate) fn print_progress(done: u64, connected: u64, total: u64) {
    // `done` and `connected` are read at slightly different times.
    let done = done.max(connected);
    eprintln!(
        "  connecting: {connected}/{total} up, {} failed, {} pending",
        done - connected,
        total.saturating_sub(done)
    );
}

/// A fleet whose connections are tasks of this process.
pub(crate) struct LocalFleet {
    spec: FleetSpec,
    shared: Arc<Shared>,
    tasks: JoinSet<()>,
    /// Set to `true` to start connecting (every task is spawned before, waiting on it).
    go: watch::Sender<bool>,
}

impl LocalFleet {
    /// Issues the tokens and spawns one task per connection, all waiting for [`Self::go`].
    pub(crate) async fn prepare(spec: FleetSpec, credentials: &Credentials) -> Result<Self> {
        let target = Target::resolve(&spec.url).await?;
        if !spec.source_ips.is_empty() && !target.addr.is_ipv4() {
            bail!("--source-ips are IPv4 loopback addresses: --url must resolve to IPv4");
        }
        let users: Vec<u32> = spec.users().collect();
        let user_ids: Vec<Arc<str>> = users
            .iter()
            .map(|u| Arc::from(user_id(&spec.user_prefix, *u)))
            .collect();
        let request = TokenRequest {
            mode: spec.token_mode,
            base_url: &spec.url,
            tenant: &spec.tenant,
            role: &spec.role,
            ttl_seconds: spec.token_ttl_seconds,
        };
        let tokens = tokens::issue(&request, credentials, &user_ids).await?;

        let shared = Arc::new(Shared::new(SharedSettings {
            target,
            transport: spec.transport,
            connect_timeout: Duration::from_millis(spec.connect_timeout_ms),
            connect_concurrency: spec.connect_concurrency,
            ws_read_buffer: spec.ws_read_buffer,
            run_tag: spec.run_tag.clone(),
            user_start: spec.user_start,
            users: users.len(),
        }));
        let (go, go_signal) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for (i, user) in users.iter().enumerate() {
            for c in 0..spec.conns_per_user {
                let global = u64::from(*user) * u64::from(spec.conns_per_user) + u64::from(c);
                let source_ip = (!spec.source_ips.is_empty())
                    .then(|| spec.source_ips[(global % spec.source_ips.len() as u64) as usize]);
                let plan = ConnPlan {
                    user: *user,
                    user_id: user_ids[i].clone(),
                    token: tokens[i].clone(),
                    source_ip,
                };
                tasks.spawn(connection_task(shared.clone(), plan, go_signal.clone()));
            }
        }
        Ok(Self {
            spec,
            shared,
            tasks,
            go,
        })
    }

    pub(crate) fn connections(&self) -> u64 {
        self.spec.connections()
    }

    pub(crate) fn go(&self) {
        let _ = self.go.send(true);
    }

    /// Waits until every attempt has ended; `on_progress(done, connected)` every ~2 s.
    pub(crate) async fn wait_connected(
        &self,
        mut on_progress: impl FnMut(u64, u64),
    ) -> ConnectReport {
        let total = self.connections();
        let mut last_progress = Instant::now();
        loop {
            let done = self.shared.attempts_done.load(Ordering::Acquire);
            if done >= total {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            if last_progress.elapsed() >= Duration::from_secs(2) {
                last_progress = Instant::now();
                on_progress(done, self.shared.connect_report(total).connected);
            }
        }
        self.shared.connect_report(total)
    }

    pub(crate) fn delivery_report(&self) -> DeliveryReport {
        self.shared.delivery_report()
    }

    pub(crate) fn unique_counts(&self) -> BTreeMap<u32, u64> {
        self.shared.unique_counts()
    }

    /// Cancels every connection, waits (boundedly) for the tasks, returns the final report.
    pub(crate) async fn stop(mut self) -> DeliveryReport {
        self.shared.cancel.cancel();
        let drained = tokio::time::timeout(Duration::from_secs(15), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            self.tasks.abort_all();
        }
        self.shared.delivery_report()
    }
}

async fn connection_task(shared: Arc<Shared>, plan: ConnPlan, mut go: watch::Receiver<bool>) {
    tokio::select! {
        _ = shared.cancel.cancelled() => return,
        started = go.wait_for(|go| *go) => if started.is_err() { return },
    }
    let permit = tokio::select! {
        _ = shared.cancel.cancelled() => return,
        permit = shared.connect_permits.clone().acquire_owned() => match permit {
            Ok(permit) => permit,
            Err(_) => return,
        },
    };
    let mut session = Session::start(shared.clone(), plan, permit);
    match shared.transport {
        Transport::Ws => ws_client::run(&mut session).await,
        Transport::Sse => sse_client::run(&mut session).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(users: Range<u32>, conns: u32) -> FleetSpec {
        FleetSpec {
            url: "http://127.0.0.1:8080".into(),
            tenant: "bench".into(),
            transport: Transport::Ws,
            user_prefix: "lt".into(),
            role: "front_desk".into(),
            user_start: users.start,
            user_end: users.end,
            conns_per_user: conns,
            source_ips: vec![],
            connect_concurrency: 100,
            connect_timeout_ms: 1000,
            ws_read_buffer: 4096,
            token_mode: TokenMode::Local,
            token_ttl_seconds: 60,
            run_tag: "t".into(),
            hard_timeout_seconds: 60,
        }
    }

    #[test]
    fn shards_cover_every_user_once() {
        let shards = spec(0..10_001, 2).shards(4);
        assert_eq!(shards.len(), 4);
        assert_eq!(shards[0].user_start, 0);
        assert_eq!(shards[3].user_end, 10_001);
        for pair in shards.windows(2) {
            assert_eq!(pair[0].user_end, pair[1].user_start);
        }
        let total: u64 = shards.iter().map(FleetSpec::connections).sum();
        assert_eq!(total, 20_002);
        assert!(shards.iter().all(|s| s.connect_concurrency == 25));
    }

    #[test]
    fn preflight_asks_for_processes_or_addresses() {
        let limit = procfs::own_open_files_limit().unwrap_or(u64::MAX);
        if limit < 1_000_000 {
            let too_many = spec(0..limit as u32, 1);
            let error = too_many.preflight(1).unwrap_err().to_string();
            assert!(error.contains("--procs"), "{error}");
            if procfs::ephemeral_port_count().is_some_and(|ports| ports >= limit) {
                assert!(too_many.preflight(4).is_ok());
            }
        }
        assert!(spec(0..10, 1).preflight(11).is_err());
        assert!(spec(0..10, 0).preflight(1).is_err());
        assert!(spec(0..10, 2).preflight(2).is_ok());
    }

    #[test]
    fn user_ids_round_trip() {
        assert_eq!(user_index("lt", &user_id("lt", 42)), Some(42));
        assert_eq!(user_index("lt", "ltx-42"), None);
        assert_eq!(user_index("lt", "other-1"), None);
    }
}
