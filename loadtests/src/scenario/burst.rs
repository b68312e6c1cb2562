//! `burst`: one `role` publish reaches every directory user of the role; each of the fleet's
//! users × connections gets one notification. Per burst: the POST's own time, and the time
//! from sending the POST until the last expected delivery landed (plus the spread: first,
//! p50, p99). Users are put in the directory first (`PUT /v1/users/{id}`).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{bail, Result};
use futures_util::{stream, StreamExt};
use serde::Serialize;
use serde_json::json;
use tokio::time::{sleep, Instant};

use super::{
    announce_connected, connect_json, connect_rows, delivery_notes, run_tag, wait_for_deliveries,
    Context,
};
use crate::cli::BurstArgs;
use crate::fleet::{user_id, user_index, Fleet};
use crate::report::{ms, opt, Report, Table};
use crate::rest::{PublishBody, RestClient};
use crate::stats::{
    median, unix_us, ConnectReport, DeliveryReport, Latency, LatencySummary, LossAccount,
    StepDeliveries,
};

pub(crate) async fn run(ctx: &Context, args: &BurstArgs) -> Result<Report> {
    if ctx.credentials.api_key.is_none() {
        bail!("burst publishes over REST: give --api-key (or TIDINGS_LOAD_API_KEY)");
    }
    if args.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    let rest = ctx.rest(
        args.register_concurrency.max(1),
        Duration::from_secs(args.request_timeout),
    )?;
    rest.healthz().await?;
    let mut notes = Vec::new();
    if !args.no_register {
        register(&rest, args, &mut notes).await?;
    }

    let tag = run_tag();
    let spec = ctx.fleet_spec(&args.fleet, args.users, args.conns_per_user, &tag);
    notes.extend(ctx.hub_capacity_note(spec.connections()));
    eprintln!(
        "burst: {} users × {} {:?} connections, role {}",
        args.users, args.conns_per_user, args.fleet.transport, args.fleet.role
    );
    let mut fleet = Fleet::launch(spec, &ctx.credentials, args.fleet.procs, ctx.threads).await?;
    let connect = fleet.connect().await?;
    announce_connected(&connect);
    if connect.connected == 0 {
        bail!("no connection came up: {:?}", connect.failures);
    }
    let live = connect.live_connections(args.conns_per_user);
    sleep(Duration::from_secs(1)).await;

    let mut runs = Vec::new();
    for burst in 0..args.repeat {
        if burst > 0 {
            sleep(Duration::from_secs(args.pause)).await;
        }
        let cpu_before = ctx.hub_cpu();
        let started_us = unix_us();
        let started = Instant::now();
        let body = json!({
            "role": args.fleet.role,
            "title": "tidings-load burst",
            "message": format!("burst {burst}"),
            "data": { "lt": tag, "step": burst, "seq": burst, "ts": started_us },
        });
        let response = rest.publish(serde_json::to_vec(&body)?).await;
        let post_us = started.elapsed().as_micros() as u64;
        let mut run = BurstRun {
            burst,
            started_us,
            post_us,
            status: None,
            recipients: BTreeSet::new(),
            recipients_outside_fleet: 0,
            hub_cpu_seconds: None,
        };
        match response {
            Ok(response) if (200..300).contains(&response.status) => {
                run.status = Some(response.status);
                let published: PublishBody = serde_json::from_slice(&response.body)?;
                for notification in &published.notifications {
                    match user_index(&args.fleet.user_prefix, &notification.user_id) {
                        Some(user) if user < args.users => {
                            run.recipients.insert(user);
                        }
                        _ => run.recipients_outside_fleet += 1,
                    }
                }
            }
            Ok(response) => {
                run.status = Some(response.status);
                notes.push(format!(
                    "burst {burst}: POST answered {}: {}",
                    response.status,
                    String::from_utf8_lossy(&response.body[..response.body.len().min(300)])
                ));
            }
            Err(e) => notes.push(format!("burst {burst}: POST failed: {}", e.kind())),
        }
        let expected: u64 = run.recipients.iter().map(|u| u64::from(live(*u))).sum();
        eprintln!(
            "  burst {burst}: POST took {} ms, {} recipients in the fleet, waiting for {expected} deliveries",
            ms(post_us),
            run.recipients.len()
        );
        let got = wait_for_deliveries(&mut fleet, burst, expected, Duration::from_secs(args.grace))
            .await?;
        run.hub_cpu_seconds = cpu_before.zip(ctx.hub_cpu()).map(|(a, b)| b - a);
        eprintln!("  burst {burst}: {got}/{expected} delivered");
        runs.push(run);
    }
    let deliveries = fleet.stop().await?;

    let outcomes: Vec<BurstOutcome> = runs
        .iter()
        .map(|run| {
            let empty = StepDeliveries::default();
            let step = deliveries.steps.get(&run.burst).unwrap_or(&empty);
            let loss = LossAccount::compute(
                step,
                0..args.users,
                |u| u64::from(run.recipients.contains(&u)),
                &live,
            );
            let since_post = |at: u64| (at > 0).then(|| at.saturating_sub(run.started_us));
            BurstOutcome {
                burst: run.burst,
                status: run.status,
                post_us: run.post_us,
                recipients_in_fleet: run.recipients.len() as u64,
                recipients_outside_fleet: run.recipients_outside_fleet,
                loss,
                duplicates: step.duplicates,
                first_delivery_us: since_post(step.first_us),
                last_delivery_us: since_post(step.last_us),
                latency: Latency::from_snapshot(&step.latency).summary(),
                complete: loss.lost == 0 && loss.expected > 0,
                hub_cpu_seconds: run.hub_cpu_seconds,
            }
        })
        .collect();

    drop(live); // It borrows `connect`.
    Ok(into_report(
        ctx,
        args,
        &connect,
        &outcomes,
        &deliveries,
        notes,
    ))
}

/// Lays out a finished run.
fn into_report(
    ctx: &Context,
    args: &BurstArgs,
    connect: &ConnectReport,
    outcomes: &[BurstOutcome],
    deliveries: &DeliveryReport,
    mut notes: Vec<String>,
) -> Report {
    let mut setup = Table::metrics("burst: setup and connect");
    setup.metric("hub", &ctx.url);
    setup.metric(
        "transport",
        format!("{:?}", args.fleet.transport).to_lowercase(),
    );
    setup.metric(
        "users × connections",
        format!("{} × {}", args.users, args.conns_per_user),
    );
    setup.metric("role", &args.fleet.role);
    connect_rows(&mut setup, connect);

    let mut table = Table::new(
        "burst: role publish → last delivery (ms from sending the POST)",
        &[
            "burst",
            "POST ms",
            "recipients",
            "expected",
            "delivered",
            "lost",
            "dups",
            "first ms",
            "p50 ms",
            "p99 ms",
            "last ms",
            "hub CPU s",
        ],
    );
    let opt_ms = |v: Option<u64>| v.map_or_else(|| "-".to_string(), ms);
    for o in outcomes {
        table.row(vec![
            o.burst.to_string(),
            ms(o.post_us),
            (o.recipients_in_fleet + o.recipients_outside_fleet).to_string(),
            o.loss.expected.to_string(),
            o.loss.delivered.to_string(),
            o.loss.lost.to_string(),
            o.duplicates.to_string(),
            opt_ms(o.first_delivery_us),
            ms(o.latency.p50_us),
            ms(o.latency.p99_us),
            opt_ms(o.last_delivery_us),
            opt(o.hub_cpu_seconds, 2),
        ]);
    }
    let median_of = |f: &dyn Fn(&BurstOutcome) -> Option<f64>| {
        let mut values: Vec<f64> = outcomes.iter().filter_map(f).collect();
        median(&mut values)
    };
    let medians = json!({
        "post_ms": median_of(&|o| Some(o.post_us as f64 / 1000.0)),
        "last_delivery_ms": median_of(&|o| o.last_delivery_us.map(|v| v as f64 / 1000.0)),
        "p99_ms": median_of(&|o| Some(o.latency.p99_us as f64 / 1000.0)),
        "hub_cpu_seconds": median_of(&|o| o.hub_cpu_seconds),
    });
    if outcomes.len() > 1 {
        let cell = |key: &str, decimals: usize| opt(medians[key].as_f64(), decimals);
        table.row(vec![
            "median".into(),
            cell("post_ms", 2),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            cell("p99_ms", 2),
            cell("last_delivery_ms", 2),
            cell("hub_cpu_seconds", 2),
        ]);
    }
    for o in outcomes {
        if o.recipients_outside_fleet > 0 {
            notes.push(format!(
                "burst {}: {} recipients of the role are not in this fleet (older directory \
                 entries: use a fresh database or another --user-prefix and role)",
                o.burst, o.recipients_outside_fleet
            ));
        }
        if !o.complete {
            notes.push(format!(
                "burst {}: incomplete ({} of {} delivered): `last ms` is the last delivery seen",
                o.burst, o.loss.delivered, o.loss.expected
            ));
        }
    }
    notes.extend(delivery_notes(deliveries));

    let result = json!({
        "params": {
            "users": args.users,
            "conns_per_user": args.conns_per_user,
            "transport": args.fleet.transport,
            "role": args.fleet.role,
            "repeat": args.repeat,
            "grace_seconds": args.grace,
            "procs": args.fleet.procs,
            "source_ips": args.fleet.source_ips,
        },
        "connect": connect_json(connect),
        "bursts": outcomes,
        "medians": medians,
        "frames_by_type": deliveries.frames_by_type,
        "disconnects": deliveries.disconnects,
        "disconnect_reasons": deliveries.disconnect_reasons,
    });
    Report {
        scenario: "burst",
        tables: vec![setup, table],
        notes,
        result,
    }
}

/// `PUT /v1/users/{id}` `{"role"}` for every user, a bounded number at a time.
async fn register(rest: &RestClient, args: &BurstArgs, notes: &mut Vec<String>) -> Result<()> {
    eprintln!(
        "burst: registering {} users as {}",
        args.users, args.fleet.role
    );
    let started = Instant::now();
    let results: Vec<Result<()>> = stream::iter(0..args.users)
        .map(|user| {
            let rest = rest.clone();
            let role = args.fleet.role.clone();
            let id = user_id(&args.fleet.user_prefix, user);
            async move { rest.put_user(&id, &role).await }
        })
        .buffer_unordered(args.register_concurrency.max(1))
        .collect()
        .await;
    let failed: Vec<&anyhow::Error> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    if failed.len() == results.len() && !failed.is_empty() {
        bail!("registering users failed: {:#}", failed[0]);
    }
    if let Some(first) = failed.first() {
        notes.push(format!(
            "{} registrations failed, first: {first:#}",
            failed.len()
        ));
    }
    eprintln!(
        "  registered {} users in {:.1} s",
        results.len() - failed.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What was measured during one burst, before the deliveries are judged.
struct BurstRun {
    burst: u32,
    started_us: u64,
    post_us: u64,
    status: Option<u16>,
    /// Fleet users the hub says it notified.
    recipients: BTreeSet<u32>,
    recipients_outside_fleet: u64,
    hub_cpu_seconds: Option<f64>,
}

#[derive(Debug, Serialize)]
struct BurstOutcome {
    burst: u32,
    status: Option<u16>,
    /// The POST's round trip (the hub stores every notification before answering).
    post_us: u64,
    recipients_in_fleet: u64,
    recipients_outside_fleet: u64,
    loss: LossAccount,
    duplicates: u64,
    /// From sending the POST to the first / last unique delivery.
    first_delivery_us: Option<u64>,
    last_delivery_us: Option<u64>,
    latency: LatencySummary,
    /// Every expected delivery arrived: `last_delivery_us` is the burst's completion time.
    complete: bool,
    hub_cpu_seconds: Option<f64>,
}
