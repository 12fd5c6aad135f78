//! Fuzzes the usage parsers and validation: any bytes, in every format, must be read
//! without a panic, every item must have a position, and every valid record must keep its
//! quantity exactly through its canonical text.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stackbill_core::Quantity;
use stackbill_io::{Format, read_usage};

fuzz_target!(|data: &[u8]| {
    let now = jiff::Timestamp::from_second(1_900_000_000).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    for format in [Format::Ndjson, Format::Json, Format::Csv] {
        let mut last_index = None;
        let _ = read_usage(data, format, &mut |item| {
            if let Some(last) = last_index {
                assert!(item.index >= last, "positions never go backwards");
            }
            last_index = Some(item.index);
            if let Ok(record) = item.fields.and_then(|raw| raw.validate(now)) {
                let text = record.quantity.to_string();
                assert_eq!(Quantity::parse(&text).ok(), Some(record.quantity), "canonical text round-trips");
            }
            Ok::<(), ()>(())
        });
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(quantity) = Quantity::parse(text) {
            assert_eq!(Quantity::parse(&quantity.to_string()).ok(), Some(quantity));
        }
    }
});
