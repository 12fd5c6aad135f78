//! The embedded SQLite store: one file, WAL, `synchronous=FULL`, one writer connection and
//! a few reader connections, all used from blocking threads.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use stackbill_core::Clock;

use crate::error::{Result, StoreError};
use crate::migrate::{SQLITE_MIGRATIONS, migrate};
use crate::usage::ValueCache;

/// How long a connection waits for another process's write lock before failing.
const BUSY_TIMEOUT_MS: u64 = 10_000;
/// Page cache per connection, in KiB: enough to keep the upper levels of the usage key
/// index in memory at tens of millions of records.
const CACHE_KIB: i64 = 64 * 1024;
/// WAL pages written before SQLite copies them back into the database file.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 32_768;
/// Reader connections kept open for reuse.
const MAX_IDLE_READERS: usize = 8;

/// The handle to stackbill's database. Cheap to clone; every method is one transaction.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    clock: Arc<dyn Clock>,
    values: Mutex<ValueCache>,
}

impl Drop for Inner {
    /// Readers close first, so that the writer is the last connection: only it can
    /// checkpoint the write-ahead log into the database file and remove it.
    fn drop(&mut self) {
        self.readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

fn open_connection(path: &Path, flags: OpenFlags) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    Ok(conn)
}

impl Store {
    /// Opens (creating if needed) the database file at `path` and migrates it.
    pub fn open(path: impl AsRef<Path>, clock: Arc<dyn Clock>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut writer = open_connection(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let mode: String =
            writer.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Schema(format!(
                "{} cannot use write-ahead logging (journal_mode is {mode})",
                path.display()
            )));
        }
        // Checkpoint in large steps: a batch of usage dirties thousands of pages, and the
        // default (1,000 pages) would copy them back into the database after every commit.
        writer.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
        migrate(&mut writer, SQLITE_MIGRATIONS, clock.now().as_microsecond())?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
                clock,
                values: Mutex::new(ValueCache::default()),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub(crate) fn value_cache(&self) -> &Mutex<ValueCache> {
        &self.inner.values
    }

    /// The store's clock.
    pub fn now(&self) -> Timestamp {
        stackbill_core::clock::to_micros(self.inner.clock.now())
    }

    /// Runs `f` on a reader connection on a blocking thread.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        run_blocking(move || {
            let pooled = inner
                .readers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => open_connection(
                    &inner.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?,
            };
            let result = f(&conn);
            let mut idle = inner.readers.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
            result
        })
        .await
    }

    /// Runs `f` in an immediate write transaction on the writer connection, on a blocking
    /// thread, and commits if it succeeds. `f` gets the transaction's instant.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, Timestamp) -> Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        run_blocking(move || {
            // A panic inside a transaction leaves nothing committed, so the connection is
            // still usable after a poisoned lock.
            let mut conn = inner.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = transaction_instant(&tx, inner.clock.now())?;
            let value = f(&tx, now)?;
            tx.commit()?;
            Ok(value)
        })
        .await
    }

    /// Checks that the database answers.
    pub async fn health(&self) -> Result<()> {
        self.read(|conn| {
            conn.query_row("SELECT count(*) FROM schema_migrations", [], |row| {
                row.get::<_, i64>(0)
            })?;
            Ok(())
        })
        .await
    }
}

/// The instant of a write transaction: the clock's reading, but always after the previous
/// write transaction's, by this process or any other on the same file.
fn transaction_instant(tx: &Transaction<'_>, clock: Timestamp) -> Result<Timestamp> {
    let last: i64 = tx.query_row(
        "SELECT last_micros FROM store_clock WHERE id = 1",
        [],
        |row| row.get(0),
    )?;
    let micros = clock.as_microsecond().max(last.saturating_add(1));
    tx.execute(
        "UPDATE store_clock SET last_micros = ?1 WHERE id = 1",
        [micros],
    )?;
    Timestamp::from_microsecond(micros).map_err(StoreError::corrupt)
}

async fn run_blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|err| StoreError::Worker(err.to_string()))?
}
