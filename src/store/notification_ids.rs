//! Notification ids come from one counter per tenant (`notification_counters`), so
//! the gap between two of a tenant's ids says nothing about other tenants' volume
//! (issue #11). Each backend reserves a batch's ids with one statement per batch
//! (an upsert that returns each tenant's counter after the reservation); this is
//! what both then share: handing out the reserved ids, and knowing what was left over.

use std::collections::HashMap;

use super::columns::millis;
use super::{PublishRequest, StoreError};
use crate::domain::escalation::EscalationTarget;
use crate::domain::ids::{NotificationId, TenantId, UserId};
use crate::domain::notification::Notification;
use crate::domain::preferences::StaffPreferences;
use crate::domain::priority::reach;

/// A recipient of a batch: (tenant, user).
pub(crate) type UserKey = (TenantId, UserId);

/// The ids one batch reserved: per tenant, the next id to hand out and the last reserved.
#[derive(Debug, Default)]
pub(crate) struct IdBlocks(HashMap<TenantId, (i64, i64)>);

impl IdBlocks {
    /// Records a block of `count` ids ending at `last`, the tenant's counter after the
    /// reservation.
    pub(crate) fn add(&mut self, tenant: TenantId, last: i64, count: i64) {
        self.0.insert(tenant, (last - count + 1, last));
    }

    /// The tenant's next id. Running out is a bug in the reservation, never a wrap.
    pub(crate) fn next(&mut self, tenant: &TenantId) -> Result<i64, StoreError> {
        match self.0.get_mut(tenant) {
            Some((next, last)) if *next <= *last => {
                *next += 1;
                Ok(*next - 1)
            }
            _ => Err(StoreError::Internal(format!(
                "no notification id reserved for tenant {tenant}"
            ))),
        }
    }

    /// Per tenant, the ids reserved but not handed out (SQLite reserves before it knows
    /// which requests are idempotent replays); giving them back keeps ids gapless.
    pub(crate) fn unused(&self) -> impl Iterator<Item = (&TenantId, i64)> {
        self.0
            .iter()
            .map(|(t, (next, last))| (t, last - next + 1))
            .filter(|(_, n)| *n > 0)
    }
}

/// The rows one publish creates, in recipient order, as both backends build them: each
/// takes the tenant's next id, and is `silent` unless [`reach`] says it goes live (the
/// recipient's preferences at the request's time, and its priority). A publish with
/// `escalate` starts a chain named by its first row; a copy joins its original's.
/// Adds one unread and the newest id to each recipient's `deltas`.
pub(crate) fn rows_for(
    req: &PublishRequest,
    ids: &mut IdBlocks,
    prefs: &HashMap<UserKey, StaffPreferences>,
    deltas: &mut HashMap<UserKey, (i64, i64)>,
) -> Result<Vec<Notification>, StoreError> {
    let mut rows: Vec<Notification> = Vec::with_capacity(req.recipients.len());
    for user in &req.recipients {
        let seq = ids.next(&req.tenant)?;
        let key = (req.tenant.clone(), user.clone());
        let silenced = prefs
            .get(&key)
            .is_some_and(|p| p.silences(req.content.category.as_deref(), req.now));
        let silent = !reach(req.content.priority, silenced).live;
        let chain = match (req.escalated_from, rows.first()) {
            (Some(original), _) => Some(original),
            (None, _) if req.escalate.is_empty() => None,
            (None, Some(first)) => first.chain,
            (None, None) => Some(NotificationId::from_seq(seq)),
        };
        let delta = deltas.entry(key).or_default();
        delta.0 += 1;
        delta.1 = seq;
        rows.push(Notification {
            id: NotificationId::from_seq(seq),
            tenant: req.tenant.clone(),
            user: user.clone(),
            content: req.content.clone(),
            read_at: None,
            created_at: req.now,
            updated_at: req.now,
            silent,
            chain,
            escalated_from: req.escalated_from,
        });
    }
    Ok(rows)
}

/// An escalation step to store with its publish.
#[derive(Debug, Clone)]
pub(crate) struct NewEscalation {
    pub(crate) tenant: TenantId,
    pub(crate) chain_seq: i64,
    /// 1 for the first step.
    pub(crate) step: i64,
    pub(crate) due_at: i64,
    pub(crate) to_user: Option<String>,
    pub(crate) to_role: Option<&'static str>,
}

/// The steps a publish's rows schedule: none without `escalate`, or when the publish
/// reached nobody (there is no chain to escalate).
pub(crate) fn escalations_for(req: &PublishRequest, rows: &[Notification]) -> Vec<NewEscalation> {
    let Some(chain) = rows.first().and_then(|n| n.chain) else {
        return Vec::new();
    };
    req.escalate
        .iter()
        .zip(1..)
        .map(|(s, step)| {
            let (to_user, to_role) = match &s.to {
                EscalationTarget::User(u) => (Some(u.as_str().to_owned()), None),
                EscalationTarget::Role(r) => (None, Some(r.as_str())),
            };
            NewEscalation {
                tenant: req.tenant.clone(),
                chain_seq: chain.seq(),
                step,
                due_at: millis(req.now) + s.after_secs * 1000,
                to_user,
                to_role,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_hand_out_their_ids_in_order_and_report_the_rest() {
        let (a, b) = (
            TenantId::parse("clinic-a").unwrap(),
            TenantId::parse("clinic-b").unwrap(),
        );
        let mut blocks = IdBlocks::default();
        blocks.add(a.clone(), 12, 3);
        blocks.add(b.clone(), 1, 1);
        assert_eq!(blocks.next(&a).unwrap(), 10);
        assert_eq!(blocks.next(&b).unwrap(), 1);
        assert_eq!(blocks.next(&a).unwrap(), 11);
        assert!(blocks.next(&b).is_err());
        assert_eq!(blocks.unused().collect::<Vec<_>>(), [(&a, 1)]);
        assert!(blocks.next(&TenantId::parse("clinic-c").unwrap()).is_err());
    }
}
