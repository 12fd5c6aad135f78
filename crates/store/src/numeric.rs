//! [`Total`]s in and out of both databases: canonical text in SQLite, `NUMERIC` in
//! PostgreSQL. `rust_decimal`'s PostgreSQL support stops at 96 bits, so the `NUMERIC`
//! binary form (base-10000 digits with a weight, a sign and a display scale) is written and
//! read here, for the 28 fraction digits and wide integer parts a total can have.

use stackbill_core::total::Total;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use crate::db::Column;
use crate::error::{Result, StoreError};

type BoxError = Box<dyn std::error::Error + Sync + Send>;

const POSITIVE: u16 = 0x0000;
const NEGATIVE: u16 = 0x4000;

/// A total as a statement parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TotalParam(pub(crate) Total);

impl rusqlite::ToSql for TotalParam {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::Owned(
            rusqlite::types::Value::Text(self.0.to_string()),
        ))
    }
}

/// The `NUMERIC` binary form of canonical decimal text.
fn encode(text: &str, out: &mut bytes::BytesMut) -> std::result::Result<(), BoxError> {
    use bytes::BufMut;
    let (negative, magnitude) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (integer, fraction) = magnitude.split_once('.').unwrap_or((magnitude, ""));
    let integer = integer.trim_start_matches('0');
    let dscale = u16::try_from(fraction.len())?;
    // Base-10000 groups aligned on the point: the integer part padded on the left, the
    // fraction on the right.
    let pad_left = (4 - integer.len() % 4) % 4;
    let pad_right = (4 - fraction.len() % 4) % 4;
    let digits = format!(
        "{}{integer}{fraction}{}",
        "0".repeat(pad_left),
        "0".repeat(pad_right)
    );
    let integer_groups = (pad_left + integer.len()) / 4;
    let mut groups: Vec<i16> = digits
        .as_bytes()
        .chunks(4)
        .map(|chunk| std::str::from_utf8(chunk).map(|g| g.parse::<i16>()))
        .collect::<std::result::Result<std::result::Result<_, _>, _>>()??;
    let mut weight = i16::try_from(integer_groups)? - 1;
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    out.put_i16(i16::try_from(groups.len())?);
    out.put_i16(weight);
    out.put_u16(if negative && !groups.is_empty() {
        NEGATIVE
    } else {
        POSITIVE
    });
    out.put_u16(dscale);
    for group in groups {
        out.put_i16(group);
    }
    Ok(())
}

/// Canonical decimal text of a `NUMERIC` binary value.
fn decode(raw: &[u8]) -> std::result::Result<String, BoxError> {
    let word = |at: usize| -> std::result::Result<i16, BoxError> {
        let bytes = raw.get(at..at + 2).ok_or("a truncated NUMERIC")?;
        Ok(i16::from_be_bytes([bytes[0], bytes[1]]))
    };
    let count = usize::try_from(word(0)?)?;
    let weight = i32::from(word(2)?);
    let sign = word(4)? as u16;
    if sign != POSITIVE && sign != NEGATIVE {
        return Err("a NUMERIC that is not a number (NaN or infinite)".into());
    }
    let groups: Vec<i16> = (0..count)
        .map(|i| word(8 + 2 * i))
        .collect::<std::result::Result<_, _>>()?;
    let group_at = |exponent: i32| {
        usize::try_from(weight - exponent)
            .ok()
            .and_then(|i| groups.get(i))
            .copied()
            .unwrap_or(0)
    };
    let mut text = String::new();
    if sign == NEGATIVE {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        for exponent in (0..=weight).rev() {
            if exponent == weight {
                text.push_str(&group_at(exponent).to_string());
            } else {
                text.push_str(&format!("{:04}", group_at(exponent)));
            }
        }
    }
    let last = weight - i32::try_from(count)? + 1;
    if last < 0 {
        text.push('.');
        for exponent in (last..0).rev() {
            text.push_str(&format!("{:04}", group_at(exponent)));
        }
    }
    Ok(text)
}

impl ToSql for TotalParam {
    fn to_sql(&self, _: &Type, out: &mut bytes::BytesMut) -> std::result::Result<IsNull, BoxError> {
        encode(&self.0.to_string(), out)?;
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }

    to_sql_checked!();
}

/// A total read from a `NUMERIC` column.
struct PgTotal(Total);

impl<'a> FromSql<'a> for PgTotal {
    fn from_sql(_: &Type, raw: &'a [u8]) -> std::result::Result<Self, BoxError> {
        Ok(Self(decode(raw)?.parse()?))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

impl Column for Total {
    fn sqlite(row: &rusqlite::Row<'_>, idx: usize) -> Result<Self> {
        let text: String = row.get(idx)?;
        text.parse().map_err(StoreError::corrupt)
    }

    fn postgres(row: &tokio_postgres::Row, idx: usize) -> Result<Self> {
        Ok(row.try_get::<_, PgTotal>(idx)?.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_binary_round_trips() {
        for text in [
            "0",
            "1",
            "-1.5",
            "10000",
            "12345.6789",
            "0.0001",
            "0.000000083819031715393066",
            "91809600.0062361359596252441104",
            "-9999999999999999999999999999.0000000000000000000000000001",
        ] {
            let total: Total = text.parse().unwrap();
            let mut out = bytes::BytesMut::new();
            encode(&total.to_string(), &mut out).unwrap();
            let back: Total = decode(&out).unwrap().parse().unwrap();
            assert_eq!(back, total, "{text}");
        }
    }
}
