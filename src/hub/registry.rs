//! The per-user connection registry of this node.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};

use dashmap::DashMap;
use tokio::sync::{mpsc, Notify};

use super::frame::Frame;
use crate::bus::{Bus, BusError, BusSink, Delivery, Envelope};
use crate::domain::ids::{ConnectionId, NodeId, NotificationId, TenantId, UserId};

/// Why a session must stop or act, set by the hub and read by the session.
pub(crate) mod flags {
    /// The connection's queue overflowed: close with 4008; the client resumes with `since`.
    pub(crate) const SLOW: u8 = 1;
    /// Events may have been lost upstream (bus outage): catch up from the store.
    pub(crate) const RESYNC: u8 = 2;
    /// The node is shutting down: tell the client to reconnect elsewhere.
    pub(crate) const SHUTDOWN: u8 = 4;
    /// The user's tokens were revoked: close as on token expiry (4001).
    pub(crate) const EXPIRED: u8 = 8;
}

/// Out-of-band signals for one connection. Flags are the truth; `notify` only wakes.
pub struct Signal {
    flags: AtomicU8,
    notify: Notify,
    /// With RESYNC: catch up from at most this seq (i64::MAX: from the newest sent).
    resync_after: AtomicI64,
}

impl Default for Signal {
    fn default() -> Self {
        Self {
            flags: AtomicU8::new(0),
            notify: Notify::new(),
            resync_after: AtomicI64::new(i64::MAX),
        }
    }
}

impl Signal {
    pub(crate) fn raise(&self, flag: u8) {
        self.flags.fetch_or(flag, Ordering::AcqRel);
        self.notify.notify_one();
    }

    /// Asks for a catch-up from `after` (the earliest such request wins).
    pub(crate) fn raise_resync(&self, after: Option<NotificationId>) {
        if let Some(a) = after {
            self.resync_after.fetch_min(a.seq(), Ordering::AcqRel);
        }
        self.raise(flags::RESYNC);
    }

    pub(crate) fn take_resync_after(&self) -> Option<NotificationId> {
        match self.resync_after.swap(i64::MAX, Ordering::AcqRel) {
            i64::MAX => None,
            seq => Some(NotificationId::from_seq(seq)),
        }
    }

    pub(crate) fn peek(&self) -> u8 {
        self.flags.load(Ordering::Acquire)
    }

    pub(crate) fn clear(&self, flag: u8) {
        self.flags.fetch_and(!flag, Ordering::AcqRel);
    }

    pub(crate) async fn wait(&self) {
        self.notify.notified().await;
    }
}

#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Frames queued per connection before it counts as a slow consumer. Overflow
    /// policy: the connection is closed with 4008 (never blocks the publisher,
    /// never drops silently); the client resumes from the store.
    pub queue_capacity: usize,
}

struct Conn {
    id: ConnectionId,
    tx: mpsc::Sender<Frame>,
    signal: Arc<Signal>,
}

type UserKey = (TenantId, UserId);

pub struct Hub {
    node: NodeId,
    config: HubConfig,
    users: DashMap<UserKey, Vec<Conn>>,
    next_id: AtomicU64,
    bus: Arc<dyn Bus>,
    connections: metrics::Gauge,
}

/// A live connection's membership in the hub; unregisters when dropped.
pub struct Registration {
    hub: Arc<Hub>,
    pub tenant: TenantId,
    pub user: UserId,
    pub id: ConnectionId,
    pub(crate) rx: mpsc::Receiver<Frame>,
    pub(crate) signal: Arc<Signal>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.unregister(&self.tenant, &self.user, self.id);
    }
}

impl Hub {
    /// Creates the hub and attaches it to the bus.
    pub fn new(node: NodeId, config: HubConfig, bus: Arc<dyn Bus>) -> Arc<Self> {
        let hub = Arc::new(Hub {
            node,
            config,
            users: DashMap::new(),
            next_id: AtomicU64::new(1),
            bus,
            connections: metrics::gauge!("tidings_connections"),
        });
        let sink: Arc<dyn BusSink> = hub.clone();
        hub.bus
            .attach(node, Arc::downgrade(&sink) as Weak<dyn BusSink>);
        hub
    }

    pub fn node(&self) -> NodeId {
        self.node
    }

    pub fn bus(&self) -> &Arc<dyn Bus> {
        &self.bus
    }

    /// Registers a connection. When this returns, every event published for the
    /// user from now on, on any node, reaches the returned queue (or overflows it).
    pub async fn register(
        self: &Arc<Self>,
        tenant: TenantId,
        user: UserId,
    ) -> Result<Registration, BusError> {
        self.bus.subscribe(&tenant, &user).await?;
        let id = ConnectionId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::channel(self.config.queue_capacity);
        let signal = Arc::new(Signal::default());
        self.users
            .entry((tenant.clone(), user.clone()))
            .or_default()
            .push(Conn {
                id,
                tx,
                signal: signal.clone(),
            });
        self.connections.increment(1.0);
        Ok(Registration {
            hub: self.clone(),
            tenant,
            user,
            id,
            rx,
            signal,
        })
    }

    fn unregister(&self, tenant: &TenantId, user: &UserId, id: ConnectionId) {
        let key = (tenant.clone(), user.clone());
        if let Some(mut conns) = self.users.get_mut(&key) {
            conns.retain(|c| c.id != id);
        }
        self.users.remove_if(&key, |_, conns| conns.is_empty());
        self.connections.decrement(1.0);
        self.bus.unsubscribe(tenant, user);
    }

    /// Delivers to this node's connections of the users named, then to other nodes.
    pub async fn publish(&self, tenant: TenantId, deliveries: Vec<Delivery>) {
        if deliveries.is_empty() {
            return;
        }
        self.deliver_local(&tenant, &deliveries);
        let envelope = Envelope {
            origin: self.node,
            tenant,
            deliveries,
        };
        if let Err(e) = self.bus.publish(&envelope).await {
            // The events are stored; other nodes catch up when the bus returns.
            metrics::counter!("tidings_bus_publish_errors_total").increment(1);
            tracing::warn!(error = %e, "bus publish failed");
        }
    }

    fn deliver_local(&self, tenant: &TenantId, deliveries: &[Delivery]) {
        // One key buffer for the whole envelope: `clone_from` reuses its allocation.
        let mut key: Option<UserKey> = None;
        for d in deliveries {
            let key = match &mut key {
                Some(k) => {
                    k.1.clone_from(&d.user);
                    &*k
                }
                None => &*key.insert((tenant.clone(), d.user.clone())),
            };
            if let Some(conns) = self.users.get(key) {
                for c in conns.iter() {
                    match c.tx.try_send(d.frame.clone()) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            if c.signal.peek() & flags::SLOW == 0 {
                                metrics::counter!("tidings_slow_consumer_closes_total")
                                    .increment(1);
                            }
                            c.signal.raise(flags::SLOW);
                        }
                        // The session is ending; its Registration unregisters it.
                        Err(mpsc::error::TrySendError::Closed(_)) => {}
                    }
                }
            }
        }
    }

    /// Number of live connections on this node.
    pub fn connection_count(&self) -> usize {
        self.users.iter().map(|e| e.value().len()).sum()
    }

    fn raise_all(&self, flag: u8) {
        for entry in self.users.iter() {
            for c in entry.value() {
                c.signal.raise(flag);
            }
        }
    }

    /// Asks every connection to close with "reconnect elsewhere" (graceful shutdown).
    pub fn shutdown_all(&self) {
        self.raise_all(flags::SHUTDOWN);
    }

    /// Closes this node's connections of one user as their token's expiry does
    /// (4001, SSE `token_expired`): their tokens were revoked. Returns how many.
    pub fn expire_user(&self, tenant: &TenantId, user: &UserId) -> usize {
        let key = (tenant.clone(), user.clone());
        self.users.get(&key).map_or(0, |conns| {
            conns.iter().for_each(|c| c.signal.raise(flags::EXPIRED));
            conns.len()
        })
    }
}

impl BusSink for Hub {
    fn deliver(&self, envelope: &Envelope) {
        if envelope.origin != self.node {
            self.deliver_local(&envelope.tenant, &envelope.deliveries);
        }
    }

    fn resync(&self, tenant: Option<&TenantId>, after: Option<NotificationId>) {
        metrics::counter!("tidings_resyncs_total").increment(1);
        for entry in self.users.iter() {
            if tenant.is_none_or(|t| *t == entry.key().0) {
                for c in entry.value() {
                    c.signal.raise_resync(after);
                }
            }
        }
    }
}
