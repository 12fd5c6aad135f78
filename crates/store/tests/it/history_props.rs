//! SPEC §4 over random histories: deleting and re-creating a stack's registration at any
//! moment never changes a final invoice, nor where any hour before the deletion is billed.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use stackbill_core::{BillingModel, Period, Quantity, RecordId, Registration, UsageRecord};
use stackbill_store::{Invoice, Store};
use stackbill_test_support::TestStore;
use stackbill_test_support::fixtures::{self, CLOUD, DEFAULT, METERS, customer, tenant};

use crate::run;

const PERIODS: [&str; 3] = ["2025-03", "2025-04", "2025-05"];

#[derive(Debug, Clone)]
enum Op {
    Ingest {
        serial: u16,
        tenant: u8,
        period: usize,
        hour: i64,
    },
    Map {
        tenant: u8,
        period: usize,
        hour: i64,
    },
    Finalize {
        period: usize,
    },
    /// Delete the registration and register the stack again at once.
    Recreate,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u16..300, 1u8..=2, 0..3usize, 0..60i64).prop_map(|(serial, tenant, period, hour)| Op::Ingest { serial, tenant, period, hour }),
        2 => (1u8..=2, 0..3usize, 0..60i64).prop_map(|(tenant, period, hour)| Op::Map { tenant, period, hour }),
        1 => (0..3usize).prop_map(|period| Op::Finalize { period }),
        1 => Just(Op::Recreate),
    ]
}

fn period(index: usize) -> Period {
    PERIODS[index].parse().unwrap()
}

async fn registered() -> TestStore {
    let db = TestStore::new();
    db.clock.set("2025-03-01T00:00:00Z");
    fixtures::csp(&db.store, &["10", "0"]).await;
    fixtures::register(&db.store, "hub", CLOUD.parse().unwrap()).await;
    db
}

/// Where each stored record is billed now, by (id, start).
async fn routes(
    store: &Store,
) -> BTreeMap<(String, Timestamp), Option<stackbill_core::SubscriptionId>> {
    let routing = store.routing_table().await.unwrap();
    let (from, _) = period(0).hours();
    let (_, to) = period(2).hours();
    store
        .usage_records(from, to)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            let route = routing.route(r.cloud_id, r.tenant_id, r.usage_start);
            ((r.id.as_str().to_owned(), r.usage_start), route)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn recreating_a_registration_never_moves_earlier_usage(ops in prop::collection::vec(op(), 1..40)) {
        run(async {
            let db = registered().await;
            let store = &db.store;
            let start: Timestamp = "2025-03-01T00:00:00Z".parse().unwrap();
            let mut finals: Vec<Invoice> = Vec::new();
            // Before each deletion: its instant and where every record was billed.
            let mut before_deletions = Vec::new();
            for (step, op) in ops.iter().enumerate() {
                let now = start + SignedDuration::from_hours(60 * (step as i64 + 1));
                db.clock.set_instant(now);
                match op.clone() {
                    Op::Ingest { serial, tenant: t, period: p, hour } => {
                        let usage_start = period(p).start() + SignedDuration::from_hours(hour);
                        if usage_start + SignedDuration::from_hours(1) > now {
                            continue;
                        }
                        store.ingest(vec![UsageRecord {
                            id: RecordId::new(&format!("r{serial}")).unwrap(),
                            cloud_id: CLOUD.parse().unwrap(),
                            tenant_id: tenant(t),
                            subscription_id: fixtures::STACK_SUBSCRIPTION.parse().unwrap(),
                            meter_id: METERS[0].parse().unwrap(),
                            quantity: Quantity::parse("1.25").unwrap(),
                            usage_start,
                            reported_time: None,
                            instance_data: None,
                        }]).await.unwrap();
                    }
                    Op::Map { tenant: t, period: p, hour } => {
                        let from = period(p).start() + SignedDuration::from_hours(hour);
                        store.put_customer_subscription("hub".parse().unwrap(), customer(t), tenant(t), Some(from)).await.unwrap();
                    }
                    Op::Finalize { period: p } => {
                        if now >= period(p).end() {
                            finals.extend(store.finalize_period(period(p), None).await.unwrap());
                        }
                    }
                    Op::Recreate => {
                        before_deletions.push((store.now(), routes(store).await));
                        store.delete_registration("hub".parse().unwrap()).await.unwrap();
                        store.put_registration(Registration {
                            name: "hub".parse().unwrap(),
                            cloud_id: CLOUD.parse().unwrap(),
                            default_subscription: DEFAULT.parse().unwrap(),
                            billing_model: BillingModel::PayAsYouUse,
                        }).await.unwrap();
                    }
                }
            }
            let end = routes(store).await;
            for (deleted_after, routed) in &before_deletions {
                for (key, route) in routed {
                    if key.1 < *deleted_after {
                        prop_assert_eq!(end.get(key), Some(route), "record {:?} moved", key);
                    }
                }
            }
            for frozen in &finals {
                let now = store.invoice(frozen.subscription_id, frozen.period, None).await.unwrap();
                prop_assert_eq!(now.as_ref(), Some(frozen));
            }
            Ok(())
        })?;
    }
}
