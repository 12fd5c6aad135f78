//! The PostgreSQL backend: a pool of connections to one database that several stackbill
//! processes may share. Connection failures surface as [`StoreError::is_unavailable`]
//! errors; the pool replaces broken connections on its own.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use jiff::Timestamp;
use tokio::runtime::Handle;
use tokio_postgres::NoTls;

use crate::db::{Conn, PgConn};
use crate::error::{Result, StoreError};
use crate::migrate::{POSTGRES_MIGRATIONS, migrate};
use crate::store::next_instant;

/// Connections per process unless the URL's `pool_size` parameter says otherwise.
const DEFAULT_POOL_SIZE: usize = 16;
/// How long a call waits for a connection (to be free, or to be made) before failing.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The advisory lock held while migrating, so that nodes starting at once take turns.
const MIGRATION_LOCK: i64 = 0x5354_4b42_4d49_4752; // "STKBMIGR"

pub(crate) struct Postgres {
    pool: Pool,
    display: String,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("url", &self.display)
            .finish_non_exhaustive()
    }
}

/// The URL without its password.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}")
        }
        None => url.to_owned(),
    }
}

/// The pool size asked for in the URL (`?pool_size=N`), and the URL without it.
fn pool_size(url: &str) -> Result<(String, usize)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), DEFAULT_POOL_SIZE));
    };
    let mut size = DEFAULT_POOL_SIZE;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.strip_prefix("pool_size=") {
            Some(value) => {
                size = value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    StoreError::Config(format!(
                        "pool_size must be a positive whole number, not '{value}'"
                    ))
                })?;
            }
            None => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, size))
}

fn make_pool(url: &str) -> Result<Pool> {
    let (url, size) = pool_size(url)?;
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|err| StoreError::Config(format!("invalid PostgreSQL URL: {err}")))?;
    // A server that stops answering (a network partition, a host crash) fails the calls
    // waiting on it within about half a minute instead of leaving them hanging.
    config.connect_timeout(CONNECT_TIMEOUT);
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(10));
    config.keepalives_interval(Duration::from_secs(5));
    config.keepalives_retries(3);
    config.tcp_user_timeout(Duration::from_secs(30));
    config.application_name("stackbill");
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .timeouts(Timeouts {
            wait: Some(CONNECT_TIMEOUT),
            create: Some(CONNECT_TIMEOUT),
            recycle: Some(CONNECT_TIMEOUT),
        })
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|err| StoreError::Config(err.to_string()))
}

fn pool_error(err: deadpool_postgres::PoolError) -> StoreError {
    match err {
        deadpool_postgres::PoolError::Backend(err) => StoreError::Postgres(err),
        other => StoreError::Unavailable(other.to_string()),
    }
}

impl Postgres {
    /// Makes the pool and migrates the database, on a runtime of its own so that this can be
    /// called from anywhere.
    pub(crate) fn open(url: &str, now_micros: i64) -> Result<Self> {
        let display = redact(url);
        let url = url.to_owned();
        std::thread::scope(|scope| {
            scope
                .spawn(|| -> Result<()> {
                    let runtime = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(1)
                        .enable_all()
                        .build()
                        .map_err(|err| StoreError::Worker(err.to_string()))?;
                    let pool = make_pool(&url)?;
                    let client = runtime.block_on(pool.get()).map_err(pool_error)?;
                    let conn = Conn::Postgres(PgConn {
                        client: &client,
                        runtime: runtime.handle(),
                    });
                    conn.query_one(
                        "SELECT pg_advisory_lock(?1)::text",
                        crate::db::params![MIGRATION_LOCK],
                        |_| Ok(()),
                    )?;
                    let migrated = migrate(&conn, POSTGRES_MIGRATIONS, "BEGIN", now_micros);
                    let unlocked = conn.query_one(
                        "SELECT pg_advisory_unlock(?1)::text",
                        crate::db::params![MIGRATION_LOCK],
                        |_| Ok(()),
                    );
                    migrated.and(unlocked)
                })
                .join()
                .map_err(|_| StoreError::Worker("the migration thread panicked".into()))?
        })?;
        Ok(Self {
            pool: make_pool(&url)?,
            display,
        })
    }

    pub(crate) fn display(&self) -> &str {
        &self.display
    }

    /// Runs `f` with a pooled connection inside `begin` … `COMMIT`, rolling back on error.
    /// A connection whose rollback fails is dropped from the pool.
    fn transaction<T>(
        &self,
        runtime: &Handle,
        begin: &str,
        f: impl FnOnce(&Conn<'_>) -> Result<T>,
    ) -> Result<T> {
        let client = runtime.block_on(self.pool.get()).map_err(pool_error)?;
        let conn = Conn::Postgres(PgConn {
            client: &client,
            runtime,
        });
        let result = (|| {
            conn.batch(begin)?;
            let value = f(&conn)?;
            conn.batch("COMMIT")?;
            Ok(value)
        })();
        if result.is_err() && conn.batch("ROLLBACK").is_err() {
            let _ = deadpool_postgres::Object::take(client);
        }
        result
    }

    pub(crate) fn read<T>(
        &self,
        runtime: &Handle,
        f: impl FnOnce(&Conn<'_>) -> Result<T>,
    ) -> Result<T> {
        self.transaction(
            runtime,
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            f,
        )
    }

    pub(crate) fn write<T>(
        &self,
        runtime: &Handle,
        clock: i64,
        f: impl FnOnce(&Conn<'_>, Timestamp) -> Result<T>,
    ) -> Result<T> {
        // READ COMMITTED: every statement after the store_clock lock sees every write
        // committed before this one took it.
        self.transaction(runtime, "BEGIN ISOLATION LEVEL READ COMMITTED", |conn| {
            let now = next_instant(conn, clock)?;
            f(conn, now)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_not_shown() {
        assert_eq!(
            redact("postgres://bill:secret@db.example:5432/stackbill"),
            "postgres://bill@db.example:5432/stackbill"
        );
        assert_eq!(redact("postgres://db/stackbill"), "postgres://db/stackbill");
    }

    #[test]
    fn the_pool_size_is_read_from_the_url() {
        assert_eq!(
            pool_size("postgres://h/db?pool_size=4&sslmode=disable").unwrap(),
            ("postgres://h/db?sslmode=disable".to_owned(), 4)
        );
        assert_eq!(
            pool_size("postgres://h/db").unwrap(),
            ("postgres://h/db".to_owned(), DEFAULT_POOL_SIZE)
        );
        assert!(pool_size("postgres://h/db?pool_size=0").is_err());
    }
}
