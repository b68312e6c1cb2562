//! The SQL both backends share, written once. `sqlite.rs` and `postgres.rs` each compile
//! this module, and so every file below it, as a child of their own (`#[path]`), so
//! `super::` here is that backend: `Backend`, `Db`, `Conn`, `DbRow`, `reader()` /
//! `write_conn()` / `begin_write()` (`WriteTx`), `map_err`, `millis` and the dialect constants (`JSON`, `JSONB`,
//! `FOR_UPDATE`, `SKIP_LOCKED`) name its own. `$n` placeholders, `bool` and
//! `CAST(… AS TEXT)` mean the same on both. What really differs stays per backend, each
//! file saying why at its top: `notifications.rs` (group commit, id order), `queue.rs`
//! (the claim statement, bulk inserts; the rest of the queue is `sql/queue.rs`),
//! `json.rs` (JSON column edits).
//!
//! This is a `mod.rs` because it is loaded by `#[path]`: its children then resolve
//! inside `sql/` whichever backend loads it.

use super::*;

mod audit;
mod callbacks;
mod directory;
pub(super) mod escalations;
mod events;
mod health;
mod messages;
mod patients;
mod phi;
pub(super) mod preferences;
mod queue;
mod templates;
mod tenants;
pub(super) mod webhooks;

/// `NotFound` when a write by id touched no row (`rows_affected`).
fn found(rows_affected: u64) -> Result<(), crate::store::StoreError> {
    if rows_affected == 0 {
        return Err(crate::store::StoreError::NotFound);
    }
    Ok(())
}
