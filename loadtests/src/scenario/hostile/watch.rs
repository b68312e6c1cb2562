//! What an operator sees during an attack: `/healthz` probed every 50 ms on a new
//! connection each time (as a load balancer does, so a hub that stops accepting is seen),
//! and the hub's resident memory sampled every 100 ms.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_json::{json, Value};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{interval, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::{kinds, Check, Tally, HEALTHZ_LIMIT_MS};
use crate::procfs::WatchedProcess;
use crate::report::{mib, ms};
use crate::stats::{Latency, LatencySummary};

/// A probe every this often (issue 11: "a prober GETs /healthz every 50 ms").
const PROBE_INTERVAL: Duration = Duration::from_millis(50);

/// A probe not answered within this is counted as unanswered (10 × the limit: long enough
/// to tell "slow" from "not accepting at all").
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The hub's RSS is read this often.
const RSS_INTERVAL: Duration = Duration::from_millis(100);

/// Its open descriptors (a directory listing of thousands) less often.
const FDS_EVERY: u32 = 5;

/// The prober and the RSS sampler, running until [`Watch::stop`].
pub(super) struct Watch {
    cancel: CancellationToken,
    prober: JoinHandle<Probes>,
    sampler: JoinHandle<Memory>,
}

/// What the prober saw.
#[derive(Default)]
struct Probes {
    sent: u64,
    answered: u64,
    /// Probes that got no `200` within [`PROBE_TIMEOUT`], by kind.
    failures: Tally,
    /// Answered probes, sent → body read.
    latency: Latency,
    over_limit: u64,
}

/// What the sampler saw, KiB.
struct Memory {
    baseline_kib: u64,
    peak_kib: u64,
    samples: u64,
    baseline_fds: Option<u64>,
    peak_fds: Option<u64>,
}

/// Everything watched during one window.
pub(super) struct Watched {
    sent: u64,
    answered: u64,
    failures: std::collections::BTreeMap<String, u64>,
    latency: LatencySummary,
    over_limit: u64,
    memory: Memory,
}

impl Watch {
    /// Reads the baseline RSS now (the hub before the attack), then starts both tasks.
    pub(super) fn start(url: &str, hub: WatchedProcess) -> Result<Self> {
        let baseline = hub.memory().context("reading the hub's RSS")?;
        let http = reqwest::Client::builder()
            // A new connection per probe: a pooled one would not notice a hub that has
            // stopped accepting.
            .pool_max_idle_per_host(0)
            .local_address(IpAddr::V4(Ipv4Addr::LOCALHOST))
            .tcp_nodelay(true)
            .timeout(PROBE_TIMEOUT)
            .build()
            .context("building the prober's HTTP client")?;
        let cancel = CancellationToken::new();
        let prober = tokio::spawn(probe(http, format!("{url}/healthz"), cancel.clone()));
        let sampler = tokio::spawn(sample(hub, baseline.rss_kib, cancel.clone()));
        Ok(Self {
            cancel,
            prober,
            sampler,
        })
    }

    pub(super) async fn stop(self) -> Watched {
        self.cancel.cancel();
        let probes = self.prober.await.unwrap_or_default();
        let memory = self.sampler.await.unwrap_or(Memory {
            baseline_kib: 0,
            peak_kib: 0,
            samples: 0,
            baseline_fds: None,
            peak_fds: None,
        });
        Watched {
            sent: probes.sent,
            answered: probes.answered,
            failures: probes.failures.snapshot(),
            latency: probes.latency.summary(),
            over_limit: probes.over_limit,
            memory,
        }
    }
}

/// Sends a probe every [`PROBE_INTERVAL`], each in its own task so that a slow answer does
/// not delay (and hide) the next probe.
async fn probe(http: reqwest::Client, url: String, cancel: CancellationToken) -> Probes {
    let probes = Arc::new(Mutex::new(Probes::default()));
    let mut tick = interval(PROBE_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut in_flight = JoinSet::new();
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let (http, url, probes) = (http.clone(), url.clone(), probes.clone());
        in_flight.spawn(async move {
            let started = Instant::now();
            let outcome = match http.get(&url).send().await {
                Ok(response) if response.status().is_success() => response
                    .bytes()
                    .await
                    .map(|_| ())
                    .map_err(|e| transport_kind(&e)),
                Ok(response) => Err(format!("http {}", response.status().as_u16())),
                Err(e) => Err(transport_kind(&e)),
            };
            let elapsed = started.elapsed();
            let mut probes = probes.lock().unwrap_or_else(PoisonError::into_inner);
            probes.sent += 1;
            match outcome {
                Ok(()) => {
                    probes.answered += 1;
                    probes.latency.record(elapsed.as_micros() as u64);
                    if elapsed.as_secs_f64() * 1000.0 > HEALTHZ_LIMIT_MS {
                        probes.over_limit += 1;
                    }
                }
                Err(kind) => probes.failures.add(kind),
            }
        });
        while in_flight.try_join_next().is_some() {}
    }
    // The probes in flight end by their own timeout.
    while in_flight.join_next().await.is_some() {}
    Arc::try_unwrap(probes)
        .map(|m| m.into_inner().unwrap_or_else(PoisonError::into_inner))
        .unwrap_or_default()
}

fn transport_kind(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        format!("no answer within {} ms", PROBE_TIMEOUT.as_millis())
    } else if e.is_connect() {
        "connect error".to_string()
    } else {
        "io error".to_string()
    }
}

async fn sample(hub: WatchedProcess, baseline_kib: u64, cancel: CancellationToken) -> Memory {
    let baseline_fds = hub.open_fds();
    let mut memory = Memory {
        baseline_kib,
        peak_kib: baseline_kib,
        samples: 0,
        baseline_fds,
        peak_fds: baseline_fds,
    };
    let mut tick = interval(RSS_INTERVAL);
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        if let Ok(now) = hub.memory() {
            memory.peak_kib = memory.peak_kib.max(now.rss_kib);
            memory.samples += 1;
        }
        if memory.samples % u64::from(FDS_EVERY) == 0 {
            if let Some(fds) = hub.open_fds() {
                memory.peak_fds = Some(memory.peak_fds.map_or(fds, |p| p.max(fds)));
            }
        }
    }
    memory
}

impl Watched {
    /// The health and memory checks; `rss_bound_kib` is the growth allowed over the baseline.
    pub(super) fn checks(&self, rss_bound_kib: u64, healthz_p99_ms: f64) -> Vec<Check> {
        let growth_kib = self
            .memory
            .peak_kib
            .saturating_sub(self.memory.baseline_kib);
        vec![
            Check::new(
                "healthz probes answered (200)",
                format!("{} of {}", self.answered, self.sent),
                format!("all, within {} ms", PROBE_TIMEOUT.as_millis()),
                self.sent > 0 && self.answered == self.sent,
            ),
            Check::at_most(
                "healthz p99, ms",
                self.latency.p99_us as f64 / 1000.0,
                healthz_p99_ms,
                1,
            ),
            Check::new(
                "hub RSS growth over the baseline, MiB",
                mib(growth_kib),
                format!("≤ {}", mib(rss_bound_kib)),
                growth_kib <= rss_bound_kib,
            ),
        ]
    }

    pub(super) fn rows(&self) -> Vec<(String, String)> {
        let l = &self.latency;
        let fds = match (self.memory.baseline_fds, self.memory.peak_fds) {
            (Some(before), Some(peak)) => format!("{before} → {peak}"),
            _ => "-".to_string(),
        };
        vec![
            (
                "healthz p50 / p99 / max, ms".into(),
                format!("{} / {} / {}", ms(l.p50_us), ms(l.p99_us), ms(l.max_us)),
            ),
            (
                format!("healthz over {HEALTHZ_LIMIT_MS} ms / unanswered"),
                format!("{} / {}", self.over_limit, kinds(&self.failures)),
            ),
            (
                "hub RSS baseline → peak, MiB".into(),
                format!(
                    "{} → {}",
                    mib(self.memory.baseline_kib),
                    mib(self.memory.peak_kib)
                ),
            ),
            ("hub open files baseline → peak".into(), fds),
        ]
    }

    pub(super) fn probe_json(&self) -> Value {
        json!({
            "sent": self.sent,
            "answered": self.answered,
            "failures": self.failures,
            "over_limit": self.over_limit,
            "latency": self.latency,
        })
    }

    pub(super) fn rss_json(&self) -> Value {
        json!({
            "baseline_kib": self.memory.baseline_kib,
            "peak_kib": self.memory.peak_kib,
            "growth_kib": self.memory.peak_kib.saturating_sub(self.memory.baseline_kib),
            "samples": self.memory.samples,
            "baseline_fds": self.memory.baseline_fds,
            "peak_fds": self.memory.peak_fds,
        })
    }
}
