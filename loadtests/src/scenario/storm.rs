//! `storm`: every connection attempted as fast as the connect concurrency allows; the hub's
//! accept rate (connections up per second, first attempt → last `hello`), the per-connection
//! connect time, the failures by kind, and the hub's CPU for the storm.

use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use super::{announce_connected, connect_json, connect_rows, delivery_notes, run_tag, Context};
use crate::cli::StormArgs;
use crate::fleet::Fleet;
use crate::report::{opt, Report, Table};

pub(crate) async fn run(ctx: &Context, args: &StormArgs) -> Result<Report> {
    ctx.rest(4, Duration::from_secs(10))?.healthz().await?;
    let tag = run_tag();
    let spec = ctx.fleet_spec(&args.fleet, args.users, args.conns_per_user, &tag);
    let notes_capacity = ctx.hub_capacity_note(spec.connections());
    eprintln!(
        "storm: {} users × {} {:?} connections, {} attempts in flight",
        args.users, args.conns_per_user, args.fleet.transport, args.fleet.connect_concurrency
    );
    let mut fleet = Fleet::launch(spec, &ctx.credentials, args.fleet.procs, ctx.threads).await?;
    let cpu_before = ctx.hub_cpu();
    let connect = fleet.connect().await?;
    let cpu_seconds = cpu_before.zip(ctx.hub_cpu()).map(|(a, b)| b - a);
    announce_connected(&connect);
    let deliveries = fleet.stop().await?;

    let cpu_ms_per_connection = cpu_seconds
        .filter(|_| connect.connected > 0)
        .map(|cpu| cpu * 1000.0 / connect.connected as f64);
    let mut table = Table::metrics("storm: connect rate");
    table.metric("hub", &ctx.url);
    table.metric(
        "transport",
        format!("{:?}", args.fleet.transport).to_lowercase(),
    );
    table.metric(
        "users × connections",
        format!("{} × {}", args.users, args.conns_per_user),
    );
    table.metric("attempts in flight", args.fleet.connect_concurrency);
    table.metric("worker processes", args.fleet.procs);
    connect_rows(&mut table, &connect);
    table.metric("hub CPU during the storm, s", opt(cpu_seconds, 2));
    table.metric("hub CPU per connection, ms", opt(cpu_ms_per_connection, 3));

    let mut notes: Vec<String> = notes_capacity.into_iter().collect();
    notes.extend(delivery_notes(&deliveries));
    let result = json!({
        "params": {
            "users": args.users,
            "conns_per_user": args.conns_per_user,
            "transport": args.fleet.transport,
            "connect_concurrency": args.fleet.connect_concurrency,
            "procs": args.fleet.procs,
            "source_ips": args.fleet.source_ips,
        },
        "connect": connect_json(&connect),
        "hub_cpu_seconds": cpu_seconds,
        "hub_cpu_ms_per_connection": cpu_ms_per_connection,
    });
    Ok(Report {
        scenario: "storm",
        tables: vec![table],
        notes,
        result,
    })
}
