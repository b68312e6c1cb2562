//! Provider status callbacks (webhooks): authenticate, find the message, apply.
//! One [`Callbacks::handle`] for every kind: what proves a kind's callback and what
//! it says belong to its adapter (`provider::Webhook`, found by kind in the
//! registry); the order and the tenant rules below belong here, once.
//!
//! **Verify before any lookup.** Every callback is first checked against the
//! secrets its URL may speak for — a tenant's own URL (`/v1/webhooks/twilio/{tenant}`)
//! only that tenant's, the shared URLs (`/v1/webhooks/twilio`) every configured
//! tenant's (they live in the config, not the database) — so a forged callback costs
//! a few HMACs, reads nothing and is refused (403) whatever ids it names. Only then is
//! the message found (`OutboundStore::callback_target`, by our id or the provider's),
//! and the proven secret must be *that message's tenant's*: one clinic's credentials
//! can never move another clinic's messages. A message of another tenant is answered
//! exactly like an unknown one (200, `ignored`), so ids cannot be enumerated. The
//! store applies the rest atomically: a replay (same bytes, same receipt) writes
//! nothing, and `advance` keeps statuses from moving backwards.

use std::sync::Arc;

use serde_json::json;

use super::routing::{ProviderRouting, TenantRoute};
use crate::domain::ids::TenantId;
use crate::provider::signature::same_secret;
use crate::provider::{self, CallbackError, CallbackRequest, StatusUpdate, Webhook};
use crate::service::clock::Clock;
use crate::store::outbound::{
    CallbackOutcome, CallbackTarget, CallbackUpdate, MessageEvent, OutboundStore,
};
use crate::store::StoreError;

/// Why a callback was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Missing or wrong signature / token: 403, nothing read, nothing changed.
    #[error("bad signature")]
    BadSignature,
    /// Not what the provider sends: 400.
    #[error("malformed callback: {0}")]
    Malformed(String),
    /// More status updates in one body than `[outbound] webhook_max_statuses`: 413.
    #[error("more than {0} status updates in one callback")]
    TooManyStatuses(usize),
    /// No provider kind of that name: 404, like any unknown URL.
    #[error("no webhook of that kind")]
    UnknownKind,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whose secrets a callback URL speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The shared URLs of the public contract: any configured tenant's (or the
    /// node default's) secret, the message's tenant's checked after the lookup.
    AnyTenant,
    /// A tenant's own URL: only this tenant's secrets, only this tenant's messages.
    Tenant(TenantId),
}

/// What a callback request did, counted per status update it carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallbackReport {
    pub applied: u32,
    pub stale: u32,
    pub replayed: u32,
    /// About nothing we track (unknown message, another tenant's message, inbound
    /// traffic, unnamed status).
    pub ignored: u32,
}

/// The routes whose secret a callback proved, and the tenant its URL named.
struct Verified<'a> {
    routes: Vec<&'a TenantRoute>,
    scope: &'a Scope,
}

pub struct Callbacks {
    store: Arc<dyn OutboundStore>,
    routing: Arc<ProviderRouting>,
    clock: Arc<dyn Clock>,
    /// `[outbound] public_url`, without a trailing slash (empty: use the Host header).
    public_url: String,
    /// `[outbound] webhook_max_statuses`: a bound on the lookups one signed body
    /// can cause.
    max_statuses: usize,
}

impl Callbacks {
    pub fn new(
        store: Arc<dyn OutboundStore>,
        routing: Arc<ProviderRouting>,
        clock: Arc<dyn Clock>,
        public_url: &str,
        max_statuses: usize,
    ) -> Self {
        Self {
            store,
            routing,
            clock,
            public_url: public_url.trim_end_matches('/').to_owned(),
            max_statuses,
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

    /// `POST /v1/webhooks/{kind}[/{tenant}]`: the kind's webhook verifies the
    /// request against every candidate secret of `scope` (before anything is read),
    /// then parses it; each status update counts only for a message of a tenant
    /// whose secret proved it (others are `ignored`, like unknown ids). At most
    /// `webhook_max_statuses` updates per request.
    pub async fn handle(
        &self,
        kind: &str,
        scope: &Scope,
        request: &CallbackRequest<'_>,
    ) -> Result<CallbackReport, WebhookError> {
        let webhook = provider::config::webhook(kind).ok_or(WebhookError::UnknownKind)?;
        let verified = self.verify_with(scope, webhook, request)?;
        let updates = match webhook.parse(request) {
            Ok(updates) => updates,
            Err(CallbackError::Ignored(_)) => return Ok(ignored()),
            Err(CallbackError::Malformed(m)) => return Err(WebhookError::Malformed(m)),
        };
        if updates.len() > self.max_statuses {
            return Err(WebhookError::TooManyStatuses(self.max_statuses));
        }
        let mut report = CallbackReport::default();
        for (i, update) in updates.iter().enumerate() {
            let Some(target) = self.target_of(&verified, update).await? else {
                report.ignored += 1;
                continue;
            };
            let receipt = webhook.receipt(request, i);
            self.apply(&target, webhook.kind(), update, receipt, &mut report)
                .await?;
        }
        Ok(report)
    }

    /// The routes of `scope` with a secret of `webhook`'s kind that proves
    /// `request`. A body the signature covers but that is malformed is a 400.
    fn verify_with<'a>(
        &'a self,
        scope: &'a Scope,
        webhook: &dyn Webhook,
        request: &CallbackRequest<'_>,
    ) -> Result<Verified<'a>, WebhookError> {
        let mut malformed = None;
        let verified = self.verify(scope, |route| {
            route.webhook_secrets(webhook).into_iter().any(|secret| {
                webhook.verify(request, secret).unwrap_or_else(|e| {
                    malformed = Some(e);
                    false
                })
            })
        });
        match (verified, malformed) {
            (_, Some(CallbackError::Malformed(m) | CallbackError::Ignored(m))) => {
                Err(WebhookError::Malformed(m))
            }
            (verified, None) => verified,
        }
    }

    /// `GET /v1/webhooks/whatsapp[/{tenant}]`: Meta's registration handshake.
    /// Answers the challenge when the verify token is one the scope configured.
    pub fn whatsapp_verify(
        &self,
        scope: &Scope,
        mode: Option<&str>,
        token: Option<&str>,
        challenge: Option<&str>,
    ) -> Result<String, WebhookError> {
        let (Some("subscribe"), Some(token), Some(challenge)) = (mode, token, challenge) else {
            return Err(WebhookError::BadSignature);
        };
        self.verify(scope, |route| {
            route
                .config
                .webhooks
                .whatsapp_verify_token
                .as_ref()
                .is_some_and(|t| same_secret(t.expose(), token))
        })?;
        Ok(challenge.to_owned())
    }

    /// The routes of `scope` whose secret `proves` accepts; none: 403. Every
    /// candidate is checked (no early exit), and nothing is read from the store.
    fn verify<'a>(
        &'a self,
        scope: &'a Scope,
        mut proves: impl FnMut(&TenantRoute) -> bool,
    ) -> Result<Verified<'a>, WebhookError> {
        let candidates: Vec<&TenantRoute> = match scope {
            Scope::AnyTenant => self.routing.all().collect(),
            Scope::Tenant(tenant) => vec![self.routing.route(tenant)],
        };
        let routes: Vec<&TenantRoute> = candidates.into_iter().filter(|r| proves(r)).collect();
        if routes.is_empty() {
            return Err(WebhookError::BadSignature);
        }
        Ok(Verified { routes, scope })
    }

    /// The message `update` is about, if a verified secret belongs to its tenant
    /// (`None` for an unknown message and for another tenant's alike).
    async fn target_of(
        &self,
        verified: &Verified<'_>,
        update: &StatusUpdate,
    ) -> Result<Option<CallbackTarget>, StoreError> {
        let target = self
            .store
            .callback_target(update.message_id, Some(&update.provider_message_id))
            .await?;
        Ok(target.filter(|t| self.proven_for(verified, &t.tenant)))
    }

    fn proven_for(&self, verified: &Verified<'_>, tenant: &TenantId) -> bool {
        let own = self.routing.route(tenant);
        let in_scope = match verified.scope {
            Scope::AnyTenant => true,
            Scope::Tenant(t) => t == tenant,
        };
        in_scope && verified.routes.iter().any(|r| std::ptr::eq(*r, own))
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
