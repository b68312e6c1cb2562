//! Splitting a fleet over worker processes (`--procs N`): the tool re-executes itself as
//! `tidings-load worker --spec <json>`, one child per share of the users, and drives each over
//! a line protocol:
//!
//! - parent → child, on stdin, one word a line: `go`, `count`, `report`, `stop`
//!   (end of input means `stop`);
//! - child → parent, on stdout, one JSON [`WorkerMessage`] a line: `prepared` (tokens issued,
//!   tasks spawned), `progress` while connecting, `ready` with its connect report, then one
//!   answer per command, and `final` after `stop`.
//!
//! Children inherit stderr (their errors show in the parent's terminal) and get the tenant's
//! secrets through the environment, never on the command line. A child ends by itself at its
//! spec's hard timeout, and is killed if the parent drops it.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::{sleep_until, timeout, timeout_at, Instant};

use crate::fleet::{print_progress, FleetSpec, LocalFleet};
use crate::stats::{ConnectReport, DeliveryReport};
use crate::tokens::Credentials;

/// Environment variables that carry the secrets (also read by the CLI).
pub(crate) const API_KEY_ENV: &str = "TIDINGS_LOAD_API_KEY";
pub(crate) const JWT_SECRET_ENV: &str = "TIDINGS_LOAD_JWT_SECRET";

/// How long the parent waits for a child's answer to `count`, `report` or `stop`.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// What a worker says to its parent. Externally tagged (`{"counts": {...}}`): an internally
/// tagged enum would buffer its content and lose the integer keys of the step maps.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WorkerMessage {
    Prepared,
    Progress { done: u64, connected: u64 },
    Ready { connect: ConnectReport },
    Counts { unique: BTreeMap<u32, u64> },
    Report { deliveries: DeliveryReport },
    Final { deliveries: DeliveryReport },
    Error { message: String },
}

/// The child's side: hold a share of the fleet and answer the parent.
pub(crate) async fn child_main(spec_json: &str, credentials: &Credentials) -> Result<()> {
    let spec: FleetSpec = serde_json::from_str(spec_json).context("worker --spec")?;
    let deadline = Instant::now() + Duration::from_secs(spec.hard_timeout_seconds);
    let fleet = match LocalFleet::prepare(spec, credentials).await {
        Ok(fleet) => fleet,
        Err(e) => {
            emit(&WorkerMessage::Error {
                message: format!("{e:#}"),
            });
            return Err(e);
        }
    };
    emit(&WorkerMessage::Prepared);

    let mut commands = BufReader::new(tokio::io::stdin()).lines();
    loop {
        match timeout_at(deadline, commands.next_line()).await {
            Ok(Ok(Some(line))) if line.trim() == "go" => break,
            Ok(Ok(Some(_))) => continue,
            _ => return Ok(()),
        }
    }
    fleet.go();
    let connect = tokio::select! {
        connect = fleet.wait_connected(|done, connected| {
            emit(&WorkerMessage::Progress { done, connected });
        }) => connect,
        _ = sleep_until(deadline) => bail!("worker: hard timeout while connecting"),
    };
    emit(&WorkerMessage::Ready { connect });

    loop {
        let line = tokio::select! {
            line = commands.next_line() => line,
            _ = sleep_until(deadline) => {
                eprintln!("tidings-load worker: hard timeout, stopping");
                break;
            }
        };
        match line {
            Ok(Some(line)) => match line.trim() {
                "count" => emit(&WorkerMessage::Counts {
                    unique: fleet.unique_counts(),
                }),
                "report" => emit(&WorkerMessage::Report {
                    deliveries: fleet.delivery_report(),
                }),
                "stop" => break,
                other => eprintln!("tidings-load worker: unknown command {other:?}"),
            },
            Ok(None) | Err(_) => break,
        }
    }
    let deliveries = fleet.stop().await;
    emit(&WorkerMessage::Final { deliveries });
    Ok(())
}

/// Writes one message line to stdout, the pipe to the parent (nothing else writes there).
fn emit(message: &WorkerMessage) {
    let mut out = std::io::stdout().lock();
    let written = serde_json::to_writer(&mut out, message)
        .map_err(std::io::Error::from)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = written {
        eprintln!("tidings-load worker: cannot write to the parent: {e}");
    }
}

/// The parent's side: the children holding a fleet.
pub(crate) struct WorkerSet {
    workers: Vec<Worker>,
    connections: u64,
}

struct Worker {
    index: usize,
    /// Kept so that the child is killed when the set is dropped (`kill_on_drop`).
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Worker {
    async fn send(&mut self, command: &str) -> Result<()> {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .with_context(|| format!("worker {}: sending {command}", self.index))?;
        self.stdin.flush().await?;
        Ok(())
    }

    async fn recv(&mut self) -> Result<WorkerMessage> {
        let line = self
            .stdout
            .next_line()
            .await
            .with_context(|| format!("worker {}: reading", self.index))?;
        let Some(line) = line else {
            bail!("worker {} exited early (see its stderr above)", self.index);
        };
        let message: WorkerMessage = serde_json::from_str(&line)
            .with_context(|| format!("worker {}: bad line {line:?}", self.index))?;
        if let WorkerMessage::Error { message } = message {
            bail!("worker {}: {message}", self.index);
        }
        Ok(message)
    }

    async fn ask(&mut self, command: &str) -> Result<WorkerMessage> {
        self.send(command).await?;
        timeout(ANSWER_TIMEOUT, self.recv())
            .await
            .with_context(|| format!("worker {}: no answer to {command}", self.index))?
    }
}

impl WorkerSet {
    /// Starts one child per shard and waits until each has its tokens and tasks ready.
    pub(crate) async fn spawn(
        spec: &FleetSpec,
        credentials: &Credentials,
        procs: usize,
        threads: Option<usize>,
    ) -> Result<Self> {
        let exe = std::env::current_exe().context("locating the tidings-load binary")?;
        let mut workers = Vec::new();
        for (index, shard) in spec.shards(procs).into_iter().enumerate() {
            let mut command = Command::new(&exe);
            if let Some(threads) = threads {
                command.arg("--threads").arg(threads.to_string());
            }
            command
                .arg("worker")
                .arg("--spec")
                .arg(serde_json::to_string(&shard)?)
                .env_remove(API_KEY_ENV)
                .env_remove(JWT_SECRET_ENV)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true);
            if let Some(key) = &credentials.api_key {
                command.env(API_KEY_ENV, key);
            }
            if let Some(secret) = &credentials.jwt_secret {
                command.env(JWT_SECRET_ENV, secret);
            }
            let mut child = command
                .spawn()
                .with_context(|| format!("starting worker {index}"))?;
            let stdin = child.stdin.take().context("worker stdin")?;
            let stdout = BufReader::new(child.stdout.take().context("worker stdout")?).lines();
            workers.push(Worker {
                index,
                child,
                stdin,
                stdout,
            });
        }
        let prepared = join_all(workers.iter_mut().map(|w| async move {
            match w.recv().await? {
                WorkerMessage::Prepared => Ok(()),
                other => bail!("worker {}: expected prepared, got {other:?}", w.index),
            }
        }))
        .await;
        prepared.into_iter().collect::<Result<Vec<()>>>()?;
        eprintln!("  {} worker processes ready", workers.len());
        Ok(Self {
            workers,
            connections: spec.connections(),
        })
    }

    /// Tells every child to connect; merges their connect reports.
    pub(crate) async fn connect(&mut self) -> Result<ConnectReport> {
        for worker in &mut self.workers {
            worker.send("go").await?;
        }
        let total = self.connections;
        // (done, connected) per worker, and when progress was last printed.
        let board = Mutex::new((vec![(0u64, 0u64); self.workers.len()], Instant::now()));
        let reports = join_all(self.workers.iter_mut().map(|w| {
            let board = &board;
            async move {
                loop {
                    match w.recv().await? {
                        WorkerMessage::Progress { done, connected } => {
                            let mut board = board.lock().unwrap_or_else(|e| e.into_inner());
                            board.0[w.index] = (done, connected);
                            if board.1.elapsed() >= Duration::from_secs(2) {
                                board.1 = Instant::now();
                                let done = board.0.iter().map(|p| p.0).sum();
                                let connected = board.0.iter().map(|p| p.1).sum();
                                print_progress(done, connected, total);
                            }
                        }
                        WorkerMessage::Ready { connect } => return Ok(connect),
                        other => bail!("worker {}: expected ready, got {other:?}", w.index),
                    }
                }
            }
        }))
        .await;
        let mut merged = ConnectReport::default();
        for report in reports {
            merged.merge(&report?);
        }
        Ok(merged)
    }

    pub(crate) async fn unique_counts(&mut self) -> Result<BTreeMap<u32, u64>> {
        let answers = join_all(self.workers.iter_mut().map(|w| w.ask("count"))).await;
        let mut merged = BTreeMap::new();
        for answer in answers {
            match answer? {
                WorkerMessage::Counts { unique } => {
                    for (step, count) in unique {
                        *merged.entry(step).or_default() += count;
                    }
                }
                other => bail!("expected counts, got {other:?}"),
            }
        }
        Ok(merged)
    }

    pub(crate) async fn report(&mut self) -> Result<DeliveryReport> {
        let answers = join_all(self.workers.iter_mut().map(|w| w.ask("report"))).await;
        let mut merged = DeliveryReport::default();
        for answer in answers {
            match answer? {
                WorkerMessage::Report { deliveries } => merged.merge(&deliveries),
                other => bail!("expected report, got {other:?}"),
            }
        }
        Ok(merged)
    }

    /// Stops every child; merges their final reports and reaps them.
    pub(crate) async fn stop(mut self) -> Result<DeliveryReport> {
        let answers = join_all(self.workers.iter_mut().map(|w| w.ask("stop"))).await;
        let mut merged = DeliveryReport::default();
        for answer in answers {
            match answer? {
                WorkerMessage::Final { deliveries } => merged.merge(&deliveries),
                other => bail!("expected final, got {other:?}"),
            }
        }
        for worker in &mut self.workers {
            if timeout(Duration::from_secs(10), worker.child.wait())
                .await
                .is_err()
            {
                eprintln!("worker {} did not exit: killing it", worker.index);
                let _ = worker.child.kill().await;
            }
        }
        Ok(merged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_as_tagged_lines() {
        let mut unique = BTreeMap::new();
        unique.insert(3u32, 42u64);
        let line = serde_json::to_string(&WorkerMessage::Counts { unique }).unwrap();
        assert_eq!(line, r#"{"counts":{"unique":{"3":42}}}"#);
        match serde_json::from_str(&line).unwrap() {
            WorkerMessage::Counts { unique } => assert_eq!(unique[&3], 42),
            other => panic!("{other:?}"),
        }
        let prepared: WorkerMessage = serde_json::from_str(r#""prepared""#).unwrap();
        assert!(matches!(prepared, WorkerMessage::Prepared));
    }

    #[test]
    fn delivery_reports_cross_the_pipe() {
        let mut deliveries = DeliveryReport::default();
        deliveries.steps.insert(
            7,
            crate::stats::StepDeliveries {
                unique: 5,
                per_user: vec![(1, 5)],
                ..Default::default()
            },
        );
        deliveries.frames_by_type.insert("hello".into(), 2);
        let line = serde_json::to_string(&WorkerMessage::Final { deliveries }).unwrap();
        match serde_json::from_str(&line).unwrap() {
            WorkerMessage::Final { deliveries } => {
                assert_eq!(deliveries.steps[&7].unique, 5);
                assert_eq!(deliveries.steps[&7].per_user, vec![(1, 5)]);
                assert_eq!(deliveries.frames_by_type["hello"], 2);
            }
            other => panic!("{other:?}"),
        }
    }
}
