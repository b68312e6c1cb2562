//! The hub's REST API as the load tool uses it: health, publish, the user directory and token
//! minting, all with the tenant's API key.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;
use serde_json::json;

/// A pooled HTTP/1.1 client for one hub and one API key.
#[derive(Clone)]
pub(crate) struct RestClient {
    http: reqwest::Client,
    /// Base URL without a trailing slash, e.g. `http://127.0.0.1:8080`.
    base: Arc<str>,
    /// `Bearer <api key>`, or `None` when the scenario needs no API key.
    authorization: Option<Arc<str>>,
}

/// What a publish came back with: the status and the raw body (parsed only when needed, to
/// keep the publisher's CPU for sending).
pub(crate) struct PublishResponse {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
}

#[derive(Deserialize)]
struct TokenResponse {
    token: String,
}

/// `201 {"notifications": [{"id", "user_id"}]}`
#[derive(Deserialize)]
pub(crate) struct PublishBody {
    pub(crate) notifications: Vec<PublishedNotification>,
}

#[derive(Deserialize)]
pub(crate) struct PublishedNotification {
    pub(crate) user_id: String,
}

impl RestClient {
    /// `pool` is the number of idle keep-alive connections kept per host: set it to the
    /// publisher's concurrency so that steady publishing never opens new connections.
    pub(crate) fn new(
        base_url: &str,
        api_key: Option<&str>,
        pool: usize,
        timeout: Duration,
    ) -> Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(pool)
            .tcp_nodelay(true)
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            base: base_url.trim_end_matches('/').into(),
            authorization: api_key.map(|key| format!("Bearer {key}").into()),
        })
    }

    fn authorization(&self) -> Result<&str> {
        self.authorization
            .as_deref()
            .context("this scenario needs --api-key (or TIDINGS_LOAD_API_KEY)")
    }

    /// `GET /healthz`: fail early, with a clear message, when no hub listens at `--url`.
    pub(crate) async fn healthz(&self) -> Result<()> {
        let url = format!("{}/healthz", self.base);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("no hub answering at {url}"))?;
        if !response.status().is_success() {
            bail!("{url} answered {}", response.status());
        }
        Ok(())
    }

    /// `POST /v1/notifications` with a body serialized by the caller.
    pub(crate) async fn publish(&self, body: Vec<u8>) -> Result<PublishResponse, PublishError> {
        let authorization = self.authorization().map_err(|_| PublishError::NoApiKey)?;
        let response = self
            .http
            .post(format!("{}/v1/notifications", self.base))
            .header(AUTHORIZATION, authorization)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(PublishError::Transport)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(PublishError::Transport)?;
        Ok(PublishResponse { status, body })
    }

    /// `PUT /v1/users/{user_id}` `{"role"}`: puts a user in the directory (a role publish
    /// reaches directory users only).
    pub(crate) async fn put_user(&self, user_id: &str, role: &str) -> Result<()> {
        let response = self
            .http
            .put(format!("{}/v1/users/{user_id}", self.base))
            .header(AUTHORIZATION, self.authorization()?)
            .json(&json!({ "role": role }))
            .send()
            .await
            .with_context(|| format!("PUT /v1/users/{user_id}"))?;
        check(response, &format!("PUT /v1/users/{user_id}")).await?;
        Ok(())
    }

    /// `POST /v1/tokens`: a user token minted by the hub.
    pub(crate) async fn mint_token(&self, user_id: &str, role: &str, ttl: u64) -> Result<String> {
        let response = self
            .http
            .post(format!("{}/v1/tokens", self.base))
            .header(AUTHORIZATION, self.authorization()?)
            .json(&json!({ "user_id": user_id, "role": role, "ttl_seconds": ttl }))
            .send()
            .await
            .context("POST /v1/tokens")?;
        let body = check(response, "POST /v1/tokens").await?;
        let token: TokenResponse =
            serde_json::from_slice(&body).context("POST /v1/tokens: unexpected body")?;
        Ok(token.token)
    }
}

/// Why a publish did not get an answer.
#[derive(Debug)]
pub(crate) enum PublishError {
    NoApiKey,
    Transport(reqwest::Error),
}

impl PublishError {
    /// A short label for the error table: `timeout`, `connect`, `no api key`, `io`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            PublishError::NoApiKey => "no api key",
            PublishError::Transport(e) if e.is_timeout() => "timeout",
            PublishError::Transport(e) if e.is_connect() => "connect",
            PublishError::Transport(_) => "io",
        }
    }
}

async fn check(response: reqwest::Response, what: &str) -> Result<Bytes> {
    let status = response.status();
    let body = response
        .bytes()
        .await
        .with_context(|| format!("{what}: reading the body"))?;
    if !status.is_success() {
        bail!("{what}: {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(body)
}
