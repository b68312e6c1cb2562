//! The embedded backend: SQLite in WAL mode.
//!
//! Writes go through a pool of exactly one connection, so our own writers never
//! contend for SQLite's single write lock; reads use a separate pool and see WAL
//! snapshots. Write transactions start with `BEGIN IMMEDIATE`: they take the write
//! lock up front, so another process on the same file (the CLI, or a second node in
//! a test) makes them wait for the busy timeout instead of failing on a lock upgrade.

mod audit;
mod callbacks;
mod directory;
mod messages;
mod notifications;
mod outbound;
mod patients;
mod preferences;
mod queue;
mod templates;
mod tenants;

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use super::{Health, StoreError, StoreOptions};

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    pub async fn open(options: &StoreOptions) -> Result<Self, StoreError> {
        let connect = SqliteConnectOptions::from_str(&options.url)
            .map_err(|e| StoreError::Internal(format!("bad sqlite url: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode: a commit is durable against process crashes; a power
            // loss may drop the last transactions but never corrupts the database.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(options.statement_timeout)
            .foreign_keys(true)
            .pragma("temp_store", "memory");
        if let Some(dir) = sqlite_parent_dir(&options.url) {
            std::fs::create_dir_all(&dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await
            .map_err(map_err)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|e| StoreError::Internal(format!("migrations failed: {e}")))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.read_only(true))
            .await
            .map_err(map_err)?;
        Ok(Self { writer, reader })
    }
}

impl SqliteStore {
    /// A write transaction on the single writer connection (`BEGIN IMMEDIATE`).
    pub(super) async fn begin_write(&self) -> Result<Transaction<'_, Sqlite>, StoreError> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)
    }
}

/// The directory of a file-backed SQLite URL, so a fresh checkout needs no `mkdir`.
fn sqlite_parent_dir(url: &str) -> Option<std::path::PathBuf> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next()?;
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    std::path::Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| p.to_path_buf())
}

pub(super) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_owned())
        }
        // SQLITE_BUSY (5) / SQLITE_LOCKED (6) and their extended codes (517 BUSY_SNAPSHOT, ...):
        // another process held the lock past the busy timeout.
        sqlx::Error::Database(db) if is_busy(db.code().as_deref()) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

/// Whether an SQLite result code (primary or extended: the low byte is the primary) is BUSY or LOCKED.
fn is_busy(code: Option<&str>) -> bool {
    code.and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
}

pub(super) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) use super::columns::from_millis;

/// SQLite's limit on bound parameters is 32766; chunks stay far below it.
pub(super) const IN_CHUNK: usize = 500;

/// `?, ?, ?` for an `IN (...)` list of `n` parameters.
pub(super) fn placeholders(n: usize) -> String {
    let mut s = String::with_capacity(n * 3);
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        s.push('?');
    }
    s
}

#[async_trait]
impl Health for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}
