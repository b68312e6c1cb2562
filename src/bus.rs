//! The cross-node port: how an event published on one node reaches connections on others.
//!
//! A node delivers its own events to its local connections directly (see
//! [`crate::hub::Hub::publish`]) and hands them to the bus for every *other* node;
//! a node ignores envelopes that carry its own [`NodeId`], so each connection
//! receives each event exactly once.

pub mod codec;
pub mod memory;
pub mod redis;

use std::sync::Weak;

use async_trait::async_trait;

use crate::domain::ids::{NodeId, NotificationId, TenantId, UserId};
use crate::wire::Frame;

/// One event for one user.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub user: UserId,
    pub frame: Frame,
}

/// Events for users of one tenant, published together (one bus message for a whole
/// group-commit batch or a role broadcast).
#[derive(Debug, Clone)]
pub struct Envelope {
    pub origin: NodeId,
    pub tenant: TenantId,
    pub deliveries: Vec<Delivery>,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The broker cannot be reached; events are stored, and nodes catch up when it returns.
    #[error("bus unavailable: {0}")]
    Unavailable(String),
}

/// Where a bus hands what it receives: the local hub.
pub trait BusSink: Send + Sync {
    /// An envelope from another node.
    fn deliver(&self, envelope: &Envelope);
    /// Messages may have been lost (the broker restarted, or a node could not
    /// publish): local connections of `tenant` (all, if `None`) must catch up from the store.
    /// `after`: the catch-up must start at or before this id (the oldest lost event).
    fn resync(&self, tenant: Option<&TenantId>, after: Option<NotificationId>);
}

#[async_trait]
pub trait Bus: Send + Sync {
    /// Connects the bus to the local hub. Called once, before any traffic.
    fn attach(&self, node: NodeId, sink: Weak<dyn BusSink>);
    /// Sends an envelope to every other node that has a connection of its users.
    async fn publish(&self, envelope: &Envelope) -> Result<(), BusError>;
    /// Called for every new connection of `user`; returns once this node is certain
    /// to receive events published for that user from now on. Backends count
    /// references: the first connection subscribes, the last one unsubscribes.
    async fn subscribe(&self, tenant: &TenantId, user: &UserId) -> Result<(), BusError>;
    /// Called when a connection of `user` ends.
    fn unsubscribe(&self, tenant: &TenantId, user: &UserId);
    /// Whether the broker is reachable right now (for `/readyz`).
    fn is_healthy(&self) -> bool;
    fn name(&self) -> &'static str;
}
