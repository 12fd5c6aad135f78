//! stackbill's file formats: streaming usage parsers for NDJSON, JSON (an array or
//! `{"value":[...]}`) and CSV, the canonical form of `instanceData`, and the deterministic
//! usage generator used for demos and benchmarks. Parsing turns text into the core's
//! [`RawUsage`](stackbill_core::usage::RawUsage); validation is the core's.

pub mod canonical;
pub mod generate;
pub mod parse;
pub mod records;

pub use parse::{Format, Item, ReadError, read_usage};
pub use records::ReadRecords;
