//! One connection's side of a run, whatever the transport: where to connect ([`Target`]), as
//! whom ([`ConnPlan`]), and what to make of each event ([`Session`]). The state every
//! connection of a fleet writes to lives in [`Shared`].

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::net::{lookup_host, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::fleet::Transport;
use crate::procfs;
use crate::stats::{unix_us, ConnectReport, DeliveryReport, Latency, StepDeliveries};

/// The hub's listening address, resolved once, and what goes in requests to it.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    /// `Host` header value: `127.0.0.1:8080`.
    pub(crate) host: String,
    /// Path prefix of `--url` (usually empty), without a trailing slash.
    pub(crate) base_path: String,
}

impl Target {
    pub(crate) async fn resolve(url: &str) -> Result<Self> {
        let parsed = reqwest::Url::parse(url).with_context(|| format!("--url {url}"))?;
        if parsed.scheme() != "http" {
            bail!("--url must be http:// (the tool drives a loopback hub, without TLS)");
        }
        let host = parsed.host_str().context("--url has no host")?;
        let port = parsed.port_or_known_default().unwrap_or(80);
        let lookup_name = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = lookup_host((lookup_name, port))
            .await
            .with_context(|| format!("resolving {host}"))?
            .collect();
        let addr = addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| addrs.first())
            .copied()
            .with_context(|| format!("{host} resolves to no address"))?;
        Ok(Self {
            addr,
            host: format!("{host}:{port}"),
            base_path: parsed.path().trim_end_matches('/').to_string(),
        })
    }

    /// A TCP connection to the hub, from `source` when given (one of several loopback
    /// addresses: each source address has its own ~28k ephemeral ports).
    ///
    /// The socket closes with a reset (`SO_LINGER` 0): the client closes first when a fleet
    /// stops, and a normal close would leave every port in `TIME_WAIT` for a minute, so that
    /// a second 18,000-connection run started right after would run out of ports.
    pub(crate) async fn connect(&self, source: Option<Ipv4Addr>) -> io::Result<TcpStream> {
        self.connect_with(source, None).await
    }

    /// [`Self::connect`] with a receive buffer of `recv_buffer` bytes (set before connecting,
    /// so the advertised window stays that small): a client that never reads then holds
    /// little in its kernel, and the hub's writes stall at once.
    pub(crate) async fn connect_with(
        &self,
        source: Option<Ipv4Addr>,
        recv_buffer: Option<u32>,
    ) -> io::Result<TcpStream> {
        let socket = if self.addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_zero_linger()?;
        if let Some(bytes) = recv_buffer {
            socket.set_recv_buffer_size(bytes)?;
        }
        if let Some(ip) = source {
            socket.bind(SocketAddr::new(IpAddr::V4(ip), 0))?;
        }
        let stream = socket.connect(self.addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    pub(crate) fn ws_url(&self, token: &str) -> String {
        format!("ws://{}{}/v1/ws?token={token}", self.host, self.base_path)
    }

    pub(crate) fn sse_request(&self, token: &str) -> String {
        format!(
            "GET {}/v1/sse?token={token} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\
             Cache-Control: no-cache\r\nUser-Agent: tidings-load\r\n\r\n",
            self.base_path, self.host
        )
    }
}

/// Who one connection is.
#[derive(Debug, Clone)]
pub(crate) struct ConnPlan {
    /// Global user index (user id = `<prefix>-<index>`).
    pub(crate) user: u32,
    pub(crate) user_id: Arc<str>,
    /// Shared by every connection of the user.
    pub(crate) token: Arc<str>,
    pub(crate) source_ip: Option<Ipv4Addr>,
}

/// What the connections of one fleet share: settings and the counters they all write to.
pub(crate) struct Shared {
    pub(crate) target: Target,
    pub(crate) transport: Transport,
    /// Covers TCP connect, the upgrade or response head, and the first event.
    pub(crate) connect_timeout: Duration,
    pub(crate) ws_read_buffer: usize,
    /// Tag put in `data.lt` by this run's publisher: other notifications are foreign.
    run_tag: String,
    /// First global user index of the fleet (`per_user` vectors are indexed from it).
    user_start: u32,
    users: usize,
    /// Cancelled when the fleet stops: every connection task ends.
    pub(crate) cancel: CancellationToken,
    /// Bounds connection attempts in flight (the connect concurrency).
    pub(crate) connect_permits: Arc<Semaphore>,
    /// Attempts that ended, connected or failed: the connect phase is over when it reaches
    /// the fleet's size.
    pub(crate) attempts_done: AtomicU64,
    /// One std mutex for all counters: it is held for a few instructions, never across an
    /// `.await`, and the tool usually runs on one core, so it is uncontended.
    state: Mutex<FleetState>,
}

#[derive(Default)]
struct FleetState {
    connected: u64,
    failed: u64,
    failures: BTreeMap<String, u64>,
    failed_per_user: BTreeMap<u32, u32>,
    first_attempt_us: u64,
    last_ready_us: u64,
    connect_latency: Latency,
    steps: BTreeMap<u32, StepState>,
    foreign: u64,
    misrouted: u64,
    parse_errors: u64,
    frames_by_type: HashMap<String, u64>,
    disconnects: u64,
    disconnect_reasons: BTreeMap<String, u64>,
}

struct StepState {
    received: u64,
    unique: u64,
    duplicates: u64,
    first_us: u64,
    last_us: u64,
    latency: Latency,
    /// Unique deliveries per user, indexed by `user - user_start`.
    per_user: Vec<u32>,
}

/// Everything a connection reports, decided outside the lock.
enum Receipt {
    Delivery {
        step: u32,
        fresh: bool,
        latency_us: u64,
    },
    Foreign,
    Misrouted,
    Unparsable,
}

impl Shared {
    pub(crate) fn new(settings: SharedSettings) -> Self {
        Self {
            target: settings.target,
            transport: settings.transport,
            connect_timeout: settings.connect_timeout,
            ws_read_buffer: settings.ws_read_buffer,
            run_tag: settings.run_tag,
            user_start: settings.user_start,
            users: settings.users,
            cancel: CancellationToken::new(),
            connect_permits: Arc::new(Semaphore::new(settings.connect_concurrency.max(1))),
            attempts_done: AtomicU64::new(0),
            state: Mutex::new(FleetState::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, FleetState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn connect_report(&self, requested: u64) -> ConnectReport {
        let state = self.state();
        ConnectReport {
            requested,
            connected: state.connected,
            failed: state.failed,
            failures: state.failures.clone(),
            failed_per_user: state
                .failed_per_user
                .iter()
                .map(|(u, n)| (*u, *n))
                .collect(),
            first_attempt_us: state.first_attempt_us,
            last_ready_us: state.last_ready_us,
            latency: state.connect_latency.snapshot(),
            client_rss_kib: procfs::own_rss_kib(),
            processes: 1,
        }
    }

    pub(crate) fn delivery_report(&self) -> DeliveryReport {
        let state = self.state();
        let steps = state
            .steps
            .iter()
            .map(|(step, s)| {
                let per_user = s
                    .per_user
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| **n > 0)
                    .map(|(i, n)| (self.user_start + i as u32, *n))
                    .collect();
                let deliveries = StepDeliveries {
                    received: s.received,
                    unique: s.unique,
                    duplicates: s.duplicates,
                    first_us: s.first_us,
                    last_us: s.last_us,
                    latency: s.latency.snapshot(),
                    per_user,
                };
                (*step, deliveries)
            })
            .collect();
        DeliveryReport {
            steps,
            foreign: state.foreign,
            misrouted: state.misrouted,
            parse_errors: state.parse_errors,
            frames_by_type: state
                .frames_by_type
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            disconnects: state.disconnects,
            disconnect_reasons: state.disconnect_reasons.clone(),
            client_rss_kib: procfs::own_rss_kib(),
        }
    }

    /// Unique deliveries so far, by step: cheap enough to poll while waiting for stragglers.
    pub(crate) fn unique_counts(&self) -> BTreeMap<u32, u64> {
        self.state()
            .steps
            .iter()
            .map(|(step, s)| (*step, s.unique))
            .collect()
    }
}

/// The settings a [`Shared`] is built from.
pub(crate) struct SharedSettings {
    pub(crate) target: Target,
    pub(crate) transport: Transport,
    pub(crate) connect_timeout: Duration,
    pub(crate) connect_concurrency: usize,
    pub(crate) ws_read_buffer: usize,
    pub(crate) run_tag: String,
    pub(crate) user_start: u32,
    pub(crate) users: usize,
}

/// The frame envelope of the WebSocket: `{"type", "data"}`.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

/// The parts of a notification object the tool reads.
#[derive(Deserialize)]
struct NotificationView<'a> {
    #[serde(borrow)]
    user_id: Cow<'a, str>,
    #[serde(default)]
    data: Option<LoadMark<'a>>,
}

/// What the publisher puts in a notification's `data`.
#[derive(Deserialize, Default)]
struct LoadMark<'a> {
    /// The run tag.
    #[serde(borrow, default)]
    lt: Option<Cow<'a, str>>,
    #[serde(default)]
    step: Option<u32>,
    #[serde(default)]
    seq: Option<u64>,
    /// Unix µs when the publish request was built.
    #[serde(default)]
    ts: Option<u64>,
}

/// One connection's state: the notifications it has seen (for duplicates) and whether it is up.
pub(crate) struct Session {
    shared: Arc<Shared>,
    plan: ConnPlan,
    /// `seq`s received on this connection.
    seen: HashSet<u64>,
    started_us: u64,
    /// Held from the attempt to the first event or the failure: bounds attempts in flight.
    permit: Option<OwnedSemaphorePermit>,
    ready: bool,
    /// Counted in `attempts_done` (connected or failed), exactly once.
    settled: bool,
}

impl Session {
    pub(crate) fn start(shared: Arc<Shared>, plan: ConnPlan, permit: OwnedSemaphorePermit) -> Self {
        let started_us = unix_us();
        {
            let mut state = shared.state();
            if state.first_attempt_us == 0 || started_us < state.first_attempt_us {
                state.first_attempt_us = started_us;
            }
        }
        Self {
            shared,
            plan,
            seen: HashSet::new(),
            started_us,
            permit: Some(permit),
            ready: false,
            settled: false,
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(crate) fn plan(&self) -> &ConnPlan {
        &self.plan
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.ready
    }

    /// The attempt failed before the first event.
    pub(crate) fn fail(&mut self, kind: impl Into<String>) {
        if self.settled {
            return;
        }
        self.settled = true;
        self.permit = None;
        let mut state = self.shared.state();
        state.failed += 1;
        *state.failures.entry(kind.into()).or_default() += 1;
        *state.failed_per_user.entry(self.plan.user).or_default() += 1;
        drop(state);
        self.shared.attempts_done.fetch_add(1, Ordering::Release);
    }

    /// The connection ended: a failure before the first event, a disconnect after it (unless
    /// the fleet is stopping).
    pub(crate) fn closed(&mut self, reason: impl Into<String>) {
        if !self.ready {
            let reason = reason.into();
            self.fail(format!("closed before first event: {reason}"));
            return;
        }
        if self.shared.cancel.is_cancelled() {
            return;
        }
        let mut state = self.shared.state();
        state.disconnects += 1;
        *state.disconnect_reasons.entry(reason.into()).or_default() += 1;
    }

    /// A WebSocket text frame: `{"type", "data"}`.
    pub(crate) fn on_ws_text(&mut self, text: &str) {
        match serde_json::from_str::<Envelope<'_>>(text) {
            Ok(envelope) => {
                let data = envelope.data.map_or("null", RawValue::get);
                self.on_event(&envelope.kind, data);
            }
            Err(_) => {
                self.mark_ready();
                self.shared.state().parse_errors += 1;
            }
        }
    }

    /// An event of type `kind` with its JSON `data`, from either transport.
    pub(crate) fn on_event(&mut self, kind: &str, data: &str) {
        self.mark_ready();
        let receipt = (kind == "notification").then(|| self.receipt(data));
        let now = unix_us();
        let mut state = self.shared.state();
        match state.frames_by_type.get_mut(kind) {
            Some(count) => *count += 1,
            None => {
                state.frames_by_type.insert(kind.to_owned(), 1);
            }
        }
        match receipt {
            None => {}
            Some(Receipt::Foreign) => state.foreign += 1,
            Some(Receipt::Misrouted) => state.misrouted += 1,
            Some(Receipt::Unparsable) => state.parse_errors += 1,
            Some(Receipt::Delivery {
                step,
                fresh,
                latency_us,
            }) => {
                let users = self.shared.users;
                let step = state.steps.entry(step).or_insert_with(|| StepState {
                    received: 0,
                    unique: 0,
                    duplicates: 0,
                    first_us: 0,
                    last_us: 0,
                    latency: Latency::new(),
                    per_user: vec![0; users],
                });
                step.received += 1;
                if fresh {
                    step.unique += 1;
                    step.latency.record(latency_us);
                    if step.first_us == 0 {
                        step.first_us = now;
                    }
                    step.last_us = step.last_us.max(now);
                    let index = (self.plan.user - self.shared.user_start) as usize;
                    if let Some(count) = step.per_user.get_mut(index) {
                        *count += 1;
                    }
                } else {
                    step.duplicates += 1;
                }
            }
        }
    }

    fn mark_ready(&mut self) {
        if self.ready {
            return;
        }
        self.ready = true;
        self.permit = None;
        if self.settled {
            return;
        }
        self.settled = true;
        let now = unix_us();
        let mut state = self.shared.state();
        state.connected += 1;
        state.last_ready_us = state.last_ready_us.max(now);
        state
            .connect_latency
            .record(now.saturating_sub(self.started_us));
        drop(state);
        self.shared.attempts_done.fetch_add(1, Ordering::Release);
    }

    fn receipt(&mut self, data: &str) -> Receipt {
        let Ok(notification) = serde_json::from_str::<NotificationView<'_>>(data) else {
            return Receipt::Unparsable;
        };
        if *notification.user_id != *self.plan.user_id {
            return Receipt::Misrouted;
        }
        let mark = notification.data.unwrap_or_default();
        match (mark.lt, mark.step, mark.seq, mark.ts) {
            (Some(tag), Some(step), Some(seq), Some(ts)) if *tag == *self.shared.run_tag => {
                Receipt::Delivery {
                    step,
                    fresh: self.seen.insert(seq),
                    latency_us: unix_us().saturating_sub(ts),
                }
            }
            _ => Receipt::Foreign,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // A task ended (stop, panic) between attempt and first event: still settle it, so
        // that the connect phase can end.
        if !self.settled {
            self.fail("cancelled");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Arc<Shared> {
        Arc::new(Shared::new(SharedSettings {
            target: Target {
                addr: "127.0.0.1:9".parse().unwrap(),
                host: "127.0.0.1:9".into(),
                base_path: String::new(),
            },
            transport: Transport::Ws,
            connect_timeout: Duration::from_secs(1),
            connect_concurrency: 4,
            ws_read_buffer: 4096,
            run_tag: "run1".into(),
            user_start: 10,
            users: 5,
        }))
    }

    fn session(shared: &Arc<Shared>, user: u32) -> Session {
        let permit = shared.connect_permits.clone().try_acquire_owned().unwrap();
        let plan = ConnPlan {
            user,
            user_id: format!("lt-{user}").into(),
            token: "t".into(),
            source_ip: None,
        };
        Session::start(shared.clone(), plan, permit)
    }

    fn notification(user: &str, tag: &str, seq: u64) -> String {
        format!(
            r#"{{"type":"notification","data":{{"id":"n{seq}","user_id":"{user}","title":"t",
            "message":"m","data":{{"lt":"{tag}","step":0,"seq":{seq},"ts":{}}},"is_read":false}}}}"#,
            unix_us() - 1_000
        )
    }

    #[test]
    fn hello_makes_a_connection_ready_and_deliveries_are_counted_once() {
        let shared = shared();
        let mut s = session(&shared, 12);
        s.on_ws_text(
            r#"{"type":"hello","data":{"user_id":"lt-12","connection_id":"c","unread":0}}"#,
        );
        assert!(s.is_ready());
        s.on_ws_text(&notification("lt-12", "run1", 1));
        s.on_ws_text(&notification("lt-12", "run1", 1));
        s.on_ws_text(&notification("lt-12", "run1", 2));
        s.on_ws_text(&notification("lt-12", "older-run", 3));
        s.on_ws_text(&notification("lt-13", "run1", 4));
        s.on_ws_text(r#"{"type":"unread_count","data":{"unread":3}}"#);
        s.on_ws_text("not json");

        let connect = shared.connect_report(1);
        assert_eq!((connect.connected, connect.failed), (1, 0));
        let report = shared.delivery_report();
        let step = &report.steps[&0];
        assert_eq!((step.received, step.unique, step.duplicates), (3, 2, 1));
        assert_eq!(step.per_user, vec![(12, 2)]);
        let latency = Latency::from_snapshot(&step.latency).summary();
        assert!(latency.p50_us >= 1_000, "{latency:?}");
        assert_eq!(
            (report.foreign, report.misrouted, report.parse_errors),
            (1, 1, 1)
        );
        assert_eq!(report.frames_by_type["notification"], 5);
        assert_eq!(report.frames_by_type["unread_count"], 1);
        assert_eq!(shared.unique_counts()[&0], 2);
    }

    #[test]
    fn an_attempt_dropped_before_its_first_event_counts_as_failed() {
        let shared = shared();
        let mut failed = session(&shared, 10);
        failed.fail("http 401");
        drop(failed);
        drop(session(&shared, 11));
        let connect = shared.connect_report(2);
        assert_eq!((connect.connected, connect.failed), (0, 2));
        assert_eq!(connect.failures["http 401"], 1);
        assert_eq!(connect.failures["cancelled"], 1);
        assert_eq!(connect.failed_per_user, vec![(10, 1), (11, 1)]);
        assert_eq!(shared.attempts_done.load(Ordering::Acquire), 2);
    }
}
