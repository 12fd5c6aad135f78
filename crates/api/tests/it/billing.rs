//! Rate cards, invoices, finalization and adjustments over HTTP.

use axum::http::Method;
use serde_json::{Value, json};
use stackbill_test_support::{ADMIN_TOKEN, Answer, TestApp};

use crate::*;

pub(crate) const METER: &str = "b4438d5d-453b-4ee1-b42a-dc72e377f1e4";
const UNPRICED_METER: &str = "f271a8a3-88c4-4d93-956a-063e1d2fa80b";

pub(crate) fn record(id: &str, tenant: &str, meter: &str, start: &str, quantity: &str) -> String {
    let start: jiff::Timestamp = start.parse().unwrap();
    let end = start + jiff::SignedDuration::from_hours(1);
    format!(
        "{}\n",
        json!({"id": id, "cloudId": CLOUD_1, "tenantId": tenant, "subscriptionId": "50000000-0000-0000-0000-000000000001",
               "meterId": meter, "quantity": quantity, "usageStartTime": start.to_string(), "usageEndTime": end.to_string()})
    )
}

pub(crate) async fn post_usage(app: &TestApp, body: String) -> Answer {
    let answer = app
        .raw(
            Method::POST,
            "/v1/usage",
            Some(ADMIN_TOKEN),
            Some(body),
            "application/x-ndjson",
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    answer
}

/// Tenant 1 mapped to CUSTOMER_1 (10 % markup) for all of May; a USD card with two tiers.
pub(crate) async fn priced() -> TestApp {
    let app = seeded().await;
    let card = app
        .put(
            "/v1/ratecards/default",
            json!({"currency": "USD", "meters": [
                {"meterId": METER, "rates": {"0": "0.5", "10": "0.25"}, "includedQuantity": "1", "effectiveDate": "2025-01-01T00:00:00Z"}
            ]}),
        )
        .await;
    assert_eq!(card.status, 201, "{card:?}");
    let markup = app
        .put(&format!("/v1/subscriptions/{CUSTOMER_1}"), json!({"offerType": "CSP", "partnerId": "p1", "customerTenantId": TENANT_1, "markupPercent": "10", "pricingFrom": "2025-01"}))
        .await;
    assert_eq!(markup.status, 200);
    let mapped = app
        .put(
            &format!("/v1/registrations/stack1/customerSubscriptions/{CUSTOMER_1}"),
            json!({"tenantId": TENANT_1, "effectiveFrom": "2025-05-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(mapped.status, 200);
    let body = [
        record("a", TENANT_1, METER, "2025-05-03T10:00:00Z", "5"),
        record("b", TENANT_1, METER, "2025-05-03T11:00:00Z", "5.0"),
        record("c", TENANT_1, METER, "2025-05-20T11:00:00Z", "5"),
        record("d", TENANT_1, UNPRICED_METER, "2025-05-20T11:00:00Z", "2"),
        record("e", TENANT_2, METER, "2025-05-20T11:00:00Z", "0"),
    ]
    .concat();
    assert_eq!(post_usage(&app, body).await.body["accepted"], 5);
    app
}

/// [`priced`], with May finalized.
pub(crate) async fn finalized_may() -> TestApp {
    let app = priced().await;
    let finalized = app
        .call(Method::POST, "/v1/periods/2025-05/finalize", None)
        .await;
    assert_eq!(finalized.status, 200, "{finalized:?}");
    app
}

/// Bills tenant 1 to CUSTOMER_1B (no markup) for all of May, from the clock's instant on.
async fn move_tenant_1_for_may(app: &TestApp) {
    let moved = app
        .put(
            &format!("/v1/registrations/stack1/customerSubscriptions/{CUSTOMER_1B}"),
            json!({"tenantId": TENANT_1, "effectiveFrom": "2025-05-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(moved.status, 200, "{moved:?}");
}

fn invoice_of<'a>(list: &'a Answer, subscription: &str) -> &'a Value {
    list.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["subscriptionId"] == subscription)
        .expect("an invoice")
}

#[tokio::test]
async fn rate_cards_round_trip_and_bad_entries_name_their_field() {
    let app = priced().await;
    let card = app.get("/v1/ratecards/default").await;
    assert_eq!(card.body["currency"], "USD");
    assert_eq!(
        card.body["meters"][0]["rates"],
        json!({"0": "0.5", "10": "0.25"})
    );
    assert_eq!(card.body["meters"][0]["includedQuantity"], "1");
    let missing = app.get("/v1/ratecards/gold").await;
    assert_eq!(missing.error(), (404, "RateCardNotFound"));
    let gold = app
        .put(
            "/v1/ratecards/gold",
            json!({"currency": "EUR", "meters": [
                {"meterId": METER, "rates": {"0": "0.75"}, "effectiveDate": "2025-01-01T00:00:00Z"}
            ]}),
        )
        .await;
    assert_eq!(gold.status, 201, "{gold:?}");
    assert_eq!(app.get("/v1/ratecards/gold").await.body["currency"], "EUR");
    assert_eq!(app.get("/v1/ratecards/default").await.body, card.body);
    let cases = [
        (json!({"currency": "XXY", "meters": []}), "currency"),
        (
            json!({"currency": "USD", "meters": [{"meterId": "x", "rates": {"0": "1"}}]}),
            "meters[0].meterId",
        ),
        (
            json!({"currency": "USD", "meters": [{"meterId": METER, "rates": {"5": "1"}}]}),
            "meters[0].rates",
        ),
        (
            json!({"currency": "USD", "meters": [{"meterId": METER, "rates": {"0": "-1"}}]}),
            "meters[0].rates",
        ),
        (
            json!({"currency": "USD", "meters": [{"meterId": METER, "rates": {"0": "1"}, "includedQuantity": "-2"}]}),
            "meters[0].includedQuantity",
        ),
        (
            json!({"currency": "USD", "meters": [{"meterId": METER, "rates": {"0": "1"}}, {"meterId": METER, "rates": {"0": "2"}}]}),
            "meters[1].effectiveDate",
        ),
    ];
    for (body, target) in cases {
        let answer = app.put("/v1/ratecards/bad", body).await;
        assert_eq!(
            answer.error_at(),
            (400, "InvalidRateCard", target),
            "{answer:?}"
        );
    }
}

#[tokio::test]
async fn drafts_rate_routed_usage_with_tiers_included_quantity_and_markup() {
    let app = priced().await;
    let list = app.get("/v1/invoices?period=2025-05").await;
    assert_eq!(list.status, 200, "{list:?}");
    let customer = invoice_of(&list, CUSTOMER_1);
    assert_eq!(customer["status"], "draft");
    assert_eq!(customer["partnerId"], "p1");
    // 15 units, 1 included: 10 × 0.50 + 4 × 0.25 = 6.00, plus 10 % = 6.60.
    assert_eq!(customer["lines"][0]["meterId"], METER);
    assert_eq!(customer["lines"][0]["meterName"], "TableCapacity");
    assert_eq!(customer["lines"][0]["quantity"], "15");
    assert_eq!(customer["lines"][0]["amount"], "6.60");
    assert_eq!(customer["lines"][1]["meterId"], UNPRICED_METER);
    assert_eq!(
        (
            customer["lines"][1]["amount"].as_str(),
            customer["lines"][1]["unpriced"].as_bool()
        ),
        (Some("0.00"), Some(true))
    );
    assert_eq!(customer["total"], "6.60");
    // Tenant 2 has no subscription of its own: the default pays, and a zero still gets a line.
    let default = invoice_of(&list, CSPSS_DEFAULT);
    assert_eq!(default["lines"][0]["quantity"], "0");
    assert_eq!(default["total"], "0.00");
    assert_eq!(list.body["value"].as_array().unwrap().len(), 2);

    let one = app.get(&format!("/v1/invoices/{CUSTOMER_1}/2025-05")).await;
    assert_eq!(one.body, customer.clone());
    let none = app.get(&format!("/v1/invoices/{CUSTOMER_1}/2025-04")).await;
    assert_eq!(none.error(), (404, "InvoiceNotFound"));
    let bad = app.get("/v1/invoices?period=2025-13").await;
    assert_eq!((bad.status.as_u16(), bad.target()), (400, "period"));
}

#[tokio::test]
async fn invoices_come_as_csv_on_request() {
    let app = priced().await;
    let request = axum::http::Request::builder()
        .uri(format!("/v1/invoices/{CUSTOMER_1}/2025-05"))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .header("accept", "text/csv")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(app.router.clone(), request)
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with(
        "subscriptionId,customerName,partnerId,partnerName,period,currency,status,kind"
    ));
    assert!(
        lines[1].contains(
            ",line,,b4438d5d-453b-4ee1-b42a-dc72e377f1e4,TableCapacity,GB*hours,15,0.5,1,10,6.60,false,"
        ),
        "{text}"
    );
    assert!(
        lines.last().unwrap().contains(",total,,,,,,,,,6.60,,"),
        "{text}"
    );
}

#[tokio::test]
async fn finalized_invoices_never_change_and_late_usage_becomes_an_adjustment() {
    let app = priced().await;
    let early = app
        .call(Method::POST, "/v1/periods/2025-06/finalize", None)
        .await;
    assert_eq!(early.error(), (409, "PeriodNotEnded"));

    app.db.clock.set("2025-06-15T13:00:00Z");
    let finalized = app
        .call(Method::POST, "/v1/periods/2025-05/finalize", None)
        .await;
    assert_eq!(finalized.status, 200, "{finalized:?}");
    assert_eq!(finalized.body["value"].as_array().unwrap().len(), 2);
    let frozen = app.get(&format!("/v1/invoices/{CUSTOMER_1}/2025-05")).await;
    assert_eq!(frozen.body["status"], "final");
    assert_eq!(frozen.body["total"], "6.60");
    let again = app
        .call(Method::POST, "/v1/periods/2025-05/finalize", None)
        .await;
    assert_eq!(
        again.body, finalized.body,
        "repeating a finalization changes nothing"
    );

    // Late usage for May: the final invoice stands, June's draft carries the difference.
    app.db.clock.set("2025-06-16T00:00:00Z");
    post_usage(
        &app,
        record("late", TENANT_1, METER, "2025-05-30T23:00:00Z", "4"),
    )
    .await;
    let still = app.get(&format!("/v1/invoices/{CUSTOMER_1}/2025-05")).await;
    assert_eq!(still.body, frozen.body);
    let june = app.get(&format!("/v1/invoices/{CUSTOMER_1}/2025-06")).await;
    assert_eq!(june.status, 200, "{june:?}");
    assert_eq!(june.body["lines"], json!([]));
    // 19 units, 1 included: 10 × 0.50 + 8 × 0.25 = 7.00, plus 10 % = 7.70; billed 6.60.
    assert_eq!(
        june.body["adjustments"],
        json!([{"period": "2025-05", "meterId": METER, "meterName": "TableCapacity", "unit": "GB*hours", "quantity": "4", "amount": "1.10", "reason": "LateUsage"}])
    );
    assert_eq!(june.body["total"], "1.10");

    // As of before the late record, June had nothing to bill.
    let before = app
        .get(&format!(
            "/v1/invoices/{CUSTOMER_1}/2025-06?asOf=2025-06-15T14:00:00Z"
        ))
        .await;
    assert_eq!(before.code(), "InvoiceNotFound");
    let may_then = app
        .get(&format!(
            "/v1/invoices/{CUSTOMER_1}/2025-05?asOf=2025-06-15T12:30:00Z"
        ))
        .await;
    assert_eq!(
        may_then.body["status"], "draft",
        "as of before finalization it was a draft"
    );
    assert_eq!(may_then.body["total"], "6.60");
}

#[tokio::test]
async fn a_backdated_reassignment_moves_money_between_subscriptions() {
    let app = finalized_may().await;
    app.db.clock.set("2025-06-16T00:00:00Z");
    // Tenant 1 switches to CUSTOMER_1B for all of May, recorded after May was final.
    move_tenant_1_for_may(&app).await;
    let old = app.get(&format!("/v1/invoices/{CUSTOMER_1}/2025-06")).await;
    let new = app
        .get(&format!("/v1/invoices/{CUSTOMER_1B}/2025-06"))
        .await;
    let reasons = |a: &Answer| {
        a.body["adjustments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| (x["reason"].clone(), x["amount"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        reasons(&old),
        [
            (json!("Reassignment"), json!("-6.60")),
            (json!("Reassignment"), json!("0.00"))
        ]
    );
    // CUSTOMER_1B has no markup: 6.00 for the priced meter, 0.00 for the unpriced one.
    assert_eq!(
        reasons(&new),
        [
            (json!("Reassignment"), json!("6.00")),
            (json!("Reassignment"), json!("0.00"))
        ]
    );
    let list = app.get("/v1/invoices?period=2025-06&partnerId=p1").await;
    assert_eq!(list.body["value"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_records_behind_a_line_add_up_to_it() {
    let app = priced().await;
    let invoice = app.get(&format!("/v1/invoices/{CUSTOMER_1}/2025-05")).await;
    let line = &invoice.body["lines"][0];
    let records = app
        .get(&format!(
            "/v1/invoices/{CUSTOMER_1}/2025-05/records?meterId={METER}&$top=2"
        ))
        .await;
    assert_eq!(records.status, 200, "{records:?}");
    let mut all: Vec<Value> = records.body["value"].as_array().unwrap().clone();
    let next = records.body["nextLink"].as_str().unwrap().to_owned();
    all.extend(
        app.get(&next).await.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .cloned(),
    );
    let sum: rust_decimal::Decimal = all
        .iter()
        .map(|r| {
            r["quantity"]
                .as_str()
                .unwrap()
                .parse::<rust_decimal::Decimal>()
                .unwrap()
        })
        .sum();
    assert_eq!(sum.to_string(), line["quantity"].as_str().unwrap());
    let ids: Vec<&str> = all.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert_eq!(all[0]["usageEndTime"], "2025-05-03T11:00:00Z");
    // The default subscription's records are not this subscription's.
    let other = app
        .get(&format!("/v1/invoices/{CSPSS_DEFAULT}/2025-05/records"))
        .await;
    assert_eq!(other.body["value"].as_array().unwrap().len(), 1);
    assert_eq!(other.body["value"][0]["id"], "e");

    // After finalization and late usage, the final line is still explained by its records.
    app.db.clock.set("2025-06-15T13:00:00Z");
    assert_eq!(
        app.call(Method::POST, "/v1/periods/2025-05/finalize", None)
            .await
            .status,
        200
    );
    app.db.clock.set("2025-06-16T00:00:00Z");
    post_usage(
        &app,
        record("late", TENANT_1, METER, "2025-05-30T23:00:00Z", "4"),
    )
    .await;
    let frozen = app
        .get(&format!(
            "/v1/invoices/{CUSTOMER_1}/2025-05/records?meterId={METER}"
        ))
        .await;
    assert_eq!(frozen.body["value"].as_array().unwrap().len(), 3);
    let today = app
        .get(&format!(
            "/v1/invoices/{CUSTOMER_1}/2025-05/records?meterId={METER}&asOf=2025-06-16T00:00:00Z"
        ))
        .await;
    assert_eq!(today.body["value"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn a_diff_explains_late_and_rerouted_records_over_http() {
    let app = finalized_may().await;
    // After finalization: one late record, then tenant 1 moves to CUSTOMER_1B for all of May.
    app.db.clock.set("2025-06-16T00:00:00Z");
    post_usage(
        &app,
        record("late", TENANT_1, METER, "2025-05-30T23:00:00Z", "4"),
    )
    .await;
    app.db.clock.set("2025-06-17T00:00:00Z");
    move_tenant_1_for_may(&app).await;
    app.db.clock.set("2025-06-18T00:00:00Z");
    let path = |sub: &str| {
        format!("/v1/invoices/{sub}/2025-05/diff?from=2025-06-15T14:00:00Z&to=2025-06-18T00:00:00Z")
    };
    let new = app.get(&path(CUSTOMER_1B)).await;
    assert_eq!(new.status, 200, "{new:?}");
    let meter = |a: &Answer| {
        a.body["meters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["meterId"] == METER)
            .cloned()
            .expect("the priced meter changed")
    };
    let gained = meter(&new);
    assert_eq!(
        (
            &gained["reroutedInRecords"],
            &gained["reroutedInQuantity"],
            &gained["newRecords"],
            &gained["newQuantity"],
        ),
        (&json!(3), &json!("15"), &json!(1), &json!("4")),
        "{gained}"
    );
    let lost = meter(&app.get(&path(CUSTOMER_1)).await);
    assert_eq!(
        (&lost["reroutedOutRecords"], &lost["reroutedOutQuantity"]),
        (&json!(3), &json!("15")),
        "{lost}"
    );
    assert_eq!(lost["quantityFrom"], "15");
    let missing = app
        .get(&format!("/v1/invoices/{CUSTOMER_1}/2025-05/diff"))
        .await;
    assert_eq!(missing.error(), (400, "InvalidParameter"));
}

/// A marked-up price beyond 28 digits is an `AmountOverflow` answer, not a panic.
#[tokio::test]
async fn a_rate_card_price_that_overflows_with_the_markup_is_refused() {
    let app = priced().await;
    let card = app
        .put(
            "/v1/ratecards/default",
            json!({"currency": "USD", "meters": [
                {"meterId": METER, "rates": {"0": "79228162514264337593543950335"}, "effectiveDate": "2025-01-01T00:00:00Z"}
            ]}),
        )
        .await;
    assert!(card.status.is_success(), "{card:?}");
    let answer = app
        .get(&format!(
            "/subscriptions/{CUSTOMER_1}/providers/Microsoft.Commerce/RateCard?\
             $filter=OfferDurableId%20eq%20%27MS-AZR-0145P%27%20and%20Currency%20eq%20%27USD%27\
             %20and%20Locale%20eq%20%27en-US%27%20and%20RegionInfo%20eq%20%27US%27\
             &api-version=2015-06-01-preview"
        ))
        .await;
    assert_eq!(answer.error(), (422, "AmountOverflow"), "{answer:?}");
}

/// SPEC §5: pricing is effective-dated; re-pricing a final period is a `Repricing`
/// adjustment, and as-of reads use the pricing recorded by then.
#[tokio::test]
async fn pricing_changes_apply_from_a_period_and_never_rewrite_history() {
    let app = finalized_may().await;
    let june_usage = record("june", TENANT_1, METER, "2025-06-02T10:00:00Z", "11");
    post_usage(&app, june_usage).await;
    let put_markup = |markup: &str, from: Option<&str>| {
        let mut body = json!({"offerType": "CSP", "partnerId": "p1", "customerTenantId": TENANT_1, "markupPercent": markup});
        if let Some(from) = from {
            body["pricingFrom"] = json!(from);
        }
        let app = &app;
        async move {
            let answer = app
                .put(&format!("/v1/subscriptions/{CUSTOMER_1}"), body)
                .await;
            assert_eq!(answer.status, 200, "{answer:?}");
        }
    };
    let june = || {
        let app = &app;
        async move { app.get(&format!("/v1/invoices/{CUSTOMER_1}/2025-06")).await }
    };
    // 11 units in June, one included: 10 at 0.5 = 5.00 before the markup.
    assert_eq!(june().await.body["total"], "5.50", "10 % markup");
    app.db.clock.set("2025-06-16T00:00:00Z");
    let before_change = "2025-06-15T23:00:00Z";
    // A change without pricingFrom applies from the current period: June, not final May.
    put_markup("20", None).await;
    let now = june().await;
    assert_eq!(now.body["total"], "6.00", "{now:?}");
    assert_eq!(now.body["adjustments"], json!([]));
    let then = app
        .get(&format!(
            "/v1/invoices/{CUSTOMER_1}/2025-06?asOf={before_change}"
        ))
        .await;
    assert_eq!(
        then.body["total"], "5.50",
        "as of before the change: {then:?}"
    );
    // From May on: final May is re-priced on June's invoice.
    app.db.clock.set("2025-06-17T00:00:00Z");
    put_markup("30", Some("2025-05")).await;
    let now = june().await;
    let adjustments: Vec<(Value, Value)> = now.body["adjustments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a.clone()["reason"].clone(), a["amount"].clone()))
        .collect();
    // May: 6.00 before markup; billed 6.60 (10 %), now 7.80 (30 %).
    assert_eq!(
        adjustments,
        [(json!("Repricing"), json!("1.20"))],
        "{now:?}"
    );
    // The later change from May governs June too.
    assert_eq!(now.body["lines"][0]["amount"], "6.50");
    let may = app.get(&format!("/v1/invoices/{CUSTOMER_1}/2025-05")).await;
    assert_eq!(may.body["total"], "6.60", "a final invoice never changes");
    // Frozen on final June, the adjustment keeps its reason.
    app.db.clock.set("2025-07-01T00:00:00Z");
    let finalized = app
        .call(Method::POST, "/v1/periods/2025-06/finalize", None)
        .await;
    assert_eq!(finalized.status, 200, "{finalized:?}");
    let june = june().await;
    assert_eq!(june.body["status"], "final", "{june:?}");
    assert_eq!(
        june.body["adjustments"][0]["reason"], "Repricing",
        "{june:?}"
    );
}

/// One subscription whose amount cannot be held never hides another's invoice.
#[tokio::test]
async fn one_subscriptions_overflow_leaves_the_others_invoices_alone() {
    let app = priced().await;
    let huge = app
        .put(
            "/v1/ratecards/huge",
            json!({"currency": "USD", "meters": [
                {"meterId": METER, "rates": {"0": "79228162514264337593543950335"}, "effectiveDate": "2025-01-01T00:00:00Z"}
            ]}),
        )
        .await;
    assert_eq!(huge.status, 201, "{huge:?}");
    let repriced = app
        .put(
            &format!("/v1/subscriptions/{CSPSS_DEFAULT}"),
            json!({"offerType": "CSPSS", "partnerId": "p1", "rateCard": "huge", "pricingFrom": "2025-01"}),
        )
        .await;
    assert_eq!(repriced.status, 200, "{repriced:?}");
    post_usage(
        &app,
        record("big", TENANT_2, METER, "2025-05-21T10:00:00Z", "2"),
    )
    .await;
    let list = app.get("/v1/invoices?period=2025-05").await;
    assert_eq!(list.status, 200, "{list:?}");
    let listed: Vec<&str> = list.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["subscriptionId"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [CUSTOMER_1]);
    assert_eq!(list.body["failed"][0]["subscriptionId"], CSPSS_DEFAULT);
    assert_eq!(list.body["failed"][0]["code"], "AmountOverflow");
    let fine = app.get(&format!("/v1/invoices/{CUSTOMER_1}/2025-05")).await;
    assert_eq!(fine.status, 200, "{fine:?}");
    let failing = app
        .get(&format!("/v1/invoices/{CSPSS_DEFAULT}/2025-05"))
        .await;
    assert_eq!(failing.error(), (422, "AmountOverflow"), "{failing:?}");
    assert!(
        failing.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(CSPSS_DEFAULT)
    );
    // Usage of the EA stack: a subscription of no partner.
    let ea_usage = record("ea", TENANT_2, METER, "2025-05-21T10:00:00Z", "3");
    post_usage(&app, ea_usage.replace(CLOUD_1, CLOUD_3)).await;
    // Finalizing the month freezes the months of the partners with no failing subscription
    // (none other has usage here) and of the subscriptions of no partner, and reports the
    // failing one; its partner's month stays a draft, whole, until it is fixed.
    let all = app
        .call(Method::POST, "/v1/periods/2025-05/finalize", None)
        .await;
    assert_eq!(all.status, 200, "{all:?}");
    assert_eq!(
        all.body["failed"][0]["subscriptionId"], CSPSS_DEFAULT,
        "{all:?}"
    );
    let ea = app.get(&format!("/v1/invoices/{EA_DEFAULT}/2025-05")).await;
    assert_eq!(ea.body["status"], "final", "{ea:?}");
    let still = app.get(&format!("/v1/invoices/{CUSTOMER_1}/2025-05")).await;
    assert_eq!(
        still.body["status"], "draft",
        "p1's month is frozen whole or not at all"
    );
    // Fixed, the month finalizes the rest.
    let fixed = app
        .put(
            &format!("/v1/subscriptions/{CSPSS_DEFAULT}"),
            json!({"offerType": "CSPSS", "partnerId": "p1", "pricingFrom": "2025-01"}),
        )
        .await;
    assert_eq!(fixed.status, 200, "{fixed:?}");
    let again = app
        .call(Method::POST, "/v1/periods/2025-05/finalize", None)
        .await;
    assert_eq!(again.status, 200, "{again:?}");
    assert!(again.body.get("failed").is_none(), "{again:?}");
    let done = app.get(&format!("/v1/invoices/{CUSTOMER_1}/2025-05")).await;
    assert_eq!(done.body["status"], "final");
}
