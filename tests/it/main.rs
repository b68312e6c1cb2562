#![allow(unreachable_pub)] // test-support items are crate-visible by design
//! The one integration-test binary: a real hub on port 0 with a fresh database,
//! real HTTP, WebSocket and SSE clients.

mod support;

mod admin;
mod auth;
mod bulk_fairness;
mod cli;
mod clinic_events;
mod escalation;
mod hostile_conn;
mod inbox;
mod input_validation;
mod logs;
mod multinode;
mod ops;
mod outbound_api;
mod outbound_crash;
mod outbound_dispatch;
mod outbound_store;
mod outbound_webhooks;
mod pg_faults;
mod phi;
mod providers;
mod providers_contract;
mod providers_smtp;
mod publish;
mod rate_limits;
mod rbac;
mod realtime_sse;
mod realtime_ws;
mod store_conformance;
mod webhooks_out;
