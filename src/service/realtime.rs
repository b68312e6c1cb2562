//! Opening a live connection: register with the hub, then read what was missed.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::directory::Directory;
use super::{frames, ServiceError};
use crate::domain::auth::UserPrincipal;
use crate::domain::ids::{NotificationId, TenantId, UserId};
use crate::domain::notification::UnreadCount;
use crate::hub::session::{CatchUp, CatchUpFrames, Session};
use crate::hub::{Frame, Hub};
use crate::store::Store;

/// Page size when replaying; resume pages until it has everything up to `max_replay`.
const REPLAY_PAGE: u32 = 500;

pub struct Realtime {
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
    directory: Arc<Directory>,
    catch_up: Arc<StoreCatchUp>,
}

/// Reads missed notifications from the store for [`Session`]s.
pub struct StoreCatchUp {
    store: Arc<dyn Store>,
    /// Upper bound on one replay, so a resume from the beginning of a long history
    /// cannot hold memory without limit. A client further behind gets the oldest
    /// `max_replay` missed notifications now, and the rest on its next resume
    /// (or through the REST list).
    max_replay: u32,
}

#[async_trait]
impl CatchUp for StoreCatchUp {
    async fn catch_up(
        &self,
        tenant: &TenantId,
        user: &UserId,
        after: Option<NotificationId>,
    ) -> Result<CatchUpFrames, String> {
        // The count is read first: anything committed after it arrives live (the
        // connection is already registered) or in the replay, never neither.
        let unread = self
            .store
            .unread_count(tenant, user)
            .await
            .map_err(|e| e.to_string())?;
        let mut notifications = Vec::new();
        if let Some(mut cursor) = after {
            loop {
                let page = self
                    .store
                    .replay_after(tenant, user, cursor, REPLAY_PAGE)
                    .await
                    .map_err(|e| e.to_string())?;
                let full = page.len() == REPLAY_PAGE as usize;
                for n in &page {
                    cursor = n.id;
                    notifications.push((n.id, frames::notification(n)));
                }
                if !full || notifications.len() >= self.max_replay as usize {
                    break;
                }
            }
        }
        Ok(CatchUpFrames {
            notifications,
            unread,
        })
    }

    fn unread_frame(&self, count: UnreadCount) -> Frame {
        frames::unread(count)
    }
}

impl Realtime {
    pub fn new(
        store: Arc<dyn Store>,
        hub: Arc<Hub>,
        directory: Arc<Directory>,
        max_replay: u32,
    ) -> Self {
        let catch_up = Arc::new(StoreCatchUp {
            store: store.clone(),
            max_replay,
        });
        Self {
            store,
            hub,
            directory,
            catch_up,
        }
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Opens a session for a verified user, resuming after `since` when given.
    pub async fn connect(
        &self,
        user: &UserPrincipal,
        since: Option<NotificationId>,
    ) -> Result<Session, ServiceError> {
        if let Err(e) = self.directory.note_claims(user).await {
            // The directory is a convenience for role publishes; a failed write must
            // not keep a staff member from their notifications. It is retried next connect.
            tracing::warn!(error = %e, user = %user.user, "directory update from token claims failed");
        }
        let reg = self
            .hub
            .register(user.tenant.clone(), user.user.clone())
            .await
            .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
        let expires_in = Duration::from_secs(
            u64::try_from(user.expires_at - chrono::Utc::now().timestamp()).unwrap_or(0),
        );
        let (uid, cid) = (reg.user.clone(), reg.id);
        Session::start(
            reg,
            self.catch_up.clone(),
            since,
            move |c| frames::hello(&uid, cid, c),
            expires_in,
        )
        .await
        .map_err(ServiceError::Unavailable)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}
