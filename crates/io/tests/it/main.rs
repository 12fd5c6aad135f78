//! The usage parsers on every accepted format, with positions and ids of rejections.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use stackbill_core::UsageErrorCode;
use stackbill_core::usage::RawUsage;
use stackbill_io::{Format, Item, read_usage};

const RECORD: &str = r#"{"id":"a","cloudId":"ca000000-0000-0000-0000-000000000001","tenantId":"70000000-0000-0000-0000-000000000001","subscriptionId":"50000000-0000-0000-0000-000000000001","meterId":"b4438d5d-453b-4ee1-b42a-dc72e377f1e4","quantity":0.1,"usageStartTime":"2025-06-01T08:00:00Z","usageEndTime":"2025-06-01T09:00:00Z","instanceData":"{\"resourceUri\":\"/x\"}"}"#;

fn read(text: &str, format: Format) -> Vec<Item> {
    let mut items = Vec::new();
    read_usage(text.as_bytes(), format, &mut |item| {
        items.push(item);
        Ok::<(), ()>(())
    })
    .unwrap();
    items
}

fn fields(item: &Item) -> &RawUsage {
    item.fields.as_ref().unwrap()
}

fn rejection(item: &Item) -> (u64, Option<&str>, UsageErrorCode, &str) {
    let err = item.fields.as_ref().unwrap_err();
    (item.index, item.id.as_deref(), err.code, &err.target)
}

#[test]
fn ndjson_keeps_line_numbers_and_exact_numbers() {
    let text = format!(
        "{RECORD}\n\n{}\r\nnot json\n{{\"id\":\"b\",\"quantity\":[1]}}\n{{\"id\":\"c\",\"cloudId\":5}}\n[1]\n{{\"id\":\"d\"}} {{}}\n",
        RECORD.replace("\"a\"", "\"a2\"")
    );
    let items = read(&text, Format::Ndjson);
    assert_eq!(items.len(), 7);
    let first = fields(&items[0]);
    assert_eq!(
        first.quantity.as_deref(),
        Some("0.1"),
        "a JSON number keeps its decimal text"
    );
    assert_eq!(
        first.instance_data.as_deref(),
        Some(r#"{"resourceUri":"/x"}"#)
    );
    assert_eq!(items[1].index, 2, "blank lines keep their number");
    assert_eq!(fields(&items[1]).id.as_deref(), Some("a2"));
    assert_eq!(
        rejection(&items[2]),
        (3, None, UsageErrorCode::InvalidJson, "")
    );
    assert_eq!(
        rejection(&items[3]),
        (4, Some("b"), UsageErrorCode::InvalidQuantity, "quantity")
    );
    assert_eq!(
        rejection(&items[4]),
        (5, Some("c"), UsageErrorCode::InvalidField, "cloudId")
    );
    assert_eq!(
        rejection(&items[5]),
        (6, None, UsageErrorCode::InvalidJson, "")
    );
}

#[test]
fn json_arrays_and_value_wrappers_stream_their_elements() {
    let array = format!("[{RECORD}, {RECORD}]");
    let items = read(&array, Format::Json);
    assert_eq!(items.iter().map(|i| i.index).collect::<Vec<_>>(), [0, 1]);
    assert!(items.iter().all(|i| i.fields.is_ok()));
    let wrapped = format!(r#"{{"nextLink":null,"value":[{RECORD},5,{RECORD}],"other":{{}}}}"#);
    let items = read(&wrapped, Format::Json);
    assert_eq!(items.len(), 3);
    assert_eq!(rejection(&items[1]).2, UsageErrorCode::InvalidJson);
    assert!(items[2].fields.is_ok());
    // A document that breaks off keeps what was read and rejects the rest once.
    let truncated = format!("[{RECORD}, {RECORD}, {{\"id\":");
    let items = read(&truncated, Format::Json);
    assert_eq!(items.len(), 3);
    assert_eq!(
        rejection(&items[2]),
        (2, None, UsageErrorCode::InvalidJson, "")
    );
    let items = read("{\"values\":[]}", Format::Json);
    assert_eq!(rejection(&items[0]).2, UsageErrorCode::InvalidJson);
    assert!(read("[]", Format::Json).is_empty());
}

#[test]
fn csv_maps_columns_by_header() {
    let text = "usageEndTime,id,cloudId,tenantId,subscriptionId,meterId,quantity,usageStartTime,instanceData\n\
        2025-06-01T09:00:00Z,a,ca000000-0000-0000-0000-000000000001,70000000-0000-0000-0000-000000000001,50000000-0000-0000-0000-000000000001,b4438d5d-453b-4ee1-b42a-dc72e377f1e4,1.50,2025-06-01T08:00:00Z,\"{\"\"Microsoft.Resources\"\":{\"\"resourceUri\"\":\"\"/x\"\"}}\"\n\
        2025-06-01T09:00:00Z,b,,,,,,,\n\
        2025-06-01T09:00:00Z,c,x,x,x,x,1,x,not json\n";
    let items = read(text, Format::Csv);
    assert_eq!(items.len(), 3);
    let first = fields(&items[0]);
    assert_eq!(first.quantity.as_deref(), Some("1.50"));
    assert_eq!(
        first.usage_end_time.as_deref(),
        Some("2025-06-01T09:00:00Z")
    );
    assert_eq!(
        first.instance_data.as_deref(),
        Some(r#"{"resourceUri":"/x"}"#)
    );
    assert_eq!(fields(&items[1]).cloud_id, None);
    assert_eq!(
        rejection(&items[2]),
        (2, Some("c"), UsageErrorCode::InvalidField, "instanceData")
    );
}

#[test]
fn the_sink_can_stop_reading() {
    let lines = format!("{RECORD}\n{RECORD}\n{RECORD}\n");
    let array = format!("[{RECORD},{RECORD},{RECORD}]");
    for (text, format) in [(lines, Format::Ndjson), (array, Format::Json)] {
        let mut seen = 0;
        let result = read_usage(text.as_bytes(), format, &mut |_| {
            seen += 1;
            if seen == 2 { Err("full") } else { Ok(()) }
        });
        assert!(
            matches!(result, Err(stackbill_io::ReadError::Sink("full"))),
            "{format:?}"
        );
        assert_eq!(seen, 2);
    }
}

#[test]
fn formats_come_from_extensions_or_names() {
    use std::path::Path;
    assert_eq!(
        Format::from_path(Path::new("a.NDJSON")),
        Some(Format::Ndjson)
    );
    assert_eq!(
        Format::from_path(Path::new("a.jsonl")),
        Some(Format::Ndjson)
    );
    assert_eq!(Format::from_path(Path::new("a.json")), Some(Format::Json));
    assert_eq!(Format::from_path(Path::new("a.csv")), Some(Format::Csv));
    assert_eq!(Format::from_path(Path::new("a.txt")), None);
    assert_eq!("CSV".parse::<Format>(), Ok(Format::Csv));
    assert!("xml".parse::<Format>().is_err());
}

#[test]
fn generated_usage_parses() {
    let options = stackbill_io::generate::GenerateOptions {
        seed: 1,
        records: 3_000,
        month: jiff::civil::Date::new(2025, 5, 1).unwrap(),
        stacks: 2,
        tenants: 40,
        duplicates_per_mille: 0,
        late_per_mille: 0,
        bad_per_mille: 0,
        until: None,
    };
    let mut out = Vec::new();
    stackbill_io::generate::generate(&options, &mut out).unwrap();
    let items = read(std::str::from_utf8(&out).unwrap(), Format::Ndjson);
    assert_eq!(items.len(), 3_000);
    assert!(items.iter().all(|i| i.fields.is_ok()));
    let ids: std::collections::HashSet<_> = items
        .iter()
        .map(|i| (fields(i).cloud_id.clone(), i.id.clone()))
        .collect();
    assert_eq!(ids.len(), 3_000, "ids are unique per stack");
}

const CSV_HEADER: &str = "id,cloudId,tenantId,subscriptionId,meterId,quantity,usageStartTime,usageEndTime,instanceData\n";

fn csv_row(n: usize, instance: &str) -> String {
    format!(
        "r{n},ca000000-0000-0000-0000-000000000001,70000000-0000-0000-0000-000000000001,\
         50000000-0000-0000-0000-000000000001,b4438d5d-453b-4ee1-b42a-dc72e377f1e4,1,\
         2025-06-01T08:00:00Z,2025-06-01T09:00:00Z,{instance}\n"
    )
}

/// One malformed row costs that row only: reading goes on at the next line.
#[test]
fn csv_accounts_for_every_line() {
    let mut text = CSV_HEADER.to_owned();
    for n in 0..1001 {
        let instance = if n == 10 {
            "\"{\"\"resourceUri\"\":\"\"/x\"\"}"
        } else {
            ""
        };
        text.push_str(&csv_row(n, instance));
    }
    let items = read(&text, Format::Csv);
    assert_eq!(
        items.len(),
        1001,
        "every data row is a record or a rejection"
    );
    let rejected: Vec<_> = items.iter().filter(|i| i.fields.is_err()).collect();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejection(rejected[0]).0, 10);
    assert_eq!(rejection(rejected[0]).2, UsageErrorCode::InvalidCsv);
    // A stray quote in an extra column: the row has a field too many, and a stray quote.
    let text = format!(
        "{CSV_HEADER}{}{}",
        csv_row(1, "").replace('\n', ",x\"y\n"),
        csv_row(2, "")
    );
    let items = read(&text, Format::Csv);
    assert_eq!(items.len(), 2);
    assert_eq!(rejection(&items[0]).2, UsageErrorCode::InvalidCsv);
    assert!(items[1].fields.is_ok());
    let text = format!("{CSV_HEADER}{}", csv_row(1, "").replace('\n', ",extra\n"));
    let items = read(&text, Format::Csv);
    assert_eq!(
        rejection(&items[0]),
        (0, Some("r1"), UsageErrorCode::InvalidCsv, "")
    );
}

/// A header with an unknown or repeated column fails the whole input before any row.
#[test]
fn csv_headers_name_known_columns_once() {
    for header in ["id,cloudID\n", "id,id\n", "id,\"cloudId\n"] {
        let text = format!("{header}{}", csv_row(1, ""));
        let mut rows = 0;
        let result = read_usage(text.as_bytes(), Format::Csv, &mut |_| {
            rows += 1;
            Ok::<(), ()>(())
        });
        assert!(
            matches!(result, Err(stackbill_io::ReadError::Input(_))),
            "{header}"
        );
        assert_eq!(rows, 0);
    }
}

/// A misspelt field rejects its record and names the field.
#[test]
fn unknown_fields_are_refused() {
    let misspelt = RECORD.replace("\"instanceData\"", "\"instancedata\"");
    for format in [Format::Ndjson, Format::Json] {
        let text = match format {
            Format::Json => format!("[{misspelt}]"),
            _ => format!("{misspelt}\n"),
        };
        let items = read(&text, format);
        assert_eq!(
            rejection(&items[0]),
            (0, Some("a"), UsageErrorCode::UnknownField, "instancedata")
        );
    }
}

/// A UTF-8 byte-order mark at the start costs nothing.
#[test]
fn a_byte_order_mark_is_skipped() {
    let bom = "\u{feff}";
    for (text, format) in [
        (format!("{bom}{RECORD}\n"), Format::Ndjson),
        (format!("{bom}[{RECORD}]"), Format::Json),
        (format!("{bom}{CSV_HEADER}{}", csv_row(1, "")), Format::Csv),
    ] {
        let items = read(&text, format);
        assert_eq!(items.len(), 1, "{format:?}");
        assert!(items[0].fields.is_ok(), "{format:?}: {:?}", items[0].fields);
    }
}
