//! `outbound`: 10,000 SMS enqueued with one bulk request, sent by the hub's outbound
//! worker to a fake Twilio this tool serves itself (each answer takes `--fake-delay-ms`);
//! end-to-end messages/s from the bulk request to the last message counted `sent` by
//! `GET /v1/messages/stats`, and the rate the fake actually saw (to compare with a
//! configured per-provider rate limit).
//!
//! The hub must be configured to send this tenant's SMS through
//! `http://<--fake-listen>` (see loadtests/outbound.sh, which writes that config).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};

use super::{run_tag, Context};
use crate::cli::OutboundArgs;
use crate::fake_twilio;
use crate::report::{opt, Report, Table};
use crate::stats::unix_us;

/// Creates an active SMS template with one variable, `name`, under a name unique to this
/// run; returns the name (what a bulk request refers to).
pub(crate) async fn create_sms_template(
    http: &reqwest::Client,
    base_url: &str,
    api_key: &str,
) -> Result<String> {
    let template = format!(
        "load_sms_{}",
        run_tag()
            .to_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    let res = http
        .post(format!("{base_url}/v1/templates"))
        .bearer_auth(api_key)
        .json(&json!({
            "name": template, "channel": "sms", "kind": "appointment_reminder",
            "body_en": "Hello {name}, your appointment is tomorrow.",
            "body_ar": "مرحباً {name}، موعدك غداً.",
            "variables": ["name"], "is_active": true
        }))
        .send()
        .await?;
    if !res.status().is_success() {
        bail!(
            "creating the template: {} {}",
            res.status(),
            res.text().await?
        );
    }
    Ok(template)
}

/// The body of `POST /v1/messages/bulk`: `recipients` SMS of `template` to distinct numbers.
pub(crate) fn bulk_body(template: &str, recipients: u32) -> Result<Vec<u8>> {
    let recipients: Vec<Value> = (0..recipients)
        .map(|i| json!({"to": format!("+9665{:08}", i), "variables": {"name": format!("P{i}")}}))
        .collect();
    Ok(serde_json::to_vec(
        &json!({"template": template, "channel": "sms", "recipients": recipients}),
    )?)
}

pub(crate) async fn run(ctx: &Context, args: &OutboundArgs) -> Result<Report> {
    let fake =
        fake_twilio::serve(&args.fake_listen, Duration::from_millis(args.fake_delay_ms)).await?;
    let api_key = ctx
        .credentials
        .api_key
        .clone()
        .context("the outbound scenario needs --api-key")?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.request_timeout))
        .build()?;
    let url = |p: &str| format!("{}{p}", ctx.url);
    let sent_so_far = || async {
        let stats: Value = http
            .get(url("/v1/messages/stats?days=1"))
            .bearer_auth(&api_key)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        anyhow::Ok(stats["by_status"]["sent"].as_u64().unwrap_or(0))
    };
    let template = create_sms_template(&http, &ctx.url, &api_key).await?;
    let before = sent_so_far().await?;
    let body = bulk_body(&template, args.messages)?;
    eprintln!(
        "outbound: enqueueing {} SMS in one bulk request ({} KiB)",
        args.messages,
        body.len() / 1024
    );
    let started = Instant::now();
    let started_us = unix_us();
    let res = http
        .post(url("/v1/messages/bulk"))
        .bearer_auth(&api_key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let enqueue = started.elapsed();
    if !res.status().is_success() {
        bail!("bulk enqueue: {} {}", res.status(), res.text().await?);
    }
    let want = before + u64::from(args.messages);
    let mut sent = before;
    while sent < want {
        tokio::time::sleep(Duration::from_millis(50)).await;
        sent = sent_so_far().await?;
    }
    let end_to_end = started.elapsed();
    let requests = fake.requests.load(Ordering::SeqCst);
    let (first, last) = (
        fake.first_us.load(Ordering::SeqCst),
        fake.last_us.load(Ordering::SeqCst),
    );
    let provider_window = Duration::from_micros(last.saturating_sub(first));
    let per_second = f64::from(args.messages) / end_to_end.as_secs_f64();
    let provider_rate =
        (requests > 1).then(|| (requests - 1) as f64 / provider_window.as_secs_f64().max(1e-6));

    let mut table = Table::metrics("outbound: queued SMS → sent");
    table.metric("hub", &ctx.url);
    table.metric("messages", args.messages);
    table.metric("fake provider delay, ms", args.fake_delay_ms);
    table.metric(
        "hub outbound.concurrency (as configured)",
        opt(args.concurrency.map(f64::from), 0),
    );
    table.metric(
        "bulk enqueue request, ms",
        format!("{:.0}", enqueue.as_secs_f64() * 1000.0),
    );
    table.metric(
        "first provider request after enqueue start, ms",
        format!("{:.0}", first.saturating_sub(started_us) as f64 / 1000.0),
    );
    table.metric(
        "end to end (enqueue → all sent), s",
        format!("{:.2}", end_to_end.as_secs_f64()),
    );
    table.metric("messages/s end to end", format!("{per_second:.0}"));
    table.metric("provider requests (fake)", requests);
    table.metric("achieved provider rate, req/s", opt(provider_rate, 1));
    table.metric(
        "configured rate limit, req/s",
        opt(args.configured_rate.map(f64::from), 0),
    );
    let mut notes = Vec::new();
    if requests != u64::from(args.messages) {
        notes.push(format!(
            "the fake saw {requests} requests for {} messages (retries or duplicates)",
            args.messages
        ));
    }
    Ok(Report {
        scenario: "outbound",
        tables: vec![table],
        notes,
        result: json!({
            "params": {"messages": args.messages, "fake_delay_ms": args.fake_delay_ms,
                       "concurrency": args.concurrency, "configured_rate": args.configured_rate},
            "enqueue_ms": enqueue.as_secs_f64() * 1000.0,
            "end_to_end_s": end_to_end.as_secs_f64(),
            "messages_per_second": per_second,
            "provider_requests": requests,
            "provider_rate": provider_rate,
        }),
    })
}
