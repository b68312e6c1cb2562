//! The escalation port: the durable schedule of escalation steps.
//!
//! A publish with `escalate` stores its steps in its own transaction (see
//! `notification_ids::escalations_for`); from then on they live only here, so they
//! survive restarts. Every node's worker claims due steps under a lease, as the
//! outbound queue does (`claim_escalations`), and fires each in one transaction that
//! also publishes the copy (`fire_escalation`): the step's state, checked and
//! written with the copy, is what makes a step fire once across nodes. A read of any
//! notification of the chain cancels its pending steps in the read's transaction
//! (`NotificationStore::mark_read`, `mark_all_read`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{PublishOutcome, StoreError};
use crate::domain::escalation::EscalationTarget;
use crate::domain::ids::{NotificationId, TenantId, UserId};

/// A due step a worker claimed: leased to `lease_token` until the claim's `lease_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedEscalation {
    pub tenant: TenantId,
    /// The chain's original notification.
    pub chain: NotificationId,
    /// 1 for the first step.
    pub step: i64,
    pub due_at: DateTime<Utc>,
    pub to: EscalationTarget,
    pub lease_token: uuid::Uuid,
}

/// Where a step is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscalationState {
    Pending,
    /// Its copy was published.
    Fired,
    /// A notification of the chain was read first.
    Cancelled,
    /// The original was gone (retention) when it came due: nothing to copy.
    Dropped,
}

impl EscalationState {
    pub(crate) fn code(self) -> i64 {
        match self {
            Self::Pending => 0,
            Self::Fired => 1,
            Self::Cancelled => 2,
            Self::Dropped => 3,
        }
    }

    pub(crate) fn from_code(code: i64) -> Result<Self, StoreError> {
        [Self::Pending, Self::Fired, Self::Cancelled, Self::Dropped]
            .into_iter()
            .find(|s| s.code() == code)
            .ok_or_else(|| StoreError::Internal(format!("bad escalation state {code}")))
    }
}

/// One stored step of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationRecord {
    pub step: i64,
    pub due_at: DateTime<Utc>,
    pub to: EscalationTarget,
    pub state: EscalationState,
}

/// What firing a claimed step did.
#[derive(Debug, Clone)]
pub enum FireOutcome {
    /// The copy was published (to nobody, if the step's role had no users).
    Fired(PublishOutcome),
    /// The step was no longer this worker's: cancelled by a read, fired by another
    /// worker, or claimed again after the lease ran out.
    NotMine,
    /// The original is gone: the step ends without a copy.
    Dropped,
}

#[async_trait]
pub trait EscalationStore: Send + Sync {
    /// Claims up to `limit` pending steps due at `now` whose lease (if any) ended, for
    /// `lease_until`, under one fresh token; returned in due order (a chain's steps in
    /// step order). Two workers, on one node or many, never
    /// hold the same step at once.
    async fn claim_escalations(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedEscalation>, StoreError>;
    /// In one transaction: ends the step as fired if it is still pending under this
    /// claim's token, and publishes the original's content to `recipients` as a copy
    /// linked to the chain. Nothing is written when the step is no longer the claim's.
    async fn fire_escalation(
        &self,
        claimed: &ClaimedEscalation,
        recipients: Vec<UserId>,
        now: DateTime<Utc>,
    ) -> Result<FireOutcome, StoreError>;
    /// The stored steps of one chain, in step order (tests and operators).
    async fn escalation_steps(
        &self,
        tenant: &TenantId,
        chain: NotificationId,
    ) -> Result<Vec<EscalationRecord>, StoreError>;
}
