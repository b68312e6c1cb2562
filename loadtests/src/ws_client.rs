//! The WebSocket transport: `GET /v1/ws?token=` over a TCP stream the tool opened itself (so it
//! can choose the source address), then read frames until the fleet stops.
//!
//! Nothing is ever sent by the client: tungstenite answers the hub's protocol pings by itself
//! as long as the stream is read.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::{timeout_at, Instant};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::session::Session;

/// Connect, wait for `hello`, then receive until the fleet stops or the hub closes.
pub(crate) async fn run(session: &mut Session) {
    let shared = session.shared().clone();
    let cancel = shared.cancel.clone();
    let deadline = Instant::now() + shared.connect_timeout;
    let config = WebSocketConfig::default()
        .read_buffer_size(shared.ws_read_buffer)
        .write_buffer_size(0);

    let source_ip = session.plan().source_ip;
    let url = shared.target.ws_url(&session.plan().token);
    let connect = async {
        let stream = shared
            .target
            .connect(source_ip)
            .await
            .map_err(|e| format!("tcp {:?}", e.kind()))?;
        tokio_tungstenite::client_async_with_config(url, stream, Some(config))
            .await
            .map(|(ws, _response)| ws)
            .map_err(|e| error_kind(&e))
    };
    let mut ws = tokio::select! {
        _ = cancel.cancelled() => return,
        result = timeout_at(deadline, connect) => match result {
            Ok(Ok(ws)) => ws,
            Ok(Err(kind)) => return session.fail(kind),
            Err(_) => return session.fail("timeout (connect/upgrade)"),
        },
    };

    loop {
        let next = if session.is_ready() {
            tokio::select! {
                _ = cancel.cancelled() => break,
                next = ws.next() => next,
            }
        } else {
            tokio::select! {
                _ = cancel.cancelled() => break,
                next = timeout_at(deadline, ws.next()) => match next {
                    Ok(next) => next,
                    Err(_) => return session.fail("timeout (waiting for hello)"),
                },
            }
        };
        match next {
            Some(Ok(Message::Text(text))) => session.on_ws_text(text.as_str()),
            Some(Ok(Message::Close(frame))) => {
                let reason = match frame {
                    Some(frame) => format!("close {}", u16::from(frame.code)),
                    None => "close".to_string(),
                };
                session.closed(reason);
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                session.closed(error_kind(&e));
                break;
            }
            None => {
                session.closed("eof");
                break;
            }
        }
    }
    // Best effort, bounded: tell the hub we are going so it does not wait for a ping timeout.
    if cancel.is_cancelled() && session.is_ready() {
        let _ = tokio::time::timeout(Duration::from_millis(200), ws.close(None)).await;
    }
}

/// A short, stable label for an error (`http 401`, `io ConnectionReset`, ...).
fn error_kind(error: &WsError) -> String {
    match error {
        WsError::Http(response) => format!("http {}", response.status().as_u16()),
        WsError::Io(e) => format!("io {:?}", e.kind()),
        WsError::ConnectionClosed | WsError::AlreadyClosed => "closed".to_string(),
        WsError::Protocol(p) => format!("protocol {p}"),
        WsError::Capacity(c) => format!("capacity {c}"),
        WsError::Url(u) => format!("url {u}"),
        other => format!("ws {other}"),
    }
}
