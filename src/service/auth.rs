//! Credentials: API keys (server to server) and HS256 user tokens (browsers).

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::Utc;
use dashmap::DashMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ServiceError;
use crate::domain::auth::{Principal, Role, UserPrincipal};
use crate::domain::ids::{TenantId, UserId};
use crate::domain::Invalid;
use crate::store::{Store, StoreError};

const API_KEY_PREFIX: &str = "tdk_";
/// Characters of a key kept in clear as its public handle (for listing and revoking).
const KEY_HANDLE_LEN: usize = 12;
/// Beyond this many cached credentials the cache is cleared rather than grown:
/// random invalid keys must not be a way to exhaust memory.
const CACHE_MAX_ENTRIES: usize = 50_000;
pub const TOKEN_TTL_DEFAULT: i64 = 3600;
pub const TOKEN_TTL_MAX: i64 = 7 * 24 * 3600;

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

/// Verifies credentials, with a short-lived cache in front of the store so the hot
/// path (every publish, every connect) costs no query. A revoked key or a rotated
/// secret takes effect within `cache_ttl` on every node.
pub struct Authenticator {
    store: Arc<dyn Store>,
    cache_ttl: Duration,
    keys: DashMap<String, Cached<Option<(TenantId, String)>>>,
    secrets: DashMap<TenantId, Cached<Option<Arc<String>>>>,
}

pub struct MintedToken {
    pub token: String,
    pub expires_at: chrono::DateTime<Utc>,
}

impl Authenticator {
    pub fn new(store: Arc<dyn Store>, cache_ttl: Duration) -> Self {
        Self {
            store,
            cache_ttl,
            keys: DashMap::new(),
            secrets: DashMap::new(),
        }
    }

    fn fresh<T>(&self, c: &Cached<T>) -> bool {
        c.at.elapsed() < self.cache_ttl
    }

    pub async fn api_key(&self, raw: &str) -> Result<Principal, ServiceError> {
        let hash = hash_key(raw);
        let cached = self
            .keys
            .get(&hash)
            .filter(|c| self.fresh(c))
            .map(|c| c.value.clone());
        let found = match cached {
            Some(v) => v,
            None => {
                let rec = self.store.find_api_key(&hash).await?;
                let v = rec.filter(|r| !r.revoked).map(|r| (r.tenant, r.prefix));
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
        let (tenant, key_prefix) =
            found.ok_or(ServiceError::Unauthorized("invalid or revoked API key"))?;
        Ok(Principal::ApiKey { tenant, key_prefix })
    }

    async fn secret(&self, tenant: &TenantId) -> Result<Option<Arc<String>>, ServiceError> {
        if let Some(c) = self.secrets.get(tenant).filter(|c| self.fresh(c)) {
            return Ok(c.value.clone());
        }
        let v = self.store.jwt_secret(tenant).await?.map(Arc::new);
        if self.secrets.len() >= CACHE_MAX_ENTRIES {
            self.secrets.clear();
        }
        self.secrets.insert(
            tenant.clone(),
            Cached {
                value: v.clone(),
                at: Instant::now(),
            },
        );
        Ok(v)
    }

    /// Verifies a user token: HS256 only, `exp` required, signed with the secret of
    /// the tenant its `tenant` claim names.
    pub async fn user_token(&self, token: &str) -> Result<UserPrincipal, ServiceError> {
        const BAD: ServiceError = ServiceError::Unauthorized("invalid token");
        // The tenant must be read before the signature can be checked; nothing from
        // this unverified read is trusted beyond choosing which secret to verify with.
        let payload = token.split('.').nth(1).ok_or(BAD)?;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| BAD)?;
        let tenant: TenantOnly = serde_json::from_slice(&payload).map_err(|_| BAD)?;
        let tenant = TenantId::parse(&tenant.tenant).map_err(|_| BAD)?;
        let secret = self.secret(&tenant).await?.ok_or(BAD)?;

        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 5;
        let data = jsonwebtoken::decode::<Claims>(
            token,
            &DecodingKey::from_secret(secret.as_bytes()),
            &validation,
        )
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                ServiceError::Unauthorized("token expired")
            }
            _ => BAD,
        })?;
        let c = data.claims;
        if c.tenant != tenant.as_str() {
            return Err(BAD);
        }
        Ok(UserPrincipal {
            tenant,
            user: UserId::parse(&c.sub).map_err(|_| BAD)?,
            role: c.role.parse().map_err(|_| BAD)?,
            name: c.name,
            locale: c.locale,
            expires_at: c.exp,
        })
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
        if !(1..=TOKEN_TTL_MAX).contains(&ttl) {
            return Err(Invalid::new("ttl_seconds", format!("must be 1..{TOKEN_TTL_MAX}")).into());
        }
        let secret = self
            .secret(tenant)
            .await?
            .ok_or_else(|| ServiceError::Internal("tenant of a valid key has no secret".into()))?;
        let expires_at = Utc::now() + chrono::Duration::seconds(ttl);
        let claims = Claims {
            sub: user.as_str().to_owned(),
            tenant: tenant.as_str().to_owned(),
            role: role.as_str().to_owned(),
            exp: expires_at.timestamp(),
            name,
            locale,
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
        Ok(MintedToken { token, expires_at })
    }
}

/// Creates a tenant with a fresh secret and key (CLI `tenant create`).
pub async fn create_tenant(
    store: &dyn Store,
    tenant: &TenantId,
    name: &str,
) -> Result<(NewApiKey, String), ServiceError> {
    let secret = generate_jwt_secret();
    store
        .create_tenant(tenant, name, &secret)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ServiceError::Conflict {
                code: "tenant_exists",
                message: format!("tenant {tenant} exists"),
            },
            other => other.into(),
        })?;
    let key = generate_api_key();
    store.insert_api_key(tenant, &key.prefix, &key.hash).await?;
    Ok((key, secret))
}
