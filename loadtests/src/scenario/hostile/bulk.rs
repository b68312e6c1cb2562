//! bulk-storm: the attacker tenant sends 10,000-recipient bulk SMS requests from several
//! senders at once, back to back, for the whole window (and the hub's outbound worker then
//! works through them). Another tenant's publishes must not wait behind them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{kinds, AttackReport, Tally};
use crate::cli::HostileArgs;
use crate::report::ms;
use crate::scenario::outbound::{bulk_body, create_sms_template};
use crate::scenario::Context;
use crate::stats::Latency;

/// One bulk request's budget (10,000 recipients rendered and stored in one transaction).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Bytes of one recipient in the body built by [`bulk_body`] (`{"to":"+966500000001",
/// "variables":{"name":"P1"}}`, rounded up), for the RSS bound.
const BYTES_PER_RECIPIENT: usize = 56;

/// The size of one bulk body, bytes (for the RSS bound).
pub(super) fn body_size(args: &HostileArgs) -> usize {
    args.bulk_recipients as usize * BYTES_PER_RECIPIENT
}

pub(super) struct Plan {
    http: reqwest::Client,
    url: String,
    api_key: Arc<str>,
    body: Bytes,
    senders: u32,
    recipients: u32,
}

impl Plan {
    /// Creates the template and builds the body once (before the window).
    pub(super) async fn prepare(ctx: &Context, args: &HostileArgs) -> Result<Self> {
        let api_key = ctx
            .credentials
            .api_key
            .clone()
            .context("bulk-storm needs the attacker's --api-key")?;
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        let template = create_sms_template(&http, &ctx.url, &api_key).await?;
        let body = bulk_body(&template, args.bulk_recipients)?;
        Ok(Self {
            http,
            url: ctx.url.clone(),
            api_key: api_key.into(),
            body: body.into(),
            senders: args.bulk_concurrency,
            recipients: args.bulk_recipients,
        })
    }

    pub(super) async fn run(self, cancel: CancellationToken) -> AttackReport {
        let answers = Arc::new(Tally::default());
        let durations = Arc::new(std::sync::Mutex::new(Latency::new()));
        let mut senders = JoinSet::new();
        for _ in 0..self.senders {
            let (http, url, key, body) = (
                self.http.clone(),
                format!("{}/v1/messages/bulk", self.url),
                self.api_key.clone(),
                self.body.clone(),
            );
            let (answers, durations, cancel) = (answers.clone(), durations.clone(), cancel.clone());
            senders.spawn(async move {
                while !cancel.is_cancelled() {
                    let started = Instant::now();
                    let request = http
                        .post(&url)
                        .bearer_auth(&*key)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send();
                    // At the window's end the request in flight is cut (the hub rolls it
                    // back): the storm lasts the window, not longer.
                    let outcome = tokio::select! {
                        () = cancel.cancelled() => "cut at the window's end".to_string(),
                        response = request => match response {
                            Ok(r) => format!("http {}", r.status().as_u16()),
                            Err(e) if e.is_timeout() => "timeout".to_string(),
                            Err(_) => "connection error".to_string(),
                        },
                    };
                    if !outcome.starts_with("cut") {
                        durations
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .record(started.elapsed().as_micros() as u64);
                    }
                    answers.add(outcome);
                }
            });
        }
        while senders.join_next().await.is_some() {}
        let answers = answers.snapshot();
        let durations = durations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .summary();
        AttackReport {
            rows: vec![
                (
                    "bulk senders × recipients per request".into(),
                    format!("{} × {}", self.senders, self.recipients),
                ),
                ("bulk answers".into(), kinds(&answers)),
                (
                    "bulk request p50 / max, ms".into(),
                    format!("{} / {}", ms(durations.p50_us), ms(durations.max_us)),
                ),
            ],
            json: json!({
                "senders": self.senders,
                "recipients": self.recipients,
                "body_bytes": self.body.len(),
                "answers": answers,
                "durations": durations,
            }),
            checks: Vec::new(),
        }
    }
}
