//! What the logs may say about a request's URI: its path, and each query
//! parameter's name, with the value only for the few parameters known to carry
//! neither a secret nor patient data. Secrets do travel in query strings — the
//! user token of `/v1/ws?token=` and `/v1/sse?token=` (browsers cannot set headers
//! there), Unifonic's `?token=`, Meta's `hub.verify_token` — and a search (`q=`) may
//! hold a phone number, so every URI that is logged goes through here.

use axum::http::{Request, Uri};

/// Query parameters whose values are logged as they are.
const SAFE_PARAMS: &[&str] = &[
    "limit",
    "cursor",
    "since",
    "status",
    "channel",
    "kind",
    "message_id",
    "batch_id",
    "template",
    "hub.mode",
];

/// The URI with every query value not in [`SAFE_PARAMS`] replaced by `***`.
pub(super) fn redacted_uri(uri: &Uri) -> String {
    let path = uri.path();
    let Some(query) = uri.query() else {
        return path.to_owned();
    };
    let params: Vec<String> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if !SAFE_PARAMS.contains(&name) => format!("{name}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", params.join("&"))
}

/// The TraceLayer's span for a request: tower-http's default fields, with the
/// URI redacted.
pub(super) fn request_span<B>(req: &Request<B>) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %req.method(),
        uri = %redacted_uri(req.uri()),
        version = ?req.version(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(uri: &str) -> String {
        redacted_uri(&uri.parse().unwrap())
    }

    #[test]
    fn secrets_and_free_text_are_hidden_ids_and_paging_are_kept() {
        assert_eq!(r("/v1/ws?token=eyJ.abc.def"), "/v1/ws?token=***");
        assert_eq!(
            r("/v1/sse?since=n-42&token=eyJ.abc.def"),
            "/v1/sse?since=n-42&token=***"
        );
        assert_eq!(
            r("/v1/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=s3cret&hub.challenge=1"),
            "/v1/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=***&hub.challenge=***"
        );
        assert_eq!(
            r("/v1/messages?q=%2B966501234567&limit=50&api_key=k"),
            "/v1/messages?q=***&limit=50&api_key=***"
        );
        // A value without `=` or a name spelled differently is not trusted either.
        assert_eq!(r("/x?token"), "/x?token");
        assert_eq!(r("/x?%74oken=abc"), "/x?%74oken=***");
        assert_eq!(r("/v1/notifications"), "/v1/notifications");
    }
}
