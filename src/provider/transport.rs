//! What the HTTP adapters share: building a reqwest client with the provider's
//! timeout, joining base URLs, Retry-After, and [`send_and_classify`] — the one
//! path from a built request to an outcome (transport failures classified here,
//! the answer by the adapter's own table).

use std::time::Duration;

use super::{ProviderAccepted, ProviderError};

/// An adapter's classification of an answer: status, body, Retry-After.
pub(crate) type Classify =
    fn(u16, &str, Option<Duration>) -> Result<ProviderAccepted, ProviderError>;

/// Sends a built request and classifies what comes back: no response at all
/// ([`send_failure`]), an unreadable body ([`body_failure`]), or an answer, which
/// goes to the adapter's `classify`. `unknown_after_send`: whether the provider's
/// callbacks carry our id, so a send that may have happened can wait for them.
pub(crate) async fn send_and_classify(
    request: reqwest::RequestBuilder,
    unknown_after_send: bool,
    classify: Classify,
) -> Result<ProviderAccepted, ProviderError> {
    let response = request
        .send()
        .await
        .map_err(|e| send_failure(&e, unknown_after_send))?;
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers());
    let body = response
        .text()
        .await
        .map_err(|e| body_failure(&e, status, unknown_after_send))?;
    classify(status, &body, retry_after)
}

/// A client for one provider: its own timeout and connection pool, rustls.
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, ProviderError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("tidings/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ProviderError::misconfigured("http_client", e.to_string()))
}

/// `base` (with or without a trailing slash) + `path` (starting with `/`).
pub(crate) fn join(base: &str, path: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), path)
}

/// A Retry-After header in seconds (the HTTP-date form is not used by these
/// providers and is ignored).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Classifies a failure to get a response at all.
///
/// - Connecting failed (refused, DNS, TLS handshake, connect timeout): the request
///   never left, so a retry cannot duplicate: `Transient`.
/// - Anything later (a timeout waiting for the response, a connection cut
///   mid-request): the provider may have acted on it. With `unknown_after_send`
///   (providers whose callbacks carry our id) this is `Unknown`; otherwise
///   `Transient`, accepting a possible duplicate (documented per provider).
fn send_failure(err: &reqwest::Error, unknown_after_send: bool) -> ProviderError {
    let code = if err.is_connect() {
        "connect"
    } else if err.is_timeout() {
        "timeout"
    } else {
        "connection"
    };
    let message = error_chain(err);
    if err.is_connect() || !unknown_after_send {
        ProviderError::Transient {
            code: code.to_owned(),
            message,
            retry_after: None,
        }
    } else {
        ProviderError::Unknown {
            code: code.to_owned(),
            message,
        }
    }
}

/// Classifies a failure to read the body of a response whose status arrived.
/// After a 2xx the provider has taken the message, so whatever the provider, the
/// outcome is `Unknown` (a retry would certainly duplicate it); otherwise as
/// [`send_failure`].
fn body_failure(err: &reqwest::Error, status: u16, unknown_after_send: bool) -> ProviderError {
    if (200..300).contains(&status) {
        ProviderError::Unknown {
            code: "bad_response".to_owned(),
            message: format!(
                "HTTP {status}, then the body could not be read: {}",
                error_chain(err)
            ),
        }
    } else {
        send_failure(err, unknown_after_send)
    }
}

/// The error and its sources on one line (reqwest's top-level message alone is
/// "error sending request").
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Cuts a response body for an error message or event detail.
pub(crate) fn truncate(body: &str) -> String {
    const MAX: usize = 2000;
    if body.len() <= MAX {
        return body.to_owned();
    }
    let mut end = MAX;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &body[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_with_or_without_trailing_slash() {
        assert_eq!(join("http://x:1/", "/a"), "http://x:1/a");
        assert_eq!(join("http://x:1", "/a"), "http://x:1/a");
    }

    #[test]
    fn truncates_on_a_char_boundary() {
        let s = "ع".repeat(1500); // 3000 bytes
        let t = truncate(&s);
        assert!(t.ends_with('…'));
        assert_eq!(t.len(), 2000 + '…'.len_utf8());
    }
}
