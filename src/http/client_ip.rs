//! The client's address as the hub sees it: the TCP peer, or, when the peer is a
//! trusted proxy (`server.trusted_proxies`), the address that proxy names in
//! `X-Forwarded-For`. Per-address limits (connections, failed logins) key on it.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Inserted into every request's extensions by the accept loop (`serve.rs`), so
/// handlers and extractors read one resolved address instead of re-parsing headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request from `peer`: the peer itself unless it is trusted;
    /// then, walking `X-Forwarded-For` from the right (the hops nearest to us), the
    /// first address that is not a trusted proxy. Anything left of it was written
    /// by the client and proves nothing. A hop that is not an address stops the
    /// walk at the last address known good.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> ClientIp {
        let mut client = peer.to_canonical();
        if !self.contains(client) {
            return ClientIp(client);
        }
        for hop in forwarded_hops(headers).rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip.to_canonical();
                    if !self.contains(client) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        ClientIp(client)
    }
}

/// Every `X-Forwarded-For` entry, in order, over all such headers.
fn forwarded_hops(headers: &HeaderMap) -> impl DoubleEndedIterator<Item = &str> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn proxies() -> TrustedProxies {
        TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()])
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let c = proxies().resolve(ip("203.0.113.9"), &headers(&["198.51.100.1"]));
        assert_eq!(c.0, ip("203.0.113.9"));
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_hop_is_the_client() {
        // The client forged "1.2.3.4"; its real address was appended by our proxy.
        let h = headers(&["1.2.3.4, 198.51.100.7", "10.1.1.1"]);
        assert_eq!(proxies().resolve(ip("10.0.0.2"), &h).0, ip("198.51.100.7"));
    }

    #[test]
    fn garbage_or_missing_hops_fall_back_to_the_nearest_known_address() {
        let p = proxies();
        assert_eq!(
            p.resolve(ip("10.0.0.2"), &HeaderMap::new()).0,
            ip("10.0.0.2")
        );
        let h = headers(&["198.51.100.7, not-an-ip, 10.0.0.3"]);
        assert_eq!(p.resolve(ip("10.0.0.2"), &h).0, ip("10.0.0.3"));
        let mapped = ip("::ffff:10.0.0.2");
        assert_eq!(
            p.resolve(mapped, &headers(&["198.51.100.7"])).0,
            ip("198.51.100.7")
        );
    }
}
