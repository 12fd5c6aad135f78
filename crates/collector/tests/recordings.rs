//! The parsers against real recorded stack traffic (`fixtures/`, MIT, from
//! Azure/azurestack-powershell): every row read, quantities exact, tenants resolved.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde_json::Value;
use stackbill_collector::wire::{Collected, UsagePage, collect_row, parse_subscriptions};
use stackbill_core::total::Total;
use stackbill_core::{Quantity, SubscriptionId, TenantId};

/// The `Content` of every recorded answer whose request URI contains `path`, with its status.
fn answers(file: &str, path: &str) -> Vec<(u64, String)> {
    let text = std::fs::read_to_string(format!(
        "{}/tests/fixtures/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let recording: BTreeMap<String, Value> = serde_json::from_str(&text).unwrap();
    recording
        .values()
        .filter(|entry| {
            entry["Request"]["RequestUri"]
                .as_str()
                .unwrap()
                .contains(path)
        })
        .map(|entry| {
            (
                entry["Response"]["StatusCode"].as_u64().unwrap(),
                entry["Response"]["Content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

#[test]
fn every_recorded_usage_row_becomes_an_exact_record() {
    let pages: Vec<String> = answers(
        "Get-AzsSubscriberUsage.Recording.json",
        "subscriberUsageAggregates",
    )
    .into_iter()
    .filter(|(status, _)| *status == 200)
    .map(|(_, body)| body)
    .collect();
    assert_eq!(pages.len(), 2, "two recorded successful pages");
    let reported: Timestamp = "2019-12-10T19:00:00Z".parse().unwrap();
    let cloud = "ca000000-0000-0000-0000-000000000001".parse().unwrap();
    let page = UsagePage::parse(pages[0].as_bytes()).unwrap();
    assert_eq!(page.rows.len(), 236);
    assert_eq!(page.next_link, None);
    // The recording does not list its subscriptions: give each one a tenant of its own.
    let tenants: BTreeMap<SubscriptionId, TenantId> = (page.rows.iter())
        .map(|row| {
            let sub: SubscriptionId = row.subscription_id.parse().unwrap();
            (sub, sub.to_string().parse().unwrap())
        })
        .collect();
    let mut sum = Total::ZERO;
    let mut ids = BTreeSet::new();
    let mut exponent_rows = 0;
    let mut hours = BTreeMap::new();
    for row in page.rows.clone() {
        let text = row.quantity.clone();
        exponent_rows += usize::from(text.contains('E'));
        let Collected::Record(raw) = collect_row(cloud, reported, &tenants, row) else {
            panic!("a row of a known subscription is held");
        };
        let record = raw
            .validate("2020-01-01T00:00:00Z".parse().unwrap())
            .unwrap();
        // Quantities exactly as written.
        assert_eq!(record.quantity, Quantity::parse(&text).unwrap());
        sum = sum
            .checked_add(Total::from_decimal(record.quantity.value()))
            .unwrap();
        assert!(record.instance_data.is_some());
        assert_eq!(record.reported_time, Some(reported));
        assert!(ids.insert(record.id.clone()), "ids are unique in a window");
        *hours.entry(record.usage_start).or_insert(0) += 1;
    }
    assert!(exponent_rows > 0, "the recording has exponent forms");
    // The exact sum of the 236 quantities' texts, computed with Python's `decimal` at 100
    // digits.
    assert_eq!(sum.to_string(), "6728.315663824358622605773066");
    let hour = |text: &str| text.parse::<Timestamp>().unwrap();
    assert_eq!(
        hours,
        BTreeMap::from([
            (hour("2019-12-10T17:00:00Z"), 10),
            (hour("2019-12-10T18:00:00Z"), 224),
            (hour("2019-12-10T19:00:00Z"), 2)
        ])
    );
    // The second recorded answer of the same window is the same body: the same ids.
    let again = UsagePage::parse(pages[1].as_bytes()).unwrap();
    let again_ids: BTreeSet<_> = (again.rows.into_iter())
        .map(|row| match collect_row(cloud, reported, &tenants, row) {
            Collected::Record(raw) => raw.id.unwrap(),
            Collected::Held(_) => panic!("held"),
        })
        .collect();
    let ids: BTreeSet<String> = ids.iter().map(|id| id.as_str().to_owned()).collect();
    assert_eq!(again_ids, ids);
    // A row of a subscription the stack never listed is held.
    let held = collect_row(cloud, reported, &BTreeMap::new(), page.rows[0].clone());
    assert!(matches!(held, Collected::Held(_)));
}

#[test]
fn the_recorded_subscription_lists_give_each_user_subscription_its_directory() {
    let lists = answers(
        "UserSubscription.Recording.json",
        "Microsoft.Subscriptions.Admin/subscriptions?",
    );
    assert!(!lists.is_empty());
    for (status, body) in lists {
        assert_eq!(status, 200);
        let (subscriptions, skipped) = parse_subscriptions(body.as_bytes()).unwrap();
        let listed = serde_json::from_str::<Value>(&body).unwrap()["value"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(subscriptions.len() + skipped, listed);
        assert!(!subscriptions.is_empty());
        let first = &subscriptions[0];
        assert_eq!(
            first.subscription_id.to_string(),
            "fba5bdb2-c2ca-48c1-a9af-6562a70603d8"
        );
        assert_eq!(
            first.tenant_id.to_string(),
            "8272fdc6-5ec8-4aed-b10c-c09e3221910c"
        );
    }
}
