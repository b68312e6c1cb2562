//! Measurements: latency histograms that survive a trip through JSON (so worker processes can
//! send them to the parent), and the connect and delivery reports that fleets produce.
//!
//! Every report here has a `merge` so that the parent can add up the reports of its workers; the
//! merged report is the same as if one process had held every connection.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Largest latency the histograms track (2 minutes, in microseconds); larger values are clamped.
const LATENCY_MAX_US: u64 = 120_000_000;

/// Microseconds since the Unix epoch, the clock every process of a run shares.
pub(crate) fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A latency histogram in microseconds (1 µs .. 2 min, 3 significant digits).
#[derive(Debug, Clone)]
pub(crate) struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    pub(crate) fn new() -> Self {
        let hist = Histogram::new_with_bounds(1, LATENCY_MAX_US, 3)
            .expect("constant histogram bounds are valid");
        Self { hist }
    }

    pub(crate) fn record(&mut self, micros: u64) {
        self.hist.saturating_record(micros.clamp(1, LATENCY_MAX_US));
    }

    /// The recorded buckets, compact enough to put in a JSON line.
    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: self
                .hist
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
        }
    }

    pub(crate) fn add_snapshot(&mut self, snapshot: &HistogramSnapshot) {
        for &(value, count) in &snapshot.buckets {
            self.hist
                .saturating_record_n(value.clamp(1, LATENCY_MAX_US), count);
        }
    }

    pub(crate) fn from_snapshot(snapshot: &HistogramSnapshot) -> Self {
        let mut latency = Self::new();
        latency.add_snapshot(snapshot);
        latency
    }

    pub(crate) fn summary(&self) -> LatencySummary {
        if self.hist.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: self.hist.len(),
            mean_us: self.hist.mean().round() as u64,
            p50_us: self.hist.value_at_quantile(0.50),
            p90_us: self.hist.value_at_quantile(0.90),
            p99_us: self.hist.value_at_quantile(0.99),
            p999_us: self.hist.value_at_quantile(0.999),
            max_us: self.hist.max(),
        }
    }
}

/// A histogram as `(value, count)` pairs: what crosses the worker → parent pipe.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct HistogramSnapshot {
    pub(crate) buckets: Vec<(u64, u64)>,
}

/// The figures a report shows for a latency distribution, all in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct LatencySummary {
    pub(crate) count: u64,
    pub(crate) mean_us: u64,
    pub(crate) p50_us: u64,
    pub(crate) p90_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) p999_us: u64,
    pub(crate) max_us: u64,
}

/// How the connect phase of a fleet went.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ConnectReport {
    /// Connections the fleet was asked to open.
    pub(crate) requested: u64,
    /// Connections that got their first event (`hello` on WS, the first event on SSE).
    pub(crate) connected: u64,
    pub(crate) failed: u64,
    /// Failures by kind (`http 401`, `tcp AddrNotAvailable`, `timeout`, ...).
    pub(crate) failures: BTreeMap<String, u64>,
    /// `(global user index, connections of that user that failed)`, only users with failures:
    /// the expected deliveries of a user are counted over its live connections only.
    pub(crate) failed_per_user: Vec<(u32, u32)>,
    /// Unix µs of the first connect attempt (0 when nothing was attempted).
    pub(crate) first_attempt_us: u64,
    /// Unix µs of the last first-event (0 when nothing connected).
    pub(crate) last_ready_us: u64,
    /// Per connection: attempt start → first event, µs.
    pub(crate) latency: HistogramSnapshot,
    /// Resident memory of the load tool's process(es) once connected, KiB.
    pub(crate) client_rss_kib: u64,
    /// Processes that held the connections.
    pub(crate) processes: u32,
}

impl ConnectReport {
    pub(crate) fn merge(&mut self, other: &ConnectReport) {
        self.requested += other.requested;
        self.connected += other.connected;
        self.failed += other.failed;
        merge_counts(&mut self.failures, &other.failures);
        self.failed_per_user
            .extend(other.failed_per_user.iter().copied());
        self.first_attempt_us = min_nonzero(self.first_attempt_us, other.first_attempt_us);
        self.last_ready_us = self.last_ready_us.max(other.last_ready_us);
        let mut latency = Latency::from_snapshot(&self.latency);
        latency.add_snapshot(&other.latency);
        self.latency = latency.snapshot();
        self.client_rss_kib += other.client_rss_kib;
        self.processes += other.processes;
    }

    /// Seconds from the first attempt to the last first-event.
    pub(crate) fn span_seconds(&self) -> f64 {
        if self.last_ready_us <= self.first_attempt_us || self.first_attempt_us == 0 {
            return 0.0;
        }
        (self.last_ready_us - self.first_attempt_us) as f64 / 1e6
    }

    /// Connections accepted per second over [`Self::span_seconds`].
    pub(crate) fn accepted_per_second(&self) -> f64 {
        let span = self.span_seconds();
        if span > 0.0 {
            self.connected as f64 / span
        } else {
            0.0
        }
    }

    /// Live connections of a user, given how many each user opened.
    pub(crate) fn live_connections(&self, conns_per_user: u32) -> impl Fn(u32) -> u32 + '_ {
        let failed: BTreeMap<u32, u32> = self.failed_per_user.iter().copied().collect();
        move |user| conns_per_user.saturating_sub(failed.get(&user).copied().unwrap_or(0))
    }
}

/// Deliveries seen for one step (one publish rate, or one burst) of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct StepDeliveries {
    /// Notification frames of this step, duplicates included.
    pub(crate) received: u64,
    /// Distinct `(connection, seq)` pairs.
    pub(crate) unique: u64,
    /// Frames whose `seq` the same connection had already received.
    pub(crate) duplicates: u64,
    /// Unix µs of the first and last unique delivery.
    pub(crate) first_us: u64,
    pub(crate) last_us: u64,
    /// Publish timestamp → receipt, µs, unique deliveries only.
    pub(crate) latency: HistogramSnapshot,
    /// `(global user index, unique deliveries summed over the user's connections)`.
    pub(crate) per_user: Vec<(u32, u32)>,
}

impl StepDeliveries {
    fn merge(&mut self, other: &StepDeliveries) {
        self.received += other.received;
        self.unique += other.unique;
        self.duplicates += other.duplicates;
        self.first_us = min_nonzero(self.first_us, other.first_us);
        self.last_us = self.last_us.max(other.last_us);
        let mut latency = Latency::from_snapshot(&self.latency);
        latency.add_snapshot(&other.latency);
        self.latency = latency.snapshot();
        self.per_user.extend(other.per_user.iter().copied());
    }
}

/// Everything a fleet received, by step, plus the frames that were not ours.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct DeliveryReport {
    pub(crate) steps: BTreeMap<u32, StepDeliveries>,
    /// Notification frames without this run's tag (older runs, other publishers).
    pub(crate) foreign: u64,
    /// Notification frames whose `user_id` was not the connection's user: a routing bug.
    pub(crate) misrouted: u64,
    /// Frames or events that could not be parsed.
    pub(crate) parse_errors: u64,
    /// Frames by `type` (hello, notification, unread_count, ...).
    pub(crate) frames_by_type: BTreeMap<String, u64>,
    /// Connections that ended after they were up, before the fleet stopped.
    pub(crate) disconnects: u64,
    /// Why they ended (`close 4008`, `eof`, `io ConnectionReset`, ...).
    pub(crate) disconnect_reasons: BTreeMap<String, u64>,
    /// Resident memory of the load tool's process(es) when the report was taken, KiB.
    pub(crate) client_rss_kib: u64,
}

impl DeliveryReport {
    pub(crate) fn merge(&mut self, other: &DeliveryReport) {
        for (step, deliveries) in &other.steps {
            self.steps.entry(*step).or_default().merge(deliveries);
        }
        self.foreign += other.foreign;
        self.misrouted += other.misrouted;
        self.parse_errors += other.parse_errors;
        merge_counts(&mut self.frames_by_type, &other.frames_by_type);
        self.disconnects += other.disconnects;
        merge_counts(&mut self.disconnect_reasons, &other.disconnect_reasons);
        self.client_rss_kib += other.client_rss_kib;
    }
}

/// Expected versus received deliveries of one step.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct LossAccount {
    /// Σ over users of notifications published to the user × the user's live connections.
    pub(crate) expected: u64,
    /// Unique deliveries counted against `expected` (at most `expected` per user).
    pub(crate) delivered: u64,
    /// `expected − delivered`.
    pub(crate) lost: u64,
    /// Unique deliveries beyond what a user was expected to get (e.g. a publish that timed out
    /// on the client but was stored and pushed by the hub).
    pub(crate) unexpected: u64,
}

impl LossAccount {
    /// `published(user)` is how many notifications of the step the user was sent,
    /// `live(user)` its live connections.
    pub(crate) fn compute(
        deliveries: &StepDeliveries,
        users: impl IntoIterator<Item = u32>,
        published: impl Fn(u32) -> u64,
        live: impl Fn(u32) -> u32,
    ) -> Self {
        let mut got: BTreeMap<u32, u64> = BTreeMap::new();
        for &(user, count) in &deliveries.per_user {
            *got.entry(user).or_default() += u64::from(count);
        }
        let mut account = LossAccount::default();
        for user in users {
            let expected = published(user) * u64::from(live(user));
            let received = got.remove(&user).unwrap_or(0);
            account.expected += expected;
            account.delivered += received.min(expected);
            account.lost += expected.saturating_sub(received);
            account.unexpected += received.saturating_sub(expected);
        }
        account.unexpected += got.values().sum::<u64>();
        account
    }
}

fn merge_counts(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (key, count) in from {
        *into.entry(key.clone()).or_default() += count;
    }
}

fn min_nonzero(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (a, b) => a.min(b),
    }
}

/// Median of a list of values (the mean of the two middle ones for an even count).
pub(crate) fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_survives_a_snapshot_round_trip() {
        let mut latency = Latency::new();
        for us in 1..=10_000u64 {
            latency.record(us);
        }
        let json = serde_json::to_string(&latency.snapshot()).unwrap();
        let back = Latency::from_snapshot(&serde_json::from_str(&json).unwrap());
        assert_eq!(back.summary(), latency.summary());
        let summary = back.summary();
        assert_eq!(summary.count, 10_000);
        assert!((4_990..=5_010).contains(&summary.p50_us), "{summary:?}");
        assert!((9_890..=9_910).contains(&summary.p99_us), "{summary:?}");
        assert!(summary.max_us >= 10_000 && summary.max_us <= 10_010);
    }

    #[test]
    fn merged_reports_add_up() {
        let mut a = DeliveryReport::default();
        let mut b = DeliveryReport::default();
        let mut hist = Latency::new();
        hist.record(1_000);
        a.steps.insert(
            0,
            StepDeliveries {
                received: 3,
                unique: 2,
                duplicates: 1,
                first_us: 100,
                last_us: 200,
                latency: hist.snapshot(),
                per_user: vec![(0, 2)],
            },
        );
        b.steps.insert(
            0,
            StepDeliveries {
                received: 1,
                unique: 1,
                duplicates: 0,
                first_us: 50,
                last_us: 150,
                latency: hist.snapshot(),
                per_user: vec![(1, 1)],
            },
        );
        a.merge(&b);
        let step = &a.steps[&0];
        assert_eq!((step.received, step.unique, step.duplicates), (4, 3, 1));
        assert_eq!((step.first_us, step.last_us), (50, 200));
        assert_eq!(Latency::from_snapshot(&step.latency).summary().count, 2);
    }

    #[test]
    fn loss_counts_each_user_against_its_live_connections() {
        let deliveries = StepDeliveries {
            per_user: vec![(0, 10), (1, 3), (7, 1)],
            ..Default::default()
        };
        // Users 0..3 were each sent 5 notifications; user 1 has one of its two connections down.
        let account =
            LossAccount::compute(&deliveries, 0..3, |_| 5, |u| if u == 1 { 1 } else { 2 });
        assert_eq!(account.expected, 10 + 5 + 10);
        assert_eq!(account.delivered, 10 + 3);
        assert_eq!(account.lost, 2 + 10);
        assert_eq!(account.unexpected, 1);
    }

    #[test]
    fn connect_rate_uses_first_attempt_to_last_ready() {
        let report = ConnectReport {
            connected: 500,
            first_attempt_us: 1_000_000,
            last_ready_us: 1_500_000,
            ..Default::default()
        };
        assert!((report.accepted_per_second() - 1000.0).abs() < 1e-9);
    }

    #[test]
    fn median_of_even_and_odd_lists() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }
}
