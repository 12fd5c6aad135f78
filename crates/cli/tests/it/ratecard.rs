//! `stackbill ratecard`: prices set from the command line (tiers, included quantities,
//! effective dates), a price list CSV exported and imported back unchanged, and bad input
//! named by line and column.

use serde_json::{Value, json};

use crate::{initialized, ok_json, stackbill};

const VM: &str = "fab6eb84-500b-4a09-a8ca-7358f8bbaea5";

#[test]
fn prices_are_set_listed_exported_and_imported_back() {
    let db = initialized();
    ok_json(&db, &["partner", "add", "p1", "--name", "P", "--json"]);
    let created = ok_json(
        &db,
        &["ratecard", "add", "default", "--currency", "EUR", "--json"],
    );
    assert_eq!(
        created,
        json!({"name": "default", "currency": "EUR", "meters": []})
    );
    let priced = ok_json(
        &db,
        &[
            "ratecard",
            "set-price",
            "default",
            VM,
            "--price",
            "0.008",
            "--tier",
            "10000=0.0065",
            "--included",
            "100",
            "--json",
        ],
    );
    // Between the two versions, as a later as-of read will ask.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let between = jiff::Timestamp::now().to_string();
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(
        priced["meters"][0],
        json!({
            "meterId": VM,
            "rates": {"0": "0.008", "10000": "0.0065"},
            "includedQuantity": "100",
            "effectiveDate": "1970-01-01T00:00:00Z",
        })
    );
    let later = ok_json(
        &db,
        &[
            "ratecard",
            "set-price",
            "default",
            VM,
            "--price",
            "0.009",
            "--effective-from",
            "2026-01-01T00:00:00Z",
            "--json",
        ],
    );
    assert_eq!(later["meters"].as_array().unwrap().len(), 2, "{later}");

    // The price list CSV round-trips into a partner's own card.
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("prices.csv");
    let exported = stackbill(
        &db,
        &[
            "ratecard",
            "export",
            "default",
            "--out",
            csv.to_str().unwrap(),
        ],
    );
    assert!(exported.status.success(), "{exported:?}");
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(
        text.starts_with("meterId,meterName,unit,effectiveDate"),
        "{text}"
    );
    assert!(text.contains("Base VM Size Hours"), "{text}");
    let imported = ok_json(
        &db,
        &[
            "ratecard",
            "import",
            "default",
            csv.to_str().unwrap(),
            "--partner",
            "p1",
            "--currency",
            "EUR",
            "--json",
        ],
    );
    assert_eq!(imported["meters"], later["meters"]);
    let listed = ok_json(&db, &["ratecard", "list", "--json"]);
    let owners: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["owner"])
        .collect();
    assert_eq!(owners, [&json!("shared"), &json!("p1")]);
    let mine = ok_json(
        &db,
        &["ratecard", "show", "default", "--partner", "p1", "--json"],
    );
    assert_eq!(mine, imported);

    // The card as it was recorded before the later price.
    let before = ok_json(
        &db,
        &["ratecard", "show", "default", "--as-of", &between, "--json"],
    );
    assert_eq!(before["meters"], priced["meters"]);
}

#[test]
fn bad_prices_are_named_and_change_nothing() {
    let db = initialized();
    let missing = stackbill(&db, &["ratecard", "show", "default"]);
    assert_eq!(missing.status.code(), Some(1));
    let text = String::from_utf8_lossy(&missing.stderr);
    assert!(
        text.contains("RateCardNotFound") && text.contains("stackbill ratecard add default"),
        "{text}"
    );
    ok_json(
        &db,
        &["ratecard", "add", "default", "--currency", "USD", "--json"],
    );
    let unknown = stackbill(
        &db,
        &[
            "ratecard",
            "set-price",
            "default",
            "00000000-0000-0000-0000-000000000009",
            "--price",
            "1",
        ],
    );
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("MeterNotFound"));
    let same_tier = stackbill(
        &db,
        &[
            "ratecard",
            "set-price",
            "default",
            VM,
            "--price",
            "1",
            "--tier",
            "0=2",
        ],
    );
    assert_eq!(same_tier.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&same_tier.stderr).contains("--tier"));
    let bad_tier = stackbill(
        &db,
        &[
            "ratecard",
            "set-price",
            "default",
            VM,
            "--price",
            "1",
            "--tier",
            "lots",
        ],
    );
    assert_eq!(bad_tier.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_tier.stderr).contains("FROM=PRICE"));

    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("bad.csv");
    std::fs::write(
        &csv,
        format!("meterId,fromQuantity,unitPrice\n{VM},0,0.01\n{VM},100,cheap\n"),
    )
    .unwrap();
    let refused = stackbill(
        &db,
        &["ratecard", "import", "default", csv.to_str().unwrap()],
    );
    assert_eq!(refused.status.code(), Some(1));
    let text = String::from_utf8_lossy(&refused.stderr);
    assert!(text.contains("line 3, column unitPrice"), "{text}");
    let card = ok_json(&db, &["ratecard", "show", "default", "--json"]);
    assert_eq!(card["meters"], json!([]), "nothing half-applied");
}
