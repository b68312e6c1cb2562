//! Notification ids come from one counter per tenant (`notification_counters`), so
//! the gap between two of a tenant's ids says nothing about other tenants' volume
//! (issue #11). Each backend reserves a batch's ids with one statement per batch
//! (an upsert that returns each tenant's counter after the reservation); this is
//! what both then share: handing out the reserved ids, and knowing what was left over.

use std::collections::HashMap;

use super::StoreError;
use crate::domain::ids::TenantId;

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
