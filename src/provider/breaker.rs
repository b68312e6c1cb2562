//! A circuit breaker per provider: a small pure state machine; time is passed in.
//!
//! Closed: sends go through; `failure_threshold` consecutive failures within
//! `window` open it. Open: sends are refused (the failover chain skips the
//! provider) until `cool_down` has passed. Half-open: one probe send is let
//! through; its success closes the breaker, its failure opens it again.

use std::time::{Duration, Instant};

use serde::Deserialize;

/// Breaker settings, shared by the providers of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// The failures must fall within this window (from the first of them).
    pub window_secs: u64,
    /// How long the breaker stays open before letting a probe through.
    pub cool_down_secs: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            window_secs: 60,
            cool_down_secs: 30,
        }
    }
}

/// Where the breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open { until: Instant },
    HalfOpen,
}

/// A clock for the breaker's owner to read; tests use a manual one.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: BreakerState,
    /// Consecutive failures while closed, and when the first of them happened.
    failures: u32,
    first_failure: Option<Instant>,
    /// Half-open: whether the single probe has been let through.
    probe_in_flight: bool,
}

impl CircuitBreaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: BreakerState::Closed,
            failures: 0,
            first_failure: None,
            probe_in_flight: false,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Whether a send may go to the provider now. Moves Open → HalfOpen once the
    /// cool-down is over, and then lets exactly one probe through.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.state {
            BreakerState::Closed => true,
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::HalfOpen;
                self.probe_in_flight = true;
                true
            }
            BreakerState::Open { .. } => false,
            BreakerState::HalfOpen if !self.probe_in_flight => {
                self.probe_in_flight = true;
                true
            }
            BreakerState::HalfOpen => false,
        }
    }

    /// How long until an open breaker lets a probe through (zero otherwise).
    pub fn remaining(&self, now: Instant) -> Duration {
        match self.state {
            BreakerState::Open { until } => until.saturating_duration_since(now),
            _ => Duration::ZERO,
        }
    }

    pub fn on_success(&mut self) {
        self.state = BreakerState::Closed;
        self.failures = 0;
        self.first_failure = None;
        self.probe_in_flight = false;
    }

    pub fn on_failure(&mut self, now: Instant) {
        let cool_down = Duration::from_secs(self.config.cool_down_secs);
        match self.state {
            BreakerState::HalfOpen => {
                self.state = BreakerState::Open {
                    until: now + cool_down,
                };
                self.probe_in_flight = false;
            }
            BreakerState::Open { .. } => {}
            BreakerState::Closed => {
                let window = Duration::from_secs(self.config.window_secs);
                match self.first_failure {
                    Some(first) if now.saturating_duration_since(first) <= window => {
                        self.failures += 1;
                    }
                    _ => {
                        self.first_failure = Some(now);
                        self.failures = 1;
                    }
                }
                if self.failures >= self.config.failure_threshold.max(1) {
                    self.state = BreakerState::Open {
                        until: now + cool_down,
                    };
                    self.failures = 0;
                    self.first_failure = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig {
            failure_threshold: 3,
            window_secs: 10,
            cool_down_secs: 30,
        })
    }

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn opens_after_threshold_failures_within_the_window() {
        let t0 = Instant::now();
        let mut b = breaker();
        b.on_failure(t0);
        b.on_failure(t0 + s(1));
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow(t0 + s(2)));
        b.on_failure(t0 + s(2));
        assert_eq!(b.state(), BreakerState::Open { until: t0 + s(32) });
        assert!(!b.allow(t0 + s(3)));
        assert_eq!(b.remaining(t0 + s(12)), s(20));
    }

    #[test]
    fn failures_spread_beyond_the_window_do_not_open_it() {
        let t0 = Instant::now();
        let mut b = breaker();
        b.on_failure(t0);
        b.on_failure(t0 + s(5));
        b.on_failure(t0 + s(11)); // window restarts here
        b.on_failure(t0 + s(12));
        assert_eq!(b.state(), BreakerState::Closed);
        b.on_failure(t0 + s(13));
        assert!(matches!(b.state(), BreakerState::Open { .. }));
    }

    #[test]
    fn a_success_resets_the_count() {
        let t0 = Instant::now();
        let mut b = breaker();
        b.on_failure(t0);
        b.on_failure(t0);
        b.on_success();
        b.on_failure(t0);
        b.on_failure(t0);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn half_open_lets_one_probe_through_then_closes_or_reopens() {
        let t0 = Instant::now();
        let mut b = breaker();
        for _ in 0..3 {
            b.on_failure(t0);
        }
        assert!(!b.allow(t0 + s(29)));
        assert!(b.allow(t0 + s(30)), "cool-down over: the probe");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(!b.allow(t0 + s(30)), "only one probe at a time");
        b.on_failure(t0 + s(31));
        assert_eq!(b.state(), BreakerState::Open { until: t0 + s(61) });
        assert!(b.allow(t0 + s(61)));
        b.on_success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow(t0 + s(62)) && b.allow(t0 + s(62)));
    }
}
