//! The [`Store`] handle over either database: the embedded SQLite file (WAL,
//! `synchronous=FULL`, one writer connection and a few readers) or a PostgreSQL server
//! (a pool of connections, shared with other stackbill processes). Every call runs on a
//! blocking thread as one transaction.
//!
//! Write transactions are serialized per database, whichever process runs them: in SQLite by
//! its one write lock, in PostgreSQL by the row lock on `store_clock` that every write takes
//! first. So a write sees every write committed before it, and the instants and record
//! numbers it assigns grow in commit order, on one node or many.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use stackbill_core::Clock;

use crate::db::{Conn, params};
use crate::error::{Result, StoreError};
use crate::migrate::{SQLITE_MIGRATIONS, migrate};
use crate::postgres::Postgres;
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
/// Prepared statements kept per SQLite connection.
const STATEMENT_CACHE: usize = 64;

/// The handle to stackbill's database. Cheap to clone; every method is one transaction.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    backend: Backend,
    clock: Arc<dyn Clock>,
    values: Mutex<ValueCache>,
}

#[derive(Debug)]
enum Backend {
    Sqlite(Sqlite),
    Postgres(Postgres),
}

#[derive(Debug)]
struct Sqlite {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

impl Drop for Sqlite {
    /// Readers close first, so that the writer is the last connection: only it can
    /// checkpoint the write-ahead log into the database file and remove it.
    fn drop(&mut self) {
        self.readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

pub(crate) fn open_connection(path: &Path, flags: OpenFlags) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Whether `location` names a PostgreSQL server rather than a file.
fn is_postgres_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

impl Store {
    /// Opens (creating if needed) the database file at `path` and migrates it. Several
    /// processes may open one new file at once: whichever finds it locked (while another sets
    /// up write-ahead logging or migrates) tries again, for up to the busy timeout.
    pub fn open(path: impl AsRef<Path>, clock: Arc<dyn Clock>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let deadline =
            std::time::Instant::now() + std::time::Duration::from_millis(BUSY_TIMEOUT_MS);
        let writer = loop {
            match open_writer(&path, clock.now().as_microsecond()) {
                Err(err) if err.is_unavailable() && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                opened => break opened?,
            }
        };
        Ok(Self::with_backend(
            Backend::Sqlite(Sqlite {
                path,
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
            }),
            clock,
        ))
    }

    /// Opens the database at `location`: a `postgres://` URL ([`Store::open_postgres`]), else
    /// a file path ([`Store::open`]).
    pub fn open_location(location: &str, clock: Arc<dyn Clock>) -> Result<Self> {
        if is_postgres_url(location) {
            Self::open_postgres(location, clock)
        } else {
            Self::open(location, clock)
        }
    }

    /// Opens the PostgreSQL database at `url` (`postgres://` or `postgresql://`), migrating it
    /// (one node at a time when several start at once); its connections are made when first
    /// needed, on the runtime of the first caller.
    pub fn open_postgres(url: &str, clock: Arc<dyn Clock>) -> Result<Self> {
        if !is_postgres_url(url) {
            return Err(StoreError::Config(
                "the database URL must start with postgres:// or postgresql://".to_owned(),
            ));
        }
        let postgres = Postgres::open(url, clock.now().as_microsecond())?;
        Ok(Self::with_backend(Backend::Postgres(postgres), clock))
    }

    fn with_backend(backend: Backend, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(Inner {
                backend,
                clock,
                values: Mutex::new(ValueCache::default()),
            }),
        }
    }

    /// Where the data is: the file path, or the PostgreSQL URL without its password.
    pub fn location(&self) -> String {
        match &self.inner.backend {
            Backend::Sqlite(sqlite) => sqlite.path.display().to_string(),
            Backend::Postgres(postgres) => postgres.display().to_owned(),
        }
    }

    /// The embedded database's file, when this is one.
    pub(crate) fn sqlite_path(&self) -> Option<&Path> {
        match &self.inner.backend {
            Backend::Sqlite(sqlite) => Some(&sqlite.path),
            Backend::Postgres(_) => None,
        }
    }

    /// Which database this is: `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match &self.inner.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    pub(crate) fn value_cache(&self) -> &Mutex<ValueCache> {
        &self.inner.values
    }

    /// The store's clock.
    pub fn now(&self) -> Timestamp {
        stackbill_core::clock::to_micros(self.inner.clock.now())
    }

    /// Runs `f` in a read transaction, on a blocking thread.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Conn<'_>) -> Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let runtime = tokio::runtime::Handle::current();
        run_blocking(move || match &inner.backend {
            Backend::Sqlite(sqlite) => sqlite.read(f),
            Backend::Postgres(postgres) => postgres.read(&runtime, f),
        })
        .await
    }

    /// Runs `f` in a write transaction, on a blocking thread, and commits if it succeeds.
    /// `f` gets the transaction's instant: the clock's reading, but always after the
    /// previous write transaction's, by this process or any other on the same database.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Conn<'_>, Timestamp) -> Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let runtime = tokio::runtime::Handle::current();
        run_blocking(move || {
            let clock = inner.clock.now().as_microsecond();
            match &inner.backend {
                Backend::Sqlite(sqlite) => sqlite.write(clock, f),
                Backend::Postgres(postgres) => postgres.write(&runtime, clock, f),
            }
        })
        .await
    }

    /// Checks that the database answers.
    pub async fn health(&self) -> Result<()> {
        self.read(|conn| {
            conn.query_one("SELECT count(*) FROM schema_migrations", params![], |row| {
                row.get::<i64>(0)
            })?;
            Ok(())
        })
        .await
    }
}

/// The writer connection of a database file: created if missing, in write-ahead-log mode,
/// migrated.
fn open_writer(path: &Path, now_micros: i64) -> Result<Connection> {
    let mut writer = open_connection(
        path,
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
    migrate_sqlite(&mut writer, now_micros)?;
    Ok(writer)
}

fn migrate_sqlite(conn: &mut Connection, now_micros: i64) -> Result<()> {
    migrate(
        &Conn::Sqlite(conn),
        SQLITE_MIGRATIONS,
        "BEGIN IMMEDIATE",
        now_micros,
    )
}

impl Sqlite {
    fn read<T>(&self, f: impl FnOnce(&Conn<'_>) -> Result<T>) -> Result<T> {
        let pooled = self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => open_connection(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?,
        };
        // A deferred transaction: every statement of the call reads one snapshot.
        let result = (|| {
            conn.execute_batch("BEGIN")?;
            let value = f(&Conn::Sqlite(&conn));
            conn.execute_batch("COMMIT")?;
            value
        })();
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        let mut idle = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_READERS && conn.is_autocommit() {
            idle.push(conn);
        }
        result
    }

    fn write<T>(&self, clock: i64, f: impl FnOnce(&Conn<'_>, Timestamp) -> Result<T>) -> Result<T> {
        // A panic inside a transaction leaves nothing committed, so the connection is
        // still usable after a poisoned lock.
        let mut conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let conn = Conn::Sqlite(&tx);
        let now = next_instant(&conn, clock)?;
        let value = f(&conn, now)?;
        tx.commit()?;
        Ok(value)
    }
}

/// Takes the write transaction's instant from `store_clock`: the clock's reading, or just
/// after the last write's. In PostgreSQL this is the transaction's first statement, and its
/// row lock is what serializes writers.
pub(crate) fn next_instant(conn: &Conn<'_>, clock: i64) -> Result<Timestamp> {
    let micros: i64 = conn.query_one(
        "UPDATE store_clock SET last_micros = CASE WHEN last_micros + 1 > ?1
              THEN last_micros + 1 ELSE ?1 END
         WHERE id = 1 RETURNING last_micros",
        params![clock],
        |row| row.get(0),
    )?;
    Timestamp::from_microsecond(micros).map_err(StoreError::corrupt)
}

/// Runs `f` on the runtime's blocking threads: database work, and any lock a database call
/// may hold, never block a worker.
pub(crate) async fn run_blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|err| StoreError::Worker(err.to_string()))?
}
