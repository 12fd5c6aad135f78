//! Streaming usage parsers. Each record is handed to a sink as soon as it is read, with its
//! 0-based position (NDJSON line, array element or CSV data row), so memory stays bounded
//! whatever the input's size. A record that cannot be read is handed over as a rejection;
//! only I/O failures (and the sink's own errors) stop the reading.

use rustc_hash::FxHashMap as HashMap;
use std::borrow::Cow;
use std::fmt;
use std::io::BufRead;
use std::path::Path;
use std::str::FromStr;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use stackbill_core::usage::RawUsage;
use stackbill_core::{UsageError, UsageErrorCode};

use crate::canonical;
use crate::lines::{Line, Lines, skip_bom};

/// The longest NDJSON line (one record) accepted.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// An input format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON record per line.
    Ndjson,
    /// A JSON array of records, or `{"value":[...]}`.
    Json,
    /// A header row with the record's field names, then one record per row.
    Csv,
}

impl Format {
    /// The format a file name implies: `.ndjson`/`.jsonl`, `.json`, `.csv`.
    pub fn from_path(path: &Path) -> Option<Self> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "ndjson" | "jsonl" => Some(Self::Ndjson),
            "json" => Some(Self::Json),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "ndjson" | "jsonl" => Ok(Self::Ndjson),
            "json" => Ok(Self::Json),
            "csv" => Ok(Self::Csv),
            _ => Err(format!(
                "unknown format '{text}'; expected ndjson, json or csv"
            )),
        }
    }
}

/// One record as read: its position, its id when readable, and its fields or why they
/// could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// 0-based line, element or data row.
    pub index: u64,
    /// The record's id, when it could be read.
    pub id: Option<String>,
    /// The fields, or the rejection.
    pub fields: Result<RawUsage, UsageError>,
}

/// Why reading stopped.
#[derive(Debug)]
pub enum ReadError<E> {
    /// The input could not be read.
    Io(std::io::Error),
    /// The input as a whole is refused (a CSV header with an unknown column, say).
    Input(String),
    /// The sink refused an item.
    Sink(E),
}

impl<E: fmt::Display> fmt::Display for ReadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(err) => write!(f, "cannot read the input: {err}"),
            Self::Input(why) => f.write_str(why),
            Self::Sink(err) => err.fmt(f),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for ReadError<E> {}

/// A record's fields as they appear in JSON; an unknown field rejects the record.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WireRecord<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    cloud_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    tenant_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    subscription_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    meter_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    quantity: Option<&'a RawValue>,
    #[serde(borrow)]
    usage_start_time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    usage_end_time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reported_time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    instance_data: Option<&'a RawValue>,
}

fn owned(value: Option<Cow<'_, str>>) -> Option<String> {
    value.map(Cow::into_owned)
}

/// The decimal text of a quantity given as a JSON string or number.
fn quantity_text(raw: &RawValue) -> Result<Option<String>, UsageError> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<String>(text)
            .map(Some)
            .map_err(|err| {
                UsageError::new(UsageErrorCode::InvalidQuantity, "quantity", err.to_string())
            }),
        Some(b'-' | b'0'..=b'9') => Ok(Some(text.to_owned())),
        Some(b'n') => Ok(None),
        _ => Err(UsageError::new(
            UsageErrorCode::InvalidQuantity,
            "quantity",
            format!("quantity must be a decimal string or number, not {text}"),
        )),
    }
}

/// Canonical `instanceData` by raw text: a resource sends the same instance data every
/// hour, so most records skip the canonicalization.
#[derive(Default)]
struct CanonicalMemo {
    by_raw: HashMap<Box<str>, Option<String>>,
}

/// Distinct raw texts remembered before the memo starts afresh.
const MAX_MEMO_ENTRIES: usize = 1 << 16;

impl CanonicalMemo {
    fn instance_data(&mut self, raw: &RawValue) -> Result<Option<String>, UsageError> {
        if let Some(canonical) = self.by_raw.get(raw.get()) {
            return Ok(canonical.clone());
        }
        let canonical = canonical::instance_data(raw)?;
        if self.by_raw.len() >= MAX_MEMO_ENTRIES {
            self.by_raw.clear();
        }
        self.by_raw.insert(raw.get().into(), canonical.clone());
        Ok(canonical)
    }
}

impl WireRecord<'_> {
    fn into_raw(self, memo: &mut CanonicalMemo) -> Result<RawUsage, UsageError> {
        Ok(RawUsage {
            quantity: self.quantity.map(quantity_text).transpose()?.flatten(),
            instance_data: self
                .instance_data
                .map(|raw| memo.instance_data(raw))
                .transpose()?
                .flatten(),
            id: owned(self.id),
            cloud_id: owned(self.cloud_id),
            tenant_id: owned(self.tenant_id),
            subscription_id: owned(self.subscription_id),
            meter_id: owned(self.meter_id),
            usage_start_time: owned(self.usage_start_time),
            usage_end_time: owned(self.usage_end_time),
            reported_time: owned(self.reported_time),
        })
    }
}

/// The field names of a record, for error targets and CSV columns.
pub(crate) const FIELDS: &[&str] = &[
    "id",
    "cloudId",
    "tenantId",
    "subscriptionId",
    "meterId",
    "quantity",
    "usageStartTime",
    "usageEndTime",
    "reportedTime",
    "instanceData",
];

fn static_target(path: &str) -> &'static str {
    let first = path.split(['.', '[']).next().unwrap_or("");
    FIELDS
        .iter()
        .copied()
        .find(|field| *field == first)
        .unwrap_or("")
}

/// The field serde names in an "unknown field `x`, expected ..." error.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_owned())
}

/// Best effort: the `id` of a record whose other fields are broken.
fn readable_id(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct IdOnly {
        id: Option<serde_json::Value>,
    }
    match serde_json::from_str::<IdOnly>(text).ok()?.id? {
        serde_json::Value::String(id) => Some(id),
        _ => None,
    }
}

/// Reads one record's JSON text.
fn parse_record(index: u64, text: &str, memo: &mut CanonicalMemo) -> Item {
    // The fast path; only a failure is parsed again to learn the failing field's path.
    if let Ok(wire) = serde_json::from_str::<WireRecord<'_>>(text) {
        let id = wire.id.as_deref().map(str::to_owned);
        return Item {
            index,
            id,
            fields: wire.into_raw(memo),
        };
    }
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed: Result<WireRecord<'_>, _> = serde_path_to_error::deserialize(&mut deserializer);
    match parsed {
        // The record itself was readable: what failed is the text after it.
        Ok(wire) => Item {
            index,
            id: wire.id.as_deref().map(str::to_owned),
            fields: Err(UsageError::new(
                UsageErrorCode::InvalidJson,
                "",
                "unexpected text after the record",
            )),
        },
        Err(err) => {
            let target = static_target(&err.path().to_string());
            let inner = err.into_inner();
            let error = match (unknown_field(&inner.to_string()), inner.classify()) {
                (Some(field), _) => UsageError::new(
                    UsageErrorCode::UnknownField,
                    field.clone(),
                    format!(
                        "{field} is not a field of a usage record; the fields are {}",
                        FIELDS.join(", ")
                    ),
                ),
                (None, category) => match category {
                    serde_json::error::Category::Data if !target.is_empty() => {
                        let code = if target == "quantity" {
                            UsageErrorCode::InvalidQuantity
                        } else {
                            UsageErrorCode::InvalidField
                        };
                        UsageError::new(code, target, format!("{target}: {inner}"))
                    }
                    serde_json::error::Category::Data => UsageError::new(
                        UsageErrorCode::InvalidJson,
                        "",
                        format!("a record must be a JSON object: {inner}"),
                    ),
                    _ => UsageError::new(
                        UsageErrorCode::InvalidJson,
                        "",
                        format!("not valid JSON: {inner}"),
                    ),
                },
            };
            Item {
                index,
                id: readable_id(text),
                fields: Err(error),
            }
        }
    }
}

pub(crate) fn read_ndjson<R, E, F>(reader: R, sink: &mut F) -> Result<(), ReadError<E>>
where
    R: BufRead,
    F: FnMut(Item) -> Result<(), E>,
{
    let mut lines = Lines::new(reader, MAX_LINE_BYTES);
    let mut index = 0u64;
    let mut memo = CanonicalMemo::default();
    loop {
        let rejection = |message: String| Item {
            index,
            id: None,
            fields: Err(UsageError::new(UsageErrorCode::InvalidJson, "", message)),
        };
        let item = match lines.next().map_err(ReadError::Io)? {
            Line::End => return Ok(()),
            Line::TooLong => Some(rejection(format!(
                "the line is longer than {MAX_LINE_BYTES} bytes"
            ))),
            Line::Text => match std::str::from_utf8(lines.text()) {
                Ok(text) if text.trim().is_empty() => None,
                Ok(text) => Some(parse_record(
                    index,
                    text.trim_end_matches(['\n', '\r']),
                    &mut memo,
                )),
                Err(_) => Some(rejection("the line is not UTF-8".to_owned())),
            },
        };
        if let Some(item) = item {
            sink(item).map_err(ReadError::Sink)?;
        }
        index += 1;
    }
}

/// Feeds the elements of a JSON array to the sink as they are read.
struct Elements<'s, F, E> {
    memo: &'s mut CanonicalMemo,
    sink: &'s mut F,
    sink_error: &'s mut Option<E>,
    next_index: &'s mut u64,
}

impl<'de, F, E> Visitor<'de> for Elements<'_, F, E>
where
    F: FnMut(Item) -> Result<(), E>,
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of usage records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
            let item = parse_record(*self.next_index, raw.get(), self.memo);
            *self.next_index += 1;
            if let Err(err) = (self.sink)(item) {
                *self.sink_error = Some(err);
                return Err(de::Error::custom("stopped by the sink"));
            }
        }
        Ok(())
    }
}

impl<'de, F, E> DeserializeSeed<'de> for Elements<'_, F, E>
where
    F: FnMut(Item) -> Result<(), E>,
{
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

/// The top level: an array, or an object whose `value` is one.
struct Document<'s, F, E>(Elements<'s, F, E>);

impl<'de, F, E> Visitor<'de> for Document<'_, F, E>
where
    F: FnMut(Item) -> Result<(), E>,
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"an array of usage records or {"value":[...]}"#)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        self.0.visit_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut elements = Some(self.0);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match (key.as_ref(), elements.take()) {
                ("value", Some(seed)) => map.next_value_seed(seed)?,
                (_, seed) => {
                    elements = seed;
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if elements.is_some() {
            return Err(de::Error::missing_field("value"));
        }
        Ok(())
    }
}

pub(crate) fn read_json<R, E, F>(mut reader: R, sink: &mut F) -> Result<(), ReadError<E>>
where
    R: BufRead,
    F: FnMut(Item) -> Result<(), E>,
{
    skip_bom(&mut reader).map_err(ReadError::Io)?;
    let mut sink_error = None;
    let mut next_index = 0u64;
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    let mut memo = CanonicalMemo::default();
    let document = Document(Elements {
        memo: &mut memo,
        sink,
        sink_error: &mut sink_error,
        next_index: &mut next_index,
    });
    let result = deserializer
        .deserialize_any(document)
        .and_then(|()| deserializer.end());
    if let Some(err) = sink_error {
        return Err(ReadError::Sink(err));
    }
    match result {
        Ok(()) => Ok(()),
        Err(err) if err.is_io() => Err(ReadError::Io(err.into())),
        // The document breaks off or is not an array: everything read so far stands, and
        // the rest is one rejection at the position where reading stopped.
        Err(err) => sink(Item {
            index: next_index,
            id: None,
            fields: Err(UsageError::new(
                UsageErrorCode::InvalidJson,
                "",
                format!("the document is not valid: {err}"),
            )),
        })
        .map_err(ReadError::Sink),
    }
}
