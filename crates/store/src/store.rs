//! The [`Store`] handle over either database: the embedded SQLite file (WAL,
//! `synchronous=FULL`, one writer connection and a few readers) or a PostgreSQL server
//! (a pool of connections, shared with other stackbill processes). Every call runs on a
//! blocking thread as one transaction.
//!
//! Write transactions are serialized per database, whichever process runs them: in SQLite by
//! its one write lock, in PostgreSQL by the row lock on `store_clock` that every write takes
//! first. So a write sees every write committed before it, and the instants and record
//! numbers it assigns grow in commit order, on one node or many.
//!
//! Never block a runtime worker on the store: the PostgreSQL driver's connection tasks run
//! on the runtime's workers, and a blocking thread inside a transaction waits on them. So
//! database calls, and any lock a transaction may hold (the SQLite writer, the value cache a
//! usage batch holds for its whole transaction), are taken only on blocking threads
//! ([`run_blocking`]); a unit test in `usage/mod.rs` fails if an ingestion's poll waits.

use std::path::Path;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use stackbill_core::Clock;

use crate::backend::Backend;
use crate::backend::postgres::Postgres;
use crate::backend::sqlite::Sqlite;
use crate::db::{Conn, params};
use crate::error::{Result, StoreError};
use crate::values::ValueCache;

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

/// Whether `location` names a PostgreSQL server rather than a file.
fn is_postgres_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

impl Store {
    /// Opens (creating if needed) the database file at `path` and migrates it. Several
    /// processes may open one new file at once: whichever finds it locked (while another sets
    /// up write-ahead logging or migrates) tries again, for up to the busy timeout.
    pub fn open(path: impl AsRef<Path>, clock: Arc<dyn Clock>) -> Result<Self> {
        let sqlite = Sqlite::open(path.as_ref().to_path_buf(), clock.now().as_microsecond())?;
        Ok(Self::with_backend(Backend::Sqlite(sqlite), clock))
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

    /// An instant at or after every write committed so far: the clock's reading, or the last
    /// write's instant when that is later (writes take instants past a clock that stepped
    /// back). An as-of read at it sees everything committed before the call.
    pub async fn settled_now(&self) -> Result<Timestamp> {
        let now = self.now();
        let last: i64 = self
            .read(|conn| {
                conn.query_one(
                    "SELECT last_micros FROM store_clock WHERE id = 1",
                    crate::db::params![],
                    |row| row.get(0),
                )
            })
            .await?;
        Ok(now.max(crate::db::instant(last)?))
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

    /// Checks that the database answers and takes writes.
    pub async fn health(&self) -> Result<()> {
        self.read(|conn| {
            conn.query_one("SELECT count(*) FROM schema_migrations", params![], |row| {
                row.get::<i64>(0)
            })?;
            Ok(())
        })
        .await?;
        // A write transaction moves the write clock: it fails when the database cannot be
        // written (a full disk, a read-only file or server), which a read would not show.
        self.write(|_, _| Ok(())).await
    }
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
