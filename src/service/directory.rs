//! The user directory: who a `role` publish reaches.

use std::sync::Arc;

use chrono::Utc;
use dashmap::DashMap;

use super::ServiceError;
use crate::domain::auth::{Role, UserPrincipal};
use crate::domain::ids::{TenantId, UserId};
use crate::domain::user::DirectoryUser;
use crate::store::{Page, PageRequest, Store};

/// Role, name and locale as last written from a token.
type Claimed = (Role, Option<String>, Option<String>);

pub struct Directory {
    store: Arc<dyn Store>,
    /// What this node last wrote for a user from token claims, so a reconnect storm
    /// does not turn into a storm of identical directory writes.
    seen: DashMap<(TenantId, UserId), Claimed>,
}

impl Directory {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            seen: DashMap::new(),
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
        let user = DirectoryUser {
            user: p.user.clone(),
            role: p.role,
            name: p.name.clone(),
            locale: p.locale.clone(),
            updated_at: Utc::now(),
        };
        self.store.upsert_user(&p.tenant, &user).await?;
        self.seen.insert(key, value);
        Ok(())
    }
}
