//! [`Total`]s in and out of both databases: canonical text in SQLite, `NUMERIC` in
//! PostgreSQL. `rust_decimal`'s PostgreSQL support stops at 96 bits, so the `NUMERIC`
//! binary form (base-10000 digits with a weight, a sign and a display scale) is written and
//! read here, straight from and to a total's units (the ingestion path writes one per
//! pre-aggregate row).

use ethnum::I256;
use stackbill_core::total::{TOTAL_SCALE, Total};
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

/// Base-10000 groups of the fraction: a total's 28 fraction digits are exactly 7 of them.
const FRACTION_GROUPS: i32 = (TOTAL_SCALE / 4) as i32;

/// The `NUMERIC` binary form of a total: its units in base 10000, the last 7 groups after
/// the point, with the weight of the first group, the sign and the display scale.
fn encode(total: Total, out: &mut bytes::BytesMut) -> std::result::Result<(), BoxError> {
    use bytes::BufMut;
    let ten = I256::from(10u8);
    let base = I256::from(10_000u16);
    let mut magnitude = total.units().abs();
    let mut trailing_zeros = 0;
    while magnitude != I256::ZERO && trailing_zeros < TOTAL_SCALE && magnitude % ten == I256::ZERO {
        magnitude /= ten;
        trailing_zeros += 1;
    }
    let dscale = if magnitude == I256::ZERO {
        0
    } else {
        u16::try_from(TOTAL_SCALE - trailing_zeros)?
    };
    let mut magnitude = total.units().abs();
    let mut groups: Vec<i16> = Vec::new();
    while magnitude != I256::ZERO {
        groups.push(i16::try_from((magnitude % base).as_i32())?);
        magnitude /= base;
    }
    let weight = i16::try_from(i32::try_from(groups.len())? - 1 - FRACTION_GROUPS)?;
    groups.reverse();
    while groups.last() == Some(&0) {
        groups.pop();
    }
    out.put_i16(i16::try_from(groups.len())?);
    out.put_i16(if groups.is_empty() { 0 } else { weight });
    out.put_u16(if total.units() < I256::ZERO {
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

/// A total from the `NUMERIC` binary form; more than 28 fraction digits is an error.
fn decode(raw: &[u8]) -> std::result::Result<Total, BoxError> {
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
    let base = I256::from(10_000u16);
    let mut units = I256::ZERO;
    for i in 0..count {
        let group = I256::from(word(8 + 2 * i)?);
        // The group's place in 10^-28 units: base 10000 to the power of its exponent.
        let power = weight - i32::try_from(i)? + FRACTION_GROUPS;
        let power = u32::try_from(power).map_err(|_| "more than 28 fraction digits")?;
        let place = base.checked_pow(power).ok_or("a NUMERIC beyond 256 bits")?;
        units = group
            .checked_mul(place)
            .and_then(|value| units.checked_add(value))
            .ok_or("a NUMERIC beyond 256 bits")?;
    }
    Ok(Total::from_units(if sign == NEGATIVE {
        -units
    } else {
        units
    }))
}

impl ToSql for TotalParam {
    fn to_sql(&self, _: &Type, out: &mut bytes::BytesMut) -> std::result::Result<IsNull, BoxError> {
        encode(self.0, out)?;
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
        Ok(Self(decode(raw)?))
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
            encode(total, &mut out).unwrap();
            let back = decode(&out).unwrap();
            assert_eq!(back, total, "{text}");
        }
    }
}
