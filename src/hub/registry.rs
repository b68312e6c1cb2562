//! The per-user connection registry of this node.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use dashmap::DashMap;
use tokio::sync::{mpsc, Notify};

use crate::bus::{Bus, BusError, BusSink, Delivery, Envelope};
use crate::domain::ids::{ConnectionId, NodeId, NotificationId, TenantId, UserId};
use crate::wire::Frame;

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
    /// Bytes of live frames queued per connection before it counts as a slow
    /// consumer (same policy as `queue_capacity`): a frame count alone lets a few
    /// large notifications hold megabytes per never-reading client.
    pub queue_bytes: usize,
    /// Connections one user may hold on this node; the next one is refused.
    pub max_connections_per_user: usize,
}

/// Why a connection could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("this user already has {0} connections on this node")]
    TooManyConnections(usize),
}

struct Conn {
    id: ConnectionId,
    tx: mpsc::Sender<Frame>,
    signal: Arc<Signal>,
    queued: Arc<QueuedBytes>,
}

/// Bytes held for one connection: live frames in its queue and replayed frames in
/// its session, not yet written. Mirrored in the hub's total (`tidings_queued_bytes`).
#[derive(Default)]
pub(crate) struct QueuedBytes(AtomicUsize);

type UserKey = (TenantId, UserId);

pub struct Hub {
    node: NodeId,
    config: HubConfig,
    users: DashMap<UserKey, Vec<Conn>>,
    next_id: AtomicU64,
    bus: Arc<dyn Bus>,
    connections: metrics::Gauge,
    /// Sum of every connection's [`QueuedBytes`].
    queued_total: AtomicUsize,
    queued_gauge: metrics::Gauge,
}

/// A live connection's membership in the hub; unregisters when dropped.
pub struct Registration {
    hub: Arc<Hub>,
    pub tenant: TenantId,
    pub user: UserId,
    pub id: ConnectionId,
    pub(crate) rx: mpsc::Receiver<Frame>,
    pub(crate) signal: Arc<Signal>,
    queued: Arc<QueuedBytes>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Unregistered first: no delivery can add bytes after this.
        self.hub.unregister(&self.tenant, &self.user, self.id);
        let left = self.queued.0.swap(0, Ordering::AcqRel);
        self.hub.release_bytes(left);
    }
}

impl Registration {
    /// Counts `n` bytes held by the session (a replay page).
    pub(crate) fn hold_bytes(&self, n: usize) {
        self.queued.0.fetch_add(n, Ordering::AcqRel);
        self.hub.queued_total.fetch_add(n, Ordering::AcqRel);
        self.hub.queued_gauge.increment(n as f64);
    }

    /// `n` bytes have left the connection's queue or replay page.
    pub(crate) fn release_bytes(&self, n: usize) {
        self.queued.0.fetch_sub(n, Ordering::AcqRel);
        self.hub.release_bytes(n);
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
            queued_total: AtomicUsize::new(0),
            queued_gauge: metrics::gauge!("tidings_queued_bytes"),
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
    ) -> Result<Registration, RegisterError> {
        let key = (tenant.clone(), user.clone());
        // Checked before subscribing (cheap refusal), and again under the entry's lock.
        self.check_user_cap(self.users.get(&key).map_or(0, |c| c.len()))?;
        self.bus.subscribe(&tenant, &user).await?;
        let id = ConnectionId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::channel(self.config.queue_capacity);
        let signal = Arc::new(Signal::default());
        let queued = Arc::new(QueuedBytes::default());
        {
            let mut conns = self.users.entry(key).or_default();
            if let Err(e) = self.check_user_cap(conns.len()) {
                drop(conns);
                self.users
                    .remove_if(&(tenant.clone(), user.clone()), |_, c| c.is_empty());
                self.bus.unsubscribe(&tenant, &user);
                return Err(e);
            }
            conns.push(Conn {
                id,
                tx,
                signal: signal.clone(),
                queued: queued.clone(),
            });
        }
        self.connections.increment(1.0);
        Ok(Registration {
            hub: self.clone(),
            tenant,
            user,
            id,
            rx,
            signal,
            queued,
        })
    }

    fn check_user_cap(&self, open: usize) -> Result<(), RegisterError> {
        let cap = self.config.max_connections_per_user;
        if open >= cap {
            metrics::counter!("tidings_connections_refused_total", "reason" => "per_user")
                .increment(1);
            return Err(RegisterError::TooManyConnections(cap));
        }
        Ok(())
    }

    fn release_bytes(&self, n: usize) {
        self.queued_total.fetch_sub(n, Ordering::AcqRel);
        self.queued_gauge.decrement(n as f64);
    }

    /// Bytes queued for this node's connections, not yet written (live queues and
    /// replay pages); bounded per connection by `queue_bytes` plus one replay page.
    pub fn queued_bytes(&self) -> usize {
        self.queued_total.load(Ordering::Acquire)
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
                    self.enqueue(c, &d.frame);
                }
            }
        }
    }

    /// Queues one frame for one connection, or marks it a slow consumer when its
    /// queue is full in frames or in bytes.
    fn enqueue(&self, c: &Conn, frame: &Frame) {
        let len = frame.byte_len();
        let held = c.queued.0.fetch_add(len, Ordering::AcqRel) + len;
        if held > self.config.queue_bytes {
            c.queued.0.fetch_sub(len, Ordering::AcqRel);
            return Self::mark_slow(c);
        }
        match c.tx.try_send(frame.clone()) {
            Ok(()) => {
                self.queued_total.fetch_add(len, Ordering::AcqRel);
                self.queued_gauge.increment(len as f64);
            }
            Err(e) => {
                c.queued.0.fetch_sub(len, Ordering::AcqRel);
                match e {
                    mpsc::error::TrySendError::Full(_) => Self::mark_slow(c),
                    // The session is ending; its Registration unregisters it.
                    mpsc::error::TrySendError::Closed(_) => {}
                }
            }
        }
    }

    fn mark_slow(c: &Conn) {
        if c.signal.peek() & flags::SLOW == 0 {
            metrics::counter!("tidings_slow_consumer_closes_total").increment(1);
        }
        c.signal.raise(flags::SLOW);
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
