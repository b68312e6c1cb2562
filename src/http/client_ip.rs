//! The client's address as the hub sees it: the TCP peer, or, when the peer is a
//! trusted proxy (`server.trusted_proxies`), the address that proxy names in
//! `X-Forwarded-For`. Per-address limits (connections, failed logins) key on it.

use std::net::IpAddr;

/// Inserted into every request's extensions by the accept loop (`serve.rs`), so
/// handlers and extractors read one resolved address instead of re-parsing headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);
