//! Request quotas: per API key, per tenant, and failed authentications per client
//! address. Token buckets (governor, GCRA), kept in memory per node: a cluster of N
//! nodes behind a balancer admits up to N times each quota.
//!
//! Every limiter tracks at most `max_tracked_keys` keys, so random keys or many
//! addresses cannot grow memory without bound: idle keys are swept when the table
//! is full, and when that frees no room the request is refused (429) rather than
//! tracked (keys of the request quotas are verified credentials, so only the
//! failed-authentication table can fill up in practice).

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::RateLimitsSection;
use crate::domain::ids::TenantId;

/// Over a quota: retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: Duration,
    /// Which quota: `key`, `tenant` or `failed_auth`.
    pub scope: &'static str,
}

/// One keyed token bucket with a bound on the keys it tracks.
struct Bucket<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    max_keys: usize,
    scope: &'static str,
}

impl<K: Hash + Eq + Clone> Bucket<K> {
    /// `None` when `rate` is 0 (that limit is off).
    fn new(quota: Option<Quota>, max_keys: usize, scope: &'static str) -> Option<Self> {
        Some(Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota?),
            max_keys,
            scope,
        })
    }

    /// Takes one token for `key`.
    fn take(&self, key: &K) -> Result<(), Limited> {
        if self.limiter.len() >= self.max_keys {
            self.limiter.retain_recent();
            if self.limiter.len() >= self.max_keys {
                metrics::counter!("tidings_rate_limit_table_full_total", "scope" => self.scope)
                    .increment(1);
                return Err(Limited {
                    retry_after: Duration::from_secs(1),
                    scope: self.scope,
                });
            }
        }
        self.limiter.check_key(key).map_err(|not_until| Limited {
            retry_after: not_until.wait_time_from(self.limiter.clock().now()),
            scope: self.scope,
        })
    }
}

fn per_second(rate: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(rate)?;
    Some(Quota::per_second(rate).allow_burst(NonZeroU32::new(burst).unwrap_or(rate)))
}

fn per_minute(rate: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(rate)?;
    Some(Quota::per_minute(rate).allow_burst(NonZeroU32::new(burst).unwrap_or(rate)))
}

/// The node's quotas.
pub struct RateLimits {
    per_key: Option<Bucket<String>>,
    per_tenant: Option<Bucket<TenantId>>,
    failures: Option<Bucket<IpAddr>>,
    /// Addresses that used up their failed-authentication budget, until when. A
    /// governor bucket cannot be read without taking a token, and a blocked address
    /// must be refused before its credential is checked (else it could go on
    /// guessing), so the verdict is kept here. Bounded like the buckets.
    blocked: DashMap<IpAddr, Instant>,
    max_keys: usize,
}

impl RateLimits {
    pub fn new(c: &RateLimitsSection) -> Self {
        let max = c.max_tracked_keys;
        Self {
            per_key: Bucket::new(per_second(c.per_key_per_sec, c.per_key_burst), max, "key"),
            per_tenant: Bucket::new(
                per_second(c.per_tenant_per_sec, c.per_tenant_burst),
                max,
                "tenant",
            ),
            failures: Bucket::new(
                per_minute(c.failed_auth_per_min, c.failed_auth_burst),
                max,
                "failed_auth",
            ),
            blocked: DashMap::new(),
            max_keys: max,
        }
    }

    /// Before checking a credential: is this address still paying for its failures?
    pub fn check_address(&self, addr: IpAddr) -> Result<(), Limited> {
        let until = match self.blocked.get(&addr) {
            Some(until) => *until,
            None => return Ok(()),
        };
        let now = Instant::now();
        if until <= now {
            self.blocked.remove_if(&addr, |_, u| *u <= now);
            return Ok(());
        }
        Err(Limited {
            retry_after: until - now,
            scope: "failed_auth",
        })
    }

    /// After a failed authentication from `addr`: charges it, and blocks it when
    /// its budget is spent.
    pub fn record_failure(&self, addr: IpAddr) -> Result<(), Limited> {
        let Some(failures) = &self.failures else {
            return Ok(());
        };
        failures.take(&addr).inspect_err(|limited| {
            if self.blocked.len() >= self.max_keys {
                let now = Instant::now();
                self.blocked.retain(|_, until| *until > now);
            }
            if self.blocked.len() < self.max_keys {
                self.blocked
                    .insert(addr, Instant::now() + limited.retry_after);
            }
        })
    }

    /// An authenticated request: one token from its API key's bucket (if any) and
    /// one from its tenant's.
    pub fn check_request(
        &self,
        tenant: &TenantId,
        key_prefix: Option<&str>,
    ) -> Result<(), Limited> {
        if let (Some(bucket), Some(prefix)) = (&self.per_key, key_prefix) {
            bucket.take(&prefix.to_owned())?;
        }
        if let Some(bucket) = &self.per_tenant {
            bucket.take(tenant)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section() -> RateLimitsSection {
        RateLimitsSection {
            per_key_per_sec: 1,
            per_key_burst: 3,
            per_tenant_per_sec: 1,
            per_tenant_burst: 5,
            failed_auth_per_min: 1,
            failed_auth_burst: 2,
            max_tracked_keys: 100,
        }
    }

    #[test]
    fn a_key_gets_its_burst_then_a_retry_time() {
        let limits = RateLimits::new(&section());
        let t = TenantId::parse("t").unwrap();
        for _ in 0..3 {
            limits.check_request(&t, Some("tdk_a")).unwrap();
        }
        let over = limits.check_request(&t, Some("tdk_a")).unwrap_err();
        assert_eq!(over.scope, "key");
        assert!(over.retry_after <= Duration::from_secs(1));
        // Another key of the same tenant still has the tenant's last two tokens.
        limits.check_request(&t, Some("tdk_b")).unwrap();
        limits.check_request(&t, Some("tdk_b")).unwrap();
        assert_eq!(
            limits.check_request(&t, Some("tdk_b")).unwrap_err().scope,
            "tenant"
        );
    }

    #[test]
    fn failures_block_an_address_until_it_earned_a_retry() {
        let limits = RateLimits::new(&section());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        limits.check_address(a).unwrap();
        limits.record_failure(a).unwrap();
        limits.record_failure(a).unwrap();
        let over = limits.record_failure(a).unwrap_err();
        assert!(over.retry_after > Duration::from_secs(30), "{over:?}");
        assert_eq!(limits.check_address(a).unwrap_err().scope, "failed_auth");
        limits.check_address("10.0.0.2".parse().unwrap()).unwrap();
    }

    #[test]
    fn the_tables_stay_bounded() {
        let limits = RateLimits::new(&section());
        let mut refused = 0;
        for i in 0..300u32 {
            let addr = IpAddr::from(i.to_be_bytes());
            for _ in 0..3 {
                if limits.record_failure(addr).is_err() {
                    refused += 1;
                }
            }
        }
        let failures = limits.failures.as_ref().unwrap();
        assert!(failures.limiter.len() <= 100, "{}", failures.limiter.len());
        assert!(limits.blocked.len() <= 100);
        assert!(refused >= 300);
    }
}
