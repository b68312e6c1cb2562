//! The embedded backend's writes: one rusqlite connection on a thread of its own for
//! the hot path, the sqlx writer connection for the rest, and the turn they share.
//!
//! Why a thread: sqlx runs each SQLite connection on a worker thread and hands it one
//! statement at a time, so a publish batch (BEGIN, ids, preferences, rows, counters,
//! COMMIT) cost seven hand-offs, each two thread wake-ups. At the rates a clinic
//! produces, with a handful of requests in flight, every publish is a batch of one, and
//! those wake-ups were most of its CPU (issue #13: 14.5 futex calls per publish, 0.37
//! CPU-s per 1,000 deliveries at 500/s). On [`Writer`] a whole batch is one hand-off.
//!
//! Why a turn: SQLite has one write lock per database. The thread's connection and the
//! sqlx writer connection would otherwise meet in SQLite's busy handler, which sleeps
//! (1, 2, 5, 10 ms …) instead of queueing. Every write transaction on either takes the
//! turn first ([`Writer::begin`], [`Writer::conn`], [`Writer::run`]), a FIFO tokio
//! mutex, so they queue in order and never wait on the file lock, as when the single
//! sqlx writer connection did all the writing.

use std::ops::{Deref, DerefMut};
use std::sync::mpsc;
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};
use tokio::sync::{oneshot, Mutex, OwnedMutexGuard};

use super::map_err;
use crate::store::StoreError;

type Job = Box<dyn FnOnce(&mut rusqlite::Connection) + Send>;

/// Prepared statements the thread keeps (the publish path uses about ten).
const STATEMENT_CACHE: usize = 64;

pub(super) struct Writer {
    pool: SqlitePool,
    jobs: mpsc::Sender<Job>,
    turn: Arc<Mutex<()>>,
}

impl Writer {
    /// Starts the thread on `conn` (opened with the store's pragmas); `pool` is the
    /// one-connection sqlx writer. The thread ends when the `Writer` is dropped.
    pub(super) fn start(conn: rusqlite::Connection, pool: SqlitePool) -> Result<Self, StoreError> {
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let (jobs, rx) = mpsc::channel::<Job>();
        let turn = Arc::new(Mutex::new(()));
        let thread_turn = turn.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                let mut conn = conn;
                while let Ok(job) = rx.recv() {
                    let _turn = thread_turn.blocking_lock();
                    job(&mut conn);
                }
            })
            .map_err(|e| StoreError::Internal(format!("cannot start the writer thread: {e}")))?;
        Ok(Self { pool, jobs, turn })
    }

    /// Runs `f` on the writer thread, in its turn, and returns what it returned: one
    /// hand-off for the whole of `f`, however many statements it runs.
    pub(super) async fn run<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = reply.send(f(conn));
        });
        let stopped = || StoreError::Unavailable("the SQLite writer thread stopped".into());
        self.jobs.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// A write transaction on the sqlx writer connection, in its turn (`BEGIN IMMEDIATE`:
    /// another process on the file makes it wait for the busy timeout, never fail on a
    /// lock upgrade).
    pub(super) async fn begin(&self) -> Result<WriteTx<'_>, StoreError> {
        let turn = self.turn.clone().lock_owned().await;
        let tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        Ok(WriteTx { tx, _turn: turn })
    }

    /// The sqlx writer connection for statements that commit on their own, in its turn.
    pub(super) async fn conn(&self) -> Result<WriteConn, StoreError> {
        let turn = self.turn.clone().lock_owned().await;
        let conn = self.pool.acquire().await.map_err(map_err)?;
        Ok(WriteConn { conn, _turn: turn })
    }
}

/// A write transaction holding the writer's turn until it is committed or dropped.
/// Fields drop in order: a dropped transaction queues its rollback before the turn
/// passes on (the next writer's `BEGIN IMMEDIATE` waits the moment the rollback takes).
pub(crate) struct WriteTx<'a> {
    tx: Transaction<'a, Sqlite>,
    _turn: OwnedMutexGuard<()>,
}

impl WriteTx<'_> {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl Deref for WriteTx<'_> {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.tx
    }
}

impl DerefMut for WriteTx<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}

/// The sqlx writer connection, holding the writer's turn while borrowed.
pub(crate) struct WriteConn {
    conn: PoolConnection<Sqlite>,
    _turn: OwnedMutexGuard<()>,
}

impl Deref for WriteConn {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.conn
    }
}

impl DerefMut for WriteConn {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}
