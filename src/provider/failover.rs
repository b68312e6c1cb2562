//! A failover chain: the ordered providers of one channel (e.g. Twilio, then
//! Unifonic for SMS). A message stays with its provider while that provider is
//! healthy; it moves to the next one when
//! - its transient retries on the current provider are used up (the caller says so),
//! - the current provider's circuit breaker is open, or
//! - the current provider answers `Misconfigured` (nothing will get through it).
//!
//! Every move is returned as a [`Failover`] so the caller records it as a message
//! event. The chain keeps no per-message state: the caller stores which provider
//! the message last used and passes it back.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::breaker::{BreakerConfig, CircuitBreaker, Clock, SystemClock};
use super::{OutboundMessage, Provider, ProviderAccepted, ProviderError};

/// Why a message moved to the next provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverReason {
    RetriesExhausted,
    CircuitOpen,
    Misconfigured,
}

impl FailoverReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailoverReason::RetriesExhausted => "retries_exhausted",
            FailoverReason::CircuitOpen => "circuit_open",
            FailoverReason::Misconfigured => "misconfigured",
        }
    }
}

/// One move from a provider to the next, for the message's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failover {
    pub from: String,
    pub to: String,
    pub reason: FailoverReason,
}

/// What one [`FailoverChain::send`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainOutcome {
    /// A provider was called; `provider` is the one to store on the message (its
    /// retries continue there).
    Attempted {
        provider: String,
        failovers: Vec<Failover>,
        result: Result<ProviderAccepted, ProviderError>,
    },
    /// Every remaining provider's breaker is open. Nothing was sent; try again in
    /// `retry_in` (this is not one of the message's retries).
    AllOpen {
        failovers: Vec<Failover>,
        retry_in: Duration,
    },
    /// The last provider's retries are used up: the message has failed.
    Exhausted,
}

struct Member {
    provider: Arc<dyn Provider>,
    /// A std mutex: held only for the breaker's few instructions, never across an await.
    breaker: Mutex<CircuitBreaker>,
}

pub struct FailoverChain {
    members: Vec<Member>,
    clock: Arc<dyn Clock>,
}

impl FailoverChain {
    pub fn new(providers: Vec<Arc<dyn Provider>>, breaker: BreakerConfig) -> Self {
        Self::with_clock(providers, breaker, Arc::new(SystemClock))
    }

    pub fn with_clock(
        providers: Vec<Arc<dyn Provider>>,
        breaker: BreakerConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let members = providers
            .into_iter()
            .map(|provider| Member {
                provider,
                breaker: Mutex::new(CircuitBreaker::new(breaker)),
            })
            .collect();
        Self { members, clock }
    }

    /// The providers' names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.members.iter().map(|m| m.provider.name()).collect()
    }

    fn breaker(&self, i: usize) -> std::sync::MutexGuard<'_, CircuitBreaker> {
        // A poisoned breaker only means a panic mid-update of plain counters: keep going.
        self.members[i]
            .breaker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `msg` through the chain. `current` is the provider the message last
    /// used (`None` for a first attempt; an unknown name, after a configuration
    /// change, starts from the top); `retries_exhausted` says its transient retries
    /// on `current` are used up.
    pub async fn send(
        &self,
        msg: &OutboundMessage,
        current: Option<&str>,
        retries_exhausted: bool,
    ) -> ChainOutcome {
        let mut failovers = Vec::new();
        if self.members.is_empty() {
            return ChainOutcome::Exhausted;
        }
        let position =
            current.and_then(|name| self.members.iter().position(|m| m.provider.name() == name));
        // A provider no longer in the chain (the configuration changed): the message
        // starts afresh at the top, its old provider's exhausted retries forgotten.
        let retries_exhausted = retries_exhausted && position.is_some();
        let mut i = position.unwrap_or(0);
        if retries_exhausted {
            if i + 1 >= self.members.len() {
                return ChainOutcome::Exhausted;
            }
            self.hop(&mut failovers, i, FailoverReason::RetriesExhausted);
            i += 1;
        }
        let mut retry_in: Option<Duration> = None;
        while i < self.members.len() {
            let now = self.clock.now();
            let allowed = {
                let mut b = self.breaker(i);
                let ok = b.allow(now);
                if !ok {
                    let left = b.remaining(now);
                    retry_in = Some(retry_in.map_or(left, |r| r.min(left)));
                }
                ok
            };
            if !allowed {
                if i + 1 < self.members.len() {
                    self.hop(&mut failovers, i, FailoverReason::CircuitOpen);
                }
                i += 1;
                continue;
            }
            let member = &self.members[i];
            let result = member.provider.send(msg).await;
            {
                let mut b = self.breaker(i);
                match &result {
                    Ok(_) => b.on_success(),
                    Err(e) if e.counts_against_provider() => b.on_failure(self.clock.now()),
                    // A rejection proves the provider is up and answering.
                    Err(_) => b.on_success(),
                }
            }
            if matches!(result, Err(ProviderError::Misconfigured { .. }))
                && i + 1 < self.members.len()
            {
                self.hop(&mut failovers, i, FailoverReason::Misconfigured);
                i += 1;
                continue;
            }
            return ChainOutcome::Attempted {
                provider: member.provider.name().to_owned(),
                failovers,
                result,
            };
        }
        ChainOutcome::AllOpen {
            failovers,
            retry_in: retry_in.unwrap_or(Duration::ZERO),
        }
    }

    fn hop(&self, failovers: &mut Vec<Failover>, from: usize, reason: FailoverReason) {
        let name = |i: usize| self.members[i].provider.name().to_owned();
        tracing::info!(from = %name(from), to = %name(from + 1), reason = reason.as_str(), "provider failover");
        failovers.push(Failover {
            from: name(from),
            to: name(from + 1),
            reason,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::contact::{Address, PhoneNumber};
    use crate::domain::message::MessageId;
    use crate::domain::template::{Channel, Language};
    use std::collections::VecDeque;
    use std::time::Instant;

    /// A provider that answers from a script and counts its calls.
    struct Scripted {
        name: &'static str,
        answers: Mutex<VecDeque<Result<ProviderAccepted, ProviderError>>>,
        calls: Mutex<u32>,
    }

    impl Scripted {
        fn new(
            name: &'static str,
            answers: Vec<Result<ProviderAccepted, ProviderError>>,
        ) -> Arc<Self> {
            Arc::new(Self {
                name,
                answers: Mutex::new(answers.into()),
                calls: Mutex::new(0),
            })
        }
        fn calls(&self) -> u32 {
            *self.calls.lock().unwrap()
        }
    }

    #[async_trait::async_trait]
    impl Provider for Scripted {
        fn name(&self) -> &str {
            self.name
        }
        fn supports(&self, _: Channel) -> bool {
            true
        }
        async fn send(&self, _: &OutboundMessage) -> Result<ProviderAccepted, ProviderError> {
            *self.calls.lock().unwrap() += 1;
            self.answers
                .lock()
                .unwrap()
                .pop_front()
                .expect("unscripted call")
        }
    }

    struct ManualClock {
        base: Instant,
        offset: Mutex<Duration>,
    }

    impl ManualClock {
        fn advance(&self, by: Duration) {
            *self.offset.lock().unwrap() += by;
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Instant {
            self.base + *self.offset.lock().unwrap()
        }
    }

    fn ok(id: &str) -> Result<ProviderAccepted, ProviderError> {
        Ok(ProviderAccepted {
            provider_message_id: id.into(),
            price: None,
            raw: String::new(),
        })
    }

    fn transient() -> Result<ProviderAccepted, ProviderError> {
        Err(ProviderError::Transient {
            code: "http_503".into(),
            message: "down".into(),
            retry_after: None,
        })
    }

    fn msg() -> OutboundMessage {
        OutboundMessage {
            id: MessageId::new_random(),
            channel: Channel::Sms,
            to: Address::Phone(PhoneNumber::parse("+966501234567").unwrap()),
            language: Language::Ar,
            subject: None,
            body: "مرحبا".into(),
            whatsapp_template: None,
        }
    }

    fn config() -> BreakerConfig {
        BreakerConfig {
            failure_threshold: 2,
            window_secs: 60,
            cool_down_secs: 30,
        }
    }

    fn chain(a: &Arc<Scripted>, b: &Arc<Scripted>, clock: Arc<ManualClock>) -> FailoverChain {
        let providers: Vec<Arc<dyn Provider>> = vec![a.clone(), b.clone()];
        FailoverChain::with_clock(providers, config(), clock)
    }

    fn clock() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            base: Instant::now(),
            offset: Mutex::new(Duration::ZERO),
        })
    }

    #[tokio::test]
    async fn first_provider_takes_the_message_when_healthy() {
        let a = Scripted::new("twilio", vec![ok("SM1")]);
        let b = Scripted::new("unifonic", vec![]);
        let out = chain(&a, &b, clock()).send(&msg(), None, false).await;
        assert_eq!(
            out,
            ChainOutcome::Attempted {
                provider: "twilio".into(),
                failovers: vec![],
                result: ok("SM1")
            }
        );
        assert_eq!((a.calls(), b.calls()), (1, 0));
    }

    #[tokio::test]
    async fn exhausted_retries_move_the_message_to_the_next_provider() {
        let a = Scripted::new("twilio", vec![transient()]);
        let b = Scripted::new("unifonic", vec![ok("42")]);
        let c = chain(&a, &b, clock());
        let first = c.send(&msg(), None, false).await;
        assert!(
            matches!(first, ChainOutcome::Attempted { ref provider, result: Err(ProviderError::Transient { .. }), .. } if provider == "twilio")
        );
        let second = c.send(&msg(), Some("twilio"), true).await;
        assert_eq!(
            second,
            ChainOutcome::Attempted {
                provider: "unifonic".into(),
                failovers: vec![Failover {
                    from: "twilio".into(),
                    to: "unifonic".into(),
                    reason: FailoverReason::RetriesExhausted
                }],
                result: ok("42"),
            }
        );
        // Exhausted on the last provider: the message has failed.
        assert_eq!(
            c.send(&msg(), Some("unifonic"), true).await,
            ChainOutcome::Exhausted
        );
        assert_eq!((a.calls(), b.calls()), (1, 1));
    }

    #[tokio::test]
    async fn an_open_breaker_skips_the_provider_until_the_cool_down_ends() {
        let a = Scripted::new("twilio", vec![transient(), transient(), ok("SM9")]);
        let b = Scripted::new("unifonic", vec![ok("1"), ok("2")]);
        let clk = clock();
        let c = chain(&a, &b, clk.clone());
        c.send(&msg(), None, false).await;
        c.send(&msg(), None, false).await; // second failure opens twilio's breaker
        let skipped = c.send(&msg(), None, false).await;
        assert_eq!(
            skipped,
            ChainOutcome::Attempted {
                provider: "unifonic".into(),
                failovers: vec![Failover {
                    from: "twilio".into(),
                    to: "unifonic".into(),
                    reason: FailoverReason::CircuitOpen
                }],
                result: ok("1"),
            }
        );
        clk.advance(Duration::from_secs(29));
        assert!(
            matches!(c.send(&msg(), None, false).await, ChainOutcome::Attempted { ref provider, .. } if provider == "unifonic")
        );
        clk.advance(Duration::from_secs(1));
        // Half-open: the probe goes to twilio, succeeds, and closes the breaker.
        assert_eq!(
            c.send(&msg(), None, false).await,
            ChainOutcome::Attempted {
                provider: "twilio".into(),
                failovers: vec![],
                result: ok("SM9")
            }
        );
        assert_eq!((a.calls(), b.calls()), (3, 2));
    }

    #[tokio::test]
    async fn all_breakers_open_means_wait_not_fail() {
        let a = Scripted::new("twilio", vec![transient(), transient()]);
        let b = Scripted::new("unifonic", vec![transient(), transient()]);
        let clk = clock();
        let c = chain(&a, &b, clk.clone());
        for _ in 0..2 {
            c.send(&msg(), None, false).await;
        }
        clk.advance(Duration::from_secs(10));
        for _ in 0..2 {
            c.send(&msg(), Some("unifonic"), false).await;
        }
        clk.advance(Duration::from_secs(5));
        match c.send(&msg(), None, false).await {
            ChainOutcome::AllOpen {
                failovers,
                retry_in,
            } => {
                assert_eq!(failovers.len(), 1);
                assert_eq!(retry_in, Duration::from_secs(15), "twilio reopens first");
            }
            other => panic!("expected AllOpen, got {other:?}"),
        }
        assert_eq!((a.calls(), b.calls()), (2, 2));
    }

    #[tokio::test]
    async fn a_provider_removed_from_the_chain_restarts_at_the_top() {
        let a = Scripted::new("twilio", vec![ok("SM1")]);
        let b = Scripted::new("unifonic", vec![]);
        let out = chain(&a, &b, clock())
            .send(&msg(), Some("old-provider"), true)
            .await;
        assert_eq!(
            out,
            ChainOutcome::Attempted {
                provider: "twilio".into(),
                failovers: vec![],
                result: ok("SM1")
            }
        );
    }

    #[tokio::test]
    async fn misconfigured_fails_over_at_once_and_rejections_do_not() {
        let bad = Err(ProviderError::misconfigured("20003", "Authenticate"));
        let rejected = Err(ProviderError::Rejected {
            code: "21211".into(),
            message: "invalid To".into(),
        });
        let a = Scripted::new("twilio", vec![bad, rejected.clone()]);
        let b = Scripted::new("unifonic", vec![ok("7")]);
        let c = chain(&a, &b, clock());
        assert_eq!(
            c.send(&msg(), None, false).await,
            ChainOutcome::Attempted {
                provider: "unifonic".into(),
                failovers: vec![Failover {
                    from: "twilio".into(),
                    to: "unifonic".into(),
                    reason: FailoverReason::Misconfigured
                }],
                result: ok("7"),
            }
        );
        assert_eq!(
            c.send(&msg(), None, false).await,
            ChainOutcome::Attempted {
                provider: "twilio".into(),
                failovers: vec![],
                result: rejected
            }
        );
    }
}
