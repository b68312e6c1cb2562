//! The two live transports, `GET /v1/ws` and `GET /v1/sse`: thin adapters that
//! write what [`Session::next`] yields in their own framing.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures_util::SinkExt;
use serde::Deserialize;
use tokio::time::{interval_at, Instant, Interval, MissedTickBehavior};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{realtime_user, url_param};
use super::serve::ConnHold;
use super::AppState;
use crate::domain::auth::UserPrincipal;
use crate::domain::ids::NotificationId;
use crate::hub::session::{CloseReason, Output, Session};
use crate::service::frames;
use crate::service::realtime::ConnectError;
use crate::wire::Frame;

/// Frames written before one flush: batches syscalls under load, bounded latency when idle.
const WRITE_BATCH: usize = 64;
/// Initial WebSocket read buffer, bytes.
const READ_BUFFER: usize = 512;
/// Bytes a WebSocket batch may buffer before it is written without waiting for the flush.
const WRITE_BUFFER: usize = 64 * 1024;
/// Largest client frame accepted (mark_read with 1000 ids fits); a larger one
/// closes the connection with 1009.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

impl From<ConnectError> for ApiError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::TooManyConnections(_) => {
                let mut api = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_connections",
                    e.to_string(),
                );
                api.retry_after = Some(5);
                api
            }
            ConnectError::Service(e) => e.into(),
        }
    }
}

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ws))
        .routes(routes!(sse))
}

/// The user of a realtime request: token from `Authorization` or `?token=`.
pub(super) struct RealtimeUser(UserPrincipal);

impl FromRequestParts<AppState> for RealtimeUser {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        realtime_user(parts, state).await.map(RealtimeUser)
    }
}

fn resume_point(raw: Option<String>, field: &str) -> Result<Option<NotificationId>, ApiError> {
    match raw.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => NotificationId::parse(s).map(Some).map_err(|_| {
            ApiError::bad_request("not a notification id").with_field(field.to_owned())
        }),
    }
}

/// WebSocket: `hello`, then (with `since`) every notification after it, then live events.
///
/// Close codes: 4001 token expired, 4008 slow consumer (resume with `since`),
/// 4029 too many connections for this user, 1008 too many client frames,
/// 1009 client frame too big, 1012 server restarting, 1011 temporarily unavailable.
#[utoipa::path(
    get, path = "/v1/ws", tag = "realtime",
    params(("token" = Option<String>, Query, description = "user token (or Authorization header)"),
           ("since" = Option<String>, Query, description = "resume after this notification id")),
    responses((status = 101, description = "switching protocols"), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 503, body = ErrorBody))
)]
async fn ws(
    State(state): State<AppState>,
    RealtimeUser(user): RealtimeUser,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
    hold: Option<Extension<ConnHold>>,
    uri: axum::http::Uri,
) -> ApiResult<Response> {
    let since = resume_point(url_param(uri.query().unwrap_or(""), "since"), "since")?;
    let upgrade = upgrade
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "not_websocket", e.body_text()))?;
    let session = match state.realtime.connect(&user, since).await {
        Ok(session) => session,
        // A browser cannot read the status of a refused upgrade: the refusal is a
        // close code it can see.
        Err(ConnectError::TooManyConnections(_)) => {
            return Ok(upgrade.on_upgrade(|socket| async move {
                close_with(socket, CloseReason::TooManyConnections).await;
            }))
        }
        Err(e) => return Err(e.into()),
    };
    let settings = state.settings.clone();
    Ok(upgrade
        // Most connections are idle and each one's memory counts: a small read
        // buffer (client frames are tiny; a big one grows it for that frame). Writes
        // are fed in batches and flushed once, so the write buffer only grows on
        // busy connections, and a batch is one write(2) instead of one per frame.
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| async move {
            // The connection counts against the limits until the socket closes.
            let _hold = hold;
            run_ws(socket, session, state, settings).await
        }))
}

/// Sends a close frame with `reason`'s code (bounded by a short write timeout).
async fn close_with(mut socket: WebSocket, reason: CloseReason) {
    let (code, text) = reason.ws_code();
    let close = Message::Close(Some(CloseFrame {
        code,
        reason: text.into(),
    }));
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.send(close)).await;
}

/// A token bucket for one connection's client frames: `rate` per second, up to
/// `burst` at once. Time is passed in (a pure rule, tested without sleeping).
#[derive(Debug)]
struct FrameBudget {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl FrameBudget {
    fn new(rate: u32, burst: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(burst),
            rate: f64::from(rate),
            burst: f64::from(burst),
            last: now,
        }
    }

    /// Takes one frame's token; false if the client is over its rate.
    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

/// Whether a WebSocket read failed because the client's frame exceeded the limit.
fn too_big(e: &axum::Error) -> bool {
    std::error::Error::source(e)
        .and_then(|inner| inner.downcast_ref::<tungstenite::Error>())
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)))
}

async fn run_ws(
    mut socket: WebSocket,
    mut session: Session,
    state: AppState,
    settings: super::RealtimeSettings,
) {
    let pushed = metrics::counter!("tidings_frames_pushed_total", "transport" => "ws");
    let period = settings.ws_ping_interval;
    let mut ping = interval_at(Instant::now() + period, period);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut alive = true;
    let mut budget = FrameBudget::new(
        settings.client_frames_per_sec,
        settings.client_frames_burst,
        Instant::now(),
    );
    let reason = loop {
        tokio::select! {
            out = session.next() => match out {
                Output::Frame(first) => {
                    let mut batch = vec![first];
                    while batch.len() < WRITE_BATCH {
                        match session.try_next() { Some(f) => batch.push(f), None => break }
                    }
                    let n = batch.len() as u64;
                    if write_frames(&mut socket, batch, settings.write_timeout).await.is_err() {
                        break None;
                    }
                    pushed.increment(n);
                }
                Output::Close(reason) => break Some(reason),
            },
            msg = socket.recv() => match msg {
                // A client over its frame rate is closed (1008), not answered: each
                // frame may cost a transaction (mark_all_read) shared with everyone.
                Some(Ok(Message::Text(_) | Message::Binary(_))) if !budget.take(Instant::now()) => {
                    metrics::counter!("tidings_client_flood_closes_total").increment(1);
                    break Some(CloseReason::ClientFlood);
                }
                Some(Ok(Message::Text(text))) => {
                    alive = true;
                    if let Some(reply) = handle_client_frame(&state, &session, text.as_str()).await {
                        if write_frames(&mut socket, vec![reply], settings.write_timeout).await.is_err() {
                            break None;
                        }
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    let reply = frames::error("bad_frame", "binary frames are not supported; send JSON text");
                    if write_frames(&mut socket, vec![reply], settings.write_timeout).await.is_err() {
                        break None;
                    }
                }
                Some(Ok(Message::Pong(_) | Message::Ping(_))) => alive = true,
                Some(Err(e)) => break too_big(&e).then_some(CloseReason::MessageTooBig),
                Some(Ok(Message::Close(_))) | None => break None,
            },
            _ = ping.tick() => {
                if !alive {
                    metrics::counter!("tidings_dead_connections_closed_total").increment(1);
                    break None;
                }
                alive = false;
                if tokio::time::timeout(settings.write_timeout, socket.send(Message::Ping(Bytes::new()))).await.map_or(true, |r| r.is_err()) {
                    break None;
                }
            }
        }
    };
    if let Some(reason) = reason {
        if reason == CloseReason::SlowConsumer {
            tracing::info!(user = %session.reg.user, connection = %session.reg.id, "closing slow consumer");
        }
        let (code, text) = reason.ws_code();
        let close = Message::Close(Some(CloseFrame {
            code,
            reason: text.into(),
        }));
        let _ = tokio::time::timeout(settings.write_timeout, socket.send(close)).await;
    }
}

async fn write_frames(
    socket: &mut WebSocket,
    batch: Vec<Frame>,
    timeout: Duration,
) -> Result<(), ()> {
    let write = async {
        for f in batch {
            socket.feed(Message::Text(f.ws_text())).await?;
        }
        socket.flush().await
    };
    match tokio::time::timeout(timeout, write).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RawClientFrame {
    MarkRead { ids: Vec<String> },
    MarkAllRead,
    Ping,
}

/// A client frame, decoded and checked.
#[derive(Debug, PartialEq)]
enum ClientFrame {
    MarkRead(Vec<NotificationId>),
    MarkAllRead,
    Ping,
}

/// Decodes a client frame; a bad one becomes the `error` frame to answer it with.
/// Never panics, whatever the text (a property test feeds it garbage).
fn decode_client_frame(text: &str) -> Result<ClientFrame, Frame> {
    let raw: RawClientFrame = serde_json::from_str(text).map_err(|e| {
        frames::error(
            "bad_frame",
            &format!("expected mark_read, mark_all_read or ping: {e}"),
        )
    })?;
    Ok(match raw {
        RawClientFrame::Ping => ClientFrame::Ping,
        RawClientFrame::MarkAllRead => ClientFrame::MarkAllRead,
        RawClientFrame::MarkRead { ids } => ClientFrame::MarkRead(
            ids.iter()
                .map(|s| NotificationId::parse(s))
                .collect::<Result<_, _>>()
                .map_err(|_| frames::error("bad_frame", "ids must be notification ids"))?,
        ),
    })
}

/// Handles a client frame; returns a frame for this connection only (pong, error).
/// Reads are announced to every connection of the user through the hub.
async fn handle_client_frame(state: &AppState, session: &Session, text: &str) -> Option<Frame> {
    let (tenant, user) = (&session.reg.tenant, &session.reg.user);
    let result = match decode_client_frame(text) {
        Err(error) => return Some(error),
        Ok(ClientFrame::Ping) => return Some(frames::pong()),
        Ok(ClientFrame::MarkRead(ids)) => state.inbox.read_many(tenant, user, &ids).await,
        Ok(ClientFrame::MarkAllRead) => state.inbox.read_all(tenant, user).await,
    };
    match result {
        Ok(_) => None,
        Err(e) => {
            let api = ApiError::from(e);
            Some(frames::error(api.code, &api.message))
        }
    }
}

/// Server-Sent Events: the same events as the WebSocket; `notification` events carry
/// `id:`, so a reconnect with `Last-Event-ID` (or `?last_event_id=`) resumes.
///
/// A connection whose *first* request is this one is served by
/// [`super::sse_direct`] instead (same events, same errors, less memory); this
/// handler serves the rest, e.g. a stream opened on a reused keep-alive connection.
#[utoipa::path(
    get, path = "/v1/sse", tag = "realtime",
    params(("token" = Option<String>, Query, description = "user token (or Authorization header)"),
           ("last_event_id" = Option<String>, Query, description = "resume after this id (or Last-Event-ID header)")),
    responses((status = 200, content_type = "text/event-stream", description = "event stream"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody))
)]
async fn sse(State(state): State<AppState>, parts: Parts) -> ApiResult<Response> {
    let events = open_sse(&state, &parts).await?;
    let stream = futures_util::stream::unfold(events, |mut events| async move {
        let chunk = events.next_chunk().await?;
        Some((Ok::<_, Infallible>(chunk), events))
    });
    let mut res = Response::new(Body::from_stream(stream));
    sse_headers(res.headers_mut());
    Ok(res)
}

/// Authenticates an SSE request and opens its session (both SSE paths).
pub(super) async fn open_sse(state: &AppState, parts: &Parts) -> ApiResult<SseEvents> {
    let user = realtime_user(parts, state).await?;
    let since = resume_point(last_event_id(parts), "Last-Event-ID")?;
    let session = state.realtime.connect(&user, since).await?;
    Ok(SseEvents::new(session, state.settings.sse_heartbeat))
}

/// The response headers of an event stream (both SSE paths).
pub(super) fn sse_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
}

/// The SSE resume point: `Last-Event-ID` header, else `?last_event_id=`.
fn last_event_id(parts: &Parts) -> Option<String> {
    let header = parts
        .headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    header.or_else(|| url_param(parts.uri.query().unwrap_or(""), "last_event_id"))
}

/// One session's event stream in SSE framing, chunk by chunk: the `retry:` hint,
/// then events (batched up to [`WRITE_BATCH`] per chunk) and `: ping` heartbeats,
/// then a closing `error` event when the session ends.
pub(super) struct SseEvents {
    /// `None` once the closing event has been produced.
    session: Option<Session>,
    tick: Interval,
    pushed: metrics::Counter,
    started: bool,
}

impl SseEvents {
    fn new(session: Session, heartbeat: Duration) -> Self {
        Self {
            session: Some(session),
            tick: interval_at(Instant::now() + heartbeat, heartbeat),
            pushed: metrics::counter!("tidings_frames_pushed_total", "transport" => "sse"),
            started: false,
        }
    }

    /// The next bytes to write; `None` after the closing event.
    pub(super) async fn next_chunk(&mut self) -> Option<Bytes> {
        if !self.started {
            self.started = true;
            return Some(Bytes::from_static(b"retry: 2000\n\n"));
        }
        let session = self.session.as_mut()?;
        tokio::select! {
            out = session.next() => match out {
                Output::Frame(first) => {
                    let mut buf = first.sse_chunk().to_vec();
                    let mut n = 1;
                    while n < WRITE_BATCH {
                        match session.try_next() {
                            Some(f) => {
                                buf.extend_from_slice(&f.sse_chunk());
                                n += 1;
                            }
                            None => break,
                        }
                    }
                    self.pushed.increment(n as u64);
                    Some(Bytes::from(buf))
                }
                Output::Close(reason) => {
                    self.session = None;
                    Some(closing_event(reason))
                }
            },
            _ = self.tick.tick() => Some(Bytes::from_static(b": ping\n\n")),
        }
    }
}

/// The last event of a stream: an `error` event saying why it ends.
fn closing_event(reason: CloseReason) -> Bytes {
    let (_, text) = reason.ws_code();
    frames::error(reason.code(), text).sse_chunk()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::FrameKind;
    use proptest::prelude::*;

    #[test]
    fn the_frame_budget_allows_the_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = FrameBudget::new(10, 3, t0);
        assert!((0..3).all(|_| b.take(t0)));
        assert!(!b.take(t0), "the burst is spent");
        assert!(
            b.take(t0 + Duration::from_millis(100)),
            "one more after 1/rate"
        );
        assert!(!b.take(t0 + Duration::from_millis(100)));
        assert!(
            (0..3).all(|_| b.take(t0 + Duration::from_secs(60))),
            "refills to the burst"
        );
        assert!(!b.take(t0 + Duration::from_secs(60)));
    }

    #[test]
    fn client_frames_decode() {
        assert_eq!(
            decode_client_frame(r#"{"type":"ping"}"#).unwrap(),
            ClientFrame::Ping
        );
        assert_eq!(
            decode_client_frame(r#"{"type":"mark_read","ids":["n0000000000000005"]}"#).unwrap(),
            ClientFrame::MarkRead(vec![NotificationId::from_seq(5)])
        );
        let bad = decode_client_frame(r#"{"type":"mark_read","ids":["x"]}"#).unwrap_err();
        assert_eq!(bad.kind(), FrameKind::Error);
    }

    fn assert_clear_error(text: &str) {
        if let Err(frame) = decode_client_frame(text) {
            assert_eq!(frame.kind(), FrameKind::Error);
            let v: serde_json::Value = serde_json::from_slice(frame.data()).unwrap();
            assert_eq!(v["code"], "bad_frame", "{v}");
            assert!(v["message"].is_string(), "{v}");
        }
    }

    proptest! {
        #[test]
        fn any_text_decodes_or_is_a_bad_frame_error(text in "\\PC{0,256}") {
            assert_clear_error(&text);
        }

        #[test]
        fn json_shaped_garbage_is_a_bad_frame_error(
            kind in "mark_read|mark_all_read|ping|\\PC{0,12}",
            ids in proptest::collection::vec("n[0-9]{16}|\\PC{0,20}", 0..8),
            extra in "\\PC{0,16}",
        ) {
            let text = serde_json::json!({"type": kind, "ids": ids, "x": extra}).to_string();
            assert_clear_error(&text);
            let half: String = text.chars().take(text.chars().count() / 2).collect();
            assert_clear_error(&half);
        }
    }
}
