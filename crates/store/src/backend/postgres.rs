//! The PostgreSQL backend: a pool of connections to one database that several stackbill
//! processes may share. Connection failures surface as [`StoreError::is_unavailable`]
//! errors; the pool replaces broken connections on its own.
//!
//! Reads are `REPEATABLE READ READ ONLY` transactions (one snapshot); writes are `READ
//! COMMITTED` ones whose first statement takes the `store_clock` row lock, which serializes
//! writers across every node. A write waits 30 s at most for that lock (`lock_timeout`) and the
//! server ends a session idle in a transaction for 60 s, so a frozen node cannot hold every
//! node's writes for longer; both are set per transaction and both failures are unavailable.
//! TLS (rustls) is used when the URL says `sslmode=require`, the server's certificate always
//! verified against `sslrootcert` or the system's authorities. Pool: 16 connections a node
//! (`?pool_size=`), 5 s to get or make one, TCP keepalives and a 30 s user timeout.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use jiff::Timestamp;
use rustls::pki_types::pem::PemObject;
use tokio::runtime::Handle;
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;

use super::next_instant;
use crate::db::{Conn, PgConn};
use crate::error::{Result, StoreError};
use crate::migrate::{POSTGRES_MIGRATIONS, migrate};

/// Connections per process unless the URL's `pool_size` parameter says otherwise.
const DEFAULT_POOL_SIZE: usize = 16;
/// How long a call waits for a connection (to be free, or to be made) before failing.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a write waits for the write lock (`lock_timeout=SECONDS`) before failing as
/// unavailable (503 and `Retry-After`): writers queue behind one another, not forever.
const DEFAULT_LOCK_TIMEOUT_SECONDS: u64 = 30;
/// How long the server lets a transaction of stackbill's sit idle between statements
/// (`idle_in_transaction_session_timeout=SECONDS`) before ending its session: a node that
/// stops mid-transaction (frozen, cut off) gives up the write lock after this long.
const DEFAULT_IDLE_TIMEOUT_SECONDS: u64 = 60;
/// The advisory lock held while migrating, so that nodes starting at once take turns.
const MIGRATION_LOCK: i64 = 0x5354_4b42_4d49_4752; // "STKBMIGR"

pub(crate) struct Postgres {
    pool: Pool,
    display: String,
    /// What starts a read transaction, and a write one.
    read_begin: String,
    write_begin: String,
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

/// What stackbill reads from the URL itself rather than passing to the driver.
#[derive(Debug, PartialEq, Eq)]
struct Settings {
    /// The URL without stackbill's own parameters.
    url: String,
    /// Connections per process (`pool_size=N`).
    pool_size: usize,
    /// A PEM file of the certificate authorities to trust (`sslrootcert=FILE`) instead of
    /// the system's.
    root_certificates: Option<String>,
    /// Seconds a write waits for the write lock (`lock_timeout=N`; 0: no limit).
    lock_timeout: u64,
    /// Seconds a transaction may sit idle (`idle_in_transaction_session_timeout=N`; 0: no
    /// limit).
    idle_timeout: u64,
}

/// A URL parameter's whole number of seconds.
fn seconds(name: &str, value: &str) -> Result<u64> {
    value.parse().map_err(|_| {
        StoreError::Config(format!(
            "{name} must be a whole number of seconds, not '{value}'"
        ))
    })
}

fn settings(url: &str) -> Result<Settings> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut pool_size = DEFAULT_POOL_SIZE;
    let mut root_certificates = None;
    let mut lock_timeout = DEFAULT_LOCK_TIMEOUT_SECONDS;
    let mut idle_timeout = DEFAULT_IDLE_TIMEOUT_SECONDS;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        if let Some(value) = pair.strip_prefix("pool_size=") {
            pool_size = value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                StoreError::Config(format!(
                    "pool_size must be a positive whole number, not '{value}'"
                ))
            })?;
        } else if let Some(value) = pair.strip_prefix("sslrootcert=") {
            root_certificates = Some(value.to_owned());
        } else if let Some(value) = pair.strip_prefix("lock_timeout=") {
            lock_timeout = seconds("lock_timeout", value)?;
        } else if let Some(value) = pair.strip_prefix("idle_in_transaction_session_timeout=") {
            idle_timeout = seconds("idle_in_transaction_session_timeout", value)?;
        } else {
            kept.push(pair);
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok(Settings {
        url,
        pool_size,
        root_certificates,
        lock_timeout,
        idle_timeout,
    })
}

/// The TLS set-up for `sslmode=require`: the server's certificate is always verified, against
/// the certificate authorities of `sslrootcert` or else the system's.
fn tls(root_certificates: Option<&str>) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    let mut roots = rustls::RootCertStore::empty();
    match root_certificates {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|err| {
                StoreError::Config(format!("cannot read sslrootcert {path}: {err}"))
            })?;
            for certificate in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                let certificate = certificate.map_err(|err| {
                    StoreError::Config(format!("sslrootcert {path} is not PEM: {err}"))
                })?;
                roots
                    .add(certificate)
                    .map_err(|err| StoreError::Config(format!("sslrootcert {path}: {err}")))?;
            }
            if roots.is_empty() {
                return Err(StoreError::Config(format!(
                    "sslrootcert {path} holds no certificate"
                )));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for certificate in found.certs {
                // A system certificate rustls cannot use is skipped, as libpq would.
                let _ = roots.add(certificate);
            }
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| StoreError::Config(err.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

fn make_pool(settings: &Settings) -> Result<Pool> {
    let mut config: tokio_postgres::Config = settings
        .url
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
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    // TLS only when asked for: `prefer` (the driver's default) would otherwise fail against a
    // server whose certificate is self-signed (Debian's default) instead of going on in plain.
    let manager = if config.get_ssl_mode() == SslMode::Require {
        Manager::from_config(
            config,
            tls(settings.root_certificates.as_deref())?,
            manager_config,
        )
    } else {
        config.ssl_mode(SslMode::Disable);
        Manager::from_config(config, NoTls, manager_config)
    };
    Pool::builder(manager)
        .max_size(settings.pool_size)
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
        let settings = settings(url)?;
        std::thread::scope(|scope| {
            scope
                .spawn(|| -> Result<()> {
                    let runtime = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(1)
                        .enable_all()
                        .build()
                        .map_err(|err| StoreError::Worker(err.to_string()))?;
                    let pool = make_pool(&settings)?;
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
        // Set per transaction (not at connect), so that a pooler in transaction mode passes
        // them on. A read holds no lock a writer waits for, only a snapshot.
        let idle = format!(
            "SET LOCAL idle_in_transaction_session_timeout = '{}s'",
            settings.idle_timeout
        );
        Ok(Self {
            pool: make_pool(&settings)?,
            display,
            read_begin: format!("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; {idle}"),
            write_begin: format!(
                "BEGIN ISOLATION LEVEL READ COMMITTED; {idle}; SET LOCAL lock_timeout = '{}s'",
                settings.lock_timeout
            ),
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
        self.transaction(runtime, &self.read_begin, f)
    }

    pub(crate) fn write<T>(
        &self,
        runtime: &Handle,
        clock: i64,
        f: impl FnOnce(&Conn<'_>, Timestamp) -> Result<T>,
    ) -> Result<T> {
        // READ COMMITTED: every statement after the store_clock lock sees every write
        // committed before this one took it.
        self.transaction(runtime, &self.write_begin, |conn| {
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
    fn stackbill_settings_are_read_from_the_url() {
        assert_eq!(
            settings("postgres://h/db?pool_size=4&sslmode=require&sslrootcert=/etc/ca.pem")
                .unwrap(),
            Settings {
                url: "postgres://h/db?sslmode=require".to_owned(),
                pool_size: 4,
                root_certificates: Some("/etc/ca.pem".to_owned()),
                lock_timeout: DEFAULT_LOCK_TIMEOUT_SECONDS,
                idle_timeout: DEFAULT_IDLE_TIMEOUT_SECONDS,
            }
        );
        assert_eq!(
            settings("postgres://h/db").unwrap(),
            Settings {
                url: "postgres://h/db".to_owned(),
                pool_size: DEFAULT_POOL_SIZE,
                root_certificates: None,
                lock_timeout: DEFAULT_LOCK_TIMEOUT_SECONDS,
                idle_timeout: DEFAULT_IDLE_TIMEOUT_SECONDS,
            }
        );
        let timeouts =
            settings("postgres://h/db?lock_timeout=5&idle_in_transaction_session_timeout=0")
                .unwrap();
        assert_eq!(
            (
                timeouts.url.as_str(),
                timeouts.lock_timeout,
                timeouts.idle_timeout
            ),
            ("postgres://h/db", 5, 0)
        );
        assert!(settings("postgres://h/db?pool_size=0").is_err());
        let err = settings("postgres://h/db?lock_timeout=5s").unwrap_err();
        assert!(err.to_string().contains("lock_timeout"), "{err}");
    }

    #[test]
    fn an_unreadable_root_certificate_file_is_named() {
        let err = tls(Some("/nonexistent/ca.pem"))
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("/nonexistent/ca.pem")),
            "{err:?}"
        );
    }
}
