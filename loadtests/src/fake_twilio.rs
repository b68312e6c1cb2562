//! A fake Twilio for the `outbound` scenario, served by the tool itself so the hub's
//! provider calls cost the benchmark nothing but a socket: HTTP/1.1 keep-alive,
//! `POST …/Messages.json` answered `201` with a Message resource after a fixed
//! delay. It counts requests and remembers when the first and the last arrived.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::stats::unix_us;

/// Counters shared with the scenario.
#[derive(Debug, Default)]
pub(crate) struct FakeStats {
    pub(crate) requests: AtomicU64,
    pub(crate) first_us: AtomicU64,
    pub(crate) last_us: AtomicU64,
}

/// Serves until the process ends. `delay` is how long each answer takes.
pub(crate) async fn serve(listen: &str, delay: Duration) -> Result<Arc<FakeStats>> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the fake Twilio on {listen}"))?;
    let stats = Arc::new(FakeStats::default());
    let shared = stats.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let stats = shared.clone();
            tokio::spawn(async move {
                let _ = connection(socket, delay, &stats).await;
            });
        }
    });
    Ok(stats)
}

async fn connection(mut socket: TcpStream, delay: Duration, stats: &FakeStats) -> Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        // Read one request: headers, then Content-Length bytes of body.
        let (header_len, body_len) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            if let httparse::Status::Complete(n) = req.parse(&buf)? {
                let len = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                    .unwrap_or(0usize);
                break (n, len);
            }
            let read = socket.read(&mut chunk).await?;
            if read == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..read]);
        };
        while buf.len() < header_len + body_len {
            let read = socket.read(&mut chunk).await?;
            if read == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..read]);
        }
        buf.drain(..header_len + body_len);
        let now = unix_us();
        let n = stats.requests.fetch_add(1, Ordering::SeqCst) + 1;
        if n == 1 {
            stats.first_us.store(now, Ordering::SeqCst);
        }
        tokio::time::sleep(delay).await;
        let body = format!(
            r#"{{"sid":"SMload{n:026}","status":"queued","price":null,"price_unit":"USD","num_segments":"1"}}"#
        );
        let response = format!(
            "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(response.as_bytes()).await?;
        stats.last_us.fetch_max(unix_us(), Ordering::SeqCst);
    }
}
