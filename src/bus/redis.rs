//! The Redis bus: fan-out between hub nodes over sharded pub/sub (fred).
//!
//! Channels (sharded, so the same code runs on a Redis Cluster; `/` cannot occur in ids):
//! - `tidings/u/{tenant}/{user}`: events for one user. A node is subscribed while it
//!   holds at least one connection of that user.
//! - `tidings/t/{tenant}`: envelopes for many users at once (role broadcasts, big
//!   batches): one message instead of thousands. A node is subscribed while it holds
//!   at least one connection of the tenant, and delivers what concerns its own users.
//!
//! Subscriptions are reference-counted by one actor task, so a subscribe and an
//! unsubscribe of the same channel are applied in the order they were asked.
//! A node ignores envelopes it published itself (it delivered them locally).
//!
//! **Nothing lost:** Redis pub/sub is at-most-once. When the subscriber reconnects
//! (Redis restarted), the node re-subscribes, then asks every local connection to
//! catch up from the store. When a publish fails, the node remembers the tenant and,
//! once Redis is back, tells the other nodes to catch that tenant's connections up.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fred::clients::{Client, SubscriberClient};
use fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use fred::types::config::{Config, ReconnectPolicy};
use fred::types::{Builder, Value};
use tokio::sync::{mpsc, oneshot};

use super::codec::{self, Decoded};
use super::{Bus, BusError, BusSink, Delivery, Envelope};
use crate::domain::ids::{NodeId, NotificationId, TenantId, UserId};
use crate::wire::FrameKind;

/// Envelopes naming more distinct users than this go on the tenant channel.
const TENANT_CHANNEL_MIN_USERS: usize = 16;
/// How long a publish may wait for Redis before the events are left to catch-up.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Messages buffered between fred's reader and our dispatcher; overflow means loss,
/// which triggers a catch-up from the store.
const MESSAGE_BUFFER: usize = 65_536;

fn user_channel(tenant: &TenantId, user: &UserId) -> String {
    format!("tidings/u/{tenant}/{user}")
}

fn tenant_channel(tenant: &TenantId) -> String {
    format!("tidings/t/{tenant}")
}

enum Command {
    Subscribe {
        channels: [String; 2],
        reply: oneshot::Sender<Result<(), BusError>>,
    },
    Unsubscribe {
        channels: [String; 2],
    },
}

struct Shared {
    node: OnceLock<NodeId>,
    sink: OnceLock<Weak<dyn BusSink>>,
    /// Tenants whose envelopes could not be published; announced when Redis is back.
    /// std Mutex: held for an insert or a take, never across `.await`.
    /// Per tenant: the seq before the oldest notification that failed (i64::MAX if only
    /// counts or read events failed: then connections catch up from where they are).
    missed: Mutex<BTreeMap<TenantId, i64>>,
    healthy: AtomicBool,
}

impl Shared {
    fn sink(&self) -> Option<Arc<dyn BusSink>> {
        self.sink.get().and_then(Weak::upgrade)
    }
}

pub struct RedisBus {
    publisher: Client,
    actor: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
}

impl RedisBus {
    /// Connects (failing fast if Redis cannot be reached at start) and starts the
    /// subscriber, dispatcher and reconnect tasks. `url`: `redis://`, `rediss://`
    /// or `redis-cluster://`.
    pub async fn connect(url: &str) -> Result<Self, BusError> {
        let unavailable = |e: fred::error::Error| BusError::Unavailable(e.to_string());
        let config = Config::from_url(url).map_err(unavailable)?;
        let mut builder = Builder::from_config(config);
        builder
            .with_performance_config(|p| {
                p.default_command_timeout = COMMAND_TIMEOUT;
                p.broadcast_channel_capacity = MESSAGE_BUFFER;
            })
            .with_connection_config(|c| {
                c.connection_timeout = COMMAND_TIMEOUT;
                c.internal_command_timeout = COMMAND_TIMEOUT;
                c.max_command_attempts = 1;
            })
            // Forever, 100 ms doubling up to 5 s.
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2));
        let publisher = builder.build().map_err(unavailable)?;
        let subscriber = builder.build_subscriber_client().map_err(unavailable)?;
        publisher.init().await.map_err(unavailable)?;
        subscriber.init().await.map_err(unavailable)?;

        let shared = Arc::new(Shared {
            node: OnceLock::new(),
            sink: OnceLock::new(),
            missed: Mutex::new(BTreeMap::new()),
            healthy: AtomicBool::new(true),
        });
        let (actor, commands) = mpsc::unbounded_channel();
        tokio::spawn(subscriptions(subscriber.clone(), commands));
        tokio::spawn(dispatch(subscriber.clone(), shared.clone()));
        tokio::spawn(watch_subscriber(subscriber, shared.clone()));
        tokio::spawn(watch_publisher(publisher.clone(), shared.clone()));
        Ok(Self {
            publisher,
            actor,
            shared,
        })
    }

    async fn spublish(&self, channel: String, payload: Vec<u8>) -> Result<(), fred::error::Error> {
        self.publisher
            .spublish::<i64, _, _>(channel, Value::Bytes(Bytes::from(payload)))
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl Bus for RedisBus {
    fn attach(&self, node: NodeId, sink: Weak<dyn BusSink>) {
        let _ = self.shared.node.set(node);
        let _ = self.shared.sink.set(sink);
    }

    async fn publish(&self, envelope: &Envelope) -> Result<(), BusError> {
        let result = if !self.publisher.is_connected() {
            Err(BusError::Unavailable("redis is not connected".into()))
        } else {
            publish_envelope(self, envelope).await
        };
        if result.is_err() {
            let oldest = envelope
                .deliveries
                .iter()
                .filter_map(|d| match d.frame.kind() {
                    FrameKind::Notification(id) => Some(id.seq() - 1),
                    _ => None,
                })
                .min()
                .unwrap_or(i64::MAX);
            let mut missed = self.shared.missed.lock().unwrap_or_else(|e| e.into_inner());
            let entry = missed.entry(envelope.tenant.clone()).or_insert(i64::MAX);
            *entry = (*entry).min(oldest);
        }
        result
    }

    async fn subscribe(&self, tenant: &TenantId, user: &UserId) -> Result<(), BusError> {
        let (reply, done) = oneshot::channel();
        let channels = [user_channel(tenant, user), tenant_channel(tenant)];
        self.actor
            .send(Command::Subscribe { channels, reply })
            .map_err(|_| BusError::Unavailable("bus stopped".into()))?;
        done.await
            .map_err(|_| BusError::Unavailable("bus stopped".into()))?
    }

    fn unsubscribe(&self, tenant: &TenantId, user: &UserId) {
        let channels = [user_channel(tenant, user), tenant_channel(tenant)];
        let _ = self.actor.send(Command::Unsubscribe { channels });
    }

    fn is_healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Acquire) && self.publisher.is_connected()
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}

async fn publish_envelope(bus: &RedisBus, envelope: &Envelope) -> Result<(), BusError> {
    let fail = |e: fred::error::Error| BusError::Unavailable(e.to_string());
    let mut by_user: HashMap<&UserId, Vec<Delivery>> = HashMap::new();
    for d in &envelope.deliveries {
        by_user.entry(&d.user).or_default().push(d.clone());
    }
    if by_user.len() > TENANT_CHANNEL_MIN_USERS {
        return bus
            .spublish(tenant_channel(&envelope.tenant), codec::encode(envelope))
            .await
            .map_err(fail);
    }
    // fred pipelines concurrent commands on one connection: one round trip for all.
    let sends = by_user.into_iter().map(|(user, deliveries)| {
        let one = Envelope {
            origin: envelope.origin,
            tenant: envelope.tenant.clone(),
            deliveries,
        };
        bus.spublish(user_channel(&envelope.tenant, user), codec::encode(&one))
    });
    for r in futures_util::future::join_all(sends).await {
        r.map_err(fail)?;
    }
    Ok(())
}

/// The subscription actor: counts references per channel; subscribes on 0 → 1 and
/// unsubscribes on 1 → 0, in request order.
async fn subscriptions(
    subscriber: SubscriberClient,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut counts: HashMap<String, usize> = HashMap::new();
    while let Some(cmd) = commands.recv().await {
        match cmd {
            Command::Subscribe { channels, reply } => {
                let fresh: Vec<String> = channels
                    .iter()
                    .filter(|c| !counts.contains_key(*c))
                    .cloned()
                    .collect();
                let result = if fresh.is_empty() {
                    Ok(())
                } else {
                    ssubscribe(&subscriber, fresh).await
                };
                if result.is_ok() {
                    for c in channels {
                        *counts.entry(c).or_default() += 1;
                    }
                }
                let _ = reply.send(result);
            }
            Command::Unsubscribe { channels } => {
                let mut gone = Vec::new();
                for c in channels {
                    if let Some(n) = counts.get_mut(&c) {
                        *n -= 1;
                        if *n == 0 {
                            counts.remove(&c);
                            gone.push(c);
                        }
                    }
                }
                if !gone.is_empty() {
                    for group in by_slot(gone) {
                        if let Err(e) = subscriber.sunsubscribe(group).await {
                            // fred also drops it from its resubscribe set; a stale
                            // subscription only costs a filtered message.
                            tracing::warn!(error = %e, "redis unsubscribe failed");
                        }
                    }
                }
            }
        }
    }
}

/// SSUBSCRIBE takes channels of one hash slot at a time on a cluster.
fn by_slot(channels: Vec<String>) -> Vec<Vec<String>> {
    let mut groups: HashMap<u16, Vec<String>> = HashMap::new();
    for c in channels {
        groups
            .entry(fred::util::redis_keyslot(c.as_bytes()))
            .or_default()
            .push(c);
    }
    groups.into_values().collect()
}

async fn ssubscribe(subscriber: &SubscriberClient, channels: Vec<String>) -> Result<(), BusError> {
    for group in by_slot(channels) {
        subscriber
            .ssubscribe(group)
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
    }
    Ok(())
}

/// Hands received envelopes to the hub; an empty one means "catch this tenant up".
async fn dispatch(subscriber: SubscriberClient, shared: Arc<Shared>) {
    let mut rx = subscriber.message_rx();
    loop {
        match rx.recv().await {
            Ok(message) => {
                let Some(bytes) = message.value.as_bytes() else {
                    continue;
                };
                let sink = shared.sink();
                match codec::decode(bytes) {
                    Ok(Decoded::Events(env)) if Some(&env.origin) == shared.node.get() => {}
                    Ok(Decoded::Events(env)) => {
                        if let Some(sink) = sink {
                            sink.deliver(&env);
                        }
                    }
                    Ok(Decoded::CatchUp { origin, .. }) if Some(&origin) == shared.node.get() => {}
                    Ok(Decoded::CatchUp { tenant, after, .. }) => {
                        if let Some(sink) = sink {
                            sink.resync(Some(&tenant), after);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, channel = %message.channel, "dropping undecodable bus message")
                    }
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(
                    lost = n,
                    "bus dispatcher fell behind; catching every connection up"
                );
                if let Some(sink) = shared.sink() {
                    sink.resync(None, None);
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// After the subscriber reconnects: re-subscribe, then catch every connection up,
/// in that order, so nothing published in between falls in a gap.
async fn watch_subscriber(subscriber: SubscriberClient, shared: Arc<Shared>) {
    let mut reconnects = subscriber.reconnect_rx();
    let mut errors = subscriber.error_rx();
    loop {
        tokio::select! {
            r = reconnects.recv() => {
                if r.is_err() { return; }
                // Not `resubscribe_all()`: it sends SUBSCRIBE with an empty list when there are
                // no plain channels, which Redis rejects before the sharded ones are restored.
                let channels: Vec<String> = subscriber.tracked_shard_channels().into_iter().map(|c| c.to_string()).collect();
                match ssubscribe(&subscriber, channels).await {
                    Ok(()) => {
                        shared.healthy.store(true, Ordering::Release);
                        tracing::info!("redis subscriber reconnected; catching connections up");
                        if let Some(sink) = shared.sink() {
                            sink.resync(None, None);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "redis resubscribe failed"),
                }
            }
            e = errors.recv() => {
                if e.is_err() { return; }
                shared.healthy.store(false, Ordering::Release);
            }
        }
    }
}

/// After the publisher reconnects: tell other nodes which tenants' events they missed.
async fn watch_publisher(publisher: Client, shared: Arc<Shared>) {
    let mut reconnects = publisher.reconnect_rx();
    while reconnects.recv().await.is_ok() {
        let missed = std::mem::take(&mut *shared.missed.lock().unwrap_or_else(|e| e.into_inner()));
        let Some(node) = shared.node.get().copied() else {
            continue;
        };
        for (tenant, oldest) in missed {
            let after = (oldest != i64::MAX).then_some(NotificationId::from_seq(oldest));
            let payload = Value::Bytes(Bytes::from(codec::encode_hint(node, &tenant, after)));
            if let Err(e) = publisher
                .spublish::<i64, _, _>(tenant_channel(&tenant), payload)
                .await
            {
                tracing::warn!(error = %e, tenant = %tenant, "could not announce missed events");
                let mut m = shared.missed.lock().unwrap_or_else(|e| e.into_inner());
                let entry = m.entry(tenant).or_insert(i64::MAX);
                *entry = (*entry).min(oldest);
            }
        }
    }
}
