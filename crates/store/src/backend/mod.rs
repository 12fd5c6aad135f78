//! The two databases behind a [`crate::Store`]: the embedded file ([`sqlite`]) and a
//! PostgreSQL server shared by several nodes ([`postgres`]). Each opens its connections,
//! migrates, and runs a closure inside a read or a write transaction; everything above
//! them is written once over [`crate::db::Conn`].

pub(crate) mod postgres;
pub(crate) mod sqlite;

use jiff::Timestamp;

use crate::db::{Conn, params};
use crate::error::{Result, StoreError};

/// The database a store runs on.
#[derive(Debug)]
pub(crate) enum Backend {
    Sqlite(sqlite::Sqlite),
    Postgres(postgres::Postgres),
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
