//! Per-provider rate limits: a token bucket (governor) in front of each adapter,
//! so a burst of queued messages never exceeds what the provider account allows
//! (Twilio long codes: ~1/s; WhatsApp Cloud: 80/s by default).

use std::num::NonZeroU32;

use serde::Deserialize;

/// A token bucket: `per_second` sends per second on average, up to `burst` at once.
/// `per_second = 0` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per_second: u32,
    #[serde(default = "default_burst")]
    pub burst: u32,
}

fn default_burst() -> u32 {
    1
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_second: 10,
            burst: 10,
        }
    }
}

/// The bucket itself. Shared by every worker using the provider (it is inside the
/// provider, which is shared behind an `Arc`).
pub(crate) struct Limiter(Option<governor::DefaultDirectRateLimiter>);

impl Limiter {
    pub(crate) fn new(limit: RateLimit) -> Self {
        let Some(rate) = NonZeroU32::new(limit.per_second) else {
            return Self(None);
        };
        let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
        let quota = governor::Quota::per_second(rate).allow_burst(burst);
        Self(Some(governor::RateLimiter::direct(quota)))
    }

    /// Waits until a send is allowed.
    pub(crate) async fn acquire(&self) {
        if let Some(limiter) = &self.0 {
            limiter.until_ready().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn bucket_allows_the_burst_then_paces() {
        let limiter = Limiter::new(RateLimit {
            per_second: 20,
            burst: 5,
        });
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        assert!(
            start.elapsed() < Duration::from_millis(40),
            "burst should be immediate"
        );
        for _ in 0..10 {
            limiter.acquire().await;
        }
        // 10 more at 20/s take at least ~0.5 s (one token per 50 ms).
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(450), "took {took:?}");
        assert!(took < Duration::from_millis(1500), "took {took:?}");
    }

    #[tokio::test]
    async fn zero_means_unlimited() {
        let limiter = Limiter::new(RateLimit {
            per_second: 0,
            burst: 0,
        });
        let start = Instant::now();
        for _ in 0..10_000 {
            limiter.acquire().await;
        }
        assert!(start.elapsed() < Duration::from_millis(200));
    }
}
