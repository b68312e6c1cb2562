//! `idle`: open N authenticated connections that receive nothing, wait until each has its
//! first event (`hello` on WS), let the hub settle, and read its VmRSS before and after:
//! the hub's memory per idle connection.

use std::time::Duration;

use anyhow::{bail, Result};
use serde_json::json;
use tokio::time::sleep;

use super::{announce_connected, connect_json, connect_rows, delivery_notes, run_tag, Context};
use crate::cli::IdleArgs;
use crate::fleet::Fleet;
use crate::report::{mib, opt, Report, Table};

pub(crate) async fn run(ctx: &Context, args: &IdleArgs) -> Result<Report> {
    ctx.rest(4, Duration::from_secs(10))?.healthz().await?;
    let tag = run_tag();
    let spec = ctx.fleet_spec(&args.fleet, args.users, args.conns_per_user, &tag);
    let mut notes: Vec<String> = ctx
        .hub_capacity_note(spec.connections())
        .into_iter()
        .collect();
    if ctx.hub.is_none() {
        notes.push("no --hub-pid: the hub's memory was not measured".to_string());
    }
    eprintln!(
        "idle: {} users × {} {:?} connections",
        args.users, args.conns_per_user, args.fleet.transport
    );
    let mut fleet = Fleet::launch(spec, &ctx.credentials, args.fleet.procs, ctx.threads).await?;
    // Measured after the tokens are issued (minting them through the API touches the hub).
    let before = ctx.hub_memory();
    let fds_before = ctx.hub.as_ref().and_then(|hub| hub.open_fds());
    let connect = fleet.connect().await?;
    announce_connected(&connect);
    if connect.connected == 0 {
        bail!("no connection came up: {:?}", connect.failures);
    }
    eprintln!("  settling {} s", args.settle);
    sleep(Duration::from_secs(args.settle)).await;
    let after = ctx.hub_memory();
    let fds_after = ctx.hub.as_ref().and_then(|hub| hub.open_fds());
    if args.hold > 0 {
        eprintln!("  holding {} s", args.hold);
        sleep(Duration::from_secs(args.hold)).await;
    }
    let deliveries = fleet.stop().await?;

    let delta_kib = before
        .zip(after)
        .map(|(b, a)| a.rss_kib as f64 - b.rss_kib as f64);
    let kib_per_connection = delta_kib.map(|d| d / connect.connected as f64);

    let mut table = Table::metrics("idle: connections and hub memory");
    table.metric("hub", &ctx.url);
    table.metric(
        "transport",
        format!("{:?}", args.fleet.transport).to_lowercase(),
    );
    table.metric(
        "users × connections",
        format!("{} × {}", args.users, args.conns_per_user),
    );
    table.metric("worker processes", args.fleet.procs);
    connect_rows(&mut table, &connect);
    table.metric(
        "hub RSS before, MiB",
        before.map_or_else(|| "-".into(), |m| mib(m.rss_kib)),
    );
    table.metric(
        "hub RSS after, MiB",
        after.map_or_else(|| "-".into(), |m| mib(m.rss_kib)),
    );
    table.metric("hub RSS delta, MiB", opt(delta_kib.map(|d| d / 1024.0), 1));
    table.metric("hub KiB per connection", opt(kib_per_connection, 2));
    table.metric(
        "hub peak RSS (VmHWM), MiB",
        after.map_or_else(|| "-".into(), |m| mib(m.hwm_kib)),
    );
    table.metric(
        "hub open files before / after",
        format!(
            "{} / {}",
            fds_before.map_or_else(|| "-".into(), |n| n.to_string()),
            fds_after.map_or_else(|| "-".into(), |n| n.to_string())
        ),
    );
    table.metric("disconnects while held", deliveries.disconnects);
    notes.extend(delivery_notes(&deliveries));

    let result = json!({
        "params": {
            "users": args.users,
            "conns_per_user": args.conns_per_user,
            "transport": args.fleet.transport,
            "settle_seconds": args.settle,
            "hold_seconds": args.hold,
            "procs": args.fleet.procs,
            "source_ips": args.fleet.source_ips,
        },
        "connect": connect_json(&connect),
        "hub_memory_before": before,
        "hub_memory_after": after,
        "hub_rss_delta_kib": delta_kib,
        "hub_kib_per_connection": kib_per_connection,
        "hub_open_files_before": fds_before,
        "hub_open_files_after": fds_after,
        "frames_by_type": deliveries.frames_by_type,
        "disconnects": deliveries.disconnects,
        "disconnect_reasons": deliveries.disconnect_reasons,
    });
    Ok(Report {
        scenario: "idle",
        tables: vec![table],
        notes,
        result,
    })
}
