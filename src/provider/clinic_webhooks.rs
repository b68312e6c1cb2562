//! The HTTP side of webhooks to clinic systems: one signed POST to an endpoint, and
//! what came back. Here because only `provider/` knows reqwest; what an answer means
//! for the delivery (retry, give up, disable) is the service's, in
//! `service::webhooks::deliver`.
//!
//! **SSRF.** Endpoint URLs are chosen by tenants, and the hub usually sits in a private
//! network. Unless `allow_internal` (development, tests), no request reaches a loopback,
//! private, link-local (cloud metadata) or otherwise internal address
//! ([`crate::domain::webhook::is_internal`]): a literal address in the URL is checked
//! before the request, and names are resolved by [`PublicOnly`], which drops internal
//! addresses from every lookup reqwest makes (so a name cannot be re-pointed inside
//! between a check and the connection). No redirects are followed (the spec counts a 3xx
//! as a failure) and no proxy from the environment is used.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::domain::webhook::is_internal;

/// One signed delivery attempt.
#[derive(Debug)]
pub struct SignedRequest<'a> {
    pub url: &'a str,
    pub webhook_id: &'a str,
    /// Unix seconds, the `webhook-timestamp` the signature covers.
    pub timestamp: i64,
    /// `v1,<base64>`.
    pub signature: &'a str,
    pub body: &'a str,
}

/// What the endpoint did with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReport {
    /// The HTTP status, or `None` when there was no answer (`error` says why).
    pub status: Option<u16>,
    pub retry_after: Option<Duration>,
    pub error: Option<String>,
    pub duration: Duration,
}

/// Sends deliveries; one connection pool for every endpoint of the node.
pub struct ClinicWebhookSender {
    client: reqwest::Client,
    allow_internal: bool,
}

/// Resolves names through the system resolver, keeping only public addresses.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !is_internal(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

impl ClinicWebhookSender {
    pub fn new(timeout: Duration, allow_internal: bool) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("tidings-webhooks/", env!("CARGO_PKG_VERSION")));
        if !allow_internal {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            allow_internal,
        })
    }

    /// POSTs the body with the Standard Webhooks headers. The answer's body is not read
    /// beyond what the connection needs: a receiver's text is not ours to keep.
    pub async fn send(&self, req: &SignedRequest<'_>) -> SendReport {
        let started = Instant::now();
        let failed = |error: String| SendReport {
            status: None,
            retry_after: None,
            error: Some(error),
            duration: started.elapsed(),
        };
        let url = match reqwest::Url::parse(req.url) {
            Ok(url) => url,
            Err(e) => return failed(format!("bad url: {e}")),
        };
        if !self.allow_internal {
            let literal = url
                .host_str()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
                .and_then(|h| h.parse::<IpAddr>().ok());
            if literal.is_some_and(is_internal) {
                return failed("the endpoint's address is internal (not allowed)".to_owned());
            }
        }
        let sent = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", req.webhook_id)
            .header("webhook-timestamp", req.timestamp.to_string())
            .header("webhook-signature", req.signature)
            .body(req.body.to_owned())
            .send()
            .await;
        match sent {
            Ok(response) => SendReport {
                status: Some(response.status().as_u16()),
                retry_after: response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs),
                error: None,
                duration: started.elapsed(),
            },
            Err(e) => failed(describe(&e)),
        }
    }
}

/// A transport failure in a few words, without the URL (it may carry a token in its query).
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_request() {
        "request failed"
    } else {
        "transport error"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        what.to_owned()
    } else {
        format!("{what}: {detail}")
    }
}
