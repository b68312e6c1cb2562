//! The dispatch policy, pure: what a message becomes after what its failover
//! chain answered. No store, no provider, no clock: the worker
//! ([`super::Dispatcher`]) does the IO and hands every fact in, `now` included,
//! so each row of the table in `dispatch.rs` is a unit test here.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::domain::message::{MessageStatus, RetryDecision, RetryPolicy, Suppression};
use crate::provider::failover::{ChainOutcome, Failover};
use crate::provider::{ProviderAccepted, ProviderError};
use crate::store::outbound::{AttemptUpdate, MessageEvent};

/// What one attempt has learned so far: the message's provider and failure count
/// as they evolve, and the events to record with the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Attempt {
    pub(super) provider: Option<String>,
    pub(super) failures: u32,
    pub(super) events: Vec<MessageEvent>,
    /// When the last fact came in (stamped on the events).
    pub(super) now: DateTime<Utc>,
}

/// What the worker does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    /// Record this outcome; the attempt is over.
    Finish(AttemptUpdate),
    /// Retries on `provider` are used up: ask the chain for its next provider at
    /// once, then decide again with the answer, this attempt and this [`GaveUp`].
    NextProvider {
        attempt: Attempt,
        provider: String,
        gave_up: GaveUp,
    },
}

/// Why the previous provider was left, for the `failed` event if the chain has
/// no provider left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GaveUp {
    detail: serde_json::Value,
    last_error: Option<String>,
}

impl Attempt {
    pub(super) fn new(provider: Option<String>, failures: u32, now: DateTime<Utc>) -> Self {
        Self {
            provider,
            failures,
            events: Vec::new(),
            now,
        }
    }

    /// A message claimed while `sending`: its worker died mid-send, or its
    /// unknown-outcome wait ran out. The send may or may not have happened, so it
    /// counts as one transient failure. Returns whether that used up the retries
    /// on its provider (the chain then starts from the next one).
    pub(super) fn reclaimed(&mut self, policy: &RetryPolicy) -> bool {
        self.failures += 1;
        self.event(
            "retry",
            json!({
                "reason": "reclaimed",
                "provider": self.provider,
                "failures": self.failures,
            }),
        );
        policy.next(self.failures, self.now, None) == RetryDecision::GiveUp
    }

    /// The patient's preferences, read at send time, forbid the message.
    pub(super) fn suppressed(mut self, suppression: Suppression) -> AttemptUpdate {
        self.event(
            "suppressed",
            json!({
                "reason": suppression.code(),
                "message": suppression.to_string(),
                "at": "send",
            }),
        );
        self.into_update(MessageStatus::Suppressed, None, false, None)
    }

    /// The message has no address to send to.
    pub(super) fn no_address(mut self) -> AttemptUpdate {
        self.event("failed", json!({"reason": "no_address"}));
        self.into_update(
            MessageStatus::Failed,
            None,
            false,
            Some("no_address: the message has no address".into()),
        )
    }

    fn event(&mut self, event: &str, detail: serde_json::Value) {
        self.events.push(MessageEvent {
            event: event.to_owned(),
            at: self.now,
            detail: detail.to_string(),
        });
    }

    fn failovers(&mut self, failovers: &[Failover]) {
        for f in failovers {
            self.event(
                "failover",
                json!({"from": f.from, "to": f.to, "reason": f.reason.as_str()}),
            );
        }
    }

    fn sent(mut self, accepted: ProviderAccepted) -> AttemptUpdate {
        self.event(
            "sent",
            json!({
                "provider": self.provider,
                "provider_message_id": accepted.provider_message_id,
                "price": accepted.price.as_ref().map(|p| p.to_string()),
                "response": accepted.raw,
            }),
        );
        let mut update = self.into_update(MessageStatus::Sent, None, true, None);
        update.provider_message_id = Some(accepted.provider_message_id);
        update.price = accepted.price;
        update
    }

    fn into_update(
        self,
        status: MessageStatus,
        due_at: Option<DateTime<Utc>>,
        attempted: bool,
        last_error: Option<String>,
    ) -> AttemptUpdate {
        AttemptUpdate {
            status,
            due_at,
            provider: self.provider,
            provider_message_id: None,
            price: None,
            attempted,
            failures: self.failures,
            last_error,
            events: self.events,
        }
    }
}

/// The next step after the chain answered `outcome` at `now`.
///
/// `gave_up`: this answer came right after the previous provider's retries ran out
/// (a [`Step::NextProvider`]); `stored_error` is the message's last error as
/// stored, kept when the chain was exhausted before anything was sent.
pub(super) fn next_step(
    mut attempt: Attempt,
    outcome: ChainOutcome,
    policy: &RetryPolicy,
    gave_up: Option<GaveUp>,
    stored_error: Option<&str>,
    now: DateTime<Utc>,
) -> Step {
    attempt.now = now;
    let (provider, failovers, result) = match outcome {
        ChainOutcome::Exhausted => return Step::Finish(exhausted(attempt, gave_up, stored_error)),
        ChainOutcome::AllOpen {
            failovers,
            retry_in,
        } => {
            attempt.failovers(&failovers);
            let wait = retry_in.max(std::time::Duration::from_secs(1));
            let at = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
            attempt.event(
                "retry",
                json!({"reason": "circuit_open", "retry_at": at.to_rfc3339()}),
            );
            return Step::Finish(attempt.into_update(MessageStatus::Queued, Some(at), false, None));
        }
        ChainOutcome::Attempted {
            provider,
            failovers,
            result,
        } => (provider, failovers, result),
    };
    attempt.failovers(&failovers);
    if attempt.provider.as_deref() != Some(provider.as_str()) {
        // Retries count per provider: a new provider starts afresh.
        attempt.failures = 0;
        attempt.provider = Some(provider.clone());
    }
    match result {
        Ok(accepted) => Step::Finish(attempt.sent(accepted)),
        Err(error) => failed(attempt, provider, &error, policy),
    }
}

/// The chain has no provider left.
fn exhausted(
    mut attempt: Attempt,
    gave_up: Option<GaveUp>,
    stored_error: Option<&str>,
) -> AttemptUpdate {
    match gave_up {
        // The provider just called failed for the last time: its error is the
        // message's last error.
        Some(GaveUp { detail, last_error }) => {
            attempt.event("failed", detail);
            attempt.into_update(MessageStatus::Failed, None, true, last_error)
        }
        // Nothing was called now: the stored error stays the last one.
        None => {
            attempt.event(
                "failed",
                json!({"reason": "retries_exhausted", "provider": attempt.provider}),
            );
            let last = stored_error.map(str::to_owned);
            attempt.into_update(MessageStatus::Failed, None, false, last)
        }
    }
}

/// `provider` answered `error`.
fn failed(
    mut attempt: Attempt,
    provider: String,
    error: &ProviderError,
    policy: &RetryPolicy,
) -> Step {
    let detail = |extra: serde_json::Value| {
        let mut d = json!({
            "provider": provider,
            "code": error.code(),
            "error": error.to_string(),
        });
        if let (Some(d), Some(extra)) = (d.as_object_mut(), extra.as_object()) {
            d.extend(extra.clone());
        }
        d
    };
    let last_error = Some(format!("{}: {}", error.code(), error));
    let now = attempt.now;
    let retry_after = match error {
        ProviderError::Rejected { .. } => {
            attempt.event("bounced", detail(json!({})));
            return Step::Finish(attempt.into_update(
                MessageStatus::Bounced,
                None,
                true,
                last_error,
            ));
        }
        ProviderError::Unknown { .. } => {
            // The callback, which carries our id, settles it; retried only if
            // none comes by the deadline.
            let until = policy.unknown_outcome_deadline(now);
            attempt.event("unknown", detail(json!({"wait_until": until.to_rfc3339()})));
            let update = attempt.into_update(MessageStatus::Sending, Some(until), true, last_error);
            return Step::Finish(update);
        }
        ProviderError::Transient { retry_after, .. } => *retry_after,
        // The chain already moved past a misconfigured provider; at its end it
        // counts as a transient failure (the configuration may be fixed).
        ProviderError::Misconfigured { .. } => None,
    };
    attempt.failures += 1;
    match policy.next(attempt.failures, now, retry_after) {
        RetryDecision::RetryAt(at) => {
            attempt.event(
                "retry",
                detail(json!({
                    "failures": attempt.failures,
                    "retry_at": at.to_rfc3339(),
                    "retry_after_secs": retry_after.map(|d| d.as_secs()),
                })),
            );
            Step::Finish(attempt.into_update(MessageStatus::Queued, Some(at), true, last_error))
        }
        RetryDecision::GiveUp => Step::NextProvider {
            attempt,
            gave_up: GaveUp {
                detail: detail(json!({"reason": "retries_exhausted"})),
                last_error,
            },
            provider,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::template::{Channel, MessageKind};
    use crate::provider::failover::FailoverReason;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn secs(n: i64) -> Option<DateTime<Utc>> {
        Some(t0() + chrono::Duration::seconds(n))
    }

    fn attempted(provider: &str, result: Result<ProviderAccepted, ProviderError>) -> ChainOutcome {
        ChainOutcome::Attempted {
            provider: provider.into(),
            failovers: vec![],
            result,
        }
    }

    fn accepted() -> Result<ProviderAccepted, ProviderError> {
        Ok(ProviderAccepted {
            provider_message_id: "SM1".into(),
            price: None,
            raw: "{}".into(),
        })
    }

    fn transient(retry_after: Option<u64>) -> Result<ProviderAccepted, ProviderError> {
        Err(ProviderError::Transient {
            code: "http_503".into(),
            message: "busy".into(),
            retry_after: retry_after.map(Duration::from_secs),
        })
    }

    fn err(kind: &str) -> Result<ProviderAccepted, ProviderError> {
        let (code, message) = ("c".to_owned(), "m".to_owned());
        Err(match kind {
            "rejected" => ProviderError::Rejected { code, message },
            "unknown" => ProviderError::Unknown { code, message },
            _ => ProviderError::Misconfigured { code, message },
        })
    }

    fn gave_up() -> GaveUp {
        GaveUp {
            detail: json!({"reason": "retries_exhausted", "provider": "twilio"}),
            last_error: Some("http_503: busy".into()),
        }
    }

    /// A case: its name, the stored provider and failures, what the chain
    /// answered, whether a provider was just given up on, what must come out.
    type Row = (
        &'static str,
        Option<&'static str>,
        u32,
        ChainOutcome,
        Option<GaveUp>,
        Expect,
    );

    /// What a finished step must say.
    struct Expect {
        status: MessageStatus,
        due_at: Option<DateTime<Utc>>,
        provider: Option<&'static str>,
        attempted: bool,
        failures: u32,
        events: &'static [&'static str],
        last_error: Option<&'static str>,
    }

    fn finish(
        provider: Option<&str>,
        failures: u32,
        outcome: ChainOutcome,
        gave: Option<GaveUp>,
    ) -> AttemptUpdate {
        let attempt = Attempt::new(provider.map(str::to_owned), failures, t0());
        let policy = RetryPolicy::default(); // 60 s × 2ⁿ, 3 retries, unknown: 600 s
        match next_step(attempt, outcome, &policy, gave, Some("old: stored"), t0()) {
            Step::Finish(update) => update,
            other => panic!("expected Finish, got {other:?}"),
        }
    }

    #[test]
    fn every_chain_answer_has_its_next_state() {
        let failover = ChainOutcome::Attempted {
            provider: "unifonic".into(),
            failovers: vec![Failover {
                from: "twilio".into(),
                to: "unifonic".into(),
                reason: FailoverReason::CircuitOpen,
            }],
            result: transient(None),
        };
        let all_open = ChainOutcome::AllOpen {
            failovers: vec![],
            retry_in: Duration::from_millis(10),
        };
        #[rustfmt::skip]
        let table: Vec<Row> = vec![
            ("accepted", Some("twilio"), 1, attempted("twilio", accepted()), None,
             Expect { status: MessageStatus::Sent, due_at: None, provider: Some("twilio"), attempted: true,
                      failures: 1, events: &["sent"], last_error: None }),
            ("transient, retries left: backoff", Some("twilio"), 1, attempted("twilio", transient(None)), None,
             Expect { status: MessageStatus::Queued, due_at: secs(120), provider: Some("twilio"), attempted: true,
                      failures: 2, events: &["retry"], last_error: Some("http_503: temporarily failed (http_503): busy") }),
            ("transient, Retry-After longer than the backoff", None, 0, attempted("twilio", transient(Some(300))), None,
             Expect { status: MessageStatus::Queued, due_at: secs(300), provider: Some("twilio"), attempted: true,
                      failures: 1, events: &["retry"], last_error: Some("http_503: temporarily failed (http_503): busy") }),
            ("misconfigured at the end of the chain: as transient", Some("twilio"), 0, attempted("twilio", err("misconfigured")), None,
             Expect { status: MessageStatus::Queued, due_at: secs(60), provider: Some("twilio"), attempted: true,
                      failures: 1, events: &["retry"], last_error: Some("c: misconfigured (c): m") }),
            ("rejected: bounced", Some("twilio"), 2, attempted("twilio", err("rejected")), None,
             Expect { status: MessageStatus::Bounced, due_at: None, provider: Some("twilio"), attempted: true,
                      failures: 2, events: &["bounced"], last_error: Some("c: rejected (c): m") }),
            ("unknown: waits for the callback", Some("twilio"), 0, attempted("twilio", err("unknown")), None,
             Expect { status: MessageStatus::Sending, due_at: secs(600), provider: Some("twilio"), attempted: true,
                      failures: 0, events: &["unknown"], last_error: Some("c: outcome unknown (c): m") }),
            ("a new provider starts its retries afresh", Some("twilio"), 3, failover, None,
             Expect { status: MessageStatus::Queued, due_at: secs(60), provider: Some("unifonic"), attempted: true,
                      failures: 1, events: &["failover", "retry"], last_error: Some("http_503: temporarily failed (http_503): busy") }),
            ("every breaker open: later, not a retry", Some("twilio"), 2, all_open, None,
             Expect { status: MessageStatus::Queued, due_at: secs(1), provider: Some("twilio"), attempted: false,
                      failures: 2, events: &["retry"], last_error: None }),
            ("exhausted before any call: the stored error stays", Some("unifonic"), 4, ChainOutcome::Exhausted, None,
             Expect { status: MessageStatus::Failed, due_at: None, provider: Some("unifonic"), attempted: false,
                      failures: 4, events: &["failed"], last_error: Some("old: stored") }),
            ("exhausted right after giving up: that error is the last", Some("twilio"), 4, ChainOutcome::Exhausted, Some(gave_up()),
             Expect { status: MessageStatus::Failed, due_at: None, provider: Some("twilio"), attempted: true,
                      failures: 4, events: &["failed"], last_error: Some("http_503: busy") }),
        ];
        for (name, provider, failures, outcome, gave, want) in table {
            let got = finish(provider, failures, outcome, gave);
            let events: Vec<&str> = got.events.iter().map(|e| e.event.as_str()).collect();
            assert_eq!(got.status, want.status, "{name}");
            assert_eq!(got.due_at, want.due_at, "{name}");
            assert_eq!(got.provider.as_deref(), want.provider, "{name}");
            assert_eq!(got.attempted, want.attempted, "{name}");
            assert_eq!(got.failures, want.failures, "{name}");
            assert_eq!(events, want.events, "{name}");
            assert_eq!(got.last_error.as_deref(), want.last_error, "{name}");
            assert!(got.events.iter().all(|e| e.at == t0()), "{name}");
        }
    }

    #[test]
    fn transient_with_retries_used_up_hands_over_to_the_next_provider() {
        let attempt = Attempt::new(Some("twilio".into()), 3, t0());
        let step = next_step(
            attempt,
            attempted("twilio", transient(None)),
            &RetryPolicy::default(),
            None,
            None,
            t0(),
        );
        let Step::NextProvider {
            attempt,
            provider,
            gave_up,
        } = step
        else {
            panic!("expected NextProvider, got {step:?}");
        };
        assert_eq!(provider, "twilio");
        assert_eq!(attempt.failures, 4);
        assert!(
            attempt.events.is_empty(),
            "the failed event waits for the chain"
        );
        assert_eq!(gave_up.detail["reason"], "retries_exhausted");
        assert_eq!(gave_up.detail["provider"], "twilio");
    }

    #[test]
    fn accepted_keeps_the_providers_id_and_price() {
        let ok = Ok(ProviderAccepted {
            provider_message_id: "wamid.A".into(),
            price: Some(crate::domain::message::Money {
                micros: 7_500,
                currency: "USD".into(),
            }),
            raw: "{}".into(),
        });
        let got = finish(None, 0, attempted("whatsapp", ok), None);
        assert_eq!(got.provider_message_id.as_deref(), Some("wamid.A"));
        assert_eq!(got.price.map(|p| p.micros), Some(7_500));
    }

    #[test]
    fn a_reclaimed_send_counts_one_failure() {
        let policy = RetryPolicy::default();
        let mut left = Attempt::new(Some("twilio".into()), 0, t0());
        assert!(!left.reclaimed(&policy));
        assert_eq!((left.failures, left.events[0].event.as_str()), (1, "retry"));
        let mut used_up = Attempt::new(Some("twilio".into()), 3, t0());
        assert!(
            used_up.reclaimed(&policy),
            "the 4th failure gives up on twilio"
        );
    }

    #[test]
    fn opted_out_and_addressless_messages_are_never_sent() {
        let opted_out = Attempt::new(None, 0, t0())
            .suppressed(Suppression::KindDisabled(MessageKind::Marketing));
        assert_eq!(opted_out.status, MessageStatus::Suppressed);
        assert!(!opted_out.attempted);
        assert!(opted_out.events[0].detail.contains("kind_disabled"));
        let off =
            Attempt::new(None, 0, t0()).suppressed(Suppression::ChannelDisabled(Channel::Sms));
        assert!(off.events[0].detail.contains("channel_disabled"));
        let nowhere = Attempt::new(None, 0, t0()).no_address();
        assert_eq!(
            (nowhere.status, nowhere.last_error.as_deref()),
            (
                MessageStatus::Failed,
                Some("no_address: the message has no address")
            )
        );
    }
}
