//! The shared backend: PostgreSQL, for several hub nodes on one database.
//!
//! One pool per node. Every connection carries `statement_timeout` as a startup
//! parameter (no extra round trip), and the pool pings a connection before
//! handing it out, so after a database restart the dead connections are dropped
//! and new ones are made: service resumes by itself. While the database is
//! unreachable, calls fail after `acquire_timeout` with `Unavailable` (503).
//!
//! The semantics are the SQLite backend's, kept honest by one conformance suite
//! (`tests/it/store_conformance.rs`). The one thing PostgreSQL does differently is
//! how notification ids stay in commit order: see `notifications.rs`.

mod json;
mod notifications;
mod queue;

// The SQL both backends share (see `sql/mod.rs`), compiled here as this backend's.
#[path = "sql/mod.rs"]
mod sql;

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use super::{StoreError, StoreOptions};

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub async fn open(options: &StoreOptions) -> Result<Self, StoreError> {
        let statement_timeout = options.statement_timeout.as_millis().max(1).to_string();
        let connect = PgConnectOptions::from_str(&options.url)
            .map_err(|e| StoreError::Internal(format!("bad postgres url: {e}")))?
            .application_name("tidings")
            // Bounds every statement, including a wait for a lock another node holds.
            .options([("statement_timeout", statement_timeout.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            // Explicit although it is sqlx's default: this ping is what discards the
            // connections a database restart killed, so recovery needs no operator.
            .test_before_acquire(true)
            .connect_with(connect)
            .await
            .map_err(map_err)?;
        // sqlx's migrator takes an advisory lock, so nodes starting together are safe.
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| match e {
                sqlx::migrate::MigrateError::Execute(e) => map_err(e),
                e => StoreError::Internal(format!("migrations failed: {e}")),
            })?;
        Ok(Self { pool })
    }
}

impl PostgresStore {
    /// A write transaction (READ COMMITTED; the outbound files lock the rows they check).
    pub(super) async fn begin_write(&self) -> Result<Transaction<'_, Postgres>, StoreError> {
        self.pool.begin().await.map_err(map_err)
    }

    /// One pool serves reads and writes (what the shared modules call the reader and
    /// the writer).
    fn reader(&self) -> &PgPool {
        &self.pool
    }

    /// A connection for a statement that commits on its own.
    async fn write_conn(&self) -> Result<WriteConn, StoreError> {
        self.pool.acquire().await.map_err(map_err)
    }
}

// What the shared modules (`store/sql/`) see as this backend's types.
pub(crate) type WriteTx<'a> = Transaction<'a, Postgres>;
pub(crate) type WriteConn = sqlx::pool::PoolConnection<Postgres>;
type Backend = PostgresStore;
type Db = Postgres;
type Conn = sqlx::PgConnection;
type DbRow = sqlx::postgres::PgRow;

/// The dialect of the shared modules' SQL: a text parameter becomes `json` (kept byte
/// for byte) or `jsonb` only by a cast.
const JSON: &str = "::json";
const JSONB: &str = "::jsonb";
/// A checked-then-written row is locked: writers on other connections and nodes wait.
const FOR_UPDATE: &str = " FOR UPDATE";
/// Rows another node's job holds are left to it, so several jobs share the work.
const SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";

/// SQLSTATE classes and codes that mean "the database cannot serve this now; retry later".
fn is_unavailable_code(code: &str) -> bool {
    // 08: connection exception; 53: insufficient resources (too many connections, disk full);
    // 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now (starting up),
    // 57014 statement timeout; 40001 / 40P01: serialization failure / deadlock (retryable).
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "57014" | "40001" | "40P01"
        )
}

pub(super) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_owned())
        }
        sqlx::Error::Database(db) if db.code().as_deref().is_some_and(is_unavailable_code) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

/// Times are stored as unix milliseconds, as in the SQLite schema (see the migration).
pub(super) use super::columns::{from_millis, millis};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_and_timeout_errors_are_unavailable_others_are_not() {
        for code in [
            "08006", "08001", "57P01", "57P03", "57014", "53300", "40P01",
        ] {
            assert!(is_unavailable_code(code), "{code}");
        }
        for code in ["23505", "42P01", "22P02", "XX000"] {
            assert!(!is_unavailable_code(code), "{code}");
        }
        assert!(matches!(
            map_err(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(matches!(
            map_err(sqlx::Error::Io(refused)),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            map_err(sqlx::Error::RowNotFound),
            StoreError::NotFound
        ));
    }
}
