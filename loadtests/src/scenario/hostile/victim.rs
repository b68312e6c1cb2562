//! The victim: another tenant, on 127.0.0.1, publishing at a modest rate to one of its users
//! who holds WebSockets open. It is connected and warmed up (its keep-alive connections
//! exist) before the attack starts, then publishes for the whole window.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};

use super::{kinds, Check, VICTIM_SENT_SHARE};
use crate::cli::HostileArgs;
use crate::fleet::{Fleet, FleetSpec, Transport};
use crate::publisher::{PublishReport, PublishedStep, Publisher, PublisherSettings, Rate};
use crate::report::ms;
use crate::scenario::{run_tag, wait_for_deliveries, Context};
use crate::stats::{Latency, LatencySummary};
use crate::tokens::{Credentials, TokenMode};

/// Publisher steps: a warm-up, then the window.
const WARM_UP_STEP: u32 = 0;
const WINDOW_STEP: u32 = 1;

/// The warm-up: one second at the victim's rate, before the attack.
const WARM_UP: Duration = Duration::from_secs(1);

/// How long deliveries may trail the last publish before they count as lost.
const GRACE: Duration = Duration::from_secs(5);

/// A victim publish not answered within this fails (it is far past any limit anyway).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Victim publishes in flight at most (at 50/s and a few ms each, 1 or 2 are).
const PUBLISH_CONCURRENCY: usize = 16;

/// The victim's user ids are `victim-0`.
const USER_PREFIX: &str = "victim";

pub(super) struct Victim {
    fleet: Fleet,
    publisher: Publisher,
    connections: u64,
    rate: f64,
    window: Duration,
    p99_limit_ms: f64,
}

/// The victim's window, judged.
pub(super) struct VictimResult {
    publish: PublishReport,
    planned: u64,
    expected: u64,
    delivered: u64,
    deliver_latency: LatencySummary,
    disconnects: u64,
    disconnect_reasons: std::collections::BTreeMap<String, u64>,
    p99_limit_ms: f64,
}

impl Victim {
    /// Opens the victim's WebSockets and warms its publisher up; fails when the hub is not
    /// healthy for the victim before any attack.
    pub(super) async fn start(ctx: &Context, args: &HostileArgs) -> Result<Self> {
        let tag = run_tag();
        let credentials = Credentials {
            api_key: args.victim_api_key.clone(),
            jwt_secret: args.victim_jwt_secret.clone(),
        };
        let spec = FleetSpec {
            url: ctx.url.clone(),
            tenant: args.victim_tenant.clone(),
            transport: Transport::Ws,
            user_prefix: USER_PREFIX.to_string(),
            role: "front_desk".to_string(),
            user_start: 0,
            user_end: 1,
            conns_per_user: args.victim_connections.max(1),
            source_ips: vec![Ipv4Addr::LOCALHOST],
            connect_concurrency: 4,
            connect_timeout_ms: 10_000,
            ws_read_buffer: 4096,
            token_mode: TokenMode::Local,
            token_ttl_seconds: 3600,
            run_tag: tag.clone(),
            hard_timeout_seconds: ctx.hard_timeout.as_secs() + 30,
        };
        let mut fleet = Fleet::launch(spec, &credentials, 1, None).await?;
        let connect = fleet.connect().await?;
        if connect.failed > 0 {
            bail!(
                "victim: {} of {} WebSockets failed to connect before the attack: {:?}",
                connect.failed,
                connect.requested,
                connect.failures
            );
        }
        let rest = crate::rest::RestClient::new(
            &ctx.url,
            args.victim_api_key.as_deref(),
            PUBLISH_CONCURRENCY,
            REQUEST_TIMEOUT,
        )?;
        let mut publisher = Publisher::new(
            rest,
            PublisherSettings {
                users: 1,
                user_prefix: USER_PREFIX.to_string(),
                batch: 1,
                concurrency: PUBLISH_CONCURRENCY,
                run_tag: tag,
            },
        );
        let warm = publisher
            .run_step(WARM_UP_STEP, Rate::Fixed(args.victim_rate), WARM_UP)
            .await?;
        if warm.report.requests_ok != warm.report.requests || warm.report.requests == 0 {
            bail!(
                "victim: the warm-up before the attack failed: {:?} {:?}",
                warm.report.errors,
                warm.report.error_samples
            );
        }
        Ok(Self {
            fleet,
            publisher,
            connections: connect.connected,
            rate: args.victim_rate,
            window: Duration::from_secs(args.window),
            p99_limit_ms: args.victim_p99_ms,
        })
    }

    /// Publishes for `window` at the victim's rate.
    pub(super) async fn publish(&mut self, window: Duration) -> Result<PublishedStep> {
        self.publisher
            .run_step(WINDOW_STEP, Rate::Fixed(self.rate), window)
            .await
    }

    /// Waits for the window's deliveries, closes the WebSockets, judges.
    pub(super) async fn finish(mut self, published: PublishedStep) -> Result<VictimResult> {
        let accepted = published.sent_per_user.first().copied().unwrap_or(0);
        let expected = u64::from(accepted) * self.connections;
        let delivered = wait_for_deliveries(&mut self.fleet, WINDOW_STEP, expected, GRACE).await?;
        let report = self.fleet.stop().await.context("stopping the victim")?;
        let deliver_latency = report
            .steps
            .get(&WINDOW_STEP)
            .map(|step| Latency::from_snapshot(&step.latency).summary())
            .unwrap_or_default();
        Ok(VictimResult {
            planned: (self.rate * self.window.as_secs_f64()).round() as u64,
            publish: published.report,
            expected,
            delivered,
            deliver_latency,
            disconnects: report.disconnects,
            disconnect_reasons: report.disconnect_reasons,
            p99_limit_ms: self.p99_limit_ms,
        })
    }
}

impl VictimResult {
    pub(super) fn checks(&self) -> Vec<Check> {
        let p = &self.publish;
        let failed: u64 = p.errors.values().sum();
        let detail = if p.error_samples.is_empty() {
            kinds(&p.errors)
        } else {
            format!("{}; first bodies: {:?}", kinds(&p.errors), p.error_samples)
        };
        let minimum = (self.planned as f64 * VICTIM_SENT_SHARE).floor() as u64;
        vec![
            Check::zero(
                "victim publishes failed (5xx, 4xx, no answer)",
                failed,
                detail,
            ),
            Check::new(
                "victim publishes accepted",
                format!("{} of {} planned", p.requests_ok, self.planned),
                format!("≥ {minimum}"),
                p.requests_ok >= minimum,
            ),
            Check::at_most(
                "victim publish p99, ms",
                p.request_latency.p99_us as f64 / 1000.0,
                self.p99_limit_ms,
                1,
            ),
            Check::zero(
                "victim deliveries lost",
                self.expected.saturating_sub(self.delivered),
                format!("{} of {} delivered", self.delivered, self.expected),
            ),
            Check::zero(
                "victim WebSockets closed by the hub",
                self.disconnects,
                kinds(&self.disconnect_reasons),
            ),
        ]
    }

    pub(super) fn rows(&self) -> Vec<(String, String)> {
        let l = &self.publish.request_latency;
        let d = &self.deliver_latency;
        vec![
            (
                "victim publish p50 / p99 / max, ms".into(),
                format!("{} / {} / {}", ms(l.p50_us), ms(l.p99_us), ms(l.max_us)),
            ),
            (
                "victim publish → deliver p50 / p99 / max, ms".into(),
                format!("{} / {} / {}", ms(d.p50_us), ms(d.p99_us), ms(d.max_us)),
            ),
            (
                "victim publishes/s achieved".into(),
                format!("{:.1}", self.publish.achieved_rate),
            ),
        ]
    }

    pub(super) fn json(&self) -> Value {
        json!({
            "publish": self.publish,
            "planned": self.planned,
            "expected_deliveries": self.expected,
            "delivered": self.delivered,
            "lost": self.expected.saturating_sub(self.delivered),
            "deliver_latency": self.deliver_latency,
            "disconnects": self.disconnects,
            "disconnect_reasons": self.disconnect_reasons,
        })
    }
}
