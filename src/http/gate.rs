//! Admission of connections: a global cap below the open-file limit, a reserve
//! above it for the operations probes, and a cap per client address.
//!
//! Why: every open socket is a file descriptor. Without a cap, enough idle or
//! half-sent requests exhaust the process's descriptors and then nothing answers,
//! not even `/healthz`. The cap refuses new connections early, the reserve keeps
//! the probes answering while the cap is full, and the per-address cap keeps one
//! client from taking the whole cap.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

/// The limits, from `[server]`.
#[derive(Debug, Clone)]
pub struct GateLimits {
    pub max_connections: usize,
    pub reserved_connections: usize,
    pub max_connections_per_ip: usize,
}

pub(super) struct Gate {
    limits: GateLimits,
    open: AtomicUsize,
    by_ip: DashMap<IpAddr, usize>,
    open_gauge: metrics::Gauge,
}

/// What a new connection may do.
pub(super) enum Admission {
    /// Anything.
    Full(Permit),
    /// The cap is full: only the probes (`/healthz`, `/readyz`, `/metrics`).
    ProbesOnly(Permit),
    /// Cap and reserve are full.
    Refused,
}

/// One open connection counted against the cap; released when dropped.
pub(super) struct Permit(Arc<Gate>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.open_gauge.decrement(1.0);
    }
}

/// One connection counted against a client address; released when dropped.
pub(super) struct IpSlot {
    gate: Arc<Gate>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        if let Some(mut n) = self.gate.by_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
        }
        self.gate.by_ip.remove_if(&self.ip, |_, n| *n == 0);
    }
}

impl Gate {
    pub(super) fn new(limits: GateLimits) -> Arc<Self> {
        Arc::new(Gate {
            limits,
            open: AtomicUsize::new(0),
            by_ip: DashMap::new(),
            open_gauge: metrics::gauge!("tidings_http_connections"),
        })
    }

    /// Counts a new connection and says what it may do.
    pub(super) fn admit(self: &Arc<Self>) -> Admission {
        let n = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        self.open_gauge.increment(1.0);
        let permit = Permit(self.clone());
        let l = &self.limits;
        if n > l.max_connections + l.reserved_connections {
            refused("full");
            Admission::Refused
        } else if n > l.max_connections {
            Admission::ProbesOnly(permit)
        } else {
            Admission::Full(permit)
        }
    }

    /// Counts a connection of `ip`; `None` if that address has its share already.
    pub(super) fn claim_ip(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        {
            let mut n = self.by_ip.entry(ip).or_insert(0);
            if *n < self.limits.max_connections_per_ip {
                *n += 1;
                return Some(IpSlot {
                    gate: self.clone(),
                    ip,
                });
            }
        }
        self.by_ip.remove_if(&ip, |_, n| *n == 0);
        refused("per_ip");
        None
    }
}

fn refused(reason: &'static str) {
    metrics::counter!("tidings_connections_refused_total", "reason" => reason).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(cap: usize, reserve: usize, per_ip: usize) -> Arc<Gate> {
        Gate::new(GateLimits {
            max_connections: cap,
            reserved_connections: reserve,
            max_connections_per_ip: per_ip,
        })
    }

    #[test]
    fn the_reserve_serves_probes_above_the_cap_and_then_nothing() {
        let g = gate(2, 1, 10);
        let a = g.admit();
        let b = g.admit();
        assert!(matches!((&a, &b), (Admission::Full(_), Admission::Full(_))));
        let c = g.admit();
        assert!(matches!(c, Admission::ProbesOnly(_)));
        assert!(matches!(g.admit(), Admission::Refused));
        drop(a);
        drop(c);
        assert!(matches!(g.admit(), Admission::Full(_)));
    }

    #[test]
    fn an_address_gets_its_share_and_gets_it_back() {
        let g = gate(100, 0, 2);
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        let a = g.claim_ip(ip).unwrap();
        let _b = g.claim_ip(ip).unwrap();
        assert!(g.claim_ip(ip).is_none());
        assert!(g.claim_ip("198.51.100.2".parse().unwrap()).is_some());
        drop(a);
        assert!(g.claim_ip(ip).is_some());
    }
}
