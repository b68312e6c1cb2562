//! The persistence port: traits the services use, and the backends behind them.
//!
//! **Architecture invariant:** only `store/` knows sqlx. Services see these traits
//! and the domain types; no SQL or driver type crosses this boundary.

pub(crate) mod columns;
pub mod escalations;
pub mod events;
mod filters;
mod finish;
mod notification_ids;
pub mod outbound;
// `store/sql/` holds the SQL both backends share; each backend compiles it as a module
// of its own (`#[path]`), so those files are loaded twice by design.
#[allow(clippy::duplicate_mod)]
pub mod postgres;
#[allow(clippy::duplicate_mod)]
pub mod sqlite;
pub mod webhooks;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use self::escalations::EscalationStore;
use self::outbound::OutboundStore;
use crate::domain::auth::Role;
use crate::domain::escalation::EscalationStep;
use crate::domain::ids::{NotificationId, TenantId, UserId};
use crate::domain::notification::{Notification, NotificationContent, UnreadCount};
use crate::domain::preferences::StaffPreferences;
use crate::domain::user::DirectoryUser;

/// What can go wrong in any backend, in terms a service can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be reached or timed out: the request may succeed later (503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A bug or corrupt data; logged, answered as 500.
    #[error("store failure: {0}")]
    Internal(String),
}

/// A page request for newest-first lists: `before` is the cursor (exclusive).
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub limit: u32,
    pub before: Option<i64>,
}

/// One page plus the cursor for the next one.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<i64>,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched rows: the extra row only says "there is more".
    pub fn from_overfetch(mut rows: Vec<T>, limit: u32, cursor_of: impl Fn(&T) -> i64) -> Self {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = if more {
            rows.last().map(&cursor_of)
        } else {
            None
        };
        Page { items: rows, next }
    }
}

/// A tenant's API key as stored: only the hash of the secret is kept.
#[derive(Debug, Clone)]
pub struct ApiKeyRecord {
    pub tenant: TenantId,
    pub prefix: String,
    pub revoked: bool,
}

/// Every time (`now`: creation, revocation) is passed in by the caller, as in every port:
/// the store never reads a clock.
#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Creates a tenant; `Conflict` if the id exists.
    async fn create_tenant(
        &self,
        tenant: &TenantId,
        name: &str,
        jwt_secret: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Creates or updates a tenant (the configured development tenant).
    async fn upsert_tenant(
        &self,
        tenant: &TenantId,
        name: &str,
        jwt_secret: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    async fn tenant_exists(&self, tenant: &TenantId) -> Result<bool, StoreError>;
    async fn jwt_secret(&self, tenant: &TenantId) -> Result<Option<String>, StoreError>;
    /// Stores a key by its prefix and the SHA-256 of the whole key. Idempotent for the same hash.
    async fn insert_api_key(
        &self,
        tenant: &TenantId,
        prefix: &str,
        key_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// Revokes the tenant's active key whose prefix is exactly `prefix` (case
    /// sensitive); false when there is none.
    async fn revoke_api_key(
        &self,
        tenant: &TenantId,
        prefix: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// The secrets that verify the tenant's tokens, `None` without the tenant.
    async fn jwt_secrets(&self, tenant: &TenantId) -> Result<Option<TenantSecrets>, StoreError>;
    /// Makes `next` the signing secret; the current one keeps verifying until
    /// `previous_until` (unix millis). `NotFound` without the tenant.
    async fn rotate_jwt_secret(
        &self,
        tenant: &TenantId,
        next: &SigningSecret,
        previous_until: i64,
    ) -> Result<(), StoreError>;
    /// Refuses the user's tokens issued before `not_before` (unix millis); a later
    /// stamp is never replaced by an earlier one. `now` is when it was written.
    async fn revoke_user_tokens(
        &self,
        tenant: &TenantId,
        user: &UserId,
        not_before: i64,
        now: i64,
    ) -> Result<(), StoreError>;
    /// The tenant's per-user stamps later than `since` (unix millis).
    async fn token_revocations(
        &self,
        tenant: &TenantId,
        since: i64,
    ) -> Result<Vec<(UserId, i64)>, StoreError>;
    /// Stamps written after `since` (unix millis), every tenant: what each node polls
    /// to close the live connections of users revoked through another node.
    async fn recent_token_revocations(
        &self,
        since: i64,
    ) -> Result<Vec<TokenRevocation>, StoreError>;
}

/// A tenant's token-signing secret and the id (`kid` header) tokens name it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningSecret {
    pub kid: String,
    pub secret: String,
}

/// What verifies a tenant's tokens: the current secret (it signs new tokens) and,
/// during a rotation's overlap, the previous one until `previous_until` (unix millis).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSecrets {
    pub current: SigningSecret,
    pub previous: Option<(SigningSecret, i64)>,
}

/// The `tenants` columns of a secret, in the order both backends select them:
/// `jwt_kid, jwt_secret, previous_jwt_kid, previous_jwt_secret, previous_valid_until`.
pub(crate) type SecretColumns = (String, String, Option<String>, Option<String>, Option<i64>);

/// The SELECT list matching [`SecretColumns`].
pub(crate) const SECRET_COLUMNS: &str =
    "jwt_kid, jwt_secret, previous_jwt_kid, previous_jwt_secret, previous_valid_until";

impl TenantSecrets {
    pub(crate) fn from_columns((kid, secret, pkid, psecret, until): SecretColumns) -> Self {
        let previous = match (pkid, psecret, until) {
            (Some(kid), Some(secret), Some(until)) => Some((SigningSecret { kid, secret }, until)),
            _ => None,
        };
        TenantSecrets {
            current: SigningSecret { kid, secret },
            previous,
        }
    }
}

/// One "revoke every token of this user" stamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRevocation {
    pub tenant: TenantId,
    pub user: UserId,
    /// Tokens issued before this (unix millis) are refused.
    pub not_before: i64,
}

#[async_trait]
pub trait DirectoryStore: Send + Sync {
    async fn upsert_user(&self, tenant: &TenantId, user: &DirectoryUser) -> Result<(), StoreError> {
        self.upsert_users(&[(tenant.clone(), user.clone())]).await
    }
    /// Writes many directory entries in few statements (claims noted by a burst of
    /// connects). A user may appear once per call.
    async fn upsert_users(&self, users: &[(TenantId, DirectoryUser)]) -> Result<(), StoreError>;
    async fn list_users(
        &self,
        tenant: &TenantId,
        role: Option<Role>,
        page: PageRequest,
    ) -> Result<Page<DirectoryUser>, StoreError>;
    async fn user_ids_with_role(
        &self,
        tenant: &TenantId,
        role: Role,
    ) -> Result<Vec<UserId>, StoreError>;
}

#[async_trait]
pub trait PreferenceStore: Send + Sync {
    async fn staff_preferences(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<StaffPreferences, StoreError>;
    async fn put_staff_preferences(
        &self,
        tenant: &TenantId,
        user: &UserId,
        prefs: &StaffPreferences,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// The categories of the user's notifications (archived ones excluded), sorted,
    /// at most `limit`: what a staff member can filter by or mute, whether or not
    /// a page of them is loaded.
    async fn notification_categories(
        &self,
        tenant: &TenantId,
        user: &UserId,
        limit: u32,
    ) -> Result<Vec<String>, StoreError>;
}

/// An idempotency claim attached to a write: `request_hash` is the SHA-256 of the body.
#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    pub key: String,
    pub request_hash: String,
}

/// One publish in a group-commit batch.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    pub tenant: TenantId,
    pub recipients: Vec<UserId>,
    pub content: NotificationContent,
    pub idempotency: Option<IdempotencyClaim>,
    pub now: DateTime<Utc>,
    /// Steps to escalate the publish by (due `after_secs` after `now`), stored in the
    /// same transaction. Empty for almost every publish: then nothing more is written.
    pub escalate: Vec<EscalationStep>,
    /// Set when this publish is an escalation step's copy of that original.
    pub escalated_from: Option<NotificationId>,
}

impl PublishRequest {
    /// A plain publish: no escalation.
    pub fn new(
        tenant: TenantId,
        recipients: Vec<UserId>,
        content: NotificationContent,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            tenant,
            recipients,
            content,
            idempotency: None,
            now,
            escalate: Vec::new(),
            escalated_from: None,
        }
    }
}

/// The result of one publish in a batch.
#[derive(Debug, Clone)]
pub enum PublishOutcome {
    /// Stored; one notification per recipient, and each recipient's count after the batch.
    Created {
        notifications: Vec<Notification>,
        counts: Vec<(UserId, UnreadCount)>,
    },
    /// The idempotency key was used before with the same body: these were created then.
    Replayed {
        created: Vec<(NotificationId, UserId)>,
    },
    /// The idempotency key was used before with a different body.
    KeyReused,
}

/// Which notifications an inbox list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxFilter {
    Unread,
    All,
}

/// The result of a mark-read: which ids changed state, and the count after.
#[derive(Debug, Clone)]
pub struct ReadOutcome {
    pub changed: Vec<NotificationId>,
    pub count: UnreadCount,
}

#[async_trait]
pub trait NotificationStore: Send + Sync {
    /// Stores a batch of publishes in one transaction (group commit). Ids are
    /// assigned in commit order, so a notification committed later never has a
    /// smaller id than one a reader has already seen for the same user. They count
    /// per tenant (1, 2, 3, ...): another tenant's publishes leave no gap.
    async fn insert_batch(
        &self,
        batch: &[PublishRequest],
    ) -> Result<Vec<PublishOutcome>, StoreError>;
    async fn list(
        &self,
        tenant: &TenantId,
        user: &UserId,
        filter: InboxFilter,
        page: PageRequest,
    ) -> Result<Page<Notification>, StoreError>;
    /// Notifications pushed live that a client resuming after `after` has not seen, oldest first.
    async fn replay_after(
        &self,
        tenant: &TenantId,
        user: &UserId,
        after: NotificationId,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError>;
    /// The newest notification id of a user, if any (where a fresh connection starts).
    async fn unread_count(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<UnreadCount, StoreError>;
    /// Marks the given ids read. Ids that are not this user's (or archived) are
    /// ignored and reported as not changed.
    async fn mark_read(
        &self,
        tenant: &TenantId,
        user: &UserId,
        ids: &[NotificationId],
        at: DateTime<Utc>,
    ) -> Result<ReadOutcome, StoreError>;
    /// Whether the id is one of this user's visible (not archived) notifications.
    async fn owns(
        &self,
        tenant: &TenantId,
        user: &UserId,
        id: NotificationId,
    ) -> Result<bool, StoreError>;
    async fn mark_all_read(
        &self,
        tenant: &TenantId,
        user: &UserId,
        at: DateTime<Utc>,
    ) -> Result<ReadOutcome, StoreError>;
    /// Archives one notification; `NotFound` if it is not this user's or already archived.
    async fn archive(
        &self,
        tenant: &TenantId,
        user: &UserId,
        id: NotificationId,
        at: DateTime<Utc>,
    ) -> Result<UnreadCount, StoreError>;
    /// Retention: deletes up to `limit` notifications that are read or archived and
    /// were created before `cutoff`, and idempotency records older than `cutoff`.
    async fn purge_before(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError>;
}

/// The health probe used by `/readyz`.
#[async_trait]
pub trait Health: Send + Sync {
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Every store port, implemented by one backend.
pub trait Store:
    TenantStore
    + DirectoryStore
    + PreferenceStore
    + NotificationStore
    + EscalationStore
    + OutboundStore
    + events::EventStore
    + webhooks::WebhookStore
    + Health
{
}
impl<
        T: TenantStore
            + DirectoryStore
            + PreferenceStore
            + NotificationStore
            + EscalationStore
            + OutboundStore
            + events::EventStore
            + webhooks::WebhookStore
            + Health,
    > Store for T
{
}

/// Settings every backend takes.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout: std::time::Duration,
    pub statement_timeout: std::time::Duration,
}

/// Opens the backend named by the URL's scheme and runs its migrations.
pub async fn open(options: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    if options.url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(options).await?))
    } else if options.url.starts_with("postgres:") || options.url.starts_with("postgresql:") {
        Ok(Arc::new(postgres::PostgresStore::open(options).await?))
    } else {
        Err(StoreError::Internal(format!(
            "database_url must start with sqlite:// or postgres://, got {:?}",
            options.url.split(':').next().unwrap_or("")
        )))
    }
}
