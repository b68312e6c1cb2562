//! Notification ids come from one counter per tenant (`notification_counters`), so
//! the gap between two of a tenant's ids says nothing about other tenants' volume
//! (issue #11). Each backend reserves a batch's ids with one statement per batch
//! (an upsert that returns each tenant's counter after the reservation); this is
//! what both then share: handing out the reserved ids, and knowing what was left over.

use std::collections::HashMap;

use super::{PublishRequest, StoreError};
use crate::domain::ids::{NotificationId, TenantId, UserId};
use crate::domain::notification::Notification;
use crate::domain::preferences::StaffPreferences;

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
/// takes the tenant's next id, and is `silent` when the recipient's preferences say so at
/// the request's time. Adds one unread and the newest id to each recipient's `deltas`.
pub(crate) fn rows_for(
    req: &PublishRequest,
    ids: &mut IdBlocks,
    prefs: &HashMap<UserKey, StaffPreferences>,
    deltas: &mut HashMap<UserKey, (i64, i64)>,
) -> Result<Vec<Notification>, StoreError> {
    let mut rows = Vec::with_capacity(req.recipients.len());
    for user in &req.recipients {
        let seq = ids.next(&req.tenant)?;
        let key = (req.tenant.clone(), user.clone());
        let silent = prefs
            .get(&key)
            .is_some_and(|p| p.silences(req.content.category.as_deref(), req.now));
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
        });
    }
    Ok(rows)
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
