//! `tidings-load`: the project's own load tool for the Tidings hub.
//!
//! It drives a running hub only through its public contract (REST publish and directory,
//! `GET /v1/ws`, `GET /v1/sse`) and reads the hub's CPU time and memory from /proc. Every
//! scenario is bounded in connections, time and requests, targets loopback and ends by itself.
//!
//! # Layout
//! - `cli`: the command line: a subcommand per scenario, shared hub and fleet options.
//! - `scenario` (`steady`, `idle`, `storm`, `burst`, `outbound`, `hostile`): each builds a
//!   fleet, drives it and returns a [`report::Report`]; `hostile` also judges (pass/fail).
//! - `fleet`: the receiving side (users × connections), in this process or split over
//!   worker processes by `worker` (one process holds < 20,000 open files).
//! - `session`: one connection's state and the handling of every event; `ws_client` and
//!   `sse_client` are the two transports feeding it.
//! - `publisher` (paced REST publishing), `rest` (the hub's REST API), `tokens` (user JWTs,
//!   signed here or minted by the hub).
//! - `fake_twilio`: the provider the `outbound` scenario's hub sends to.
//! - `stats` (histograms and mergeable reports), `procfs` (/proc), `report` (tables, JSON).
//!
//! **Invariant:** latency is measured from a Unix timestamp the publisher puts in the
//! notification's `data` to the receipt of the frame, on the same machine's clock, so the
//! publisher and the receivers may live in different processes.

mod cli;
mod fake_twilio;
mod fleet;
mod procfs;
mod publisher;
mod report;
mod rest;
mod scenario;
mod session;
mod sse_client;
mod stats;
mod tokens;
mod worker;
mod ws_client;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Parser;

use crate::cli::{Cli, Command};
use crate::report::{Machine, Report, RunInfo};
use crate::scenario::Context;
use crate::stats::unix_us;
use crate::tokens::Credentials;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = cli.hub.threads {
        builder.worker_threads(threads.max(1));
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tidings-load: error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(cli));
    // Connection tasks still parked are dropped here, without waiting for them.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tidings-load: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    if let Command::Worker(args) = &cli.command {
        let credentials = Credentials {
            api_key: cli.hub.api_key.clone(),
            jwt_secret: cli.hub.jwt_secret.clone(),
        };
        return worker::child_main(&args.spec, &credentials).await;
    }

    let auto_timeout = match &cli.command {
        Command::Steady(args) => args.auto_timeout(),
        Command::Idle(args) => args.auto_timeout(),
        Command::Storm(args) => args.auto_timeout(),
        Command::Burst(args) => args.auto_timeout(),
        Command::Outbound(args) => args.auto_timeout(),
        Command::Hostile(args) => args.auto_timeout(),
        Command::Worker(_) => unreachable!("handled above"),
    };
    let hard_timeout = cli.hub.timeout.map_or(auto_timeout, Duration::from_secs);
    let ctx = Context::new(&cli.hub, hard_timeout)?;
    let started_unix_s = unix_us() / 1_000_000;

    let scenario = async {
        match &cli.command {
            Command::Steady(args) => scenario::steady::run(&ctx, args).await,
            Command::Idle(args) => scenario::idle::run(&ctx, args).await,
            Command::Storm(args) => scenario::storm::run(&ctx, args).await,
            Command::Burst(args) => scenario::burst::run(&ctx, args).await,
            Command::Outbound(args) => scenario::outbound::run(&ctx, args).await,
            Command::Hostile(args) => scenario::hostile::run(&ctx, args).await,
            Command::Worker(_) => unreachable!("handled above"),
        }
    };
    let report: Report = tokio::time::timeout(hard_timeout, scenario)
        .await
        .with_context(|| {
            format!(
                "hard timeout: the run took more than {} s (--timeout)",
                hard_timeout.as_secs()
            )
        })??;

    report.print();
    if let Some(path) = &cli.hub.json {
        let run = RunInfo {
            started_unix_s,
            finished_unix_s: unix_us() / 1_000_000,
            command: std::env::args().collect(),
            machine: Machine::probe(ctx.hub.as_ref()),
        };
        report.write_json(path, &run)?;
        eprintln!("results written to {}", path.display());
    }
    // A scenario with pass/fail checks (hostile) exits non-zero when one failed.
    if report.result.get("passed") == Some(&serde_json::Value::Bool(false)) {
        anyhow::bail!("{} failed (see the checks above)", report.scenario);
    }
    Ok(())
}
