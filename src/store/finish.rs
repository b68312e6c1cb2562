//! What a worker's attempt result does to a message whose lease it still holds: the
//! one decision [`crate::store::outbound::OutboundStore::finish_attempt`] makes, shared
//! by both backends.

use chrono::{DateTime, Utc};

use super::outbound::AttemptUpdate;
use super::StoreError;
use crate::domain::message::MessageStatus;

/// The row values a finished attempt writes (besides the provider fields and events,
/// which the update carries as they are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FinishPlan {
    pub(crate) status: MessageStatus,
    /// When the queue looks at the message again (`Queued`, `Sending`); `None` once it left the queue.
    pub(crate) due_at: Option<DateTime<Utc>>,
    pub(crate) failures: u32,
    pub(crate) last_error: Option<String>,
}

/// Decides what to write, given the status found under the caller's lease.
///
/// - Still `Sending` (the usual case): the update's status, with its `due_at` when it
///   goes back to the queue (`Queued`: retry time, now if absent; `Sending`: the
///   unknown-outcome deadline, which it must carry).
/// - A provider callback already moved it (the callback raced the provider's HTTP
///   answer): a `Sent` keeps the callback's later status and only adds what the answer
///   knows (provider id, price); any other result is stale and writes nothing (`None`).
pub(crate) fn plan_finish(
    current: MessageStatus,
    update: &AttemptUpdate,
    now: DateTime<Utc>,
) -> Result<Option<FinishPlan>, StoreError> {
    if update.status == MessageStatus::Cancelled {
        return Err(StoreError::Internal(
            "an attempt cannot cancel a message".to_owned(),
        ));
    }
    if current != MessageStatus::Sending {
        if update.status != MessageStatus::Sent {
            return Ok(None);
        }
        return Ok(Some(FinishPlan {
            status: current,
            due_at: None,
            failures: update.failures,
            last_error: update.last_error.clone(),
        }));
    }
    let due_at = match update.status {
        MessageStatus::Queued => Some(update.due_at.unwrap_or(now)),
        MessageStatus::Sending => Some(update.due_at.ok_or_else(|| {
            StoreError::Internal("an unknown outcome needs the deadline of its wait".to_owned())
        })?),
        _ => None,
    };
    Ok(Some(FinishPlan {
        status: update.status,
        due_at,
        failures: update.failures,
        last_error: update.last_error.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn update(status: MessageStatus, due_at: Option<DateTime<Utc>>) -> AttemptUpdate {
        AttemptUpdate {
            status,
            due_at,
            provider: Some("log".into()),
            provider_message_id: None,
            price: None,
            attempted: true,
            failures: 1,
            last_error: Some("timeout".into()),
            events: Vec::new(),
        }
    }

    #[test]
    fn a_held_message_takes_the_result_and_its_due_time() {
        let now = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let later = now + chrono::Duration::seconds(60);
        let p = plan_finish(
            MessageStatus::Sending,
            &update(MessageStatus::Queued, Some(later)),
            now,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (p.status, p.due_at, p.failures),
            (MessageStatus::Queued, Some(later), 1)
        );
        let p = plan_finish(
            MessageStatus::Sending,
            &update(MessageStatus::Sent, Some(later)),
            now,
        )
        .unwrap()
        .unwrap();
        assert_eq!((p.status, p.due_at), (MessageStatus::Sent, None));
        assert!(plan_finish(
            MessageStatus::Sending,
            &update(MessageStatus::Sending, None),
            now
        )
        .is_err());
    }

    #[test]
    fn after_a_callback_only_sent_adds_its_facts() {
        let now = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let p = plan_finish(
            MessageStatus::Delivered,
            &update(MessageStatus::Sent, None),
            now,
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.status, MessageStatus::Delivered);
        assert_eq!(
            plan_finish(
                MessageStatus::Delivered,
                &update(MessageStatus::Failed, None),
                now
            )
            .unwrap(),
            None
        );
    }
}
