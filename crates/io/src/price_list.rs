//! A rate card as a price list CSV, the form finance people edit in a spreadsheet: one row per
//! tier of a meter's price from a date, with the meter's catalog name and unit for reading.
//!
//! ```text
//! meterId,meterName,unit,effectiveDate,includedQuantity,fromQuantity,unitPrice
//! fab6eb84-500b-4a09-a8ca-7358f8bbaea5,Base VM Size Hours,Virtual core hours,2025-01-01T00:00:00Z,0,0,0.008
//! fab6eb84-500b-4a09-a8ca-7358f8bbaea5,Base VM Size Hours,Virtual core hours,2025-01-01T00:00:00Z,0,10000,0.0065
//! ```
//!
//! `meterName` and `unit` are written for people and ignored when read; `effectiveDate`
//! (default: the beginning of time) and `includedQuantity` (default 0) may be empty. The rows
//! of one (meter, date) form one entry, whose tiers the core checks.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use jiff::Timestamp;
use rust_decimal::Decimal;
use stackbill_core::rating::{MeterRate, Tier};
use stackbill_core::{Meter, MeterId, RateCard};

/// The columns, in the order written.
pub const COLUMNS: [&str; 7] = [
    "meterId",
    "meterName",
    "unit",
    "effectiveDate",
    "includedQuantity",
    "fromQuantity",
    "unitPrice",
];

/// Why a price list cannot be read: the line (1 is the header) and column, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}{}: {message}", column.map(|c| format!(", column {c}")).unwrap_or_default())]
pub struct PriceListError {
    /// The line of the file.
    pub line: u64,
    /// The column at fault, if one is.
    pub column: Option<&'static str>,
    /// What is wrong.
    pub message: String,
}

fn error(line: u64, column: Option<&'static str>, message: impl Into<String>) -> PriceListError {
    PriceListError {
        line,
        column,
        message: message.into(),
    }
}

/// The entries of a price list, checked as the core checks a rate card's.
pub fn read_price_list(reader: impl Read) -> Result<Vec<MeterRate>, PriceListError> {
    let mut csv = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(reader);
    let headers = csv
        .headers()
        .map_err(|err| error(1, None, err.to_string()))?
        .clone();
    let index = |name: &'static str, required: bool| match headers
        .iter()
        .position(|h| h.eq_ignore_ascii_case(name))
    {
        Some(i) => Ok(Some(i)),
        None if required => Err(error(1, Some(name), "this column is missing")),
        None => Ok(None),
    };
    let meter_at = index("meterId", true)?;
    let from_at = index("fromQuantity", true)?;
    let price_at = index("unitPrice", true)?;
    let date_at = index("effectiveDate", false)?;
    let included_at = index("includedQuantity", false)?;
    // (meter, date) → (first line, included quantity, tiers)
    let mut entries: BTreeMap<(MeterId, Timestamp), (u64, Decimal, Vec<Tier>)> = BTreeMap::new();
    for row in csv.records() {
        let row = row.map_err(|err| {
            let line = err.position().map_or(0, |p| p.line());
            error(line, None, err.to_string())
        })?;
        let line = row.position().map_or(0, |p| p.line());
        let cell = |at: Option<usize>| at.and_then(|i| row.get(i)).unwrap_or("");
        let decimal = |at: Option<usize>, column: &'static str| {
            cell(at).parse::<Decimal>().map_err(|_| {
                error(
                    line,
                    Some(column),
                    format!("'{}' is not a decimal number", cell(at)),
                )
            })
        };
        let meter: MeterId = cell(meter_at)
            .parse()
            .map_err(|err: stackbill_core::IdError| {
                error(line, Some("meterId"), err.to_string())
            })?;
        let date = match cell(date_at) {
            "" => Timestamp::UNIX_EPOCH,
            text => text.parse().map_err(|_| {
                error(
                    line,
                    Some("effectiveDate"),
                    format!("'{text}' is not an instant such as 2025-01-01T00:00:00Z"),
                )
            })?,
        };
        let included = match cell(included_at) {
            "" => Decimal::ZERO,
            _ => decimal(included_at, "includedQuantity")?,
        };
        let tier = Tier {
            from_quantity: decimal(from_at, "fromQuantity")?,
            unit_price: decimal(price_at, "unitPrice")?,
        };
        let entry = entries
            .entry((meter, date))
            .or_insert_with(|| (line, included, Vec::new()));
        if entry.1 != included {
            return Err(error(
                line,
                Some("includedQuantity"),
                format!(
                    "meter {meter} from {date} has included quantity {} on line {}, {included} here",
                    entry.1, entry.0
                ),
            ));
        }
        entry.2.push(tier);
    }
    entries
        .into_iter()
        .map(|((meter, date), (line, included, tiers))| {
            MeterRate::new(meter, tiers, included, date)
                .map_err(|err| error(line, None, format!("meter {meter} from {date}: {err}")))
        })
        .collect()
}

/// `card` as a price list, each meter named from `catalog` where it is there.
pub fn write_price_list(
    card: &RateCard,
    catalog: &[Meter],
    out: impl Write,
) -> Result<(), csv::Error> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(COLUMNS)?;
    let mut rates: Vec<&MeterRate> = card.rates.iter().collect();
    rates.sort_by_key(|rate| (rate.meter_id.to_string(), rate.effective_date));
    for rate in rates {
        let meter = catalog.iter().find(|m| m.id == rate.meter_id);
        for tier in rate.tiers() {
            csv.write_record([
                rate.meter_id.to_string(),
                meter.map_or_else(String::new, |m| m.name.clone()),
                meter.map_or_else(String::new, |m| m.unit.clone()),
                rate.effective_date.to_string(),
                rate.included_quantity.normalize().to_string(),
                tier.from_quantity.normalize().to_string(),
                tier.unit_price.normalize().to_string(),
            ])?;
        }
    }
    csv.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str =
        "meterId,meterName,unit,effectiveDate,includedQuantity,fromQuantity,unitPrice
fab6eb84-500b-4a09-a8ca-7358f8bbaea5,Base VM,hours,2025-01-01T00:00:00Z,0,10000,0.0065
FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5,,,2025-01-01T00:00:00Z,0,0,0.008
b4d6d5b0-2e87-4e19-a2b6-9e7f1a3c0a11,,,,5,0,0.25
";

    #[test]
    fn a_price_list_reads_into_entries_and_writes_back_the_same() {
        let rates = read_price_list(LIST.as_bytes()).unwrap();
        assert_eq!(rates.len(), 2);
        let vm = rates
            .iter()
            .find(|r| r.meter_id.to_string().starts_with("fab6eb84"))
            .unwrap();
        assert_eq!(
            vm.tiers().len(),
            2,
            "rows of one meter and date are its tiers"
        );
        assert_eq!(vm.tiers()[0].unit_price, "0.008".parse().unwrap());
        let card = RateCard {
            name: stackbill_core::RateCardName::default_card(),
            currency: stackbill_core::Currency::USD,
            rates,
        };
        let mut written = Vec::new();
        write_price_list(&card, &[], &mut written).unwrap();
        let again = read_price_list(written.as_slice()).unwrap();
        assert_eq!(again, card.rates);
    }

    #[test]
    fn a_bad_cell_names_its_line_and_column() {
        let bad = LIST.replace("0.0065", "cheap");
        let err = read_price_list(bad.as_bytes()).unwrap_err();
        assert_eq!((err.line, err.column), (2, Some("unitPrice")));
        let no_zero = "meterId,fromQuantity,unitPrice\nb4d6d5b0-2e87-4e19-a2b6-9e7f1a3c0a11,5,1\n";
        let err = read_price_list(no_zero.as_bytes()).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("b4d6d5b0"), "{err}");
        let missing = "meterId,unitPrice\n";
        let err = read_price_list(missing.as_bytes()).unwrap_err();
        assert_eq!((err.line, err.column), (1, Some("fromQuantity")));
    }
}
