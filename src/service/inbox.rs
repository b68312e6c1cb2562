//! A staff member's own notifications: list, count, read, archive, preferences.
//! Every change that affects other tabs is announced through the hub.

use std::sync::Arc;

use super::clock::Clock;
use super::{frames, ServiceError};
use crate::bus::Delivery;
use crate::domain::ids::{NotificationId, TenantId, UserId};
use crate::domain::notification::{Notification, UnreadCount};
use crate::domain::preferences::StaffPreferences;
use crate::domain::Invalid;
use crate::hub::Hub;
use crate::store::{InboxFilter, Page, PageRequest, ReadOutcome, Store};

/// Most ids in one mark-read request or frame.
pub const MAX_READ_IDS: usize = 1000;

/// Most categories `categories` answers: categories are a short fixed list in
/// practice; the bound keeps a pathological publisher from making the answer huge.
pub const MAX_CATEGORIES: u32 = 500;

pub struct Inbox {
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
    clock: Arc<dyn Clock>,
}

impl Inbox {
    pub fn new(store: Arc<dyn Store>, hub: Arc<Hub>, clock: Arc<dyn Clock>) -> Self {
        Self { store, hub, clock }
    }

    pub async fn list(
        &self,
        tenant: &TenantId,
        user: &UserId,
        filter: InboxFilter,
        page: PageRequest,
    ) -> Result<Page<Notification>, ServiceError> {
        Ok(self.store.list(tenant, user, filter, page).await?)
    }

    pub async fn unread(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<UnreadCount, ServiceError> {
        Ok(self.store.unread_count(tenant, user).await?)
    }

    /// Marks one notification read: `NotFound` if it is not this user's.
    pub async fn read_one(
        &self,
        tenant: &TenantId,
        user: &UserId,
        id: NotificationId,
    ) -> Result<UnreadCount, ServiceError> {
        let out = self
            .store
            .mark_read(tenant, user, &[id], self.clock.now())
            .await?;
        if out.changed.is_empty() && !self.store.owns(tenant, user, id).await? {
            return Err(ServiceError::NotFound);
        }
        self.announce(tenant, user, &out, false).await;
        Ok(out.count)
    }

    /// Marks many read (the WebSocket `mark_read` frame); ids not this user's are ignored.
    pub async fn read_many(
        &self,
        tenant: &TenantId,
        user: &UserId,
        ids: &[NotificationId],
    ) -> Result<UnreadCount, ServiceError> {
        if ids.len() > MAX_READ_IDS {
            return Err(Invalid::new("ids", format!("at most {MAX_READ_IDS} ids")).into());
        }
        let out = self
            .store
            .mark_read(tenant, user, ids, self.clock.now())
            .await?;
        self.announce(tenant, user, &out, false).await;
        Ok(out.count)
    }

    pub async fn read_all(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<UnreadCount, ServiceError> {
        let out = self
            .store
            .mark_all_read(tenant, user, self.clock.now())
            .await?;
        self.announce(tenant, user, &out, true).await;
        Ok(out.count)
    }

    pub async fn archive(
        &self,
        tenant: &TenantId,
        user: &UserId,
        id: NotificationId,
    ) -> Result<UnreadCount, ServiceError> {
        let count = self
            .store
            .archive(tenant, user, id, self.clock.now())
            .await?;
        self.hub
            .publish(
                tenant.clone(),
                vec![Delivery {
                    user: user.clone(),
                    frame: frames::unread(count),
                }],
            )
            .await;
        Ok(count)
    }

    async fn announce(&self, tenant: &TenantId, user: &UserId, out: &ReadOutcome, all: bool) {
        let mut deliveries = Vec::with_capacity(2);
        if all && out.count.version > 0 {
            deliveries.push(Delivery {
                user: user.clone(),
                frame: frames::read_all(),
            });
        } else if !out.changed.is_empty() {
            deliveries.push(Delivery {
                user: user.clone(),
                frame: frames::read(&out.changed),
            });
        } else {
            return; // nothing changed: no event, no version bump
        }
        deliveries.push(Delivery {
            user: user.clone(),
            frame: frames::unread(out.count),
        });
        self.hub.publish(tenant.clone(), deliveries).await;
    }

    pub async fn preferences(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<StaffPreferences, ServiceError> {
        Ok(self.store.staff_preferences(tenant, user).await?)
    }

    /// The categories of the user's notifications, sorted (at most
    /// [`MAX_CATEGORIES`]), so a notification center can offer every one, not only
    /// those of the pages it loaded.
    pub async fn categories(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Vec<String>, ServiceError> {
        Ok(self
            .store
            .notification_categories(tenant, user, MAX_CATEGORIES)
            .await?)
    }

    pub async fn set_preferences(
        &self,
        tenant: &TenantId,
        user: &UserId,
        prefs: StaffPreferences,
    ) -> Result<StaffPreferences, ServiceError> {
        self.store
            .put_staff_preferences(tenant, user, &prefs, self.clock.now())
            .await?;
        Ok(prefs)
    }
}
