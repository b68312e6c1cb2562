//! The user directory: who a `role` publish reaches.

use std::collections::HashMap;
use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::{mpsc, oneshot};

use super::batch::commit_isolated;
use super::clock::Clock;
use super::ServiceError;
use crate::domain::auth::{Role, UserPrincipal};
use crate::domain::ids::{TenantId, UserId};
use crate::domain::user::{check_profile, DirectoryUser};
use crate::store::{Page, PageRequest, Store};

/// Role, name and locale as last written from a token.
type Claimed = (Role, Option<String>, Option<String>);

pub struct Directory {
    store: Arc<dyn Store>,
    /// What this node last wrote for a user from token claims, so a reconnect storm
    /// does not turn into a storm of identical directory writes.
    seen: DashMap<(TenantId, UserId), Claimed>,
    /// Claims to write, batched by [`write_claims`].
    claims: mpsc::Sender<ClaimNote>,
    clock: Arc<dyn Clock>,
}

/// Claims queued at most (connects beyond wait for room).
const CLAIMS_QUEUE: usize = 4096;
/// Claims written per batch at most.
const CLAIMS_BATCH: usize = 1024;

/// A connecting user's claims, and who waits for them to be written.
struct ClaimNote {
    tenant: TenantId,
    user: DirectoryUser,
    written: oneshot::Sender<Result<(), String>>,
}

/// Writes claims in batches: whatever queued while the previous write ran goes
/// into the next one. Why: after a restart every reconnecting user is new to
/// `seen`, and one write per connect was the largest part of a connect's cost
/// (a reconnect storm measured ~0.19 ms of hub CPU per connect, mostly the
/// database thread hand-offs of those writes; loadtests/RESULTS.md).
async fn write_claims(store: Arc<dyn Store>, mut queue: mpsc::Receiver<ClaimNote>) {
    let mut batch = Vec::with_capacity(CLAIMS_BATCH);
    while queue.recv_many(&mut batch, CLAIMS_BATCH).await > 0 {
        // A user twice in one batch: the later claims win (and PostgreSQL refuses
        // to upsert one row twice in a statement). `row_of[i]`: note i's row.
        let mut at: HashMap<(&TenantId, &UserId), usize> = HashMap::with_capacity(batch.len());
        let mut rows: Vec<(TenantId, DirectoryUser)> = Vec::with_capacity(batch.len());
        let mut row_of = Vec::with_capacity(batch.len());
        for note in &batch {
            match at.get(&(&note.tenant, &note.user.user)) {
                Some(&i) => {
                    rows[i].1 = note.user.clone();
                    row_of.push(i);
                }
                None => {
                    at.insert((&note.tenant, &note.user.user), rows.len());
                    row_of.push(rows.len());
                    rows.push((note.tenant.clone(), note.user.clone()));
                }
            }
        }
        drop(at);
        // A row the database refuses fails only its own connect (service::batch).
        let store = store.as_ref();
        let results = commit_isolated(&rows, |chunk| async move {
            store
                .upsert_users(chunk)
                .await
                .map(|()| vec![(); chunk.len()])
        })
        .await;
        for (note, row) in batch.drain(..).zip(row_of) {
            let written = results[row].as_ref().map(|_| ()).map_err(|e| e.to_string());
            let _ = note.written.send(written);
        }
    }
}

impl Directory {
    /// Creates the directory and starts its claims writer (on the current runtime).
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        let (claims, queue) = mpsc::channel(CLAIMS_QUEUE);
        tokio::spawn(write_claims(store.clone(), queue));
        Self {
            store,
            seen: DashMap::new(),
            claims,
            clock,
        }
    }

    pub async fn put(
        &self,
        tenant: &TenantId,
        user: DirectoryUser,
    ) -> Result<DirectoryUser, ServiceError> {
        self.store.upsert_user(tenant, &user).await?;
        self.seen.remove(&(tenant.clone(), user.user.clone()));
        Ok(user)
    }

    pub async fn list(
        &self,
        tenant: &TenantId,
        role: Option<Role>,
        page: PageRequest,
    ) -> Result<Page<DirectoryUser>, ServiceError> {
        Ok(self.store.list_users(tenant, role, page).await?)
    }

    pub async fn with_role(
        &self,
        tenant: &TenantId,
        role: Role,
    ) -> Result<Vec<UserId>, ServiceError> {
        Ok(self.store.user_ids_with_role(tenant, role).await?)
    }

    /// Records a connecting user's claims in the directory, unless unchanged since last time.
    pub async fn note_claims(&self, p: &UserPrincipal) -> Result<(), ServiceError> {
        let key = (p.tenant.clone(), p.user.clone());
        let value = (p.role, p.name.clone(), p.locale.clone());
        if self.seen.get(&key).is_some_and(|v| *v == value) {
            return Ok(());
        }
        // Claims come from a token the tenant may have signed itself: the
        // directory's rules apply to them as to `PUT /v1/users`.
        check_profile(p.name.as_deref(), p.locale.as_deref())?;
        let user = DirectoryUser {
            user: p.user.clone(),
            role: p.role,
            name: p.name.clone(),
            locale: p.locale.clone(),
            updated_at: self.clock.now(),
        };
        let (written, done) = oneshot::channel();
        let note = ClaimNote {
            tenant: p.tenant.clone(),
            user,
            written,
        };
        let stopped = || ServiceError::Unavailable("the directory writer has stopped".into());
        self.claims.send(note).await.map_err(|_| stopped())?;
        done.await
            .map_err(|_| stopped())?
            .map_err(ServiceError::Unavailable)?;
        self.seen.insert(key, value);
        Ok(())
    }
}
