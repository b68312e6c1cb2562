//! bad-key-flood: many requests per second with bad credentials from a few addresses: a
//! random API key on `POST /v1/notifications` (every key new, so no cache of known-bad keys
//! helps), a JWT of the attacked tenant signed with a wrong secret, and a JWT naming a
//! random tenant (a lookup of a tenant that does not exist), on `GET /v1/me/unread-count`.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{kinds, paced, AttackReport, Check, Tally};
use crate::cli::HostileArgs;
use crate::scenario::Context;
use crate::stats::unix_us;

/// Attacker addresses of the flood ("a few addresses").
const FLOOD_IPS: usize = 4;

/// Requests in flight at most: with the hub answering in a few ms, the rate is reached.
const IN_FLIGHT: usize = 128;

/// Least share of the flood the hub must refuse with 429 before checking the credential:
/// failed authentications are throttled per client address (`rate_limits.failed_auth_*`,
/// by default a burst of 20, then 30 a minute), so of ~24,000 bad requests from four
/// addresses in a 12 s window only ~100 may still reach a credential check.
const THROTTLED_SHARE_MIN: f64 = 0.9;

/// A flood request not answered within this counts as `timeout`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct Plan {
    clients: Vec<reqwest::Client>,
    url: String,
    tenant: String,
    rate: f64,
}

/// The three kinds of bad credentials, in turn.
#[derive(Debug, Clone, Copy)]
enum Bad {
    ApiKey,
    WrongSecret,
    UnknownTenant,
}

impl Bad {
    fn of(i: u64) -> Self {
        match i % 3 {
            0 => Bad::ApiKey,
            1 => Bad::WrongSecret,
            _ => Bad::UnknownTenant,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Bad::ApiKey => "random API key",
            Bad::WrongSecret => "JWT, wrong secret",
            Bad::UnknownTenant => "JWT, unknown tenant",
        }
    }
}

impl Plan {
    pub(super) fn new(ctx: &Context, args: &HostileArgs, ips: Vec<Ipv4Addr>) -> Result<Self> {
        let clients = ips
            .into_iter()
            .take(FLOOD_IPS)
            .map(|ip| {
                reqwest::Client::builder()
                    .local_address(IpAddr::V4(ip))
                    .pool_max_idle_per_host(IN_FLIGHT)
                    .timeout(REQUEST_TIMEOUT)
                    .build()
                    .context("building a flood client")
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            clients,
            url: ctx.url.clone(),
            tenant: ctx.tenant.clone(),
            rate: args.flood_rate,
        })
    }

    pub(super) async fn run(self, cancel: CancellationToken) -> AttackReport {
        let statuses = Arc::new(Tally::default());
        let server_errors = Arc::new(AtomicU64::new(0));
        let started = tokio::time::Instant::now();
        let sent = paced(self.rate, IN_FLIGHT, &cancel, |i| {
            let bad = Bad::of(i);
            let client = self.clients[i as usize % self.clients.len()].clone();
            let request = self.request(&client, bad, i);
            let (statuses, server_errors) = (statuses.clone(), server_errors.clone());
            async move {
                let outcome = match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        if status >= 500 {
                            server_errors.fetch_add(1, Ordering::Relaxed);
                        }
                        format!("{}: http {status}", bad.label())
                    }
                    Err(e) if e.is_timeout() => format!("{}: timeout", bad.label()),
                    Err(_) => format!("{}: connection error", bad.label()),
                };
                statuses.add(outcome);
            }
        })
        .await;
        let seconds = started.elapsed().as_secs_f64();
        let statuses = statuses.snapshot();
        let server_errors = server_errors.load(Ordering::Relaxed);
        AttackReport {
            rows: vec![
                (
                    "flood requests sent (per second) / addresses".into(),
                    format!(
                        "{sent} ({:.0}/s) / {}",
                        sent as f64 / seconds.max(1e-6),
                        self.clients.len()
                    ),
                ),
                ("flood answers".into(), kinds(&statuses)),
            ],
            json: json!({
                "sent": sent,
                "seconds": seconds,
                "rate_asked": self.rate,
                "addresses": self.clients.len(),
                "answers": statuses,
            }),
            checks: vec![
                Check::zero("bad credentials answered 5xx", server_errors, String::new()),
                throttled_check(&statuses),
            ],
        }
    }

    fn request(&self, client: &reqwest::Client, bad: Bad, i: u64) -> reqwest::RequestBuilder {
        match bad {
            Bad::ApiKey => client
                .post(format!("{}/v1/notifications", self.url))
                .bearer_auth(format!("tdk_{}", random_hex(i)))
                .json(&json!({"user_id": "x", "title": "t", "message": "m"})),
            Bad::WrongSecret => client
                .get(format!("{}/v1/me/unread-count", self.url))
                .bearer_auth(bad_jwt(&self.tenant, i)),
            Bad::UnknownTenant => client
                .get(format!("{}/v1/me/unread-count", self.url))
                .bearer_auth(bad_jwt(&format!("t{}", random_hex(i)), i)),
        }
    }
}

/// A well-formed HS256 JWT signed with a secret nobody has.
fn bad_jwt(tenant: &str, i: u64) -> String {
    let now = unix_us() / 1_000_000;
    let claims = json!({"sub": "u-1", "tenant": tenant, "role": "admin", "exp": now + 600});
    let secret = random_hex(i ^ 0x5bd1_e995);
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap_or_default()
}

/// 32 hex digits that differ for every `i` and every run (splitmix64 of the time and `i`).
fn random_hex(i: u64) -> String {
    let seed = unix_us() ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    format!(
        "{:016x}{:016x}",
        splitmix(seed),
        splitmix(seed ^ 0xdead_beef)
    )
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The flood is throttled per address: most answers are 429, not a credential check each.
fn throttled_check(statuses: &std::collections::BTreeMap<String, u64>) -> Check {
    let total: u64 = statuses.values().sum();
    let throttled: u64 = statuses
        .iter()
        .filter(|(kind, _)| kind.ends_with("http 429"))
        .map(|(_, n)| n)
        .sum();
    let share = throttled as f64 / total.max(1) as f64;
    Check::new(
        "share of the flood refused with 429 (throttled per address)",
        format!("{share:.3} ({throttled} of {total})"),
        format!("≥ {THROTTLED_SHARE_MIN}"),
        total > 0 && share >= THROTTLED_SHARE_MIN,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_keys_differ_and_jwts_are_well_formed() {
        assert_ne!(random_hex(1), random_hex(2));
        assert_eq!(random_hex(7).len(), 32);
        assert_eq!(bad_jwt("bench", 3).split('.').count(), 3);
        let kinds: Vec<&str> = (0..3).map(|i| Bad::of(i).label()).collect();
        assert_eq!(kinds.len(), 3);
        assert_ne!(kinds[0], kinds[1]);
    }
}
