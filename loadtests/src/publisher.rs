//! Publishing over REST at a set rate (open loop, paced every millisecond) or as fast as the
//! hub answers (`max`), with a bound on requests in flight.
//!
//! Every notification carries `data: {"lt": run tag, "step", "seq", "ts": unix µs}`; `ts` is
//! taken right before the request is sent, so publish→deliver latency includes the hub's
//! REST handling and storage, as a clinic system would see it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{sleep, sleep_until, timeout, Instant};

use crate::fleet::user_id;
use crate::rest::RestClient;
use crate::stats::{unix_us, Latency, LatencySummary};

/// How much longer than asked a fixed-rate step may take to send its requests when
/// the hub answers too slowly; past that, the rest is not sent.
const OVERRUN: f64 = 1.5;

/// Notifications per second, or as fast as possible.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Rate {
    Fixed(f64),
    Max,
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(Rate::Max);
        }
        match s.parse::<f64>() {
            Ok(rate) if rate > 0.0 && rate.is_finite() => Ok(Rate::Fixed(rate)),
            _ => Err(format!(
                "{s:?}: expected notifications per second (> 0) or `max`"
            )),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::Fixed(rate) => write!(f, "{rate}/s"),
            Rate::Max => f.write_str("max"),
        }
    }
}

impl Rate {
    pub(crate) fn per_second(self) -> Option<f64> {
        match self {
            Rate::Fixed(rate) => Some(rate),
            Rate::Max => None,
        }
    }
}

/// How a publisher addresses its notifications.
pub(crate) struct PublisherSettings {
    /// Recipients are global users `0..users`, taken round-robin.
    pub(crate) users: u32,
    pub(crate) user_prefix: String,
    /// Recipients per request (`user_ids`); 1 sends `user_id`.
    pub(crate) batch: u32,
    /// Requests in flight at most.
    pub(crate) concurrency: usize,
    pub(crate) run_tag: String,
}

/// One publishing step's figures.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PublishReport {
    /// Notifications per second asked for; `None` for `max`.
    pub(crate) target_rate: Option<f64>,
    /// Seconds from the first request sent to the last (at a fixed rate: about the step's
    /// duration, longer when the hub answered too slowly to keep the pace).
    pub(crate) window_seconds: f64,
    pub(crate) requests: u64,
    pub(crate) requests_ok: u64,
    /// Recipients of successful requests: the notifications the hub accepted.
    pub(crate) notifications_ok: u64,
    /// `notifications_ok / window_seconds`.
    pub(crate) achieved_rate: f64,
    /// Failed requests by kind (`http 429`, `timeout`, ...).
    pub(crate) errors: BTreeMap<String, u64>,
    /// The first response body of each failing status, to tell why.
    pub(crate) error_samples: BTreeMap<String, String>,
    /// Request round trip of the publish itself.
    pub(crate) request_latency: LatencySummary,
}

/// A step's report plus what the loss accounting needs.
pub(crate) struct PublishedStep {
    pub(crate) report: PublishReport,
    /// Notifications accepted per global user index.
    pub(crate) sent_per_user: Vec<u32>,
    /// Unix µs when the step's first request was sent.
    pub(crate) started_us: u64,
}

/// Sends notifications to the fleet's users; keeps its round-robin position and `seq` counter
/// across steps so that every notification of a run has its own `seq`.
pub(crate) struct Publisher {
    rest: RestClient,
    settings: Arc<PublisherSettings>,
    next_user: u32,
    next_seq: u64,
}

struct Live {
    requests_ok: u64,
    notifications_ok: u64,
    errors: BTreeMap<String, u64>,
    error_samples: BTreeMap<String, String>,
    latency: Latency,
    sent_per_user: Vec<u32>,
}

/// One request to send.
struct Job {
    step: u32,
    seq: u64,
    recipients: Vec<u32>,
}

impl Publisher {
    pub(crate) fn new(rest: RestClient, settings: PublisherSettings) -> Self {
        Self {
            rest,
            settings: Arc::new(settings),
            next_user: 0,
            next_seq: 0,
        }
    }

    /// Publishes for `duration`, then waits (at most a minute) for the requests in flight.
    pub(crate) async fn run_step(
        &mut self,
        step: u32,
        rate: Rate,
        duration: Duration,
    ) -> Result<PublishedStep> {
        let settings = self.settings.clone();
        let live = Arc::new(Mutex::new(Live {
            requests_ok: 0,
            notifications_ok: 0,
            errors: BTreeMap::new(),
            error_samples: BTreeMap::new(),
            latency: Latency::new(),
            sent_per_user: vec![0; settings.users as usize],
        }));
        let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
        let requests_per_second = rate
            .per_second()
            .map(|r| r / f64::from(settings.batch.max(1)));

        // At a fixed rate the step sends exactly `rate × duration` requests, paced from
        // the start; the window is the time until the last one went out. So a publisher
        // that fell behind for a moment (this tool shares its core with the receiving
        // side) catches up instead of losing the tail of the step, while a hub that
        // cannot keep up still stretches the window (up to `OVERRUN`), which lowers the
        // achieved rate. With `max`, the step simply lasts `duration`.
        let total = requests_per_second.map(|r| (r * duration.as_secs_f64()).round() as u64);
        let started = Instant::now();
        let started_us = unix_us();
        let end = match total {
            Some(_) => started + duration.mul_f64(OVERRUN),
            None => started + duration,
        };
        let mut requests = 0u64;
        'sending: loop {
            let now = Instant::now();
            if now >= end || total.is_some_and(|t| requests >= t) {
                break;
            }
            let due = match requests_per_second {
                Some(per_second) => ((now - started).as_secs_f64() * per_second).ceil() as u64,
                None => requests + 1,
            };
            let due = total.map_or(due, |t| due.min(t));
            while requests < due {
                let permit = tokio::select! {
                    permit = permits.clone().acquire_owned() => permit?,
                    _ = sleep_until(end) => break 'sending,
                };
                let job = self.next_job(step);
                requests += 1;
                tokio::spawn(send(
                    self.rest.clone(),
                    settings.clone(),
                    live.clone(),
                    job,
                    permit,
                ));
            }
            if requests_per_second.is_some() && total.is_some_and(|t| requests < t) {
                sleep(Duration::from_millis(1)).await;
            }
        }
        let window = started.elapsed().as_secs_f64();
        let all = u32::try_from(settings.concurrency.max(1)).unwrap_or(u32::MAX);
        if timeout(Duration::from_secs(60), permits.acquire_many(all))
            .await
            .is_err()
        {
            eprintln!("  publisher: requests still in flight after 60 s; counting them as failed");
        }

        let live = std::mem::replace(
            &mut *live.lock().unwrap_or_else(PoisonError::into_inner),
            Live {
                requests_ok: 0,
                notifications_ok: 0,
                errors: BTreeMap::new(),
                error_samples: BTreeMap::new(),
                latency: Latency::new(),
                sent_per_user: Vec::new(),
            },
        );
        let mut errors = live.errors;
        let answered = live.requests_ok + errors.values().sum::<u64>();
        if requests > answered {
            *errors.entry("no answer".to_string()).or_default() += requests - answered;
        }
        let report = PublishReport {
            target_rate: rate.per_second(),
            window_seconds: window,
            requests,
            requests_ok: live.requests_ok,
            notifications_ok: live.notifications_ok,
            achieved_rate: if window > 0.0 {
                live.notifications_ok as f64 / window
            } else {
                0.0
            },
            errors,
            error_samples: live.error_samples,
            request_latency: live.latency.summary(),
        };
        Ok(PublishedStep {
            report,
            sent_per_user: live.sent_per_user,
            started_us,
        })
    }

    fn next_job(&mut self, step: u32) -> Job {
        let seq = self.next_seq;
        self.next_seq += 1;
        let users = self.settings.users.max(1);
        let recipients = (0..self.settings.batch.max(1))
            .map(|_| {
                let user = self.next_user;
                self.next_user = (user + 1) % users;
                user
            })
            .collect();
        Job {
            step,
            seq,
            recipients,
        }
    }
}

/// The request body of a job, stamped now.
fn body(settings: &PublisherSettings, job: &Job) -> Vec<u8> {
    let data = json!({
        "lt": settings.run_tag,
        "step": job.step,
        "seq": job.seq,
        "ts": unix_us(),
    });
    let title = "tidings-load";
    let message = format!("load test notification {}", job.seq);
    let body = if let [user] = job.recipients[..] {
        json!({
            "user_id": user_id(&settings.user_prefix, user),
            "title": title,
            "message": message,
            "data": data,
        })
    } else {
        let ids: Vec<String> = job
            .recipients
            .iter()
            .map(|u| user_id(&settings.user_prefix, *u))
            .collect();
        json!({ "user_ids": ids, "title": title, "message": message, "data": data })
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

async fn send(
    rest: RestClient,
    settings: Arc<PublisherSettings>,
    live: Arc<Mutex<Live>>,
    job: Job,
    _permit: OwnedSemaphorePermit,
) {
    let sent = Instant::now();
    let result = rest.publish(body(&settings, &job)).await;
    let elapsed = sent.elapsed().as_micros() as u64;
    let mut live = live.lock().unwrap_or_else(PoisonError::into_inner);
    match result {
        Ok(response) if (200..300).contains(&response.status) => {
            live.requests_ok += 1;
            live.notifications_ok += job.recipients.len() as u64;
            live.latency.record(elapsed);
            for user in &job.recipients {
                if let Some(count) = live.sent_per_user.get_mut(*user as usize) {
                    *count += 1;
                }
            }
        }
        Ok(response) => {
            let kind = format!("http {}", response.status);
            if !live.error_samples.contains_key(&kind) {
                let sample =
                    String::from_utf8_lossy(&response.body[..response.body.len().min(300)]);
                live.error_samples.insert(kind.clone(), sample.into_owned());
            }
            *live.errors.entry(kind).or_default() += 1;
        }
        Err(e) => *live.errors.entry(e.kind().to_string()).or_default() += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!("max".parse::<Rate>().unwrap(), Rate::Max);
        assert_eq!("2000".parse::<Rate>().unwrap(), Rate::Fixed(2000.0));
        assert!("0".parse::<Rate>().is_err());
        assert!("fast".parse::<Rate>().is_err());
    }

    #[test]
    fn jobs_go_round_robin_with_one_seq_per_request() {
        let rest = RestClient::new("http://127.0.0.1:1", None, 1, Duration::from_secs(1)).unwrap();
        let settings = PublisherSettings {
            users: 3,
            user_prefix: "lt".into(),
            batch: 2,
            concurrency: 1,
            run_tag: "r1".into(),
        };
        let mut publisher = Publisher::new(rest, settings);
        let a = publisher.next_job(0);
        let b = publisher.next_job(1);
        assert_eq!((a.seq, a.recipients.clone()), (0, vec![0, 1]));
        assert_eq!((b.seq, b.recipients.clone()), (1, vec![2, 0]));
        let body: serde_json::Value =
            serde_json::from_slice(&body(&publisher.settings, &b)).unwrap();
        assert_eq!(body["user_ids"], json!(["lt-2", "lt-0"]));
        assert_eq!(body["data"]["lt"], "r1");
        assert_eq!(body["data"]["step"], 1);
        assert_eq!(body["data"]["seq"], 1);
        assert!(body["data"]["ts"].as_u64().unwrap() > 0);
    }
}
