//! The in-process bus: the embedded default.
//!
//! A single node needs no fan-out beyond its own hub, so publishing reaches only
//! the *other* hubs attached to the same [`MemoryNetwork`]: none in production,
//! several when tests run many nodes in one process.

use std::sync::{Arc, RwLock, Weak};

use async_trait::async_trait;

use super::{Bus, BusError, BusSink, Envelope};
use crate::domain::ids::{NodeId, TenantId, UserId};

/// A node on the network: its id and its hub (weak, so a stopped node just drops out).
type Member = (NodeId, Weak<dyn BusSink>);

/// Hubs that see each other's events. std `RwLock`: held only to copy the list, never across `.await`.
#[derive(Default, Clone)]
pub struct MemoryNetwork {
    nodes: Arc<RwLock<Vec<Member>>>,
}

impl MemoryNetwork {
    pub fn new() -> Self {
        Self::default()
    }

    /// A bus endpoint for one more node on this network.
    pub fn bus(&self) -> MemoryBus {
        MemoryBus {
            network: self.clone(),
        }
    }
}

pub struct MemoryBus {
    network: MemoryNetwork,
}

impl MemoryBus {
    /// A bus for a node that is alone.
    pub fn standalone() -> Self {
        MemoryNetwork::new().bus()
    }
}

#[async_trait]
impl Bus for MemoryBus {
    fn attach(&self, node: NodeId, sink: Weak<dyn BusSink>) {
        let mut nodes = self
            .network
            .nodes
            .write()
            .unwrap_or_else(|e| e.into_inner());
        nodes.retain(|(_, s)| s.strong_count() > 0);
        nodes.push((node, sink));
    }

    async fn publish(&self, envelope: &Envelope) -> Result<(), BusError> {
        let others: Vec<Arc<dyn BusSink>> = {
            let nodes = self.network.nodes.read().unwrap_or_else(|e| e.into_inner());
            nodes
                .iter()
                .filter(|(id, _)| *id != envelope.origin)
                .filter_map(|(_, s)| s.upgrade())
                .collect()
        };
        for sink in others {
            sink.deliver(envelope);
        }
        Ok(())
    }

    async fn subscribe(&self, _tenant: &TenantId, _user: &UserId) -> Result<(), BusError> {
        Ok(())
    }

    fn unsubscribe(&self, _tenant: &TenantId, _user: &UserId) {}

    fn is_healthy(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}
