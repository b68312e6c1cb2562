//! Provider status callbacks (webhooks): authenticate, find the message, apply.
//!
//! Providers do not know tenants, so each callback first finds its message
//! (`OutboundStore::callback_target`, by our id or the provider's), then is
//! authenticated with *that message's tenant's* secrets: one clinic's credentials
//! can never move another clinic's messages. A callback that fails the check
//! changes nothing (403). The store applies the rest atomically: a replay (same
//! bytes, same receipt) writes nothing, and `advance` keeps statuses from moving
//! backwards when callbacks arrive out of order.

use std::sync::Arc;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::routing::ProviderRouting;
use crate::provider::signature::{verify_meta, verify_twilio};
use crate::provider::{twilio, unifonic, whatsapp_cloud, CallbackError, StatusUpdate};
use crate::service::clock::Clock;
use crate::store::outbound::{
    CallbackOutcome, CallbackTarget, CallbackUpdate, MessageEvent, OutboundStore,
};
use crate::store::StoreError;

/// Why a callback was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Missing or wrong signature / token: 403, nothing changed.
    #[error("bad signature")]
    BadSignature,
    /// Not what the provider sends: 400.
    #[error("malformed callback: {0}")]
    Malformed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a callback request did, counted per status update it carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallbackReport {
    pub applied: u32,
    pub stale: u32,
    pub replayed: u32,
    /// About nothing we track (unknown message, inbound traffic, unnamed status).
    pub ignored: u32,
}

pub struct Callbacks {
    store: Arc<dyn OutboundStore>,
    routing: Arc<ProviderRouting>,
    clock: Arc<dyn Clock>,
    /// `[outbound] public_url`, without a trailing slash (empty: use the Host header).
    public_url: String,
}

impl Callbacks {
    pub fn new(
        store: Arc<dyn OutboundStore>,
        routing: Arc<ProviderRouting>,
        clock: Arc<dyn Clock>,
        public_url: &str,
    ) -> Self {
        Self {
            store,
            routing,
            clock,
            public_url: public_url.trim_end_matches('/').to_owned(),
        }
    }

    /// The URL a provider called, as it signed it: the configured public URL plus
    /// the request's path and query (behind a proxy the Host header is the proxy's).
    pub fn public_url_of(&self, host: Option<&str>, path_and_query: &str) -> String {
        if self.public_url.is_empty() {
            format!("http://{}{path_and_query}", host.unwrap_or("localhost"))
        } else {
            format!("{}{path_and_query}", self.public_url)
        }
    }

    /// `POST /v1/webhooks/twilio`: `url` is the full URL Twilio called (see
    /// [`Self::public_url_of`]), `query` its query (carrying our `message_id`).
    pub async fn twilio(
        &self,
        url: &str,
        query: Option<&str>,
        body: &[u8],
        signature: Option<&str>,
    ) -> Result<CallbackReport, WebhookError> {
        let form: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|e| WebhookError::Malformed(format!("not a form: {e}")))?;
        let our_id = query.and_then(|q| {
            serde_urlencoded::from_str::<Vec<(String, String)>>(q)
                .ok()?
                .into_iter()
                .find(|(k, _)| k == "message_id")
                .and_then(|(_, v)| crate::domain::message::MessageId::parse(&v).ok())
        });
        let sid = form
            .iter()
            .find(|(k, _)| k == "MessageSid" || k == "SmsSid")
            .map(|(_, v)| v.as_str());
        let Some(target) = self.store.callback_target(our_id, sid).await? else {
            return Ok(ignored());
        };
        let route = self.routing.route(&target.tenant);
        let signature = signature.ok_or(WebhookError::BadSignature)?;
        if !route
            .twilio_tokens(target.provider.as_deref())
            .into_iter()
            .any(|token| verify_twilio(token, url, &form, signature))
        {
            return Err(WebhookError::BadSignature);
        }
        let update = match twilio::parse_status_callback(&form, query) {
            Ok(u) => u,
            Err(CallbackError::Ignored(_)) => return Ok(ignored()),
            Err(CallbackError::Malformed(m)) => return Err(WebhookError::Malformed(m)),
        };
        let receipt = receipt("twilio", &[query.unwrap_or("").as_bytes(), body]);
        let mut report = CallbackReport::default();
        self.apply(&target, "twilio", &update, receipt, &mut report)
            .await?;
        Ok(report)
    }

    /// `POST /v1/webhooks/whatsapp`: `X-Hub-Signature-256` over the raw body, with
    /// the app secret of each status's tenant. One bad status refuses the whole
    /// body (403) before anything is applied.
    pub async fn whatsapp(
        &self,
        body: &[u8],
        signature: Option<&str>,
    ) -> Result<CallbackReport, WebhookError> {
        let signature = signature.ok_or(WebhookError::BadSignature)?;
        let updates = whatsapp_cloud::parse_status_webhook(body).map_err(|e| match e {
            CallbackError::Malformed(m) | CallbackError::Ignored(m) => WebhookError::Malformed(m),
        })?;
        let mut found = Vec::new();
        let mut report = CallbackReport::default();
        for update in updates {
            match self
                .store
                .callback_target(update.message_id, Some(&update.provider_message_id))
                .await?
            {
                Some(target) => {
                    let route = self.routing.route(&target.tenant);
                    if !route
                        .whatsapp_app_secrets(target.provider.as_deref())
                        .into_iter()
                        .any(|secret| verify_meta(secret, body, signature))
                    {
                        return Err(WebhookError::BadSignature);
                    }
                    found.push((target, update));
                }
                None => report.ignored += 1,
            }
        }
        if found.is_empty() {
            // Nothing of ours: still only the signed are acknowledged.
            let signed = self.routing.all().any(|r| {
                r.whatsapp_app_secrets(None)
                    .into_iter()
                    .any(|s| verify_meta(s, body, signature))
            });
            if !signed {
                return Err(WebhookError::BadSignature);
            }
        }
        for (i, (target, update)) in found.iter().enumerate() {
            // One body may carry several statuses: the receipt names which one.
            let index = i.to_string();
            let receipt = receipt("whatsapp", &[index.as_bytes(), body]);
            self.apply(target, "whatsapp", update, receipt, &mut report)
                .await?;
        }
        Ok(report)
    }

    /// `GET /v1/webhooks/whatsapp`: Meta's registration handshake. Answers the
    /// challenge when the verify token is one a tenant (or the node) configured.
    pub fn whatsapp_verify(
        &self,
        mode: Option<&str>,
        token: Option<&str>,
        challenge: Option<&str>,
    ) -> Result<String, WebhookError> {
        let (Some("subscribe"), Some(token), Some(challenge)) = (mode, token, challenge) else {
            return Err(WebhookError::BadSignature);
        };
        let known = self.routing.all().any(|r| {
            r.config
                .webhooks
                .whatsapp_verify_token
                .as_ref()
                .is_some_and(|t| same_secret(t.expose(), token))
        });
        if known {
            Ok(challenge.to_owned())
        } else {
            Err(WebhookError::BadSignature)
        }
    }

    /// `POST /v1/webhooks/unifonic?token=…`: Unifonic signs nothing, so the URL
    /// carries the tenant's `unifonic_token`.
    pub async fn unifonic(
        &self,
        body: &[u8],
        token: Option<&str>,
    ) -> Result<CallbackReport, WebhookError> {
        let token = token.ok_or(WebhookError::BadSignature)?;
        let update = match unifonic::parse_delivery_report(body) {
            Ok(u) => u,
            Err(CallbackError::Ignored(_)) => return Ok(ignored()),
            Err(CallbackError::Malformed(m)) => return Err(WebhookError::Malformed(m)),
        };
        let Some(target) = self
            .store
            .callback_target(update.message_id, Some(&update.provider_message_id))
            .await?
        else {
            return Ok(ignored());
        };
        let route = self.routing.route(&target.tenant);
        let ok = route
            .config
            .webhooks
            .unifonic_token
            .as_ref()
            .is_some_and(|t| same_secret(t.expose(), token));
        if !ok {
            return Err(WebhookError::BadSignature);
        }
        let receipt = receipt("unifonic", &[body]);
        let mut report = CallbackReport::default();
        self.apply(&target, "unifonic", &update, receipt, &mut report)
            .await?;
        Ok(report)
    }

    async fn apply(
        &self,
        target: &CallbackTarget,
        provider: &str,
        update: &StatusUpdate,
        receipt: String,
        report: &mut CallbackReport,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let error = update
            .error_code
            .as_ref()
            .map(|code| match &update.error_message {
                Some(m) => format!("{code}: {m}"),
                None => code.clone(),
            });
        let event = MessageEvent {
            event: update.status.as_str().to_owned(),
            at: now,
            detail: json!({
                "source": "callback",
                "provider": provider,
                "provider_message_id": update.provider_message_id,
                "code": update.error_code,
                "error": update.error_message,
                "price": update.price.as_ref().map(|p| p.to_string()),
            })
            .to_string(),
        };
        let outcome = self
            .store
            .apply_callback(
                &target.tenant,
                target.id,
                &CallbackUpdate {
                    status: update.status,
                    provider_message_id: Some(update.provider_message_id.clone()),
                    price: update.price.clone(),
                    error,
                    receipt,
                    event,
                },
                now,
            )
            .await?;
        let label = match outcome {
            CallbackOutcome::Applied => {
                report.applied += 1;
                "applied"
            }
            CallbackOutcome::Stale => {
                report.stale += 1;
                "stale"
            }
            CallbackOutcome::Replay => {
                report.replayed += 1;
                "replay"
            }
        };
        metrics::counter!(
            "tidings_outbound_callbacks_total",
            "provider" => provider.to_owned(),
            "outcome" => label
        )
        .increment(1);
        Ok(())
    }
}

fn ignored() -> CallbackReport {
    CallbackReport {
        ignored: 1,
        ..CallbackReport::default()
    }
}

/// SHA-256 of the provider name and the callback's bytes (hex).
fn receipt(provider: &str, parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    h.update(provider.as_bytes());
    for p in parts {
        h.update([0u8]);
        h.update(p);
    }
    hex::encode(h.finalize())
}

/// Compares two secrets without leaking where they differ (both hashed first,
/// then compared in full).
fn same_secret(a: &str, b: &str) -> bool {
    let (x, y) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}
