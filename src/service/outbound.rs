//! Outbound patient messages: the queue worker, per-tenant provider routing and
//! provider status callbacks (the enqueue and management use cases sit beside them).

pub mod callbacks;
pub mod dispatch;
pub mod routing;
