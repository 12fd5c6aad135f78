//! Exactly-once ingestion, as properties over real SQLite files: any permutation of a batch,
//! in any split into requests, with any records repeated, stores the same records and the
//! same totals as one clean import; and usage billed per subscription adds up to usage per
//! tenant.

use std::collections::BTreeMap;

use jiff::Timestamp;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use rust_decimal::Decimal;
use stackbill_core::{Quantity, RecordId, UsageRecord};
use stackbill_store::{Disposition, Store, UsageScope};
use stackbill_test_support::TestStore;
use stackbill_test_support::fixtures::{self, DEFAULT};

use crate::run;

const CLOUDS: [&str; 2] = [
    "ca000000-0000-0000-0000-000000000001",
    "ca000000-0000-0000-0000-000000000002",
];
const TENANTS: [&str; 3] = [
    "70000000-0000-0000-0000-000000000001",
    "70000000-0000-0000-0000-000000000002",
    "70000000-0000-0000-0000-000000000003",
];
const METERS: [&str; 2] = [
    "b4438d5d-453b-4ee1-b42a-dc72e377f1e4",
    "f271a8a3-88c4-4d93-956a-063e1d2fa80b",
];
/// 2025-06-01T00:00:00Z in hours.
const FIRST_HOUR: i64 = 485_256;
const HOURS: i64 = 6;

/// Two stacks; tenant 1 billed to its own subscription on stack 1 from hour 2.
async fn registered() -> TestStore {
    let db = TestStore::new();
    let store = &db.store;
    fixtures::csp(store, &["0"]).await;
    for (n, cloud) in CLOUDS.iter().enumerate() {
        fixtures::register(store, &format!("stack{n}"), cloud.parse().unwrap()).await;
    }
    let from = Timestamp::from_second((FIRST_HOUR + 2) * 3600).unwrap();
    fixtures::map_tenants(store, "stack0", &[1], from).await;
    db
}

/// Every record stored in the test's hours.
async fn stored(store: &Store) -> Vec<UsageRecord> {
    store
        .usage_records(FIRST_HOUR, FIRST_HOUR + HOURS)
        .await
        .unwrap()
}

fn record_strategy() -> impl Strategy<Value = UsageRecord> {
    (
        0..2usize,
        0..3usize,
        0..2usize,
        0..HOURS,
        0u64..10_000_000,
        0u32..=6,
        0..1000u32,
    )
        .prop_map(
            |(cloud, tenant, meter, hour, mantissa, scale, serial)| UsageRecord {
                id: RecordId::new(&format!("r{serial}")).unwrap(),
                cloud_id: CLOUDS[cloud].parse().unwrap(),
                tenant_id: TENANTS[tenant].parse().unwrap(),
                subscription_id: "50000000-0000-0000-0000-000000000001".parse().unwrap(),
                meter_id: METERS[meter].parse().unwrap(),
                quantity: Quantity::parse(&Decimal::new(mantissa as i64, scale).to_string())
                    .unwrap(),
                usage_start: Timestamp::from_second((FIRST_HOUR + hour) * 3600).unwrap(),
                reported_time: None,
                instance_data: (serial % 3 == 0)
                    .then(|| format!(r#"{{"resourceUri":"/r/{serial}"}}"#)),
            },
        )
}

/// Unique keys, then a delivery: a permutation with repeats, cut into requests.
fn delivery() -> impl Strategy<Value = (Vec<UsageRecord>, Vec<usize>, Vec<usize>)> {
    prop::collection::vec(record_strategy(), 1..60)
        .prop_map(|records| {
            let mut seen = std::collections::HashSet::new();
            records
                .into_iter()
                .filter(|r| seen.insert((r.cloud_id, r.id.clone())))
                .collect::<Vec<_>>()
        })
        .prop_flat_map(|unique| {
            let n = unique.len();
            let order = prop::collection::vec(0..n, n..n * 2).prop_map(move |extra| {
                // Every record at least once, plus the extra picks as repeats.
                let mut order: Vec<usize> = (0..n).collect();
                order.extend(extra.into_iter().skip(n));
                order
            });
            (
                Just(unique),
                order.prop_shuffle(),
                prop::collection::vec(1..8usize, 1..20),
            )
        })
}

async fn totals(store: &Store, scope: UsageScope) -> BTreeMap<(i64, String), Decimal> {
    store
        .usage_aggregates(scope, FIRST_HOUR, FIRST_HOUR + HOURS, 1)
        .await
        .unwrap()
        .into_iter()
        .map(|a| {
            let quantity = a.quantity.to_decimal().expect("small test totals");
            ((a.start_hour, a.meter_id.to_string()), quantity)
        })
        .collect()
}

fn add(into: &mut BTreeMap<(i64, String), Decimal>, from: BTreeMap<(i64, String), Decimal>) {
    for (key, value) in from {
        *into.entry(key).or_insert(Decimal::ZERO) += value;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn any_delivery_stores_what_one_clean_import_stores((unique, order, cuts) in delivery()) {
        run(async {
            let clean = registered().await;
            let dispositions = clean.store.ingest(unique.clone()).await.unwrap();
            prop_assert!(dispositions.iter().all(|d| *d == Disposition::Accepted));

            let messy = registered().await;
            let stream: Vec<UsageRecord> = order.iter().map(|&i| unique[i].clone()).collect();
            let (mut accepted, mut duplicates, mut at, mut cut) = (0, 0, 0, 0);
            while at < stream.len() {
                let size = cuts[cut % cuts.len()].min(stream.len() - at);
                cut += 1;
                for disposition in messy.store.ingest(stream[at..at + size].to_vec()).await.unwrap() {
                    match disposition {
                        Disposition::Accepted => accepted += 1,
                        Disposition::Duplicate => duplicates += 1,
                        other => prop_assert!(false, "unexpected {other:?}"),
                    }
                }
                at += size;
            }
            prop_assert_eq!(accepted, unique.len());
            prop_assert_eq!(accepted + duplicates, stream.len());

            let strip = |mut records: Vec<UsageRecord>| {
                for r in &mut records {
                    r.reported_time = None;
                }
                records
            };
            let clean_records = strip(stored(&clean.store).await);
            let messy_records = strip(stored(&messy.store).await);
            prop_assert_eq!(&clean_records, &messy_records);

            let mut by_tenant = BTreeMap::new();
            let mut by_cloud = BTreeMap::new();
            for tenant in TENANTS {
                let scope = UsageScope::Tenant(tenant.parse().unwrap());
                prop_assert_eq!(totals(&clean.store, scope.clone()).await, totals(&messy.store, scope.clone()).await);
                add(&mut by_tenant, totals(&messy.store, scope).await);
            }
            for cloud in CLOUDS {
                add(&mut by_cloud, totals(&messy.store, UsageScope::Cloud(cloud.parse().unwrap())).await);
            }
            let mut by_subscription = BTreeMap::new();
            for sub in [DEFAULT.parse().unwrap(), fixtures::customer(1)] {
                add(&mut by_subscription, totals(&messy.store, UsageScope::Subscription(sub)).await);
            }
            prop_assert_eq!(&by_subscription, &by_tenant);
            prop_assert_eq!(&by_cloud, &by_tenant);

            // The hourly totals are the sums of the stored records.
            let mut expected = BTreeMap::new();
            for r in &unique {
                *expected.entry((r.usage_start.as_second() / 3600, r.meter_id.to_string())).or_insert(Decimal::ZERO) += r.quantity.value();
            }
            let normalized: BTreeMap<_, _> = expected.into_iter().map(|(k, v): (_, Decimal)| (k, v.normalize())).collect();
            prop_assert_eq!(by_tenant, normalized);
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn a_conflict_keeps_the_stored_record() {
    let db = registered().await;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let record = record_strategy().new_tree(&mut runner).unwrap().current();
    assert_eq!(
        db.store.ingest(vec![record.clone()]).await.unwrap(),
        [Disposition::Accepted]
    );
    let mut changed = record.clone();
    changed.quantity = Quantity::parse("123.25").unwrap();
    let mut reported_later = record.clone();
    reported_later.reported_time = Some("2025-07-01T00:00:00Z".parse().unwrap());
    // The same quantity written with more digits is the same content.
    let digits = record.quantity.to_string();
    let padded_text = if digits.contains('.') {
        format!("{digits}000")
    } else {
        format!("{digits}.000")
    };
    let mut padded = record.clone();
    padded.quantity = Quantity::parse(&padded_text).unwrap();
    assert_eq!(
        db.store
            .ingest(vec![changed, reported_later, padded])
            .await
            .unwrap(),
        [
            Disposition::Conflict,
            Disposition::Duplicate,
            Disposition::Duplicate
        ]
    );
    let stored = stored(&db.store).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].quantity, record.quantity);
}

#[tokio::test]
async fn unknown_stacks_and_meters_are_rejected_inside_the_transaction() {
    let db = registered().await;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut record = record_strategy().new_tree(&mut runner).unwrap().current();
    record.cloud_id = "ca000000-0000-0000-0000-0000000000ff".parse().unwrap();
    let mut meterless = record_strategy().new_tree(&mut runner).unwrap().current();
    meterless.meter_id = "aaaaaaaa-0000-0000-0000-000000000001".parse().unwrap();
    let dispositions = db.store.ingest(vec![record, meterless]).await.unwrap();
    assert!(
        matches!(&dispositions[0], Disposition::Rejected(e) if e.code.as_str() == "UnknownStack")
    );
    assert!(
        matches!(&dispositions[1], Disposition::Rejected(e) if e.code.as_str() == "UnknownMeter")
    );
    assert!(
        db.store
            .usage_records(0, i64::MAX / 7200)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn within_a_batch_the_first_record_of_a_key_wins() {
    let db = registered().await;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let first = record_strategy().new_tree(&mut runner).unwrap().current();
    let mut second = first.clone();
    second.quantity = Quantity::parse("999").unwrap();
    let mut other = first.clone();
    other.id = RecordId::new("a-key-sorting-before-r").unwrap();
    let dispositions = db
        .store
        .ingest(vec![first.clone(), second, other, first.clone()])
        .await
        .unwrap();
    assert_eq!(
        dispositions,
        [
            Disposition::Accepted,
            Disposition::Conflict,
            Disposition::Accepted,
            Disposition::Duplicate
        ]
    );
    let stored = stored(&db.store).await;
    let kept = stored.iter().find(|r| r.id == first.id).unwrap();
    assert_eq!(kept.quantity, first.quantity);
}
