//! Credentials: API keys (server to server) and HS256 user tokens (browsers).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::clock::Clock;
use super::ratelimit::RateLimits;
use super::ServiceError;
use crate::domain::auth::{Principal, Role, UserPrincipal};
use crate::domain::ids::{TenantId, UserId};
use crate::domain::Invalid;
use crate::hub::Hub;
use crate::store::{SigningSecret, Store, StoreError, TenantSecrets, TokenRevocation};

/// What every generated API key starts with.
pub const API_KEY_PREFIX: &str = "tdk_";
/// Characters of a key kept in clear as its public handle (for listing and revoking).
const KEY_HANDLE_LEN: usize = 12;
/// Beyond this many cached credentials the cache is cleared rather than grown:
/// random invalid keys must not be a way to exhaust memory.
const CACHE_MAX_ENTRIES: usize = 50_000;
/// `ttl_seconds` when a mint asks for none (capped by `auth.max_token_ttl_secs`).
pub const TOKEN_TTL_DEFAULT: i64 = 3600;

/// A new API key: shown once, stored only as a hash.
pub struct NewApiKey {
    pub key: String,
    pub prefix: String,
    pub hash: String,
}

pub fn generate_api_key() -> NewApiKey {
    let secret: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    let key = format!("{API_KEY_PREFIX}{secret}");
    NewApiKey {
        prefix: key[..KEY_HANDLE_LEN].to_owned(),
        hash: hash_key(&key),
        key,
    }
}

/// API keys are 40 random alphanumerics (~238 bits), so a plain SHA-256 is enough:
/// there is nothing for a slow password hash to protect against.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Derives the key's handle, as stored, from a full key (for the dev key from config).
pub fn key_prefix(key: &str) -> String {
    key.chars().take(KEY_HANDLE_LEN).collect()
}

pub fn generate_jwt_secret() -> String {
    let mut bytes = [0u8; 48];
    rand::thread_rng().fill(&mut bytes[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    tenant: String,
    role: String,
    exp: i64,
    /// Issued at (unix seconds): what a user's revocation stamp is compared with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    /// Not before (unix seconds), when the issuer sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    locale: Option<String>,
}

#[derive(Deserialize)]
struct TenantOnly {
    tenant: String,
}

struct Cached<T> {
    value: T,
    at: Instant,
}

/// Seconds of clock difference tolerated between token issuers and this node.
const LEEWAY_SECS: i64 = 5;
/// A token naming a secret this node does not know (a rotation on another node)
/// reloads its tenant, at most this often (unknown ids must not cost a query each).
const UNKNOWN_KID_RELOAD: Duration = Duration::from_secs(1);

/// Why a credential was refused (401): the answer's message and the
/// `tidings_auth_failures_total{reason}` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    UnknownKey,
    RevokedKey,
    BadToken,
    Expired,
    NotYetValid,
    TooLong,
    Revoked,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::UnknownKey => "unknown_key",
            Refusal::RevokedKey => "revoked_key",
            Refusal::BadToken => "invalid_token",
            Refusal::Expired => "expired_token",
            Refusal::NotYetValid => "token_not_yet_valid",
            Refusal::TooLong => "token_lifetime",
            Refusal::Revoked => "revoked_token",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Refusal::Missing => "missing bearer credential",
            // One answer for unknown and revoked keys: the caller learns nothing more.
            Refusal::UnknownKey | Refusal::RevokedKey => "invalid or revoked API key",
            Refusal::BadToken => "invalid token",
            Refusal::Expired => "token expired",
            Refusal::NotYetValid => "token not yet valid",
            Refusal::TooLong => "token lifetime is over the maximum (auth.max_token_ttl_secs)",
            Refusal::Revoked => "token revoked",
        }
    }
}

impl From<Refusal> for ServiceError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Expired => ServiceError::TokenExpired,
            r => ServiceError::Unauthorized(r.message()),
        }
    }
}

/// A refused credential, or a failure to check it (the database is down: 503).
#[derive(Debug)]
pub enum AuthError {
    Refused(Refusal),
    Failed(ServiceError),
}

impl From<Refusal> for AuthError {
    fn from(r: Refusal) -> Self {
        AuthError::Refused(r)
    }
}

impl From<ServiceError> for AuthError {
    fn from(e: ServiceError) -> Self {
        AuthError::Failed(e)
    }
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        AuthError::Failed(e.into())
    }
}

impl From<AuthError> for ServiceError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Refused(r) => r.into(),
            AuthError::Failed(e) => e,
        }
    }
}

/// What verifies a tenant's tokens, cached together: its secrets and the
/// revocation stamps young enough to still matter (unix millis by user).
struct TenantKeys {
    secrets: TenantSecrets,
    revoked: HashMap<UserId, i64>,
}

impl TenantKeys {
    /// The secrets a token signed with `kid` may verify with, in order. A token
    /// without a kid (minted elsewhere with the tenant's secret) tries the current
    /// secret, then the previous one during its overlap.
    fn candidates(&self, kid: Option<&str>, now_ms: i64) -> Vec<&SigningSecret> {
        let previous = self
            .secrets
            .previous
            .as_ref()
            .filter(|(_, until)| now_ms < *until)
            .map(|(s, _)| s);
        let all = std::iter::once(&self.secrets.current).chain(previous);
        match kid {
            None => all.collect(),
            Some(kid) => all.filter(|s| s.kid == kid).collect(),
        }
    }
}

/// What a key hash was found to be: its tenant and public prefix, or why it is refused.
type KeyVerdict = Result<(TenantId, String), Refusal>;

/// Settings of the [`Authenticator`].
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// How long a verified key or a tenant's secrets are cached (and how often
    /// revocations made through other nodes are polled).
    pub cache_ttl: Duration,
    /// Longest a user token may live (`auth.max_token_ttl_secs`).
    pub max_token_ttl: Duration,
}

/// Verifies credentials, with a short-lived cache in front of the store so the hot
/// path (every publish, every connect) costs no query. A revoked key or a rotated
/// secret takes effect within `cache_ttl` on every node.
pub struct Authenticator {
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
    settings: AuthSettings,
    keys: DashMap<String, Cached<KeyVerdict>>,
    tenants: DashMap<TenantId, Cached<Option<Arc<TenantKeys>>>>,
    /// Request quotas and failed-authentication throttling (the HTTP edge asks).
    pub limits: RateLimits,
    clock: Arc<dyn Clock>,
}

pub struct MintedToken {
    pub token: String,
    pub expires_at: chrono::DateTime<Utc>,
}

/// A tenant's new signing secret (shown once).
pub struct RotatedSecret {
    pub kid: String,
    pub jwt_secret: String,
    /// Until when tokens of the previous secret are still accepted.
    pub previous_valid_until: chrono::DateTime<Utc>,
}

impl Authenticator {
    pub fn new(
        store: Arc<dyn Store>,
        hub: Arc<Hub>,
        settings: AuthSettings,
        limits: RateLimits,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            hub,
            settings,
            keys: DashMap::new(),
            tenants: DashMap::new(),
            limits,
            clock,
        }
    }

    fn fresh<T>(&self, c: &Cached<T>) -> bool {
        c.at.elapsed() < self.settings.cache_ttl
    }

    /// The longest a user token may live (`auth.max_token_ttl_secs`).
    pub fn max_token_ttl(&self) -> Duration {
        self.settings.max_token_ttl
    }

    fn max_ttl_secs(&self) -> i64 {
        i64::try_from(self.settings.max_token_ttl.as_secs()).unwrap_or(i64::MAX)
    }

    pub async fn api_key(&self, raw: &str) -> Result<Principal, AuthError> {
        let hash = hash_key(raw);
        let cached = self
            .keys
            .get(&hash)
            .filter(|c| self.fresh(c))
            .map(|c| c.value.clone());
        let found = match cached {
            Some(v) => v,
            None => {
                let v = match self.store.find_api_key(&hash).await? {
                    None => Err(Refusal::UnknownKey),
                    Some(r) if r.revoked => Err(Refusal::RevokedKey),
                    Some(r) => Ok((r.tenant, r.prefix)),
                };
                if self.keys.len() >= CACHE_MAX_ENTRIES {
                    self.keys.clear();
                }
                self.keys.insert(
                    hash,
                    Cached {
                        value: v.clone(),
                        at: Instant::now(),
                    },
                );
                v
            }
        };
        let (tenant, key_prefix) = found?;
        Ok(Principal::ApiKey { tenant, key_prefix })
    }

    /// The tenant's secrets and stamps, from the cache or the store. `reload`
    /// bypasses a cache entry older than [`UNKNOWN_KID_RELOAD`].
    async fn tenant_keys(
        &self,
        tenant: &TenantId,
        reload: bool,
    ) -> Result<Option<Arc<TenantKeys>>, AuthError> {
        if let Some(c) = self
            .tenants
            .get(tenant)
            .filter(|c| self.fresh(c) && !(reload && c.at.elapsed() >= UNKNOWN_KID_RELOAD))
        {
            return Ok(c.value.clone());
        }
        let v = self.load_tenant_keys(tenant).await?.map(Arc::new);
        if self.tenants.len() >= CACHE_MAX_ENTRIES {
            self.tenants.clear();
        }
        self.tenants.insert(
            tenant.clone(),
            Cached {
                value: v.clone(),
                at: Instant::now(),
            },
        );
        Ok(v)
    }

    async fn load_tenant_keys(&self, tenant: &TenantId) -> Result<Option<TenantKeys>, AuthError> {
        let Some(secrets) = self.store.jwt_secrets(tenant).await? else {
            return Ok(None);
        };
        // A stamp older than the longest token life cannot refuse a token that
        // passes the lifetime checks, so only younger ones are kept.
        let since = (self.clock.now().timestamp() - self.max_ttl_secs() - LEEWAY_SECS) * 1000;
        let revoked = self
            .store
            .token_revocations(tenant, since)
            .await?
            .into_iter()
            .collect();
        Ok(Some(TenantKeys { secrets, revoked }))
    }

    /// Verifies a user token: HS256 only, `exp` required, signed with a secret of
    /// the tenant its `tenant` claim names (the one its `kid` names, if any), within
    /// the maximum lifetime, `nbf` honoured, and not issued before its user's
    /// revocation stamp.
    pub async fn user_token(&self, token: &str) -> Result<UserPrincipal, AuthError> {
        const BAD: Refusal = Refusal::BadToken;
        // The tenant and kid must be read before the signature can be checked;
        // nothing from this unverified read is trusted beyond choosing the secret.
        let kid = jsonwebtoken::decode_header(token).map_err(|_| BAD)?.kid;
        let payload = token.split('.').nth(1).ok_or(BAD)?;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| BAD)?;
        let tenant: TenantOnly = serde_json::from_slice(&payload).map_err(|_| BAD)?;
        let tenant = TenantId::parse(&tenant.tenant).map_err(|_| BAD)?;
        let now_ms = self.clock.now().timestamp_millis();
        let mut keys = self.tenant_keys(&tenant, false).await?.ok_or(BAD)?;
        if keys.candidates(kid.as_deref(), now_ms).is_empty() {
            // Perhaps a rotation through another node this cache has not seen yet.
            keys = self.tenant_keys(&tenant, true).await?.ok_or(BAD)?;
        }
        let claims = verify_signature(token, &keys.candidates(kid.as_deref(), now_ms))?;
        if claims.tenant != tenant.as_str() {
            return Err(BAD.into());
        }
        let user = UserId::parse(&claims.sub).map_err(|_| BAD)?;
        self.check_lifetime(&claims, now_ms / 1000)?;
        let issued = claims.iat.unwrap_or(claims.exp - self.max_ttl_secs());
        if keys
            .revoked
            .get(&user)
            .is_some_and(|not_before| issued.saturating_mul(1000) < *not_before)
        {
            return Err(Refusal::Revoked.into());
        }
        Ok(UserPrincipal {
            tenant,
            user,
            role: claims.role.parse().map_err(|_| BAD)?,
            name: claims.name,
            locale: claims.locale,
            expires_at: claims.exp,
        })
    }

    /// `exp` and `nbf` against the service clock (as `mint` stamps them), with the
    /// leeway. Then: a stolen token is useful for at most the maximum lifetime: `exp`
    /// may be no further than that from `iat` nor from now, and `iat` is not in the
    /// future (which would dodge a revocation stamp).
    fn check_lifetime(&self, c: &Claims, now: i64) -> Result<(), Refusal> {
        if c.exp < now - LEEWAY_SECS {
            return Err(Refusal::Expired);
        }
        if c.nbf.is_some_and(|nbf| nbf > now + LEEWAY_SECS) {
            return Err(Refusal::NotYetValid);
        }
        let max = self.max_ttl_secs();
        let too_long = |from: i64| c.exp.saturating_sub(from) > max.saturating_add(LEEWAY_SECS);
        if too_long(now) || c.iat.is_some_and(too_long) {
            return Err(Refusal::TooLong);
        }
        if c.iat.is_some_and(|iat| iat > now + LEEWAY_SECS) {
            return Err(Refusal::NotYetValid);
        }
        Ok(())
    }

    pub async fn mint(
        &self,
        tenant: &TenantId,
        user: &UserId,
        role: Role,
        ttl_seconds: Option<i64>,
        name: Option<String>,
        locale: Option<String>,
    ) -> Result<MintedToken, ServiceError> {
        let ttl = ttl_seconds.unwrap_or(TOKEN_TTL_DEFAULT);
        if ttl < 1 {
            return Err(Invalid::new("ttl_seconds", "must be at least 1").into());
        }
        // Capped rather than refused: the contract's callers ask for what they want
        // and learn what they got from `expires_at`.
        let ttl = ttl.min(self.max_ttl_secs());
        let keys = self
            .tenant_keys(tenant, false)
            .await?
            .ok_or_else(|| ServiceError::Internal("tenant of a valid key has no secret".into()))?;
        // Not before the user's revocation stamp (the next whole second after a
        // revocation), so a token minted just after a revocation is accepted.
        let now = self.clock.now().timestamp();
        let iat = keys
            .revoked
            .get(user)
            .map_or(now, |nb| now.max(nb.div_euclid(1000)));
        let claims = Claims {
            sub: user.as_str().to_owned(),
            tenant: tenant.as_str().to_owned(),
            role: role.as_str().to_owned(),
            exp: iat + ttl,
            iat: Some(iat),
            nbf: None,
            name,
            locale,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(keys.secrets.current.kid.clone());
        let token = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(keys.secrets.current.secret.as_bytes()),
        )
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let expires_at = chrono::DateTime::from_timestamp(claims.exp, 0)
            .ok_or_else(|| ServiceError::Internal("token expiry out of range".into()))?;
        Ok(MintedToken { token, expires_at })
    }

    /// Refuses every token of `user` issued until now, on every node (within the
    /// poll interval elsewhere, at once here), and closes the user's live
    /// connections on this node. Returns the stamp (tokens issued before it are
    /// refused) and how many connections this node closed.
    pub async fn revoke_user_tokens(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<(chrono::DateTime<Utc>, usize), ServiceError> {
        let now = self.clock.now();
        // `iat` has whole seconds: the stamp is the next second, so a token minted
        // earlier in this same second is refused too.
        let not_before = now.timestamp() + 1;
        self.store
            .revoke_user_tokens(tenant, user, not_before * 1000, now.timestamp_millis())
            .await?;
        self.tenants.remove(tenant);
        let closed = self.hub.expire_user(tenant, user);
        tracing::info!(tenant = %tenant, user = %user, closed, "user tokens revoked");
        let stamp = chrono::DateTime::from_timestamp(not_before, 0)
            .ok_or_else(|| ServiceError::Internal("revocation stamp out of range".into()))?;
        Ok((stamp, closed))
    }

    /// Rotates the tenant's signing secret (see [`rotate_secret`]) and forgets
    /// this node's cached copy at once.
    pub async fn rotate_secret(
        &self,
        tenant: &TenantId,
        overlap: Duration,
    ) -> Result<RotatedSecret, ServiceError> {
        let rotated = rotate_secret(self.store.as_ref(), tenant, overlap, self.clock.now()).await?;
        self.tenants.remove(tenant);
        Ok(rotated)
    }

    /// Closes, on this node, the live connections of users whose tokens were
    /// revoked through any node: polls the store every `cache_ttl` until `stopping`.
    pub async fn watch_revocations(self: Arc<Self>, stopping: CancellationToken) {
        let every = self.settings.cache_ttl.max(Duration::from_secs(1));
        // Re-read a window wider than the poll interval and the nodes' clock skew;
        // `seen` keeps each stamp from closing connections twice.
        let window = i64::try_from((every * 3 + REVOCATION_SKEW).as_millis()).unwrap_or(i64::MAX);
        let mut seen: HashMap<(TenantId, UserId), i64> = HashMap::new();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stopping.cancelled() => return,
                _ = tick.tick() => {}
            }
            let since = self.clock.now().timestamp_millis() - window;
            match self.store.recent_token_revocations(since).await {
                Ok(rows) => seen = self.apply_revocations(rows, &seen),
                Err(e) => tracing::warn!(error = %e, "polling token revocations failed; retrying"),
            }
        }
    }

    /// Acts on the stamps not acted on before; returns what has been seen now.
    fn apply_revocations(
        &self,
        rows: Vec<TokenRevocation>,
        seen: &HashMap<(TenantId, UserId), i64>,
    ) -> HashMap<(TenantId, UserId), i64> {
        rows.into_iter()
            .map(|r| {
                let key = (r.tenant, r.user);
                if seen.get(&key) != Some(&r.not_before) {
                    self.tenants.remove(&key.0);
                    self.hub.expire_user(&key.0, &key.1);
                }
                (key, r.not_before)
            })
            .collect()
    }
}

/// How far apart the nodes' clocks may be for the revocation poll to see every stamp.
const REVOCATION_SKEW: Duration = Duration::from_secs(60);

/// Checks the signature with each candidate secret in turn. `exp` must be there; it
/// and `nbf` are checked by `check_lifetime` against the service clock, not here
/// against the wall clock, so a token minted at the clock's time is valid at it.
fn verify_signature(token: &str, secrets: &[&SigningSecret]) -> Result<Claims, Refusal> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "sub"]);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    for secret in secrets {
        match jsonwebtoken::decode::<Claims>(
            token,
            &DecodingKey::from_secret(secret.secret.as_bytes()),
            &validation,
        ) {
            Ok(data) => return Ok(data.claims),
            Err(e) => match e.kind() {
                ErrorKind::InvalidSignature => continue,
                _ => return Err(Refusal::BadToken),
            },
        }
    }
    Err(Refusal::BadToken)
}

/// A fresh key id: short, random, and never a previous one in practice.
fn generate_kid() -> String {
    let id: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(10)
        .map(char::from)
        .collect();
    format!("k{id}")
}

/// Gives the tenant a new signing secret; the current one keeps verifying tokens
/// for `overlap` (tokens naming it by `kid`, and tokens without a kid), so clients
/// can move over without a gap (CLI `tenant rotate-secret`, admin API).
pub async fn rotate_secret(
    store: &dyn Store,
    tenant: &TenantId,
    overlap: Duration,
    now: DateTime<Utc>,
) -> Result<RotatedSecret, ServiceError> {
    let next = SigningSecret {
        kid: generate_kid(),
        secret: generate_jwt_secret(),
    };
    let overlap = chrono::Duration::from_std(overlap)
        .map_err(|_| Invalid::new("overlap_secs", "too large"))?;
    let until = now + overlap;
    store
        .rotate_jwt_secret(tenant, &next, until.timestamp_millis())
        .await?;
    tracing::info!(tenant = %tenant, kid = %next.kid, previous_valid_until = %until, "JWT secret rotated");
    Ok(RotatedSecret {
        kid: next.kid,
        jwt_secret: next.secret,
        previous_valid_until: until,
    })
}

/// Creates a tenant with a fresh secret and key at `now` (CLI `tenant create`, the
/// development tenant at start-up).
pub async fn create_tenant(
    store: &dyn Store,
    tenant: &TenantId,
    name: &str,
    now: DateTime<Utc>,
) -> Result<(NewApiKey, String), ServiceError> {
    let secret = generate_jwt_secret();
    store
        .create_tenant(tenant, name, &secret, now)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ServiceError::Conflict {
                code: "tenant_exists",
                message: format!("tenant {tenant} exists"),
            },
            other => other.into(),
        })?;
    let key = generate_api_key();
    store
        .insert_api_key(tenant, &key.prefix, &key.hash, now)
        .await?;
    Ok((key, secret))
}
