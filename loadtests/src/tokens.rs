//! User tokens for the fleet's connections: signed here with the tenant's JWT secret (fast, for
//! tens of thousands of users) or minted one by one through `POST /v1/tokens`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use futures_util::{stream, StreamExt, TryStreamExt};
use jsonwebtoken::{EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::rest::RestClient;
use crate::stats::unix_us;

/// Where tokens come from, as asked on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TokenSource {
    /// `local` when `--jwt-secret` is given, else `api`.
    Auto,
    /// Sign HS256 JWTs here with `--jwt-secret`.
    Local,
    /// Mint through `POST /v1/tokens` with `--api-key`.
    Api,
}

/// A [`TokenSource`] with `auto` decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum TokenMode {
    Local,
    Api,
}

impl TokenSource {
    pub(crate) fn resolve(self, credentials: &Credentials) -> Result<TokenMode> {
        match self {
            TokenSource::Local if credentials.jwt_secret.is_none() => {
                bail!("--tokens local needs --jwt-secret (or TIDINGS_LOAD_JWT_SECRET)")
            }
            TokenSource::Local => Ok(TokenMode::Local),
            TokenSource::Api if credentials.api_key.is_none() => {
                bail!("--tokens api needs --api-key (or TIDINGS_LOAD_API_KEY)")
            }
            TokenSource::Api => Ok(TokenMode::Api),
            TokenSource::Auto if credentials.jwt_secret.is_some() => Ok(TokenMode::Local),
            TokenSource::Auto if credentials.api_key.is_some() => Ok(TokenMode::Api),
            TokenSource::Auto => {
                bail!(
                    "user tokens need --jwt-secret (signed here) or --api-key (minted by the hub)"
                )
            }
        }
    }
}

/// The tenant's secrets. They reach worker processes through the environment, never argv.
#[derive(Clone, Default)]
pub(crate) struct Credentials {
    pub(crate) api_key: Option<String>,
    pub(crate) jwt_secret: Option<String>,
}

/// What every token of a fleet says besides the user.
pub(crate) struct TokenRequest<'a> {
    pub(crate) mode: TokenMode,
    pub(crate) base_url: &'a str,
    pub(crate) tenant: &'a str,
    pub(crate) role: &'a str,
    pub(crate) ttl_seconds: u64,
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    tenant: &'a str,
    role: &'a str,
    iat: u64,
    exp: u64,
}

/// Concurrent `POST /v1/tokens` calls when minting through the API.
const MINT_CONCURRENCY: usize = 16;

/// One token per user, in the order of `user_ids`.
pub(crate) async fn issue(
    request: &TokenRequest<'_>,
    credentials: &Credentials,
    user_ids: &[Arc<str>],
) -> Result<Vec<Arc<str>>> {
    match request.mode {
        TokenMode::Local => {
            let secret = credentials
                .jwt_secret
                .as_deref()
                .context("local tokens need --jwt-secret")?;
            let key = EncodingKey::from_secret(secret.as_bytes());
            user_ids
                .iter()
                .map(|user| sign(&key, request, user).map(Arc::from))
                .collect()
        }
        TokenMode::Api => {
            let rest = RestClient::new(
                request.base_url,
                credentials.api_key.as_deref(),
                MINT_CONCURRENCY,
                Duration::from_secs(30),
            )?;
            stream::iter(user_ids.iter().cloned())
                .map(|user| {
                    let rest = rest.clone();
                    async move {
                        rest.mint_token(&user, request.role, request.ttl_seconds)
                            .await
                            .map(Arc::from)
                    }
                })
                .buffered(MINT_CONCURRENCY)
                .try_collect()
                .await
        }
    }
}

/// An HS256 JWT with the claims the hub requires: `sub`, `tenant`, `role`, `exp`.
pub(crate) fn sign(key: &EncodingKey, request: &TokenRequest<'_>, user_id: &str) -> Result<String> {
    let now = unix_us() / 1_000_000;
    let claims = Claims {
        sub: user_id,
        tenant: request.tenant,
        role: request.role,
        iat: now,
        exp: now + request.ttl_seconds,
    };
    jsonwebtoken::encode(&Header::default(), &claims, key).context("signing a user token")
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    #[test]
    fn signed_tokens_carry_the_claims_the_hub_checks() {
        let request = TokenRequest {
            mode: TokenMode::Local,
            base_url: "http://127.0.0.1:1",
            tenant: "bench",
            role: "front_desk",
            ttl_seconds: 600,
        };
        let token = sign(&EncodingKey::from_secret(b"s3cret"), &request, "lt-7").unwrap();
        let decoded = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &DecodingKey::from_secret(b"s3cret"),
            &Validation::new(jsonwebtoken::Algorithm::HS256),
        )
        .unwrap();
        assert_eq!(decoded.claims["sub"], "lt-7");
        assert_eq!(decoded.claims["tenant"], "bench");
        assert_eq!(decoded.claims["role"], "front_desk");
        let exp = decoded.claims["exp"].as_u64().unwrap();
        assert!(exp > unix_us() / 1_000_000 + 500);
    }

    #[test]
    fn auto_prefers_local_signing() {
        let both = Credentials {
            api_key: Some("k".into()),
            jwt_secret: Some("s".into()),
        };
        assert_eq!(TokenSource::Auto.resolve(&both).unwrap(), TokenMode::Local);
        let key_only = Credentials {
            api_key: Some("k".into()),
            jwt_secret: None,
        };
        assert_eq!(
            TokenSource::Auto.resolve(&key_only).unwrap(),
            TokenMode::Api
        );
        assert!(TokenSource::Local.resolve(&key_only).is_err());
        assert!(TokenSource::Auto.resolve(&Credentials::default()).is_err());
    }
}
