//! The embedded backend: SQLite in WAL mode.
//!
//! Writes go through [`Writer`]: publish batches whole on a thread of its own, every
//! other write on one sqlx connection, one at a time (the writer's turn), so our own
//! writers never contend for SQLite's single write lock; reads use a separate pool and
//! see WAL snapshots. Write transactions start with `BEGIN IMMEDIATE`: they take the
//! write lock up front, so another process on the same file (the CLI, or a second node
//! in a test) makes them wait for the busy timeout instead of failing on a lock upgrade.
//!
//! Checkpoints (copying the WAL back into the database file, with an fsync) run on
//! a connection of their own, every [`CHECKPOINT_EVERY`], never in a commit: with
//! SQLite's automatic checkpoint the writer stalled on them about once a second
//! under load, and every publish waiting for that batch waited too (asked for
//! 10,000 publishes/s: 9,320 and 9,650/s sustained with automatic checkpoints,
//! 10,000 and 9,908/s with this, p50 8–10 ms against 2.5–3.9 ms, interleaved runs;
//! loadtests/RESULTS.md).

mod json;
mod notifications;
mod queue;
mod writer;

// The SQL both backends share (see `sql/mod.rs`), compiled here as this backend's.
#[path = "sql/mod.rs"]
mod sql;

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Sqlite;
use tokio_util::task::AbortOnDropHandle;

use writer::Writer;
pub(crate) use writer::{WriteConn, WriteTx};

use super::{StoreError, StoreOptions};

/// How often the checkpointer copies the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// WAL bytes kept on disk after a checkpoint has reset it (it grows back as needed).
const WAL_SIZE_LIMIT: &str = "67108864";

pub struct SqliteStore {
    writer: Writer,
    reader: SqlitePool,
    /// Stops the checkpoint task when the store is dropped.
    _checkpointer: AbortOnDropHandle<()>,
}

/// Runs a PASSIVE checkpoint every [`CHECKPOINT_EVERY`]: it copies what it can
/// without waiting for the writer or readers, so nothing waits for it either.
async fn checkpoint(pool: SqlitePool) {
    let mut every = tokio::time::interval(CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
        }
    }
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
            .pragma("temp_store", "memory")
            .pragma("journal_size_limit", WAL_SIZE_LIMIT);
        if let Some(file) = sqlite_file(&options.url) {
            private_file(&file)?;
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone().pragma("wal_autocheckpoint", "0"))
            .await
            .map_err(map_err)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|e| StoreError::Internal(format!("migrations failed: {e}")))?;
        let file = sqlite_file(&options.url).ok_or_else(|| {
            StoreError::Internal(
                "SQLite needs a database file (an in-memory database is one per connection)".into(),
            )
        })?;
        let writer = Writer::start(thread_connection(&file, options)?, writer)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone().read_only(true))
            .await
            .map_err(map_err)?;
        let checkpointer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(map_err)?;
        Ok(Self {
            writer,
            reader,
            _checkpointer: AbortOnDropHandle::new(tokio::spawn(checkpoint(checkpointer))),
        })
    }
}

/// The writer thread's connection, with the pragmas the sqlx connections get.
fn thread_connection(
    file: &std::path::Path,
    options: &StoreOptions,
) -> Result<rusqlite::Connection, StoreError> {
    let conn = rusqlite::Connection::open(file).map_err(rusqlite_err)?;
    conn.busy_timeout(options.statement_timeout)
        .map_err(rusqlite_err)?;
    for (pragma, value) in [
        ("journal_mode", "wal"),
        ("synchronous", "normal"),
        ("foreign_keys", "on"),
        ("temp_store", "memory"),
        ("journal_size_limit", WAL_SIZE_LIMIT),
        // The checkpointer task checkpoints; commits never do (see the top of this file).
        ("wal_autocheckpoint", "0"),
    ] {
        conn.pragma_update(None, pragma, value)
            .map_err(rusqlite_err)?;
    }
    Ok(conn)
}

impl SqliteStore {
    /// A write transaction on the sqlx writer connection, in the writer's turn.
    pub(super) async fn begin_write(&self) -> Result<WriteTx<'_>, StoreError> {
        self.writer.begin().await
    }

    /// The pool reads use: WAL snapshots, never waiting for the writer.
    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    /// The sqlx writer connection for a statement that commits on its own.
    async fn write_conn(&self) -> Result<WriteConn, StoreError> {
        self.writer.conn().await
    }
}

// What the shared modules (`store/sql/`) see as this backend's types.
type Backend = SqliteStore;
type Db = Sqlite;
type Conn = sqlx::SqliteConnection;
type DbRow = sqlx::sqlite::SqliteRow;

/// The file of a file-backed SQLite URL (`None` for in-memory databases).
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next()?;
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Some(std::path::PathBuf::from(path))
}

/// The database holds tenant secrets: its file is created 0600 and the directories
/// this creates 0700 (a fresh checkout needs no `mkdir`). SQLite gives the WAL and
/// shared-memory files the database file's mode. An existing file is narrowed to
/// 0600; existing directories are left alone (the parent may be `/tmp`).
fn private_file(file: &std::path::Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let failed = |what: &std::path::Path, e: std::io::Error| {
        StoreError::Unavailable(format!("cannot create {}: {e}", what.display()))
    };
    if let Some(dir) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| failed(dir, e))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(file)
        .map_err(|e| failed(file, e))?;
    let mode = std::fs::metadata(file)
        .map_err(|e| failed(file, e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| failed(file, e))?;
    }
    Ok(())
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

/// [`map_err`] for the writer thread's rusqlite errors.
pub(super) fn rusqlite_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation)
            if matches!(&e, rusqlite::Error::SqliteFailure(f, _)
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY) =>
        {
            StoreError::Conflict(e.to_string())
        }
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable(e.to_string())
        }
        _ if matches!(e, rusqlite::Error::QueryReturnedNoRows) => StoreError::NotFound,
        _ => StoreError::Internal(e.to_string()),
    }
}

/// Whether an SQLite result code (primary or extended: the low byte is the primary) is BUSY or LOCKED.
fn is_busy(code: Option<&str>) -> bool {
    code.and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
}

pub(super) use super::columns::{from_millis, millis};

pub(super) use super::columns::IN_CHUNK;

// The dialect of the shared modules' SQL. JSON parameters need no cast: SQLite keeps
// JSON as TEXT. No row locks: the single writer connection already runs write
// transactions one at a time.
const JSON: &str = "";
const JSONB: &str = JSON;
const FOR_UPDATE: &str = "";
const SKIP_LOCKED: &str = FOR_UPDATE;

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
