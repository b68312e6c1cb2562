//! replays: a user with thousands of ~12 KB notifications, and WebSockets that resume from
//! the very beginning (`since=n0000000000000000`) and never read, with a small receive
//! buffer, so the hub's writes stall at once. What the hub holds for them must stay bounded
//! (`hub.queue_bytes` per connection), not grow with the history.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use futures_util::{stream, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;

use super::{kinds, AttackReport, Tally};
use crate::cli::HostileArgs;
use crate::scenario::Context;
use crate::session::Target;
use crate::tokens::{self, TokenRequest};

/// The user whose history is replayed.
const USER: &str = "hostile-replay";

/// The client's receive buffer: the kernel keeps at most about this much unread (Linux
/// doubles it for bookkeeping), so the rest waits in the hub.
const RECV_BUFFER: u32 = 4096;

/// Seeding publishes in flight.
const SEED_CONCURRENCY: usize = 16;

/// The upgrade answer's budget.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);

/// After the window, how long each socket is read to see whether the hub closed it.
const DRAIN: Duration = Duration::from_secs(2);

/// Text sizes of a seeded notification: title 200, message 4,000, data 8,000 characters
/// (the contract's maxima, about 12 KB stored and per frame).
const TITLE_CHARS: usize = 200;
const MESSAGE_CHARS: usize = 4000;
const DATA_CHARS: usize = 8000;

pub(super) struct Plan {
    target: Arc<Target>,
    ips: Vec<Ipv4Addr>,
    sockets: u32,
    token: Arc<str>,
    seeded: u32,
    seed_seconds: f64,
}

impl Plan {
    /// Stores the history (before the window: seeding is not part of the attack).
    pub(super) async fn prepare(
        ctx: &Context,
        args: &HostileArgs,
        target: Target,
        ips: Vec<Ipv4Addr>,
    ) -> Result<Self> {
        let started = Instant::now();
        seed(ctx, args.replay_notifications).await?;
        let seed_seconds = started.elapsed().as_secs_f64();
        eprintln!(
            "  replays: {} notifications of ~12 KB stored for {USER} in {seed_seconds:.1} s",
            args.replay_notifications
        );
        let request = TokenRequest {
            mode: ctx.token_mode,
            base_url: &ctx.url,
            tenant: &ctx.tenant,
            role: "front_desk",
            ttl_seconds: ctx.token_ttl,
        };
        let token = tokens::issue(&request, &ctx.credentials, &[Arc::from(USER)])
            .await?
            .pop()
            .context("no token issued")?;
        Ok(Self {
            target: Arc::new(target),
            ips,
            sockets: args.replay_sockets,
            token,
            seeded: args.replay_notifications,
            seed_seconds,
        })
    }

    pub(super) async fn run(self, cancel: CancellationToken) -> AttackReport {
        let upgrades = Arc::new(Tally::default());
        let ends = Arc::new(Tally::default());
        let mut sockets = JoinSet::new();
        for i in 0..self.sockets as usize {
            let (target, token) = (self.target.clone(), self.token.clone());
            let (upgrades, ends, cancel) = (upgrades.clone(), ends.clone(), cancel.clone());
            let ip = self.ips[i % self.ips.len()];
            sockets.spawn(async move {
                match never_read(&target, ip, &token, &cancel).await {
                    Ok(stream) => {
                        upgrades.add("101");
                        let (bytes, end) = drain(stream).await;
                        ends.add(end);
                        bytes
                    }
                    Err(refused) => {
                        upgrades.add(refused);
                        0
                    }
                }
            });
        }
        let mut drained = 0u64;
        while let Some(bytes) = sockets.join_next().await {
            drained += bytes.unwrap_or(0);
        }
        let (upgrades, ends) = (upgrades.snapshot(), ends.snapshot());
        AttackReport {
            rows: vec![
                (
                    "history: notifications stored (seconds to store)".into(),
                    format!("{} ({:.1} s)", self.seeded, self.seed_seconds),
                ),
                ("never-reading sockets: upgrades".into(), kinds(&upgrades)),
                (
                    format!("after the window, read for {} s: end", DRAIN.as_secs()),
                    kinds(&ends),
                ),
                (
                    "after the window: bytes read (all sockets), MiB".into(),
                    format!("{:.1}", drained as f64 / 1_048_576.0),
                ),
            ],
            json: json!({
                "seeded": self.seeded,
                "seed_seconds": self.seed_seconds,
                "sockets": self.sockets,
                "upgrades": upgrades,
                "ends_after_window": ends,
                "drained_bytes": drained,
            }),
            checks: Vec::new(),
        }
    }
}

/// Publishes the history, `SEED_CONCURRENCY` at a time; fails if any publish fails.
async fn seed(ctx: &Context, count: u32) -> Result<()> {
    let rest = ctx.rest(SEED_CONCURRENCY, Duration::from_secs(30))?;
    let title = "t".repeat(TITLE_CHARS);
    let message = "m".repeat(MESSAGE_CHARS);
    let pad = "d".repeat(DATA_CHARS);
    let failures: Vec<String> = stream::iter(0..count)
        .map(|i| {
            let body = json!({"user_id": USER, "title": title, "message": message,
                              "data": {"i": i, "pad": pad}});
            let rest = rest.clone();
            async move {
                match rest
                    .publish(serde_json::to_vec(&body).unwrap_or_default())
                    .await
                {
                    Ok(r) if (200..300).contains(&r.status) => None,
                    Ok(r) => Some(format!(
                        "http {}: {}",
                        r.status,
                        String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
                    )),
                    Err(e) => Some(e.kind().to_string()),
                }
            }
        })
        .buffer_unordered(SEED_CONCURRENCY)
        .filter_map(|failure| async move { failure })
        .collect()
        .await;
    if let Some(first) = failures.first() {
        bail!(
            "storing the history: {} of {count} publishes failed, first: {first}",
            failures.len()
        );
    }
    Ok(())
}

/// Opens a WebSocket resuming from the beginning, reads the upgrade answer's head, then
/// reads nothing until the window ends.
async fn never_read(
    target: &Target,
    ip: Ipv4Addr,
    token: &str,
    cancel: &CancellationToken,
) -> Result<TcpStream, String> {
    let mut stream = target
        .connect_with(Some(ip), Some(RECV_BUFFER))
        .await
        .map_err(|e| format!("tcp {:?}", e.kind()))?;
    let request = format!(
        "GET {}/v1/ws?token={token}&since=n0000000000000000 HTTP/1.1\r\nHost: {}\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        target.base_path, target.host
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("write {:?}", e.kind()))?;
    let status = timeout(UPGRADE_TIMEOUT, read_status(&mut stream))
        .await
        .map_err(|_| "no upgrade answer".to_string())??;
    if status != "101" {
        return Err(format!("http {status}"));
    }
    cancel.cancelled().await;
    Ok(stream)
}

/// Reads byte by byte up to the end of the answer's head (no frame byte is consumed
/// beyond it), returns its status code.
async fn read_status(stream: &mut TcpStream) -> Result<String, String> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = stream
            .read_u8()
            .await
            .map_err(|e| format!("read {:?}", e.kind()))?;
        head.push(byte);
        if head.len() > 8192 {
            return Err("answer head over 8 KiB".to_string());
        }
    }
    let text = String::from_utf8_lossy(&head);
    Ok(text.split_whitespace().nth(1).unwrap_or("?").to_string())
}

/// Reads what the hub sends for [`DRAIN`]: the bytes, and whether the hub had closed the
/// connection (`eof`, a reset) or it was still sending (`still open`).
async fn drain(mut stream: TcpStream) -> (u64, String) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut bytes = 0u64;
    let deadline = Instant::now() + DRAIN;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (bytes, "still open".to_string()),
            Ok(Ok(0)) => return (bytes, "closed by the hub".to_string()),
            Ok(Ok(n)) => bytes += n as u64,
            Ok(Err(e)) => return (bytes, format!("read {:?}", e.kind())),
        }
    }
}
