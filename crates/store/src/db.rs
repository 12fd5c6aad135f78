//! One SQL surface over the two databases, so that each store operation is written once.
//!
//! Statements are written with SQLite's numbered placeholders (`?1`, `?2`); for PostgreSQL
//! they become `$1`, `$2`. Parameters implement both databases' `ToSql` ([`Param`]);
//! decimals go through [`Num`] (canonical text in SQLite, `NUMERIC` in PostgreSQL). Rows are
//! read column by column through [`Column`], which hides the two drivers' types. The
//! PostgreSQL calls are made from the store's blocking threads, each one run to completion
//! on the runtime that owns the pool's connections.

use std::borrow::Cow;
use std::str::FromStr;

use futures_util::TryStreamExt;
use jiff::Timestamp;
use rust_decimal::Decimal;
use tokio::runtime::Handle;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use crate::error::{Result, StoreError};

/// A statement parameter either database can bind.
pub(crate) trait Param: rusqlite::ToSql + ToSql + Sync {}

impl<T: rusqlite::ToSql + ToSql + Sync> Param for T {}

/// Parameters for [`Conn`] calls: `params![a, b]`.
macro_rules! params {
    () => { &[] as &[&dyn $crate::db::Param] };
    ($($param:expr),+ $(,)?) => { &[$(&$param as &dyn $crate::db::Param),+] as &[&dyn $crate::db::Param] };
}
pub(crate) use params;

/// An exact decimal parameter: canonical text in SQLite, `NUMERIC` in PostgreSQL.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Num(pub(crate) Decimal);

impl rusqlite::ToSql for Num {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::Owned(
            rusqlite::types::Value::Text(self.0.to_string()),
        ))
    }
}

impl ToSql for Num {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.0.to_sql(ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        <Decimal as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

/// A PostgreSQL connection taken from the pool, with the runtime that drives it.
pub(crate) struct PgConn<'a> {
    pub(crate) client: &'a deadpool_postgres::ClientWrapper,
    pub(crate) runtime: &'a Handle,
}

impl PgConn<'_> {
    /// Runs a driver future to completion from a blocking thread.
    pub(crate) fn block_on<T>(
        &self,
        future: impl Future<Output = std::result::Result<T, tokio_postgres::Error>>,
    ) -> Result<T> {
        Ok(self.runtime.block_on(future)?)
    }

    async fn statement(
        &self,
        sql: &str,
    ) -> std::result::Result<tokio_postgres::Statement, tokio_postgres::Error> {
        self.client.prepare_cached(&postgres_sql(sql)).await
    }

    fn rows(&self, sql: &str, params: &[&dyn Param]) -> Result<Vec<tokio_postgres::Row>> {
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| *p as _).collect();
        self.query(sql, &params)
    }

    /// Every row of a PostgreSQL-only statement, whose parameters may be any the driver
    /// takes (arrays for `unnest`, say).
    pub(crate) fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>> {
        self.block_on(async {
            let statement = self.statement(sql).await?;
            self.client.query(&statement, params).await
        })
    }

    /// Runs a PostgreSQL-only statement; the number of rows it changed.
    pub(crate) fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        self.block_on(async {
            let statement = self.statement(sql).await?;
            self.client.execute(&statement, params).await
        })
    }
}

/// A connection (inside a transaction) of either database.
pub(crate) enum Conn<'a> {
    /// The embedded file.
    Sqlite(&'a rusqlite::Connection),
    /// A PostgreSQL server.
    Postgres(PgConn<'a>),
}

/// One result row.
pub(crate) enum Row<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Postgres(&'a tokio_postgres::Row),
}

impl Row<'_> {
    /// Column `idx` (from 0) as a `T`.
    pub(crate) fn get<T: Column>(&self, idx: usize) -> Result<T> {
        match self {
            Self::Sqlite(row) => T::sqlite(row, idx),
            Self::Postgres(row) => T::postgres(row, idx),
        }
    }
}

/// A value a column can be read as, from either database.
pub(crate) trait Column: Sized {
    fn sqlite(row: &rusqlite::Row<'_>, idx: usize) -> Result<Self>;
    fn postgres(row: &tokio_postgres::Row, idx: usize) -> Result<Self>;
}

macro_rules! same_column {
    ($($ty:ty),+) => {$(
        impl Column for $ty {
            fn sqlite(row: &rusqlite::Row<'_>, idx: usize) -> Result<Self> {
                Ok(row.get(idx)?)
            }
            fn postgres(row: &tokio_postgres::Row, idx: usize) -> Result<Self> {
                Ok(row.try_get(idx)?)
            }
        }
    )+};
}

same_column!(String, Option<String>, Vec<u8>, Option<Vec<u8>>, bool);

impl Column for Option<i64> {
    fn sqlite(row: &rusqlite::Row<'_>, idx: usize) -> Result<Self> {
        Ok(row.get(idx)?)
    }

    /// Any integer width: `count(*)` and `max()` are `bigint`, a literal is `integer`.
    fn postgres(row: &tokio_postgres::Row, idx: usize) -> Result<Self> {
        let ty = row
            .columns()
            .get(idx)
            .map(|column| column.type_().clone())
            .ok_or_else(|| StoreError::corrupt(format!("no column {idx}")))?;
        Ok(match ty {
            Type::INT2 => row.try_get::<_, Option<i16>>(idx)?.map(i64::from),
            Type::INT4 => row.try_get::<_, Option<i32>>(idx)?.map(i64::from),
            _ => row.try_get::<_, Option<i64>>(idx)?,
        })
    }
}

impl Column for i64 {
    fn sqlite(row: &rusqlite::Row<'_>, idx: usize) -> Result<Self> {
        Ok(row.get(idx)?)
    }

    fn postgres(row: &tokio_postgres::Row, idx: usize) -> Result<Self> {
        Option::<i64>::postgres(row, idx)?
            .ok_or_else(|| StoreError::corrupt(format!("column {idx} is null")))
    }
}

impl Column for Option<Decimal> {
    fn sqlite(row: &rusqlite::Row<'_>, idx: usize) -> Result<Self> {
        row.get::<_, Option<String>>(idx)?
            .map(|text| parse(&text))
            .transpose()
    }

    fn postgres(row: &tokio_postgres::Row, idx: usize) -> Result<Self> {
        Ok(row.try_get(idx)?)
    }
}

impl Column for Decimal {
    fn sqlite(row: &rusqlite::Row<'_>, idx: usize) -> Result<Self> {
        parse(&row.get::<_, String>(idx)?)
    }

    fn postgres(row: &tokio_postgres::Row, idx: usize) -> Result<Self> {
        Ok(row.try_get(idx)?)
    }
}

/// A statement with `?N` placeholders, with `$N` ones for PostgreSQL. Only a `?` followed
/// by a digit, outside quoted literals, identifiers and comments, is a placeholder: a `?`
/// in a string literal (or PostgreSQL's `?` operator) is left as written.
pub(crate) fn postgres_sql(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') {
        return Cow::Borrowed(sql);
    }
    #[derive(Clone, Copy, PartialEq)]
    enum In {
        Code,
        Literal,
        Identifier,
        LineComment,
    }
    let mut state = In::Code;
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        state = match (state, c) {
            (In::Code, '\'') | (In::Literal, '\'') => {
                // A doubled quote inside a literal toggles twice and stays inside.
                if state == In::Code {
                    In::Literal
                } else {
                    In::Code
                }
            }
            (In::Code, '"') => In::Identifier,
            (In::Identifier, '"') => In::Code,
            (In::Code, '-') if next == Some('-') => In::LineComment,
            (In::LineComment, '\n') => In::Code,
            (In::Code, '?') if next.is_some_and(|d| d.is_ascii_digit()) => {
                out.push('$');
                continue;
            }
            (state, _) => state,
        };
        out.push(c);
    }
    Cow::Owned(out)
}

impl Conn<'_> {
    /// Runs one statement; the number of rows it changed.
    pub(crate) fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<u64> {
        match self {
            Self::Sqlite(conn) => {
                let mut stmt = conn.prepare_cached(sql)?;
                let changed = stmt.execute(rusqlite::params_from_iter(params.iter().copied()))?;
                Ok(changed as u64)
            }
            Self::Postgres(pg) => {
                let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| *p as _).collect();
                pg.execute(sql, &params)
            }
        }
    }

    /// Runs several statements with no parameters (a migration).
    pub(crate) fn batch(&self, sql: &str) -> Result<()> {
        match self {
            Self::Sqlite(conn) => Ok(conn.execute_batch(sql)?),
            Self::Postgres(pg) => pg.block_on(pg.client.batch_execute(sql)),
        }
    }

    /// Calls `each` on every row of a query, in order, as the rows arrive (a large result is
    /// never held in memory at once). `each` must not run queries of its own.
    pub(crate) fn query_each(
        &self,
        sql: &str,
        params: &[&dyn Param],
        mut each: impl FnMut(&Row<'_>) -> Result<()>,
    ) -> Result<()> {
        match self {
            Self::Sqlite(conn) => {
                let mut stmt = conn.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(params.iter().copied()))?;
                while let Some(row) = rows.next()? {
                    each(&Row::Sqlite(row))?;
                }
                Ok(())
            }
            // Rows are handled as they arrive, never all held at once. `each` must not query
            // (it runs inside the driver call).
            Self::Postgres(pg) => pg.runtime.block_on(async {
                let statement = pg.statement(sql).await?;
                let rows = pg
                    .client
                    .query_raw(&statement, params.iter().map(|p| *p as &(dyn ToSql + Sync)))
                    .await?;
                let mut rows = std::pin::pin!(rows);
                while let Some(row) = rows.try_next().await? {
                    each(&Row::Postgres(&row))?;
                }
                Ok(())
            }),
        }
    }

    /// Every row of a query, each made into a `T`.
    pub(crate) fn query_map<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        mut map: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.query_each(sql, params, |row| {
            out.push(map(row)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The first row of a query, if any, made into a `T`.
    pub(crate) fn query_opt<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        map: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        match self {
            Self::Sqlite(conn) => {
                let mut stmt = conn.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(params.iter().copied()))?;
                rows.next()?.map(|row| map(&Row::Sqlite(row))).transpose()
            }
            Self::Postgres(pg) => pg
                .rows(sql, params)?
                .first()
                .map(|row| map(&Row::Postgres(row)))
                .transpose(),
        }
    }

    /// The one row a query must return, made into a `T`.
    pub(crate) fn query_one<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        map: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        self.query_opt(sql, params, map)?
            .ok_or_else(|| StoreError::corrupt(format!("no row from: {sql}")))
    }

    /// Whether a query returns a row.
    pub(crate) fn exists(&self, sql: &str, params: &[&dyn Param]) -> Result<bool> {
        Ok(self.query_opt(sql, params, |_| Ok(()))?.is_some())
    }
}

/// An instant as stored: microseconds since the Unix epoch.
pub(crate) fn micros(instant: Timestamp) -> i64 {
    instant.as_microsecond()
}

/// A stored instant.
pub(crate) fn instant(micros: i64) -> Result<Timestamp> {
    Timestamp::from_microsecond(micros).map_err(StoreError::corrupt)
}

/// A stored value read back through its `FromStr`; a value that does not parse is corrupt.
pub(crate) fn parse<T>(text: &str) -> Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|err| StoreError::corrupt(format!("'{text}': {err}")))
}

/// A nullable stored value read back.
pub(crate) fn parse_opt<T>(text: Option<&str>) -> Result<Option<T>>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    text.map(parse).transpose()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

    use stackbill_test_support::TestDb;

    use super::*;
    use crate::SystemClock;

    #[test]
    fn only_numbered_placeholders_outside_quotes_are_rewritten() {
        assert_eq!(
            postgres_sql("SELECT a FROM t WHERE b = ?1 AND c = ?12"),
            "SELECT a FROM t WHERE b = $1 AND c = $12"
        );
        assert_eq!(
            postgres_sql("SELECT 'why?1' || 'it''s ?2', \"odd?3\" -- ?4\nFROM t WHERE x = ?5"),
            "SELECT 'why?1' || 'it''s ?2', \"odd?3\" -- ?4\nFROM t WHERE x = $5"
        );
        assert_eq!(postgres_sql("SELECT '?' || ?1"), "SELECT '?' || $1");
        assert!(matches!(postgres_sql("SELECT 1"), Cow::Borrowed(_)));
    }

    /// A literal `?` reads back the same from either database.
    #[tokio::test]
    async fn a_question_mark_in_a_literal_is_text_on_both_databases() {
        let db = TestDb::new();
        let store =
            crate::Store::open_location(&db.location, std::sync::Arc::new(SystemClock)).unwrap();
        let text = store
            .read(|conn| {
                conn.query_one("SELECT 'is it ?1 or ?' || ?1 || '?'", &[&"yes"], |row| {
                    row.get::<String>(0)
                })
            })
            .await
            .unwrap();
        assert_eq!(text, "is it ?1 or ?yes?");
    }
}
