//! Opening a live connection: register with the hub, then read what was missed.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Semaphore;

use super::clock::Clock;
use super::directory::Directory;
use super::{frames, ServiceError};
use crate::domain::auth::UserPrincipal;
use crate::domain::ids::{NotificationId, TenantId, UserId};
use crate::domain::notification::UnreadCount;
use crate::hub::session::{CatchUp, ReplayLimits, Session};
use crate::hub::{Hub, RegisterError};
use crate::store::Store;
use crate::wire::Frame;

pub struct Realtime {
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
    directory: Arc<Directory>,
    catch_up: Arc<StoreCatchUp>,
    replay: ReplayLimits,
    clock: Arc<dyn Clock>,
}

/// Why a live connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The user holds `hub.max_connections_per_user` connections on this node.
    #[error("too many connections for this user (at most {0} per node)")]
    TooManyConnections(usize),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// Reads missed notifications from the store for [`Session`]s.
pub struct StoreCatchUp {
    store: Arc<dyn Store>,
    /// Replay pages read and encoded at once on this node (`hub.replay_concurrency`).
    /// A page of large notifications costs milliseconds of CPU between two awaits; when
    /// many connections resume at once (a deploy, or a hostile client opening resumes
    /// from far back), an unbounded number of them would queue that work ahead of every
    /// live publish and health probe on the runtime's threads (measured: 25 such
    /// resumes on one core, another tenant's publish p99 150-300 ms). With a permit per
    /// core, at most that many pages stand in front of live work; the rest wait here.
    pages: Semaphore,
}

#[async_trait]
impl CatchUp for StoreCatchUp {
    async fn unread(&self, tenant: &TenantId, user: &UserId) -> Result<UnreadCount, String> {
        self.store
            .unread_count(tenant, user)
            .await
            .map_err(|e| e.to_string())
    }

    async fn page(
        &self,
        tenant: &TenantId,
        user: &UserId,
        after: NotificationId,
        limit: u32,
    ) -> Result<Vec<(NotificationId, Frame)>, String> {
        let _permit = self.pages.acquire().await.map_err(|e| e.to_string())?;
        let page = self
            .store
            .replay_after(tenant, user, after, limit)
            .await
            .map_err(|e| e.to_string())?;
        Ok(page
            .iter()
            .map(|n| (n.id, frames::notification(n)))
            .collect())
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
        replay: ReplayLimits,
        replay_concurrency: usize,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let catch_up = Arc::new(StoreCatchUp {
            store: store.clone(),
            pages: Semaphore::new(replay_concurrency.max(1)),
        });
        Self {
            store,
            hub,
            directory,
            catch_up,
            replay,
            clock,
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
    ) -> Result<Session, ConnectError> {
        if let Err(e) = self.directory.note_claims(user).await {
            // The directory is a convenience for role publishes; a failed write must
            // not keep a staff member from their notifications. It is retried next connect.
            tracing::warn!(error = %e, user = %user.user, "directory update from token claims failed");
        }
        let reg = self
            .hub
            .register(user.tenant.clone(), user.user.clone())
            .await
            .map_err(|e| match e {
                RegisterError::TooManyConnections(cap) => ConnectError::TooManyConnections(cap),
                RegisterError::Bus(e) => ServiceError::Unavailable(e.to_string()).into(),
            })?;
        let expires_in = Duration::from_secs(
            u64::try_from(user.expires_at - self.clock.now().timestamp()).unwrap_or(0),
        );
        let (uid, cid) = (reg.user.clone(), reg.id);
        Session::start(
            reg,
            self.catch_up.clone(),
            since,
            move |c| frames::hello(&uid, cid, c),
            expires_in,
            self.replay,
        )
        .await
        .map_err(|e| ServiceError::Unavailable(e).into())
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}
