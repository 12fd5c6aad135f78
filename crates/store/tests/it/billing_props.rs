//! Billing invariants over random histories on real SQLite files: money billed (final lines
//! plus every adjustment) always equals a fresh rating of today's data; invoice lines add up
//! to the usage; as-of "now" is the draft; finalization racing ingestion splits records
//! exactly between the final invoice and the adjustments.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use rust_decimal::Decimal;
use stackbill_core::invoice::{Pricing, rate_lines};
use stackbill_core::rating::{MeterRate, Tier};
use stackbill_core::total::Total;
use stackbill_core::{
    Currency, MeterId, Period, Quantity, RateCard, RateCardName, RecordId, SubscriptionId,
    UsageRecord,
};
use stackbill_store::{Invoice, InvoiceStatus, Store};
use stackbill_test_support::TestStore;
use stackbill_test_support::fixtures::{self, CLOUD, DEFAULT, METERS, customer, tenant};

use crate::run;

const PERIODS: [&str; 3] = ["2025-03", "2025-04", "2025-05"];

fn card() -> RateCard {
    let tier = |from: &str, price: &str| Tier {
        from_quantity: from.parse().unwrap(),
        unit_price: price.parse().unwrap(),
    };
    RateCard {
        name: RateCardName::default_card(),
        currency: Currency::USD,
        rates: vec![
            MeterRate::new(
                METERS[0].parse().unwrap(),
                vec![tier("0", "0.0137"), tier("50", "0.0071")],
                "3".parse().unwrap(),
                "2020-01-01T00:00:00Z".parse().unwrap(),
            )
            .unwrap(),
        ],
    }
}

/// One stack, a CSPSS default, and two tenants with CSP subscriptions (markups 10 % and -5 %).
async fn billing_store() -> TestStore {
    let db = TestStore::new();
    db.clock.set("2025-03-01T00:00:00Z");
    fixtures::csp(&db.store, &["10", "-5"]).await;
    fixtures::register(&db.store, "hub", CLOUD.parse().unwrap()).await;
    db.store
        .put_rate_card(card(), stackbill_core::rating::CardOwner::Shared)
        .await
        .unwrap();
    db
}

#[derive(Debug, Clone)]
enum Op {
    /// Usage of a tenant in a period's hour.
    Ingest {
        serial: u16,
        tenant: u8,
        meter: usize,
        period: usize,
        hour: i64,
        mantissa: i64,
    },
    /// Map (or unmap) a tenant from an instant inside a period, possibly backdated.
    Map {
        tenant: u8,
        period: usize,
        hour: i64,
        unmap: bool,
    },
    /// Finalize a period that has ended.
    Finalize { period: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u16..400, 1u8..=3, 0..2usize, 0..3usize, 0..48i64, 0i64..100_000).prop_map(|(serial, tenant, meter, period, hour, mantissa)| Op::Ingest { serial, tenant, meter, period, hour, mantissa }),
        2 => (1u8..=2, 0..3usize, 0..48i64, any::<bool>()).prop_map(|(tenant, period, hour, unmap)| Op::Map { tenant, period, hour, unmap }),
        1 => (0..3usize).prop_map(|period| Op::Finalize { period }),
    ]
}

fn period(index: usize) -> Period {
    PERIODS[index].parse().unwrap()
}

/// Every invoice of every period, in period order.
async fn all_invoices(store: &Store) -> Vec<Invoice> {
    let mut all = Vec::new();
    for p in PERIODS.iter().chain(["2025-06", "2025-07"].iter()) {
        all.extend(
            store
                .invoices(p.parse().unwrap(), None, None)
                .await
                .unwrap(),
        );
    }
    all
}

/// (subscription, period, meter) → amount, from a fresh rating of today's data.
async fn fresh_rating(store: &Store) -> BTreeMap<(SubscriptionId, Period, MeterId), Decimal> {
    let card = card();
    let markups: BTreeMap<SubscriptionId, Decimal> = store
        .subscriptions(None)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.id, s.markup_percent))
        .collect();
    let routing = store.routing_table().await.unwrap();
    let mut out = BTreeMap::new();
    for index in 0..PERIODS.len() {
        let p = period(index);
        let (from, to) = p.hours();
        let mut quantities: BTreeMap<SubscriptionId, BTreeMap<MeterId, Decimal>> = BTreeMap::new();
        for r in store.usage_records(from, to).await.unwrap() {
            let sub = routing
                .route(r.cloud_id, r.tenant_id, r.usage_start)
                .unwrap();
            *quantities
                .entry(sub)
                .or_default()
                .entry(r.meter_id)
                .or_default() += r.quantity.value();
        }
        for (sub, meters) in quantities {
            let meters = meters
                .into_iter()
                .map(|(meter, quantity)| (meter, Total::from_decimal(quantity)))
                .collect();
            let pricing = Pricing {
                card: Some(&card),
                markup_percent: markups[&sub],
            };
            for line in rate_lines(p, &meters, pricing).unwrap() {
                out.insert((sub, p, line.meter_id), line.amount);
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]
    #[test]
    fn money_billed_always_equals_a_fresh_rating(ops in prop::collection::vec(op(), 1..40)) {
        run(async {
            let db = billing_store().await;
            let store = &db.store;
            // The clock walks forward through March to July, one step per operation.
            let start: Timestamp = "2025-03-01T00:00:00Z".parse().unwrap();
            for (step, op) in ops.iter().enumerate() {
                let now = start + SignedDuration::from_hours(80 * (step as i64 + 1));
                db.clock.set_instant(now);
                match op.clone() {
                    Op::Ingest { serial, tenant: t, meter, period: p, hour, mantissa } => {
                        let usage_start = period(p).start() + SignedDuration::from_hours(hour);
                        if usage_start + SignedDuration::from_hours(1) > now {
                            continue;
                        }
                        let record = UsageRecord {
                            id: RecordId::new(&format!("r{serial}")).unwrap(),
                            cloud_id: CLOUD.parse().unwrap(),
                            tenant_id: tenant(t),
                            subscription_id: "50000000-0000-0000-0000-000000000001".parse().unwrap(),
                            meter_id: METERS[meter].parse().unwrap(),
                            quantity: Quantity::parse(&Decimal::new(mantissa, 3).to_string()).unwrap(),
                            usage_start,
                            reported_time: None,
                            instance_data: None,
                        };
                        store.ingest(vec![record]).await.unwrap();
                    }
                    Op::Map { tenant: t, period: p, hour, unmap } => {
                        let from = period(p).start() + SignedDuration::from_hours(hour);
                        let name = "hub".parse().unwrap();
                        if unmap {
                            let _ = store.delete_customer_subscription(name, customer(t), Some(from)).await;
                        } else {
                            store.put_customer_subscription(name, customer(t), tenant(t), Some(from)).await.unwrap();
                        }
                    }
                    Op::Finalize { period: p } => {
                        if now >= period(p).end() {
                            store.finalize_period(period(p), None).await.unwrap();
                        }
                    }
                }
            }
            db.clock.set("2025-07-15T00:00:00Z");
            // Billed = final lines + every adjustment (frozen or on a draft) of a final period;
            // lines of periods that are still drafts count as they stand.
            let mut billed: BTreeMap<(SubscriptionId, Period, MeterId), Decimal> = BTreeMap::new();
            for invoice in all_invoices(store).await {
                for line in &invoice.lines {
                    *billed.entry((invoice.subscription_id, invoice.period, line.meter_id)).or_default() += line.amount;
                }
                for adjustment in &invoice.adjustments {
                    *billed.entry((invoice.subscription_id, adjustment.period, adjustment.meter_id)).or_default() += adjustment.amount;
                }
                let sum: Decimal = invoice.lines.iter().map(|l| l.amount).chain(invoice.adjustments.iter().map(|a| a.amount)).sum();
                prop_assert_eq!(sum, invoice.total);
            }
            billed.retain(|_, amount| !amount.is_zero());
            let mut fresh = fresh_rating(store).await;
            fresh.retain(|_, amount| !amount.is_zero());
            prop_assert_eq!(billed, fresh);

            // As of now, every invoice is what the drafts and finals say.
            let now = store.now();
            for p in PERIODS {
                let p: Period = p.parse().unwrap();
                let current = store.invoices(p, None, None).await.unwrap();
                let as_of = store.invoices(p, None, Some(now)).await.unwrap();
                prop_assert_eq!(current, as_of);
            }
            Ok(())
        })?;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalization_racing_ingestion_splits_records_exactly() {
    let db = billing_store().await;
    db.clock.set("2025-04-10T00:00:00Z");
    let store = db.store.clone();
    let march = period(0);
    let record = move |n: u32| UsageRecord {
        id: RecordId::new(&format!("race-{n}")).unwrap(),
        cloud_id: CLOUD.parse().unwrap(),
        tenant_id: tenant(3),
        subscription_id: "50000000-0000-0000-0000-000000000001".parse().unwrap(),
        meter_id: METERS[0].parse().unwrap(),
        quantity: Quantity::parse("1.5").unwrap(),
        usage_start: march.start() + SignedDuration::from_hours(i64::from(n % 700)),
        reported_time: None,
        instance_data: None,
    };
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for batch in 0..40u32 {
                store
                    .ingest((0..25).map(|i| record(batch * 25 + i)).collect())
                    .await
                    .unwrap();
            }
        })
    };
    tokio::task::yield_now().await;
    let finals = store.finalize_period(march, None).await.unwrap();
    writer.await.unwrap();

    let final_quantity = finals
        .iter()
        .flat_map(|i| i.lines.iter())
        .try_fold(Total::ZERO, |sum, l| sum.checked_add(l.quantity))
        .unwrap();
    let april = store.invoices(period(1), None, None).await.unwrap();
    let adjusted = april
        .iter()
        .flat_map(|i| i.adjustments.iter())
        .try_fold(Total::ZERO, |sum, a| sum.checked_add(a.quantity))
        .unwrap();
    assert_eq!(
        final_quantity.checked_add(adjusted),
        Some(Total::from_decimal(Decimal::new(1000 * 15, 1))),
        "every record is billed once"
    );
    assert!(april.iter().all(|i| i.status == InvoiceStatus::Draft));
    // Nothing was re-mapped: every correction is late usage.
    assert!(
        april
            .iter()
            .flat_map(|i| i.adjustments.iter())
            .all(|a| a.reason == stackbill_core::invoice::AdjustmentReason::LateUsage),
        "{april:?}"
    );
    // The records in the final invoice are exactly those accepted before it was frozen.
    let finalized_at = finals.first().and_then(|i| i.finalized_at);
    if let Some(at) = finalized_at {
        let known = store
            .invoice_records(DEFAULT.parse().unwrap(), march, None, Some(at), Some(at))
            .await
            .unwrap();
        let known: Decimal = known.iter().map(|r| r.quantity.value()).sum();
        assert_eq!(Total::from_decimal(known), final_quantity);
    }
}
