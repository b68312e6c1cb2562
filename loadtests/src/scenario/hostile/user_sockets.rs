//! one-user-sockets: thousands of WebSockets for one user of the attacker tenant (a stolen
//! or shared token). The hub may keep `hub.max_connections_per_user` of them; it must refuse
//! the rest with a clear code (an HTTP 4xx with a JSON error code, or a 4xxx close code)
//! and stay healthy. Accepted sockets are held (and read) until the window ends.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::{kinds, AttackReport, Check, Tally};
use crate::cli::HostileArgs;
use crate::scenario::Context;
use crate::session::Target;
use crate::tokens::{self, TokenRequest};

/// Handshakes in flight at once (each waits for its first frame).
pub(super) const IN_FLIGHT: usize = 200;

/// One attempt's budget: TCP, upgrade, first frame.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The user every socket claims to be.
const USER: &str = "hostile-one-user";

/// The outcome label of an accepted socket.
const ACCEPTED: &str = "accepted (hello)";

type Ws = WebSocketStream<tokio::net::TcpStream>;

pub(super) struct Plan {
    target: Arc<Target>,
    ips: Vec<Ipv4Addr>,
    attempts: u32,
    cap: u32,
    token: Arc<str>,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    /// First outcome of every attempt: accepted, or how it was refused.
    outcomes: Tally,
    /// How accepted sockets ended before the window did.
    closed_later: Tally,
}

impl Plan {
    pub(super) async fn prepare(
        ctx: &Context,
        args: &HostileArgs,
        target: Target,
        ips: Vec<Ipv4Addr>,
    ) -> Result<Self> {
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
            attempts: args.user_sockets,
            cap: args.max_connections_per_user,
            token,
        })
    }

    pub(super) async fn run(self, cancel: CancellationToken) -> AttackReport {
        let counters = Arc::new(Counters::default());
        let permits = Arc::new(Semaphore::new(IN_FLIGHT));
        let mut attempts = JoinSet::new();
        for i in 0..self.attempts as usize {
            attempts.spawn(attempt(
                self.target.clone(),
                self.ips[i % self.ips.len()],
                self.token.clone(),
                counters.clone(),
                permits.clone(),
                cancel.clone(),
            ));
        }
        while attempts.join_next().await.is_some() {}
        self.report(&counters)
    }

    fn report(&self, c: &Counters) -> AttackReport {
        let outcomes = c.outcomes.snapshot();
        let accepted = c.accepted.load(Ordering::Relaxed);
        let unclear: std::collections::BTreeMap<String, u64> = outcomes
            .iter()
            .filter(|(kind, _)| kind.as_str() != ACCEPTED && !is_clear_refusal(kind))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let closed_later = c.closed_later.snapshot();
        AttackReport {
            rows: vec![
                (
                    "attack WebSocket attempts for one user".into(),
                    self.attempts.to_string(),
                ),
                ("attack outcomes".into(), kinds(&outcomes)),
                (
                    "attack accepted sockets closed before the end".into(),
                    kinds(&closed_later),
                ),
            ],
            json: json!({
                "attempts": self.attempts,
                "accepted": accepted,
                "outcomes": outcomes,
                "closed_later": closed_later,
                "cap": self.cap,
            }),
            checks: vec![
                Check::at_most(
                    "one user's sockets accepted (per-user cap)",
                    accepted as f64,
                    f64::from(self.cap),
                    0,
                ),
                Check::new(
                    "the user can still connect",
                    accepted.to_string(),
                    "≥ 1",
                    accepted >= 1,
                ),
                Check::zero(
                    "surplus refused without a clear code",
                    unclear.values().sum(),
                    kinds(&unclear),
                ),
            ],
        }
    }
}

/// A refusal a client can act on: a 4xx with a JSON error code, or a 4xxx close code.
fn is_clear_refusal(kind: &str) -> bool {
    if let Some(rest) = kind.strip_prefix("http 4") {
        return rest.len() > 3 && !rest.ends_with(" -");
    }
    kind.strip_prefix("close ")
        .and_then(|code| code.parse::<u16>().ok())
        .is_some_and(|code| (4000..5000).contains(&code))
}

async fn attempt(
    target: Arc<Target>,
    ip: Ipv4Addr,
    token: Arc<str>,
    c: Arc<Counters>,
    permits: Arc<Semaphore>,
    cancel: CancellationToken,
) {
    let opened = {
        let Ok(_permit) = permits.acquire().await else {
            return;
        };
        if cancel.is_cancelled() {
            return;
        }
        timeout(ATTEMPT_TIMEOUT, open(&target, ip, &token)).await
    };
    let ws = match opened {
        Ok(Ok(ws)) => ws,
        Ok(Err(refused)) => return c.outcomes.add(refused),
        Err(_) => {
            return c
                .outcomes
                .add(format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs()))
        }
    };
    c.accepted.fetch_add(1, Ordering::Relaxed);
    c.outcomes.add(ACCEPTED);
    if let Some(how) = hold(ws, &cancel).await {
        c.closed_later.add(how);
    }
}

/// Connects and waits for the first frame: `Ok` at `hello`, else how it was refused.
async fn open(target: &Target, ip: Ipv4Addr, token: &str) -> Result<Ws, String> {
    let stream = target
        .connect(Some(ip))
        .await
        .map_err(|e| format!("tcp {:?}", e.kind()))?;
    let (mut ws, _) = tokio_tungstenite::client_async(target.ws_url(token), stream)
        .await
        .map_err(|e| refusal(&e))?;
    match ws.next().await {
        Some(Ok(Message::Text(text))) if text.as_str().contains(r#""type":"hello""#) => Ok(ws),
        Some(Ok(Message::Close(Some(frame)))) => Err(format!("close {}", u16::from(frame.code))),
        Some(Ok(Message::Close(None))) => Err("close (no code)".to_string()),
        Some(Ok(other)) => Err(format!("first frame not hello: {}", other.len())),
        Some(Err(e)) => Err(refusal(&e)),
        None => Err("eof".to_string()),
    }
}

/// Reads (and drops) frames until the window ends (`None`) or the hub closes (how).
async fn hold(mut ws: Ws, cancel: &CancellationToken) -> Option<String> {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return None,
            frame = ws.next() => match frame {
                Some(Ok(Message::Close(frame))) => {
                    return Some(frame.map_or("close".into(), |f| format!("close {}", u16::from(f.code))));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Some(refusal(&e)),
                None => return Some("eof".into()),
            },
        }
    }
}

/// `http 429 too_many_connections` (the JSON error code, `-` without one), `io …`.
fn refusal(error: &WsError) -> String {
    match error {
        WsError::Http(response) => {
            let code = response
                .body()
                .as_deref()
                .and_then(|body| serde_json::from_slice::<Value>(body).ok())
                .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
                .unwrap_or_else(|| "-".to_string());
            format!("http {} {code}", response.status().as_u16())
        }
        WsError::Io(e) => format!("io {:?}", e.kind()),
        WsError::ConnectionClosed | WsError::AlreadyClosed => "closed".to_string(),
        WsError::Protocol(p) => format!("protocol {p}"),
        other => format!("ws {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_coded_refusals_are_clear() {
        assert!(is_clear_refusal("http 429 too_many_connections"));
        assert!(is_clear_refusal("close 4029"));
        assert!(!is_clear_refusal("http 429 -"));
        assert!(!is_clear_refusal("http 503 unavailable"));
        assert!(!is_clear_refusal("close 1006"));
        assert!(!is_clear_refusal("io ConnectionReset"));
        assert!(!is_clear_refusal("no answer within 10 s"));
    }
}
