//! Webhooks to clinic systems: the endpoint resource (its URL rule, its event types,
//! its secret shown once), the delivery log and the manual replay. The events
//! themselves are written by the store with the changes they report; `deliver` is the
//! worker that sends them.

pub mod deliver;

use std::sync::Arc;

use super::clock::Clock;
use super::ServiceError;
use crate::domain::ids::TenantId;
use crate::domain::webhook::{check_url, EventType, SigningSecret};
use crate::store::webhooks::{Delivery, DeliveryAttempt, EndpointDraft, WebhookEndpoint};
use crate::store::{Page, PageRequest, Store, StoreError};

/// An endpoint as a client sent it (create, or the whole of it on PUT).
#[derive(Debug, Clone)]
pub struct EndpointInput {
    pub url: String,
    pub event_types: Vec<String>,
    /// Absent: true.
    pub enabled: Option<bool>,
}

/// Endpoints one tenant may have. Every event is delivered once per endpoint that
/// lists it, by workers shared with every other tenant: without a cap one API key could
/// multiply its events into a backlog that holds up everyone's deliveries.
pub const MAX_ENDPOINTS_PER_TENANT: u32 = 20;

pub struct Webhooks {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// Plain `http://` endpoint URLs are accepted (a development hub: loopback listen).
    allow_http: bool,
}

impl Webhooks {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, allow_http: bool) -> Self {
        Self {
            store,
            clock,
            allow_http,
        }
    }

    fn draft(&self, input: EndpointInput) -> Result<EndpointDraft, ServiceError> {
        check_url("url", &input.url, self.allow_http)?;
        Ok(EndpointDraft {
            url: input.url,
            event_types: EventType::parse_list("event_types", &input.event_types)?,
            enabled: input.enabled.unwrap_or(true),
        })
    }

    /// Creates an endpoint; its secret is returned here and never again.
    pub async fn create(
        &self,
        tenant: &TenantId,
        input: EndpointInput,
    ) -> Result<(WebhookEndpoint, SigningSecret), ServiceError> {
        let draft = self.draft(input)?;
        let existing = self
            .store
            .list_endpoints(
                tenant,
                PageRequest {
                    limit: MAX_ENDPOINTS_PER_TENANT,
                    before: None,
                },
            )
            .await?;
        if existing.items.len() >= MAX_ENDPOINTS_PER_TENANT as usize {
            return Err(ServiceError::Conflict {
                code: "endpoint_limit",
                message: format!(
                    "a tenant may have {MAX_ENDPOINTS_PER_TENANT} webhook endpoints; delete one first"
                ),
            });
        }
        let secret = SigningSecret::generate();
        let endpoint = self
            .store
            .create_endpoint(
                tenant,
                uuid::Uuid::new_v4(),
                &draft,
                &secret,
                self.clock.now(),
            )
            .await?;
        Ok((endpoint, secret))
    }

    pub async fn get(
        &self,
        tenant: &TenantId,
        id: uuid::Uuid,
    ) -> Result<WebhookEndpoint, ServiceError> {
        self.store
            .get_endpoint(tenant, id)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    pub async fn list(
        &self,
        tenant: &TenantId,
        page: PageRequest,
    ) -> Result<Page<WebhookEndpoint>, ServiceError> {
        Ok(self.store.list_endpoints(tenant, page).await?)
    }

    pub async fn update(
        &self,
        tenant: &TenantId,
        id: uuid::Uuid,
        input: EndpointInput,
    ) -> Result<WebhookEndpoint, ServiceError> {
        let draft = self.draft(input)?;
        Ok(self
            .store
            .update_endpoint(tenant, id, &draft, self.clock.now())
            .await?)
    }

    pub async fn delete(&self, tenant: &TenantId, id: uuid::Uuid) -> Result<(), ServiceError> {
        Ok(self.store.delete_endpoint(tenant, id).await?)
    }

    pub async fn deliveries(
        &self,
        tenant: &TenantId,
        endpoint: uuid::Uuid,
        page: PageRequest,
    ) -> Result<Page<Delivery>, ServiceError> {
        Ok(self.store.list_deliveries(tenant, endpoint, page).await?)
    }

    pub async fn delivery(
        &self,
        tenant: &TenantId,
        endpoint: uuid::Uuid,
        id: uuid::Uuid,
    ) -> Result<(Delivery, Vec<DeliveryAttempt>), ServiceError> {
        self.store
            .get_delivery(tenant, endpoint, id)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    /// Sends a settled delivery again (same `webhook-id`, a new retry window).
    pub async fn replay(
        &self,
        tenant: &TenantId,
        endpoint: uuid::Uuid,
        id: uuid::Uuid,
    ) -> Result<Delivery, ServiceError> {
        match self
            .store
            .replay_delivery(tenant, endpoint, id, self.clock.now())
            .await
        {
            Err(StoreError::Conflict(_)) => Err(ServiceError::Conflict {
                code: "delivery_not_settled",
                message: "the delivery is still pending or being delivered".into(),
            }),
            other => Ok(other?),
        }
    }
}
