//! Copying an embedded database into an empty PostgreSQL one, for a CSP moving to several
//! nodes: every row of every table (the billing record, its audit trail, the tokens), with
//! the same ids and record numbers, in one PostgreSQL transaction read from one SQLite
//! snapshot. Nothing is interpreted on the way: values go as text through `COPY`, and
//! PostgreSQL's column types (`NUMERIC`, `BYTEA`, ...) parse them, so a value that does not
//! fit its column fails the copy rather than change.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::pin::pin;

use futures_util::SinkExt;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use crate::backend::sqlite::open_connection;
use crate::db::{Conn, PgConn};
use crate::error::{Result, StoreError};
use crate::store::Store;

/// Bytes of `COPY` text sent to the server at a time.
const CHUNK_BYTES: usize = 1 << 20;

/// Tables that are each database's own, not data: applied migrations differ by backend.
const NOT_COPIED: &[&str] = &["schema_migrations"];

/// The one table that a new database already has a row in.
const CLOCK_TABLE: &str = "store_clock";

/// Rows copied into one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopy {
    /// The table.
    pub table: String,
    /// Its rows.
    pub rows: u64,
}

/// Reports a copy's progress: rows copied so far, and in all.
pub type CopyProgress = Box<dyn Fn(u64, u64) + Send>;

impl Store {
    /// Copies every row of this store, an embedded (SQLite) database, into `target`, a
    /// PostgreSQL database that holds no data yet (only what its migrations made). Both are
    /// at the same schema version (opening a store migrates it). The copy reads one snapshot
    /// and writes one transaction: it is all there, or nothing is. `progress` hears of each
    /// step. The answer is the rows copied per table, in the order they were copied.
    pub async fn copy_into(
        &self,
        target: &Store,
        progress: CopyProgress,
    ) -> Result<Vec<TableCopy>> {
        let Some(source) = self.sqlite_path().map(std::path::Path::to_path_buf) else {
            return Err(StoreError::Config(
                "the copy reads an embedded database file (--db), not PostgreSQL".into(),
            ));
        };
        if target.sqlite_path().is_some() {
            return Err(StoreError::Config(
                "the copy writes into a PostgreSQL database (--to postgres://...)".into(),
            ));
        }
        target
            .write(move |conn, _| {
                let Conn::Postgres(pg) = conn else {
                    return Err(StoreError::Config("the target is not PostgreSQL".into()));
                };
                let sqlite = open_connection(&source, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
                // One snapshot for the whole copy: a deferred transaction pins it at its first
                // read.
                sqlite.execute_batch("BEGIN")?;
                let copied = copy_tables(&sqlite, pg, &progress);
                let _ = sqlite.execute_batch("COMMIT");
                copied
            })
            .await
    }
}

fn copy_tables(
    sqlite: &Connection,
    pg: &PgConn<'_>,
    progress: &CopyProgress,
) -> Result<Vec<TableCopy>> {
    let tables = tables_in_order(sqlite)?;
    check_same_tables(pg, &tables)?;
    let mut counts = Vec::with_capacity(tables.len());
    for table in &tables {
        let rows: i64 =
            sqlite.query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |row| {
                row.get(0)
            })?;
        counts.push(u64::try_from(rows).map_err(StoreError::corrupt)?);
    }
    let total: u64 = counts.iter().sum();
    for table in tables.iter().filter(|t| *t != CLOCK_TABLE) {
        let has_rows = !pg
            .query(&format!("SELECT 1 FROM \"{table}\" LIMIT 1"), &[])?
            .is_empty();
        if has_rows {
            return Err(StoreError::Config(format!(
                "the target database is not empty (table {table} has rows); copy into a new, \
                 empty database"
            )));
        }
    }
    let mut done = 0;
    let mut copied = Vec::with_capacity(tables.len());
    for (table, &expected) in tables.iter().zip(&counts) {
        let rows = if table == CLOCK_TABLE {
            copy_clock(sqlite, pg)?
        } else {
            copy_table(sqlite, pg, table, |rows| progress(done + rows, total))?
        };
        if rows != expected {
            return Err(StoreError::Corrupt(format!(
                "{table}: {rows} rows copied of {expected}"
            )));
        }
        done += rows;
        progress(done, total);
        copied.push(TableCopy {
            table: table.clone(),
            rows,
        });
    }
    restart_identities(pg)?;
    Ok(copied)
}

/// The embedded database's tables, each after the tables its foreign keys refer to.
fn tables_in_order(sqlite: &Connection) -> Result<Vec<String>> {
    let mut names = sqlite.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         ORDER BY name",
    )?;
    let names: Vec<String> = names
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut refers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for name in names.iter().filter(|n| !NOT_COPIED.contains(&n.as_str())) {
        let mut keys = sqlite.prepare("SELECT \"table\" FROM pragma_foreign_key_list(?1)")?;
        let parents = keys
            .query_map([name], |row| row.get::<_, String>(0))?
            .collect::<rusqlite::Result<BTreeSet<_>>>()?;
        refers.insert(name.clone(), parents);
    }
    let mut ordered: Vec<String> = Vec::with_capacity(refers.len());
    while !refers.is_empty() {
        let ready: Vec<String> = refers
            .iter()
            .filter(|(name, parents)| {
                parents
                    .iter()
                    .all(|p| p == *name || ordered.contains(p) || !refers.contains_key(p))
            })
            .map(|(name, _)| name.clone())
            .collect();
        if ready.is_empty() {
            return Err(StoreError::Schema(format!(
                "foreign keys form a cycle among {:?}",
                refers.keys().collect::<Vec<_>>()
            )));
        }
        for name in ready {
            refers.remove(&name);
            ordered.push(name);
        }
    }
    Ok(ordered)
}

/// Refuses a target whose tables are not the source's.
fn check_same_tables(pg: &PgConn<'_>, tables: &[String]) -> Result<()> {
    let target: BTreeSet<String> = pg
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
            &[],
        )?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    let target: BTreeSet<&str> = target
        .iter()
        .map(String::as_str)
        .filter(|t| !NOT_COPIED.contains(t))
        .collect();
    let source: BTreeSet<&str> = tables.iter().map(String::as_str).collect();
    if source != target {
        return Err(StoreError::Schema(format!(
            "the databases' tables differ: only in the file {:?}, only in PostgreSQL {:?}",
            source.difference(&target).collect::<Vec<_>>(),
            target.difference(&source).collect::<Vec<_>>()
        )));
    }
    Ok(())
}

/// The target table's columns, in order, and what to select for each from the source (its
/// column of the same name; SQLite's implicit `rowid` for PostgreSQL's explicit one).
fn columns(sqlite: &Connection, pg: &PgConn<'_>, table: &str) -> Result<Vec<String>> {
    let target: Vec<String> = pg
        .query(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    let mut info = sqlite.prepare("SELECT name FROM pragma_table_info(?1)")?;
    let source: BTreeSet<String> = info
        .query_map([table], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let only_source: Vec<&String> = source.iter().filter(|c| !target.contains(c)).collect();
    let only_target: Vec<&String> = target
        .iter()
        .filter(|c| !source.contains(*c) && *c != "rowid")
        .collect();
    if !only_source.is_empty() || !only_target.is_empty() {
        return Err(StoreError::Schema(format!(
            "{table}: columns only in the file {only_source:?}, only in PostgreSQL {only_target:?}"
        )));
    }
    Ok(target)
}

/// Copies one table through `COPY ... FROM STDIN` (text format); `progress` hears the rows
/// sent so far.
fn copy_table(
    sqlite: &Connection,
    pg: &PgConn<'_>,
    table: &str,
    progress: impl Fn(u64),
) -> Result<u64> {
    let columns = columns(sqlite, pg, table)?;
    let list = columns
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut select = sqlite.prepare(&format!("SELECT {list} FROM \"{table}\""))?;
    pg.runtime.block_on(async {
        let sink = pg
            .client
            .copy_in::<str, Cursor<Vec<u8>>>(&format!("COPY \"{table}\" ({list}) FROM STDIN"))
            .await?;
        let mut sink = pin!(sink);
        let mut chunk = Vec::with_capacity(CHUNK_BYTES + 4096);
        let mut sent = 0u64;
        let mut rows = select.query([])?;
        while let Some(row) = rows.next()? {
            for (index, column) in columns.iter().enumerate() {
                if index > 0 {
                    chunk.push(b'\t');
                }
                write_value(&mut chunk, row.get_ref(index)?, table, column)?;
            }
            chunk.push(b'\n');
            sent += 1;
            if chunk.len() >= CHUNK_BYTES {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_BYTES + 4096));
                sink.send(Cursor::new(full)).await?;
                progress(sent);
            }
        }
        if !chunk.is_empty() {
            sink.send(Cursor::new(chunk)).await?;
        }
        Ok(sink.finish().await?)
    })
}

/// One value in `COPY` text form: `\N` for NULL, escaped text, `\x`-hex bytes.
fn write_value(out: &mut Vec<u8>, value: ValueRef<'_>, table: &str, column: &str) -> Result<()> {
    match value {
        ValueRef::Null => out.extend_from_slice(b"\\N"),
        ValueRef::Integer(n) => out.extend_from_slice(n.to_string().as_bytes()),
        ValueRef::Text(text) => {
            for &byte in text {
                match byte {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    other => out.push(other),
                }
            }
        }
        ValueRef::Blob(bytes) => {
            // `\\x` in COPY text is the bytea input `\x`, then the hex digits.
            out.extend_from_slice(b"\\\\x");
            for byte in bytes {
                out.extend_from_slice(format!("{byte:02x}").as_bytes());
            }
        }
        // stackbill stores no floating-point values; one here is not stackbill's data.
        ValueRef::Real(_) => {
            return Err(StoreError::Corrupt(format!(
                "{table}.{column} holds a floating-point value"
            )));
        }
    }
    Ok(())
}

/// The store clock: the later of the two databases' last write instants.
fn copy_clock(sqlite: &Connection, pg: &PgConn<'_>) -> Result<u64> {
    let last: i64 = sqlite.query_row(
        "SELECT last_micros FROM store_clock WHERE id = 1",
        [],
        |row| row.get(0),
    )?;
    pg.execute(
        "UPDATE store_clock SET last_micros = GREATEST(last_micros, $1) WHERE id = 1",
        &[&last],
    )
}

/// Moves every identity column's next value past the copied ones.
fn restart_identities(pg: &PgConn<'_>) -> Result<()> {
    let identities = pg.query(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND is_identity = 'YES'",
        &[],
    )?;
    for row in identities {
        let (table, column): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        pg.query(
            &format!(
                "SELECT setval(pg_get_serial_sequence($1, $2), COALESCE(max(\"{column}\"), 0) + 1, \
                 false) FROM \"{table}\""
            ),
            &[&table, &column],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

    use super::*;

    fn text(value: ValueRef<'_>) -> String {
        let mut out = Vec::new();
        write_value(&mut out, value, "t", "c").unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn values_are_written_in_copy_text_form() {
        assert_eq!(text(ValueRef::Null), "\\N");
        assert_eq!(text(ValueRef::Integer(-42)), "-42");
        assert_eq!(
            text(ValueRef::Text(b"a\\b\tc\nd\re 1.50")),
            "a\\\\b\\tc\\nd\\re 1.50"
        );
        assert_eq!(text(ValueRef::Blob(&[0x00, 0xab, 0xff])), "\\\\x00abff");
        let mut out = Vec::new();
        let err = write_value(&mut out, ValueRef::Real(1.5), "usage_records", "quantity");
        assert!(
            err.unwrap_err()
                .to_string()
                .contains("usage_records.quantity")
        );
    }
}
