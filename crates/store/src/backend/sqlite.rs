//! The embedded backend: one SQLite file in write-ahead-log mode with `synchronous=FULL` and
//! `foreign_keys=ON`. One writer connection (writes use `BEGIN IMMEDIATE`, so a CLI process
//! and a server on the same file serialize) and a few reader connections, each read one
//! deferred transaction (one snapshot).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::next_instant;
use crate::db::Conn;
use crate::error::{Result, StoreError};
use crate::migrate::{SQLITE_MIGRATIONS, migrate};

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

#[derive(Debug)]
pub(crate) struct Sqlite {
    pub(crate) path: PathBuf,
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

impl Sqlite {
    /// Opens (creating if needed) the database file at `path` and migrates it. Several
    /// processes may open one new file at once: whichever finds it locked (while another sets
    /// up write-ahead logging or migrates) tries again, for up to the busy timeout.
    pub(crate) fn open(path: PathBuf, now_micros: i64) -> Result<Self> {
        let deadline =
            std::time::Instant::now() + std::time::Duration::from_millis(BUSY_TIMEOUT_MS);
        let writer = loop {
            match open_writer(&path, now_micros) {
                Err(err) if err.is_unavailable() && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(err) => return Err(explain_open_failure(&path, err)),
                Ok(writer) => break writer,
            }
        };
        Ok(Self {
            path,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn read<T>(&self, f: impl FnOnce(&Conn<'_>) -> Result<T>) -> Result<T> {
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

    pub(crate) fn write<T>(
        &self,
        clock: i64,
        f: impl FnOnce(&Conn<'_>, Timestamp) -> Result<T>,
    ) -> Result<T> {
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

/// SQLite's "unable to open database file" says nothing of why; a database that exists but
/// cannot be written (a read-only file or mount) is the common cause, and is said so.
fn explain_open_failure(path: &std::path::Path, err: StoreError) -> StoreError {
    if !path.is_file() || err.is_unavailable() {
        return err;
    }
    match std::fs::OpenOptions::new().append(true).open(path) {
        Err(io) => StoreError::Config(format!(
            "the database {} cannot be written: {io}",
            path.display()
        )),
        Ok(_) => err,
    }
}
