//! What the CLI prints for a month end, as snapshots (`snapshots/`): the invoice list and one
//! invoice as tables and CSV, a finalize, and a refusal. A change of what users read shows up
//! as a snapshot diff.

use std::sync::Arc;

use stackbill_core::rating::{MeterRate, Tier};
use stackbill_core::{Currency, RateCard, RateCardName};
use stackbill_store::SystemClock;
use stackbill_test_support::TestDb;
use stackbill_test_support::fixtures::{self, CLOUD, DEFAULT, METERS, customer};

use crate::stackbill;

/// A partner with two customers (10 % and -5 % markup) on one stack, tenant 1 mapped for the
/// whole of May 2025, tenant 3 unmapped, and a month of usage of both meters by all three.
fn month_end() -> TestDb {
    let db = TestDb::new();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = db.open(Arc::new(SystemClock));
        fixtures::csp(&store, &["10", "-5"]).await;
        fixtures::register(&store, "hub1", CLOUD.parse().unwrap()).await;
        let may: stackbill_core::Period = "2025-05".parse().unwrap();
        fixtures::map_tenants(&store, "hub1", &[1], may.start()).await;
        let tier = |from: &str, price: &str| Tier {
            from_quantity: from.parse().unwrap(),
            unit_price: price.parse().unwrap(),
        };
        let rate = MeterRate::new(
            METERS[0].parse().unwrap(),
            vec![tier("0", "0.0137"), tier("500", "0.0071")],
            "10".parse().unwrap(),
            "2025-01-01T00:00:00Z".parse().unwrap(),
        )
        .unwrap();
        let card = RateCard {
            name: RateCardName::default_card(),
            currency: Currency::USD,
            rates: vec![rate],
        };
        store
            .put_rate_card(card, stackbill_core::rating::CardOwner::Shared)
            .await
            .unwrap();
        let usage =
            fixtures::month_of_usage("may", CLOUD.parse().unwrap(), may, &[1, 3], &METERS, "1.5");
        store.ingest(usage).await.unwrap();
    });
    db
}

fn stdout(db: &TestDb, args: &[&str]) -> String {
    let output = stackbill(db, args);
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn a_month_end_as_users_read_it() {
    let db = month_end();
    let customer = customer(1).to_string();
    insta::assert_snapshot!("invoice_list", stdout(&db, &["invoice", "list", "2025-05"]));
    insta::assert_snapshot!(
        "invoice_show",
        stdout(&db, &["invoice", "show", &customer, "2025-05"])
    );
    insta::assert_snapshot!(
        "invoice_show_default_csv",
        stdout(&db, &["invoice", "show", DEFAULT, "2025-05", "--csv"])
    );
    let finalize = stackbill(&db, &["invoice", "finalize", "2025-05"]);
    assert!(finalize.status.success(), "{finalize:?}");
    insta::assert_snapshot!(
        "invoice_finalize",
        format!(
            "stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&finalize.stdout),
            String::from_utf8_lossy(&finalize.stderr)
        )
    );
    let refused = stackbill(&db, &["invoice", "show", &customer, "2025-04"]);
    assert_eq!(refused.status.code(), Some(1));
    insta::assert_snapshot!("refusal", String::from_utf8_lossy(&refused.stderr));
}
