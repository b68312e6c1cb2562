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

use super::registry::{flags, Registration};
use crate::domain::ids::{NotificationId, TenantId, UserId};
use crate::domain::notification::UnreadCount;
use crate::wire::{Frame, FrameKind};

/// Reads missed notifications from the store; implemented by the service layer.
#[async_trait]
pub trait CatchUp: Send + Sync {
    /// The user's unread count. Read before the first replay page: anything
    /// committed after it arrives live (the connection is registered) or in the replay.
    async fn unread(&self, tenant: &TenantId, user: &UserId) -> Result<UnreadCount, String>;
    /// Up to `limit` notifications after `after`, oldest first, as frames.
    async fn page(
        &self,
        tenant: &TenantId,
        user: &UserId,
        after: NotificationId,
        limit: u32,
    ) -> Result<Vec<(NotificationId, Frame)>, String>;
    /// The frame for an unread count (shared encoding with live events).
    fn unread_frame(&self, count: UnreadCount) -> Frame;
}

/// How a session replays: page by page, so a resume from far back holds one page
/// (`page` notifications) in memory, not the whole history.
#[derive(Debug, Clone, Copy)]
pub struct ReplayLimits {
    /// Notifications read per store query; the next page is read once this one is written.
    pub page: u32,
    /// Most notifications one resume replays; a client further behind gets the rest
    /// on its next resume (or through the REST list).
    pub max: u32,
}

/// A replay in progress: the next page starts after `after`; `left` more may be sent.
#[derive(Debug, Clone, Copy)]
struct Replay {
    after: NotificationId,
    left: u32,
}

/// Why a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    SlowConsumer,
    TokenExpired,
    Shutdown,
    /// The store could not be read while catching up; the client should retry.
    Unavailable,
    /// The user already holds `hub.max_connections_per_user` connections on this node.
    TooManyConnections,
    /// The client sent frames faster than `hub.client_frames_per_sec` (+ burst).
    ClientFlood,
    /// A client frame was larger than the largest accepted (64 KiB).
    MessageTooBig,
}

impl CloseReason {
    /// WebSocket close code and reason, as documented in docs/API.md.
    pub fn ws_code(self) -> (u16, &'static str) {
        match self {
            CloseReason::SlowConsumer => (4008, "slow consumer: resume with since"),
            CloseReason::TokenExpired => (4001, "token expired"),
            CloseReason::Shutdown => (1012, "server restarting: reconnect"),
            CloseReason::Unavailable => (1011, "temporarily unavailable: reconnect"),
            CloseReason::TooManyConnections => (4029, "too many connections for this user"),
            CloseReason::ClientFlood => (1008, "too many client frames: slow down"),
            CloseReason::MessageTooBig => (1009, "client frame too big (64 KiB at most)"),
        }
    }

    /// The stable code of the SSE closing `error` event (docs/API.md).
    pub fn code(self) -> &'static str {
        match self {
            CloseReason::TokenExpired => "token_expired",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Unavailable => "unavailable",
            CloseReason::TooManyConnections => "too_many_connections",
            CloseReason::ClientFlood => "rate_limited",
            CloseReason::MessageTooBig => "message_too_big",
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
    /// Frames to send before live ones (hello, a replay page, an unread count); their
    /// bytes are counted in the hub's accounting until they are taken.
    pending: VecDeque<Frame>,
    /// The replay still to read, page by page.
    replay: Option<Replay>,
    /// Bytes of the frames handed to the transport since it last asked for more:
    /// still held (in its write buffer or being written) until then.
    in_flight: usize,
    limits: ReplayLimits,
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

    /// Starts a session: the hello frame, then everything after `since` (if given,
    /// page by page), then live events. Call after `reg` exists, so nothing
    /// published between the store read and the first live event can fall in a gap.
    /// The first page is read here, so a store failure refuses the connection.
    pub async fn start(
        reg: Registration,
        catch_up: Arc<dyn CatchUp>,
        since: Option<NotificationId>,
        hello: impl FnOnce(UnreadCount) -> Frame,
        expires_in: std::time::Duration,
        limits: ReplayLimits,
    ) -> Result<Self, String> {
        let unread = catch_up.unread(&reg.tenant, &reg.user).await?;
        // Live copies of replayed ids can only be among the frames the live queue
        // holds meanwhile: remembering that many recent ids drops them all.
        let remember = reg.rx.max_capacity();
        let mut session = Session {
            reg,
            catch_up,
            pending: VecDeque::new(),
            replay: since.map(|after| Replay {
                after,
                left: limits.max,
            }),
            limits,
            in_flight: 0,
            sent: SentIds {
                capacity: remember,
                ..SentIds::default()
            },
            last_seen: since.unwrap_or(NotificationId::from_seq(unread.head)),
            unread_version: unread.version,
            expiry: Box::pin(tokio::time::sleep_until(Instant::now() + expires_in)),
        };
        session.push_pending(hello(unread));
        session.read_page().await?;
        Ok(session)
    }

    /// Reads the next replay page into `pending` (nothing if no replay is running).
    async fn read_page(&mut self) -> Result<(), String> {
        let Some(r) = self.replay else { return Ok(()) };
        let want = self.limits.page.min(r.left);
        let page = self
            .catch_up
            .page(&self.reg.tenant, &self.reg.user, r.after, want)
            .await?;
        let full = page.len() == want as usize;
        self.replay = match page.last() {
            Some((last, _)) if full && r.left > want => Some(Replay {
                after: *last,
                left: r.left - want,
            }),
            _ => None,
        };
        self.queue_replay(page);
        Ok(())
    }

    fn queue_replay(&mut self, notifications: Vec<(NotificationId, Frame)>) {
        for (id, frame) in notifications {
            if self.sent.insert(id) {
                self.last_seen = self.last_seen.max(id);
                self.push_pending(frame);
            }
        }
    }

    fn push_pending(&mut self, frame: Frame) {
        self.reg.hold_bytes(frame.byte_len());
        self.pending.push_back(frame);
    }

    /// The next pending frame; its bytes stay counted while the transport writes it.
    fn pop_pending(&mut self) -> Option<Frame> {
        let f = self.pending.pop_front()?;
        self.in_flight += f.byte_len();
        Some(f)
    }

    /// A live frame taken off the queue: counted as in flight, like a pending one.
    fn took_live(&mut self, f: &Frame) {
        self.in_flight += f.byte_len();
    }

    /// The transport asks for more only after writing what it had (both transports
    /// write a batch before the next `next`): those bytes are no longer held.
    fn settle(&mut self) {
        self.reg.release_bytes(std::mem::take(&mut self.in_flight));
    }

    /// After a possible loss upstream: read the count again and replay from the
    /// resync point (merged with a replay already running: the earlier start wins).
    async fn resync(&mut self) -> Result<(), String> {
        let unread = self
            .catch_up
            .unread(&self.reg.tenant, &self.reg.user)
            .await?;
        self.reg.signal.clear(flags::RESYNC);
        let from = self.resync_point();
        let after = self.replay.map_or(from, |r| r.after.min(from));
        self.replay = Some(Replay {
            after,
            left: self.limits.max,
        });
        if unread.version > self.unread_version {
            self.unread_version = unread.version;
            self.push_pending(self.catch_up.unread_frame(unread));
        }
        Ok(())
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
        if let Some(f) = self.pop_pending() {
            return Some(f);
        }
        if self.replay.is_some() {
            // The next page needs the store, and live frames wait for the replay.
            return None;
        }
        while let Ok(f) = self.reg.rx.try_recv() {
            self.took_live(&f);
            if self.admit(&f) {
                return Some(f);
            }
        }
        None
    }

    /// The next thing to send. Cancel-safe: signals are flags that stay set until
    /// handled, and a page read is only cancelled before it is queued.
    pub async fn next(&mut self) -> Output {
        self.settle();
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
            if raised & flags::RESYNC != 0 && self.resync().await.is_err() {
                return Output::Close(CloseReason::Unavailable);
            }
            if let Some(f) = self.pop_pending() {
                return Output::Frame(f);
            }
            if self.replay.is_some() {
                if self.read_page().await.is_err() {
                    return Output::Close(CloseReason::Unavailable);
                }
                continue;
            }
            tokio::select! {
                biased;
                _ = self.reg.signal.wait() => continue,
                _ = &mut self.expiry => return Output::Close(CloseReason::TokenExpired),
                f = self.reg.rx.recv() => match f {
                    Some(f) => {
                        self.took_live(&f);
                        if self.admit(&f) {
                            return Output::Frame(f);
                        }
                    }
                    None => return Output::Close(CloseReason::Shutdown),
                },
            }
        }
    }
}
