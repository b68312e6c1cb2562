//! `steady`: users × connections receive notifications published at a fixed rate (or `max`,
//! or one step per rate of a sweep). Per step: delivered/s, publish→deliver latency
//! (p50/p99/p99.9/max), loss (expected deliveries missing after the grace period), duplicates
//! (a `seq` twice on one connection), and the hub's CPU seconds per 1,000 deliveries.

use std::time::Duration;

use anyhow::{bail, Result};
use serde::Serialize;
use serde_json::json;
use tokio::time::sleep;

use super::{
    announce_connected, connect_json, connect_rows, delivery_notes, run_tag, wait_for_deliveries,
    Context,
};
use crate::cli::SteadyArgs;
use crate::fleet::Fleet;
use crate::procfs::{Memory, WatchedProcess};
use crate::publisher::{PublishReport, PublishedStep, Publisher, PublisherSettings, Rate};
use crate::report::{mib, ms, opt, Report, Table};
use crate::stats::{
    ConnectReport, DeliveryReport, Latency, LatencySummary, LossAccount, StepDeliveries,
};

/// A sweep step fails when more than this share of its expected deliveries is lost.
const MAX_LOSS_SHARE: f64 = 0.001;
/// ... or when the publisher reached less than this share of the asked rate.
const MIN_RATE_SHARE: f64 = 0.95;

pub(crate) async fn run(ctx: &Context, args: &SteadyArgs) -> Result<Report> {
    if args.batch == 0 || args.batch > 1000 {
        bail!("--batch must be 1..=1000");
    }
    if args.batch > args.users {
        bail!("--batch cannot exceed --users");
    }
    if args.duration == 0 {
        bail!("--duration must be at least 1 second");
    }
    if args.sweep.iter().any(|r| !(*r > 0.0 && r.is_finite())) {
        bail!("--sweep rates must be positive numbers");
    }
    if ctx.credentials.api_key.is_none() {
        bail!("steady publishes over REST: give --api-key (or TIDINGS_LOAD_API_KEY)");
    }
    let rest = ctx.rest(
        args.publish_concurrency,
        Duration::from_secs(args.request_timeout),
    )?;
    rest.healthz().await?;

    let tag = run_tag();
    let spec = ctx.fleet_spec(&args.fleet, args.users, args.conns_per_user, &tag);
    let mut notes: Vec<String> = ctx
        .hub_capacity_note(spec.connections())
        .into_iter()
        .collect();
    let memory_at_start = ctx.hub_memory();
    eprintln!(
        "steady: {} users × {} {:?} connections",
        args.users, args.conns_per_user, args.fleet.transport
    );
    let mut fleet = Fleet::launch(spec, &ctx.credentials, args.fleet.procs, ctx.threads).await?;
    let connect = fleet.connect().await?;
    announce_connected(&connect);
    if connect.connected == 0 {
        bail!("no connection came up: {:?}", connect.failures);
    }
    let live = connect.live_connections(args.conns_per_user);

    let mut publisher = Publisher::new(
        rest,
        PublisherSettings {
            users: args.users,
            user_prefix: args.fleet.user_prefix.clone(),
            batch: args.batch,
            concurrency: args.publish_concurrency,
            run_tag: tag,
        },
    );
    let sweeping = !args.sweep.is_empty();
    // This process's CPU: tells whether the tool itself was the bottleneck (with --procs,
    // the receivers' CPU is in the workers and not counted here).
    let tool = WatchedProcess::new(std::process::id()).ok();
    let mut runs: Vec<StepRun> = Vec::new();
    for (index, rate) in args.rates().into_iter().enumerate() {
        let step = index as u32;
        if index > 0 {
            sleep(Duration::from_secs(args.pause)).await;
        }
        eprintln!("  step {step}: publishing {rate} for {} s", args.duration);
        let cpu_before = ctx.hub_cpu();
        let tool_cpu_before = tool.as_ref().and_then(|t| t.cpu_seconds().ok());
        let published = publisher
            .run_step(step, rate, Duration::from_secs(args.duration))
            .await?;
        let expected: u64 = published
            .sent_per_user
            .iter()
            .enumerate()
            .map(|(user, sent)| u64::from(*sent) * u64::from(live(user as u32)))
            .sum();
        wait_for_deliveries(&mut fleet, step, expected, Duration::from_secs(args.grace)).await?;
        let run = StepRun {
            step,
            rate,
            published,
            hub_cpu_seconds: cpu_before.zip(ctx.hub_cpu()).map(|(a, b)| b - a),
            hub_memory: ctx.hub_memory(),
            tool_cpu_seconds: tool_cpu_before
                .zip(tool.as_ref().and_then(|t| t.cpu_seconds().ok()))
                .map(|(a, b)| b - a),
        };
        let outcome = run.outcome(&fleet.report().await?, &live, args);
        eprintln!("  step {step}: {}", outcome.summary_line());
        let passed = outcome.passed;
        runs.push(run);
        if sweeping && !args.sweep_all && !passed {
            notes.push(format!(
                "sweep stopped at {rate}: the step missed its target (p99, publish rate or loss); \
                 --sweep-all runs every step"
            ));
            break;
        }
    }
    let deliveries = fleet.stop().await?;
    // Judged on the final report: a delivery that came in after its step's grace still counts.
    let outcomes: Vec<StepOutcome> = runs
        .iter()
        .map(|run| run.outcome(&deliveries, &live, args))
        .collect();
    drop(live); // It borrows `connect`, which moves next.
    let finished = Finished {
        connect,
        memory_at_start,
        outcomes,
        deliveries,
        notes,
    };
    Ok(finished.into_report(ctx, args))
}

/// A finished run, before it is laid out.
struct Finished {
    connect: ConnectReport,
    memory_at_start: Option<Memory>,
    outcomes: Vec<StepOutcome>,
    deliveries: DeliveryReport,
    notes: Vec<String>,
}

impl Finished {
    fn into_report(self, ctx: &Context, args: &SteadyArgs) -> Report {
        let Finished {
            connect,
            memory_at_start,
            outcomes,
            deliveries,
            mut notes,
        } = self;
        let sweeping = !args.sweep.is_empty();
        let highest_passing = outcomes
            .iter()
            .filter(|o| o.passed)
            .filter_map(|o| o.target_rate)
            .fold(None, |best: Option<f64>, rate| {
                Some(best.map_or(rate, |b| b.max(rate)))
            });

        let mut setup = Table::metrics("steady: setup and connect");
        setup.metric("hub", &ctx.url);
        setup.metric(
            "transport",
            format!("{:?}", args.fleet.transport).to_lowercase(),
        );
        setup.metric(
            "users × connections",
            format!("{} × {}", args.users, args.conns_per_user),
        );
        setup.metric(
            "publish",
            format!(
                "{} recipient(s)/request, {} in flight, {} s/step, grace {} s",
                args.batch, args.publish_concurrency, args.duration, args.grace
            ),
        );
        connect_rows(&mut setup, &connect);
        if let Some(memory) = memory_at_start {
            setup.metric("hub RSS before connecting, MiB", mib(memory.rss_kib));
        }

        let ok_header = format!("p99<{}ms", args.p99_target_ms);
        let mut steps = Table::new(
            "steady: steps (latency = publish request sent → frame received)",
            &[
                "rate",
                "published/s",
                "pub errors",
                "delivered/s",
                "expected",
                "lost",
                "dups",
                "p50 ms",
                "p99 ms",
                "p99.9 ms",
                "max ms",
                "hub CPU s",
                "CPU s/1k deliv",
                "hub RSS MiB",
                "tool CPU s",
                &ok_header,
            ],
        );
        for o in &outcomes {
            steps.row(vec![
                o.rate.clone(),
                format!("{:.0}", o.publish.achieved_rate),
                o.publish.errors.values().sum::<u64>().to_string(),
                format!("{:.0}", o.delivered_per_second),
                o.loss.expected.to_string(),
                o.loss.lost.to_string(),
                o.duplicates.to_string(),
                ms(o.latency.p50_us),
                ms(o.latency.p99_us),
                ms(o.latency.p999_us),
                ms(o.latency.max_us),
                opt(o.hub_cpu_seconds, 2),
                opt(o.hub_cpu_seconds_per_1000_deliveries, 4),
                o.hub_rss_kib.map_or_else(|| "-".to_string(), mib),
                opt(o.tool_cpu_seconds, 2),
                if o.passed { "yes" } else { "no" }.to_string(),
            ]);
        }
        let mut tables = vec![setup, steps];
        if sweeping {
            let mut sweep = Table::metrics("steady: sweep");
            sweep.metric(
                &format!("highest rate with p99 < {} ms, /s", args.p99_target_ms),
                opt(highest_passing, 0),
            );
            tables.push(sweep);
        }

        for o in &outcomes {
            for (kind, count) in &o.publish.errors {
                let sample = o
                    .publish
                    .error_samples
                    .get(kind)
                    .map(|s| format!(" (first body: {s})"))
                    .unwrap_or_default();
                notes.push(format!(
                    "step {}: {count} publish errors: {kind}{sample}",
                    o.step
                ));
            }
            if o.loss.unexpected > 0 {
                notes.push(format!(
                    "step {}: {} deliveries beyond the expected (publishes that failed on the client \
                     but reached the hub?)",
                    o.step, o.loss.unexpected
                ));
            }
        }
        notes.extend(delivery_notes(&deliveries));

        let result = json!({
            "params": {
                "users": args.users,
                "conns_per_user": args.conns_per_user,
                "transport": args.fleet.transport,
                "rates": args.rates().iter().map(ToString::to_string).collect::<Vec<_>>(),
                "duration_seconds": args.duration,
                "grace_seconds": args.grace,
                "batch": args.batch,
                "publish_concurrency": args.publish_concurrency,
                "p99_target_ms": args.p99_target_ms,
                "procs": args.fleet.procs,
                "source_ips": args.fleet.source_ips,
            },
            "connect": connect_json(&connect),
            "hub_rss_kib_before_connect": memory_at_start.map(|m| m.rss_kib),
            "steps": outcomes,
            "highest_rate_p99_ok": highest_passing,
            "foreign": deliveries.foreign,
            "misrouted": deliveries.misrouted,
            "parse_errors": deliveries.parse_errors,
            "frames_by_type": deliveries.frames_by_type,
            "disconnects": deliveries.disconnects,
            "disconnect_reasons": deliveries.disconnect_reasons,
        });
        Report {
            scenario: "steady",
            tables,
            notes,
            result,
        }
    }
}

/// What was measured during one step, before the deliveries are judged.
struct StepRun {
    step: u32,
    rate: Rate,
    published: PublishedStep,
    hub_cpu_seconds: Option<f64>,
    hub_memory: Option<Memory>,
    tool_cpu_seconds: Option<f64>,
}

/// One step's figures.
#[derive(Debug, Serialize)]
struct StepOutcome {
    step: u32,
    rate: String,
    target_rate: Option<f64>,
    publish: PublishReport,
    loss: LossAccount,
    /// Notification frames, duplicates included.
    received: u64,
    duplicates: u64,
    /// Unique deliveries / (last delivery − first publish).
    delivered_per_second: f64,
    latency: LatencySummary,
    hub_cpu_seconds: Option<f64>,
    hub_cpu_seconds_per_1000_deliveries: Option<f64>,
    hub_rss_kib: Option<u64>,
    /// CPU seconds of the tool's main process over the step (publisher, and the receivers
    /// unless they are in worker processes).
    tool_cpu_seconds: Option<f64>,
    /// p99 under the target, the publisher kept up, loss at most 0.1 %.
    passed: bool,
}

impl StepRun {
    fn outcome(
        &self,
        report: &DeliveryReport,
        live: &dyn Fn(u32) -> u32,
        args: &SteadyArgs,
    ) -> StepOutcome {
        let empty = StepDeliveries::default();
        let deliveries = report.steps.get(&self.step).unwrap_or(&empty);
        let sent = &self.published.sent_per_user;
        let loss = LossAccount::compute(
            deliveries,
            0..args.users,
            |user| u64::from(sent.get(user as usize).copied().unwrap_or(0)),
            live,
        );
        let latency = Latency::from_snapshot(&deliveries.latency).summary();
        let span = deliveries.last_us.saturating_sub(self.published.started_us) as f64 / 1e6;
        let delivered_per_second = if span > 0.0 {
            deliveries.unique as f64 / span
        } else {
            0.0
        };
        let kept_up = match self.rate {
            Rate::Fixed(rate) => self.published.report.achieved_rate >= MIN_RATE_SHARE * rate,
            Rate::Max => true,
        };
        let loss_ok = loss.lost as f64 <= loss.expected as f64 * MAX_LOSS_SHARE;
        let passed = latency.count > 0
            && (latency.p99_us as f64) < args.p99_target_ms * 1000.0
            && kept_up
            && loss_ok;
        StepOutcome {
            step: self.step,
            rate: self.rate.to_string(),
            target_rate: self.rate.per_second(),
            publish: self.published.report.clone(),
            loss,
            received: deliveries.received,
            duplicates: deliveries.duplicates,
            delivered_per_second,
            latency,
            hub_cpu_seconds: self.hub_cpu_seconds,
            hub_cpu_seconds_per_1000_deliveries: self
                .hub_cpu_seconds
                .filter(|_| deliveries.unique > 0)
                .map(|cpu| cpu / (deliveries.unique as f64 / 1000.0)),
            hub_rss_kib: self.hub_memory.map(|m| m.rss_kib),
            tool_cpu_seconds: self.tool_cpu_seconds,
            passed,
        }
    }
}

impl StepOutcome {
    fn summary_line(&self) -> String {
        format!(
            "published {:.0}/s, delivered {:.0}/s, lost {}/{}, dups {}, p50 {} ms, p99 {} ms, max {} ms",
            self.publish.achieved_rate,
            self.delivered_per_second,
            self.loss.lost,
            self.loss.expected,
            self.duplicates,
            ms(self.latency.p50_us),
            ms(self.latency.p99_us),
            ms(self.latency.max_us)
        )
    }
}
