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
    (item.index, item.id.as_deref(), err.code, err.target)
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
