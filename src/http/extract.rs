//! Request extractors: JSON bodies, queries, credentials, pagination, idempotency.
//! Every rejection becomes an [`ApiError`] in the contract's shape.

use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use base64::Engine;
use bytes::Bytes;
use serde::de::{Deserialize, DeserializeOwned};
use sha2::{Digest, Sha256};

use super::client_ip::ClientIp;
use super::error::ApiError;
use super::serve::BodyTimeout;
use super::AppState;
use crate::domain::auth::{Principal, Role, UserPrincipal};
use crate::domain::ids::TenantId;
use crate::domain::text;
use crate::service::auth::{AuthError, Refusal};
use crate::service::outbound::audit::Actor;
use crate::service::ratelimit::Limited;
use crate::service::ServiceError;
use crate::store::{IdempotencyClaim, PageRequest};

pub const LIMIT_DEFAULT: u32 = 50;
pub const LIMIT_MAX: u32 = 200;

/// Parses a JSON body after checking its content type (415) and syntax (400);
/// a well-formed body of the wrong shape is 422 naming the field. `T` may borrow
/// from `body` (the bulk send keeps its recipients as raw JSON slices of it).
pub fn parse_json<'de, T: Deserialize<'de>>(
    headers: &HeaderMap,
    body: &'de [u8],
) -> Result<T, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        });
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected Content-Type: application/json",
        ));
    }
    refuse_control_characters(body)?;
    let de = &mut serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("malformed JSON: {inner}"),
            )
        } else {
            let message = inner.to_string();
            // serde names a missing field only in its message: "missing field `title` at …".
            let missing = missing_field(&message);
            let field = match (missing, path.as_str()) {
                (Some(m), ".") => Some(m.to_owned()),
                (Some(m), p) => Some(format!("{p}.{m}")),
                (None, ".") => None,
                (None, p) => Some(p.to_owned()),
            };
            let err = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message);
            match field {
                Some(f) => err.with_field(f),
                None => err,
            }
        }
    })?;
    // One JSON value per body: `{...}garbage` or two objects is malformed, not
    // "the first object" (a proxy and the hub must not read different requests).
    de.end().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("malformed JSON: {e}"),
        )
    })?;
    Ok(value)
}

/// 422 naming the first string (value or key, at any depth: `data` included) that
/// holds a disallowed control character (`domain::text`). The byte scan is all a
/// clean body costs; only a suspect one is parsed a second time, to name the field.
fn refuse_control_characters(body: &[u8]) -> Result<(), ApiError> {
    if !text::json_has_control_escape(body) {
        return Ok(());
    }
    // Malformed JSON is left to the typed parse below, which answers 400.
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Ok(());
    };
    match path_of_control(&value, String::new()) {
        Some(path) => {
            let field = if path.is_empty() {
                ".".to_owned()
            } else {
                path
            };
            Err(crate::service::ServiceError::from(text::control_characters(&field)).into())
        }
        None => Ok(()),
    }
}

/// The path (in serde_path_to_error's notation: `a.b[2].c`) of the first string
/// holding a disallowed control character; for a bad key, the key's own path with
/// the characters escaped.
fn path_of_control(v: &serde_json::Value, at: String) -> Option<String> {
    let bad = |s: &str| text::check("", s).is_err();
    let join = |key: &str| {
        if at.is_empty() {
            key.to_owned()
        } else {
            format!("{at}.{key}")
        }
    };
    match v {
        serde_json::Value::String(s) if bad(s) => Some(at),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| path_of_control(item, format!("{at}[{i}]"))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, item)| {
            if bad(k) {
                Some(join(&k.escape_debug().to_string()))
            } else {
                path_of_control(item, join(k))
            }
        }),
        _ => None,
    }
}

/// The field a serde "missing field `x`" message names (serde_path_to_error's path
/// stops at the object that lacks it; an unknown field is already in the path).
pub fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .and_then(|r| r.split('`').next())
}

/// A JSON body in the contract's error shape.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        let body = read_body(req, state).await?;
        parse_json(&headers, &body).map(ApiJson)
    }
}

/// The raw body, with the size limit turned into 413 and a body that does not arrive
/// within the server's [`BodyTimeout`] into 408.
pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let limit = req.extensions().get::<BodyTimeout>().copied();
    let read = Bytes::from_request(req, state);
    let read = match limit {
        Some(BodyTimeout(limit)) => match tokio::time::timeout(limit, read).await {
            Ok(read) => read,
            Err(_) => {
                metrics::counter!("tidings_request_timeouts_total").increment(1);
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    "the request body was not complete in time",
                ));
            }
        },
        // A router called without the server (unit tests of handlers).
        None => read.await,
    };
    read.map_err(|rej| {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body is over the limit",
            )
        } else {
            ApiError::bad_request(rej.body_text())
        }
    })
}

/// A JSON body plus what idempotency needs: the key header and the body's hash.
pub struct IdempotentJson<T> {
    pub body: T,
    pub claim: Option<IdempotencyClaim>,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for IdempotentJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        let key = idempotency_key(&headers)?;
        let bytes = read_body(req, state).await?;
        let body = parse_json(&headers, &bytes)?;
        let claim = key.map(|key| idempotency_claim(key, &bytes));
        Ok(IdempotentJson { body, claim })
    }
}

/// The `Idempotency-Key` header, if any (400 when it is not 1..255 ASCII characters).
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let k = v
                .to_str()
                .map_err(|_| ApiError::bad_request("Idempotency-Key must be ASCII"))?;
            if k.is_empty() || k.len() > 255 {
                return Err(
                    ApiError::bad_request("Idempotency-Key must be 1..255 characters")
                        .with_field("Idempotency-Key"),
                );
            }
            Ok(Some(k.to_owned()))
        }
    }
}

/// The claim for `key` on a request whose body is `bytes` (hashed: a retry must
/// send the same bytes).
pub fn idempotency_claim(key: String, bytes: &[u8]) -> IdempotencyClaim {
    IdempotencyClaim {
        key,
        request_hash: hex::encode(Sha256::digest(bytes)),
    }
}

/// Query parameters in the contract's error shape (400).
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let query = Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        refuse_control_in_query(parts.uri.query().unwrap_or(""))?;
        Ok(query)
    }
}

/// 422 naming the first query parameter whose decoded name or value holds a
/// disallowed control character (`?to=%00` would otherwise reach the database,
/// which PostgreSQL answers with an error). Only `%00`..`%1F` can decode to one.
fn refuse_control_in_query(query: &str) -> Result<(), ApiError> {
    if !query.contains("%0") && !query.contains("%1") {
        return Ok(());
    }
    let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(query).unwrap_or_default();
    for (name, value) in pairs {
        if text::check(&name, &name)
            .and(text::check(&name, &value))
            .is_err()
        {
            let field = name.escape_debug().to_string();
            return Err(
                crate::service::ServiceError::from(text::control_characters(&field)).into(),
            );
        }
    }
    Ok(())
}

/// Opaque cursors: base64url of the store's position, so clients cannot depend on it.
pub fn encode_cursor(pos: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("p{pos}"))
}

pub fn page_request(limit: Option<i64>, cursor: Option<&str>) -> Result<PageRequest, ApiError> {
    let limit = match limit {
        None => LIMIT_DEFAULT,
        Some(n) if n >= 1 => n.min(i64::from(LIMIT_MAX)) as u32,
        Some(_) => return Err(ApiError::bad_request("limit must be 1..200").with_field("limit")),
    };
    let before = match cursor {
        None | Some("") => None,
        Some(c) => {
            let bad = || ApiError::bad_request("invalid cursor").with_field("cursor");
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .map_err(|_| bad())?;
            let s = String::from_utf8(raw).map_err(|_| bad())?;
            Some(
                s.strip_prefix('p')
                    .and_then(|n| n.parse::<i64>().ok())
                    .ok_or_else(bad)?,
            )
        }
    };
    Ok(PageRequest { limit, before })
}

/// The bearer credential from `Authorization`, or from `?token=` where browsers
/// cannot set headers (WebSocket, EventSource).
pub fn bearer(parts: &Parts, allow_query: bool) -> Option<String> {
    if let Some(v) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let mut it = v.splitn(2, ' ');
        if it.next().is_some_and(|s| s.eq_ignore_ascii_case("bearer")) {
            return it.next().map(|t| t.trim().to_owned());
        }
        return None;
    }
    if allow_query {
        let q = parts.uri.query().unwrap_or("");
        return url_param(q, "token");
    }
    None
}

/// Reads one parameter from a query string (percent-decoded).
pub fn url_param(query: &str, name: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// A JWT has three dot-separated parts; anything else is treated as an API key.
fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2
}

/// Checks the request's credential, throttling failures per client address and
/// charging successes to their key's and tenant's quotas. `realtime` requests (WS,
/// SSE) may carry the token in `?token=` and are not charged to the request
/// quotas: they are one request per connection.
async fn authenticate(
    parts: &Parts,
    state: &AppState,
    realtime: bool,
) -> Result<Principal, ApiError> {
    let client = parts.extensions.get::<ClientIp>().map(|c| c.0);
    if let Some(addr) = client {
        state
            .auth
            .limits
            .check_address(addr)
            .map_err(rate_limited)?;
    }
    let token = bearer(parts, realtime);
    match verify(state, token.as_deref()).await {
        Ok(principal) => {
            if !realtime {
                let key = match &principal {
                    Principal::ApiKey { key_prefix, .. } => Some(key_prefix.as_str()),
                    Principal::User(_) => None,
                };
                state
                    .auth
                    .limits
                    .check_request(principal.tenant(), key)
                    .map_err(rate_limited)?;
            }
            Ok(principal)
        }
        Err(AuthError::Refused(why)) => Err(refused(state, client, token.as_deref(), why)),
        Err(AuthError::Failed(e)) => Err(e.into()),
    }
}

async fn verify(state: &AppState, token: Option<&str>) -> Result<Principal, AuthError> {
    let token = token.ok_or(Refusal::Missing)?;
    if looks_like_jwt(token) {
        Ok(Principal::User(state.auth.user_token(token).await?))
    } else {
        state.auth.api_key(token).await
    }
}

/// A refused credential: counted, logged (address, reason, at most a generated
/// key's public prefix: never a secret or a token), charged to the client's address.
fn refused(
    state: &AppState,
    client: Option<std::net::IpAddr>,
    token: Option<&str>,
    why: Refusal,
) -> ApiError {
    metrics::counter!("tidings_auth_failures_total", "reason" => why.reason()).increment(1);
    // Only a generated key's handle is public (a configured development key may be
    // short enough for its first characters to be most of it).
    let key_prefix = token
        .filter(|t| t.starts_with(crate::service::auth::API_KEY_PREFIX) && !looks_like_jwt(t))
        .map(crate::service::auth::key_prefix);
    tracing::warn!(
        client = client.map(|c| c.to_string()),
        reason = why.reason(),
        key_prefix,
        "authentication failed"
    );
    if let Some(addr) = client {
        if let Err(limited) = state.auth.limits.record_failure(addr) {
            return rate_limited(limited);
        }
    }
    ServiceError::from(why).into()
}

/// 429 in the contract's shape, with `Retry-After` in whole seconds (at least 1).
fn rate_limited(limited: Limited) -> ApiError {
    metrics::counter!("tidings_rate_limited_total", "scope" => limited.scope).increment(1);
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many requests ({} quota); retry later", limited.scope),
    );
    e.retry_after = Some(limited.retry_after.as_secs_f64().ceil().max(1.0) as u64);
    e
}

/// An API key (server to server). A user token here is authenticated but not allowed: 403.
pub struct ApiKey(pub TenantId);

impl FromRequestParts<AppState> for ApiKey {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match authenticate(parts, state, false).await? {
            Principal::ApiKey { tenant, .. } => Ok(ApiKey(tenant)),
            Principal::User(_) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this endpoint needs an API key",
            )),
        }
    }
}

/// A user token, from the header only (REST).
pub struct User(pub UserPrincipal);

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match authenticate(parts, state, false).await? {
            Principal::User(u) => Ok(User(u)),
            Principal::ApiKey { .. } => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this endpoint needs a user token",
            )),
        }
    }
}

/// What an admin endpoint allows a caller to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAccess {
    /// API key or `admin` token.
    Full,
    /// `front_desk` token: reads (and, later, retries and single sends).
    ReadOnly,
}

/// An API key or an `admin` / `front_desk` user token; `provider` and `patient` get 403.
pub struct Admin {
    pub tenant: TenantId,
    pub access: AdminAccess,
    /// Who acts, for the audit log: `api_key:<prefix>` or `user:<id>`.
    pub actor: Actor,
}

impl Admin {
    pub fn require_full(&self) -> Result<(), ApiError> {
        if self.access == AdminAccess::Full {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "front_desk may only read here",
            ))
        }
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match authenticate(parts, state, false).await? {
            Principal::ApiKey { tenant, key_prefix } => Ok(Admin {
                tenant,
                access: AdminAccess::Full,
                actor: Actor::api_key(&key_prefix),
            }),
            Principal::User(u) => match u.role {
                Role::Admin => Ok(Admin {
                    actor: Actor::user(&u.user),
                    tenant: u.tenant,
                    access: AdminAccess::Full,
                }),
                Role::FrontDesk => Ok(Admin {
                    actor: Actor::user(&u.user),
                    tenant: u.tenant,
                    access: AdminAccess::ReadOnly,
                }),
                Role::Provider | Role::Patient => Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "admin endpoints need an admin role",
                )),
            },
        }
    }
}

/// An API key or an `admin` token: admin endpoints the contract does not open to
/// `front_desk` (the clinic-event log holds patient names and phones).
pub struct FullAdmin(pub Admin);

impl FromRequestParts<AppState> for FullAdmin {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let admin = Admin::from_request_parts(parts, state).await?;
        if admin.access != AdminAccess::Full {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this endpoint needs an API key or an admin token",
            ));
        }
        Ok(FullAdmin(admin))
    }
}

/// A user token from the header or `?token=` (WebSocket and SSE).
pub async fn realtime_user(parts: &Parts, state: &AppState) -> Result<UserPrincipal, ApiError> {
    match authenticate(parts, state, true).await? {
        Principal::User(u) => Ok(u),
        Principal::ApiKey { .. } => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "realtime endpoints need a user token",
        )),
    }
}
