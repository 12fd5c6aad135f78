//! stackbill's file formats: streaming usage parsers for NDJSON, JSON (an array or
//! `{"value":[...]}`) and CSV, the canonical form of `instanceData`, and the deterministic
//! usage generator used for demos and benchmarks. Parsing turns text into the core's
//! [`RawUsage`](stackbill_core::usage::RawUsage); validation is the core's.

use std::io::BufRead;

pub mod canonical;
mod csv_format;
pub mod generate;
mod lines;
pub mod parse;
pub mod price_list;
pub mod records;

pub use parse::{Format, Item, ReadError};
pub use records::ReadRecords;

/// Reads every record of `reader` in `format`, handing each to `sink` in order.
pub fn read_usage<R, E, F>(reader: R, format: Format, sink: &mut F) -> Result<(), ReadError<E>>
where
    R: BufRead,
    F: FnMut(Item) -> Result<(), E>,
{
    match format {
        Format::Ndjson => parse::read_ndjson(reader, sink),
        Format::Json => parse::read_json(reader, sink),
        Format::Csv => csv_format::read_csv(reader, sink),
    }
}
