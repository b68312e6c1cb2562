//! Local fan-out: the connections of this node, by user.
//!
//! **Architecture invariant:** the hub only reaches connections on this node.
//! Everything that must reach other nodes goes through the [`crate::bus::Bus`];
//! the hub is at-most-once (a full queue drops the connection), durability and
//! catch-up come from the store.

pub mod registry;
pub mod session;

pub use registry::{Hub, HubConfig, RegisterError, Registration};
