//! Tidings: a realtime notification hub for clinics.
//!
//! # Layout
//! - [`domain`]: validated types and rules, no IO (ids, notifications, preferences).
//! - [`store`]: the persistence ports and their backends: SQLite (one node, embedded)
//!   and PostgreSQL (many nodes).
//! - [`bus`]: the cross-node port: in-process (one node) and Redis (single or Cluster).
//! - [`wire`]: the JSON shapes of the public contract, and the encoded server
//!   [`wire::Frame`] that both the hub and the bus carry.
//! - [`hub`]: this node's connections by user, and the per-connection session.
//! - [`provider`]: the outbound port (SMS, WhatsApp, email providers), signatures and
//!   status callbacks; the only module that knows reqwest and lettre.
//! - [`service`]: use cases: publish (group commit), inbox, realtime, auth, retention.
//! - [`http`]: the only module that knows axum: routes, extractors, the error table.
//! - [`app`]: wiring and lifecycle; [`config`]: typed configuration.
//!
//! See ARCHITECTURE.md for the data flow and the invariants.

pub mod app;
pub mod bus;
pub mod config;
pub mod domain;
pub mod http;
pub mod hub;
pub mod provider;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod wire;
