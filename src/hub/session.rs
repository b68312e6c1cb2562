//! The transport-independent part of one live connection: what to send next.
//!
//! WebSocket and SSE are thin adapters around [`Session::next`]: the session
//! owns the resume logic (replay, then live, no gap, no duplicate), the unread
//! version filter, token expiry, slow-consumer and shutdown signals.

use std::collections::{HashSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::time::{Instant, Sleep};

use super::frame::{Frame, FrameKind};
use super::registry::{flags, Registration};
use crate::domain::ids::{NotificationId, TenantId, UserId};
use crate::domain::notification::UnreadCount;

/// What the store says a connection must be sent before live events.
pub struct CatchUpFrames {
    /// Notifications after the resume point, oldest first.
    pub notifications: Vec<(NotificationId, Frame)>,
    pub unread: UnreadCount,
}

/// Reads missed notifications from the store; implemented by the service layer.
#[async_trait]
pub trait CatchUp: Send + Sync {
    async fn catch_up(
        &self,
        tenant: &TenantId,
        user: &UserId,
        after: Option<NotificationId>,
    ) -> Result<CatchUpFrames, String>;
    /// The frame for an unread count (shared encoding with live events).
    fn unread_frame(&self, count: UnreadCount) -> Frame;
}

/// Why a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    SlowConsumer,
    TokenExpired,
    Shutdown,
    /// The store could not be read while catching up; the client should retry.
    Unavailable,
}

impl CloseReason {
    /// WebSocket close code and reason, as documented in docs/API.md.
    pub fn ws_code(self) -> (u16, &'static str) {
        match self {
            CloseReason::SlowConsumer => (4008, "slow consumer: resume with since"),
            CloseReason::TokenExpired => (4001, "token expired"),
            CloseReason::Shutdown => (1012, "server restarting: reconnect"),
            CloseReason::Unavailable => (1011, "temporarily unavailable: reconnect"),
        }
    }
}

pub enum Output {
    Frame(Frame),
    Close(CloseReason),
}

pub struct Session {
    pub reg: Registration,
    catch_up: Arc<dyn CatchUp>,
    pending: VecDeque<Frame>,
    /// Notification ids recently sent on this connection (replayed or live): a copy
    /// arriving again (live after a replay, or in a catch-up) is a duplicate.
    sent: SentIds,
    /// Newest notification this connection has been sent (or its start point).
    last_seen: NotificationId,
    unread_version: i64,
    expiry: Pin<Box<Sleep>>,
}

/// How many sent ids a connection remembers beyond its initial replay. A catch-up
/// that reaches further back than this may repeat a notification (never skip one);
/// clients also drop repeated ids.
const SENT_MEMORY: usize = 256;

/// A bounded set of sent ids, oldest evicted first. Empty (no allocation) until used.
#[derive(Default)]
struct SentIds {
    order: VecDeque<NotificationId>,
    set: HashSet<NotificationId>,
    capacity: usize,
}

impl SentIds {
    /// Records `id`; false if it was already sent.
    fn insert(&mut self, id: NotificationId) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > self.capacity.max(SENT_MEMORY) {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

impl Session {
    /// Where a catch-up starts: the newest id sent, or earlier if the bus said events
    /// from an earlier point were lost (a node's failed publishes).
    fn resync_point(&self) -> NotificationId {
        match self.reg.signal.take_resync_after() {
            Some(after) => after.min(self.last_seen),
            None => self.last_seen,
        }
    }

    /// Starts a session: the hello frame, then everything after `since` (if given),
    /// then live events. Call after `reg` exists, so nothing published between the
    /// store read and the first live event can fall in a gap.
    pub async fn start(
        reg: Registration,
        catch_up: Arc<dyn CatchUp>,
        since: Option<NotificationId>,
        hello: impl FnOnce(UnreadCount) -> Frame,
        expires_in: std::time::Duration,
    ) -> Result<Self, String> {
        let first = catch_up.catch_up(&reg.tenant, &reg.user, since).await?;
        let mut session = Session {
            reg,
            catch_up,
            pending: VecDeque::with_capacity(first.notifications.len() + 1),
            // The first replay is remembered whole, so its live copies are all dropped.
            sent: SentIds {
                capacity: first.notifications.len(),
                ..SentIds::default()
            },
            last_seen: since.unwrap_or(NotificationId::from_seq(first.unread.head)),
            unread_version: first.unread.version,
            expiry: Box::pin(tokio::time::sleep_until(Instant::now() + expires_in)),
        };
        session.pending.push_back(hello(first.unread));
        session.queue_replay(first.notifications);
        Ok(session)
    }

    fn queue_replay(&mut self, notifications: Vec<(NotificationId, Frame)>) {
        for (id, frame) in notifications {
            if self.sent.insert(id) {
                self.last_seen = self.last_seen.max(id);
                self.pending.push_back(frame);
            }
        }
    }

    /// Whether a live frame should be sent, updating what the session has seen.
    fn admit(&mut self, frame: &Frame) -> bool {
        match frame.kind() {
            FrameKind::Notification(id) => {
                if !self.sent.insert(id) {
                    return false;
                }
                self.last_seen = self.last_seen.max(id);
                true
            }
            FrameKind::UnreadCount(c) => {
                if c.version <= self.unread_version {
                    return false;
                }
                self.unread_version = c.version;
                true
            }
            _ => true,
        }
    }

    /// A frame that is ready now, without waiting (to batch writes before a flush).
    pub fn try_next(&mut self) -> Option<Frame> {
        if self.reg.signal.peek() != 0 {
            return None;
        }
        if let Some(f) = self.pending.pop_front() {
            return Some(f);
        }
        while let Ok(f) = self.reg.rx.try_recv() {
            if self.admit(&f) {
                return Some(f);
            }
        }
        None
    }

    /// The next thing to send. Cancel-safe: signals are flags that stay set until handled.
    pub async fn next(&mut self) -> Output {
        loop {
            let raised = self.reg.signal.peek();
            if raised & flags::SHUTDOWN != 0 {
                return Output::Close(CloseReason::Shutdown);
            }
            if raised & flags::SLOW != 0 {
                return Output::Close(CloseReason::SlowConsumer);
            }
            if raised & flags::EXPIRED != 0 {
                return Output::Close(CloseReason::TokenExpired);
            }
            if raised & flags::RESYNC != 0 {
                match self
                    .catch_up
                    .catch_up(&self.reg.tenant, &self.reg.user, Some(self.resync_point()))
                    .await
                {
                    Ok(more) => {
                        self.reg.signal.clear(flags::RESYNC);
                        self.queue_replay(more.notifications);
                        if more.unread.version > self.unread_version {
                            self.unread_version = more.unread.version;
                            self.pending
                                .push_back(self.catch_up.unread_frame(more.unread));
                        }
                    }
                    Err(_) => return Output::Close(CloseReason::Unavailable),
                }
            }
            if let Some(f) = self.pending.pop_front() {
                return Output::Frame(f);
            }
            tokio::select! {
                biased;
                _ = self.reg.signal.wait() => continue,
                _ = &mut self.expiry => return Output::Close(CloseReason::TokenExpired),
                f = self.reg.rx.recv() => match f {
                    Some(f) if self.admit(&f) => return Output::Frame(f),
                    Some(_) => continue,
                    None => return Output::Close(CloseReason::Shutdown),
                },
            }
        }
    }
}
